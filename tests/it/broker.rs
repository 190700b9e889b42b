//! The permission broker against the real server: policy decisions, pending requests answered by a
//! person while the agent long-polls, races, timeouts, restarts, remembered rules, N-of-M, events
//! and the audit chain.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Behind, Bind, TestApp, eventually, spawn_app_with};

const RULES: &str = r#"
default_timeout = 120

[[rules]]
id = "git"
action = "allow"
kind = "shell"
pattern = "git *"

[[rules]]
id = "no-rm"
action = "deny"
kind = "shell"
pattern = "rm *"

[[rules]]
id = "deploy"
action = "ask"
kind = "shell"
pattern = "deploy *"
timeout = 60

[[rules]]
id = "two-approvers"
action = "ask"
kind = "tool"
pattern = "bank__transfer"
approvals = 2
"#;

struct Actors {
    agent: String,
    /// The owner's laptop.
    approver: String,
    /// Another person (bob).
    second: String,
    /// The owner's phone: the same approver as the laptop.
    phone: String,
    reader: String,
}

async fn actors(app: &TestApp) -> Actors {
    Actors {
        agent: app.create_token("agent", &["request"], json!("1d")).await.0,
        approver: app
            .create_token("laptop", &["approve"], json!("1d"))
            .await
            .0,
        second: {
            let r = app
                .post(
                    "/api/v1/tokens",
                    Some(&app.admin),
                    json!({"name": "bob-phone", "scopes": ["approve"], "person": "bob"}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.json()["token"].as_str().unwrap().to_owned()
        },
        phone: app.create_token("phone", &["approve"], json!("1d")).await.0,
        reader: app.create_token("viewer", &["read"], json!("1d")).await.0,
    }
}

async fn ask(app: &TestApp, token: &str, body: Value) -> Value {
    let reply = app.post("/api/v1/permissions", Some(token), body).await;
    assert!(
        matches!(reply.status.as_u16(), 200 | 202),
        "{} {}",
        reply.status,
        reply.text
    );
    let v = reply.json();
    assert_eq!(reply.status == 202, v["status"] == "pending", "{v}");
    v
}

fn shell(command: &str) -> Value {
    json!({"kind": "shell", "command": command, "agent": "opencode", "session": "s1", "workspace": "/tmp", "reason": "testing"})
}

/// The id of the first pending request, once one exists (an agent is asking concurrently).
async fn first_pending(app: &TestApp, token: &str) -> String {
    eventually("a request is pending", || async {
        let list = app
            .get("/api/v1/permissions?status=pending", Some(token))
            .await
            .json();
        list["permissions"]
            .as_array()
            .unwrap()
            .first()
            .map(|p| p["id"].as_str().unwrap().to_owned())
    })
    .await
}

/// Waits until the expirer (not a read) recorded `id`'s timeout.
async fn expired_by_the_expirer(app: &TestApp, id: &str) {
    eventually("the expirer records the timeout", || async {
        let audit = app
            .get("/api/v1/audit?limit=1000", Some(&app.admin))
            .await
            .json();
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| {
                e["event"] == "permission.decided"
                    && e["subject"] == id
                    && e["data"]["status"] == "timeout"
            })
            .then_some(())
    })
    .await;
}

/// How many entries the audit chain holds (its head's seq): setting up tokens is audited too.
async fn audit_seq(app: &TestApp) -> i64 {
    app.get("/api/v1/audit?limit=1000", Some(&app.admin))
        .await
        .json()["entries"]
        .as_array()
        .unwrap()
        .len() as i64
}

async fn reply(app: &TestApp, token: &str, id: &str, body: Value) -> crate::harness::Reply {
    app.post(
        &format!("/api/v1/permissions/{id}/reply"),
        Some(token),
        body,
    )
    .await
}

#[tokio::test]
async fn the_policy_answers_at_once_and_compound_commands_need_every_part() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let v = ask(&app, &a.agent, shell("git status")).await;
    assert_eq!(v["status"], "allowed");
    assert_eq!(v["decided_by"]["source"], "rule");
    assert_eq!(v["decided_by"]["rule"], "git");
    let v = ask(&app, &a.agent, shell("git status && rm -rf ~")).await;
    assert_eq!(
        (v["status"].as_str(), v["decided_by"]["rule"].as_str()),
        (Some("denied"), Some("no-rm"))
    );
    let v = ask(&app, &a.agent, shell("git log $(curl evil.sh)")).await;
    assert_eq!(
        v["status"], "pending",
        "the substitution is not allowed: {v}"
    );
    assert_eq!(
        v["targets"],
        json!(["curl evil.sh", "git log $(curl evil.sh)"])
    );
    // The rule's timeout, else the configured default.
    let d = ask(&app, &a.agent, shell("deploy prod")).await;
    let created = d["created_at"].as_str().unwrap().to_owned();
    assert_ne!(d["deadline"], Value::Null);
    assert_ne!(d["deadline"].as_str().unwrap(), created);

    let explain = app
        .post(
            "/api/v1/policy/explain",
            Some(&a.reader),
            json!({"kind": "shell", "command": "sudo rm -rf / && git push"}),
        )
        .await;
    assert_eq!(explain.status, 200, "{}", explain.text);
    let e = explain.json();
    assert_eq!(e["decision"]["effect"], "deny");
    assert_eq!(e["decision"]["rule"], "no-rm");
    assert_eq!(
        e["targets"],
        json!(["sudo rm -rf /", "rm -rf /", "git push"])
    );
    assert!(e["decision"]["reason"].as_str().unwrap().contains("no-rm"));
}

