//! Starts the daemon in-process on `127.0.0.1:0` with a fresh SQLite file (or PostgreSQL
//! database, see `pg`) and a manual clock.

use std::net::SocketAddr;
use std::time::Duration;

use agentgate::app::App;
use agentgate::broker::Broker;
use agentgate::clock::{Clock, Timestamp};
use agentgate::config::{Config, FileConfig, Overrides};
use agentgate::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    /// The owner token, read from `admin.token` as the CLI would.
    pub admin: String,
    pub clock: Clock,
    pub store: Store,
    pub broker: std::sync::Arc<Broker>,
    /// The `[compat.openwork]` listener, when configured.
    pub openwork: Option<SocketAddr>,
    /// Each gateway's own listener, by name.
    pub gateways: Vec<(String, SocketAddr)>,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, when the run uses one (dropped after the daemon).
    pub db: Option<std::sync::Arc<crate::pg::TestDb>>,
    config_toml: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

/// Starts the daemon with `config_toml` as its config file (rules, default_timeout).
pub async fn spawn_app_with(config_toml: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(Timestamp::from_millis(1_800_000_000_000));
    let db = crate::pg::TestDb::if_selected().map(std::sync::Arc::new);
    start(dir, db, clock, config_toml.to_owned()).await
}

/// The daemon's configuration for a test, through the same `Config::resolve` the daemon uses:
/// `config_toml` as its file, a temp data dir, an ephemeral loopback port.
pub fn config_for(dir: &std::path::Path, config_toml: &str) -> Config {
    config_on(dir, None, config_toml)
}

/// As [`config_for`], on the PostgreSQL database `db` if given.
pub fn config_on(
    dir: &std::path::Path,
    db: Option<&crate::pg::TestDb>,
    config_toml: &str,
) -> Config {
    let path = std::path::PathBuf::from("test-config.toml");
    let file = FileConfig::parse(&path, config_toml).unwrap();
    let over = Overrides {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.to_owned()),
        database_url: db.map(crate::pg::TestDb::url),
        ..Overrides::default()
    };
    Config::resolve(file, Some((path, config_toml.to_owned())), over).unwrap()
}

async fn start(
    dir: tempfile::TempDir,
    db: Option<std::sync::Arc<crate::pg::TestDb>>,
    clock: Clock,
    config_toml: String,
) -> TestApp {
    let config = config_on(dir.path(), db.as_deref(), &config_toml);
    let app = App::build(&config, clock.clone()).await.unwrap();
    let broker = app.broker();
    let openwork = app.openwork_addr();
    let gateways = app.gateway_addrs();
    let addr = app.local_addr();
    let admin = std::fs::read_to_string(app.admin_token_file())
        .unwrap()
        .trim()
        .to_owned();
    let store = app.store().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        addr,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        admin,
        clock,
        store,
        broker,
        openwork,
        gateways,
        dir,
        db,
        config_toml,
        stop: Some(stop),
        task: Some(task),
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// Asserts the status and the error code of the one error shape.
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let body = self.json();
        assert_eq!(body["error"], code, "body: {}", self.text);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "a message: {}",
            self.text
        );
        body
    }
}

