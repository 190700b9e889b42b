//! The durable store: one interface, one implementation per database.
//!
//! Owns persistence and nothing else: no policy, no HTTP. Domain modules (`auth`, `broker`,
//! `oauth`) call it; `http` never does. [`Store`] is an enum over backends (SQLite, PostgreSQL) so
//! handlers stay non-generic and no `dyn` is needed; `delegate!` writes each method's `match`.
//! The statements are `sql/`, compiled once per backend; `sqlite/` and `postgres/` hold what
//! differs. Every change that is audited is written with its audit entries in one transaction of
//! the instance's writer, and the committed entries are broadcast to the event streams
//! (`subscribe_audit`; on PostgreSQL every instance's, in order).

mod chain;
pub mod oauth;
mod postgres;
mod sqlite;
mod types;
mod url;
pub mod web;

use agentgate_policy::ScopeSet;

use crate::api::Status;
use crate::clock::Timestamp;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use url::DatabaseUrl;

/// Writes the `Store` methods that hand a call to whichever backend is open: every backend has
/// a method of the same name and signature (the contract documented here).
macro_rules! delegate {
    ($(
        $(#[$meta:meta])*
        pub async fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
    )*) => {
        $(
            $(#[$meta])*
            pub async fn $name(&self $(, $arg: $ty)*) -> $ret {
                match self {
                    Store::Sqlite(s) => s.$name($($arg),*).await,
                    Store::Postgres(s) => s.$name($($arg),*).await,
                }
            }
        )*
    };
}
pub(crate) use delegate;

/// Which rule a conflicting write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// A live token already has that name.
    #[error("a live token already has that name")]
    TokenName,
    /// A token with that secret exists (a CSPRNG failure, in practice).
    #[error("a token with that secret already exists")]
    TokenSecret,
    /// The client registration cap is reached.
    #[error("the client registration cap is reached")]
    ClientCap,
    /// This approver already approved the request.
    #[error("this approver already approved")]
    Approval,
    /// Keyed audit mode is already on with another key.
    #[error("the audit key differs from the one in use")]
    AuditKey,
    /// A rule with that id exists.
    #[error("a rule with that id already exists")]
    RuleId,
}

/// What can go wrong in the store. Callers branch on the variant, never on text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No row matched.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule or a cap was violated.
    #[error("{0}")]
    Conflict(Conflict),
    /// The change would leave no live admin token.
    #[error("would revoke the last live admin token")]
    LastAdmin,
    /// The database cannot be reached (down, restarting, every connection busy): nothing was
    /// written, and trying again later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database refused the connection's credentials or names no such database.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// The database's schema is newer than this binary.
    #[error(
        "the database's schema is at version {found}, newer than this agentgate knows ({known}); \
         run the newer agentgate, or restore a backup"
    )]
    SchemaTooNew {
        /// The newest migration recorded in the database.
        found: i64,
        /// The newest migration this binary has.
        known: i64,
    },
    /// The database failed.
    #[error("database error")]
    Backend(#[source] sqlx::Error),
    /// Migrating the schema failed.
    #[error("schema migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The group transaction holding this write failed to commit: nothing was written.
    #[error("the write could not be committed: {0}")]
    Commit(String),
    /// The writer task is gone (the daemon is stopping): nothing was written.
    #[error("the store's writer has stopped")]
    WriterStopped,
    /// A stored row could not be decoded (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl Error {
    /// Classifies a driver error: a lost connection, a terminated backend or an exhausted pool is
    /// [`Error::Unavailable`] (by SQLSTATE class, never by message text); the rest stays a
    /// database error.
    pub(crate) fn db(e: sqlx::Error) -> Error {
        let unavailable = match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => true,
            // 08: connection exception; 57P: operator intervention (shutdown, terminated
            // backend); 53: insufficient resources (too many connections); 55P03: a lock not
            // had within lock_timeout; 57014: a statement cancelled by statement_timeout.
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c.starts_with("08")
                    || c.starts_with("57P")
                    || c.starts_with("53")
                    || c == "55P03"
                    || c == "57014"
            }),
            _ => false,
        };
        if unavailable {
            Error::Unavailable(e.to_string())
        } else {
            Error::Backend(e)
        }
    }

    /// The same failure again, for each write of a batch that failed together.
    pub(crate) fn again(&self) -> Error {
        match self {
            Error::Unavailable(why) => Error::Unavailable(why.clone()),
            Error::Commit(why) => Error::Commit(why.clone()),
            Error::WriterStopped => Error::WriterStopped,
            other => Error::Commit(other.to_string()),
        }
    }

    /// Whether trying again later may work (HTTP 503 with `Retry-After`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::WriterStopped)
    }
}

