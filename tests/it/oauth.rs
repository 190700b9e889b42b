//! The OAuth 2.1 authorization server and the MCP endpoint against the real daemon: metadata,
//! registration, consent, codes, tokens, refresh rotation, revocation, audiences, and every bad
//! input the issue lists. The MCP calls are plain JSON-RPC over HTTP here; the official SDK clients
//! run in tests/interop.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::harness::{Behind, Reply, TestApp, spawn_app, spawn_app_with};

const PASSPHRASE: &str = "correct horse battery";
pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn reply(resp: reqwest::Response) -> Reply {
    Reply {
        status: resp.status(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

fn query_of(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

/// The hidden fields of a consent form.
pub fn form_fields(page: &str) -> (String, String) {
    let field = |name: &str| {
        let marker = format!(r#"name="{name}" value=""#);
        let start = page
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {page}"))
            + marker.len();
        page[start..start + page[start..].find('"').unwrap()].to_owned()
    };
    (field("authz"), field("csrf"))
}

pub async fn set_passphrase(app: &TestApp) {
    let r = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/passphrase",
            Some(&app.admin),
            Some(json!({"passphrase": PASSPHRASE})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn register(app: &TestApp, body: Value) -> Reply {
    reply(
        app.http
            .post(format!("{}/register", app.base))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A public client's registration, as an MCP client sends it.
pub fn public_registration() -> Value {
    json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
           "grant_types": ["authorization_code", "refresh_token"], "client_name": "Test Agent"})
}

async fn public_client(app: &TestApp) -> String {
    let r = register(app, public_registration()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["client_id"].as_str().unwrap().to_owned()
}

pub fn authorize_query(client: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "st4te")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    q.finish()
}

async fn authorize(app: &TestApp, query: &str) -> Reply {
    reply(
        app.http
            .get(format!("{}/authorize?{query}", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn answer(app: &TestApp, fields: &[(&str, &str)]) -> Reply {
    reply(
        app.http
            .post(format!("{}/authorize", app.base))
            .header("origin", &app.base)
            .form(fields)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Authorize and consent with the passphrase: the redirect's query.
async fn consent(app: &TestApp, client: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let page = authorize(app, &authorize_query(client, extra)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let (authz, csrf) = form_fields(&page.text);
    let r = answer(
        app,
        &[
            ("authz", &authz),
            ("csrf", &csrf),
            ("passphrase", PASSPHRASE),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let location = r.header("location");
    assert!(location.starts_with(REDIRECT), "{location}");
    query_of(&location)
}

/// The consent form answered Approve with `passphrase`.
async fn approve(app: &TestApp, authz: &str, csrf: &str, passphrase: &str) -> Reply {
    answer(
        app,
        &[
            ("authz", authz),
            ("csrf", csrf),
            ("passphrase", passphrase),
            ("decision", "approve"),
        ],
    )
    .await
}

/// A public client's refresh.
async fn refresh_grant(app: &TestApp, client: &str, refresh_token: &str) -> Reply {
    token(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client),
        ],
    )
    .await
}

async fn token(app: &TestApp, form: &[(&str, &str)]) -> Reply {
    reply(
        app.http
            .post(format!("{}/token", app.base))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn exchange(app: &TestApp, client: &str, code: &str) -> Reply {
    token(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client),
            ("resource", &format!("{}/mcp", app.base)),
        ],
    )
    .await
}

fn oauth_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.json()["error"], code, "{}", r.text);
    assert!(r.json()["error_description"].is_string(), "{}", r.text);
}

/// A complete sign-in: (client id, token response).
async fn signed_in(app: &TestApp, scope: &str) -> (String, Value) {
    let client = public_client(app).await;
    let q = consent(app, &client, &[("scope", scope)]).await;
    let r = exchange(app, &client, &q["code"]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    (client, r.json())
}

/// The owner signs in with the passphrase: the `Cookie` header value of the new session.
pub async fn owner_cookie(app: &TestApp) -> String {
    let login = app
        .http
        .post(format!("{}/login", app.base))
        .header("origin", &app.base)
        .form(&[("passphrase", PASSPHRASE), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// An MCP JSON-RPC call; the response may be JSON or one SSE event.
async fn mcp(app: &TestApp, token: &str, session: Option<&str>, body: Value) -> (Reply, Value) {
    let req = crate::harness::mcp_request(app, "/mcp", token, session, &body);
    let r = reply(req.send().await.unwrap()).await;
    let value = crate::harness::mcp_answer(&r.text);
    (r, value)
}

/// initialize + initialized: the session id.
async fn mcp_session(app: &TestApp, token: &str) -> String {
    let (r, init) = mcp(
        app,
        token,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "it", "version": "0"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(init["result"]["serverInfo"]["name"], "agentgate", "{init}");
    let session = r.header("mcp-session-id");
    assert!(!session.is_empty());
    let (r, _) = mcp(
        app,
        token,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text);
    session
}

async fn call_tool(app: &TestApp, token: &str, session: &str, name: &str, args: Value) -> Value {
    let (r, v) = mcp(
        app,
        token,
        Some(session),
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": name, "arguments": args}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn metadata_is_built_from_the_host_and_cors_is_open_only_where_it_should_be() {
    let app = spawn_app().await;
    let as_meta = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(as_meta.status, 200);
    let m = as_meta.json();
    assert_eq!(m["issuer"], app.base, "no trailing slash");
    assert_eq!(
        m["authorization_endpoint"],
        format!("{}/authorize", app.base)
    );
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert!(!m["scopes_supported"].to_string().contains("offline_access"));
    assert_eq!(as_meta.header("access-control-allow-origin"), "*");
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let prm = app.get(path, None).await.json();
        assert_eq!(prm["resource"], format!("{}/mcp", app.base), "{path}");
        assert_eq!(prm["authorization_servers"], json!([app.base]));
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
    }
    // No OpenID configuration: we are not an OpenID provider.
    assert_eq!(
        app.get("/.well-known/openid-configuration", None)
            .await
            .status,
        404
    );
    // `localhost` sees itself as the issuer.
    let local = format!("localhost:{}", app.addr.port());
    let m = reply(
        app.http
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                app.base
            ))
            .header("host", &local)
            .send()
            .await
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(m["issuer"], format!("http://{local}"));
    assert_eq!(m["token_endpoint"], format!("http://{local}/token"));
    // A foreign Host is refused before anything else.
    let bad = reply(
        app.http
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                app.base
            ))
            .header("host", "evil.example:80")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, 421);
    // Preflight on /token from any origin; never on /authorize.
    let pre = reply(
        app.http
            .request(reqwest::Method::OPTIONS, format!("{}/token", app.base))
            .header("origin", "http://inspector.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), "*");
    let page = authorize(&app, "client_id=x").await;
    assert_eq!(page.header("access-control-allow-origin"), "");
    assert_eq!(
        app.get("/api/v1/whoami", Some(&app.admin))
            .await
            .header("access-control-allow-origin"),
        ""
    );
}

#[tokio::test]
async fn an_mcp_client_registers_consents_calls_tools_and_refreshes() {
    let app =
        spawn_app_with("[[rules]]\naction = \"allow\"\nkind = \"shell\"\npattern = \"echo *\"\n")
            .await;
    set_passphrase(&app).await;
    // Unauthenticated: the challenge says where to start.
    let (r, _) = mcp(&app, "", None, json!({})).await;
    assert_eq!(r.status, 401);
    let r = reply(
        app.http
            .post(format!("{}/mcp", app.base))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        format!(
            r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp", scope="request""#,
            app.base
        )
    );
    // Registration: unknown members are ignored.
    let reg = register(
        &app,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
               "client_name": "Test Agent", "application_type": "native",
               "software_statement_x": {"nested": true}, "logo_uri": "https://x/y.png"}),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.text);
    let client = reg.json()["client_id"].as_str().unwrap().to_owned();
    assert!(reg.json().get("client_secret").is_none(), "public client");
    // The consent page.
    let page = authorize(&app, &authorize_query(&client, &[("scope", "request")])).await;
    assert_eq!(page.status, 200, "{}", page.text);
    for words in [
        "Test Agent",
        "agentgate cannot check it",
        "Ask you for permission",
        "127.0.0.1:53682",
        "a program on this computer",
        "Remember this application",
    ] {
        assert!(page.text.contains(words), "{words}: {}", page.text);
    }
    assert!(
        page.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    assert!(
        page.header("content-security-policy")
            .contains("form-action 'self' http://127.0.0.1:53682")
    );
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    let (authz, csrf) = form_fields(&page.text);
    let r = approve(&app, &authz, &csrf, PASSPHRASE).await;
    assert_eq!(r.status, 303, "never 307: {}", r.text);
    let q = query_of(&r.header("location"));
    assert_eq!(q["state"], "st4te");
    assert_eq!(q["iss"], app.base);
    let tokens = exchange(&app, &client, &q["code"]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    assert_eq!(tokens.header("cache-control"), "no-store");
    let t = tokens.json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "request");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    // Stored hashed in the token store with its client and audience.
    let db = Behind::open(&app).await.dump(&app).await;
    assert!(db.contains("tok_"), "the dump holds the token rows");
    assert!(!db.contains(&access) && !db.contains(&refresh));
    // The MCP session: initialize, tools/list, tools/call.
    let session = mcp_session(&app, &access).await;
    let (r, list) = mcp(
        &app,
        &access,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(r.status, 200);
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for tool in [
        "request_permission",
        "approval_prompt",
        "list_pending",
        "reply",
    ] {
        assert!(names.contains(&tool), "{names:?}");
    }
    let out = call_tool(
        &app,
        &access,
        &session,
        "request_permission",
        json!({"kind": "shell", "command": "echo hi"}),
    )
    .await;
    assert_eq!(out["status"], "allowed", "{out}");
    // The access token is for /mcp only.
    app.get("/api/v1/permissions?status=all", Some(&access))
        .await
        .expect_error(401, "unauthorized");
    // Refresh rotates; the new access token works.
    let r = refresh_grant(&app, &client, &refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access2 = r.json()["access_token"].as_str().unwrap().to_owned();
    let refresh2 = r.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    mcp_session(&app, &access2).await;
    // A concurrent refresh within the grace period is not reuse…
    let r = refresh_grant(&app, &client, &refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // …but reuse after it revokes the whole family.
    app.clock.advance(Duration::from_secs(10));
    let r = refresh_grant(&app, &client, &refresh).await;
    oauth_error(&r, 400, "invalid_grant");
    let (r, _) = mcp(&app, &access2, None, json!({})).await;
    assert_eq!(r.status, 401, "family revoked: {}", r.text);
    let r = refresh_grant(&app, &client, &refresh2).await;
    oauth_error(&r, 400, "invalid_grant");
}

#[tokio::test]
async fn the_consent_form_refuses_wrong_passphrases_replays_and_other_origins() {
    let app = spawn_app().await;
    set_passphrase(&app).await;
    let client = public_client(&app).await;
    let page = authorize(&app, &authorize_query(&client, &[])).await;
    let (authz, csrf) = form_fields(&page.text);
    // Cross-origin POST: refused before the form is looked at (and the CSRF token stays good).
    let r = reply(
        app.http
            .post(format!("{}/authorize", app.base))
            .header("origin", "http://evil.example")
            .form(&[
                ("authz", authz.as_str()),
                ("csrf", csrf.as_str()),
                ("passphrase", PASSPHRASE),
                ("decision", "approve"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("location"), "");
    // Missing CSRF token: an error page, no redirect.
    let r = answer(
        &app,
        &[
            ("authz", &authz),
            ("passphrase", PASSPHRASE),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("location"), "");
    // Wrong passphrase: the form again, with a new CSRF token.
    let r = approve(&app, &authz, &csrf, "wrong passphrase").await;
    assert_eq!(r.status, 401);
    assert!(
        r.text.contains("That passphrase is not right"),
        "{}",
        r.text
    );
    let (_, csrf2) = form_fields(&r.text);
    assert_ne!(csrf2, csrf);
    // The used CSRF token cannot be replayed, even with the right passphrase.
    let r = approve(&app, &authz, &csrf, PASSPHRASE).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("location"), "");
    // Each failure makes the next attempt wait: now even the right passphrase is held back.
    let r = approve(&app, &authz, &csrf2, PASSPHRASE).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    let (_, csrf3) = form_fields(&r.text);
    app.clock.advance(Duration::from_secs(2));
    // Deny needs no passphrase and tells the client `access_denied`, with state and iss.
    let r = answer(
        &app,
        &[("authz", &authz), ("csrf", &csrf3), ("decision", "deny")],
    )
    .await;
    assert_eq!(r.status, 303);
    let q = query_of(&r.header("location"));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st4te");
    assert_eq!(q["iss"], app.base);
    assert!(!q.contains_key("code"));
    // The pending authorization is gone.
    let r = answer(
        &app,
        &[("authz", &authz), ("csrf", &csrf3), ("decision", "deny")],
    )
    .await;
    assert_eq!(r.status, 400);
    // A consent page left too long expires.
    let page = authorize(&app, &authorize_query(&client, &[])).await;
    let (authz, csrf) = form_fields(&page.text);
    app.clock.advance(Duration::from_secs(601));
    let r = approve(&app, &authz, &csrf, PASSPHRASE).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn authorize_never_redirects_to_an_unverified_uri_and_redirects_every_other_error() {
    let app = spawn_app().await;
    set_passphrase(&app).await;
    let reg = register(
        &app,
        json!({"redirect_uris": ["http://127.0.0.1:3000/cb", "http://localhost:4000/cb"],
               "token_endpoint_auth_method": "none"}),
    )
    .await;
    let client = reg.json()["client_id"].as_str().unwrap().to_owned();
    let q = |redirect: &str, extra: &[(&str, &str)]| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("response_type", "code")
            .append_pair("client_id", &client)
            .append_pair("redirect_uri", redirect)
            .append_pair("state", "s")
            .append_pair("code_challenge", CHALLENGE)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            s.append_pair(k, v);
        }
        s.finish()
    };
    // Error pages, never redirects: unknown client, unregistered redirect (exact match; any port
    // only for a loopback IP literal), no client at all.
    for (query, words) in [
        (
            authorize_query("cli_0000000000000000", &[]),
            "No application is registered",
        ),
        (q("http://127.0.0.1:3000/other", &[]), "is not registered"),
        (q("http://localhost:4001/cb", &[]), "is not registered"),
        (q("http://evil.example/cb", &[]), "is not registered"),
        ("response_type=code".to_owned(), "names no client"),
        (
            format!("{}&client_id=x", q("http://127.0.0.1:3000/cb", &[])),
            "more than once",
        ),
    ] {
        let r = authorize(&app, &query).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text);
        assert_eq!(r.header("location"), "", "{query}");
        assert!(r.text.contains(words), "{words}: {}", r.text);
    }
    // A loopback IP literal may use any port (RFC 8252 §7.3).
    let r = authorize(&app, &q("http://127.0.0.1:49152/cb", &[])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Everything else is told to the client, with state and iss.
    let redirect_error = |r: &Reply, code: &str| {
        assert_eq!(r.status, 303, "{}", r.text);
        let location = r.header("location");
        assert!(
            location.starts_with("http://127.0.0.1:3000/cb?"),
            "{location}"
        );
        let q = query_of(&location);
        assert_eq!(q["error"], code, "{location}");
        assert_eq!(q["state"], "s");
        assert_eq!(q["iss"], app.base);
    };
    let base = "http://127.0.0.1:3000/cb";
    let no_pkce = q(base, &[]).replace(&format!("&code_challenge={CHALLENGE}"), "");
    redirect_error(&authorize(&app, &no_pkce).await, "invalid_request");
    let plain = q(base, &[]).replace("S256", "plain");
    redirect_error(&authorize(&app, &plain).await, "invalid_request");
    let token_type = q(base, &[]).replace("response_type=code", "response_type=token");
    redirect_error(
        &authorize(&app, &token_type).await,
        "unsupported_response_type",
    );
    redirect_error(
        &authorize(&app, &q(base, &[("scope", "admin")])).await,
        "invalid_scope",
    );
    redirect_error(
        &authorize(
            &app,
            &q(base, &[("resource", "http://127.0.0.1:1/elsewhere")]),
        )
        .await,
        "invalid_target",
    );
    // prompt=none without remembered consent: consent_required, not access_denied.
    redirect_error(
        &authorize(&app, &q(base, &[("prompt", "none")])).await,
        "consent_required",
    );
    // The owner approves and asks to remember the consent…
    let page = authorize(&app, &q(base, &[("scope", "request")])).await;
    let (authz, csrf) = form_fields(&page.text);
    let r = answer(
        &app,
        &[
            ("authz", &authz),
            ("csrf", &csrf),
            ("passphrase", PASSPHRASE),
            ("decision", "approve"),
            ("remember", "yes"),
        ],
    )
    .await;
    assert_eq!(r.status, 303);
    // Remembered consent never issues a code by itself (RFC 8252 §8.6): anyone who knows the
    // public client's id could start this. Without the owner's session, the full page.
    let page = authorize(&app, &q(base, &[("scope", "request")])).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains(r#"name="passphrase""#), "{}", page.text);
    let (authz, csrf) = form_fields(&page.text);
    let r = answer(
        &app,
        &[("authz", &authz), ("csrf", &csrf), ("decision", "approve")],
    )
    .await;
    assert_eq!(r.status, 400, "no passphrase, no session: no code");
    assert!(!r.header("location").contains("code="));
    redirect_error(
        &authorize(&app, &q(base, &[("prompt", "none")])).await,
        "consent_required",
    );
    // With the owner's signed-in session in the browser: one click, no passphrase.
    let cookie = owner_cookie(&app).await;
    let with_session = |query: String| {
        let (http, base, cookie) = (app.http.clone(), app.base.clone(), cookie.clone());
        async move {
            reply(
                http.get(format!("{base}/authorize?{query}"))
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let page = with_session(q(base, &[("scope", "request")])).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("one-click"), "{}", page.text);
    assert!(!page.text.contains(r#"name="passphrase""#));
    let (authz, csrf) = form_fields(&page.text);
    // The form alone is not enough: the session must come with the answer.
    let r = answer(
        &app,
        &[("authz", &authz), ("csrf", &csrf), ("decision", "approve")],
    )
    .await;
    assert_eq!(r.status, 400);
    let page = with_session(q(base, &[("scope", "request")])).await;
    let (authz, csrf) = form_fields(&page.text);
    let r = reply(
        app.http
            .post(format!("{}/authorize", app.base))
            .header("origin", &app.base)
            .header("cookie", &cookie)
            .form(&[
                ("authz", authz.as_str()),
                ("csrf", csrf.as_str()),
                ("decision", "approve"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(query_of(&r.header("location")).contains_key("code"));
    // A session for more scopes than remembered still needs the passphrase.
    let page = with_session(q(base, &[("scope", "request approve")])).await;
    assert!(page.text.contains(r#"name="passphrase""#));
    // …not for more scopes, and never with prompt=consent.
    assert_eq!(
        authorize(&app, &q(base, &[("scope", "request approve")]))
            .await
            .status,
        200
    );
    assert_eq!(
        authorize(&app, &q(base, &[("prompt", "consent")]))
            .await
            .status,
        200
    );
    // The owner lists and revokes remembered consent.
    let grants = app
        .get("/api/v1/oauth/grants", Some(&app.admin))
        .await
        .json();
    let grant = grants["grants"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(grants["grants"][0]["scope"], "request");
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/oauth/grants/{grant}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        authorize(&app, &q(base, &[("scope", "request")]))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn codes_are_single_use_short_lived_and_bound_to_what_was_asked() {
    let app = spawn_app().await;
    set_passphrase(&app).await;
    let client = public_client(&app).await;
    // Wrong verifier, then the same code again: refused, the second time as a reuse.
    let q = consent(&app, &client, &[]).await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", "x".repeat(43).leak()),
        ("client_id", client.as_str()),
    ];
    oauth_error(&token(&app, &form).await, 400, "invalid_grant");
    form[3].1 = VERIFIER;
    oauth_error(&token(&app, &form).await, 400, "invalid_grant");
    // A reused code revokes what its first exchange issued.
    let q = consent(&app, &client, &[]).await;
    let first = exchange(&app, &client, &q["code"]).await;
    assert_eq!(first.status, 200);
    let access = first.json()["access_token"].as_str().unwrap().to_owned();
    mcp_session(&app, &access).await;
    oauth_error(
        &exchange(&app, &client, &q["code"]).await,
        400,
        "invalid_grant",
    );
    let (r, _) = mcp(&app, &access, None, json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let refresh = first.json()["refresh_token"].as_str().unwrap().to_owned();
    oauth_error(
        &refresh_grant(&app, &client, &refresh).await,
        400,
        "invalid_grant",
    );
    // Expired code.
    let q = consent(&app, &client, &[]).await;
    app.clock.advance(Duration::from_secs(301));
    oauth_error(
        &exchange(&app, &client, &q["code"]).await,
        400,
        "invalid_grant",
    );
    // Bound to the redirect URI, the client and the resource.
    let q = consent(&app, &client, &[]).await;
    let r = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", "http://127.0.0.1:53682/other"),
            ("code_verifier", VERIFIER),
            ("client_id", &client),
        ],
    )
    .await;
    oauth_error(&r, 400, "invalid_grant");
    let other = public_client(&app).await;
    let q = consent(&app, &client, &[]).await;
    oauth_error(
        &exchange(&app, &other, &q["code"]).await,
        400,
        "invalid_grant",
    );
    let q = consent(&app, &client, &[]).await;
    let r = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("code_verifier", VERIFIER),
            ("client_id", &client),
            ("resource", "http://127.0.0.1:9/mcp"),
        ],
    )
    .await;
    oauth_error(&r, 400, "invalid_target");
    // Missing pieces and unknown grants.
    oauth_error(
        &token(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("client_id", &client),
            ],
        )
        .await,
        400,
        "invalid_request",
    );
    oauth_error(
        &token(&app, &[("grant_type", "password"), ("client_id", &client)]).await,
        400,
        "unsupported_grant_type",
    );
    oauth_error(
        &token(&app, &[("client_id", &client)]).await,
        400,
        "invalid_request",
    );
    let json_body = reply(
        app.http
            .post(format!("{}/token", app.base))
            .json(&json!({"grant_type": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    oauth_error(&json_body, 400, "invalid_request");
    // Unknown client: 401 invalid_client.
    oauth_error(
        &exchange(&app, "cli_0000000000000000", "agc_x").await,
        401,
        "invalid_client",
    );
}

#[tokio::test]
async fn confidential_clients_authenticate_and_deleted_clients_get_invalid_client() {
    let app = spawn_app().await;
    set_passphrase(&app).await;
    let reg = register(
        &app,
        json!({"redirect_uris": [REDIRECT], "client_name": "Secretive"}),
    )
    .await;
    assert_eq!(reg.status, 201);
    let r = reg.json();
    assert_eq!(r["token_endpoint_auth_method"], "client_secret_basic");
    let client = r["client_id"].as_str().unwrap().to_owned();
    let secret = r["client_secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("agk_"),
        "a client secret has its own prefix: {secret}"
    );
    let q = consent(&app, &client, &[]).await;
    let basic = |id: &str, secret: &str| {
        use base64::Engine;
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Basic {enc}")).unwrap(),
        );
        h
    };
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("code_verifier", VERIFIER),
    ];
    // Wrong secret: 401 with a Basic challenge; no secret at all: 401.
    let r = reply(
        app.http
            .post(format!("{}/token", app.base))
            .headers(basic(&client, "ags_wrong"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
    assert!(
        r.header("www-authenticate").starts_with("Basic"),
        "{:?}",
        r.headers
    );
    let mut with_id = form.to_vec();
    with_id.push(("client_id", &client));
    oauth_error(&token(&app, &with_id).await, 401, "invalid_client");
    let r = reply(
        app.http
            .post(format!("{}/token", app.base))
            .headers(basic(&client, &secret))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
    // client_secret_post works too.
    let mut post = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    post.push(("client_id", &client));
    post.push(("client_secret", &secret));
    let r = token(&app, &post).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Revocation (RFC 7009): an unknown token is fine; a known one stops working.
    let revoke = |t: String| {
        let h = basic(&client, &secret);
        let http = app.http.clone();
        let url = format!("{}/revoke", app.base);
        async move {
            reply(
                http.post(url)
                    .headers(h)
                    .form(&[("token", t)])
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    assert_eq!(revoke("agt_unknown".into()).await.status, 200);
    let access2 = r.json()["access_token"].as_str().unwrap().to_owned();
    mcp_session(&app, &access2).await;
    assert_eq!(revoke(access2.clone()).await.status, 200);
    assert_eq!(mcp(&app, &access2, None, json!({})).await.0.status, 401);
    // Revoking the refresh token ends its family.
    let refresh2 = r.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(revoke(refresh2.clone()).await.status, 200);
    oauth_error(
        &token(
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh2),
                ("client_id", &client),
                ("client_secret", &secret),
            ],
        )
        .await,
        400,
        "invalid_grant",
    );
    drop(access);
    // The owner deletes the client: 401 invalid_client at /token, an error page at /authorize.
    let q = consent(&app, &client, &[]).await;
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/oauth/clients/{client}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("code_verifier", VERIFIER),
    ];
    let r = reply(
        app.http
            .post(format!("{}/token", app.base))
            .headers(basic(&client, &secret))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
    let r = authorize(&app, &authorize_query(&client, &[])).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("location"), "");
    app.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/oauth/clients/{client}"),
        Some(&app.admin),
        None,
    )
    .await
    .expect_error(404, "client_not_found");
}

#[tokio::test]
async fn registration_refuses_bad_redirects_huge_bodies_and_clients_past_the_cap() {
    let app = spawn_app_with("[oauth]\nmax_clients = 3\n").await;
    for (body, code) in [
        (
            json!({"redirect_uris": ["http://example.com/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1.nip.io/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://x/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (json!({}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": "http://127.0.0.1/cb"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (json!([1, 2]), "invalid_client_metadata"),
    ] {
        let r = register(&app, body.clone()).await;
        oauth_error(&r, 400, code);
    }
    let huge = json!({"redirect_uris": [REDIRECT], "client_name": "x".repeat(100 * 1024)});
    let r = register(&app, huge).await;
    assert_eq!(r.status, 413, "{}", r.text);
    let not_json = reply(
        app.http
            .post(format!("{}/register", app.base))
            .body("redirect_uris=x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    oauth_error(&not_json, 400, "invalid_client_metadata");
    // Nothing above was stored; three fit, the fourth is refused.
    assert_eq!(
        app.get("/api/v1/oauth/clients", Some(&app.admin))
            .await
            .json()["clients"],
        json!([])
    );
    for _ in 0..3 {
        public_client(&app).await;
    }
    let r = register(&app, json!({"redirect_uris": [REDIRECT]})).await;
    oauth_error(&r, 403, "too_many_clients");
    // Clients survive a restart.
    let app = app.restart().await;
    assert_eq!(
        app.get("/api/v1/oauth/clients", Some(&app.admin))
            .await
            .json()["clients"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn mcp_checks_host_and_origin_before_credentials_and_scopes_per_tool() {
    let app =
        spawn_app_with("[[rules]]\naction = \"deny\"\nkind = \"shell\"\npattern = \"rm *\"\n")
            .await;
    set_passphrase(&app).await;
    // Bad Host or Origin: refused before authentication (no challenge), on every method.
    for host in ["evil.example:80", "127.0.0.1:1"] {
        let req = app
            .http
            .post(format!("{}/mcp", app.base))
            .header("host", host)
            .json(&json!({}));
        let r = reply(req.send().await.unwrap()).await;
        assert_eq!(r.status, 421, "{host}");
        assert_eq!(r.header("www-authenticate"), "");
    }
    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let r = reply(
            app.http
                .request(method.clone(), format!("{}/mcp", app.base))
                .header("origin", "http://evil.example")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 403, "{method}");
        assert_eq!(r.header("www-authenticate"), "", "{method}");
    }
    // A bearer token in the query string is refused.
    let (static_token, _) = app.create_token("agent", &["request"], json!("1d")).await;
    let r = app
        .get(&format!("/mcp?access_token={static_token}"), None)
        .await;
    r.expect_error(400, "token_in_url");
    // The static-token path: an API token with `request` works on /mcp.
    let session = mcp_session(&app, &static_token).await;
    let out = call_tool(
        &app,
        &static_token,
        &session,
        "request_permission",
        json!({"kind": "shell", "command": "rm -rf /"}),
    )
    .await;
    assert_eq!(out["status"], "denied", "{out}");
    // …but an approver tool needs `approve`: 403 naming every scope to ask for.
    let (r, _) = mcp(
        &app,
        &static_token,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "reply", "arguments": {}}}),
    )
    .await;
    r.expect_error(403, "insufficient_scope");
    assert_eq!(
        r.header("www-authenticate"),
        format!(
            r#"Bearer error="insufficient_scope", scope="approve request", resource_metadata="{}/.well-known/oauth-protected-resource/mcp""#,
            app.base
        )
    );
    // A `read`-only token cannot use /mcp at all.
    let (reader, _) = app.create_token("reader", &["read"], json!("1d")).await;
    let (r, _) = mcp(&app, &reader, None, json!({})).await;
    r.expect_error(403, "insufficient_scope");
    // Another credential cannot ride on this session.
    let (other, _) = app.create_token("other", &["request"], json!("1d")).await;
    let (r, _) = mcp(
        &app,
        &other,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}),
    )
    .await;
    r.expect_error(404, "session_not_found");
    // An OAuth token issued for the 127.0.0.1 resource is refused under another host name.
    let (_, t) = signed_in(&app, "request").await;
    let access = t["access_token"].as_str().unwrap();
    let r = reply(
        app.http
            .post(format!("{}/mcp", app.base))
            .header("host", format!("localhost:{}", app.addr.port()))
            .bearer_auth(access)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(
        r.header("www-authenticate")
            .contains(r#"error="invalid_token""#)
    );
}

#[tokio::test]
async fn approval_prompt_speaks_claude_codes_contract_and_a_person_answers_through_mcp() {
    let app = spawn_app_with(
        "[[rules]]\naction = \"allow\"\nkind = \"shell\"\npattern = \"git status\"\n\n\
         [[rules]]\naction = \"deny\"\nkind = \"shell\"\npattern = \"rm *\"\n",
    )
    .await;
    set_passphrase(&app).await;
    let (_, agent) = signed_in(&app, "request").await;
    let agent = agent["access_token"].as_str().unwrap().to_owned();
    let session = mcp_session(&app, &agent).await;
    let input = json!({"command": "git status", "description": "look"});
    let out = call_tool(
        &app,
        &agent,
        &session,
        "approval_prompt",
        json!({"tool_name": "Bash", "input": input, "tool_use_id": "tu_1"}),
    )
    .await;
    assert_eq!(out, json!({"behavior": "allow", "updatedInput": input}));
    let out = call_tool(
        &app,
        &agent,
        &session,
        "approval_prompt",
        json!({"tool_name": "Bash", "input": {"command": "rm -rf ~"}}),
    )
    .await;
    assert_eq!(out["behavior"], "deny", "{out}");
    assert!(out["message"].as_str().unwrap().contains("policy"), "{out}");
    // Nothing decides this one: it waits for a person, who answers through MCP with `approve`.
    let (_, approver) = signed_in(&app, "approve").await;
    let approver = approver["access_token"].as_str().unwrap().to_owned();
    let approver_session = mcp_session(&app, &approver).await;
    let asking = {
        let app_base = app.base.clone();
        let http = app.http.clone();
        let agent = agent.clone();
        let session = session.clone();
        tokio::spawn(async move {
            http.post(format!("{app_base}/mcp"))
                .bearer_auth(agent)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", session)
                .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
                    "name": "approval_prompt",
                    "arguments": {"tool_name": "mcp__github__create_issue", "input": {"title": "x"}}}}))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    let pending = crate::harness::eventually("the prompt is pending", || async {
        let pending = call_tool(
            &app,
            &approver,
            &approver_session,
            "list_pending",
            json!({}),
        )
        .await;
        pending["pending"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
            .then_some(pending)
    })
    .await;
    let id = pending["pending"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{pending}"))
        .to_owned();
    assert_eq!(pending["pending"][0]["kind"], "tool");
    // The agent cannot answer its own request (it lacks `approve` anyway: 403 at the HTTP layer).
    let out = call_tool(
        &app,
        &approver,
        &approver_session,
        "reply",
        json!({"id": id, "decision": "deny", "message": "not now"}),
    )
    .await;
    assert_eq!(out["permission"]["status"], "denied", "{out}");
    let text = asking.await.unwrap();
    assert!(
        text.contains(r#"\"behavior\":\"deny\""#) && text.contains("not now"),
        "{text}"
    );
    // Answering again: a tool error carrying the conflict, not a crash.
    let (r, v) = mcp(
        &app,
        &approver,
        Some(&approver_session),
        json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
        "params": {"name": "reply", "arguments": {"id": id, "decision": "allow"}}}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(v["result"]["isError"], true, "{v}");
    // The audit names the OAuth client's token as approver.
    let audit = app.get("/api/v1/audit", Some(&app.admin)).await.text;
    assert!(audit.contains("oauth.Test"), "{audit}");
}

#[tokio::test]
async fn an_mcp_event_stream_ends_when_its_token_is_revoked() {
    let app = spawn_app().await;
    set_passphrase(&app).await;
    let (client, t) = signed_in(&app, "request").await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let session = mcp_session(&app, &access).await;
    let mut stream = app
        .http
        .get(format!("{}/mcp", app.base))
        .bearer_auth(&access)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let r = token_revoke(&app, &client, &access).await;
    assert_eq!(r.status, 200);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the MCP stream is still open after revocation"
    );
}

async fn token_revoke(app: &TestApp, client: &str, token: &str) -> Reply {
    reply(
        app.http
            .post(format!("{}/revoke", app.base))
            .form(&[("token", token), ("client_id", client)])
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn clients_never_authorized_are_capped_apart_and_expire() {
    // A web page can register (the endpoint is open to CORS): such clients have a cap of their
    // own (20 by default) and are deleted an hour after registering unless authorized.
    let app = spawn_app().await;
    set_passphrase(&app).await;
    let used = public_client(&app).await;
    let q = consent(&app, &used, &[]).await;
    assert!(q.contains_key("code"));
    for _ in 0..20 {
        public_client(&app).await;
    }
    let r = register(&app, json!({"redirect_uris": [REDIRECT]})).await;
    oauth_error(&r, 403, "too_many_clients");
    let live = |app: &TestApp| {
        let (http, url, admin) = (
            app.http.clone(),
            format!("{}/api/v1/oauth/clients", app.base),
            app.admin.clone(),
        );
        async move {
            let v: Value = http
                .get(url)
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["clients"].as_array().unwrap().len()
        }
    };
    assert_eq!(
        live(&app).await,
        21,
        "the authorized one did not count against the 20"
    );
    app.clock.advance(Duration::from_secs(3601));
    public_client(&app).await;
    assert_eq!(
        live(&app).await,
        2,
        "the 20 never authorized expired; the authorized one stays"
    );
}

#[tokio::test]
async fn every_change_is_an_entry_in_the_audit_chain_without_its_secrets() {
    let app = spawn_app().await;
    set_passphrase(&app).await;
    set_passphrase(&app).await;
    // A token, created and revoked.
    let (secret, token_id) = app.create_token("ci", &["read"], json!("1d")).await;
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{token_id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The owner signs in and out.
    let cookie = owner_cookie(&app).await;
    let inbox = app
        .http
        .get(format!("{}/", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = r#"<meta name="csrf-token" content=""#;
    let start = inbox.find(marker).unwrap() + marker.len();
    let csrf = &inbox[start..start + inbox[start..].find('"').unwrap()];
    let out = app
        .http
        .post(format!("{}/logout", app.base))
        .header("origin", &app.base)
        .header("cookie", &cookie)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert!(
        out.status().is_success() || out.status().is_redirection(),
        "{}",
        out.status()
    );
    // A pairing link, used, then revoked.
    let pairing = app
        .post(
            "/api/v1/pairings",
            Some(&app.admin),
            json!({"name": "phone"}),
        )
        .await
        .json();
    let url = pairing["url"].as_str().unwrap().to_owned();
    let code = url.rsplit('/').next().unwrap().to_owned();
    let used = app
        .http
        .post(format!("{}/pair/{code}", app.base))
        .header("origin", &app.base)
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 303);
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/pairings/{}", pairing["id"].as_str().unwrap()),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // OAuth: a client registered, consent remembered and granted, a code replayed (its family
    // revoked), the consent revoked, the client deleted.
    let client = public_client(&app).await;
    let page = authorize(&app, &authorize_query(&client, &[])).await;
    let (authz, csrf) = form_fields(&page.text);
    let r = answer(
        &app,
        &[
            ("authz", &authz),
            ("csrf", &csrf),
            ("passphrase", PASSPHRASE),
            ("decision", "approve"),
            ("remember", "yes"),
        ],
    )
    .await;
    let oauth_code = query_of(&r.header("location"))["code"].clone();
    assert_eq!(exchange(&app, &client, &oauth_code).await.status, 200);
    assert_eq!(exchange(&app, &client, &oauth_code).await.status, 400);
    let grants = app
        .get("/api/v1/oauth/grants", Some(&app.admin))
        .await
        .json();
    let grant = grants["grants"][0]["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/api/v1/oauth/grants/{grant}"),
        format!("/api/v1/oauth/clients/{client}"),
    ] {
        let r = app
            .request(reqwest::Method::DELETE, &path, Some(&app.admin), None)
            .await;
        assert!(r.status.is_success(), "{path}: {}", r.text);
    }

    let audit = app.get("/api/v1/audit?limit=1000", Some(&app.admin)).await;
    let text = audit.text.clone();
    let events: Vec<String> = audit.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    for event in [
        "token.created",
        "token.revoked",
        "passphrase.set",
        "passphrase.changed",
        "session.signed_in",
        "session.signed_out",
        "pairing.created",
        "pairing.redeemed",
        "pairing.revoked",
        "oauth.client_registered",
        "oauth.consent_remembered",
        "oauth.consent_granted",
        "oauth.family_revoked",
        "oauth.consent_revoked",
        "oauth.client_deleted",
    ] {
        assert!(
            events.iter().any(|e| e == event),
            "{event} missing from {events:?}"
        );
    }
    for leaked in [
        secret.as_str(),
        PASSPHRASE,
        &code,
        &oauth_code,
        &cookie[17..],
    ] {
        assert!(!text.contains(leaked), "a secret is in the audit log");
    }
    let verified = app.get("/api/v1/audit/verify", Some(&app.admin)).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.json()["ok"], true, "{}", verified.text);
    assert_eq!(verified.json()["entries"], 16);
}

#[tokio::test]
async fn a_hostile_mcp_client_cannot_release_its_own_request_through_a_rule_or_write_a_wide_one() {
    let app = spawn_app().await;
    set_passphrase(&app).await;
    // An MCP client the owner granted both `request` and `approve` (as a careless consent
    // would), and an ordinary agent.
    let (_, hostile) = signed_in(&app, "request approve").await;
    let hostile = hostile["access_token"].as_str().unwrap().to_owned();
    let session = mcp_session(&app, &hostile).await;
    let (agent, _) = app.create_token("agent", &["request"], json!("1d")).await;
    let ask = json!({"kind": "shell", "command": "npm publish", "agent": "opencode",
                     "workspace": "/tmp", "session": "s1", "wait": 0});
    let own = call_tool(&app, &hostile, &session, "request_permission", ask.clone()).await;
    assert_eq!(own["status"], "pending", "{own}");
    let mut theirs = ask.clone();
    theirs.as_object_mut().unwrap().remove("wait");
    let theirs = app
        .post("/api/v1/permissions", Some(&agent), theirs)
        .await
        .json();
    assert_eq!(theirs["status"], "pending", "{theirs}");
    let tool_error = |v: &Value| -> String {
        assert_eq!(v["result"]["isError"], true, "{v}");
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A wide pattern is refused over MCP as over the API.
    let (_, v) = mcp(
        &app,
        &hostile,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "reply",
               "arguments": {"id": theirs["id"], "decision": "allow", "remember": "always",
                             "pattern": "*"}}}),
    )
    .await;
    assert!(tool_error(&v).contains("wider"), "{v}");
    // "Always" on the agent's identical request does not release the client's own.
    let out = call_tool(
        &app,
        &hostile,
        &session,
        "reply",
        json!({"id": theirs["id"], "decision": "allow", "remember": "always"}),
    )
    .await;
    assert_eq!(out["resolved"], json!([]), "{out}");
    let again = call_tool(&app, &hostile, &session, "request_permission", ask).await;
    assert_eq!(
        again["status"], "pending",
        "the rule is bound to the agent: {again}"
    );
    let own_now = app
        .get(
            &format!("/api/v1/permissions/{}", own["id"].as_str().unwrap()),
            Some(&app.admin),
        )
        .await
        .json();
    assert_eq!(own_now["status"], "pending", "{own_now}");
}

/// Each upstream MCP server (`/mcp/{name}`) is its own protected resource: its metadata names
/// it, the consent page names it, and a token bound to it is refused on `/mcp` and on the other
/// upstreams (and the other way round).
#[tokio::test]
async fn tokens_for_an_upstream_mcp_server_are_bound_to_it_alone() {
    let app = spawn_app_with(
        "[[mcp_server]]\nname = \"a\"\ncommand = \"cat\"\n\n[[mcp_server]]\nname = \"b\"\ncommand = \"cat\"\n",
    )
    .await;
    set_passphrase(&app).await;
    let meta = app
        .get("/.well-known/oauth-protected-resource/mcp/a", None)
        .await;
    assert_eq!(meta.status, 200, "{}", meta.text);
    assert_eq!(meta.json()["resource"], format!("{}/mcp/a", app.base));
    assert_eq!(meta.header("access-control-allow-origin"), "*");
    app.get("/.well-known/oauth-protected-resource/mcp/zzz", None)
        .await
        .expect_error(404, "unknown_mcp_server");

    // A 401 on /mcp/a points at its own metadata.
    let r = app.post("/mcp/a", None, json!({})).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .contains("/.well-known/oauth-protected-resource/mcp/a\""),
        "{}",
        r.header("www-authenticate")
    );

    let resource_a = format!("{}/mcp/a", app.base);
    let client = public_client(&app).await;
    let page = authorize(
        &app,
        &authorize_query(&client, &[("scope", "request"), ("resource", &resource_a)]),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("For the MCP server"), "{}", page.text);
    let q = consent(
        &app,
        &client,
        &[("scope", "request"), ("resource", &resource_a)],
    )
    .await;
    let r = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &client),
            ("resource", &resource_a),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let for_a = r.json()["access_token"].as_str().unwrap().to_owned();

    // Accepted on /mcp/a (past authentication), refused on /mcp/b and /mcp.
    let r = app.get("/mcp/a", Some(&for_a)).await;
    assert!(
        ![401, 403].contains(&r.status.as_u16()),
        "{} {}",
        r.status,
        r.text
    );
    for elsewhere in ["/mcp/b", "/mcp"] {
        let r = app.post(elsewhere, Some(&for_a), json!({})).await;
        assert_eq!(r.status, 401, "{elsewhere}: {}", r.text);
        assert!(r.text.contains("issued for"), "{elsewhere}: {}", r.text);
    }
    // A token for /mcp is refused on /mcp/a.
    let (mcp_client, for_mcp) = signed_in(&app, "request").await;
    let r = app
        .post("/mcp/a", for_mcp["access_token"].as_str(), json!({}))
        .await;
    assert_eq!(r.status, 401, "{}", r.text);

    // No resource names an unknown upstream.
    let r = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", for_mcp["refresh_token"].as_str().unwrap()),
            ("client_id", &mcp_client),
            ("resource", &format!("{}/mcp/zzz", app.base)),
        ],
    )
    .await;
    oauth_error(&r, 400, "invalid_target");
}
