//! What the benchmarks against the real daemon share: the release binary started as its own
//! process on `127.0.0.1:0` with a temp data dir (and optional config), and API tokens.
// Each bench uses its own part of what is shared here.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_agentgate");

/// The daemon; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub admin: String,
    _dir: tempfile::TempDir,
}

/// A throwaway PostgreSQL database on the server named by `AGENTGATE_BENCH_PG` (such as
/// `postgres://postgres@127.0.0.1:5432`), dropped with this value; `None` without that variable
/// (the daemon then uses SQLite). Created with `psql`.
pub struct PgDb {
    server: String,
    name: String,
}

impl PgDb {
    pub fn create() -> Option<PgDb> {
        let server = std::env::var("AGENTGATE_BENCH_PG").ok()?;
        let name = format!("agt_bench_{}", std::process::id());
        let db = PgDb { server, name };
        db.psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        db.psql(&format!("CREATE DATABASE {}", db.name));
        Some(db)
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    fn psql(&self, sql: &str) {
        let ok = Command::new("psql")
            .arg(format!("{}/postgres", self.server))
            .args(["-qAtc", sql])
            .status()
            .unwrap()
            .success();
        assert!(ok, "psql: {sql}");
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        self.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the daemon with `config` as its config file (empty: none), logging warnings only.
pub fn start(config: &str) -> Daemon {
    start_on(config, None, None)
}

/// As [`start`], on the database `url` if given, with `admin` as the owner token when another
/// instance on the same database created it.
pub fn start_on(config: &str, url: Option<&str>, admin: Option<&str>) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    if let Some(url) = url {
        command.arg("--database").arg(url);
    }
    if !config.is_empty() {
        let file = dir.path().join("config.toml");
        std::fs::write(&file, config).unwrap();
        command.arg("--config").arg(file);
    }
    let child = command
        .env("AGENTGATE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&ready).map_or(true, |t| t.trim().is_empty()) {
        assert!(Instant::now() < deadline, "daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let addr = std::fs::read_to_string(&ready).unwrap().trim().to_owned();
    let admin = match admin {
        Some(admin) => admin.to_owned(),
        None => std::fs::read_to_string(dir.path().join("data/admin.token"))
            .unwrap()
            .trim()
            .to_owned(),
    };
    Daemon {
        child,
        base: format!("http://{addr}"),
        admin,
        _dir: dir,
    }
}

/// Sends a request to the daemon and reads its JSON answer.
pub async fn send(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// A new API token with one scope, as the owner.
pub async fn token(http: &reqwest::Client, d: &Daemon, name: &str, scope: &str) -> String {
    let v: Value = send(
        http.post(format!("{}/api/v1/tokens", d.base))
            .bearer_auth(&d.admin)
            .json(&json!({"name": name, "scopes": [scope]})),
    )
    .await;
    v["token"].as_str().unwrap().to_owned()
}

/// A client that, like a browser answering a form, does not follow redirects.
pub fn form_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Sets the owner passphrase, as the owner.
pub async fn set_passphrase(http: &reqwest::Client, d: &Daemon, passphrase: &str) {
    let r = http
        .put(format!("{}/api/v1/passphrase", d.base))
        .bearer_auth(&d.admin)
        .json(&json!({"passphrase": passphrase}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}