/// What ties an OAuth access token to its client and the one resource it may be used on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthBinding {
    /// The client it was issued to.
    pub client_id: String,
    /// The resource (RFC 8707 audience), such as `http://127.0.0.1:7700/mcp`.
    pub audience: String,
    /// The grant family (one consent and its refreshes).
    pub family_id: String,
}

/// A stored API token: everything but the secret, which is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Stable id, `tok_…`.
    pub id: String,
    /// Unique among live tokens.
    pub name: String,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// Creation time.
    pub created_at: Timestamp,
    /// `None`: never expires.
    pub expires_at: Option<Timestamp>,
    /// Last authentication, recorded at most once a second.
    pub last_used_at: Option<Timestamp>,
    /// `Some`: revoked at that time.
    pub revoked_at: Option<Timestamp>,
    /// The token that created this one; `None` for the bootstrap owner token.
    pub created_by: Option<String>,
    /// For an OAuth access token: its client, audience and grant family.
    pub oauth: Option<OAuthBinding>,
    /// The person the token acts for; `None`: the owner.
    pub person: Option<String>,
}

/// A stored permission request. JSON columns stay text here; `broker` owns their shape.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PermissionRow {
    /// `req_…`.
    pub id: String,
    /// The request kind's wire name.
    pub kind: String,
    /// One line for people.
    pub summary: String,
    /// The normalised request (JSON).
    pub body: String,
    /// The targets the policy matched (JSON array of strings).
    pub targets: String,
    /// The asking agent.
    pub agent: Option<String>,
    /// Its session.
    pub session: Option<String>,
    /// Its workspace.
    pub workspace: Option<String>,
    /// The token that asked.
    pub requester_id: String,
    /// Who asked as an actor (see `Principal::actor`): its OAuth client, else `requester_id`.
    pub requester_actor: String,
    /// Its name.
    pub requester_name: String,
    /// pending, allowed, denied or timeout.
    pub status: Status,
    /// When it was asked.
    pub created_at: Timestamp,
    /// When a pending request times out; `None`: never.
    pub deadline: Option<Timestamp>,
    /// Distinct approvals needed to allow.
    pub approvals_required: i64,
    /// When it was decided.
    pub decided_at: Option<Timestamp>,
    /// Provenance of the decision (JSON).
    pub decided_by: Option<String>,
    /// A person's message (feedback to the agent on deny).
    pub message: Option<String>,
}

/// A decision to record on a pending request.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The request.
    pub id: String,
    /// allowed, denied or timeout.
    pub status: Status,
    /// When.
    pub at: Timestamp,
    /// Provenance (JSON).
    pub by: String,
    /// A message for the agent.
    pub message: Option<String>,
}

/// A stored rule (remembered or added through the API).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RuleRow {
    /// Rule id.
    pub id: String,
    /// The rule (JSON `RuleSpec`).
    pub spec: String,
    /// Where it came from (JSON `Origin`).
    pub origin: String,
    /// When it was stored.
    pub created_at: Timestamp,
}

/// An audit entry to append.
#[derive(Debug, Clone)]
pub struct NewAudit {
    /// When.
    pub at: Timestamp,
    /// Event name, such as `permission.created`.
    pub event: &'static str,
    /// The request or rule it is about.
    pub subject: Option<String>,
    /// Details (JSON text, hashed as stored).
    pub data: String,
}

impl NewAudit {
    /// An entry about `subject` with `data` as its details (never a secret).
    pub fn of(
        at: Timestamp,
        event: &'static str,
        subject: Option<&str>,
        data: serde_json::Value,
    ) -> NewAudit {
        NewAudit {
            at,
            event,
            subject: subject.map(str::to_owned),
            data: data.to_string(),
        }
    }
}

/// What one credential may have waiting for a person.
#[derive(Debug, Clone, Copy)]
pub struct PendingBudget {
    /// Most pending requests.
    pub max_count: i64,
    /// Most bytes of `old_content` over its pending requests, this one included.
    pub max_old_content: i64,
    /// This request's `old_content` bytes.
    pub adding: i64,
}

