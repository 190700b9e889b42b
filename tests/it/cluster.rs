#![allow(clippy::disallowed_methods)] // waiting for a child process's ready file needs short sleeps
//! Several real `agentgate serve` processes on one PostgreSQL database behave as one: a request
//! asked through one is answered through another, every instance's event stream carries every
//! event in order, a revocation, a rule and a sign-in made on one hold on all, a timeout fires
//! once, the audit chain stays one chain, and an instance killed with SIGKILL loses nothing.
//! Run in the PostgreSQL pass of `scripts/test` (they need a shared database).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::pg::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_agentgate");

/// One `agentgate serve` on the shared database, with a data dir of its own.
struct Instance {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Instance {
    fn start(db: &TestDb, config: &str) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let config_file = dir.path().join("config.toml");
        std::fs::write(&config_file, config).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--database")
            .arg(db.url())
            .arg("--config")
            .arg(&config_file)
            .env_remove("AGENTGATE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&ready)
                && !text.trim().is_empty()
            {
                break text.trim().to_owned();
            }
            let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "instance not ready: {log}");
            std::thread::sleep(Duration::from_millis(20));
        };
        Instance {
            child,
            url: format!("http://{addr}"),
            dir,
        }
    }

    fn admin_token_file(&self) -> PathBuf {
        self.dir.path().join("data").join("admin.token")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    instances: Vec<Instance>,
    admin: String,
    http: reqwest::Client,
    // Dropped last: the instances are stopped first.
    _db: TestDb,
}

/// `n` instances on one fresh database, with `config` (rules); `None` outside the PostgreSQL pass.
fn cluster(n: usize, config: &str) -> Option<Cluster> {
    if !crate::pg::selected() {
        eprintln!(
            "multi-instance tests run in the PostgreSQL pass (AGENTGATE_TEST_BACKEND=postgres)"
        );
        return None;
    }
    let db = TestDb::create();
    // The first creates the owner token; the others find it in the database.
    let mut instances = vec![Instance::start(&db, config)];
    for _ in 1..n {
        instances.push(Instance::start(&db, config));
    }
    let admin = std::fs::read_to_string(instances[0].admin_token_file())
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        !instances[1].admin_token_file().exists(),
        "one owner token for the cluster"
    );
    Some(Cluster {
        instances,
        admin,
        http: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _db: db,
    })
}

impl Cluster {
    async fn call(
        &self,
        i: usize,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.instances[i].url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn token(&self, i: usize, name: &str, scopes: &[&str]) -> (String, String) {
        let (status, v) = self
            .call(
                i,
                Method::POST,
                "/api/v1/tokens",
                &self.admin,
                Some(json!({"name": name, "scopes": scopes, "expires_in": "1d"})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        (
            v["token"].as_str().unwrap().to_owned(),
            v["id"].as_str().unwrap().to_owned(),
        )
    }

    /// `GET path` on instance `i`, as the owner.
    async fn get(&self, i: usize, path: &str) -> (StatusCode, Value) {
        self.call(i, Method::GET, path, &self.admin, None).await
    }

    /// An agent asks instance `i` to run `command`, waiting `timeout` seconds at most for a person.
    async fn ask(&self, i: usize, agent: &str, command: &str, timeout: u64) -> Value {
        let body =
            json!({"kind": "shell", "command": command, "agent": "opencode", "timeout": timeout});
        let (status, v) = self
            .call(i, Method::POST, "/api/v1/permissions", agent, Some(body))
            .await;
        assert!(matches!(status.as_u16(), 200 | 202), "{status} {v}");
        v
    }

    /// The ids of pending requests, as instance `i` lists them.
    async fn pending(&self, i: usize) -> Vec<String> {
        let (status, v) = self.get(i, "/api/v1/permissions?status=pending").await;
        assert_eq!(status, 200, "{v}");
        v["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The audit entries (all of them), as instance `i` lists them.
    async fn audit(&self, i: usize) -> Vec<Value> {
        let (status, v) = self.get(i, "/api/v1/audit?limit=1000").await;
        assert_eq!(status, 200, "{v}");
        v["entries"].as_array().unwrap().clone()
    }
}

/// Reads an SSE stream on a thread: each event's id and type, until the stream ends.
fn follow_events(
    url: String,
    token: String,
    last_event_id: Option<i64>,
) -> std::sync::mpsc::Receiver<Option<(i64, String)>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
        let mut write = stream.try_clone().unwrap();
        let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        use std::io::Write;
        write!(
            write,
            "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n{resume}Accept: text/event-stream\r\nConnection: close\r\n\r\n",
            url.trim_start_matches("http://")
        )
        .unwrap();
        let mut id = None;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.trim().parse().ok();
            } else if let Some(event) = line.strip_prefix("event: ")
                && let Some(id) = id.take()
                && tx.send(Some((id, event.trim().to_owned()))).is_err()
            {
                return;
            }
        }
        let _ = tx.send(None);
    });
    rx
}

