//! `POST /api/v1/hooks/{agent}`: the hook contract over HTTP (Claude Code's http hooks and the
//! command hook's transport), its bad inputs, and what it writes.

use serde_json::{Value, json};

use crate::harness::{first_pending, spawn_app_with};

const RULES: &str = r#"
[[rules]]
action = "allow"
kind = "shell"
pattern = "git status"

[[rules]]
action = "deny"
kind = "shell"
pattern = "rm *"
"#;

fn event(name: &str, tool: &str, input: Value) -> Value {
    json!({"session_id": "s-1", "transcript_path": "/t.jsonl", "cwd": "/tmp",
        "permission_mode": "default", "hook_event_name": name, "tool_name": tool,
        "tool_input": input, "tool_use_id": "toolu_1"})
}

#[tokio::test]
async fn each_agent_gets_the_decision_in_its_own_contract() {
    let app = spawn_app_with(RULES).await;
    let (agent, _) = app.create_token("claude", &["request"], json!("1d")).await;
    let post = |agent_name: &'static str, body: Value| {
        let app = &app;
        let agent = agent.clone();
        async move {
            let r = app
                .post(
                    &format!("/api/v1/hooks/{agent_name}?timeout=5"),
                    Some(&agent),
                    body,
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.json()
        }
    };
    let allow = post(
        "claude-code",
        event("PreToolUse", "Bash", json!({"command": "git status"})),
    )
    .await;
    assert_eq!(allow["hookSpecificOutput"]["permissionDecision"], "allow");
    assert!(
        allow["hookSpecificOutput"]["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .contains("config-1")
    );
    let deny = post(
        "claude-code",
        event("PreToolUse", "Bash", json!({"command": "rm -rf /"})),
    )
    .await;
    assert_eq!(deny["hookSpecificOutput"]["permissionDecision"], "deny");
    // Codex: a PreToolUse allow approves nothing there, so agentgate gives no verdict.
    let codex_allow = post(
        "codex",
        event("PreToolUse", "Bash", json!({"command": "git status"})),
    )
    .await;
    assert_eq!(codex_allow, json!({}));
    let codex_deny = post(
        "codex",
        event("PermissionRequest", "Bash", json!({"command": "rm x"})),
    )
    .await;
    assert_eq!(
        codex_deny["hookSpecificOutput"]["decision"]["behavior"],
        "deny"
    );
    // The request carries the agent, its session and working directory.
    let listed = app
        .get("/api/v1/permissions?status=all", Some(&app.admin))
        .await
        .json();
    // (All made at the same instant of the manual clock: found by what they are, not by order.)
    let first = listed["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["request"]["agent"] == "claude-code")
        .expect("Claude Code's request");
    assert_eq!(first["request"]["session"], "s-1");
    assert_eq!(first["request"]["cwd"], "/tmp");
    assert_eq!(first["requester"], "claude");
}

#[tokio::test]
async fn bad_hook_events_are_blocked_with_a_reason_and_write_nothing() {
    let app = spawn_app_with(RULES).await;
    let (agent, _) = app.create_token("claude", &["request"], json!("1d")).await;
    let bodies: [(&str, &str); 7] = [
        ("", "empty"),
        (
            "{\"hook_event_name\":\"PreToolUse\",\"tool_na",
            "not valid JSON",
        ),
        ("[\"PreToolUse\"]", "not valid JSON"),
        (r#"{"hook_event_name":"Stop"}"#, "not `Stop`"),
        (
            r#"{"hook_event_name":"PreToolUse","tool_input":{}}"#,
            "no `tool_name`",
        ),
        (
            r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":[1]}"#,
            "not an object",
        ),
        (
            r#"{"tool_name":"Bash","tool_input":{}}"#,
            "no `hook_event_name`",
        ),
    ];
    for (body, words) in bodies {
        let resp = app
            .http
            .post(format!("{}/api/v1/hooks/claude-code", app.base))
            .bearer_auth(&agent)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        // 2xx: Claude Code treats any other answer as a non-blocking error.
        assert_eq!(resp.status(), 200, "{body}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["decision"], "block", "{body}: {answer}");
        assert!(
            answer["reason"].as_str().unwrap().contains(words),
            "{body}: {answer}"
        );
    }
    let listed = app
        .get("/api/v1/permissions?status=all", Some(&app.admin))
        .await
        .json();
    assert_eq!(
        listed["permissions"],
        json!([]),
        "a bad event wrote a request"
    );

    // The route's own bad inputs are the API's errors.
    let good = event("PreToolUse", "Bash", json!({"command": "git status"}));
    app.post("/api/v1/hooks/vscode", Some(&agent), good.clone())
        .await
        .expect_error(404, "unknown_hook");
    for (t, code) in [
        ("0", "invalid_request"),
        ("3601", "invalid_request"),
        ("soon", "invalid_query"),
    ] {
        app.post(
            &format!("/api/v1/hooks/claude-code?timeout={t}"),
            Some(&agent),
            good.clone(),
        )
        .await
        .expect_error(400, code);
    }
    let (reader, _) = app.create_token("reader", &["read"], json!("1d")).await;
    app.post("/api/v1/hooks/claude-code", Some(&reader), good.clone())
        .await
        .expect_error(403, "insufficient_scope");
    app.post("/api/v1/hooks/claude-code", None, good)
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn a_hook_waits_at_most_its_timeout_and_records_a_timeout_not_a_denial() {
    let app = spawn_app_with("default_timeout = 0\n").await;
    let (agent, _) = app.create_token("claude", &["request"], json!("1d")).await;
    let call = {
        let app_base = app.base.clone();
        let http = app.http.clone();
        let agent = agent.clone();
        tokio::spawn(async move {
            http.post(format!("{app_base}/api/v1/hooks/claude-code?timeout=30"))
                .bearer_auth(agent)
                .json(&event(
                    "PreToolUse",
                    "Bash",
                    json!({"command": "make deploy"}),
                ))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    // Pending with a deadline 30 s out, although the configured default waits forever.
    let pending = first_pending(&app).await;
    let created = pending["created_at"].as_str().unwrap().to_owned();
    let deadline = pending["deadline"].as_str().unwrap().to_owned();
    let secs = |t: &str| humantime::parse_rfc3339(t).unwrap();
    assert_eq!(
        secs(&deadline)
            .duration_since(secs(&created))
            .unwrap()
            .as_secs(),
        30
    );
    app.clock.advance(std::time::Duration::from_secs(31));
    let answer = call.await.unwrap();
    assert_eq!(answer["hookSpecificOutput"]["permissionDecision"], "deny");
    assert!(
        answer["hookSpecificOutput"]["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    let id = pending["id"].as_str().unwrap();
    let after = app
        .get(&format!("/api/v1/permissions/{id}"), Some(&app.admin))
        .await
        .json();
    assert_eq!(after["status"], "timeout");
}
