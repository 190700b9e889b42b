//! Tokens over the API: created with the secret shown once, listed without it, stored only as a
//! hash, revoked and expired on the very next request, surviving a restart; and every bad input
//! refused with nothing written.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestApp, spawn_app};

/// Every byte of every file in the data dir, the SQLite file, its WAL and SHM included.
fn data_dir_bytes(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(app.dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_created_token_works_its_secret_is_shown_once_and_never_stored() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/api/v1/tokens",
            Some(&app.admin),
            json!({"name": "laptop", "scopes": ["approve", "request"], "expires_in": "12h"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let created = reply.json();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("agt_") && secret.len() >= 4 + 32,
        "{secret}"
    );
    assert_eq!(created["name"], "laptop");
    assert_eq!(created["scopes"], json!(["approve", "request"]));
    assert_eq!(created["expires_at"], "2027-01-15T20:00:00Z");

    let me = app.get("/api/v1/whoami", Some(&secret)).await;
    assert_eq!(me.status, 200);
    let me = me.json();
    assert_eq!(me["name"], "laptop");
    assert_eq!(me["id"], created["id"]);
    assert_eq!(me["scopes"], json!(["approve", "request"]));
    assert_eq!(me["expires_at"], "2027-01-15T20:00:00Z");

    let list = app.get("/api/v1/tokens", Some(&app.admin)).await;
    assert!(
        !list.text.contains(&secret),
        "the list never shows a secret"
    );
    assert!(!list.text.contains(&app.admin));
    let tokens = list.json()["tokens"].as_array().unwrap().clone();
    let laptop = tokens.iter().find(|t| t["name"] == "laptop").unwrap();
    for field in [
        "id",
        "name",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
    ] {
        assert!(laptop.get(field).is_some(), "{field} listed");
    }
    assert!(laptop.get("token").is_none() && laptop.get("secret_hash").is_none());
    // Use is recorded off the request path; it lands within moments.
    crate::harness::eventually("the token's use is recorded", || async {
        let list = app.get("/api/v1/tokens", Some(&app.admin)).await.json();
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "laptop" && t["last_used_at"].is_string())
            .then_some(())
    })
    .await;

    // Neither secret is anywhere in the database files, only its SHA-256.
    for (name, bytes) in data_dir_bytes(&app) {
        if name == "admin.token" {
            continue;
        }
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{name} holds the secret"
        );
        assert!(
            !contains(&bytes, app.admin.as_bytes()),
            "{name} holds the owner secret"
        );
        assert!(
            !contains(&bytes, &secret.as_bytes()[4..20]),
            "{name} holds part of the secret"
        );
    }
}

