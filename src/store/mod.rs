//! The durable store: one interface, one implementation per database.
//!
//! Owns persistence and nothing else: no policy, no HTTP. Domain modules (`auth`, later `broker`,
//! `audit`, `oauth`) call it; `http` never does. [`Store`] is an enum over backends (SQLite now,
//! PostgreSQL later) so handlers stay non-generic and no `dyn` is needed.

mod sqlite;

use std::path::Path;

use agentgate_policy::ScopeSet;

use crate::clock::Timestamp;

pub use sqlite::SqliteStore;

/// What can go wrong in the store. Callers branch on the variant, never on text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No row matched.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the string names the rule (such as `token name`).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The change would leave no live admin token.
    #[error("would revoke the last live admin token")]
    LastAdmin,
    /// The database URL is not one we can open.
    #[error("unsupported database URL `{0}`: use sqlite://PATH")]
    UnsupportedUrl(String),
    /// The database failed.
    #[error("database error")]
    Backend(#[source] sqlx::Error),
    /// Migrating the schema failed.
    #[error("schema migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A stored row could not be decoded (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
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
}

impl Store {
    /// Opens the database at `url` (`sqlite://PATH`) and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store, Error> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Ok(Store::Sqlite(SqliteStore::open(Path::new(path)).await?));
        }
        Err(Error::UnsupportedUrl(url.to_owned()))
    }

    /// Inserts a new token. [`Error::Conflict`] if a live token has the same name.
    pub async fn insert_token(&self, row: &TokenRow) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.insert_token(row).await,
        }
    }

    /// The token whose secret hashes to `hash`, revoked or not.
    pub async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRow>, Error> {
        match self {
            Store::Sqlite(s) => s.token_by_hash(hash).await,
        }
    }

    /// Live (not revoked) tokens, oldest first.
    pub async fn live_tokens(&self) -> Result<Vec<TokenRow>, Error> {
        match self {
            Store::Sqlite(s) => s.live_tokens().await,
        }
    }

    /// How many tokens were ever created, revoked ones included.
    pub async fn count_tokens(&self) -> Result<i64, Error> {
        match self {
            Store::Sqlite(s) => s.count_tokens().await,
        }
    }

    /// Revokes the live token `id`, atomically refusing ([`Error::LastAdmin`]) when it is the last
    /// live, unexpired token holding `admin`. [`Error::NotFound`] if no live token has that id.
    pub async fn revoke_token(&self, id: &str, now: Timestamp) -> Result<TokenRow, Error> {
        match self {
            Store::Sqlite(s) => s.revoke_token(id, now).await,
        }
    }

    /// Records that the token was used at `now`.
    pub async fn touch_token(&self, id: &str, now: Timestamp) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.touch_token(id, now).await,
        }
    }

    /// A setting's value.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        match self {
            Store::Sqlite(s) => s.setting(key).await,
        }
    }

    /// Creates or replaces a setting.
    pub async fn put_setting(&self, key: &str, value: &str, now: Timestamp) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.put_setting(key, value, now).await,
        }
    }
}