impl TestApp {
    /// Stops the server and starts a new one on the same data dir and clock.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        start(
            dir,
            self.db.clone(),
            self.clock.clone(),
            self.config_toml.clone(),
        )
        .await
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("graceful shutdown")
                .unwrap();
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// Creates a token as the owner and returns (secret, id).
    pub async fn create_token(
        &self,
        name: &str,
        scopes: &[&str],
        expires_in: Value,
    ) -> (String, String) {
        let reply = self
            .post(
                "/api/v1/tokens",
                Some(&self.admin),
                json!({"name": name, "scopes": scopes, "expires_in": expires_in}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let body = reply.json();
        (
            body["token"].as_str().unwrap().to_owned(),
            body["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Live tokens as the owner sees them.
    pub async fn token_names(&self) -> Vec<String> {
        let reply = self.get("/api/v1/tokens", Some(&self.admin)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Sends raw bytes (for requests a well-behaved client will not make) and returns the status
    /// line's code and the body.
    pub async fn raw(&self, request: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let code = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {text:?}"));
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (code, body)
    }
}

/// Polls `check` until it yields a value, for a condition the daemon reaches on its own time (a
/// background write, a concurrent agent's request); fails after 10 s naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One JSON-RPC message POSTed to an MCP endpoint at `path` (`/mcp`, `/mcp/{server}`), accepting a
/// JSON or an SSE answer, in `session` if given.
pub fn mcp_request(
    app: &TestApp,
    path: &str,
    token: &str,
    session: Option<&str>,
    body: &Value,
) -> reqwest::RequestBuilder {
    mcp_raw_request(app, path, token, session, body.to_string())
}

/// As [`mcp_request`], with the body as written (bytes a serializer would not produce, or
/// malformed JSON).
pub fn mcp_raw_request(
    app: &TestApp,
    path: &str,
    token: &str,
    session: Option<&str>,
    body: String,
) -> reqwest::RequestBuilder {
    let req = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body);
    match session {
        Some(s) => req.header("mcp-session-id", s),
        None => req,
    }
}

/// The JSON-RPC answer in an MCP response body: the SSE `data:` message that carries an `id`,
/// or the body itself when it is plain JSON.
pub fn mcp_answer(text: &str) -> Value {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v.get("id").is_some())
        .or_else(|| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null)
}

/// Waits for the oldest pending request, and returns it.
pub async fn first_pending(app: &TestApp) -> Value {
    eventually("a request is pending", || async {
        let page = app
            .get("/api/v1/permissions?status=pending", Some(&app.admin))
            .await
            .json();
        page["permissions"]
            .as_array()
            .and_then(|p| p.first().cloned())
    })
    .await
}

/// A bound value for [`Behind::exec`].
pub enum Bind {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// The daemon's database opened behind its back, as someone with `sqlite3` or `psql` would:
/// the same statements (`$N` placeholders) on either backend.
pub enum Behind {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

macro_rules! bound {
    ($query:expr, $binds:expr) => {{
        let mut q = $query;
        for b in $binds {
            q = match b {
                Bind::Int(v) => q.bind(*v),
                Bind::Text(v) => q.bind(v.clone()),
                Bind::Bytes(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}

impl Behind {
    pub async fn open(app: &TestApp) -> Behind {
        match &app.db {
            Some(db) => Behind::Postgres(sqlx::PgPool::connect(&db.url()).await.unwrap()),
            None => {
                let file = app.dir.path().join("agentgate.db");
                let url = format!("sqlite://{}", file.display());
                Behind::Sqlite(sqlx::SqlitePool::connect(&url).await.unwrap())
            }
        }
    }

    pub async fn exec(&self, sql: &str, binds: &[Bind]) {
        match self {
            Behind::Sqlite(pool) => {
                bound!(sqlx::query(sql), binds).execute(pool).await.unwrap();
            }
            Behind::Postgres(pool) => {
                bound!(sqlx::query(sql), binds).execute(pool).await.unwrap();
            }
        }
    }

    /// Every audit entry: seq, at, event, subject, data.
    pub async fn audit(&self) -> Vec<(i64, i64, String, Option<String>, String)> {
        let sql = "SELECT seq, at, event, subject, data FROM audit ORDER BY seq";
        match self {
            Behind::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
            Behind::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        }
    }

    /// Everything stored, as text: the SQLite file's (and its log's) bytes, or every PostgreSQL
    /// row.
    pub async fn dump(&self, app: &TestApp) -> String {
        match self {
            Behind::Sqlite(_) => {
                // The file and its write-ahead log, where recent rows are.
                let mut bytes = std::fs::read(app.dir.path().join("agentgate.db")).unwrap();
                if let Ok(wal) = std::fs::read(app.dir.path().join("agentgate.db-wal")) {
                    bytes.extend(wal);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Behind::Postgres(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                )
                .fetch_all(pool)
                .await
                .unwrap();
                let mut all = String::new();
                for table in tables {
                    let rows: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
                            .fetch_all(pool)
                            .await
                            .unwrap();
                    all.push_str(&rows.join("\n"));
                }
                all
            }
        }
    }
}
