//! The opencode bridge against servers that misbehave: a dead port, a server that is not
//! opencode, a wrong password, an event stream that breaks mid-event, a permission type this
//! version does not know, and a reply to a prompt opencode already answered itself. (The real
//! opencode is driven in tests/agents.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::harness::{TestApp, eventually, first_pending, spawn_app_with};

const PASSWORD: &str = "s3cret-opencode-password";

/// A stand-in for opencode's event and permission routes, scripted by the test.
#[derive(Default)]
struct Upstream {
    /// Each connection to `/global/event` takes the next script: chunks to send, then the
    /// stream stays open (`true`) or ends.
    streams: Mutex<Vec<(Vec<String>, bool)>>,
    connections: Mutex<usize>,
    pending: Mutex<Vec<Value>>,
    replies: Mutex<Vec<(String, Value)>>,
    /// Answer replies with this status.
    reply_status: Mutex<u16>,
}

fn authorized(headers: &HeaderMap) -> bool {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("opencode:{PASSWORD}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

async fn events(State(up): State<Arc<Upstream>>, headers: HeaderMap) -> Response<Body> {
    if !authorized(&headers) {
        return Response::builder()
            .status(401)
            .body(Body::from("Unauthorized"))
            .unwrap();
    }
    *up.connections.lock().unwrap() += 1;
    let script = {
        let mut streams = up.streams.lock().unwrap();
        if streams.is_empty() {
            (Vec::new(), true)
        } else {
            streams.remove(0)
        }
    };
    let (tx, rx) = mpsc::channel::<Result<String, std::io::Error>>(16);
    tokio::spawn(async move {
        for chunk in script.0 {
            let _ = tx.send(Ok(chunk)).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if script.1 {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn list(State(up): State<Arc<Upstream>>, headers: HeaderMap) -> Response<Body> {
    if !authorized(&headers) {
        return Response::builder().status(401).body(Body::empty()).unwrap();
    }
    let body = Value::Array(up.pending.lock().unwrap().clone()).to_string();
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

async fn reply(
    State(up): State<Arc<Upstream>>,
    Path(id): Path<String>,
    body: axum::Json<Value>,
) -> (StatusCode, String) {
    up.replies.lock().unwrap().push((id, body.0));
    let status = *up.reply_status.lock().unwrap();
    (StatusCode::from_u16(status).unwrap(), "true".into())
}

async fn upstream(up: Arc<Upstream>) -> String {
    *up.reply_status.lock().unwrap() = 200;
    let app = Router::new()
        .route("/global/event", get(events))
        .route("/permission", get(list))
        .route("/permission/{id}/reply", post(reply))
        .with_state(up);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn asked(id: &str, permission: &str, patterns: &[&str]) -> Value {
    json!({"id": id, "sessionID": "ses_1", "permission": permission, "patterns": patterns,
        "metadata": {}, "always": [], "tool": {"messageID": "msg_1", "callID": "c1"}})
}

fn event(kind: &str, props: Value) -> String {
    format!(
        "data: {}\n\n",
        json!({"directory": "/tmp", "payload": {"type": kind, "properties": props}})
    )
}

async fn app_for(url: &str, password_file: &std::path::Path) -> TestApp {
    spawn_app_with(&format!(
        "[[bridge]]\nkind = \"opencode\"\nname = \"oc\"\nurl = \"{url}\"\npassword_file = \"{}\"\n",
        password_file.display()
    ))
    .await
}

async fn bridge_state(app: &TestApp) -> Value {
    app.get("/api/v1/bridges", Some(&app.admin)).await.json()["bridges"][0].clone()
}

async fn error_says(app: &TestApp, words: &str) -> Value {
    eventually(&format!("the bridge's state says `{words}`"), || async {
        let state = bridge_state(app).await;
        state["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(words))
            .then_some(state)
    })
    .await
}

fn password_file(dir: &std::path::Path, password: &str) -> std::path::PathBuf {
    let path = dir.join("oc.password");
    std::fs::write(&path, password).unwrap();
    path
}

#[tokio::test]
async fn a_dead_port_a_stranger_and_a_wrong_password_show_in_the_state_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = app_for(
        &format!("http://{dead}"),
        &password_file(dir.path(), PASSWORD),
    )
    .await;
    let state = error_says(&app, "cannot connect").await;
    assert_eq!(state["connected"], false);
    assert!(state["retry_at"].is_string(), "{state}");

    // Something that is not opencode: a web server answering 404 and HTML.
    let stranger = Router::new().route("/", get(|| async { "<html>hello</html>" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, stranger).await.unwrap() });
    let app = app_for(
        &format!("http://{addr}"),
        &password_file(dir.path(), PASSWORD),
    )
    .await;
    error_says(&app, "an opencode server?").await;

    let up = Arc::new(Upstream::default());
    let url = upstream(up.clone()).await;
    let app = app_for(&url, &password_file(dir.path(), "not-the-password")).await;
    let state = error_says(&app, "refused the credentials").await;
    assert!(!state.to_string().contains("not-the-password"));
    // It keeps trying, with backoff: a fixed password file is picked up on the next attempt.
    password_file(dir.path(), PASSWORD);
    eventually("connects once the password is right", || async {
        (bridge_state(&app).await["connected"] == true).then_some(())
    })
    .await;
    let text = app.get("/api/v1/bridges", Some(&app.admin)).await.text;
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn a_stream_broken_mid_event_is_followed_again_and_unknown_permissions_are_asked_as_tools() {
    let dir = tempfile::tempdir().unwrap();
    let up = Arc::new(Upstream::default());
    let whole = event("permission.asked", asked("per_2", "teleport", &["mars"]));
    up.streams.lock().unwrap().push((
        vec![
            "data: {\"type\":\"server.connected\",\"properties\":{}}\n\n".into(),
            // Half an event, then the connection ends.
            whole[..40].to_owned(),
        ],
        false,
    ));
    up.streams.lock().unwrap().push((vec![whole.clone()], true));
    let url = upstream(up.clone()).await;
    let app = app_for(&url, &password_file(dir.path(), PASSWORD)).await;
    let pending = first_pending(&app).await;
    assert!(*up.connections.lock().unwrap() >= 2, "it reconnected");
    assert_eq!(pending["kind"], "tool");
    assert_eq!(pending["request"]["name"], "opencode__teleport");
    assert_eq!(pending["request"]["input"]["patterns"], json!(["mars"]));
    assert_eq!(pending["request"]["agent"], "oc");
    let all = app
        .get("/api/v1/permissions?status=all", Some(&app.admin))
        .await
        .json();
    assert_eq!(
        all["permissions"].as_array().unwrap().len(),
        1,
        "the half event asked nothing"
    );

    // A person denies: opencode gets `reject` with the message.
    let id = pending["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/permissions/{id}/reply"),
            Some(&app.admin),
            json!({"decision": "deny", "message": "not today"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (prompt, body) = eventually("the reply reached opencode", || async {
        up.replies.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(prompt, "per_2");
    assert_eq!(body, json!({"reply": "reject", "message": "not today"}));
}

#[tokio::test]
async fn a_prompt_opencode_answered_itself_is_not_answered_twice() {
    let dir = tempfile::tempdir().unwrap();
    let up = Arc::new(Upstream::default());
    // Listed at catch-up; opencode answers our reply with 404, as for an answered prompt.
    up.pending
        .lock()
        .unwrap()
        .push(asked("per_3", "bash", &["make"]));
    let url = upstream(up.clone()).await;
    *up.reply_status.lock().unwrap() = 404;
    let app = app_for(&url, &password_file(dir.path(), PASSWORD)).await;
    let pending = first_pending(&app).await;
    assert_eq!(pending["request"]["command"], "make");
    let id = pending["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/permissions/{id}/reply"),
        Some(&app.admin),
        json!({"decision": "allow"}),
    )
    .await;
    let state = error_says(&app, "answered or gone already").await;
    assert_eq!(state["connected"], true);
    assert_eq!(
        up.replies.lock().unwrap().len(),
        1,
        "a refused reply is not retried"
    );
}