/// Waits for an event of type `event` on a stream, returning it with everything before it.
fn until_event(
    rx: &std::sync::mpsc::Receiver<Option<(i64, String)>>,
    event: &str,
) -> Vec<(i64, String)> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(e)) => {
                let done = e.1 == event;
                seen.push(e);
                if done {
                    return seen;
                }
            }
            other => panic!("no {event} event (got {other:?} after {seen:?})"),
        }
    }
}

const ASK_SHELL: &str = "[[rules]]\naction = \"ask\"\nkind = \"shell\"\npattern = \"*\"\n";

#[tokio::test]
async fn a_request_asked_on_one_instance_is_answered_on_another_and_every_stream_sees_it() {
    let Some(c) = cluster(2, ASK_SHELL) else {
        return;
    };
    let (agent, _) = c.token(0, "agent", &["request"]).await;
    let (approver, _) = c.token(1, "approver", &["approve"]).await;
    let stream_b = follow_events(c.instances[1].url.clone(), c.admin.clone(), None);
    // The agent long-polls instance A.
    let http = c.http.clone();
    let url_a = c.instances[0].url.clone();
    let poll = tokio::spawn(async move {
        let resp = http
            .post(format!("{url_a}/api/v1/permissions?wait=120"))
            .bearer_auth(&agent)
            .json(&json!({"kind": "shell", "command": "make deploy", "agent": "opencode"}))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    });
    // Instance B lists it, and a person answers there.
    let id = loop {
        if let Some(id) = c.pending(1).await.pop() {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, v) = c
        .call(
            1,
            Method::POST,
            &format!("/api/v1/permissions/{id}/reply"),
            &approver,
            Some(json!({"decision": "allow"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // A's waiter is released with B's decision.
    let (status, v) = poll.await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "allowed");
    assert_eq!(v["decided_by"]["approver"], "approver");
    // B's stream carried A's creation and B's decision, in order.
    let seen = until_event(&stream_b, "permission.decided");
    let created = seen.iter().find(|e| e.1 == "permission.created").unwrap().0;
    let decided = seen.last().unwrap().0;
    assert!(created < decided, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "in order: {seen:?}"
    );
    // A stream on A resumed after the creation gets the decision next.
    let resumed = follow_events(c.instances[0].url.clone(), c.admin.clone(), Some(created));
    let first = resumed
        .recv_timeout(Duration::from_secs(20))
        .unwrap()
        .unwrap();
    assert_eq!(first, (decided, "permission.decided".to_owned()));
    // Both list the same decision.
    for i in 0..2 {
        let (_, v) = c.get(i, &format!("/api/v1/permissions/{id}")).await;
        assert_eq!(v["status"], "allowed", "instance {i}");
    }
}

#[tokio::test]
async fn a_token_revoked_on_one_instance_is_refused_by_the_other_and_its_stream_ends() {
    let Some(c) = cluster(2, "") else { return };
    let (reader, reader_id) = c.token(0, "reader", &["read"]).await;
    // B verifies (and caches) the token, and a stream is open on B with it.
    let (status, _) = c
        .call(1, Method::GET, "/api/v1/permissions", &reader, None)
        .await;
    assert_eq!(status, 200);
    let stream = follow_events(c.instances[1].url.clone(), reader.clone(), None);
    let (status, v) = c
        .call(
            0,
            Method::DELETE,
            &format!("/api/v1/tokens/{reader_id}"),
            &c.admin,
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // B refuses it, and the stream held by it ends.
    let started = Instant::now();
    loop {
        let (status, v) = c
            .call(1, Method::GET, "/api/v1/permissions", &reader, None)
            .await;
        if status == 401 {
            assert_eq!(v["error"], "unauthorized", "{v}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B still accepts a revoked token"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    loop {
        match stream.recv_timeout(Duration::from_secs(20)) {
            Ok(None) => break,
            Ok(Some(_)) => continue,
            Err(e) => panic!("the revoked token's stream on B did not end: {e}"),
        }
    }
}

#[tokio::test]
async fn rules_and_sign_ins_made_on_one_instance_hold_on_the_other() {
    // No configured rule: a stored allow is what decides.
    let Some(c) = cluster(2, "") else {
        return;
    };
    let (agent, _) = c.token(0, "agent", &["request"]).await;
    let ask = |i: usize| c.ask(i, &agent, "ls -la", 120);
    assert_eq!(ask(1).await["status"], "pending");
    let (status, v) = c
        .call(
            0,
            Method::POST,
            "/api/v1/rules",
            &c.admin,
            Some(json!({"action": "allow", "kind": "shell", "pattern": "ls *"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let started = Instant::now();
    while ask(1).await["status"] != "allowed" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B never put A's rule in force"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The owner signs in on A; the session works on B.
    let (status, v) = c
        .call(
            0,
            Method::PUT,
            "/api/v1/passphrase",
            &c.admin,
            Some(json!({"passphrase": "correct horse battery staple"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let login = c
        .http
        .post(format!("{}/login", c.instances[0].url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("passphrase=correct+horse+battery+staple&next=%2F")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = c
        .http
        .get(format!("{}/", c.instances[1].url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("csrf-token"));
}

#[tokio::test]
async fn wrong_passphrases_share_one_backoff_across_instances() {
    let Some(c) = cluster(2, "") else { return };
    let (status, _) = c
        .call(
            0,
            Method::PUT,
            "/api/v1/passphrase",
            &c.admin,
            Some(json!({"passphrase": "correct horse battery staple"})),
        )
        .await;
    assert_eq!(status, 200);
    let guess = |i: usize| {
        c.http
            .post(format!("{}/login", c.instances[i].url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("passphrase=wrong+guess+number+one&next=%2F")
            .send()
    };
    // One wrong guess on A locks the source for a second; B refuses at once, without hashing.
    let first = guess(0).await.unwrap();
    assert_ne!(first.status(), 303);
    let second = guess(1).await.unwrap();
    assert_eq!(second.status(), 429, "{}", second.text().await.unwrap());
}

#[tokio::test]
async fn a_timeout_fires_once_and_the_chain_stays_one_chain_under_concurrent_writers() {
    let Some(c) = cluster(3, ASK_SHELL) else {
        return;
    };
    let (agent, _) = c.token(0, "agent", &["request"]).await;
    // Three instances' expirers race for the same deadline.
    let v = c.ask(1, &agent, "sleep", 1).await;
    let timed = v["id"].as_str().unwrap().to_owned();
    // Meanwhile every instance writes at once.
    let mut writers = Vec::new();
    for n in 0..30 {
        let http = c.http.clone();
        let url = c.instances[n % 3].url.clone();
        let agent = agent.clone();
        writers.push(tokio::spawn(async move {
            http.post(format!("{url}/api/v1/permissions"))
                .bearer_auth(&agent)
                .json(&json!({"kind": "shell", "command": format!("echo {n}")}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for w in writers {
        assert_eq!(w.await.unwrap(), 202);
    }
    let started = Instant::now();
    loop {
        let (_, v) = c.get(2, &format!("/api/v1/permissions/{timed}")).await;
        if v["status"] == "timeout" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never timed out: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the other expirers their chance to (wrongly) decide it again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let entries = c.audit(0).await;
    let decisions = entries
        .iter()
        .filter(|e| e["event"] == "permission.decided" && e["subject"] == timed.as_str())
        .count();
    assert_eq!(decisions, 1, "one timeout across three instances");
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "no gaps");
    for i in 0..3 {
        let (status, v) = c.get(i, "/api/v1/audit/verify").await;
        assert_eq!(status, 200);
        assert_eq!(v["ok"], true, "instance {i}: {v}");
    }
}

#[tokio::test]
async fn an_instance_killed_mid_wait_loses_nothing_and_another_answers_its_waiter() {
    let Some(mut c) = cluster(2, ASK_SHELL) else {
        return;
    };
    let (agent, _) = c.token(0, "agent", &["request"]).await;
    let (approver, _) = c.token(1, "approver", &["approve"]).await;
    let v = c.ask(0, &agent, "make a", 600).await;
    let id = v["id"].as_str().unwrap().to_owned();
    let deadline = v["deadline"].clone();
    // SIGKILL: no shutdown, no goodbye.
    c.instances[0].child.kill().unwrap();
    c.instances[0].child.wait().unwrap();
    // The request and its deadline survive on B; the agent re-asks B and gets the answer.
    let (_, v) = c
        .call(
            1,
            Method::GET,
            &format!("/api/v1/permissions/{id}"),
            &agent,
            None,
        )
        .await;
    assert_eq!(
        (v["status"].clone(), v["deadline"].clone()),
        (json!("pending"), deadline)
    );
    let http = c.http.clone();
    let url_b = c.instances[1].url.clone();
    let agent2 = agent.clone();
    let id2 = id.clone();
    let waiter = tokio::spawn(async move {
        http.get(format!("{url_b}/api/v1/permissions/{id2}?wait=120"))
            .bearer_auth(&agent2)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, v) = c
        .call(
            1,
            Method::POST,
            &format!("/api/v1/permissions/{id}/reply"),
            &approver,
            Some(json!({"decision": "deny", "message": "not now"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let v = waiter.await.unwrap();
    assert_eq!(v["status"], "denied");
    assert_eq!(v["message"], "not now");
    // A comes back and agrees.
    c.instances[0] = Instance::start(&c._db, ASK_SHELL);
    let (_, v) = c.get(0, &format!("/api/v1/permissions/{id}")).await;
    assert_eq!(v["status"], "denied");
    let (_, v) = c.get(0, "/api/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}

/// OAuth across instances behind one public address (`allowed_hosts`, as a load balancer in
/// front of both would present): the consent form shown by A is answered on B, a code issued by
/// one is redeemed on the other, and replaying it ends what was issued for it; a refresh token
/// rotated on A and reused on B after the grace period ends the whole family on both.
#[tokio::test]
async fn oauth_codes_and_refresh_families_hold_across_instances() {
    use crate::oauth::{REDIRECT, VERIFIER, authorize_query, form_fields, public_registration};
    const PUBLIC: &str = "gate.test:8443";
    const PASSPHRASE: &str = "correct horse battery staple";
    let Some(c) = cluster(2, &format!("allowed_hosts = [\"{PUBLIC}\"]\n")) else {
        return;
    };
    let origin = format!("http://{PUBLIC}");
    let (status, v) = c
        .call(
            0,
            Method::PUT,
            "/api/v1/passphrase",
            &c.admin,
            Some(json!({"passphrase": PASSPHRASE})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // Every request goes to one instance with the public Host, as through the balancer.
    let at = |i: usize, method: Method, path: &str| {
        c.http
            .request(method, format!("{}{path}", c.instances[i].url))
            .header("host", PUBLIC)
    };
    let registered: Value = at(0, Method::POST, "/register")
        .json(&public_registration())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = registered["client_id"].as_str().unwrap().to_owned();
    // The consent form shown by A, answered on B: the code.
    let consent = || async {
        let query = authorize_query(&client, &[]);
        let page = at(0, Method::GET, &format!("/authorize?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let (authz, csrf) = form_fields(&page.text().await.unwrap());
        let answered = at(1, Method::POST, "/authorize")
            .header("origin", &origin)
            .form(&[
                ("authz", authz.as_str()),
                ("csrf", csrf.as_str()),
                ("passphrase", PASSPHRASE),
                ("decision", "approve"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(answered.status(), 303);
        let location = answered.headers()["location"].to_str().unwrap().to_owned();
        url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {location}"))
    };
    let token = |i: usize, form: Vec<(&'static str, String)>| async move {
        let r = at(i, Method::POST, "/token")
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let redeem = |code: String| {
        vec![
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &client),
            ("resource", &format!("{origin}/mcp")),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect::<Vec<_>>()
    };
    let refresh = |r: &Value| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            (
                "refresh_token",
                r["refresh_token"].as_str().unwrap().to_owned(),
            ),
            ("client_id", client.clone()),
        ]
    };
    let mcp_status = |i: usize, r: &Value| {
        at(i, Method::POST, "/mcp")
            .bearer_auth(r["access_token"].as_str().unwrap())
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                          "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                     "clientInfo": {"name": "cluster", "version": "1"}}}))
            .send()
    };
    let refused_within_a_second = |i: usize, r: Value| async move {
        let started = Instant::now();
        while mcp_status(i, &r).await.unwrap().status() != 401 {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "instance {i} still accepts an access token that was ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    // The code (its form answered on B) is redeemed on A; replayed on B, it is refused, and
    // what A issued for it ends on both.
    let code = consent().await;
    let (status, first) = token(0, redeem(code.clone())).await;
    assert_eq!(status, 200, "the code issued by B, redeemed on A: {first}");
    assert_eq!(mcp_status(1, &first).await.unwrap().status(), 200);
    let (status, replay) = token(1, redeem(code)).await;
    assert_eq!(
        (status, &replay["error"]),
        (400, &json!("invalid_grant")),
        "{replay}"
    );
    let (status, dead) = token(1, refresh(&first)).await;
    assert_eq!(
        status, 400,
        "the replayed code's refresh token lives on: {dead}"
    );
    refused_within_a_second(1, first).await;

    // Redeemed on B, rotated on A, the old refresh token reused on B: the family ends on both.
    let (status, second) = token(1, redeem(consent().await)).await;
    assert_eq!(status, 200, "{second}");
    let (status, rotated) = token(0, refresh(&second)).await;
    assert_eq!(status, 200, "refreshed on A: {rotated}");
    assert_eq!(mcp_status(1, &rotated).await.unwrap().status(), 200);
    // Within the grace period (5 s, for a client's retry) a reuse is not yet theft, on either.
    let (status, retried) = token(1, refresh(&second)).await;
    assert_eq!(status, 200, "a retry within the grace period: {retried}");
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let (status, reused) = token(1, refresh(&second)).await;
    assert_eq!(
        (status, &reused["error"]),
        (400, &json!("invalid_grant")),
        "{reused}"
    );
    let (status, after) = token(0, refresh(&rotated)).await;
    assert_eq!(
        status, 400,
        "the rotated token outlived its family: {after}"
    );
    refused_within_a_second(0, rotated).await;
}
