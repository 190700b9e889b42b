//! The permission broker: agents ask, the policy answers at once or holds the request as pending,
//! a person replies, and every outcome is durable and audited.
//!
//! Owns request creation, waiting (long-polls), replies (first writer wins, N-of-M, no
//! self-approval), remembered rules, explicit timeouts and the event stream. Every state change is
//! one store transaction with its audit entries; the decision is on disk before anyone is told.
//! Waiters and event subscribers are woken only after the commit.

mod network;
pub mod normalize;
mod paths;

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

/// What a waiter does after looking at its request.
enum Look {
    Done(Box<PermissionView>),
    Park(tokio::time::Instant),
}

/// A waiter's interest in one request. When the waiter is done (answered, timed out, or its
/// client went away), the request's watch is forgotten if nobody else is watching it, so the
/// waiter map holds only requests that someone waits on.
struct Interest<'a> {
    broker: &'a Broker,
    id: &'a str,
    rx: Option<watch::Receiver<()>>,
}

impl<'a> Interest<'a> {
    fn new(broker: &'a Broker, id: &'a str) -> Self {
        Interest {
            broker,
            id,
            rx: Some(broker.watch(id)),
        }
    }

    /// Resolves when the request may have changed (or its watch was dropped: look again).
    async fn changed(&mut self) {
        if let Some(rx) = &mut self.rx {
            let _ = rx.changed().await;
        }
    }

    /// Watches afresh after a change (a decision takes the old watch out of the map).
    fn renew(&mut self) {
        self.rx = None;
        self.rx = Some(self.broker.watch(self.id));
    }
}

impl Drop for Interest<'_> {
    fn drop(&mut self) {
        self.rx = None;
        let mut waiters = self
            .broker
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if waiters
            .get(self.id)
            .is_some_and(|s| s.receiver_count() == 0)
        {
            waiters.remove(self.id);
        }
    }
}

