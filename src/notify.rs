//! Notifications: each new request that waits for a person is sent once to every `[[notify]]`
//! target — a generic JSON webhook, a Slack-compatible incoming webhook, or ntfy — with its id,
//! agent, summary and a link to the inbox. Never a credential, never file contents.
//!
//! Each target has its own queue and task: a slow or failing target delays neither a decision
//! (the broker never waits for us) nor another target. Failed sends are retried with backoff.
//! Target URLs often carry a secret (Slack's do), so logs name a target, never its URL.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::api::events;
use crate::config::SecretSource;
use crate::store::AuditRow;

/// `[[notify]]` as written in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `webhook`, `slack` or `ntfy`.
    pub kind: String,
    /// Its name in logs (default `<kind>-<n>`).
    pub name: Option<String>,
    /// The URL (an ntfy topic URL such as `https://ntfy.sh/my-topic`).
    pub url: Option<String>,
    /// The environment variable holding the URL (for URLs with secrets in them).
    pub url_env: Option<String>,
    /// A file holding the URL.
    pub url_file: Option<PathBuf>,
    /// Seconds one attempt may take (default 5).
    pub timeout: Option<u64>,
    /// Attempts after the first (default 3).
    pub retries: Option<u32>,
}

/// What a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `POST` of a JSON object (see [`Notice`]).
    Webhook,
    /// Slack's incoming webhook: `{"text": …}`.
    Slack,
    /// ntfy's JSON publishing, with title, priority by risk and a click link.
    Ntfy,
}

/// A checked `[[notify]]`.
#[derive(Debug, Clone)]
pub struct Target {
    /// For logs.
    pub name: String,
    /// What it speaks.
    pub format: Format,
    url: url::Url,
    timeout: Duration,
    retries: u32,
}

impl NotifyConfig {
    /// Checks the entry (`index` is 1-based, for the default name). Errors never quote a URL.
    pub fn target(&self, index: usize) -> Result<Target, String> {
        let format = match self.kind.as_str() {
            "webhook" => Format::Webhook,
            "slack" => Format::Slack,
            "ntfy" => Format::Ntfy,
            other => {
                return Err(format!(
                    "[[notify]] {index}: kind = `{other}` is not known (webhook, slack or ntfy)"
                ));
            }
        };
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{index}", self.kind));
        let source = SecretSource::of(self.url_env.as_ref(), self.url_file.as_ref(), "url")
            .map_err(|e| format!("[[notify]] `{name}`: {e}"))?;
        let text = match (&self.url, source) {
            (Some(u), None) => u.clone(),
            (None, Some(source)) => source
                .read("url")
                .map_err(|e| format!("[[notify]] `{name}`: {e}"))?,
            _ => {
                return Err(format!(
                    "[[notify]] `{name}`: set exactly one of url, url_env and url_file"
                ));
            }
        };
        let url = url::Url::parse(text.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| format!("[[notify]] `{name}`: the URL is not an http(s) URL"))?;
        if format == Format::Ntfy
            && url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .is_none_or(str::is_empty)
        {
            return Err(format!(
                "[[notify]] `{name}`: an ntfy URL names its topic, e.g. https://ntfy.sh/my-topic"
            ));
        }
        let timeout = match self.timeout {
            Some(0) => return Err(format!("[[notify]] `{name}`: timeout must be at least 1")),
            Some(s) => Duration::from_secs(s.min(120)),
            None => Duration::from_secs(5),
        };
        Ok(Target {
            name,
            format,
            url,
            timeout,
            retries: self.retries.unwrap_or(3).min(10),
        })
    }
}

/// What a notification says: nothing an agent could use to approve, and no file contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// Always `permission.pending`.
    pub event: String,
    /// `req_…`.
    pub id: String,
    /// `file`, `shell`, `tool`, `network`, `directory`.
    pub kind: String,
    /// The asking agent, as it named itself.
    pub agent: Option<String>,
    /// The credential that asked.
    pub requester: Option<String>,
    /// One line: the command, `modify /path`, the tool, `GET url`.
    pub summary: String,
    /// When it times out (RFC 3339), if ever.
    pub deadline: Option<String>,
    /// The request in the inbox.
    pub link: String,
}

impl Notice {
    /// The notice for an audit entry, if it is a request left for a person.
    pub fn of(row: &AuditRow, inbox: &str) -> Option<Notice> {
        if row.event != events::PERMISSION_CREATED {
            return None;
        }
        let data: Value = serde_json::from_str(&row.data).ok()?;
        if data.get("policy").and_then(Value::as_str) != Some("ask") {
            return None;
        }
        let id = row.subject.clone()?;
        let text = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(Notice {
            event: "permission.pending".into(),
            link: format!("{}/#card-{id}", inbox.trim_end_matches('/')),
            id,
            kind: text("kind").unwrap_or_default(),
            agent: text("agent"),
            requester: text("requester"),
            summary: crate::display::visible(&text("summary").unwrap_or_default(), 300),
            deadline: text("deadline"),
        })
    }

    /// ntfy's priority (1–5) by what the request could do.
    fn priority(&self) -> u8 {
        match self.kind.as_str() {
            "shell" | "network" => 4,
            "file" if self.summary.starts_with("read ") => 2,
            _ => 3,
        }
    }

    fn who(&self) -> String {
        self.agent
            .clone()
            .or_else(|| self.requester.clone())
            .map(|a| crate::display::visible(&a, 64))
            .unwrap_or_else(|| "an agent".into())
    }

