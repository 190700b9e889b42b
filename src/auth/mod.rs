//! Credentials: API tokens, the owner passphrase (`passphrase`), web sessions and pairing links
//! (`session`).
//!
//! Owns minting, verifying and revoking tokens, and the [`Principal`] a verified credential becomes.
//! Scopes come only from the stored token, never from anything else the request carries. It does
//! not know HTTP: `http` extracts the bearer text and maps [`Error`] to a status.

pub mod passphrase;
pub mod secret;
pub mod session;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use agentgate_policy::{Scope, ScopeSet};

use crate::api::events;
use crate::api::{CreateToken, Expiry};
use crate::clock::{Clock, Timestamp};
use serde_json::json;

use crate::store::{self, NewAudit, OAuthBinding, Store, TokenRow};
pub use secret::{Secret, TokenHash};

/// Name of the owner token's file in the data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Name of the owner token created on first start.
pub const OWNER_TOKEN_NAME: &str = "owner";
/// Revocations buffered for slow stream tasks; one that falls further behind ends its stream
/// (the client reconnects and authenticates again).
pub const REVOCATIONS_BUFFERED: usize = 256;
/// `last_used_at` is written at most this often per token, off the hot path's common case.
const TOUCH_INTERVAL: Duration = Duration::from_secs(1);

/// Who a verified credential is. Built only from the stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's id.
    pub token_id: String,
    /// The token's name (logged; the secret never is).
    pub name: String,
    /// The scopes the token was granted.
    pub scopes: ScopeSet,
    /// When it stops working.
    pub expires_at: Option<Timestamp>,
    /// What kind of credential it is.
    pub kind: CredentialKind,
    /// For an OAuth access token: its client, audience and grant family.
    pub oauth: Option<OAuthBinding>,
    /// The person this credential acts for, when a token was named for one; `None`: the owner
    /// (web sessions, paired devices, OAuth clients and unnamed tokens).
    pub person: Option<String>,
}

impl Principal {
    /// Who approves, for N-of-M: a person, not a credential. Everything not named for another
    /// person is the owner, so one person's token, phone and browser count once.
    pub fn approver(&self) -> String {
        match &self.person {
            Some(p) => format!("person:{p}"),
            None => "person:owner".to_owned(),
        }
    }

    /// Who acts, for "its own requests" and self-approval: the OAuth client for its access
    /// tokens (which change on every refresh), the credential otherwise.
    pub fn actor(&self) -> &str {
        self.oauth.as_ref().map_or(&self.token_id, |b| &b.client_id)
    }
}

/// The kinds of credential that become a [`Principal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// An API token (`agt_…`); `token_id` is a `tok_…` id.
    Token,
    /// A web session (cookie); `token_id` is a `ses_…` id.
    Session,
}

/// Why a presented credential was not accepted. Every variant is a 401; the distinction is for
/// the message and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer <token>`, or the token is not of our format.
    Malformed,
    /// Well-formed but not a token we issued.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