#[tokio::test]
async fn revocation_and_expiry_take_effect_on_the_very_next_request() {
    let app = spawn_app().await;
    let (secret, id) = app.create_token("short", &["read"], json!(60)).await;
    let (other, _) = app.create_token("other", &["read"], json!("never")).await;
    assert_eq!(app.get("/api/v1/whoami", Some(&secret)).await.status, 200);

    app.clock.advance(Duration::from_secs(59));
    assert_eq!(app.get("/api/v1/whoami", Some(&secret)).await.status, 200);
    app.clock.advance(Duration::from_secs(1));
    let reply = app.get("/api/v1/whoami", Some(&secret)).await;
    reply.expect_error(401, "unauthorized");
    assert!(reply.text.contains("expired"), "{}", reply.text);
    let listed = app.get("/api/v1/tokens", Some(&app.admin)).await.json();
    let short = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(short["expired"], true);

    // `never` means never.
    app.clock.advance(Duration::from_secs(20 * 365 * 86_400));
    assert_eq!(app.get("/api/v1/whoami", Some(&other)).await.status, 200);

    let other_id = app.get("/api/v1/whoami", Some(&other)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app
        .request(
            Method::DELETE,
            &format!("/api/v1/tokens/{other_id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["name"], "other");
    let reply = app.get("/api/v1/whoami", Some(&other)).await;
    reply.expect_error(401, "unauthorized");
    assert!(
        reply
            .header("www-authenticate")
            .starts_with(r#"Bearer realm="agentgate""#)
    );
    assert!(reply.text.contains("revoked"), "{}", reply.text);
    // Revoking again: it is no longer live.
    app.request(
        Method::DELETE,
        &format!("/api/v1/tokens/{other_id}"),
        Some(&app.admin),
        None,
    )
    .await
    .expect_error(404, "token_not_found");
    // A revoked name can be reused.
    app.create_token("other", &["read"], json!("1d")).await;
}

#[tokio::test]
async fn tokens_survive_a_restart_and_the_owner_token_is_not_recreated() {
    let app = spawn_app().await;
    let (secret, _) = app.create_token("persisted", &["write"], json!("7d")).await;
    let (revoked, revoked_id) = app.create_token("gone", &["read"], json!("7d")).await;
    app.request(
        Method::DELETE,
        &format!("/api/v1/tokens/{revoked_id}"),
        Some(&app.admin),
        None,
    )
    .await;
    let owner = app.admin.clone();
    let app = app.restart().await;
    assert_eq!(app.admin, owner, "the owner token file is kept");
    let me = app.get("/api/v1/whoami", Some(&secret)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["scopes"], json!(["write"]));
    assert_eq!(app.get("/api/v1/whoami", Some(&owner)).await.status, 200);
    app.get("/api/v1/whoami", Some(&revoked))
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(app.token_names().await, vec!["owner", "persisted"]);
}

#[tokio::test]
async fn bad_credentials_are_401_with_the_bearer_challenge() {
    let app = spawn_app().await;
    let unknown = format!("agt_{}", "0".repeat(48));
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("basic", Some("Basic b3duZXI6cGFzcw==".into())),
        ("bare bearer", Some("Bearer".into())),
        ("garbled", Some("Bearer !!!not-a-token!!!".into())),
        ("unknown", Some(format!("Bearer {unknown}"))),
        ("owner token as basic", Some(format!("Basic {}", app.admin))),
        (
            "wrong prefix",
            Some(format!("Bearer xyz_{}", &app.admin[4..])),
        ),
    ];
    for (what, header) in cases {
        let mut req = app.http.get(format!("{}/api/v1/whoami", app.base));
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with(r#"Bearer realm="agentgate""#),
            "{what}: {challenge}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{what}");
    }
    // Non-UTF-8 bytes in the header.
    let (code, body) = app
        .raw(&format!(
            "GET /api/v1/whoami HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer \u{e9}\r\nConnection: close\r\n\r\n",
            app.addr
        ))
        .await;
    assert_eq!(code, 401, "{body}");
}

#[tokio::test]
async fn bad_token_requests_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let (reader, reader_id) = app
        .create_token(
            "reader",
            &["read", "approve", "write", "execute", "request"],
            json!("1d"),
        )
        .await;
    let before = app.token_names().await;

    let cases = [
        (
            json!({"name": "x", "scopes": ["root"]}),
            400,
            "invalid_request",
            Some("scopes[0]"),
        ),
        (
            json!({"name": "x", "scopes": ["read"], "expires_in": "soon"}),
            400,
            "invalid_request",
            Some("expires_in"),
        ),
        (
            json!({"name": "x", "scopes": ["read"], "expires_in": 0}),
            400,
            "invalid_request",
            Some("expires_in"),
        ),
        (
            json!({"name": "x", "scopes": ["read"], "expires_in": -5}),
            400,
            "invalid_request",
            Some("expires_in"),
        ),
        (
            json!({"name": "x", "scopes": ["read"], "expires_in": "3651d"}),
            400,
            "invalid_request",
            Some("expires_in"),
        ),
        (
            json!({"name": "", "scopes": ["read"]}),
            400,
            "invalid_request",
            Some("name"),
        ),
        (
            json!({"name": "   ", "scopes": ["read"]}),
            400,
            "invalid_request",
            Some("name"),
        ),
        (
            json!({"name": "tok_fake", "scopes": ["read"]}),
            400,
            "invalid_request",
            Some("name"),
        ),
        (
            json!({"name": "x", "scopes": []}),
            400,
            "invalid_request",
            Some("scopes"),
        ),
        (json!({"name": "x"}), 400, "invalid_request", None),
        (
            json!({"name": "x", "scopes": ["read"], "admin": true}),
            400,
            "invalid_request",
            Some("admin"),
        ),
        (
            json!({"name": 7, "scopes": ["read"]}),
            400,
            "invalid_request",
            Some("name"),
        ),
        (json!(["name", "x"]), 400, "invalid_request", None),
        (
            json!({"name": "reader", "scopes": ["read"]}),
            409,
            "name_taken",
            None,
        ),
    ];
    for (body, status, code, field) in cases {
        let reply = app
            .post("/api/v1/tokens", Some(&app.admin), body.clone())
            .await;
        let err = reply.expect_error(status, code);
        if let Some(field) = field {
            assert_eq!(err["field"], field, "{body}: {}", reply.text);
        }
    }
    // An unknown scope lists the valid ones.
    let reply = app
        .post(
            "/api/v1/tokens",
            Some(&app.admin),
            json!({"name": "x", "scopes": ["superuser"]}),
        )
        .await;
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    for valid in ["admin", "write", "read", "approve", "execute", "request"] {
        assert!(message.contains(&format!("`{valid}`")), "{message}");
    }

    // Bodies that are not JSON, or too big.
    let post_raw = |content_type: &'static str, body: Vec<u8>| {
        app.http
            .post(format!("{}/api/v1/tokens", app.base))
            .bearer_auth(&app.admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for (ct, body, status, code) in [
        (
            "text/plain",
            br#"{"name":"x","scopes":["read"]}"#.to_vec(),
            400,
            "unsupported_content_type",
        ),
        (
            "application/json",
            b"{not json".to_vec(),
            400,
            "malformed_json",
        ),
        ("application/json", b"".to_vec(), 400, "malformed_json"),
        (
            "application/json",
            br#"{"name":"x","scopes":["read"]} trailing"#.to_vec(),
            400,
            "malformed_json",
        ),
        (
            "application/json",
            vec![b' '; 2 * 1024 * 1024],
            413,
            "payload_too_large",
        ),
    ] {
        let resp = post_raw(ct, body).await.unwrap();
        assert_eq!(resp.status(), status, "{ct} {code}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], code);
    }

    // A non-admin, however broad otherwise, can neither create nor revoke.
    app.post(
        "/api/v1/tokens",
        Some(&reader),
        json!({"name": "mine", "scopes": ["read"]}),
    )
    .await
    .expect_error(403, "insufficient_scope");
    app.request(
        Method::DELETE,
        &format!("/api/v1/tokens/{reader_id}"),
        Some(&reader),
        None,
    )
    .await
    .expect_error(403, "insufficient_scope");
    // Unknown id.
    app.request(
        Method::DELETE,
        "/api/v1/tokens/tok_ffffffffffffffff",
        Some(&app.admin),
        None,
    )
    .await
    .expect_error(404, "token_not_found");
    // The last live admin token cannot be revoked: that would lock the owner out.
    let owner_id = app.get("/api/v1/whoami", Some(&app.admin)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.request(
        Method::DELETE,
        &format!("/api/v1/tokens/{owner_id}"),
        Some(&app.admin),
        None,
    )
    .await
    .expect_error(409, "last_admin");

    assert_eq!(app.token_names().await, before, "nothing was written");
    assert_eq!(
        app.get("/api/v1/whoami", Some(&reader)).await.status,
        200,
        "nothing was revoked"
    );
}

#[tokio::test]
async fn the_owner_passphrase_is_set_by_admin_only_and_validated() {
    let app = spawn_app().await;
    let (approver, _) = app.create_token("phone", &["approve"], json!("1d")).await;
    app.request(
        Method::PUT,
        "/api/v1/passphrase",
        Some(&approver),
        Some(json!({"passphrase": "long enough"})),
    )
    .await
    .expect_error(403, "insufficient_scope");
    let short = app
        .request(
            Method::PUT,
            "/api/v1/passphrase",
            Some(&app.admin),
            Some(json!({"passphrase": "short"})),
        )
        .await;
    assert_eq!(
        short.expect_error(400, "invalid_request")["field"],
        "passphrase"
    );
    for weak in ["              ", "Password 1 2 3", "aaaaaaaaaaaaaaaa"] {
        let refused = app
            .request(
                Method::PUT,
                "/api/v1/passphrase",
                Some(&app.admin),
                Some(json!({"passphrase": weak})),
            )
            .await;
        let body = refused.expect_error(400, "invalid_request");
        assert_eq!(body["field"], "passphrase", "{body}");
    }
    assert!(
        app.store
            .setting("owner_passphrase")
            .await
            .unwrap()
            .is_none()
    );
    app.request(
        Method::PUT,
        "/api/v1/passphrase",
        Some(&app.admin),
        Some(json!({"pass": "long enough"})),
    )
    .await
    .expect_error(400, "invalid_request");
    assert_eq!(
        app.store.setting("owner_passphrase").await.unwrap(),
        None,
        "nothing written"
    );

    let ok = app
        .request(
            Method::PUT,
            "/api/v1/passphrase",
            Some(&app.admin),
            Some(json!({"passphrase": "correct horse battery"})),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let stored = app
        .store
        .setting("owner_passphrase")
        .await
        .unwrap()
        .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains("correct horse"));
}
