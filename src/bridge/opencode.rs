//! The opencode bridge's connection: follows `GET /global/event` (or `/event?directory=`),
//! reconnects with backoff, catches up with `GET /permission` after every (re)connect, turns each
//! `permission.asked` into a broker request, and sends the decision back with
//! `POST /permission/{id}/reply` (v2: `POST /api/session/{sid}/permission/{id}/reply`).
//!
//! Which opencode prompt became which request is kept in the store (a setting per prompt), so a
//! daemon restart re-attaches to the same request instead of asking twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Bridge, sse};
use crate::agents::opencode::{self, Api, Asked};
use crate::agents::tool_call::denial_words;
use crate::api::{PermissionView, Source, Status};
use crate::auth::Principal;
use crate::broker::{self, Broker, MAX_WAIT};
use crate::clock::Clock;
use crate::store::Store;
use agentgate_policy::Origin;

const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(30);
/// How often pending prompts are compared with opencode's own list while connected.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// Every call but the event stream gives up after this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A prompt being handled: the request it became (once created), and an answer given in
/// opencode itself before it was.
#[derive(Default)]
struct Inflight {
    request: Option<String>,
    answered_upstream: Option<bool>,
    directory: Option<String>,
}

struct Link {
    bridge: Arc<Bridge>,
    broker: Arc<Broker>,
    store: Store,
    clock: Clock,
    who: Arc<Principal>,
    http: reqwest::Client,
    /// opencode prompt id → what became of it.
    inflight: Mutex<HashMap<String, Inflight>>,
    /// Prompts we are answering, so their `permission.replied` is not taken for an answer
    /// given in opencode.
    ours: Mutex<HashSet<String>>,
    /// Directories seen in events (caught up on after a reconnect).
    directories: Mutex<HashSet<Option<String>>>,
}

