//! Real `opencode serve` (pinned in tests/agents/package-lock.json) with its Basic password,
//! driven by the scripted OpenAI-compatible model, and followed by an agentgate `[[bridge]]`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::daemon::{Daemon, eventually};
use crate::models::{self, Model};

const PASSWORD: &str = "correct-horse-opencode-4242";

pub struct Opencode {
    bin: PathBuf,
    home: PathBuf,
    project: PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
    pub url: String,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Opencode {
    pub async fn start(bin: &Path, root: &Path, model: &Model) -> Opencode {
        let home = root.join("oc-home");
        let project = root.join("proj");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(
            project.join("opencode.json"),
            json!({
                "provider": {"fake": {"npm": "@ai-sdk/openai-compatible", "name": "Fake LLM",
                    "options": {"baseURL": format!("http://{}/v1", model.addr), "apiKey": "dummy"},
                    "models": {"fake-model": {"name": "Fake Model", "tool_call": true}}}},
                "model": "fake/fake-model", "small_model": "fake/fake-model",
                "permission": {"bash": "ask", "edit": "ask"}, "autoupdate": false, "share": "disabled"
            })
            .to_string(),
        )
        .unwrap();
        let port = free_port();
        let mut oc = Opencode {
            bin: bin.to_owned(),
            home,
            project,
            port,
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        };
        oc.spawn().await;
        oc
    }

    pub fn project(&self) -> &Path {
        &self.project
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("opencode.log"))
            .unwrap();
        let child = tokio::process::Command::new(&self.bin)
            .args([
                "serve",
                "--port",
                &self.port.to_string(),
                "--hostname",
                "127.0.0.1",
            ])
            .current_dir(&self.project)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("OPENCODE_SERVER_PASSWORD", PASSWORD)
            .env("OPENCODE_DISABLE_MODELS_FETCH", "1")
            .env("OPENCODE_DISABLE_AUTOUPDATE", "1")
            .env("OPENCODE_DISABLE_DEFAULT_PLUGINS", "1")
            .env("OPENCODE_DISABLE_LSP_DOWNLOAD", "1")
            .env("OPENCODE_DISABLE_SHARE", "1")
            .env("npm_config_registry", "http://127.0.0.1:9/")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let http = self.http.clone();
        let url = self.url.clone();
        eventually("opencode answers /global/health", || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                matches!(
                    tokio::time::timeout(
                        Duration::from_secs(3),
                        http.get(format!("{url}/global/health")).basic_auth("opencode", Some(PASSWORD)).send()
                    )
                    .await,
                    Ok(Ok(r)) if r.status().is_success()
                )
            }
        })
        .await;
    }

    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .basic_auth("opencode", Some(PASSWORD));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Starts a session and prompts it (the model then asks to run its scripted command).
    pub async fn prompt(&self) -> String {
        let session = self
            .call(reqwest::Method::POST, "/session", Some(json!({})))
            .await;
        let id = session["id"].as_str().unwrap().to_owned();
        self.call(
            reqwest::Method::POST,
            &format!("/session/{id}/prompt_async"),
            Some(json!({"parts": [{"type": "text", "text": "Run the command."}]})),
        )
        .await;
        id
    }

    /// The session's bash tool parts.
    pub async fn tool_parts(&self, session: &str) -> Vec<Value> {
        let messages = self
            .call(
                reqwest::Method::GET,
                &format!("/session/{session}/message"),
                None,
            )
            .await;
        messages
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["parts"].as_array().cloned().unwrap_or_default())
            .filter(|p| p["type"] == "tool")
            .collect()
    }
}

fn config(oc: &Opencode, password_file: &Path) -> String {
    format!(
        r#"
default_timeout = 120

[[rules]]
action = "allow"
kind = "shell"
pattern = "touch auto.txt"

[[bridge]]
kind = "opencode"
name = "opencode"
url = "{}"
password_file = "{}"
"#,
        oc.url,
        password_file.display()
    )
}

async fn file_appears(path: &Path) {
    let p = path.to_owned();
    eventually(&format!("{} exists", path.display()), || {
        let p = p.clone();
        async move { p.exists() }
    })
    .await;
}

async fn bridge_connected(daemon: &Daemon) {
    eventually("the bridge is connected", || async {
        daemon.get("/api/v1/bridges").await["bridges"][0]["connected"] == true
    })
    .await;
}