/// Errors of the credential layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The credential was not accepted.
    #[error("unauthenticated")]
    Unauthenticated(Rejection),
    /// The creator lacks a scope it tried to grant.
    #[error("cannot grant scope `{0}`: the creating token does not hold it")]
    Escalation(Scope),
    /// A token name that breaks the naming rule.
    #[error("{0}")]
    InvalidName(String),
    /// A token with no scope.
    #[error("a token needs at least one scope")]
    NoScopes,
    /// Another live token has this name.
    #[error("a live token named `{0}` already exists")]
    NameTaken(String),
    /// No live token has this id.
    #[error("no live token has id `{0}`")]
    TokenNotFound(String),
    /// No live pairing has this id.
    #[error("no live pairing has id `{0}`")]
    PairingNotFound(String),
    /// Revoking this token would leave no live admin token.
    #[error("`{0}` is the last live admin token; create another admin token before revoking it")]
    LastAdmin(String),
    /// The OS CSPRNG failed; we never fall back to a weaker source.
    #[error("the system random number generator failed")]
    Random(getrandom::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

struct Cached {
    principal: Arc<Principal>,
    secret_hash: [u8; 32],
    last_touch: AtomicI64,
    loaded: std::time::Instant,
}

/// How long a verified token is trusted from the cache when other instances share the database
/// and may revoke it: revocations are also pushed (see [`Authenticator::heard`]); this bounds
/// the staleness if a push is lost.
const SHARED_CACHE_MAX_AGE: Duration = Duration::from_secs(1);

/// Verifies bearer tokens and manages them. Verified tokens are cached by hash so a request costs
/// one SHA-256 and a map lookup; revoking through this daemon evicts at once.
pub struct Authenticator {
    store: Store,
    clock: Clock,
    cache: RwLock<secret::ByHash<Arc<Cached>>>,
    revoked: tokio::sync::broadcast::Sender<String>,
    /// `Some` when other instances share the store: cached tokens are re-read after this long.
    max_age: Option<Duration>,
}

impl Authenticator {
    /// An authenticator over `store`.
    pub fn new(store: Store, clock: Clock) -> Authenticator {
        Authenticator {
            max_age: store.is_shared().then_some(SHARED_CACHE_MAX_AGE),
            store,
            clock,
            cache: RwLock::new(secret::ByHash::default()),
            revoked: tokio::sync::broadcast::channel(REVOCATIONS_BUFFERED).0,
        }
    }

    /// Verifies a presented bearer secret and returns who it is.
    pub async fn authenticate(&self, presented: &str) -> Result<Arc<Principal>, Error> {
        if !secret::well_formed(presented) {
            return Err(Error::Unauthenticated(Rejection::Malformed));
        }
        let hash = TokenHash::of(presented);
        let now = self.clock.now();
        let cached = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(&hash).cloned())
            .filter(|e| self.max_age.is_none_or(|max| e.loaded.elapsed() < max));
        let entry = match cached {
            Some(entry) => entry,
            // Boxed: the store's future is not carried by every request's.
            None => Box::pin(self.load(hash, now)).await?,
        };
        if !hash.ct_eq(&entry.secret_hash) {
            return Err(Error::Unauthenticated(Rejection::Unknown));
        }
        if entry.principal.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::Unauthenticated(Rejection::Expired));
        }
        self.touch(&entry, now);
        Ok(entry.principal.clone())
    }

    async fn load(&self, hash: TokenHash, now: Timestamp) -> Result<Arc<Cached>, Error> {
        let row = self
            .store
            .token_by_hash(&hash.0)
            .await?
            .ok_or(Error::Unauthenticated(Rejection::Unknown))?;
        if row.revoked_at.is_some() {
            return Err(Error::Unauthenticated(Rejection::Revoked));
        }
        if row.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::Unauthenticated(Rejection::Expired));
        }
        let entry = Arc::new(Cached {
            principal: Arc::new(principal_of(&row)),
            secret_hash: row.secret_hash,
            last_touch: AtomicI64::new(row.last_used_at.map_or(i64::MIN, Timestamp::as_millis)),
            loaded: std::time::Instant::now(),
        });
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(hash, entry.clone());
        }
        Ok(entry)
    }

    fn touch(&self, entry: &Cached, now: Timestamp) {
        let last = entry.last_touch.load(Ordering::Relaxed);
        if now.since(Timestamp::from_millis(last)) < TOUCH_INTERVAL {
            return;
        }
        let won = entry
            .last_touch
            .compare_exchange(last, now.as_millis(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if !won {
            return;
        }
        // Off the request path: recording use must never add latency to (or fail) a request.
        let store = self.store.clone();
        let (id, name) = (
            entry.principal.token_id.clone(),
            entry.principal.name.clone(),
        );
        tokio::spawn(async move {
            if let Err(err) = store.touch_token(&id, now).await {
                tracing::warn!(error = %err, token = %name, "could not record token use");
            }
        });
    }

    /// Drops a token from the cache after it was revoked in the store, and tells open streams
    /// authenticated by it to end.
    pub fn forget(&self, token_id: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.retain(|_, entry| entry.principal.token_id != token_id);
        }
        let _ = self.revoked.send(token_id.to_owned());
    }

    /// Brings the cache up to date with an audit entry another instance may have written: a
    /// revoked token is forgotten (and its streams end) here too.
    pub async fn heard(&self, row: &store::AuditRow) {
        match row.event.as_str() {
            events::TOKEN_REVOKED => {
                if let Some(id) = &row.subject {
                    self.forget(id);
                }
            }
            // These revoke tokens without naming them: look each cached one up again.
            events::OAUTH_FAMILY_REVOKED | events::OAUTH_CLIENT_DELETED => self.revalidate().await,
            _ => {}
        }
    }

    /// Looks every cached token up again and forgets those revoked since they were cached.
    pub async fn revalidate(&self) {
        let cached: Vec<(TokenHash, String)> = match self.cache.read() {
            Ok(cache) => cache
                .iter()
                .map(|(h, e)| (*h, e.principal.token_id.clone()))
                .collect(),
            Err(_) => return,
        };
        for (hash, id) in cached {
            match self.store.token_by_hash(&hash.0).await {
                Ok(Some(row)) if row.revoked_at.is_none() => {}
                Ok(_) => self.forget(&id),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look a cached token up again; forgetting it");
                    self.forget(&id);
                }
            }
        }
    }

    /// The ids of tokens as they are revoked, for long-lived responses (event streams) that must
    /// end with their credential.
    pub fn revocations(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.revoked.subscribe()
    }

    /// Creates a token for `creator`. Only `admin` creates tokens, and never with a scope it does
    /// not itself hold. Returns the secret (to be shown once) and the stored row.
    pub async fn create_token(
        &self,
        creator: &Principal,
        request: CreateToken,
    ) -> Result<(Secret, TokenRow), Error> {
        validate_name(&request.name)?;
        let scopes: ScopeSet = request.scopes.iter().copied().collect();
        if scopes.is_empty() {
            return Err(Error::NoScopes);
        }
        if !creator.scopes.allows(Scope::Admin) {
            return Err(Error::Escalation(Scope::Admin));
        }
        if let Some(missing) = scopes.iter().find(|s| !creator.scopes.allows(*s)) {
            return Err(Error::Escalation(missing));
        }
        let now = self.clock.now();
        let expires_at = match request.expires_in.unwrap_or(Expiry::DEFAULT) {
            Expiry::Never => None,
            Expiry::After(d) => Some(now.plus(d)),
        };
        if let Some(person) = &request.person {
            validate_name(person).map_err(|_| {
                Error::InvalidName(
                    "a person is named with 1 to 64 letters, digits, `.`, `_` or `-`".into(),
                )
            })?;
        }
        let (secret, row) = mint_row(request.name, scopes, now)?;
        let row = TokenRow {
            expires_at,
            person: request.person.filter(|p| p != "owner"),
            // The creating token, for the record; a web session is not a token, so a token it
            // creates has no creating token (the audit names the session).
            created_by: (creator.kind == CredentialKind::Token).then(|| creator.token_id.clone()),
            ..row
        };
        let audit = vec![token_created(&row, &creator.name)];
        match self.store.insert_token(&row, audit).await {
            Ok(()) => Ok((secret, row)),
            Err(store::Error::Conflict(store::Conflict::TokenName)) => {
                Err(Error::NameTaken(row.name))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Live tokens, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, Error> {
        Ok(self.store.live_tokens().await?)
    }

    /// Revokes a live token; the next request that presents it gets 401. `by` names who did it,
    /// for the audit log.
    pub async fn revoke_token(&self, id: &str, by: &str) -> Result<TokenRow, Error> {
        let now = self.clock.now();
        let by = by.to_owned();
        let audit = move |row: &TokenRow| {
            vec![NewAudit::of(
                now,
                events::TOKEN_REVOKED,
                Some(&row.id),
                json!({"name": row.name, "scopes": row.scopes.to_string(), "by": by}),
            )]
        };
        let row = match self.store.revoke_token(id, now, audit).await {
            Ok(row) => row,
            Err(store::Error::NotFound) => return Err(Error::TokenNotFound(id.to_owned())),
            Err(store::Error::LastAdmin) => return Err(Error::LastAdmin(id.to_owned())),
            Err(e) => return Err(e.into()),
        };
        self.forget(&row.id);
        Ok(row)
    }

    /// The live service token called `name` holding exactly `scopes`, created (with a secret
    /// nobody ever sees) if there is none. Requests made through credential-less compatibility
    /// listeners are attributed to it.
    pub async fn service_principal(
        &self,
        name: &str,
        scopes: ScopeSet,
    ) -> Result<Arc<Principal>, Error> {
        if let Some(row) = self
            .store
            .live_tokens()
            .await?
            .into_iter()
            .find(|t| t.name == name && t.scopes == scopes)
        {
            return Ok(Arc::new(principal_of(&row)));
        }
        // The secret is dropped unseen: nobody ever presents this token.
        let (_, row) = mint_row(name.to_owned(), scopes, self.clock.now())?;
        let audit = vec![token_created(&row, "agentgate")];
        match self.store.insert_token(&row, audit).await {
            Ok(()) => Ok(Arc::new(principal_of(&row))),
            Err(store::Error::Conflict(store::Conflict::TokenName)) => {
                Err(Error::NameTaken(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// On first start (no token ever created), creates the owner token with scope `admin` and no
    /// expiry and writes it to `<data_dir>/admin.token` (mode 0600). Returns the file's path and
    /// whether it was created now.
    pub async fn bootstrap_owner(
        &self,
        data_dir: &Path,
    ) -> Result<(PathBuf, bool), BootstrapError> {
        let path = data_dir.join(ADMIN_TOKEN_FILE);
        if self.store.count_tokens().await? > 0 {
            return Ok((path, false));
        }
        let (secret, row) = mint_row(
            OWNER_TOKEN_NAME.to_owned(),
            [Scope::Admin].into_iter().collect(),
            self.clock.now(),
        )?;
        // The file first: a token nobody can read is worse than none, and on the next start
        // an empty store tries again.
        write_private(&path, secret.expose()).map_err(|e| BootstrapError::File(path.clone(), e))?;
        let audit = vec![token_created(&row, "first start")];
        if let Err(e) = self.store.insert_token(&row, audit).await {
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
        Ok((path, true))
    }
}

/// Why the owner token could not be set up on first start.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The token file could not be written.
    #[error("cannot write the admin token file {0}")]
    File(PathBuf, #[source] std::io::Error),
    /// Minting or storing failed.
    #[error(transparent)]
    Auth(#[from] Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Writes `contents` to `path` with mode 0600, atomically (a temporary file, then a rename).
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The audit entry for a new token: who made it and what it may do, never its secret.
fn token_created(row: &TokenRow, by: &str) -> NewAudit {
    NewAudit::of(
        row.created_at,
        events::TOKEN_CREATED,
        Some(&row.id),
        json!({
            "name": row.name, "scopes": row.scopes.to_string(), "expires_at": row.expires_at,
            "person": row.person, "by": by,
        }),
    )
}

/// A new secret and the row that stores its hash: a fresh `tok_` id, created `now`, no expiry,
/// no creator, not an OAuth token (callers set what differs).
pub fn mint_row(
    name: String,
    scopes: ScopeSet,
    now: Timestamp,
) -> Result<(Secret, TokenRow), Error> {
    let secret = Secret::mint().map_err(Error::Random)?;
    let row = TokenRow {
        id: secret::new_id("tok_").map_err(Error::Random)?,
        name,
        secret_hash: secret.hash().0,
        scopes,
        created_at: now,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        created_by: None,
        oauth: None,
        person: None,
    };
    Ok((secret, row))
}

fn principal_of(row: &TokenRow) -> Principal {
    Principal {
        token_id: row.id.clone(),
        name: row.name.clone(),
        scopes: row.scopes,
        expires_at: row.expires_at,
        kind: CredentialKind::Token,
        oauth: row.oauth.clone(),
        person: row.person.clone(),
    }
}

/// Token names: 1–64 characters of letters, digits, `.`, `_`, `-`, not starting with `tok_`
/// (so that `token revoke ID|NAME` is never ambiguous).
pub fn validate_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::InvalidName("a token name cannot be empty".into()));
    }
    if name.len() > 64 {
        return Err(Error::InvalidName(
            "a token name has at most 64 characters".into(),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(Error::InvalidName(format!(
            "invalid token name `{name}`: use letters, digits, `.`, `_` and `-`"
        )));
    }
    if name.starts_with("tok_") {
        return Err(Error::InvalidName(
            "a token name cannot start with `tok_`, which is how token ids start".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