pub(super) fn spawn(
    bridge: Arc<Bridge>,
    broker: Arc<Broker>,
    store: Store,
    clock: Clock,
    who: Arc<Principal>,
) {
    let http = match reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            bridge.update(|i| i.last_error = Some(format!("cannot build an HTTP client: {e}")));
            return;
        }
    };
    let directory = bridge.settings.directory.clone();
    let link = Arc::new(Link {
        bridge,
        broker,
        store,
        clock,
        who,
        http,
        inflight: Mutex::default(),
        ours: Mutex::default(),
        directories: Mutex::new(HashSet::from([directory])),
    });
    tokio::spawn(link.run());
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Link {
    fn name(&self) -> &str {
        &self.bridge.settings.name
    }

    async fn run(self: Arc<Self>) {
        let stop = self.broker.until_stopped();
        tokio::pin!(stop);
        let mut delay = FIRST_RETRY;
        loop {
            let (had_connected, error) = tokio::select! {
                () = &mut stop => return,
                ended = self.clone().follow() => ended,
            };
            if had_connected {
                // It had connected: start the backoff over.
                delay = FIRST_RETRY;
            }
            tracing::warn!(bridge = self.name(), error = %error, retry_in_ms = delay.as_millis() as u64, "opencode bridge disconnected");
            let retry_at = self.clock.now().plus(delay);
            self.bridge.update(|i| {
                i.connected = false;
                i.last_error = Some(error);
                i.retry_at = Some(retry_at);
            });
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(LAST_RETRY);
        }
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        directory: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, String> {
        let mut url = self.bridge.settings.url.clone();
        url.set_path(&format!("{}{path}", url.path().trim_end_matches('/')));
        if let Some(dir) = directory {
            url.query_pairs_mut().append_pair("directory", dir);
        }
        let mut request = self.http.request(method, url);
        if let Some(source) = &self.bridge.settings.password {
            let password = source.read("password")?;
            request = request.basic_auth(&self.bridge.settings.username, Some(password));
        }
        Ok(request)
    }

    /// One connection: whether it got as far as connecting, and why it ended.
    async fn follow(self: Arc<Self>) -> (bool, String) {
        let mut connected = false;
        let why = self.connect_and_read(&mut connected).await;
        (connected, why)
    }

    async fn connect_and_read(self: &Arc<Self>, connected: &mut bool) -> String {
        let directory = self.bridge.settings.directory.clone();
        let path = if directory.is_some() {
            "/event"
        } else {
            "/global/event"
        };
        let request = match self.call(reqwest::Method::GET, path, directory.as_deref()) {
            Ok(r) => r.header("accept", "text/event-stream"),
            Err(e) => return e,
        };
        // The head must come within the call timeout (the stream then lasts): a server that
        // accepts the connection while still starting must not hold the bridge for ever.
        let sent = tokio::time::timeout(CALL_TIMEOUT, request.send()).await;
        let Ok(sent) = sent else {
            return format!(
                "GET {path} did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            );
        };
        let mut response = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return format!(
                    "cannot connect to {}: {}",
                    self.bridge.settings.url,
                    root(&e)
                );
            }
            Err(e) => return format!("GET {path} failed: {}", root(&e)),
        };
        match response.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => {
                return "opencode refused the credentials (HTTP 401): check username and password_env/password_file".into();
            }
            s => {
                return format!(
                    "GET {path} answered HTTP {s}: is {} an opencode server?",
                    self.bridge.settings.url
                );
            }
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !content_type.starts_with("text/event-stream") {
            return format!(
                "GET {path} answered `{content_type}`, not an event stream: is {} an opencode server?",
                self.bridge.settings.url
            );
        }
        let now = self.clock.now();
        self.bridge.update(|i| {
            i.connected = true;
            i.connected_at = Some(now);
            i.last_error = None;
            i.retry_at = None;
        });
        *connected = true;
        tracing::info!(bridge = self.name(), "opencode bridge connected");
        // Prompts raised while we were away, and prompts opencode no longer has. Not caught up
        // (a server still starting answers slowly): follow again from the start.
        if let Err(e) = self.reconcile().await {
            return format!("catching up after connecting: {e}");
        }
        let mut reader = sse::Reader::default();
        let mut every = tokio::time::interval(RECONCILE_EVERY);
        every.tick().await;
        loop {
            let chunk = tokio::select! {
                chunk = response.chunk() => chunk,
                _ = every.tick() => {
                    if let Err(e) = self.reconcile().await {
                        self.bridge.update(|i| i.last_error = Some(e));
                    }
                    continue;
                }
            };
            let chunk = match chunk {
                Ok(Some(c)) => c,
                Ok(None) => return "the event stream ended".into(),
                Err(e) => return format!("the event stream broke: {}", root(&e)),
            };
            let events = match reader.push(&chunk) {
                Ok(ev) => ev,
                Err(e) => return e,
            };
            for data in events {
                self.clone().event(&data);
            }
        }
    }

    /// Takes every prompt opencode has pending that we do not, and withdraws the requests of
    /// prompts it no longer has (this opencode keeps pending prompts in memory only: a restart
    /// loses them), so no one answers a prompt that cannot be answered any more.
    async fn reconcile(self: &Arc<Self>) -> Result<(), String> {
        // Known before listing: a prompt missing from the list is gone, not new.
        let known: Vec<(String, Option<String>, Option<String>)> = lock(&self.inflight)
            .iter()
            .map(|(id, f)| (id.clone(), f.request.clone(), f.directory.clone()))
            .collect();
        let dirs: Vec<Option<String>> = lock(&self.directories).iter().cloned().collect();
        for dir in dirs {
            let listed = self.catch_up(dir.as_deref()).await?;
            for (prompt, request, _) in known
                .iter()
                .filter(|(p, _, d)| *d == dir && !listed.contains(p))
            {
                if let Some(request) = request {
                    self.withdraw(prompt, request).await;
                }
            }
        }
        Ok(())
    }

    /// A prompt opencode no longer has: its request is closed as withdrawn there.
    async fn withdraw(&self, prompt: &str, request: &str) {
        lock(&self.ours).insert(prompt.to_owned());
        let note = format!(
            "{} no longer has this prompt (it restarted, or the session ended)",
            self.name()
        );
        match self
            .broker
            .answered_upstream(request, false, self.name(), Some(note))
            .await
        {
            Ok(true) => tracing::info!(
                bridge = self.name(),
                prompt,
                request,
                "withdrawn: opencode no longer has the prompt"
            ),
            // Decided already (its reply is on the way, or was just sent).
            Ok(false) => {}
            Err(e) => tracing::warn!(bridge = self.name(), error = %e, "cannot withdraw a request"),
        }
    }

    /// Takes every prompt opencode has pending; returns their ids.
    async fn catch_up(
        self: &Arc<Self>,
        directory: Option<&str>,
    ) -> Result<HashSet<String>, String> {
        let request = self.call(reqwest::Method::GET, "/permission", directory)?;
        let response = request
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("GET /permission failed: {}", root(&e)))?;
        if !response.status().is_success() {
            return Err(format!(
                "GET /permission answered HTTP {}",
                response.status()
            ));
        }
        let list: Value = response
            .json()
            .await
            .map_err(|e| format!("GET /permission did not answer JSON: {}", root(&e)))?;
        let mut listed = HashSet::new();
        for props in list.as_array().into_iter().flatten() {
            if let Some(id) = props.get("id").and_then(Value::as_str) {
                listed.insert(id.to_owned());
            }
            self.clone()
                .asked(Api::V1, props, directory.map(str::to_owned));
        }
        Ok(listed)
    }

    fn event(self: Arc<Self>, data: &str) {
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            tracing::warn!(bridge = self.name(), "an event that is not JSON; skipped");
            return;
        };
        // `/global/event` wraps each event with its directory.
        let (directory, payload) = match value.get("payload") {
            Some(payload) => (
                value
                    .get("directory")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                payload,
            ),
            None => (self.bridge.settings.directory.clone(), &value),
        };
        let now = self.clock.now();
        self.bridge.update(|i| i.last_event_at = Some(now));
        let props = payload.get("properties").unwrap_or(&Value::Null);
        match payload.get("type").and_then(Value::as_str) {
            Some("permission.asked") => self.asked(Api::V1, props, directory),
            Some("permission.v2.asked") => self.asked(Api::V2, props, directory),
            Some("permission.replied" | "permission.v2.replied") => self.replied(props),
            _ => {}
        }
    }

    fn asked(self: Arc<Self>, api: Api, props: &Value, directory: Option<String>) {
        let asked = match opencode::parse_asked(api, props) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(bridge = self.name(), error = %e, "an unreadable permission prompt");
                self.bridge.update(|i| i.last_error = Some(e));
                return;
            }
        };
        lock(&self.directories).insert(directory.clone());
        {
            let mut inflight = lock(&self.inflight);
            if inflight.contains_key(&asked.id) {
                return;
            }
            inflight.insert(
                asked.id.clone(),
                Inflight {
                    directory: directory.clone(),
                    ..Inflight::default()
                },
            );
        }
        self.bridge.update(|i| i.pending += 1);
        tokio::spawn(async move {
            let id = asked.id.clone();
            self.handle(asked, directory).await;
            lock(&self.inflight).remove(&id);
            self.bridge
                .update(|i| i.pending = i.pending.saturating_sub(1));
        });
    }

    fn replied(&self, props: &Value) {
        let Some((id, allowed)) = opencode::parse_replied(props) else {
            return;
        };
        if lock(&self.ours).remove(&id) {
            return;
        }
        let request = {
            let mut inflight = lock(&self.inflight);
            let Some(entry) = inflight.get_mut(&id) else {
                return;
            };
            entry.answered_upstream = Some(allowed);
            entry.request.clone()
        };
        if let Some(request) = request {
            let broker = self.broker.clone();
            let name = self.name().to_owned();
            tokio::spawn(async move {
                if let Err(e) = broker
                    .answered_upstream(&request, allowed, &name, None)
                    .await
                {
                    tracing::warn!(bridge = name, error = %e, "cannot record an answer given in opencode");
                }
            });
        }
    }

    /// One prompt, from request to reply.
    async fn handle(&self, asked: Asked, directory: Option<String>) {
        let key = format!("bridge.{}.{}", self.name(), asked.id);
        let request = match self.store.setting(&key).await {
            Ok(Some(request)) => request,
            Ok(None) => match self.create(&asked, directory.as_deref()).await {
                Ok(view) => {
                    if let Err(e) = self
                        .store
                        .put_setting(&key, &view.id, self.clock.now(), Vec::new())
                        .await
                    {
                        tracing::warn!(bridge = self.name(), error = %e, "cannot record which request a prompt became");
                    }
                    self.bridge.update(|i| i.asked += 1);
                    view.id
                }
                Err(e) => {
                    let message = format!("agentgate could not take this prompt: {e}");
                    self.send_reply(&asked, directory.as_deref(), "reject", Some(message))
                        .await;
                    return;
                }
            },
            Err(e) => {
                tracing::warn!(bridge = self.name(), error = %e, "cannot read the store; retrying on the next connection");
                return;
            }
        };
        let upstream = {
            let mut inflight = lock(&self.inflight);
            let entry = inflight.entry(asked.id.clone()).or_default();
            entry.request = Some(request.clone());
            entry.answered_upstream
        };
        if let Some(allowed) = upstream {
            let _ = self
                .broker
                .answered_upstream(&request, allowed, self.name(), None)
                .await;
            return;
        }
        let view = match self.decided(&request).await {
            Some(v) => v,
            None => return,
        };
        if view
            .decided_by
            .as_ref()
            .is_some_and(|b| b.source == Source::Upstream)
        {
            return;
        }
        let (reply, message) = match view.status {
            Status::Allowed if self.remembered_for_session(&view.id) => ("always", None),
            Status::Allowed => ("once", None),
            _ => ("reject", Some(denial_words(&view))),
        };
        self.send_reply(&asked, directory.as_deref(), reply, message)
            .await;
    }

    async fn create(
        &self,
        asked: &Asked,
        directory: Option<&str>,
    ) -> Result<PermissionView, broker::Error> {
        let request = opencode::request(asked, self.name(), directory);
        match self.broker.create(&self.who, request.clone()).await {
            Err(broker::Error::Invalid(_)) => {
                self.broker
                    .create(&self.who, opencode::as_tool(asked, request))
                    .await
            }
            other => other,
        }
    }

    /// Waits until the request is decided; `None` when the daemon stops first.
    async fn decided(&self, request: &str) -> Option<PermissionView> {
        let stopping = self.broker.stopping();
        loop {
            match self.broker.wait(&self.who, request, MAX_WAIT).await {
                Ok(view) if view.status != Status::Pending => return Some(view),
                Ok(_) if *stopping.borrow() => return None,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(bridge = self.name(), error = %e, "cannot follow a request");
                    return None;
                }
            }
        }
    }

    /// Whether a person allowed it for the session (opencode's `always` is session-scoped).
    fn remembered_for_session(&self, request: &str) -> bool {
        self.broker.rules().iter().any(|r| {
            r.spec.session.is_some()
                && matches!(&r.origin, Origin::Remembered { request_id, .. } if request_id == request)
        })
    }

    async fn send_reply(
        &self,
        asked: &Asked,
        directory: Option<&str>,
        reply: &str,
        message: Option<String>,
    ) {
        let path = match asked.api {
            Api::V1 => format!("/permission/{}/reply", enc(&asked.id)),
            Api::V2 => format!(
                "/api/session/{}/permission/{}/reply",
                enc(&asked.session_id),
                enc(&asked.id)
            ),
        };
        let mut body = json!({"reply": reply});
        if let Some(m) = &message {
            body["message"] = json!(m);
        }
        lock(&self.ours).insert(asked.id.clone());
        let mut delay = FIRST_RETRY;
        for attempt in 1..=5 {
            let result = match self.call(reqwest::Method::POST, &path, directory) {
                Ok(r) => r
                    .timeout(CALL_TIMEOUT)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| root(&e)),
                Err(e) => Err(e),
            };
            match result {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(
                        bridge = self.name(),
                        prompt = asked.id,
                        reply,
                        "answered opencode"
                    );
                    return;
                }
                // Answered already (in opencode itself) or gone: nothing to retry.
                Ok(r) if r.status().is_client_error() => {
                    lock(&self.ours).remove(&asked.id);
                    let e = format!(
                        "opencode refused the reply to {} (HTTP {}): answered or gone already",
                        asked.id,
                        r.status()
                    );
                    tracing::warn!(bridge = self.name(), error = %e);
                    self.bridge.update(|i| i.last_error = Some(e));
                    return;
                }
                Ok(r) => self.bridge.update(|i| {
                    i.last_error = Some(format!("replying answered HTTP {}", r.status()))
                }),
                Err(e) => self
                    .bridge
                    .update(|i| i.last_error = Some(format!("replying failed: {e}"))),
            }
            if attempt < 5 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        // Left to the next catch-up: the prompt is still pending there, and its request is
        // decided here, so the reply is sent again after the reconnect.
        lock(&self.ours).remove(&asked.id);
    }
}

fn enc(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// The innermost cause of a client error, without the URL (it may carry a query).
fn root(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    if e.is_timeout() {
        return "timed out".into();
    }
    source.to_string()
}
