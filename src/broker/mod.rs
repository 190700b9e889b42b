//! The permission broker: agents ask, the policy answers at once or holds the request as pending,
//! a person replies, and every outcome is durable and audited.
//!
//! Owns request creation, waiting (long-polls), replies (first writer wins, N-of-M, no
//! self-approval), remembered rules, explicit timeouts and the event stream. Every state change is
//! one store transaction with its audit entries; the decision is on disk before anyone is told.
//! Waiters and event subscribers are woken only after the commit.
//!
//! This file: the `Broker`, `create` and `settle` (the one place every decision passes). By
//! concern: `wait` (long-polls and their watches), `expiry` (timeouts), `reply` (a person's
//! answer and remembered rules), `rules` (the policy in force), `view` (reading requests), `log`
//! (audit reads, events, verification), `remote` (what other instances sharing the database
//! wrote); `normalize` with `paths` and `network` make a request
//! into what the policy decides on.

mod expiry;
mod log;
mod network;
pub mod normalize;
mod paths;
mod remote;
mod reply;
mod rules;
mod view;
mod wait;

pub use log::audit_entry;
use rules::{rule_entry, rule_error};
use view::{subject_of, texts};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use agentgate_policy::{
    Effect, Kind, Origin, Rule, RuleError, RuleSet, RuleSpec, Subject, Target, narrow_rules,
};
use serde_json::json;
use tokio::sync::{Notify, broadcast, watch};

use crate::api::events;
use crate::api::{
    AuditEntry, DecidedBy, Expiry, Explanation, NewPermission, NewRule, PermissionPage,
    PermissionView, Remember, ReplyOutcome, ReplyRequest, RuleView, Source, Status, Verdict,
};
use subtle::ConstantTimeEq;

use crate::audit::{self, Verification, Verifier};
use crate::auth::{Principal, secret};
use crate::clock::{Clock, Timestamp};
use crate::store::{self, AuditRow, Decided, NewAudit, PermissionRow, RuleRow, Store};
use agentgate_policy::Scope;
pub use normalize::Invalid;

/// The longest a single long-poll waits.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// Largest page of listed requests.
pub const MAX_PAGE: i64 = 500;

/// Broker settings from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Timeout of a pending request when neither it nor a rule says otherwise.
    pub default_timeout: Duration,
    /// Expands `~` and `$HOME` in request paths.
    pub home: Option<PathBuf>,
    /// Most requests one credential may have pending at once.
    pub max_pending: u32,
}

/// Most `old_content` one credential may have waiting in pending requests, in bytes: what an
/// agent can make a person's inbox load is bounded (one request may carry 256 KiB).
pub const MAX_PENDING_OLD_CONTENT: i64 = 2 * 1024 * 1024;

/// Errors of the broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or reply is invalid.
    #[error("{}", .0.message)]
    Invalid(Invalid),
    /// No request with that id.
    #[error("no permission request has id `{0}`")]
    NotFound(String),
    /// The request was already decided (or timed out); carries the decision that stands.
    #[error("already decided")]
    AlreadyDecided(Box<PermissionView>),
    /// A credential answering its own request.
    #[error("a credential cannot answer a request it made")]
    SelfApproval,
    /// The requester already has as many pending requests (or as much pending `old_content`)
    /// as it may.
    #[error("{0}")]
    TooManyPending(String),
    /// The same approver (person) twice on an N-of-M request.
    #[error(
        "this person already approved the request (the owner's tokens, sessions and paired devices are one approver); it needs another person"
    )]
    AlreadyApproved,
    /// A reply's edited pattern is wider than the suggested rule and the replier is not `admin`.
    #[error("{0}")]
    PatternTooWide(String),
    /// Neither the requester nor a `read` holder.
    #[error("only the credential that asked, or one with the `read` scope, may see this request")]
    NotYours,
    /// No stored rule with that id.
    #[error("no rule has id `{0}`")]
    RuleNotFound(String),
    /// A configured rule cannot be removed through the API.
    #[error("rule `{0}` comes from the config file; edit config.toml to change it")]
    RuleReadOnly(String),
    /// The OS random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Stored data does not parse (a bug or a hand-edited database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The store failed: nothing was decided.
    #[error(transparent)]
    Store(#[from] store::Error),
}

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid(Invalid {
        field,
        message: format!("{field}: {}", message.into()),
    })
}