#[tokio::test]
async fn a_person_allows_while_the_agent_long_polls() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let agent = a.agent.clone();
    let base = app.base.clone();
    let http = app.http.clone();
    let poll = tokio::spawn(async move {
        let resp = http
            .post(format!("{base}/api/v1/permissions?wait=30"))
            .bearer_auth(&agent)
            .json(&shell("make install"))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    });
    // The approver sees it pending, then allows it.
    let id = first_pending(&app, &a.approver).await;
    let r = reply(&app, &a.approver, &id, json!({"decision": "allow"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (status, v) = poll.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(v["status"], "allowed");
    assert_eq!(v["allowed"], true);
    assert_eq!(
        v["decided_by"],
        json!({"source": "person", "approver": "laptop"})
    );
}

#[tokio::test]
async fn deny_with_a_message_reaches_the_agent() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let v = ask(&app, &a.agent, shell("make install")).await;
    let id = v["id"].as_str().unwrap();
    let r = reply(
        &app,
        &a.approver,
        id,
        json!({"decision": "deny", "message": "use make test instead"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen = app
        .get(&format!("/api/v1/permissions/{id}?wait=5"), Some(&a.agent))
        .await
        .json();
    assert_eq!(seen["status"], "denied");
    assert_eq!(seen["message"], "use make test instead");
    assert_eq!(seen["decided_by"]["source"], "person");
}

#[tokio::test]
async fn two_racing_replies_one_wins_the_other_gets_409_with_the_winner() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let base = audit_seq(&app).await;
    for round in 0..5 {
        let v = ask(&app, &a.agent, shell(&format!("make round{round}"))).await;
        let id = v["id"].as_str().unwrap().to_owned();
        let (r1, r2) = tokio::join!(
            reply(&app, &a.approver, &id, json!({"decision": "allow"})),
            reply(&app, &a.second, &id, json!({"decision": "deny"})),
        );
        let mut codes = [r1.status.as_u16(), r2.status.as_u16()];
        codes.sort();
        assert_eq!(codes, [200, 409], "{} / {}", r1.text, r2.text);
        let (winner, loser) = if r1.status == 200 { (r1, r2) } else { (r2, r1) };
        let err = loser.expect_error(409, "already_decided");
        assert_eq!(
            err["decision"]["status"],
            winner.json()["permission"]["status"]
        );
    }
    // Concurrent writes share group commits; the chain stays whole.
    let v = app
        .get("/api/v1/audit/verify", Some(&a.reader))
        .await
        .json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries"], base + 10);
}

#[tokio::test]
async fn reply_errors_are_clear_and_change_nothing() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let both = app
        .create_token("both", &["request", "approve"], json!("1d"))
        .await
        .0;
    let v = ask(&app, &both, shell("make x")).await;
    let id = v["id"].as_str().unwrap().to_owned();
    reply(&app, &both, &id, json!({"decision": "allow"}))
        .await
        .expect_error(403, "self_approval");
    // An admin is no exception when it asked itself.
    let own = ask(&app, &app.admin, shell("make y")).await;
    reply(
        &app,
        &app.admin,
        own["id"].as_str().unwrap(),
        json!({"decision": "allow"}),
    )
    .await
    .expect_error(403, "self_approval");
    reply(
        &app,
        &a.approver,
        "req_0000000000000000",
        json!({"decision": "allow"}),
    )
    .await
    .expect_error(404, "permission_not_found");
    let e = reply(&app, &a.approver, &id, json!({"decision": "maybe"}))
        .await
        .expect_error(400, "invalid_request");
    assert!(
        e["message"].as_str().unwrap().contains("`allow` or `deny`"),
        "{e}"
    );
    reply(
        &app,
        &a.approver,
        &id,
        json!({"decision": "allow", "remember": "forever"}),
    )
    .await
    .expect_error(400, "invalid_request");
    reply(
        &app,
        &a.approver,
        &id,
        json!({"decision": "allow", "remember": "always", "expires_in": 0}),
    )
    .await
    .expect_error(400, "invalid_request");
    reply(&app, &a.agent, &id, json!({"decision": "allow"}))
        .await
        .expect_error(403, "insufficient_scope");
    let still = app
        .get(&format!("/api/v1/permissions/{id}"), Some(&a.reader))
        .await
        .json();
    assert_eq!(still["status"], "pending", "nothing was decided");
    assert_eq!(
        app.get("/api/v1/rules", Some(&a.reader)).await.json()["rules"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    reply(&app, &a.approver, &id, json!({"decision": "deny"})).await;
    let e = reply(&app, &a.second, &id, json!({"decision": "allow"}))
        .await
        .expect_error(409, "already_decided");
    assert!(e["message"].as_str().unwrap().contains("laptop"), "{e}");
}

#[tokio::test]
async fn timeouts_are_explicit_outcomes_never_a_persons_denial() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let v = ask(
        &app,
        &a.agent,
        json!({"kind": "shell", "command": "make z", "timeout": 30}),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(29));
    assert_eq!(
        app.get(&format!("/api/v1/permissions/{id}"), Some(&a.agent))
            .await
            .json()["status"],
        "pending"
    );
    app.clock.advance(Duration::from_secs(1));
    // Moving the clock wakes the expirer, as real time would: the timeout is recorded without
    // anyone reading the request (a read would time it out by itself).
    expired_by_the_expirer(&app, &id).await;
    let seen = app
        .get(&format!("/api/v1/permissions/{id}"), Some(&a.agent))
        .await
        .json();
    assert_eq!(seen["status"], "timeout");
    assert_eq!(seen["allowed"], false);
    assert_eq!(seen["decided_by"]["source"], "timeout");
    assert!(seen["decided_by"].get("approver").is_none());
    let e = reply(&app, &a.approver, &id, json!({"decision": "allow"}))
        .await
        .expect_error(409, "already_decided");
    assert!(e["message"].as_str().unwrap().contains("timeout"), "{e}");
    // `timeout: 0` waits indefinitely.
    let forever = ask(
        &app,
        &a.agent,
        json!({"kind": "shell", "command": "make w", "timeout": 0}),
    )
    .await;
    assert_eq!(forever["deadline"], Value::Null);
    app.clock.advance(Duration::from_secs(365 * 86_400));
    assert_eq!(app.broker.expire_due().await.unwrap(), 0, "nothing was due");
    // (The agent's one-day token has long expired; the owner reads it.)
    let seen = app
        .get(
            &format!("/api/v1/permissions/{}", forever["id"].as_str().unwrap()),
            Some(&app.admin),
        )
        .await
        .json();
    assert_eq!(seen["status"], "pending");
}

#[tokio::test]
async fn a_real_short_timeout_unblocks_a_long_poll_as_timeout_behind_a_later_deadline() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    // The system clock drives this one: a real second passes.
    let dir = tempfile::tempdir().unwrap();
    let config = crate::harness::config_for(dir.path(), "default_timeout = 1\n");
    let real = agentgate::app::App::build(&config, agentgate::clock::Clock::System)
        .await
        .unwrap();
    let addr = real.local_addr();
    let admin = std::fs::read_to_string(real.admin_token_file())
        .unwrap()
        .trim()
        .to_owned();
    tokio::spawn(real.run_until_stopped(std::future::pending()));
    let http = &app.http;
    let agent: Value = send(
        http.post(format!("http://{addr}/api/v1/tokens"))
            .bearer_auth(&admin)
            .json(&json!({"name": "agent", "scopes": ["request"]})),
    )
    .await;
    let token = agent["token"].as_str().unwrap();
    // A later deadline first: the expirer plans to sleep until it (or a minute), and the shorter
    // deadline that follows must wake it sooner.
    let long: Value = send(
        http.post(format!("http://{addr}/api/v1/permissions"))
            .bearer_auth(token)
            .json(&json!({"kind": "shell", "command": "make long", "timeout": 3600})),
    )
    .await;
    assert_eq!(long["status"], "pending");
    // Nobody waits on or reads this one: only the expirer can time it out.
    let unwatched: Value = send(
        http.post(format!("http://{addr}/api/v1/permissions"))
            .bearer_auth(token)
            .json(&json!({"kind": "shell", "command": "make unwatched", "timeout": 1})),
    )
    .await;
    let resp = http
        .post(format!("http://{addr}/api/v1/permissions?wait=20"))
        .bearer_auth(token)
        .json(&shell("make slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "timeout");
    let long_id = long["id"].as_str().unwrap();
    let still = send(
        http.get(format!("http://{addr}/api/v1/permissions/{long_id}"))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(still["status"], "pending");
    // Its deadline has passed; the expirer records the timeout (within a few seconds at most).
    eventually("the expirer times out the unwatched request", || async {
        let audit = send(
            http.get(format!("http://{addr}/api/v1/audit"))
                .bearer_auth(&admin),
        )
        .await;
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| {
                e["event"] == "permission.decided"
                    && e["data"]["status"] == "timeout"
                    && e["subject"] == unwatched["id"]
            })
            .then_some(())
    })
    .await;
    let _ = a;
}

#[tokio::test]
async fn pending_requests_survive_a_restart_with_their_remaining_time() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let keep = ask(
        &app,
        &a.agent,
        json!({"kind": "shell", "command": "make keep", "timeout": 100}),
    )
    .await;
    let lapse = ask(
        &app,
        &a.agent,
        json!({"kind": "shell", "command": "make lapse", "timeout": 10}),
    )
    .await;
    let app = app.restart().await;
    app.clock.advance(Duration::from_secs(20));
    let k = app
        .get(
            &format!("/api/v1/permissions/{}", keep["id"].as_str().unwrap()),
            Some(&a.agent),
        )
        .await
        .json();
    assert_eq!(k["status"], "pending");
    assert_eq!(
        k["deadline"], keep["deadline"],
        "the same deadline, so the remaining time is kept"
    );
    let l = app
        .get(
            &format!(
                "/api/v1/permissions/{}?wait=5",
                lapse["id"].as_str().unwrap()
            ),
            Some(&a.agent),
        )
        .await
        .json();
    assert_eq!(
        l["status"], "timeout",
        "its deadline passed while the daemon was down"
    );
    let r = reply(
        &app,
        &a.approver,
        keep["id"].as_str().unwrap(),
        json!({"decision": "allow"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let k = app
        .get(
            &format!("/api/v1/permissions/{}", keep["id"].as_str().unwrap()),
            Some(&a.agent),
        )
        .await
        .json();
    assert_eq!(k["status"], "allowed");
    let v = app
        .get("/api/v1/audit/verify", Some(&a.reader))
        .await
        .json();
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test]
async fn remember_for_the_session_and_always_with_narrow_rules() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let v = ask(&app, &a.agent, shell("cargo build --release")).await;
    let r = reply(
        &app,
        &a.approver,
        v["id"].as_str().unwrap(),
        json!({"decision": "allow", "remember": "session"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let saved = &r.json()["remembered"][0];
    assert_eq!(saved["session"], "s1");
    assert_eq!(saved["pattern"], "{cargo build,cargo build *}");
    assert_eq!(saved["origin"]["request_id"], v["id"]);
    assert_eq!(
        ask(&app, &a.agent, shell("cargo build")).await["status"],
        "allowed"
    );
    let mut other = shell("cargo build");
    other["session"] = json!("s2");
    assert_eq!(
        ask(&app, &a.agent, other).await["status"],
        "pending",
        "another session still asks"
    );

    // Two identical pending requests; "always" on one resolves the other at once.
    let p1 = ask(&app, &a.agent, shell("npm test")).await;
    // What "always" would save is shown before saving.
    assert_eq!(p1["suggested_rules"][0]["pattern"], "npm test");
    assert_eq!(p1["suggested_rules"][0]["agent"], "opencode");
    let p2 = ask(&app, &a.agent, shell("npm test")).await;
    let r = reply(
        &app,
        &a.approver,
        p1["id"].as_str().unwrap(),
        json!({"decision": "allow", "remember": "always", "expires_in": "1h"}),
    )
    .await;
    let out = r.json();
    assert_eq!(out["resolved"], json!([p2["id"]]), "{out}");
    let p2v = app
        .get(
            &format!("/api/v1/permissions/{}", p2["id"].as_str().unwrap()),
            Some(&a.agent),
        )
        .await
        .json();
    assert_eq!(p2v["status"], "allowed");
    assert_eq!(p2v["decided_by"]["auto_resolved"], true);
    assert_eq!(p2v["decided_by"]["source"], "rule");
    assert_eq!(
        ask(&app, &a.agent, shell("npm test")).await["status"],
        "allowed"
    );
    // The remembered rule expires.
    app.clock.advance(Duration::from_secs(3601));
    assert_eq!(
        ask(&app, &a.agent, shell("npm test")).await["status"],
        "pending"
    );
}

#[tokio::test]
async fn an_always_rule_is_in_force_when_the_released_agent_asks_again() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    for round in 0..5 {
        let command = format!("make target-{round}");
        let (agent, base, http, body) = (
            a.agent.clone(),
            app.base.clone(),
            app.http.clone(),
            shell(&command),
        );
        // The agent long-polls; the moment it is released it asks the same thing again.
        let poll = tokio::spawn(async move {
            let ask = |path: &'static str| {
                http.post(format!("{base}{path}"))
                    .bearer_auth(&agent)
                    .json(&body)
                    .send()
            };
            let first: Value = ask("/api/v1/permissions?wait=30")
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let again: Value = ask("/api/v1/permissions")
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (first, again)
        });
        let id = first_pending(&app, &a.approver).await;
        let r = reply(
            &app,
            &a.approver,
            &id,
            json!({"decision": "allow", "remember": "always"}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let (first, again) = poll.await.unwrap();
        assert_eq!(first["status"], "allowed", "round {round}");
        assert_eq!(again["status"], "allowed", "round {round}: {again}");
        assert_eq!(again["decided_by"]["source"], "rule", "round {round}");
    }
}

#[tokio::test]
async fn a_remembered_allow_never_overrides_a_configured_ask() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let v = ask(&app, &a.agent, shell("deploy prod")).await;
    reply(
        &app,
        &a.approver,
        v["id"].as_str().unwrap(),
        json!({"decision": "allow", "remember": "always", "pattern": "deploy *"}),
    )
    .await;
    let again = ask(&app, &a.agent, shell("deploy prod")).await;
    assert_eq!(
        again["status"], "pending",
        "deny > ask > allow, whatever the origin"
    );
}

#[tokio::test]
async fn two_of_m_approvals_and_any_deny_wins() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let transfer = json!({"kind": "tool", "name": "bank__transfer", "input": {"amount": 10}});
    let v = ask(&app, &a.agent, transfer.clone()).await;
    assert_eq!(v["approvals_required"], 2);
    let id = v["id"].as_str().unwrap().to_owned();
    // Remembering an allow here could never take effect (the ask rule outranks it): refused,
    // and the approval is not recorded either.
    for remember in ["session", "always"] {
        let err = reply(
            &app,
            &a.approver,
            &id,
            json!({"decision": "allow", "remember": remember}),
        )
        .await
        .expect_error(400, "invalid_request");
        assert_eq!(err["field"], "remember");
    }
    // The inbox does not offer them for such a request.
    let card = app
        .get(&format!("/ui/cards/{id}"), Some(&a.approver))
        .await
        .text;
    assert!(card.contains(r#"data-reply="session" disabled"#), "{card}");
    assert!(
        card.contains(r#"data-action="always""#) && card.contains("allow it once"),
        "{card}"
    );
    let r = reply(&app, &a.approver, &id, json!({"decision": "allow"}))
        .await
        .json();
    assert_eq!(r["permission"]["status"], "pending");
    assert_eq!(r["permission"]["approvals"], json!(["laptop"]));
    reply(&app, &a.approver, &id, json!({"decision": "allow"}))
        .await
        .expect_error(409, "already_approved");
    // Approvals count people, not credentials: the owner's phone token is the same approver
    // as the owner's laptop token.
    reply(&app, &a.phone, &id, json!({"decision": "allow"}))
        .await
        .expect_error(409, "already_approved");
    let r = reply(&app, &a.second, &id, json!({"decision": "allow"}))
        .await
        .json();
    assert_eq!(r["permission"]["status"], "allowed");
    assert_eq!(
        r["permission"]["decided_by"]["approvers"],
        json!(["bob-phone", "laptop"])
    );

    let v = ask(&app, &a.agent, transfer).await;
    let id = v["id"].as_str().unwrap().to_owned();
    reply(&app, &a.approver, &id, json!({"decision": "allow"})).await;
    let r = reply(&app, &a.second, &id, json!({"decision": "deny"}))
        .await
        .json();
    assert_eq!(r["permission"]["status"], "denied");
}

#[tokio::test]
async fn only_the_requester_or_a_reader_follows_a_request_and_lists_page() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let other_agent = app
        .create_token("other-agent", &["request"], json!("1d"))
        .await
        .0;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            ask(&app, &a.agent, shell(&format!("make t{i}"))).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let path = format!("/api/v1/permissions/{}", ids[0]);
    assert_eq!(app.get(&path, Some(&a.agent)).await.status, 202);
    assert_eq!(app.get(&path, Some(&a.reader)).await.status, 202);
    let e = app
        .get(&path, Some(&other_agent))
        .await
        .expect_error(403, "insufficient_scope");
    assert_eq!(e["required"], "read");
    app.get("/api/v1/permissions", Some(&a.agent))
        .await
        .expect_error(403, "insufficient_scope");

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(
                &format!("/api/v1/permissions?status=pending&limit=2{cursor}"),
                Some(&a.reader),
            )
            .await
            .json();
        for p in page["permissions"].as_array().unwrap() {
            seen.push(p["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    let e = app
        .get("/api/v1/permissions?status=maybe", Some(&a.reader))
        .await
        .expect_error(400, "invalid_query");
    assert!(e["message"].as_str().unwrap().contains("pending"), "{e}");
    app.get("/api/v1/permissions?cursor=zzz", Some(&a.reader))
        .await
        .expect_error(400, "invalid_request");
}

#[tokio::test]
async fn bad_permission_requests_are_refused_and_nothing_is_written() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let cases = [
        (
            json!({"kind": "telepathy"}),
            "kind",
            "`file`, `shell`, `tool`, `network`, `directory`",
        ),
        (
            json!({"command": "ls"}),
            "kind",
            "file, shell, tool, network, directory",
        ),
        (
            json!({"kind": "file", "operation": "chmod", "path": "/x"}),
            "operation",
            "`read`, `create`, `modify`",
        ),
        (
            json!({"kind": "file", "path": "/x"}),
            "operation",
            "read, create, modify",
        ),
        (
            json!({"kind": "file", "operation": "read"}),
            "path",
            "required",
        ),
        (
            json!({"kind": "file", "operation": "read", "path": "relative/x"}),
            "path",
            "absolute",
        ),
        (
            json!({"kind": "file", "operation": "modify", "path": "/x", "content_preview": "x".repeat(5000)}),
            "content_preview",
            "4096",
        ),
        (
            json!({"kind": "file", "operation": "rename", "path": "/x"}),
            "target_path",
            "required",
        ),
        (json!({"kind": "shell"}), "command", "required"),
        (
            json!({"kind": "shell", "command": "ls", "url": "http://x"}),
            "url",
            "not a field",
        ),
        (json!({"kind": "tool"}), "name", "required"),
        (
            json!({"kind": "network", "url": "/relative"}),
            "url",
            "absolute",
        ),
        (
            json!({"kind": "shell", "command": "ls", "surprise": 1}),
            "surprise",
            "unknown field",
        ),
    ];
    let before = audit_seq(&app).await;
    for (body, field, hint) in cases {
        let r = app
            .post("/api/v1/permissions", Some(&a.agent), body.clone())
            .await;
        let e = r.expect_error(400, "invalid_request");
        assert_eq!(e["field"], field, "{body}: {e}");
        assert!(e["message"].as_str().unwrap().contains(hint), "{body}: {e}");
    }
    let list = app.get("/api/v1/permissions", Some(&a.reader)).await.json();
    assert_eq!(
        list["permissions"].as_array().unwrap().len(),
        0,
        "nothing written"
    );
    assert_eq!(audit_seq(&app).await, before, "nothing audited");
    // `wait` above the cap is clamped, not refused.
    let r = app
        .post(
            "/api/v1/permissions?wait=100000",
            Some(&a.agent),
            shell("git status"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.post(
        "/api/v1/permissions?wait=soon",
        Some(&a.agent),
        shell("git status"),
    )
    .await
    .expect_error(400, "invalid_query");
}

#[tokio::test]
async fn rules_are_listed_added_and_deleted_and_configured_ones_are_read_only() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let pending = ask(&app, &a.agent, shell("make docs")).await;
    let r = app
        .post(
            "/api/v1/rules",
            Some(&app.admin),
            json!({"action": "allow", "kind": "shell", "pattern": "make docs", "expires_in": "1d"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let added = r.json();
    assert_eq!(added["resolved"], json!([pending["id"]]));
    let id = added["rule"]["id"].as_str().unwrap().to_owned();
    assert_eq!(added["rule"]["origin"]["source"], "api");
    for (body, field) in [
        (
            json!({"action": "allow", "kind": "shell", "pattern": "make ["}),
            "pattern",
        ),
        (
            json!({"action": "allow", "kind": "shell", "pattern": "x", "expires_in": -1}),
            "expires_in",
        ),
        (
            json!({"action": "allow", "kind": "shell", "pattern": "x", "expires_in": 0}),
            "expires_in",
        ),
        (
            json!({"action": "allow", "kind": "shell", "pattern": "x", "approvals": 2}),
            "approvals",
        ),
        (
            json!({"action": "sometimes", "kind": "shell", "pattern": "x"}),
            "action",
        ),
    ] {
        let e = app
            .post("/api/v1/rules", Some(&app.admin), body.clone())
            .await
            .expect_error(400, "invalid_request");
        assert_eq!(e["field"], field, "{body}: {e}");
    }
    app.post(
        "/api/v1/rules",
        Some(&a.approver),
        json!({"action": "allow", "kind": "shell", "pattern": "x"}),
    )
    .await
    .expect_error(403, "insufficient_scope");
    let rules = app.get("/api/v1/rules", Some(&a.reader)).await.json();
    assert_eq!(rules["rules"].as_array().unwrap().len(), 5);
    assert_eq!(rules["rules"][0]["read_only"], true);
    app.request(Method::DELETE, "/api/v1/rules/git", Some(&app.admin), None)
        .await
        .expect_error(409, "rule_read_only");
    app.request(
        Method::DELETE,
        "/api/v1/rules/rule_nope",
        Some(&app.admin),
        None,
    )
    .await
    .expect_error(404, "rule_not_found");
    let r = app
        .request(
            Method::DELETE,
            &format!("/api/v1/rules/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        ask(&app, &a.agent, shell("make docs")).await["status"],
        "pending"
    );
}

#[tokio::test]
async fn events_stream_live_and_resume_from_last_event_id() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    // The tokens just created are audited; the stream starts after them.
    let base = audit_seq(&app).await;
    let first = ask(&app, &a.agent, shell("make e1")).await;
    let mut stream = app
        .http
        .get(format!("{}/api/v1/events", app.base))
        .bearer_auth(&a.reader)
        .header("last-event-id", base.to_string())
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
    let mut text = String::new();
    let mut events = Vec::new();
    let mut decided = false;
    while events.len() < 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let id = block
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .map(str::to_owned);
            let ev = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_owned);
            if let (Some(id), Some(ev)) = (id, ev) {
                events.push((id.parse::<i64>().unwrap(), ev));
            }
        }
        if !decided && !events.is_empty() {
            // The backlog arrived; now something live.
            reply(
                &app,
                &a.approver,
                first["id"].as_str().unwrap(),
                json!({"decision": "allow"}),
            )
            .await;
            ask(&app, &a.agent, shell("make e2")).await;
            decided = true;
        }
    }
    assert_eq!(
        events,
        vec![
            (base + 1, "permission.created".into()),
            (base + 2, "permission.decided".into()),
            (base + 3, "permission.created".into())
        ]
    );
    drop(stream);
    // Resuming after event 2 yields exactly event 3 first.
    let mut resumed = app
        .http
        .get(format!("{}/api/v1/events", app.base))
        .bearer_auth(&a.reader)
        .header("last-event-id", (base + 2).to_string())
        .send()
        .await
        .unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(10), resumed.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let chunk = String::from_utf8_lossy(&chunk);
    let third = format!("id: {}\n", base + 3);
    assert!(
        chunk.starts_with(&format!("{third}event: permission.created\n")) || chunk.contains(&third),
        "{chunk}"
    );
    assert!(
        !chunk.contains(&format!("id: {}\n", base + 1))
            && !chunk.contains(&format!("id: {}\n", base + 2)),
        "{chunk}"
    );
    app.get("/api/v1/events", Some(&a.agent))
        .await
        .expect_error(403, "insufficient_scope");
}

#[tokio::test]
async fn the_audit_chain_verifies_and_names_an_edited_entry() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let base = audit_seq(&app).await;
    for i in 0..3 {
        let v = ask(&app, &a.agent, shell(&format!("make a{i}"))).await;
        reply(
            &app,
            &a.approver,
            v["id"].as_str().unwrap(),
            json!({"decision": "deny", "message": "no"}),
        )
        .await;
    }
    let v = app
        .get("/api/v1/audit/verify", Some(&a.reader))
        .await
        .json();
    assert_eq!(
        v,
        json!({"ok": true, "entries": base + 6, "first_bad": null})
    );
    let entries = app
        .get(
            &format!("/api/v1/audit?after={base}&limit=10"),
            Some(&a.reader),
        )
        .await
        .json();
    let e = &entries["entries"][1];
    assert_eq!(e["event"], "permission.decided");
    assert_eq!(e["data"]["decided_by"]["approver"], "laptop");

    // Edit one row behind the daemon's back, as `sqlite3` or `psql` would.
    Behind::open(&app)
        .await
        .exec(
            "UPDATE audit SET data = replace(data, 'laptop', 'mallory') WHERE seq = $1",
            &[Bind::Int(base + 2)],
        )
        .await;
    let v = app
        .get("/api/v1/audit/verify", Some(&a.reader))
        .await
        .json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad"]["seq"], base + 2);
    assert_eq!(v["first_bad"]["problem"], "altered");
}

#[tokio::test]
async fn the_openwork_permission_api_works_unmodified() {
    let app = spawn_app_with(
        r#"
[[rules]]
action = "allow"
kind = "file"
pattern = "/tmp/ok/**"
"#,
    )
    .await;
    let a = actors(&app).await;
    let r = app
        .post(
            "/permission",
            Some(&a.agent),
            json!({"operation": "create", "filePath": "/tmp/ok/a.txt", "contentPreview": "hi"}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()),
        (200, json!({"allowed": true}))
    );
    let r = app
        .post(
            "/permission",
            Some(&a.agent),
            json!({"operation": "chmod", "filePath": "/tmp/x"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": "Invalid operation. Must be one of: create, delete, rename, move, modify, overwrite"})
    );
    // Blocks until a person answers.
    let agent = a.agent.clone();
    let base = app.base.clone();
    let http = app.http.clone();
    let blocked = tokio::spawn(async move {
        let r = http
            .post(format!("{base}/permission"))
            .bearer_auth(&agent)
            .json(&json!({"operation": "delete", "filePaths": ["/tmp/no/a", "/tmp/no/b"]}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    let id = first_pending(&app, &a.reader).await;
    reply(&app, &a.approver, &id, json!({"decision": "deny"})).await;
    assert_eq!(blocked.await.unwrap(), (200, json!({"allowed": false})));
    app.post(
        "/permission",
        None,
        json!({"operation": "create", "filePath": "/tmp/ok/a"}),
    )
    .await
    .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn the_opt_in_openwork_listener_takes_no_token_but_only_asks() {
    let app = spawn_app_with(
        r#"
[compat.openwork]
listen = "127.0.0.1:0"

[[rules]]
action = "allow"
kind = "file"
pattern = "/tmp/ok/**"
"#,
    )
    .await;
    let ow = app.openwork.expect("listener configured");
    let base = format!("http://{ow}");
    let r = app
        .http
        .post(format!("{base}/permission"))
        .json(&json!({"operation": "modify", "filePath": "/tmp/ok/x.txt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"allowed": true}));
    let reader = app.create_token("viewer", &["read"], json!("1d")).await.0;
    let list = app.get("/api/v1/permissions", Some(&reader)).await.json();
    assert_eq!(list["permissions"][0]["requester"], "openwork-compat");
    // Nothing else is served there: not the API, not replies.
    for path in ["/api/v1/permissions", "/api/v1/whoami", "/healthz"] {
        let r = app.http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = app
        .http
        .post(format!("{base}/api/v1/permissions/req_x/reply"))
        .json(&json!({"decision": "allow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The same browser-facing checks: a foreign Origin cannot make it ask.
    let r = app
        .http
        .post(format!("{base}/permission"))
        .header("origin", "http://evil.example.com")
        .json(&json!({"operation": "modify", "filePath": "/tmp/ok/x.txt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// Reads an event stream until the server ends it; panics if it is still open after 10 s.
async fn read_until_closed(mut stream: reqwest::Response) -> String {
    let mut text = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None) | Err(_)) => return text,
            Err(_) => panic!("the stream is still open: {text}"),
        }
    }
}

#[tokio::test]
async fn an_event_stream_ends_when_its_token_is_revoked() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let (watcher, watcher_id) = app.create_token("watcher", &["read"], json!("1d")).await;
    let (other, _) = app.create_token("other", &["read"], json!("1d")).await;
    let open = |token: String| {
        let http = app.http.clone();
        let url = format!("{}/api/v1/events", app.base);
        async move { http.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let mut stream = open(watcher.clone()).await;
    let unaffected = open(other).await;
    assert_eq!(stream.status(), 200);
    ask(&app, &a.agent, shell("make r1")).await;
    // The stream is live: it carries the request (on PostgreSQL through the follower, which may
    // lag the revocation below, so it is read before the token is revoked).
    let mut seen = String::new();
    while !seen.contains("permission.created") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no permission.created within 10 s: {seen}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended early: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{watcher_id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // It ends with its token.
    read_until_closed(stream).await;
    // Another token's stream goes on, and the revoked token cannot reconnect.
    ask(&app, &a.agent, shell("make r2")).await;
    let mut unaffected = unaffected;
    let chunk = tokio::time::timeout(Duration::from_secs(10), unaffected.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(chunk.is_some());
    app.get("/api/v1/events", Some(&watcher))
        .await
        .expect_error(401, "unauthorized");
}

/// Sends a request to a daemon other than the harness's and reads its JSON answer.
async fn send(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn waiters_leave_nothing_behind_and_shutdown_answers_them() {
    let mut app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let long_poll = |id: String| {
        let http = app.http.clone();
        let url = format!("{}/api/v1/permissions/{id}?wait=100", app.base);
        let token = a.agent.clone();
        tokio::spawn(async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        })
    };
    let one = ask(&app, &a.agent, shell("make one")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let two = ask(&app, &a.agent, shell("make two")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answered = long_poll(one.clone());
    let abandoned = long_poll(two);
    eventually("both requests watched", || async {
        (app.broker.watched() == 2).then_some(())
    })
    .await;

    // A client that goes away: its waiter ends with its connection.
    abandoned.abort();
    eventually("the abandoned watch forgotten", || async {
        (app.broker.watched() == 1).then_some(())
    })
    .await;

    // An answer releases the other, and nothing stays in the waiter map.
    let r = app
        .post(
            &format!("/api/v1/permissions/{one}/reply"),
            Some(&a.approver),
            json!({"decision": "allow"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (status, v) = answered.await.unwrap();
    assert_eq!((status, v["status"].as_str()), (200, Some("allowed")));
    eventually("no watch left", || async {
        (app.broker.watched() == 0).then_some(())
    })
    .await;

    // Shutdown answers a parked long-poll at once with the request as it stands.
    let three = ask(&app, &a.agent, shell("make three")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let parked = long_poll(three);
    eventually("the third watched", || async {
        (app.broker.watched() == 1).then_some(())
    })
    .await;
    app.shutdown().await; // fails after 10 s if the long-poll holds it up
    let (status, v) = parked.await.unwrap();
    assert_eq!((status, v["status"].as_str()), (202, Some("pending")));
}

#[tokio::test]
async fn no_credential_releases_its_own_request_through_a_rule_it_writes() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let both = app
        .create_token("both", &["request", "approve"], json!("1d"))
        .await
        .0;
    // The same command, asked by `both` and by the agent, with the same declared names.
    let own = ask(&app, &both, shell("npm publish")).await;
    let theirs = ask(&app, &a.agent, shell("npm publish")).await;
    let r = reply(
        &app,
        &both,
        theirs["id"].as_str().unwrap(),
        json!({"decision": "allow", "remember": "always"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let out = r.json();
    assert_eq!(out["resolved"], json!([]), "{out}");
    let own_now = app
        .get(
            &format!("/api/v1/permissions/{}", own["id"].as_str().unwrap()),
            Some(&both),
        )
        .await
        .json();
    assert_eq!(own_now["status"], "pending", "{own_now}");
    // The rule is bound to the credential that asked, not to the names it declared.
    assert_eq!(
        ask(&app, &both, shell("npm publish")).await["status"],
        "pending"
    );
    let impostor = app
        .create_token("impostor", &["request"], json!("1d"))
        .await
        .0;
    assert_eq!(
        ask(&app, &impostor, shell("npm publish")).await["status"],
        "pending",
        "another token declaring the same agent, workspace and session"
    );
    assert_eq!(
        ask(&app, &a.agent, shell("npm publish")).await["status"],
        "allowed"
    );
}

#[tokio::test]
async fn an_edited_pattern_must_cover_the_request_and_be_no_wider_unless_admin() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    let v = ask(&app, &a.agent, shell("cargo test --all")).await;
    let id = v["id"].as_str().unwrap();
    for wide in ["*", "cargo *", "{cargo test *,curl *}"] {
        reply(
            &app,
            &a.approver,
            id,
            json!({"decision": "allow", "remember": "always", "pattern": wide}),
        )
        .await
        .expect_error(403, "pattern_too_wide");
    }
    reply(
        &app,
        &a.approver,
        id,
        json!({"decision": "allow", "remember": "always", "pattern": "ls *"}),
    )
    .await
    .expect_error(400, "invalid_request");
    assert_eq!(
        app.get("/api/v1/rules", Some(&app.admin)).await.json()["rules"]
            .as_array()
            .unwrap()
            .len(),
        4,
        "nothing was written"
    );
    // Narrower than the suggestion is fine for an approver; wider is fine for admin.
    let r = reply(
        &app,
        &a.approver,
        id,
        json!({"decision": "allow", "remember": "always", "pattern": "cargo test --all*"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = ask(&app, &a.agent, shell("cargo fmt")).await;
    let r = reply(
        &app,
        &app.admin,
        v["id"].as_str().unwrap(),
        json!({"decision": "allow", "remember": "always", "pattern": "cargo *"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn opaque_commands_are_never_allowed_by_a_rule_and_deny_sees_through_wrappers() {
    let app = spawn_app_with(RULES).await;
    let a = actors(&app).await;
    for cmd in [
        "git status $(( $(touch /tmp/m) ))",
        "case a in $(touch /tmp/m)) ;; *) git status;; esac",
        "x='$(touch /tmp/m)'; git status ${x@P}",
        "PATH=/tmp/evil git status",
        "GIT_SSH_COMMAND='touch /tmp/m' git fetch",
        "git status >&/tmp/some-file",
    ] {
        let v = ask(&app, &a.agent, shell(cmd)).await;
        assert_eq!(v["status"], "pending", "{cmd}: {v}");
    }
    for cmd in [
        "sudo -u root rm -rf /x",
        "timeout -s KILL 5 rm x",
        "env -u HOME rm x",
        "exec -a x rm y",
        "stdbuf -o L rm x",
        "/bin/rm x",
        "$'\\x72m' x",
    ] {
        let v = ask(&app, &a.agent, shell(cmd)).await;
        assert_eq!(v["status"], "denied", "{cmd}: {v}");
    }
    let explained = app
        .post(
            "/api/v1/policy/explain",
            Some(&app.admin),
            json!({"kind": "shell", "command": "PATH=/tmp/e git status $x > out"}),
        )
        .await
        .json();
    let part = &explained["shell"][0];
    assert_eq!(part["assignments"], json!(["PATH=/tmp/e"]), "{explained}");
    assert_eq!(part["redirects"], json!([">out"]), "{explained}");
    assert!(
        part["opaque"].as_str().unwrap().contains("$x"),
        "{explained}"
    );
    // A remembered "always" cannot be saved for an opaque command: it could never apply.
    let v = ask(&app, &a.agent, shell("git status $x")).await;
    reply(
        &app,
        &a.approver,
        v["id"].as_str().unwrap(),
        json!({"decision": "allow", "remember": "always"}),
    )
    .await
    .expect_error(400, "invalid_request");
}

#[tokio::test]
async fn an_agent_cannot_bury_the_inbox_pending_and_old_content_are_capped_per_credential() {
    let app = spawn_app_with(&format!("max_pending_per_requester = 3\n{RULES}")).await;
    let a = actors(&app).await;
    for i in 0..3 {
        ask(&app, &a.agent, shell(&format!("make p{i}"))).await;
    }
    let r = app
        .post("/api/v1/permissions", Some(&a.agent), shell("make p3"))
        .await;
    let body = r.expect_error(429, "too_many_pending");
    assert_eq!(r.header("retry-after"), "30", "{body}");
    // Decided at once by the policy still works; another credential is not affected.
    assert_eq!(
        ask(&app, &a.agent, shell("git status")).await["status"],
        "allowed"
    );
    let other = app.create_token("other", &["request"], json!("1d")).await.0;
    ask(&app, &other, shell("make q")).await;
    // The refusal is audited.
    let audit = app.get("/api/v1/audit", Some(&app.admin)).await.json();
    let refused: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "permission.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{audit}");
    assert_eq!(refused[0]["data"]["requester"], "agent");
    // Concurrent requests cannot overshoot: the budget is checked in the insert's transaction.
    let racer = app.create_token("racer", &["request"], json!("1d")).await.0;
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let (http, base, token) = (app.http.clone(), app.base.clone(), racer.clone());
            tokio::spawn(async move {
                http.post(format!("{base}/api/v1/permissions"))
                    .bearer_auth(token)
                    .json(&shell(&format!("make race{i}")))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for a in attempts {
        codes.push(a.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 202).count(), 3, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 17, "{codes:?}");
    // old_content: 256 KiB each at most, 2 MiB pending per credential.
    let big = "x".repeat(256 * 1024);
    let app2 = spawn_app_with(RULES).await;
    let writer2 = app2
        .create_token("writer", &["request"], json!("1d"))
        .await
        .0;
    let file = |i: usize| {
        json!({"kind": "file", "operation": "overwrite", "path": format!("/tmp/f{i}"),
               "old_content": big, "content_preview": "y"})
    };
    for i in 0..8 {
        ask(&app2, &writer2, file(i)).await;
    }
    app2.post("/api/v1/permissions", Some(&writer2), file(8))
        .await
        .expect_error(429, "too_many_pending");
}

/// Rewrites the whole chain behind the daemon's back, as someone who can write the database
/// would: every entry's data edited, every hash recomputed, the head record replaced.
async fn rewrite_chain(app: &TestApp) {
    let db = Behind::open(app).await;
    let mut prev = agentgate::audit::GENESIS.to_vec();
    for (seq, at, event, subject, data) in db.audit().await {
        let data = data.replace("laptop", "mallory");
        let hash = agentgate::audit::chain_hash(&prev, seq, at, &event, subject.as_deref(), &data);
        db.exec(
            "UPDATE audit SET data = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
            &[
                Bind::Text(data),
                Bind::Bytes(prev.clone()),
                Bind::Bytes(hash.to_vec()),
                Bind::Int(seq),
            ],
        )
        .await;
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        db.exec(
            "UPDATE settings SET value = $1 WHERE key = 'audit_head'",
            &[Bind::Text(format!("{seq}:{hex}"))],
        )
        .await;
        prev = hash.to_vec();
    }
}

#[tokio::test]
async fn keyed_audit_mode_catches_a_rewritten_chain_that_the_plain_chain_cannot() {
    for keyed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("audit.key");
        let config = if keyed {
            format!(
                "audit_key_file = {:?}\n{RULES}",
                key_file.display().to_string()
            )
        } else {
            RULES.to_owned()
        };
        let app = spawn_app_with(&config).await;
        let a = actors(&app).await;
        let v = ask(&app, &a.agent, shell("make k")).await;
        reply(
            &app,
            &a.approver,
            v["id"].as_str().unwrap(),
            json!({"decision": "deny"}),
        )
        .await;
        let before = app
            .get("/api/v1/audit/verify", Some(&a.reader))
            .await
            .json();
        assert_eq!(before["ok"], true, "{before}");
        assert_eq!(
            before["keyed"].as_bool().unwrap_or(false),
            keyed,
            "{before}"
        );
        if keyed {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim().len(), 64);
        }
        rewrite_chain(&app).await;
        let after = app
            .get("/api/v1/audit/verify", Some(&a.reader))
            .await
            .json();
        if keyed {
            assert_eq!(after["ok"], false, "{after}");
            assert_eq!(after["first_bad"]["problem"], "forged", "{after}");
        } else {
            // What the plain chain cannot see, and why keyed mode exists.
            assert_eq!(after["ok"], true, "{after}");
        }
    }
}

#[tokio::test]
async fn a_bad_audit_key_file_stops_the_daemon_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("audit.key");
    std::fs::write(&key_file, "not hex").unwrap();
    let toml = format!("audit_key_file = {:?}\n", key_file.display().to_string());
    let config = crate::harness::config_for(dir.path(), &toml);
    let err = agentgate::app::App::build(&config, agentgate::clock::Clock::System)
        .await
        .err()
        .unwrap();
    let text = format!("{err:#}");
    assert!(text.contains("64 hex digits"), "{text}");
}
