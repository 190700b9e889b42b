//! Browser-facing safety on every route: Host (421), Origin (403), credentials in the URL (400),
//! oversized bodies (413), and the response headers.

use reqwest::Method;
use serde_json::json;

use crate::harness::spawn_app;

#[tokio::test]
async fn a_foreign_host_is_refused_on_every_route_even_with_a_good_token() {
    let app = spawn_app().await;
    let port = app.addr.port();
    for host in [
        "evil.example.com".to_owned(),
        format!("evil.example.com:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        "localhost".to_owned(),
        format!("127.0.0.1.nip.io:{port}"),
    ] {
        for path in ["/healthz", "/api/v1/whoami", "/api/v1/tokens", "/nope"] {
            let (code, body) = app
                .raw(&format!(
                    "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                    app.admin
                ))
                .await;
            assert_eq!(code, 421, "{host} {path}");
            assert!(body.contains("misdirected_request"), "{body}");
        }
    }
    for host in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (code, _) = app
            .raw(&format!(
                "GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(code, 200, "{host}");
    }
    // HTTP/1.0 without a Host header.
    let (code, _) = app.raw("GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(code, 421);
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let create = |origin: Option<String>, name: &str, fetch_site: Option<&'static str>| {
        let mut req = app
            .http
            .post(format!("{}/api/v1/tokens", app.base))
            .bearer_auth(&app.admin)
            .json(&json!({"name": name, "scopes": ["read"]}));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = fetch_site {
            req = req.header("sec-fetch-site", s);
        }
        req.send()
    };
    for (origin, site) in [
        (Some("http://evil.example.com".to_owned()), None),
        (Some("null".to_owned()), None),
        (Some(format!("http://localhost:{}", app.addr.port())), None), // another origin than the Host
        (None, Some("cross-site")),
    ] {
        let resp = create(origin.clone(), "crossed", site).await.unwrap();
        assert_eq!(resp.status(), 403, "{origin:?} {site:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "cross_origin");
    }
    assert!(!app.token_names().await.contains(&"crossed".to_owned()));
    // Our own origin, and no origin at all (CLI, agents), are fine.
    let resp = create(Some(app.base.clone()), "same-origin", Some("same-origin"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = create(None, "no-origin", None).await.unwrap();
    assert_eq!(resp.status(), 201);
    // A cross-origin GET changes nothing and is allowed to read (CORS keeps the answer from the page).
    let resp = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("origin", "http://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_token_in_the_query_string_is_never_accepted() {
    let app = spawn_app().await;
    for path in [
        format!("/api/v1/whoami?access_token={}", app.admin),
        format!("/api/v1/whoami?x=1&access%5Ftoken={}", app.admin),
        format!("/healthz?access_token={}", app.admin),
    ] {
        app.get(&path, None).await.expect_error(400, "token_in_url");
    }
    // Even alongside a valid header: the secret in the URL is the problem.
    app.get(
        &format!("/api/v1/whoami?access_token={}", app.admin),
        Some(&app.admin),
    )
    .await
    .expect_error(400, "token_in_url");
    let reply = app
        .request(
            Method::POST,
            &format!("/api/v1/tokens?access_token={}", app.admin),
            None,
            Some(json!({"name": "via-query", "scopes": ["read"]})),
        )
        .await;
    reply.expect_error(400, "token_in_url");
    assert!(!app.token_names().await.contains(&"via-query".to_owned()));
}

#[tokio::test]
async fn oversized_bodies_are_413_before_auth_and_responses_carry_safety_headers() {
    let app = spawn_app().await;
    let (code, body) = app
        .raw(&format!(
            "POST /api/v1/tokens HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n{{}}",
            app.addr
        ))
        .await;
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("payload_too_large"));

    let reply = app.get("/api/v1/whoami", Some(&app.admin)).await;
    assert_eq!(reply.header("cache-control"), "no-store");
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
    assert_eq!(reply.header("content-type"), "application/json");
}

#[tokio::test]
async fn a_request_with_too_many_headers_is_refused_with_431() {
    let app = spawn_app().await;
    let many: String = (0..agentgate::http::serve::MAX_HEADERS + 1)
        .map(|i| format!("X-Filler-{i}: {i}\r\n"))
        .collect();
    let (code, _) = app
        .raw(&format!(
            "POST /api/v1/tokens HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n{many}Content-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{{\"name\":\"many\"}}",
            app.addr, app.admin
        ))
        .await;
    assert_eq!(code, 431);
    assert!(!app.token_names().await.contains(&"many".to_owned()));
    // Just under the limit is served.
    let fewer: String = (0..agentgate::http::serve::MAX_HEADERS - 8)
        .map(|i| format!("X-Filler-{i}: {i}\r\n"))
        .collect();
    let (code, body) = app
        .raw(&format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\n{fewer}Connection: close\r\n\r\n",
            app.addr
        ))
        .await;
    assert_eq!(code, 200, "{body}");
}