/// The broker. Shared behind an `Arc`.
pub struct Broker {
    store: Store,
    clock: Clock,
    settings: Settings,
    configured: Vec<Rule>,
    policy: RwLock<Arc<RuleSet>>,
    reloading: tokio::sync::Mutex<()>,
    waiters: Mutex<HashMap<String, watch::Sender<()>>>,
    wake_expirer: Notify,
    /// When the expirer next wakes by itself (ms since the epoch), so a new request wakes it only
    /// if its deadline comes sooner; `i64::MIN` while the expirer is looking at the store.
    expirer_wakes_at: AtomicI64,
    stopping: watch::Sender<bool>,
}

impl Broker {
    /// Loads stored rules next to the configured ones.
    pub async fn new(
        store: Store,
        clock: Clock,
        settings: Settings,
        configured: Vec<Rule>,
    ) -> Result<Arc<Broker>, Error> {
        let broker = Broker {
            store,
            clock,
            settings,
            configured,
            policy: RwLock::new(Arc::new(
                RuleSet::new(Vec::new()).map_err(|e| Error::Corrupt(e.to_string()))?,
            )),
            reloading: tokio::sync::Mutex::new(()),
            waiters: Mutex::new(HashMap::new()),
            wake_expirer: Notify::new(),
            expirer_wakes_at: AtomicI64::new(i64::MIN),
            stopping: watch::channel(false).0,
        };
        broker.reload_policy().await?;
        Ok(Arc::new(broker))
    }

    /// Ends long-polls and event streams so the daemon can stop.
    pub fn begin_shutdown(&self) {
        let _ = self.stopping.send(true);
        // Waiters park on their request's watch alone: wake them all to see the stop.
        let waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        for sender in waiters.values() {
            let _ = sender.send(());
        }
    }

    /// A receiver that turns true when the daemon is stopping.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Resolves once the daemon begins to stop.
    pub fn until_stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// An agent asks. Decided at once by the policy, or stored as pending.
    pub async fn create(
        &self,
        who: &Principal,
        request: NewPermission,
    ) -> Result<PermissionView, Error> {
        self.create_within(who, request, None).await
    }

    /// As [`Broker::create`], for an asker that cannot wait longer than `patience` (a hook the
    /// agent kills after its timeout): a pending request's deadline is at most that far away,
    /// so the person's silence is recorded as `timeout` before the asker gives up.
    pub(super) async fn create_within(
        &self,
        who: &Principal,
        request: NewPermission,
        patience: Option<Duration>,
    ) -> Result<PermissionView, Error> {
        let mut n =
            normalize::normalize(request, self.settings.home.as_deref()).map_err(Error::Invalid)?;
        n.subject.requester = Some(who.actor().to_owned());
        let now = self.clock.now();
        let decision = self.policy().decide(&n.subject, now.as_millis());
        let id = secret::new_id("req_").map_err(|_| Error::Random)?;
        let by = DecidedBy {
            source: Source::Rule,
            rule: decision.rule.clone(),
            approver: None,
            approvers: Vec::new(),
            auto_resolved: false,
            reason: Some(decision.reason.clone()),
        };
        let (status, deadline) = match decision.effect {
            Effect::Allow => (Status::Allowed, None),
            Effect::Deny => (Status::Denied, None),
            Effect::Ask => {
                let secs = n
                    .request
                    .timeout
                    .or(decision.timeout)
                    .unwrap_or(self.settings.default_timeout.as_secs());
                let secs = match patience.map(|p| p.as_secs().max(1)) {
                    Some(cap) if secs == 0 || secs > cap => cap,
                    _ => secs,
                };
                (
                    Status::Pending,
                    (secs > 0).then(|| now.plus(Duration::from_secs(secs))),
                )
            }
        };
        let decided = status != Status::Pending;
        let row = PermissionRow {
            id: id.clone(),
            kind: n.subject.kind.as_str().to_owned(),
            summary: n.summary.clone(),
            body: to_json(&n.request),
            targets: to_json(&n.subject.targets),
            agent: n.request.agent.clone(),
            session: n.request.session.clone(),
            workspace: n.request.workspace.clone(),
            requester_id: who.token_id.clone(),
            requester_actor: who.actor().to_owned(),
            requester_name: who.name.clone(),
            status,
            created_at: now,
            deadline,
            approvals_required: i64::from(decision.approvals),
            decided_at: decided.then_some(now),
            decided_by: decided.then(|| to_json(&by)),
            message: None,
        };
        let mut entries = vec![NewAudit {
            at: now,
            event: events::PERMISSION_CREATED,
            subject: Some(id.clone()),
            data: to_json(&json!({
                "kind": row.kind, "summary": row.summary, "targets": texts(&n.subject.targets),
                "requester": who.name, "agent": row.agent, "session": row.session,
                "workspace": row.workspace, "policy": decision.effect, "rule": decision.rule,
                "reason": decision.reason, "deadline": deadline, "approvals_required": decision.approvals,
            })),
        }];
        if decided {
            entries.push(decided_entry(&id, now, status, &by, None));
        }
        // A request held for a person counts against its credential's budget, checked in the
        // insert's own transaction.
        let budget = (!decided).then(|| store::PendingBudget {
            max_count: i64::from(self.settings.max_pending),
            max_old_content: MAX_PENDING_OLD_CONTENT,
            adding: n.request.old_content.as_ref().map_or(0, |c| c.len() as i64),
        });
        match self.store.insert_permission(&row, entries, budget).await? {
            store::Inserted::Stored(rows) => self.publish(rows),
            store::Inserted::OverBudget {
                pending,
                old_content,
            } => {
                return Err(self
                    .refuse_over_budget(who, &n.request, now, pending, old_content)
                    .await?);
            }
        }
        if let Some(at) = deadline {
            self.deadline_added(at);
        }
        self.view(row).await
    }