pub async fn run(bin: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let model = models::start().await;
    let mut oc = Opencode::start(bin, tmp.path(), &model).await;
    let password_file = tmp.path().join("oc.password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let mut daemon = Daemon::start(&tmp.path().join("gate"), &config(&oc, &password_file)).await;
    bridge_connected(&daemon).await;
    let project = oc.project().to_owned();

    // 1. opencode asks to run a command; the request appears; approved through our API, it runs.
    model.set_command("touch approved.txt");
    let session = oc.prompt().await;
    let pending = daemon.pending().await;
    assert_eq!(pending["kind"], "shell");
    assert_eq!(pending["request"]["command"], "touch approved.txt");
    assert_eq!(pending["request"]["session"], session.as_str());
    assert_eq!(pending["request"]["agent"], "opencode");
    assert_eq!(pending["requester"], "bridge-opencode");
    daemon
        .reply(pending["id"].as_str().unwrap(), "allow", None)
        .await;
    file_appears(&project.join("approved.txt")).await;

    // 2. Denied with a message: it does not run, and opencode's tool result carries the message.
    model.set_command("touch denied.txt");
    let session = oc.prompt().await;
    let pending = daemon.pending().await;
    daemon
        .reply(
            pending["id"].as_str().unwrap(),
            "deny",
            Some("use the scratch directory"),
        )
        .await;
    eventually("opencode's tool result carries the message", || {
        let (oc, session) = (&oc, session.clone());
        async move {
            oc.tool_parts(&session)
                .await
                .iter()
                .any(|p| p.to_string().contains("use the scratch directory"))
        }
    })
    .await;
    assert!(!project.join("denied.txt").exists());

    // 3. A policy allow answers without a person.
    model.set_command("touch auto.txt");
    oc.prompt().await;
    file_appears(&project.join("auto.txt")).await;
    let decided = daemon.all().await;
    let auto = decided
        .iter()
        .find(|p| p["request"]["command"] == "touch auto.txt")
        .unwrap();
    assert_eq!(auto["decided_by"]["source"], "rule");

    // 3b. A file write: asked as a file request with opencode's diff, approved, written.
    let notes = project.join("notes.md");
    model.set_tool(
        "write",
        json!({"filePath": notes.display().to_string(), "content": "hello from the model\n"}),
    );
    oc.prompt().await;
    let pending = daemon.pending().await;
    assert_eq!(pending["kind"], "file", "{pending}");
    assert_eq!(pending["request"]["operation"], "create");
    assert_eq!(
        pending["request"]["path"],
        notes.display().to_string().as_str()
    );
    let preview = pending["request"]["content_preview"]
        .as_str()
        .unwrap_or_default();
    assert!(
        preview.contains("+hello from the model"),
        "no diff: {pending}"
    );
    daemon
        .reply(pending["id"].as_str().unwrap(), "allow", None)
        .await;
    file_appears(&notes).await;
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "hello from the model\n"
    );
    model.set_command("true");

    // 4. Answered in opencode itself: our request closes as answered upstream.
    model.set_command("touch upstream.txt");
    oc.prompt().await;
    let pending = daemon.pending().await;
    let asked = oc.call(reqwest::Method::GET, "/permission", None).await;
    let upstream_id = asked[0]["id"].as_str().unwrap().to_owned();
    oc.call(
        reqwest::Method::POST,
        &format!("/permission/{upstream_id}/reply"),
        Some(json!({"reply": "once"})),
    )
    .await;
    let id = pending["id"].as_str().unwrap().to_owned();
    eventually("our request closes as answered upstream", || {
        let id = id.clone();
        let daemon = &daemon;
        async move {
            let p = daemon.get(&format!("/api/v1/permissions/{id}")).await;
            p["status"] == "allowed" && p["decided_by"]["source"] == "upstream"
        }
    })
    .await;
    file_appears(&project.join("upstream.txt")).await;

    // 5. agentgate restarts while opencode waits: the bridge re-attaches to the same request
    //    (no second one), and the person's answer still reaches opencode.
    model.set_command("touch across-restart.txt");
    oc.prompt().await;
    let before = daemon.pending().await;
    daemon.restart().await;
    bridge_connected(&daemon).await;
    let after = daemon.pending().await;
    assert_eq!(after["id"], before["id"], "the bridge asked twice");
    daemon
        .reply(after["id"].as_str().unwrap(), "allow", None)
        .await;
    file_appears(&project.join("across-restart.txt")).await;
    let count = daemon
        .all()
        .await
        .iter()
        .filter(|p| p["request"]["command"] == "touch across-restart.txt")
        .count();
    assert_eq!(count, 1);

    // 6. opencode restarts while a request is pending: this opencode keeps pending prompts in
    //    memory only, so that prompt is gone; the bridge reconnects, closes our request as
    //    withdrawn there (never as a person's denial), and answers the prompts raised after.
    model.set_command("touch before-restart.txt");
    oc.prompt().await;
    let before = daemon.pending().await;
    oc.restart().await;
    let id = before["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = daemon.get(&format!("/api/v1/permissions/{id}")).await;
        if p["status"] == "denied" && p["decided_by"]["source"] == "upstream" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the vanished prompt's request was not withdrawn: {p}\nbridge: {}\nlog:\n{}",
            daemon.get("/api/v1/bridges").await,
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let withdrawn = daemon.get(&format!("/api/v1/permissions/{id}")).await;
    assert!(
        withdrawn["message"]
            .as_str()
            .unwrap()
            .contains("no longer has this prompt"),
        "{withdrawn}"
    );
    model.set_command("touch after-restart.txt");
    oc.prompt().await;
    let pending = daemon.pending().await;
    assert_eq!(pending["request"]["command"], "touch after-restart.txt");
    daemon
        .reply(pending["id"].as_str().unwrap(), "allow", None)
        .await;
    file_appears(&project.join("after-restart.txt")).await;

    // 7. In the inbox: the request real opencode raised is approved with a click in Chromium.
    if let Some(browser) = crate::browser() {
        let passphrase = daemon.set_passphrase().await;
        model.set_command("touch clicked.txt");
        oc.prompt().await;
        let pending = daemon.pending().await;
        assert_eq!(pending["request"]["command"], "touch clicked.txt");
        let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/browser-screenshots/opencode-prompt.png");
        let _ = std::fs::create_dir_all(shot.parent().unwrap());
        let status = tokio::process::Command::new("node")
            .arg(browser.join("approve.mjs"))
            .arg(&daemon.url)
            .arg(&passphrase)
            .arg(pending["id"].as_str().unwrap())
            .arg(&shot)
            .current_dir(&browser)
            .status()
            .await
            .unwrap();
        assert!(status.success(), "the click in the inbox failed");
        file_appears(&project.join("clicked.txt")).await;
        let decided = daemon
            .get(&format!(
                "/api/v1/permissions/{}",
                pending["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(decided["decided_by"]["source"], "person");
    }
    oc.kill().await;
}

/// The real opencode behind an agentgate gateway with the `opencode` preset: its one Basic
/// password stays with the gateway, and each client's token gets what its scopes allow.
pub async fn behind_a_gateway(bin: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let model = models::start().await;
    let mut oc = Opencode::start(bin, tmp.path(), &model).await;
    let password_file = tmp.path().join("oc.password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let port = free_port();
    let daemon = Daemon::start(
        &tmp.path().join("gate"),
        &(format!(
            r#"
[[rules]]
action = "allow"
kind = "shell"
pattern = "touch through-gateway.txt"

[[bridge]]
kind = "opencode"
name = "opencode"
url = "{url}"
password_file = "{pw}"
"#,
            url = oc.url,
            pw = password_file.display()
        ) + &gateway_config(&oc, &password_file, port)),
    )
    .await;
    let gw = format!("http://127.0.0.1:{port}");
    let reader = mint(&daemon, "oc-reader", &["read"]).await;
    let driver = mint(&daemon, "oc-driver", &["write", "execute"]).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("opencode:{PASSWORD}"))
    };

    // Every route of the pinned opencode is in the preset's table (an upgrade that adds one
    // fails here, instead of opening it silently under the generic rule).
    let doc: Value = oc.call(reqwest::Method::GET, "/doc", None).await;
    let listed: std::collections::HashSet<String> = agentgate::gateway::table::OPENCODE_ROUTES
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(route, _)| route.to_owned()))
        .collect();
    let mut missing = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete", "head"].contains(&method.as_str()) {
                let route = format!("{} {path}", method.to_uppercase());
                if !listed.contains(&route) {
                    missing.push(route);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "opencode routes missing from src/gateway/opencode-routes.txt (run scripts/opencode-routes): {missing:?}"
    );
    assert!(listed.len() > 150, "{}", listed.len());

    // No token: 401 from agentgate, and opencode is never asked.
    let r = http.get(format!("{gw}/session")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A read token lists sessions, but can neither create nor prompt one.
    let r = http
        .get(format!("{gw}/session"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed = r.text().await.unwrap();
    assert!(!listed.contains(PASSWORD) && !listed.contains(&basic));
    let r = http
        .post(format!("{gw}/session"))
        .bearer_auth(&reader)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["required"], "write");
    // The driver's event stream runs live through the gateway while it creates and prompts.
    let mut events = http
        .get(format!("{gw}/event"))
        .bearer_auth(&reader)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let session: Value = http
        .post(format!("{gw}/session"))
        .bearer_auth(&driver)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = session["id"].as_str().unwrap().to_owned();
    let prompt = json!({"parts": [{"type": "text", "text": "Run the command."}]});
    let r = http
        .post(format!("{gw}/session/{sid}/prompt_async"))
        .bearer_auth(&reader)
        .json(&prompt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["required"], "execute");
    model.set_command("touch through-gateway.txt");
    let r = http
        .post(format!("{gw}/session/{sid}/prompt_async"))
        .bearer_auth(&driver)
        .json(&prompt)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // The prompt runs (its bash prompt answered by the bridge's policy allow), and the session's
    // events arrive on the stream opened before.
    file_appears(&oc.project().join("through-gateway.txt")).await;
    let mut seen = String::new();
    while !seen.contains(&sid) {
        let chunk = tokio::time::timeout(Duration::from_secs(30), events.chunk())
            .await
            .expect("an event through the gateway")
            .unwrap()
            .expect("the stream is open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains(PASSWORD) && !seen.contains(&basic));

    // A pty: created and connected (a WebSocket upgrade, checked against the table like any
    // request) with `execute`; a read token may do neither.
    let r = http
        .post(format!("{gw}/pty"))
        .bearer_auth(&reader)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let pty: Value = http
        .post(format!("{gw}/pty"))
        .bearer_auth(&driver)
        .json(&json!({"command": "/bin/sh"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pty_id = pty["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{pty}"))
        .to_owned();
    let handshake = |token: &str| {
        format!(
            "GET /pty/{pty_id}/connect HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    assert!(
        first_line(port, &handshake(&reader))
            .await
            .starts_with("HTTP/1.1 403")
    );
    let line = first_line(port, &handshake(&driver)).await;
    assert!(line.starts_with("HTTP/1.1 101"), "{line}");
    oc.kill().await;
}

/// The status line of the answer to a raw request.
async fn first_line(port: u16, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut byte))
            .await
            .expect("an answer")
            .unwrap();
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn mint(daemon: &Daemon, name: &str, scopes: &[&str]) -> String {
    let (status, body) = daemon
        .post("/api/v1/tokens", json!({"name": name, "scopes": scopes}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// opencode's own web UI through the gateway, in Chromium, with the inbox's session: the page
/// at the gateway's origin creates and prompts a session and answers its own permission prompt
/// (OpenWork #1918, for the real opencode).
pub async fn ui_through_a_gateway(bin: &Path, browser: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let model = models::start().await;
    let mut oc = Opencode::start(bin, tmp.path(), &model).await;
    let password_file = tmp.path().join("oc.password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let port = free_port();
    let daemon = Daemon::start(
        &tmp.path().join("gate"),
        &gateway_config(&oc, &password_file, port),
    )
    .await;
    let passphrase = daemon.set_passphrase().await;
    model.set_command("touch from-the-ui.txt");
    let output = tokio::process::Command::new("node")
        .arg(browser.join("gateway-ui.mjs"))
        .arg(&daemon.url)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&passphrase)
        .current_dir(browser)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("{text}"));
    eprintln!("opencode's UI through the gateway: {seen}");
    assert_eq!(seen["ui_status"], 200, "{seen}");
    assert_eq!(seen["ui_title"], "OpenCode", "{seen}");
    assert_eq!(seen["create_status"], 200, "{seen}");
    assert_eq!(seen["prompt_status"], 204, "{seen}");
    assert_eq!(seen["asked"], 1, "{seen}");
    assert_eq!(seen["reply_status"], 200, "{seen}");
    file_appears(&oc.project().join("from-the-ui.txt")).await;
    oc.kill().await;
}

/// A `[[gateway]]` with the opencode preset on `port` in front of `oc`, with its Basic password.
fn gateway_config(oc: &Opencode, password_file: &Path, port: u16) -> String {
    format!(
        r#"
[[gateway]]
name = "opencode"
preset = "opencode"
listen = "127.0.0.1:{port}"
upstream = "{}"
upstream_auth = {{ basic = {{ username = "opencode", password_file = "{}" }} }}
"#,
        oc.url,
        password_file.display()
    )
}
