//! The MCP gateway with a real upstream: a stdio server built with the Python `mcp` SDK
//! (`tests/mcp/upstream.py`, run from the interop venv), behind `/mcp/{name}`. Every tool call is
//! decided by the broker on its arguments.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::harness::{TestApp, first_pending, spawn_app_with};

fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("tests/interop/python/.venv/bin/python");
    if python.exists() {
        return Some(python);
    }
    let message = "MCP gateway tests NOT RUN: the interop venv is missing (scripts/test makes it)";
    if std::env::var("AGENTGATE_INTEROP_TESTS").is_ok_and(|v| v == "required") {
        panic!("{message} (AGENTGATE_INTEROP_TESTS=required)");
    }
    eprintln!("{message}");
    None
}

/// One JSON-RPC message to `/mcp/{server}`; the answer may be JSON or SSE.
async fn call(
    app: &TestApp,
    server: &str,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> (u16, Option<String>, Value) {
    let r = crate::harness::mcp_request(app, &format!("/mcp/{server}"), token, session, &body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let session = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let value = crate::harness::mcp_answer(&r.text().await.unwrap());
    (status, session, value)
}

/// `initialize` as a client sends it.
fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "it-client", "version": "0"}}})
}

/// A `tools/call` that may wait for a person, run in the background: its raw answer.
fn call_in_background(
    app: &TestApp,
    server: &str,
    token: &str,
    session: &str,
    id: u64,
    name: &str,
    args: Value,
) -> tokio::task::JoinHandle<String> {
    let request = app
        .http
        .post(format!("{}/mcp/{server}", app.base))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": args}}));
    tokio::spawn(async move { request.send().await.unwrap().text().await.unwrap() })
}

