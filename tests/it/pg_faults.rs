//! PostgreSQL's failures, each with its clear answer (run in the PostgreSQL pass): a database
//! that is missing, unreachable or migrated by a newer agentgate stops start-up with the reason;
//! every connection terminated under the daemon (`pg_terminate_backend`) is replaced: the writer
//! begins again on a fresh one (nothing was written yet), a write that cannot be had is a 503
//! with `Retry-After` (never a 500 or a hang), and the event stream carries on. Stopping and restarting the server, a wrong password and SIGKILL under load
//! need a private server: `bench/pg-faults`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Behind, Bind, spawn_app};
use crate::pg::TestDb;

fn serve_refuses(url: &str) -> String {
    crate::cli::serve_fails(&["--listen", "127.0.0.1:0", "--database", url], None)
}

#[test]
fn start_up_refuses_a_missing_unreachable_or_newer_database_with_the_reason() {
    if !crate::pg::selected() {
        return;
    }
    let server = crate::pg::server();
    let err = serve_refuses(&format!("{server}/agt_no_such_database_here"));
    assert!(err.contains("does not exist (create it first)"), "{err}");
    let err = serve_refuses("postgres://postgres:hunter2@127.0.0.1:1/agentgate");
    assert!(err.contains("cannot reach the server"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // A schema a newer agentgate migrated: refused, and left as it is.
    let db = TestDb::create();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = agentgate::store::DatabaseUrl::parse(&db.url()).unwrap();
        drop(agentgate::store::Store::open(&url).await.unwrap());
        let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', true, '\\x00', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
    });
    let err = serve_refuses(&db.url());
    assert!(
        err.contains("schema is at version 9999, newer than this agentgate knows"),
        "{err}"
    );
}

#[tokio::test]
async fn terminated_connections_are_replaced_and_never_a_500_or_a_hang() {
    if !crate::pg::selected() {
        return;
    }
    let app = spawn_app().await;
    let (agent, _) = app.create_token("agent", &["request"], json!("1d")).await;
    let events = app
        .http
        .get(format!("{}/api/v1/events", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    let mut events = events.bytes_stream();
    let db = Behind::open(&app).await;
    let name = app.db.as_ref().unwrap().name.clone();
    for round in 0..3 {
        // Every connection the daemon holds, the writer's and the listener's included.
        db.exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[Bind::Text(name.clone())],
        )
        .await;
        let mut statuses = Vec::new();
        let started = Instant::now();
        loop {
            let r = app
                .post(
                    "/api/v1/permissions",
                    Some(&agent),
                    json!({"kind": "shell", "command": format!("echo {round}")}),
                )
                .await;
            statuses.push(r.status.as_u16());
            match r.status.as_u16() {
                200 | 202 => break,
                503 => {
                    assert_eq!(r.json()["error"], "store_unavailable", "{}", r.text);
                    assert_eq!(r.header("retry-after"), "1");
                }
                other => panic!("round {round}: {other} {}", r.text),
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never recovered: {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The event stream survived: it carries the requests made after the terminations.
    use futures_util::StreamExt;
    let mut text = String::new();
    let started = Instant::now();
    while text.matches("permission.created").count() < 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("the stream went quiet")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        assert!(started.elapsed() < Duration::from_secs(30), "{text}");
    }
    let v: Value = app
        .get("/api/v1/audit/verify", Some(&app.admin))
        .await
        .json();
    assert_eq!(v["ok"], true, "{v}");
}
