//! The CLI's HTTP client of the daemon: finds the URL and the token, sends requests, and turns
//! the daemon's error shape (or its absence) into a clear message.

use std::path::PathBuf;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Global;
use crate::api::ErrorBody;
use crate::auth::ADMIN_TOKEN_FILE;
use crate::config::{self, FileConfig};

/// An error answer from the daemon, kept whole so `--json` can print it as it came.
#[derive(Debug, thiserror::Error)]
#[error("{} ({}, HTTP {status})", body.message, body.error)]
pub struct DaemonError {
    /// HTTP status.
    pub status: StatusCode,
    /// The daemon's error body.
    pub body: ErrorBody,
}

pub(super) struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// Resolves the URL (`--url`, else the configured listen address) and the token (`--token`,
    /// `AGENTGATE_TOKEN`, else `<data-dir>/admin.token`).
    pub fn from_global(global: &Global) -> anyhow::Result<Client> {
        Client::with_token(global, None)
    }

    /// As [`Client::from_global`], with `token` (read from a hook's token file, say) before
    /// every other source.
    pub fn with_token(global: &Global, token: Option<String>) -> anyhow::Result<Client> {
        let (file, _) = FileConfig::load(global.config.as_deref())?;
        let base = match &global.url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let listen = match std::env::var("AGENTGATE_LISTEN")
                    .ok()
                    .or(file.listen.clone())
                {
                    Some(text) => config::parse_listen(&text)?,
                    None => config::DEFAULT_LISTEN,
                };
                let host = if listen.ip().is_unspecified() {
                    "127.0.0.1".to_owned()
                } else {
                    listen.ip().to_string()
                };
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host
                };
                format!("http://{host}:{}", listen.port())
            }
        };
        let token = match token.as_ref().or(global.token.as_ref()) {
            Some(t) => t.trim().to_owned(),
            None => {
                let data_dir = config::resolve_data_dir(global.data_dir.clone().or(file.data_dir))?;
                read_admin_token(data_dir.join(ADMIN_TOKEN_FILE))?
            }
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Client { base, token, http })
    }

    /// Opens an event stream (SSE) at `path`.
    pub async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(DaemonError { status, body }.into()),
            Err(_) => Err(anyhow::anyhow!("{url} answered HTTP {status}")),
        }
    }

    /// The daemon's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Posts `body` as JSON text and returns the answer's status and bytes as they came, waiting
    /// at most `timeout`.
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> anyhow::Result<(StatusCode, axum::body::Bytes)> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    anyhow::anyhow!(
                        "the agentgate daemon at {} did not answer in time",
                        self.base
                    )
                } else {
                    self.unreachable(e)
                }
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("reading the daemon's answer")?;
        Ok((status, bytes))
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_connect() {
            anyhow::anyhow!(
                "the agentgate daemon is not running at {} (connection refused); start it with `agentgate serve`",
                self.base
            )
        } else {
            anyhow::Error::new(e).context(format!(
                "cannot reach the agentgate daemon at {}",
                self.base
            ))
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send::<(), T>(Method::GET, path, None).await
    }

    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("reading the daemon's answer")?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("unexpected answer from {url}"));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(DaemonError { status, body }.into()),
            Err(_) => Err(anyhow::anyhow!(
                "{url} answered HTTP {status}; is that an agentgate daemon?"
            )),
        }
    }
}

fn read_admin_token(path: PathBuf) -> anyhow::Result<String> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(anyhow::anyhow!(
            "no token: pass --token or set AGENTGATE_TOKEN (the local owner token {} does not exist; \
             `agentgate serve` creates it on first start)",
            path.display()
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}