/// The broker. Shared behind an `Arc`.
pub struct Broker {
    store: Store,
    clock: Clock,
    settings: Settings,
    configured: Vec<Rule>,
    policy: RwLock<Arc<RuleSet>>,
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
            waiters: Mutex::new(HashMap::new()),
            wake_expirer: Notify::new(),
            expirer_wakes_at: AtomicI64::new(i64::MIN),
            stopping: watch::channel(false).0,
        };
        broker.reload_policy().await?;
        Ok(Arc::new(broker))
    }

    /// Starts the task that times out pending requests at their deadline. It also expires, at
    /// once, what passed its deadline while the daemon was down.
    pub fn spawn_expirer(self: &Arc<Self>) {
        let broker = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(b) = broker.upgrade() else { return };
                // A request created from here on wakes the next sleep at once (its permit is kept).
                b.expirer_wakes_at.store(i64::MIN, Ordering::SeqCst);
                if let Err(err) = b.expire_due().await {
                    tracing::error!(error = %err, "expiring pending requests failed");
                }
                let wait = match b.store.next_deadline().await {
                    Ok(Some(at)) => at.since(b.clock.now()).min(Duration::from_secs(60)),
                    _ => Duration::from_secs(60),
                };
                let wait = wait.max(Duration::from_millis(5));
                b.expirer_wakes_at
                    .store(b.clock.now().plus(wait).as_millis(), Ordering::SeqCst);
                let stopped = b.until_stopped();
                tokio::select! {
                    _ = b.wake_expirer.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped => {}
                }
                if *b.stopping.borrow() {
                    return;
                }
            }
        });
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

    fn policy(&self) -> Arc<RuleSet> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn reload_policy(&self) -> Result<(), Error> {
        let mut rules = self.configured.clone();
        for row in self.store.rules().await? {
            rules.push(rule_from_row(&row)?);
        }
        let set = RuleSet::new(rules).map_err(|e| Error::Corrupt(e.to_string()))?;
        match self.policy.write() {
            Ok(mut p) => *p = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        Ok(())
    }

    /// Explains what the policy would decide, without storing anything.
    pub fn explain(&self, request: NewPermission) -> Result<Explanation, Error> {
        let n =
            normalize::normalize(request, self.settings.home.as_deref()).map_err(Error::Invalid)?;
        let decision = self
            .policy()
            .decide(&n.subject, self.clock.now().as_millis());
        let shell = match n.subject.kind {
            Kind::Shell => agentgate_policy::shell::parse(&n.summary).ok(),
            _ => None,
        };
        Ok(Explanation {
            targets: n.subject.targets.iter().map(|t| t.text.clone()).collect(),
            shell,
            decision,
        })
    }

    /// An agent asks. Decided at once by the policy, or stored as pending.
    pub async fn create(
        &self,
        who: &Principal,
        request: NewPermission,
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
                (
                    Status::Pending,
                    (secs > 0).then(|| now.plus(Duration::from_secs(secs))),
                )
            }
        };
        let decided = status != Status::Pending;
        if !decided {
            self.check_pending_budget(who, &n.request, now).await?;
        }
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
            status: status.as_str().to_owned(),
            created_at: now,
            deadline,
            approvals_required: i64::from(decision.approvals),
            decided_at: decided.then_some(now),
            decided_by: decided.then(|| to_json(&by)),
            message: None,
        };
        let mut entries = vec![NewAudit {
            at: now,
            event: "permission.created",
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
        let rows = self.store.insert_permission(&row, entries).await?;
        self.publish(rows);
        if deadline.is_some_and(|at| at.as_millis() < self.expirer_wakes_at.load(Ordering::SeqCst))
        {
            self.wake_expirer.notify_one();
        }
        self.view(row).await
    }

    /// Refuses (and audits) a request that would take its credential past its pending budget.
    async fn check_pending_budget(
        &self,
        who: &Principal,
        request: &NewPermission,
        now: Timestamp,
    ) -> Result<(), Error> {
        let (count, old_content) = self.store.pending_load(who.actor()).await?;
        let adding = request.old_content.as_ref().map_or(0, |c| c.len() as i64);
        let why = if count >= i64::from(self.settings.max_pending) {
            format!(
                "this credential already has {count} requests waiting for a person (at most {}); wait for some to be answered",
                self.settings.max_pending
            )
        } else if old_content + adding > MAX_PENDING_OLD_CONTENT {
            format!(
                "this credential's pending requests already carry {old_content} bytes of old_content (at most {MAX_PENDING_OLD_CONTENT} together); wait for some to be answered"
            )
        } else {
            return Ok(());
        };
        let rows = self
            .store
            .append_audit(vec![NewAudit {
                at: now,
                event: "permission.refused",
                subject: None,
                data: to_json(&json!({
                    "requester": who.name, "kind": request.kind, "agent": request.agent,
                    "pending": count, "reason": why,
                })),
            }])
            .await?;
        self.publish(rows);
        Err(Error::TooManyPending(why))
    }

    /// One request, for its requester or a `read` holder. A request past its deadline is timed
    /// out first, so nobody ever sees a stale pending.
    pub async fn get(&self, who: &Principal, id: &str) -> Result<PermissionView, Error> {
        let row = self.load_for(who, id).await?;
        self.view(row).await
    }

    /// The stored row of a request `who` may follow (timed out first if past its deadline).
    async fn load_for(&self, who: &Principal, id: &str) -> Result<PermissionRow, Error> {
        let row = self.load(id).await?;
        if row.requester_actor != who.actor() && !who.scopes.allows(Scope::Read) {
            return Err(Error::NotYours);
        }
        Ok(row)
    }

    async fn load(&self, id: &str) -> Result<PermissionRow, Error> {
        let row = self
            .store
            .permission(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        if row.status == "pending" && row.deadline.is_some_and(|d| d <= self.clock.now()) {
            self.expire(&row.id).await?;
            return self
                .store
                .permission(id)
                .await?
                .ok_or_else(|| Error::NotFound(id.to_owned()));
        }
        Ok(row)
    }

    /// An agent asks and waits for the decision: up to `max`, or with `None` until it is decided
    /// (by a person, a rule or its timeout) or the daemon stops. Returns the request as it then
    /// stands, pending if the wait ran out.
    pub async fn ask_and_wait(
        &self,
        who: &Principal,
        request: NewPermission,
        max: Option<Duration>,
    ) -> Result<PermissionView, Error> {
        // Boxed: a long wait parks here, and should not carry the creation's state with it.
        let mut view = Box::pin(self.create(who, request)).await?;
        let mut left = max;
        while view.status == Status::Pending
            && left.is_none_or(|l| !l.is_zero())
            && !*self.stopping().borrow()
        {
            let step = left.map_or(MAX_WAIT, |l| l.min(MAX_WAIT));
            view = self.wait(who, &view.id, step).await?;
            left = left.map(|l| l.saturating_sub(step));
        }
        Ok(view)
    }

    /// Waits up to `max` (capped at [`MAX_WAIT`]) for `id` to be decided; returns it either way.
    /// A waiter parks holding only its watch receiver and a timer, so 10,000 of them stay small;
    /// everything else is looked up again when it wakes.
    pub async fn wait(
        &self,
        who: &Principal,
        id: &str,
        max: Duration,
    ) -> Result<PermissionView, Error> {
        let until = tokio::time::Instant::now() + max.min(MAX_WAIT);
        // Check existence and access before registering interest, so unknown ids leave nothing
        // behind in the waiter map. (No view is kept in this frame: it would be parked with us.)
        if let Look::Done(view) = Box::pin(self.look(who, id, until)).await? {
            return Ok(*view);
        }
        // Registered before each look, so a decision made after the look still wakes us.
        let mut interest = Interest::new(self, id);
        loop {
            let wake = match Box::pin(self.look(who, id, until)).await? {
                Look::Done(view) => return Ok(*view),
                Look::Park(wake) => wake,
            };
            if tokio::time::timeout_at(wake, interest.changed())
                .await
                .is_ok()
            {
                interest.renew();
            }
        }
    }

    /// One look at a waited-on request: done (decided, the wait is over or the daemon is
    /// stopping), or when to look again at the latest: at the end of the wait, or just after the
    /// request's own deadline (to report its timeout).
    async fn look(
        &self,
        who: &Principal,
        id: &str,
        until: tokio::time::Instant,
    ) -> Result<Look, Error> {
        // The row alone says whether to park; the view (with its suggested rules) is built only
        // for the answer.
        let row = self.load_for(who, id).await?;
        let now = tokio::time::Instant::now();
        if row.status != "pending" || now >= until || *self.stopping.borrow() {
            return Ok(Look::Done(Box::new(self.view(row).await?)));
        }
        Ok(Look::Park(match row.deadline {
            Some(deadline) => {
                let left = deadline.since(self.clock.now()) + Duration::from_millis(5);
                until.min(now + left)
            }
            None => until,
        }))
    }

    /// Requests that parked waiters are watching (each is forgotten once nobody watches it).
    pub fn watched(&self) -> usize {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn watch(&self, id: &str) -> watch::Receiver<()> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    fn wake(&self, id: &str) {
        let sender = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(s) = sender {
            let _ = s.send(());
        }
    }

    /// Lists requests in creation order, optionally of one status, a page at a time.
    pub async fn list(
        &self,
        status: Option<Status>,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<PermissionPage, Error> {
        self.expire_due().await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self
            .store
            .list_permissions(status.map(Status::as_str), page_cursor(cursor)?, limit + 1)
            .await?;
        self.page(rows, limit).await
    }

    /// Decided requests, newest first, a page at a time (the web inbox's history).
    pub async fn history(&self, cursor: Option<&str>, limit: i64) -> Result<PermissionPage, Error> {
        self.expire_due().await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self
            .store
            .decided_permissions(page_cursor(cursor)?, limit + 1)
            .await?;
        self.page(rows, limit).await
    }

    /// A page of `limit` views from `rows` (fetched with one extra row to tell whether more follow),
    /// with the cursor of its last entry when they do.
    async fn page(&self, rows: Vec<PermissionRow>, limit: i64) -> Result<PermissionPage, Error> {
        let more = rows.len() as i64 > limit;
        let mut permissions = Vec::new();
        for row in rows.into_iter().take(limit as usize) {
            permissions.push(self.view(row).await?);
        }
        let next_cursor = more
            .then(|| permissions.last())
            .flatten()
            .map(|p| format!("{}.{}", p.created_at.as_millis(), p.id));
        Ok(PermissionPage {
            permissions,
            next_cursor,
        })
    }

    /// A person answers. First writer wins; a credential never answers its own request; `deny`
    /// wins over any approvals; `allow` needs the request's number of distinct approvers.
    pub async fn reply(
        &self,
        who: &Principal,
        id: &str,
        reply: ReplyRequest,
    ) -> Result<ReplyOutcome, Error> {
        if reply.message.as_ref().is_some_and(|m| m.len() > 4096) {
            return Err(invalid("message", "at most 4096 bytes"));
        }
        if reply.remember == Remember::Once
            && (reply.pattern.is_some() || reply.expires_in.is_some())
        {
            return Err(invalid(
                "remember",
                "`pattern` and `expires_in` need remember `session` or `always`",
            ));
        }
        let row = self.load(id).await?;
        if row.requester_actor == who.actor() {
            return Err(Error::SelfApproval);
        }
        if row.status != "pending" {
            return Err(Error::AlreadyDecided(Box::new(self.view(row).await?)));
        }
        if reply.decision == Verdict::Allow
            && row.approvals_required > 1
            && reply.remember != Remember::Once
        {
            // Only an `ask` rule asks for several approvers, and `ask` outranks any remembered
            // allow: such a rule could never take effect, so none is saved or half-recorded.
            return Err(invalid(
                "remember",
                format!(
                    "this request needs {} approvals (an ask rule requires them), and a remembered allow never outranks an ask rule; allow it `once`",
                    row.approvals_required
                ),
            ));
        }
        let now = self.clock.now();
        let rules = self.remembered_rules(who, &row, &reply, now)?;
        let mut approvers = vec![who.name.clone()];
        if reply.decision == Verdict::Allow && row.approvals_required > 1 {
            let entry = NewAudit {
                at: now,
                event: "permission.approved",
                subject: Some(row.id.clone()),
                data: to_json(
                    &json!({"approver": who.name, "person": who.person, "required": row.approvals_required}),
                ),
            };
            let added = self
                .store
                .add_approval(&row.id, &who.approver(), &who.name, now, vec![entry])
                .await;
            let (names, audit_rows) = match added {
                Ok(Some(x)) => x,
                Ok(None) => return Err(self.already_decided(id).await),
                Err(store::Error::Conflict(_)) => return Err(Error::AlreadyApproved),
                Err(e) => return Err(e.into()),
            };
            self.publish(audit_rows);
            if (names.len() as i64) < row.approvals_required {
                let permission = self.view(self.load(id).await?).await?;
                return Ok(ReplyOutcome {
                    permission,
                    remembered: Vec::new(),
                    resolved: Vec::new(),
                });
            }
            approvers = names;
        }
        let status = match reply.decision {
            Verdict::Allow => Status::Allowed,
            Verdict::Deny => Status::Denied,
        };
        let by = DecidedBy {
            source: Source::Person,
            rule: None,
            approver: Some(who.name.clone()),
            approvers: if approvers.len() > 1 {
                approvers
            } else {
                Vec::new()
            },
            auto_resolved: false,
            reason: None,
        };
        if !self
            .settle(&row.id, status, &by, reply.message.clone(), &rules, now)
            .await?
        {
            return Err(self.already_decided(id).await);
        }
        let mut resolved = Vec::new();
        if !rules.is_empty() {
            // `settle` already put the new rules in force.
            resolved = self.resolve_covered(who.actor()).await?;
        }
        let permission = self.view(self.load(id).await?).await?;
        Ok(ReplyOutcome {
            permission,
            remembered: rules.into_iter().map(|r| self.rule_view(r)).collect(),
            resolved,
        })
    }

    async fn already_decided(&self, id: &str) -> Error {
        match self.store.permission(id).await {
            Ok(Some(row)) => match self.view(row).await {
                Ok(view) => Error::AlreadyDecided(Box::new(view)),
                Err(e) => e,
            },
            Ok(None) => Error::NotFound(id.to_owned()),
            Err(e) => e.into(),
        }
    }

    /// The narrow rules a `session` or `always` reply saves.
    fn remembered_rules(
        &self,
        who: &Principal,
        row: &PermissionRow,
        reply: &ReplyRequest,
        now: Timestamp,
    ) -> Result<Vec<Rule>, Error> {
        let session_only = match reply.remember {
            Remember::Once => return Ok(Vec::new()),
            Remember::Session => true,
            Remember::Always => false,
        };
        if session_only && row.session.is_none() {
            return Err(invalid(
                "remember",
                "`session` needs a request that names its session",
            ));
        }
        let subject = subject_of(row)?;
        let mut specs = narrow_rules(&subject, session_only);
        if specs.is_empty() {
            return Err(invalid(
                "remember",
                "no rule can cover this request (a part the policy cannot know statically); answer it `once`",
            ));
        }
        if let Some(pattern) = &reply.pattern {
            if specs.len() != 1 {
                return Err(invalid(
                    "pattern",
                    "only a request with one target can take an edited pattern",
                ));
            }
            check_pattern(who, &subject, &specs, pattern)?;
            if let Some(spec) = specs.first_mut() {
                spec.pattern = pattern.clone();
            }
        }
        let expires_at = match reply.expires_in {
            None | Some(Expiry::Never) => None,
            Some(Expiry::After(d)) => Some(now.plus(d).as_millis()),
        };
        let action = match reply.decision {
            Verdict::Allow => Effect::Allow,
            Verdict::Deny => Effect::Deny,
        };
        specs
            .into_iter()
            .map(|mut spec| {
                spec.action = action;
                spec.expires_at = expires_at;
                let id = secret::new_id("rem_").map_err(|_| Error::Random)?;
                let origin = Origin::Remembered {
                    request_id: row.id.clone(),
                    approver: who.name.clone(),
                    at: now.as_millis(),
                };
                Rule::new(spec, id, origin).map_err(rule_error)
            })
            .collect()
    }

    /// Decides every pending request that the current rules now allow or deny, except those
    /// `creator` made: a credential never releases its own request, not even through a rule.
    async fn resolve_covered(&self, creator: &str) -> Result<Vec<String>, Error> {
        let now = self.clock.now();
        let policy = self.policy();
        let mut resolved = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .list_permissions(Some("pending"), cursor.take(), MAX_PAGE)
                .await?;
            let last = page.last().map(|r| (r.created_at, r.id.clone()));
            for row in page.iter().filter(|r| r.requester_actor != creator) {
                let decision = policy.decide(&subject_of(row)?, now.as_millis());
                let status = match decision.effect {
                    Effect::Ask => continue,
                    Effect::Allow => Status::Allowed,
                    Effect::Deny => Status::Denied,
                };
                let by = DecidedBy {
                    source: Source::Rule,
                    rule: decision.rule.clone(),
                    approver: None,
                    approvers: Vec::new(),
                    auto_resolved: true,
                    reason: Some(decision.reason.clone()),
                };
                if self.settle(&row.id, status, &by, None, &[], now).await? {
                    resolved.push(row.id.clone());
                }
            }
            if (page.len() as i64) < MAX_PAGE {
                return Ok(resolved);
            }
            cursor = last;
        }
    }

    /// Times out every pending request whose deadline has passed. Returns how many.
    pub async fn expire_due(&self) -> Result<usize, Error> {
        let due = self.store.due_permissions(self.clock.now()).await?;
        let mut n = 0;
        for id in due {
            if self.expire(&id).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn expire(&self, id: &str) -> Result<bool, Error> {
        let now = self.clock.now();
        let by = DecidedBy {
            source: Source::Timeout,
            rule: None,
            approver: None,
            approvers: Vec::new(),
            auto_resolved: false,
            reason: Some("nobody answered before the deadline; the outcome is deny".into()),
        };
        self.settle(id, Status::Timeout, &by, None, &[], now).await
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
        entries.extend(rules.iter().map(|r| rule_entry("rule.created", r, now)));
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
            status: status.as_str().to_owned(),
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

    /// Configured rules (read-only) then stored ones.
    pub fn rules(&self) -> Vec<RuleView> {
        self.policy()
            .rules()
            .iter()
            .cloned()
            .map(|r| self.rule_view(r))
            .collect()
    }

    fn rule_view(&self, rule: Rule) -> RuleView {
        let read_only = matches!(rule.origin, Origin::Config { .. });
        RuleView {
            expires: rule.spec.expires_at.map(Timestamp::from_millis),
            spec: rule.spec,
            origin: rule.origin,
            read_only,
        }
    }

    /// Adds a rule (admin). Pending requests it now decides are resolved at once.
    pub async fn add_rule(
        &self,
        who: &Principal,
        new: NewRule,
    ) -> Result<(RuleView, Vec<String>), Error> {
        let now = self.clock.now();
        let spec = RuleSpec {
            agent: new.agent,
            workspace: new.workspace,
            operations: new.operations,
            timeout: new.timeout,
            approvals: new.approvals,
            expires_at: match new.expires_in {
                None | Some(Expiry::Never) => None,
                Some(Expiry::After(d)) => Some(now.plus(d).as_millis()),
            },
            ..RuleSpec::new(new.action, new.kind, new.pattern)
        };
        let id = secret::new_id("rule_").map_err(|_| Error::Random)?;
        let origin = Origin::Api {
            by: who.name.clone(),
            at: now.as_millis(),
        };
        let rule = Rule::new(spec, id, origin).map_err(rule_error)?;
        let row = RuleRow {
            id: rule.id.clone(),
            spec: to_json(&rule.spec),
            origin: to_json(&rule.origin),
            created_at: now,
        };
        let rows = self
            .store
            .add_rules(&[row], vec![rule_entry("rule.created", &rule, now)])
            .await?;
        self.publish(rows);
        self.reload_policy().await?;
        let resolved = self.resolve_covered(who.actor()).await?;
        Ok((self.rule_view(rule), resolved))
    }

    /// Deletes a stored rule; configured rules are read-only.
    pub async fn delete_rule(&self, id: &str) -> Result<RuleView, Error> {
        let policy = self.policy();
        let rule = policy
            .rules()
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| Error::RuleNotFound(id.to_owned()))?;
        if matches!(rule.origin, Origin::Config { .. }) {
            return Err(Error::RuleReadOnly(id.to_owned()));
        }
        let now = self.clock.now();
        let rows = self
            .store
            .delete_rule(id, vec![rule_entry("rule.deleted", &rule, now)])
            .await?
            .ok_or_else(|| Error::RuleNotFound(id.to_owned()))?;
        self.publish(rows);
        self.reload_policy().await?;
        Ok(self.rule_view(rule))
    }

    /// Subscribes to new audit entries (the event stream).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AuditRow>> {
        self.store.subscribe_audit()
    }

    /// Audit entries after `after`.
    pub async fn audit(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, Error> {
        let rows = self.store.audit_after(after, limit.clamp(1, 1000)).await?;
        Ok(rows.into_iter().map(audit_entry).collect())
    }

    /// The sequence number of the last audit entry (0 when the log is empty).
    pub async fn audit_head_seq(&self) -> Result<i64, Error> {
        Ok(self.store.audit_head().await?.map_or(0, |(seq, _)| seq))
    }

    /// Verifies the whole hash chain and names the first bad entry.
    pub async fn verify_audit(&self) -> Result<Verification, Error> {
        let mut verifier = Verifier::default();
        let mut after = 0;
        'pages: loop {
            let rows = self.store.audit_after(after, 1000).await?;
            for r in &rows {
                let entry = audit::Entry {
                    seq: r.seq,
                    at: r.at.as_millis(),
                    event: &r.event,
                    subject: r.subject.as_deref(),
                    data: &r.data,
                    prev_hash: &r.prev_hash,
                    hash: &r.hash,
                };
                if !verifier.push(&entry) {
                    break 'pages;
                }
                after = r.seq;
            }
            if rows.len() < 1000 {
                break;
            }
        }
        let head = self.store.audit_head().await?;
        let mut verification = verifier.finish(head.clone());
        if let Some(key) = self.store.audit_key() {
            verification.keyed = true;
            let mac = self.store.audit_head_mac().await?;
            let signed = match (&head, &mac) {
                (Some((seq, hash)), Some(mac)) => {
                    bool::from(audit::head_mac(&key, *seq, hash).ct_eq(mac.as_slice()))
                }
                (None, None) => true,
                _ => false,
            };
            if !signed && verification.ok {
                verification.ok = false;
                verification.first_bad = Some(audit::BadEntry {
                    seq: head.map_or(0, |(seq, _)| seq),
                    problem: "forged".into(),
                    detail: "the chain's head is not signed with this daemon's audit key: the log \
                             was rewritten by someone who could write the database but not read \
                             the key"
                        .into(),
                });
            }
        }
        Ok(verification)
    }

    fn publish(&self, rows: Vec<AuditRow>) {
        self.store.publish(&rows);
    }

    async fn view(&self, row: PermissionRow) -> Result<PermissionView, Error> {
        let approvals = if row.approvals_required > 1 {
            self.store.approvals(&row.id).await?
        } else {
            Vec::new()
        };
        let status = Status::parse(&row.status)
            .ok_or_else(|| Error::Corrupt(format!("status `{}`", row.status)))?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == row.kind)
            .ok_or_else(|| Error::Corrupt(format!("kind `{}`", row.kind)))?;
        let subject = subject_of(&row)?;
        let suggested_rules = if status == Status::Pending {
            narrow_rules(&subject, false)
        } else {
            Vec::new()
        };
        let parts = subject.targets;
        Ok(PermissionView {
            suggested_rules,
            id: row.id,
            status,
            kind,
            summary: row.summary,
            targets: texts(&parts),
            parts,
            request: from_json(&row.body)?,
            requester: row.requester_name,
            created_at: row.created_at,
            deadline: row.deadline,
            decided_at: row.decided_at,
            decided_by: row.decided_by.as_deref().map(from_json).transpose()?,
            message: row.message,
            approvals_required: u32::try_from(row.approvals_required).unwrap_or(1),
            approvals,
            allowed: status == Status::Allowed,
        })
    }
}

/// What the policy matches for a stored request: its targets as normalised when it was asked
/// (a shell command is parsed again, so rows stored before a parser change are read as the
/// parser reads them now).
fn subject_of(row: &PermissionRow) -> Result<Subject, Error> {
    let request: NewPermission = from_json(&row.body)?;
    let kind = request
        .kind
        .ok_or_else(|| Error::Corrupt(format!("request {} has no kind", row.id)))?;
    let targets = match (kind, request.command.as_deref()) {
        (Kind::Shell, Some(command)) => agentgate_policy::shell::targets(command),
        _ => from_json(&row.targets)?,
    };
    Ok(Subject {
        kind,
        targets,
        operation: request.operation,
        agent: request.agent,
        workspace: request.workspace,
        session: request.session,
        requester: Some(row.requester_actor.clone()),
    })
}

/// A replier's edited pattern must still cover the request it answers (every target) and, unless
/// the replier holds `admin` (who may write any rule), be no wider than the suggested rule.
fn check_pattern(
    who: &Principal,
    subject: &Subject,
    suggested: &[RuleSpec],
    pattern: &str,
) -> Result<(), Error> {
    let kind = subject.kind;
    let probe = Rule::new(
        RuleSpec::new(Effect::Allow, kind, pattern),
        "probe".into(),
        Origin::Config { index: 0 },
    )
    .map_err(rule_error)?;
    let set = RuleSet::new(vec![probe]).map_err(rule_error)?;
    let only_targets = Subject {
        agent: None,
        workspace: None,
        session: None,
        requester: None,
        operation: subject.operation,
        ..subject.clone()
    };
    if set.decide(&only_targets, 0).effect != Effect::Allow {
        return Err(invalid(
            "pattern",
            "the edited pattern must match every target of the request it answers",
        ));
    }
    if !who.scopes.allows(Scope::Admin) && !agentgate_policy::no_wider(pattern, suggested) {
        return Err(Error::PatternTooWide(format!(
            "the pattern `{pattern}` is wider than the suggested rule `{}`; only `admin` may write wider rules",
            suggested.first().map_or("", |s| s.pattern.as_str())
        )));
    }
    Ok(())
}

/// The targets' texts, as the API lists them.
fn texts(targets: &[Target]) -> Vec<String> {
    targets.iter().map(|t| t.text.clone()).collect()
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
        event: "permission.decided",
        subject: Some(id.to_owned()),
        data: to_json(&json!({"status": status, "decided_by": by, "message": message})),
    }
}

fn rule_entry(event: &'static str, rule: &Rule, at: Timestamp) -> NewAudit {
    NewAudit {
        at,
        event,
        subject: Some(rule.id.clone()),
        data: to_json(&json!({"rule": rule.spec, "origin": rule.origin})),
    }
}

/// An audit row as the API shows it.
pub fn audit_entry(row: AuditRow) -> AuditEntry {
    AuditEntry {
        seq: row.seq,
        at: row.at,
        event: row.event,
        subject: row.subject,
        data: serde_json::from_str(&row.data).unwrap_or(serde_json::Value::String(row.data)),
        hash: row.hash.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn rule_from_row(row: &RuleRow) -> Result<Rule, Error> {
    let spec: RuleSpec = from_json(&row.spec)?;
    let origin: Origin = from_json(&row.origin)?;
    Rule::new(spec, row.id.clone(), origin)
        .map_err(|e| Error::Corrupt(format!("rule {}: {e}", row.id)))
}

fn rule_error(e: RuleError) -> Error {
    invalid(e.field, e.reason)
}

/// A `cursor` from a previous page as (created_at, id), or a 400 naming the field.
fn page_cursor(cursor: Option<&str>) -> Result<Option<(Timestamp, String)>, Error> {
    let parse = |c: &str| {
        let (at, id) = c.split_once('.')?;
        Some((Timestamp::from_millis(at.parse().ok()?), id.to_owned()))
    };
    cursor
        .map(|c| parse(c).ok_or_else(|| invalid("cursor", "not a cursor from a previous page")))
        .transpose()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(e.to_string()))
}