    /// Audits the refusal of a request its credential has no pending budget left for, and says why.
    async fn refuse_over_budget(
        &self,
        who: &Principal,
        request: &NewPermission,
        now: Timestamp,
        count: i64,
        old_content: i64,
    ) -> Result<Error, Error> {
        let why = if count >= i64::from(self.settings.max_pending) {
            format!(
                "this credential already has {count} requests waiting for a person (at most {}); wait for some to be answered",
                self.settings.max_pending
            )
        } else {
            format!(
                "this credential's pending requests already carry {old_content} bytes of old_content (at most {MAX_PENDING_OLD_CONTENT} together); wait for some to be answered"
            )
        };
        let rows = self
            .store
            .append_audit(vec![NewAudit {
                at: now,
                event: events::PERMISSION_REFUSED,
                subject: None,
                data: to_json(&json!({
                    "requester": who.name, "kind": request.kind, "agent": request.agent,
                    "pending": count, "reason": why,
                })),
            }])
            .await?;
        self.publish(rows);
        Ok(Error::TooManyPending(why))
    }

    /// Records a decision on a pending request, with any rules it remembers and their audit
    /// entries, in one transaction; then tells waiters and subscribers. `false`: it was no longer
    /// pending (someone else decided first), and nothing was written.
    async fn settle(
        &self,
        id: &str,
        status: Status,
        by: &DecidedBy,
        message: Option<String>,
        rules: &[Rule],
        now: Timestamp,
    ) -> Result<bool, Error> {
        let mut entries = vec![decided_entry(id, now, status, by, message.as_deref())];
        entries.extend(
            rules
                .iter()
                .map(|r| rule_entry(events::RULE_CREATED, r, now)),
        );
        let rule_rows: Vec<RuleRow> = rules
            .iter()
            .map(|r| RuleRow {
                id: r.id.clone(),
                spec: to_json(&r.spec),
                origin: to_json(&r.origin),
                created_at: now,
            })
            .collect();
        let decided = Decided {
            id: id.to_owned(),
            status,
            at: now,
            by: to_json(by),
            message,
        };
        let Some(rows) = self
            .store
            .decide_permission(&decided, &rule_rows, entries)
            .await?
        else {
            return Ok(false);
        };
        // New rules are in force before anyone hears of the decision: the agent released by it
        // may ask again at once and must be answered by them. (Waiters are woken even if the
        // reload fails: the decision itself is committed.)
        let reloaded = if rules.is_empty() {
            Ok(())
        } else {
            self.reload_policy().await
        };
        self.publish(rows);
        self.wake(id);
        reloaded?;
        Ok(true)
    }
}

fn decided_entry(
    id: &str,
    at: Timestamp,
    status: Status,
    by: &DecidedBy,
    message: Option<&str>,
) -> NewAudit {
    NewAudit {
        at,
        event: events::PERMISSION_DECIDED,
        subject: Some(id.to_owned()),
        data: to_json(&json!({"status": status, "decided_by": by, "message": message})),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(e.to_string()))
}