async fn open(app: &TestApp, token: &str) -> (String, Value) {
    let (status, session, init) = call(app, "up", token, None, initialize()).await;
    assert_eq!(status, 200, "{init}");
    let session = session.expect("a session id");
    let (status, _, _) = call(
        app,
        "up",
        token,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    (session, init)
}

async fn tool(app: &TestApp, token: &str, session: &str, name: &str, args: Value) -> Value {
    let (status, _, answer) = call(
        app,
        "up",
        token,
        Some(session),
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": name, "arguments": args}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// `tools/list` through the gateway.
async fn tool_list(app: &TestApp, token: &str, session: &str) -> Value {
    let (_, _, list) = call(
        app,
        "up",
        token,
        Some(session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    list
}

/// The tool names a `tools/list` answer lists.
fn names_of(list: &Value) -> Vec<&str> {
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

fn text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_call_to_a_real_upstream_is_decided_on_its_arguments() {
    let Some(python) = python() else { return };
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/upstream.py");
    let config = format!(
        r#"
[[mcp_server]]
name = "up"
command = {python:?}
args = [{script:?}]
timeout = 20

[[rules]]
action = "allow"
kind = "tool"
pattern = "up__echo"

[[rules]]
action = "allow"
kind = "tool"
pattern = "up__crash"

[[rules]]
action = "deny"
kind = "tool"
pattern = "mcp__up__delete_*"

[[rules]]
action = "allow"
kind = "tool"
pattern = "up__write_file"
[rules.input]
path = "{src}/**"
"#,
        src = src.display()
    );
    let app = spawn_app_with(&config).await;
    let (agent, _) = app.create_token("agent", &["request"], Value::Null).await;

    // initialize names the upstream through us.
    let (session, init) = open(&app, &agent).await;
    assert_eq!(
        init["result"]["serverInfo"]["name"], "agentgate/up",
        "{init}"
    );

    // The tool a rule denies outright is not listed.
    let list = tool_list(&app, &agent, &session).await;
    let names = names_of(&list);
    assert!(
        names.contains(&"echo") && names.contains(&"write_file"),
        "{list}"
    );
    assert!(!names.contains(&"delete_everything"), "{names:?}");

    // Allowed at once.
    let answer = tool(&app, &agent, &session, "echo", json!({"text": "hi"})).await;
    assert_eq!(text(&answer), "hi", "{answer}");

    // Hidden, and refused when called anyway: a tool error the model reads.
    let answer = tool(&app, &agent, &session, "delete_everything", json!({})).await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(text(&answer).contains("refused"), "{answer}");

    // A write inside the allowed tree runs at once.
    let inside = src.join("a.txt");
    let answer = tool(
        &app,
        &agent,
        &session,
        "write_file",
        json!({"path": inside, "content": "one"}),
    )
    .await;
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "one");

    // A `..` escape is not covered by the rule: a person is asked, sees the arguments, allows.
    let escape = format!("{}/../outside.txt", src.display());
    let waiting = call_in_background(
        &app,
        "up",
        &agent,
        &session,
        8,
        "write_file",
        json!({"path": escape, "content": "two"}),
    );
    let pending = first_pending(&app).await;
    assert_eq!(pending["request"]["name"], "up__write_file", "{pending}");
    assert_eq!(
        pending["request"]["input"]["path"],
        escape.as_str(),
        "{pending}"
    );
    assert!(
        pending["request"]["reason"]
            .as_str()
            .unwrap()
            .contains("destructive (its own claim"),
        "{pending}"
    );
    assert!(!work.path().join("outside.txt").exists());
    let id = pending["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/permissions/{id}/reply"),
            Some(&app.admin),
            json!({"decision": "allow"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = waiting.await.unwrap();
    assert!(body.contains("wrote 3 bytes"), "{body}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("outside.txt")).unwrap(),
        "two"
    );

    // Bad input: arguments that are not an object.
    let (_, _, bad) = call(
        &app,
        "up",
        &agent,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
               "params": {"name": "echo", "arguments": [1, 2]}}),
    )
    .await;
    assert!(bad.get("error").is_some(), "{bad}");

    // The upstream exits mid-call: a clear error, and the next session works.
    let (_, _, crashed) = call(
        &app,
        "up",
        &agent,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
               "params": {"name": "crash", "arguments": {}}}),
    )
    .await;
    assert!(
        crashed.get("error").is_some() || crashed["result"]["isError"] == true,
        "{crashed}"
    );
    let (session2, _) = open(&app, &agent).await;
    let answer = tool(&app, &agent, &session2, "echo", json!({"text": "again"})).await;
    assert_eq!(text(&answer), "again", "{answer}");

    // Who may use it: no token 401, an approver-only token 403, an unknown server 404.
    let (status, _, _) = call(&app, "up", "agt_nope", None, json!({})).await;
    assert_eq!(status, 401);
    let (approver, _) = app
        .create_token("approver", &["approve"], Value::Null)
        .await;
    let (status, _, _) = call(&app, "up", &approver, None, json!({})).await;
    assert_eq!(status, 403);
    let (status, _, body) = call(&app, "nope", &agent, None, json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "unknown_mcp_server", "{body}");
}

/// While a person is asked the client hears progress (it gave a progress token), and its
/// cancellation withdraws the pending request from the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_reports_progress_and_a_cancel_clears_the_inbox() {
    let Some(python) = python() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/upstream.py");
    let app = spawn_app_with(&format!(
        "[[mcp_server]]\nname = \"up\"\ncommand = {python:?}\nargs = [{script:?}]\n"
    ))
    .await;
    let (agent, _) = app.create_token("agent", &["request"], Value::Null).await;
    let (session, _) = open(&app, &agent).await;
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("never.txt");
    let response = app
        .http
        .post(format!("{}/mcp/up", app.base))
        .bearer_auth(&agent)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .json(
            &json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {
            "name": "write_file", "arguments": {"path": target, "content": "x"},
            "_meta": {"progressToken": "p-1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut response = response;
    let mut seen = String::new();
    while !seen.contains("notifications/progress") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), response.chunk())
            .await
            .expect("progress within 20 s")
            .unwrap()
            .expect("the stream is open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"progressToken\":\"p-1\""), "{seen}");
    assert!(seen.contains("waiting for a person"), "{seen}");
    let pending = first_pending(&app).await;
    let id = pending["id"].as_str().unwrap().to_owned();

    // The client gives up.
    let (status, _, _) = call(
        &app,
        "up",
        &agent,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
               "params": {"requestId": 11, "reason": "the user pressed Esc"}}),
    )
    .await;
    assert_eq!(status, 202);
    let gone = crate::harness::eventually("the request is withdrawn", || async {
        let view = app
            .get(&format!("/api/v1/permissions/{id}"), Some(&app.admin))
            .await
            .json();
        (view["status"] != "pending").then_some(view)
    })
    .await;
    assert_eq!(gone["status"], "cancelled", "{gone}");
    assert_eq!(gone["decided_by"]["source"], "requester", "{gone}");
    assert_eq!(gone["message"], "the client cancelled the call", "{gone}");
    let cancelled = app
        .get("/api/v1/permissions?status=cancelled", Some(&app.admin))
        .await
        .json();
    assert_eq!(
        cancelled["permissions"][0]["id"],
        id.as_str(),
        "{cancelled}"
    );
    let left = app
        .get("/api/v1/permissions?status=pending", Some(&app.admin))
        .await
        .json();
    assert_eq!(left["permissions"].as_array().unwrap().len(), 0, "{left}");
    assert!(!target.exists());
}

