//! `agentgate serve` as a child process on an ephemeral port, with a config file, and the client
//! calls the tests make as a person (or the inbox) would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_agentgate");

pub struct Daemon {
    child: Option<Child>,
    pub url: String,
    pub dir: PathBuf,
    pub admin: String,
    pub http: reqwest::Client,
    config: PathBuf,
}

impl Daemon {
    /// Starts a daemon whose data lives in `dir/data` and whose config is `config_toml`.
    pub async fn start(dir: &Path, config_toml: &str) -> Daemon {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(&config, config_toml).unwrap();
        let mut daemon = Daemon {
            child: None,
            url: String::new(),
            dir: dir.to_owned(),
            admin: String::new(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            config,
        };
        daemon.spawn("127.0.0.1:0").await;
        daemon
    }

    async fn spawn(&mut self, listen: &str) {
        let ready = self.dir.join("ready");
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("serve.log"))
            .unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--listen", listen, "--ready-file"])
            .arg(&ready)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(&self.config)
            .env_remove("AGENTGATE_TOKEN")
            .env("AGENTGATE_LOG", "agentgate=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&ready)
                && !text.trim().is_empty()
            {
                break text.trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "daemon not ready: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.url = format!("http://{addr}");
        self.admin = std::fs::read_to_string(self.data_dir().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// Stops the daemon (SIGKILL: what a crash looks like to the agents).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub async fn restart(&mut self) {
        self.stop();
        let listen = self.url.trim_start_matches("http://").to_owned();
        self.spawn(&listen).await;
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Sets the owner passphrase (for signing in to the inbox) and returns it.
    pub async fn set_passphrase(&self) -> String {
        let passphrase = "correct horse battery staple".to_owned();
        let r = self
            .http
            .put(format!("{}/api/v1/passphrase", self.url))
            .bearer_auth(&self.admin)
            .json(&json!({"passphrase": passphrase}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        passphrase
    }

    /// Waits until some request is pending, and returns it.
    pub async fn pending(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let page = self.get("/api/v1/permissions?status=pending").await;
            if let Some(first) = page["permissions"].as_array().and_then(|p| p.first()) {
                return first.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no request became pending; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every request so far, newest last.
    pub async fn all(&self) -> Vec<Value> {
        self.get("/api/v1/permissions?status=all&limit=500").await["permissions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A person answers through the API.
    pub async fn reply(&self, id: &str, decision: &str, message: Option<&str>) -> Value {
        let mut body = json!({"decision": decision});
        if let Some(m) = message {
            body["message"] = json!(m);
        }
        let (status, answer) = self
            .post(&format!("/api/v1/permissions/{id}/reply"), body)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Runs a CLI verb against this daemon.
    pub fn cli(&self, args: &[&str], envs: &[(&str, &Path)]) -> std::process::Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--url")
            .arg(&self.url)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(&self.config)
            .env_remove("AGENTGATE_TOKEN")
            .stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `check` until it holds (or 60 s pass, then fails with `what`).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