/// What inserting a request did.
#[derive(Debug)]
pub enum Inserted {
    /// Stored, with its audit entries.
    Stored(Vec<AuditRow>),
    /// Not stored: the requester already has `pending` requests carrying `old_content` bytes.
    OverBudget {
        /// Its pending requests.
        pending: i64,
        /// Their `old_content` bytes.
        old_content: i64,
    },
}

/// An appended audit entry; `seq` doubles as the SSE event id.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When.
    pub at: Timestamp,
    /// Event name.
    pub event: String,
    /// Request or rule id.
    pub subject: Option<String>,
    /// Details (JSON text).
    pub data: String,
    /// The previous entry's hash.
    pub prev_hash: Vec<u8>,
    /// This entry's hash.
    pub hash: Vec<u8>,
}

/// Keys of the settings table.
pub mod setting {
    /// The owner passphrase as an Argon2id PHC string.
    pub const PASSPHRASE: &str = "owner_passphrase";
}

/// The store, whichever database is behind it. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Store {
    /// An SQLite file (the default).
    Sqlite(SqliteStore),
    /// A PostgreSQL database, possibly shared by several instances.
    Postgres(PgStore),
}

impl Store {
    /// Opens the database and brings its schema up to date.
    pub async fn open(url: &DatabaseUrl) -> Result<Store, Error> {
        Ok(match url {
            DatabaseUrl::Sqlite(path) => Store::Sqlite(SqliteStore::open(path).await?),
            DatabaseUrl::Postgres(options, _) => Store::Postgres(PgStore::open(options).await?),
        })
    }

    /// Whether other instances may write to the same database (PostgreSQL): then this instance
    /// learns of their changes from the event stream, not only from its own writes.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    delegate! {
        /// Inserts a new token. [`Conflict::TokenName`] if a live token has the same name.
        pub async fn insert_token(&self, row: &TokenRow, audit: Vec<NewAudit>) -> Result<(), Error>;

        /// The token whose secret hashes to `hash`, revoked or not.
        pub async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRow>, Error>;

        /// Live (not revoked) tokens, oldest first.
        pub async fn live_tokens(&self) -> Result<Vec<TokenRow>, Error>;

        /// How many tokens were ever created, revoked ones included.
        pub async fn count_tokens(&self) -> Result<i64, Error>;

        /// Revokes the live token `id`, atomically refusing ([`Error::LastAdmin`]) when it is the last
        /// live, unexpired token holding `admin`. [`Error::NotFound`] if no live token has that id.
        pub async fn revoke_token(&self, id: &str, now: Timestamp, audit: impl FnOnce(&TokenRow) -> Vec<NewAudit> + Send + 'static, ) -> Result<TokenRow, Error>;

        /// Records that the token was used at `now`.
        pub async fn touch_token(&self, id: &str, now: Timestamp) -> Result<(), Error>;

        /// A setting's value.
        pub async fn setting(&self, key: &str) -> Result<Option<String>, Error>;

        /// Creates or replaces a setting.
        pub async fn put_setting(&self, key: &str, value: &str, now: Timestamp, audit: Vec<NewAudit>) -> Result<(), Error>;
    }
}