/// Upstreams that are not MCP servers, and messages that are not MCP: each gets a clear
/// JSON-RPC error naming the upstream, never a hang or a 500, and the daemon goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_upstreams_and_bad_messages_get_clear_errors() {
    let Some(python) = python() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/upstream.py");
    let app = spawn_app_with(&format!(
        r#"
[[mcp_server]]
name = "up"
command = {python:?}
args = [{script:?}]

[[mcp_server]]
name = "missing"
command = "/nonexistent/mcp-server"

[[mcp_server]]
name = "exits"
command = "true"

[[mcp_server]]
name = "silent"
command = "sleep"
args = ["60"]
timeout = 1

[[mcp_server]]
name = "garbage"
command = "sh"
args = ["-c", "echo 'this is not JSON-RPC'; sleep 60"]
timeout = 2

[[rules]]
action = "allow"
kind = "tool"
pattern = "up__*"
"#
    ))
    .await;
    let (agent, _) = app.create_token("agent", &["request"], Value::Null).await;
    let init = initialize();
    // An upstream that cannot start, tried again at once: not started again, but the client is
    // told when it will be (250 ms, doubling).
    call(&app, "missing", &agent, None, init.clone()).await;
    let (_, _, again) = call(&app, "missing", &agent, None, init.clone()).await;
    let message = again["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("failed to start 1 times in a row; the next try is in"),
        "{again}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for (server, words) in [
        ("missing", "cannot start upstream MCP server `missing`"),
        ("exits", "`exits` did not complete initialize"),
        ("silent", "`silent` did not answer initialize within 1 s"),
        ("garbage", "`garbage`"),
    ] {
        let (status, _, answer) = call(&app, server, &agent, None, init.clone()).await;
        assert!(status < 500, "{server}: {status} {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{server}: {answer}");
    }

    let (session, _) = open(&app, &agent).await;
    // A tool the upstream does not have: the upstream's own error, passed through.
    let answer = tool(&app, &agent, &session, "no_such_tool", json!({})).await;
    assert!(
        answer.get("error").is_some() || answer["result"]["isError"] == true,
        "{answer}"
    );
    // An unknown method: method not found.
    let (_, _, unknown) = call(
        &app,
        "up",
        &agent,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/explode"}),
    )
    .await;
    assert!(unknown.get("error").is_some(), "{unknown}");
    // Malformed JSON-RPC: a 4xx, nothing relayed.
    let r = crate::harness::mcp_raw_request(
        &app,
        "/mcp/up",
        &agent,
        Some(&session),
        "{\"jsonrpc\": \"2.0\", \"id\": ".into(),
    )
    .send()
    .await
    .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    // Huge arguments (past the body limit): refused from the declared length, before a byte of
    // the body is read or anything is asked.
    let (status, body) = app
        .raw(&format!(
            "POST /mcp/up HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {agent}\r\n\
             Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
             Mcp-Session-Id: {session}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            app.addr,
            5 * 1024 * 1024
        ))
        .await;
    assert_eq!(status, 413, "{body}");
    let pending = app
        .get("/api/v1/permissions?status=pending", Some(&app.admin))
        .await
        .json();
    assert_eq!(pending["permissions"].as_array().unwrap().len(), 0);
    // After all that, the session still works.
    let answer = tool(
        &app,
        &agent,
        &session,
        "echo",
        json!({"text": "still here"}),
    )
    .await;
    assert_eq!(text(&answer), "still here", "{answer}");
}

/// A stdio upstream runs only while its session does, and never outlives the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_children_end_with_their_session_and_with_the_daemon() {
    let Some(python) = python() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/upstream.py");
    let marker = format!("marker-{}", std::process::id());
    let mut app = spawn_app_with(&format!(
        "[[mcp_server]]\nname = \"up\"\ncommand = {python:?}\nargs = [{script:?}, {marker:?}]\n"
    ))
    .await;
    let (agent, _) = app.create_token("agent", &["request"], Value::Null).await;
    let running = || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    // A session deleted by its client stops its child.
    let (session, _) = open(&app, &agent).await;
    assert_eq!(running(), 1);
    let r = app
        .http
        .delete(format!("{}/mcp/up", app.base))
        .bearer_auth(&agent)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    crate::harness::eventually("the child of a deleted session is gone", || async {
        (running() == 0).then_some(())
    })
    .await;
    // Two sessions, two children; the daemon stops: none is left.
    open(&app, &agent).await;
    open(&app, &agent).await;
    assert_eq!(running(), 2);
    app.shutdown().await;
    crate::harness::eventually("no child outlives the daemon", || async {
        (running() == 0).then_some(())
    })
    .await;
}

