//! Rows and store operations of the web inbox's sign-in: sessions and pairing links.

use agentgate_policy::ScopeSet;

use super::{Error, NewAudit, Store, delegate};
use crate::clock::Timestamp;

/// A stored web session. The cookie's secret is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    /// Stable id, `ses_…` (shown as the approver's credential id).
    pub id: String,
    /// SHA-256 of the cookie's secret.
    #[sqlx(try_from = "Vec<u8>")]
    pub secret_hash: [u8; 32],
    /// Who signed in: `owner (web)` or the pairing's name.
    pub name: String,
    /// Scopes, exactly as for an API token.
    #[sqlx(try_from = "String")]
    pub scopes: ScopeSet,
    /// The per-session CSRF token.
    pub csrf: String,
    /// The pairing link that created it, if any.
    pub pairing_id: Option<String>,
    /// Sign-in time.
    pub created_at: Timestamp,
    /// Last request (idle expiry counts from here).
    pub last_seen_at: Timestamp,
    /// Absolute expiry.
    pub expires_at: Timestamp,
    /// `Some`: signed out, or its pairing was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A stored pairing link. The code is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PairingRow {
    /// Stable id, `pair_…`.
    pub id: String,
    /// A name for the device (`phone`).
    pub name: String,
    /// SHA-256 of the link's code.
    #[sqlx(try_from = "Vec<u8>")]
    pub code_hash: [u8; 32],
    /// Scopes the paired session gets.
    #[sqlx(try_from = "String")]
    pub scopes: ScopeSet,
    /// Creation time.
    pub created_at: Timestamp,
    /// The link works until then.
    pub expires_at: Timestamp,
    /// Name of the credential that created it.
    pub created_by: String,
    /// When the link was used (it works once).
    pub redeemed_at: Option<Timestamp>,
    /// `Some`: revoked (and its sessions ended).
    pub revoked_at: Option<Timestamp>,
}

/// A source's passphrase failures: how many, and until when it is locked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Failures since the last success.
    pub count: i64,
    /// No guess from the source is hashed before then.
    pub locked_until: Timestamp,
}

impl Store {
    delegate! {
        /// A source's passphrase failures, if it has any.
        pub async fn passphrase_failures(&self, source: &str) -> Result<Option<Failures>, Error>;

        /// Moves a source's failures from `seen` (what the caller read; `None`: no row) to
        /// `next`, if nobody changed them meanwhile (compare-and-set, so concurrent guesses on
        /// any instance cannot both take the same budget). `false`: they changed; read again.
        pub async fn swap_passphrase_failures(&self, source: &str, seen: Option<Failures>, next: Failures) -> Result<bool, Error>;

        /// Forgets a source's failures (after a success), and any lock-out that ended a day ago.
        pub async fn clear_passphrase_failures(&self, source: &str, now: Timestamp) -> Result<(), Error>;

        /// Stores a new session.
        pub async fn insert_session(&self, row: &SessionRow, audit: Vec<NewAudit>) -> Result<(), Error>;

        /// The session whose secret hashes to `hash`, revoked or not.
        pub async fn session_by_hash(&self, hash: &[u8; 32]) -> Result<Option<SessionRow>, Error>;

        /// Records activity on a session.
        pub async fn touch_session(&self, id: &str, now: Timestamp) -> Result<(), Error>;

        /// Ends a session (sign-out). Ending an ended one is not an error.
        pub async fn revoke_session(&self, id: &str, now: Timestamp, audit: Vec<NewAudit>) -> Result<(), Error>;

        /// Stores a new pairing link.
        pub async fn insert_pairing(&self, row: &PairingRow, audit: Vec<NewAudit>) -> Result<(), Error>;

        /// Uses the pairing link whose code hashes to `hash` and creates `session` from it, in one
        /// transaction: the link must be unused, unrevoked and unexpired at `now`, and afterwards it
        /// is used. `None` when the link does not exist or cannot be used (nothing is written).
        pub async fn redeem_pairing(&self, hash: &[u8; 32], now: Timestamp, session: impl FnOnce(&PairingRow) -> SessionRow + Send + 'static, audit: impl FnOnce(&(PairingRow, SessionRow)) -> Vec<NewAudit> + Send + 'static, ) -> Result<Option<(PairingRow, SessionRow)>, Error>;

        /// Every pairing not revoked, newest first.
        pub async fn live_pairings(&self) -> Result<Vec<PairingRow>, Error>;

        /// Revokes a pairing and ends every session it created. [`Error::NotFound`] if no live
        /// pairing has that id. Returns the ids of the sessions ended.
        pub async fn revoke_pairing(&self, id: &str, now: Timestamp, audit: impl FnOnce(&Vec<String>) -> Vec<NewAudit> + Send + 'static, ) -> Result<Vec<String>, Error>;
    }
}
