//! Walks the whole scope table: for every route, no credential → 401, every insufficient scope →
//! 403 naming the required scope, every sufficient scope → through to the handler.

use agentgate::http::routes::{self, Access, Surface};
use agentgate::policy::Scope;
use serde_json::{Value, json};

use crate::harness::{TestApp, spawn_app, spawn_app_with};

/// A daemon with one upstream MCP server, so `/mcp/{server}` routes reach their handler.
async fn spawn_with_upstream() -> TestApp {
    spawn_app_with("[[mcp_server]]\nname = \"s\"\ncommand = \"cat\"\n").await
}

#[tokio::test]
async fn every_route_enforces_its_scope_from_the_credential() {
    let app = spawn_with_upstream().await;
    let mut holders = Vec::new();
    for scope in Scope::ALL {
        let (secret, _) = app
            .create_token(&format!("only-{scope}"), &[scope.as_str()], json!("1d"))
            .await;
        holders.push((scope, secret));
    }
    let table = routes::table();
    assert!(table.len() >= 6, "the table lists every route");
    for route in &table {
        let path = concrete(route.path);
        let method = route.verb.method();
        let body = matches!(method.as_str(), "POST" | "PUT").then(|| json!({}));
        let what = format!("{method} {path}");

        let anonymous = app.request(method.clone(), &path, None, body.clone()).await;
        if route.access == Access::Public {
            // The OAuth endpoints answer by their RFCs (`/revoke` without a client is a 401
            // `invalid_client`); tests/it/oauth.rs covers them.
            let refused: &[u16] = if route.surface == Surface::OAuth {
                &[404, 405]
            } else {
                &[401, 403, 404, 405]
            };
            assert!(
                !refused.contains(&anonymous.status.as_u16()),
                "{what}: {} {}",
                anonymous.status,
                anonymous.text
            );
            if method == reqwest::Method::GET && route.path != "/authorize" {
                assert_eq!(anonymous.status, 200, "{what}: {}", anonymous.text);
            }
        } else if route.surface == Surface::Page {
            // A browser without a session is sent to sign in, and brought back afterwards.
            assert_eq!(anonymous.status, 303, "{what}");
            assert_eq!(
                anonymous.header("location"),
                format!(
                    "/login?next={}",
                    form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>()
                ),
                "{what}"
            );
        } else if route.surface == Surface::Mcp {
            anonymous.expect_error(401, "unauthorized");
            assert!(
                anonymous
                    .header("www-authenticate")
                    .starts_with(r#"Bearer resource_metadata="http://"#),
                "{what}: {}",
                anonymous.header("www-authenticate")
            );
        } else {
            anonymous.expect_error(401, "unauthorized");
            assert!(
                anonymous
                    .header("www-authenticate")
                    .starts_with(r#"Bearer realm="agentgate""#),
                "{what}"
            );
        }

        for (held, secret) in &holders {
            if route.path == "/api/v1/events" {
                // An event stream never ends: check the status and hang up.
                let resp = app
                    .http
                    .get(format!("{}{path}", app.base))
                    .bearer_auth(secret)
                    .send()
                    .await
                    .unwrap();
                let allowed = match route.access {
                    Access::Scope(required) => held.implies(required),
                    _ => true,
                };
                assert_eq!(resp.status() == 200, allowed, "{what} with {held}");
                assert_eq!(resp.status() == 403, !allowed, "{what} with {held}");
                continue;
            }
            let reply = app
                .request(method.clone(), &path, Some(secret), body.clone())
                .await;
            let sufficient = route.access.allows(&[*held].into_iter().collect());
            if sufficient {
                assert!(
                    ![401, 403].contains(&reply.status.as_u16()),
                    "{what} with {held}: {} {}",
                    reply.status,
                    reply.text
                );
                // It reached the handler: not the router's own 404/405.
                let code: Value = serde_json::from_str(&reply.text).unwrap_or(Value::Null);
                assert!(
                    code["error"] != "not_found" && code["error"] != "method_not_allowed",
                    "{what}: {}",
                    reply.text
                );
            } else if route.surface == Surface::Mcp {
                let err = reply.expect_error(403, "insufficient_scope");
                assert_eq!(err["required"], "request", "{what} with {held}");
                let challenge = reply.header("www-authenticate");
                assert!(
                    challenge.starts_with(r#"Bearer error="insufficient_scope", scope=""#)
                        && route
                            .access
                            .scopes()
                            .iter()
                            .all(|s| challenge.contains(s.as_str()))
                        && challenge.contains("resource_metadata="),
                    "{what} with {held}: {challenge}"
                );
            } else if route.surface == Surface::Page {
                let Access::Scope(required) = route.access else {
                    unreachable!()
                };
                assert_eq!(reply.status, 403, "{what} with {held}");
                assert!(
                    reply
                        .text
                        .contains(&format!("this page needs `{required}`")),
                    "{what} with {held}: {}",
                    reply.text
                );
            } else {
                let Access::Scope(required) = route.access else {
                    unreachable!()
                };
                let err = reply.expect_error(403, "insufficient_scope");
                assert_eq!(err["required"], required.as_str(), "{what} with {held}");
                assert_eq!(
                    reply.header("www-authenticate"),
                    format!(r#"Bearer error="insufficient_scope", scope="{required}""#),
                    "{what} with {held}"
                );
            }
        }
    }
}

/// A route's path with its parameters filled in.
pub fn concrete(path: &str) -> String {
    path.replace("{id}", "tok_0000000000000000")
        .replace("{code}", "agp_0000")
        .replace("{file}", "app.css")
        .replace("{agent}", "claude-code")
        .replace("{gateway}", "g")
        .replace("{server}", "s")
}

#[tokio::test]
async fn paths_and_methods_outside_the_table_never_reach_a_handler() {
    let app = spawn_with_upstream().await;
    for path in [
        "/index.html",
        "/static/nope.js",
        "/api/v1",
        "/api/v1/tokens/x/y",
        "/api/v2/whoami",
        "/healthz/",
    ] {
        app.get(path, Some(&app.admin))
            .await
            .expect_error(404, "not_found");
    }
    let reply = app
        .request(
            reqwest::Method::PATCH,
            "/api/v1/tokens",
            Some(&app.admin),
            None,
        )
        .await;
    reply.expect_error(405, "method_not_allowed");
    let reply = app
        .request(
            reqwest::Method::DELETE,
            "/api/v1/whoami",
            Some(&app.admin),
            None,
        )
        .await;
    reply.expect_error(405, "method_not_allowed");
    // Every (method, path) in the table is routed: the router holds nothing else and nothing less.
    for route in routes::table() {
        let path = concrete(route.path);
        let reply = app.request(route.verb.method(), &path, None, None).await;
        assert_ne!(reply.status, 404, "{path}");
        assert_ne!(reply.status, 405, "{path}");
    }
}

#[tokio::test]
async fn a_header_claiming_scopes_changes_nothing() {
    let app = spawn_app().await;
    let (reader, _) = app.create_token("reader", &["read"], json!("1d")).await;
    for header in ["X-Agentgate-Scopes", "X-Scopes", "X-Openclaw-Scopes"] {
        let reply = app
            .http
            .get(format!("{}/api/v1/whoami", app.base))
            .bearer_auth(&reader)
            .header(header, "admin")
            .send()
            .await
            .unwrap();
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["scopes"], json!(["read"]), "{header}");

        let reply = app
            .http
            .post(format!("{}/api/v1/tokens", app.base))
            .bearer_auth(&reader)
            .header(header, "admin")
            .json(&json!({"name": "escalated", "scopes": ["admin"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 403, "{header}");
    }
    assert!(!app.token_names().await.contains(&"escalated".to_owned()));
}