/// A rule on what the server says of its tools (`annotations`): a destructive tool denied
/// outright is hidden, and refused even when a client calls it without listing first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_match_what_the_server_says_of_its_tools() {
    let Some(python) = python() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/upstream.py");
    let app = spawn_app_with(&format!(
        r#"
[[mcp_server]]
name = "up"
command = {python:?}
args = [{script:?}]

[[rules]]
action = "allow"
kind = "tool"
pattern = "up__*"

[[rules]]
action = "deny"
kind = "tool"
pattern = "up__*"
annotations = {{ destructive = true }}
"#
    ))
    .await;
    let (agent, _) = app.create_token("agent", &["request"], Value::Null).await;
    // Called by name, never listed: refused all the same.
    let (session, _) = open(&app, &agent).await;
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("x.txt");
    let answer = tool(
        &app,
        &agent,
        &session,
        "write_file",
        json!({"path": target, "content": "x"}),
    )
    .await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(!target.exists());
    let answer = tool(&app, &agent, &session, "echo", json!({"text": "fine"})).await;
    assert_eq!(text(&answer), "fine", "{answer}");
    // An upstream tool named like one of our own /mcp tools needs no scope of ours beyond
    // `request`: the broker decides it like any other.
    let answer = tool(&app, &agent, &session, "reply", json!({"text": "ok"})).await;
    assert_eq!(text(&answer), "replied ok", "{answer}");
    let list = tool_list(&app, &agent, &session).await;
    let names = names_of(&list);
    assert!(
        !names.contains(&"write_file") && names.contains(&"echo"),
        "{names:?}"
    );
    // The rule is explained with the hint; an unknown hint is refused with the field named.
    let r = app
        .post(
            "/api/v1/rules",
            Some(&app.admin),
            json!({"action": "deny", "kind": "tool", "pattern": "x", "annotations": {"evil": true}}),
        )
        .await;
    let err = r.expect_error(400, "invalid_request");
    assert_eq!(err["field"], "annotations", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("unknown hint"),
        "{err}"
    );
    for (input, words) in [
        (json!({"path": "a["}), "invalid glob"),
        (json!({}), "at least one argument"),
        (json!({"": "x"}), "cannot be empty"),
    ] {
        let r = app
            .post(
                "/api/v1/rules",
                Some(&app.admin),
                json!({"action": "allow", "kind": "tool", "pattern": "x", "input": input}),
            )
            .await;
        let err = r.expect_error(400, "invalid_request");
        assert_eq!(err["field"], "input", "{err}");
        assert!(err["message"].as_str().unwrap().contains(words), "{err}");
    }
    let r = app
        .post(
            "/api/v1/rules",
            Some(&app.admin),
            json!({"action": "allow", "kind": "shell", "pattern": "x", "input": {"a": "b"}}),
        )
        .await;
    assert_eq!(r.expect_error(400, "invalid_request")["field"], "input");
    // Added through the API, an input rule decides: explain names the argument it matched.
    let r = app
        .post(
            "/api/v1/rules",
            Some(&app.admin),
            json!({"action": "ask", "kind": "tool", "pattern": "up__echo", "input": {"text": "secret*"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post(
            "/api/v1/policy/explain",
            Some(&app.admin),
            json!({"kind": "tool", "name": "up__echo", "input": {"text": "secret plans"}}),
        )
        .await;
    let explained = r.json();
    assert_eq!(explained["decision"]["effect"], "ask", "{explained}");
    assert!(
        explained["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("its arguments (text)"),
        "{explained}"
    );
}

/// "Always allow" for a tool call remembers this call's arguments, not the whole tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_allowing_a_tool_call_remembers_its_arguments() {
    let Some(python) = python() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/upstream.py");
    let app = spawn_app_with(&format!(
        "[[mcp_server]]\nname = \"up\"\ncommand = {python:?}\nargs = [{script:?}]\n"
    ))
    .await;
    let (agent, _) = app.create_token("agent", &["request"], Value::Null).await;
    let (session, _) = open(&app, &agent).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().canonicalize().unwrap();
    let (a, b) = (dir.join("a.txt"), dir.join("b.txt"));
    let write = |path: PathBuf, id: u64| {
        call_in_background(
            &app,
            "up",
            &agent,
            &session,
            id,
            "write_file",
            json!({"path": path, "content": "x"}),
        )
    };
    let first = write(a.clone(), 21);
    let pending = first_pending(&app).await;
    let suggested = &pending["suggested_rules"][0];
    assert_eq!(suggested["input"]["path"], a.to_str().unwrap(), "{pending}");
    assert_eq!(suggested["input"]["content"], "x", "{pending}");
    let id = pending["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/permissions/{id}/reply"),
            Some(&app.admin),
            json!({"decision": "allow", "remember": "always"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(first.await.unwrap().contains("wrote 1 bytes"));
    // The same call again: allowed by the remembered rule, at once.
    let again = tool(
        &app,
        &agent,
        &session,
        "write_file",
        json!({"path": a, "content": "x"}),
    )
    .await;
    assert_ne!(again["result"]["isError"], true, "{again}");
    // Another path: asked.
    let other = write(b.clone(), 22);
    let pending = first_pending(&app).await;
    assert_eq!(pending["request"]["input"]["path"], b.to_str().unwrap());
    other.abort();
}

/// What is forwarded is the call that was decided, as the client wrote it: the upstream's stdin
/// (copied by `tee`) carries the client's `arguments` bytes, key order and UTF-8 included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arguments_forwarded_are_the_bytes_the_client_sent() {
    let Some(python) = python() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/upstream.py");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().canonicalize().unwrap();
    let raw = dir.join("stdin.log");
    let shell = format!(
        "tee -a '{}' | exec '{}' '{}'",
        raw.display(),
        python.display(),
        script.display()
    );
    let app = spawn_app_with(&format!(
        "[[mcp_server]]\nname = \"up\"\ncommand = \"sh\"\nargs = [\"-c\", {shell:?}]\n\n\
         [[rules]]\naction = \"allow\"\nkind = \"tool\"\npattern = \"up__write_file\"\n"
    ))
    .await;
    let (agent, _) = app.create_token("agent", &["request"], Value::Null).await;
    let (session, _) = open(&app, &agent).await;
    let target = dir.join("out.txt");
    // Not in sorted order, with non-ASCII text and escapes a serializer could respell.
    let arguments = format!(
        r#"{{"path":"{}","content":"naïve — \"quoted\"\n\ttab"}}"#,
        target.display()
    );
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{{"name":"write_file","arguments":{arguments}}}}}"#
    );
    let r = crate::harness::mcp_raw_request(&app, "/mcp/up", &agent, Some(&session), body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer = crate::harness::mcp_answer(&r.text().await.unwrap());
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "naïve — \"quoted\"\n\ttab"
    );
    let seen = std::fs::read_to_string(&raw).unwrap();
    let line = seen
        .lines()
        .find(|l| l.contains("\"tools/call\""))
        .expect("the call reached the upstream");
    assert!(
        line.contains(&format!("\"arguments\":{arguments}")),
        "forwarded: {line}\nsent arguments: {arguments}"
    );
}

/// A streamable-HTTP upstream (the Python SDK's server): each client session opens its own
/// upstream session; calls are decided as for stdio; a dead URL is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamable_http_upstream_is_relayed_and_decided_the_same_way() {
    let Some(python) = python() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/upstream.py");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, dead) = (free(), free());
    let mut server = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--http", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    crate::harness::eventually("the HTTP upstream listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let app = spawn_app_with(&format!(
        r#"
[[mcp_server]]
name = "up"
url = "http://127.0.0.1:{port}/mcp"
bearer_env = "AGENTGATE_TEST_UNSET_BEARER_{port}"

[[mcp_server]]
name = "web"
url = "http://127.0.0.1:{port}/mcp"
timeout = 10

[[mcp_server]]
name = "dead"
url = "http://127.0.0.1:{dead}/mcp"

[[rules]]
action = "allow"
kind = "tool"
pattern = "web__echo"
"#
    ))
    .await;
    let (agent, _) = app.create_token("agent", &["request"], Value::Null).await;
    let init = initialize();
    // A secret that is not there, and a server that is not there: clear errors, no 500.
    for (server, words) in [
        ("up", "AGENTGATE_TEST_UNSET_BEARER"),
        ("dead", "`dead` did not complete initialize"),
    ] {
        let (status, _, answer) = call(&app, server, &agent, None, init.clone()).await;
        assert!(status < 500, "{server}: {status} {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{server}: {answer}");
    }

    let (status, session, answer) = call(&app, "web", &agent, None, init.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["serverInfo"]["name"], "agentgate/web");
    let session = session.unwrap();
    call(
        &app,
        "web",
        &agent,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    let web_tool = |name: &str, args: Value, id: u64| {
        call_in_background(&app, "web", &agent, &session, id, name, args)
    };
    assert!(
        web_tool("echo", json!({"text": "over http"}), 2)
            .await
            .unwrap()
            .contains("over http")
    );
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("via-http.txt");
    let waiting = web_tool("write_file", json!({"path": target, "content": "h"}), 3);
    let pending = first_pending(&app).await;
    assert_eq!(pending["request"]["name"], "web__write_file", "{pending}");
    let id = pending["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/permissions/{id}/reply"),
            Some(&app.admin),
            json!({"decision": "allow"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(waiting.await.unwrap().contains("wrote 1 bytes"));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "h");
    server.kill().await.unwrap();
}

/// Resources and prompts pass through as the upstream serves them, and `max_sessions` caps the
/// sessions (each a child) one upstream may have open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_and_prompts_pass_through_and_sessions_are_capped() {
    let Some(python) = python() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/upstream.py");
    let app = spawn_app_with(&format!(
        "[[mcp_server]]\nname = \"up\"\ncommand = {python:?}\nargs = [{script:?}]\nmax_sessions = 1\n"
    ))
    .await;
    let (agent, _) = app.create_token("agent", &["request"], Value::Null).await;
    let (session, init) = open(&app, &agent).await;
    assert!(
        init["result"]["capabilities"]["resources"].is_object(),
        "{init}"
    );
    let ask = |id: u64, method: &'static str, params: Value| {
        let (app, agent, session) = (&app, &agent, &session);
        async move {
            let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            call(app, "up", agent, Some(session), body).await.2
        }
    };
    let list = ask(2, "resources/list", json!({})).await;
    assert_eq!(
        list["result"]["resources"][0]["uri"], "test://greeting",
        "{list}"
    );
    let read = ask(3, "resources/read", json!({"uri": "test://greeting"})).await;
    assert_eq!(
        read["result"]["contents"][0]["text"], "hello from a resource",
        "{read}"
    );
    let prompts = ask(4, "prompts/list", json!({})).await;
    assert_eq!(
        prompts["result"]["prompts"][0]["name"], "review",
        "{prompts}"
    );
    let prompt = ask(
        5,
        "prompts/get",
        json!({"name": "review", "arguments": {"code": "x = 1"}}),
    )
    .await;
    assert!(
        prompt["result"]["messages"][0]["content"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Please review: x = 1"),
        "{prompt}"
    );
    let pong = ask(6, "ping", json!({})).await;
    assert!(pong.get("result").is_some(), "{pong}");

    // A second session while the first is open: refused, naming the cap.
    let init = initialize();
    let (status, _, second) = call(&app, "up", &agent, None, init).await;
    assert!(status < 500, "{status} {second}");
    assert!(
        second["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max_sessions (1)"),
        "{second}"
    );
    // The first ends: a new one may start.
    app.http
        .delete(format!("{}/mcp/up", app.base))
        .bearer_auth(&agent)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    crate::harness::eventually("a session may start again", || async {
        let init = initialize();
        let (_, _, answer) = call(&app, "up", &agent, None, init).await;
        answer.get("result").map(|_| ())
    })
    .await;
}

/// A session nobody uses for `idle_timeout` ends, and its child with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_with_its_child() {
    let Some(python) = python() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/upstream.py");
    let marker = format!("idle-marker-{}", std::process::id());
    let app = spawn_app_with(&format!(
        "[[mcp_server]]\nname = \"up\"\ncommand = {python:?}\nargs = [{script:?}, {marker:?}]\nidle_timeout = 1\n"
    ))
    .await;
    let (agent, _) = app.create_token("agent", &["request"], Value::Null).await;
    let running = || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let (session, _) = open(&app, &agent).await;
    assert_eq!(running(), 1);
    crate::harness::eventually("the idle session's child is gone", || async {
        (running() == 0).then_some(())
    })
    .await;
    // The client's next message finds no session: it must initialize again.
    let (status, _, _) = call(
        &app,
        "up",
        &agent,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 404);
}
