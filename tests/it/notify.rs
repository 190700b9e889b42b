//! `[[notify]]`: each request left for a person is announced once to every target, in its
//! format, with a link to the inbox and no secret; a hanging, dead or failing target delays
//! neither a decision nor the other targets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use crate::harness::{eventually, spawn_app_with};

#[derive(Default)]
struct Inbox {
    bodies: Mutex<Vec<Value>>,
    /// Fail this many posts first (500).
    failures: Mutex<u32>,
    /// Never answer.
    hang: bool,
}

async fn receive(State(inbox): State<Arc<Inbox>>, body: axum::Json<Value>) -> StatusCode {
    if inbox.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    {
        let mut failures = inbox.failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    inbox.bodies.lock().unwrap().push(body.0);
    StatusCode::OK
}

async fn receiver(inbox: Arc<Inbox>) -> String {
    let app = Router::new().fallback(post(receive)).with_state(inbox);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn every_format_is_sent_once_and_a_bad_target_slows_nothing() {
    let webhook = Arc::new(Inbox::default());
    let slack = Arc::new(Inbox::default());
    let ntfy = Arc::new(Inbox::default());
    let flaky = Arc::new(Inbox {
        failures: Mutex::new(2),
        ..Inbox::default()
    });
    let hanging = Arc::new(Inbox {
        hang: true,
        ..Inbox::default()
    });
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = format!(
        r#"
public_url = "https://gate.example.test"

[[rules]]
action = "allow"
kind = "shell"
pattern = "ls"

[[notify]]
kind = "webhook"
url = "{}/hook"

[[notify]]
kind = "slack"
url = "{}/services/T0/B0/secretpart"

[[notify]]
kind = "ntfy"
url = "{}/agentgate-topic"

[[notify]]
kind = "webhook"
name = "flaky"
url = "{}/x"

[[notify]]
kind = "webhook"
name = "hanging"
url = "{}/x"
timeout = 60

[[notify]]
kind = "webhook"
name = "dead"
url = "http://{dead}/x"
"#,
        receiver(webhook.clone()).await,
        receiver(slack.clone()).await,
        receiver(ntfy.clone()).await,
        receiver(flaky.clone()).await,
        receiver(hanging.clone()).await,
    );
    let app = spawn_app_with(&config).await;
    let (agent, _) = app.create_token("agent", &["request"], json!("1d")).await;

    // Allowed by policy: nobody is bothered.
    let r = app
        .post(
            "/api/v1/permissions",
            Some(&agent),
            json!({"kind": "shell", "command": "ls", "agent": "opencode"}),
        )
        .await;
    assert_eq!(r.status, 200);
    // Left for a person: announced.
    let r = app
        .post(
            "/api/v1/permissions",
            Some(&agent),
            json!({"kind": "shell", "command": "git push --force", "agent": "opencode", "reason": "ship"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    // A decision is not held up by the hanging target.
    let reply = app
        .post(
            &format!("/api/v1/permissions/{id}/reply"),
            Some(&app.admin),
            json!({"decision": "allow"}),
        )
        .await;
    assert_eq!(reply.status, 200);

    for (name, inbox) in [
        ("webhook", &webhook),
        ("slack", &slack),
        ("ntfy", &ntfy),
        ("flaky", &flaky),
    ] {
        eventually(&format!("{name} got the notification"), || async {
            (!inbox.bodies.lock().unwrap().is_empty()).then_some(())
        })
        .await;
    }
    // Sent once each (the allowed request was not sent at all).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for inbox in [&webhook, &slack, &ntfy, &flaky] {
        assert_eq!(inbox.bodies.lock().unwrap().len(), 1);
    }
    let hook = webhook.bodies.lock().unwrap()[0].clone();
    assert_eq!(hook["event"], "permission.pending");
    assert_eq!(hook["id"], id.as_str());
    assert_eq!(hook["agent"], "opencode");
    assert_eq!(hook["summary"], "git push --force");
    assert_eq!(
        hook["link"],
        format!("https://gate.example.test/#card-{id}")
    );
    let text = slack.bodies.lock().unwrap()[0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("git push --force")
            && text.contains(&format!("#card-{id}|Open in the inbox>")),
        "{text}"
    );
    let push = ntfy.bodies.lock().unwrap()[0].clone();
    assert_eq!(push["topic"], "agentgate-topic");
    assert_eq!(push["priority"], 4);
    assert_eq!(
        push["click"],
        format!("https://gate.example.test/#card-{id}")
    );
    // No credential in any of them.
    for inbox in [&webhook, &slack, &ntfy] {
        let all = Value::Array(inbox.bodies.lock().unwrap().clone()).to_string();
        assert!(
            !all.contains("agt_") && !all.contains(&agent) && !all.contains(&app.admin),
            "{all}"
        );
    }
    assert!(hanging.bodies.lock().unwrap().is_empty());
}