    /// The body for `format`, and the URL to post it to.
    pub fn body(&self, format: Format, url: &url::Url) -> (url::Url, Value) {
        match format {
            Format::Webhook => (url.clone(), json!(self)),
            Format::Slack => {
                let esc = |s: &str| {
                    s.replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                };
                (
                    url.clone(),
                    json!({"text": format!(
                        "agentgate: *{}* asks ({}): `{}` <{}|Open in the inbox>",
                        esc(&self.who()), self.kind, esc(&self.summary), self.link
                    )}),
                )
            }
            Format::Ntfy => {
                let mut base = url.clone();
                let topic = url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .unwrap_or_default()
                    .to_owned();
                if let Ok(mut segments) = base.path_segments_mut() {
                    segments.pop();
                }
                (
                    base,
                    json!({
                        "topic": topic,
                        "title": format!("agentgate: {} asks ({})", self.who(), self.kind),
                        "message": self.summary,
                        "priority": self.priority(),
                        "click": self.link,
                        "tags": ["lock"],
                    }),
                )
            }
        }
    }
}

/// Starts one task per target and the dispatcher that feeds them from the audit stream; all end
/// when `stopped` resolves.
pub fn spawn(
    targets: Vec<Target>,
    mut audit: broadcast::Receiver<Arc<AuditRow>>,
    inbox: String,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if targets.is_empty() {
        return;
    }
    let http = match reqwest::Client::builder().no_proxy().build() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "notifications are off: cannot build an HTTP client");
            return;
        }
    };
    let queues: Vec<(String, mpsc::Sender<Arc<Notice>>)> = targets
        .into_iter()
        .map(|target| {
            let (tx, rx) = mpsc::channel(256);
            let name = target.name.clone();
            tokio::spawn(deliver(target, rx, http.clone()));
            (name, tx)
        })
        .collect();
    tokio::spawn(async move {
        tokio::pin!(stopped);
        loop {
            let row = tokio::select! {
                () = &mut stopped => return,
                row = audit.recv() => row,
            };
            let row = match row {
                Ok(row) => row,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "notifications fell behind; some were not sent");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(notice) = Notice::of(&row, &inbox) else {
                continue;
            };
            let notice = Arc::new(notice);
            for (name, queue) in &queues {
                if queue.try_send(notice.clone()).is_err() {
                    tracing::warn!(
                        target = name,
                        id = notice.id,
                        "notification queue full; dropped"
                    );
                }
            }
        }
    });
}

/// Sends each notice to one target, retrying with backoff.
async fn deliver(target: Target, mut queue: mpsc::Receiver<Arc<Notice>>, http: reqwest::Client) {
    while let Some(notice) = queue.recv().await {
        let (url, body) = notice.body(target.format, &target.url);
        let mut delay = Duration::from_millis(500);
        for attempt in 0..=target.retries {
            let sent = http
                .post(url.clone())
                .timeout(target.timeout)
                .json(&body)
                .send()
                .await;
            let error = match sent {
                Ok(r) if r.status().is_success() => {
                    tracing::debug!(target = target.name, id = notice.id, "notification sent");
                    break;
                }
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) if e.is_timeout() => "timed out".to_owned(),
                Err(e) if e.is_connect() => "cannot connect".to_owned(),
                Err(_) => "the request failed".to_owned(),
            };
            tracing::warn!(
                target = target.name,
                id = notice.id,
                attempt,
                error,
                "notification not delivered"
            );
            if attempt < target.retries {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn row(data: Value) -> AuditRow {
        AuditRow {
            seq: 1,
            at: Timestamp::from_millis(0),
            event: events::PERMISSION_CREATED.into(),
            subject: Some("req_1".into()),
            data: data.to_string(),
            prev_hash: Vec::new(),
            hash: Vec::new(),
        }
    }

    #[test]
    fn only_requests_left_for_a_person_are_sent_in_each_format() {
        assert!(Notice::of(&row(json!({"policy": "allow"})), "http://x").is_none());
        let n = Notice::of(
            &row(
                json!({"policy": "ask", "kind": "shell", "summary": "rm -rf <b>",
                "agent": "opencode", "requester": "bridge-opencode"}),
            ),
            "http://127.0.0.1:7700/",
        )
        .unwrap();
        assert_eq!(n.link, "http://127.0.0.1:7700/#card-req_1");
        let slack = url::Url::parse("https://hooks.slack.test/services/T/B/secret").unwrap();
        let (_, body) = n.body(Format::Slack, &slack);
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("rm -rf &lt;b&gt;") && text.contains("|Open in the inbox>"),
            "{text}"
        );
        let ntfy = url::Url::parse("https://ntfy.test/agents").unwrap();
        let (post_to, body) = n.body(Format::Ntfy, &ntfy);
        assert_eq!(post_to.as_str(), "https://ntfy.test/");
        assert_eq!(body["topic"], "agents");
        assert_eq!(body["priority"], 4);
        assert_eq!(body["click"], "http://127.0.0.1:7700/#card-req_1");
    }

    #[test]
    fn bad_targets_are_refused_without_quoting_the_url() {
        let cfg = |kind: &str, url: &str| NotifyConfig {
            kind: kind.into(),
            name: None,
            url: Some(url.into()),
            url_env: None,
            url_file: None,
            timeout: None,
            retries: None,
        };
        let err = cfg("pager", "https://x").target(1).unwrap_err();
        assert!(err.contains("not known"), "{err}");
        let err = cfg("slack", "hooks.slack.com/services/SECRET")
            .target(2)
            .unwrap_err();
        assert!(
            err.contains("not an http(s) URL") && !err.contains("SECRET"),
            "{err}"
        );
        let err = cfg("ntfy", "https://ntfy.sh/").target(3).unwrap_err();
        assert!(err.contains("names its topic"), "{err}");
        assert_eq!(
            cfg("webhook", "http://127.0.0.1:9/x")
                .target(4)
                .unwrap()
                .name,
            "webhook-4"
        );
    }
}