/// Permission requests, rules and the audit log. Every write appends its audit entries in the same
/// transaction: if the audit cannot be written, nothing is.
impl Store {
    /// Every audit entry once committed, from any writer (broker, tokens, sessions, OAuth) and,
    /// on a shared database, any instance, in `seq` order.
    pub fn subscribe_audit(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<AuditRow>> {
        match self {
            Store::Sqlite(s) => s.subscribe(),
            Store::Postgres(s) => s.subscribe(),
        }
    }

    /// The audit entries this instance wrote, once committed: for what must happen once per
    /// entry however many instances share the database (notifications).
    pub fn subscribe_own(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<AuditRow>> {
        match self {
            Store::Sqlite(s) => s.subscribe_own(),
            Store::Postgres(s) => s.subscribe_own(),
        }
    }

    /// Tells the event streams about committed entries (on PostgreSQL, the follower does that for
    /// every instance's entries; this tells only what follows this instance's own writes). The
    /// broker calls it for its own writes, once the rules they saved are in force; every other
    /// audited write publishes by itself.
    pub fn publish(&self, rows: &[AuditRow]) {
        match self {
            Store::Sqlite(s) => s.publish(rows),
            Store::Postgres(s) => s.publish(rows),
        }
    }

    /// Keyed mode's key, if on.
    pub fn audit_key(&self) -> Option<[u8; 32]> {
        match self {
            Store::Sqlite(s) => s.audit_key(),
            Store::Postgres(s) => s.audit_key(),
        }
    }

    delegate! {
        /// Stores a new request. With a `budget`, the requester's pending requests are counted in
        /// the same transaction (so concurrent requests cannot overshoot it) and an over-budget
        /// request is not stored.
        pub async fn insert_permission(&self, row: &PermissionRow, audit: Vec<NewAudit>, budget: Option<PendingBudget>) -> Result<Inserted, Error>;

        /// One request.
        pub async fn permission(&self, id: &str) -> Result<Option<PermissionRow>, Error>;

        /// Requests in creation order, optionally of one status, after a cursor.
        pub async fn list_permissions(&self, status: Option<Status>, after: Option<(Timestamp, String)>, limit: i64) -> Result<Vec<PermissionRow>, Error>;

        /// Decided requests, newest first, before `before` (created_at, id).
        pub async fn decided_permissions(&self, before: Option<(Timestamp, String)>, limit: i64) -> Result<Vec<PermissionRow>, Error>;

        /// Ids of pending requests whose deadline has passed.
        pub async fn due_permissions(&self, now: Timestamp) -> Result<Vec<String>, Error>;

        /// The earliest deadline among pending requests.
        pub async fn next_deadline(&self) -> Result<Option<Timestamp>, Error>;

        /// Records a decision if, and only if, the request is still pending (first writer wins),
        /// with any rules it remembers. `None`: it was no longer pending.
        pub async fn decide_permission(&self, decided: &Decided, new_rules: &[RuleRow], audit: Vec<NewAudit>) -> Result<Option<Vec<AuditRow>>, Error>;

        /// Records one approver's approval of a pending request; returns every approver so far.
        /// `None`: no longer pending; [`Conflict::Approval`]: this approver already approved.
        pub async fn add_approval(&self, permission_id: &str, token_id: &str, token_name: &str, at: Timestamp, audit: Vec<NewAudit>) -> Result<Option<(Vec<String>, Vec<AuditRow>)>, Error>;

        /// The names of a request's approvers.
        pub async fn approvals(&self, permission_id: &str) -> Result<Vec<String>, Error>;

        /// Stored rules, oldest first.
        pub async fn rules(&self) -> Result<Vec<RuleRow>, Error>;

        /// Stores rules.
        pub async fn add_rules(&self, rules: &[RuleRow], audit: Vec<NewAudit>) -> Result<Vec<AuditRow>, Error>;

        /// Deletes a stored rule; `None` if there was none with that id.
        pub async fn delete_rule(&self, id: &str, audit: Vec<NewAudit>) -> Result<Option<Vec<AuditRow>>, Error>;

        /// Appends audit entries on their own.
        pub async fn append_audit(&self, audit: Vec<NewAudit>) -> Result<Vec<AuditRow>, Error>;

        /// Audit entries after `after`, in order.
        pub async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, Error>;

        /// Turns keyed audit mode on with `key` (see [`crate::audit::head_mac`]).
        pub async fn use_audit_key(&self, key: [u8; 32]) -> Result<(), Error>;

        /// The recorded head's HMAC (keyed mode).
        pub async fn audit_head_mac(&self) -> Result<Option<Vec<u8>>, Error>;

        /// The recorded head of the audit chain (last seq and hash).
        pub async fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>, Error>;
    }
}

/// A failed migration as the store's error. A database holding a migration this binary does not
/// have was migrated by a newer agentgate: refuse to run against it.
fn migration_failed(e: sqlx::migrate::MigrateError, migrator: &sqlx::migrate::Migrator) -> Error {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::VersionMissing(found) => Error::SchemaTooNew {
            found,
            known: migrator.iter().map(|m| m.version).max().unwrap_or(0),
        },
        MigrateError::Execute(e) => match Error::db(e) {
            Error::Backend(e) => Error::Migrate(MigrateError::Execute(e)),
            unavailable => unavailable,
        },
        e => Error::Migrate(e),
    }
}
