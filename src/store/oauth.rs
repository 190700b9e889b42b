//! Rows and store operations of the OAuth authorization server: registered clients, remembered
//! consent, authorization codes, grant families and refresh tokens. Access tokens are rows of
//! `tokens` (see [`super::TokenRow::oauth`]).

use agentgate_policy::ScopeSet;

use super::{Error, NewAudit, Store, TokenRow, delegate};
use crate::clock::Timestamp;

/// A client registered by RFC 7591 dynamic registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// `cli_…`.
    pub id: String,
    /// SHA-256 of the client secret; `None` for public clients.
    pub secret_hash: Option<[u8; 32]>,
    /// Self-asserted name.
    pub name: Option<String>,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub auth_method: String,
    /// `native` or `web`.
    pub application_type: String,
    /// Grant types, as registered.
    pub grant_types: Vec<String>,
    /// Scope, as registered (informative).
    pub scope: Option<String>,
    /// The registration response (JSON, without the secret).
    pub metadata: String,
    /// Registration time.
    pub created_at: Timestamp,
    /// `Some`: deleted by the owner.
    pub deleted_at: Option<Timestamp>,
}

/// Remembered consent: these scopes for this client without the consent page.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GrantRow {
    /// `grt_…`.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// What the owner allowed.
    #[sqlx(try_from = "String")]
    pub scopes: ScopeSet,
    /// When.
    pub created_at: Timestamp,
    /// `Some`: revoked.
    pub revoked_at: Option<Timestamp>,
}

/// An authorization code. Only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CodeRow {
    /// SHA-256 of the code.
    #[sqlx(try_from = "Vec<u8>")]
    pub code_hash: [u8; 32],
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The resource (audience) its tokens are for.
    pub resource: String,
    /// Granted scopes.
    #[sqlx(try_from = "String")]
    pub scopes: ScopeSet,
    /// The family its exchange creates.
    pub family_id: String,
    /// Issued at.
    pub created_at: Timestamp,
    /// Unusable from then.
    pub expires_at: Timestamp,
}

/// One authorization and all the tokens refreshed from it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FamilyRow {
    /// `fam_…`.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The audience of every access token in it.
    pub resource: String,
    /// Granted scopes.
    #[sqlx(try_from = "String")]
    pub scopes: ScopeSet,
    /// The code exchange.
    pub created_at: Timestamp,
    /// `Some`: revoked (every token of the family is refused).
    pub revoked_at: Option<Timestamp>,
}

/// A refresh token to store. Only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRow {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Its family.
    pub family_id: String,
    /// Issued at.
    pub created_at: Timestamp,
    /// Unusable from then.
    pub expires_at: Timestamp,
}

/// What presenting an authorization code found.
#[derive(Debug)]
pub enum CodeUse {
    /// Unused until now; it is now used.
    Fresh(CodeRow),
    /// Used before: the family it created has been revoked; carries the revoked token ids.
    Reused(Vec<String>),
    /// No such code.
    Unknown,
}

/// What presenting a refresh token found.
#[derive(Debug)]
pub enum RefreshUse {
    /// Unused until now (or used within the grace period of a concurrent refresh).
    Valid(FamilyRow),
    /// Used before, outside the grace period: the family has been revoked; carries the revoked
    /// token ids.
    Reused(Vec<String>),
    /// Past its expiry, its family revoked, or no such token.
    Invalid,
}

/// The registration caps (see [`Store::insert_client`]).
/// A consent form shown and not yet answered: what the authorization asked, as JSON the
/// `oauth` module reads back, and the hash of the form's current single-use CSRF token. A row,
/// so the form may be answered through any instance.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConsentFormRow {
    /// `authz_…`, the form's `authz` field.
    pub id: String,
    /// SHA-256 of the form's current CSRF token.
    pub csrf_hash: Vec<u8>,
    /// The pending authorization (JSON).
    pub request: String,
    /// After this the form is refused.
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, Copy)]
pub struct ClientCap {
    /// Most live clients.
    pub max: u32,
    /// Most live clients never authorized.
    pub unauthorized: u32,
    /// Clients never authorized and registered before this are deleted.
    pub stale_before: Timestamp,
    /// Now (their deletion time).
    pub now: Timestamp,
}

impl Store {
    delegate! {
        /// Registers a client, refusing ([`super::Conflict::ClientCap`]) when `cap.max` live
        /// clients exist or `cap.unauthorized` of them were never authorized. First, clients never
        /// authorized (no code issued, no consent remembered) and registered before `cap.stale_before`
        /// are deleted: anyone, a web page too, can register.
        pub async fn insert_client(&self, row: &ClientRow, cap: ClientCap, audit: Vec<NewAudit>) -> Result<(), Error>;

        /// A live client.
        pub async fn client(&self, id: &str) -> Result<Option<ClientRow>, Error>;

        /// Every live client, oldest first.
        pub async fn live_clients(&self) -> Result<Vec<ClientRow>, Error>;

        /// Deletes a live client with its grants, families and tokens. Returns the revoked token
        /// ids. [`Error::NotFound`] if no live client has that id.
        pub async fn delete_client(&self, id: &str, now: Timestamp, audit: Vec<NewAudit>) -> Result<Vec<String>, Error>;

        /// Remembers consent.
        pub async fn insert_grant(&self, row: &GrantRow, audit: Vec<NewAudit>) -> Result<(), Error>;

        /// Live remembered consents, of one client or of all.
        pub async fn live_grants(&self, client_id: Option<&str>) -> Result<Vec<GrantRow>, Error>;

        /// Revokes a remembered consent. [`Error::NotFound`] if no live grant has that id.
        pub async fn revoke_grant(&self, id: &str, now: Timestamp, audit: impl FnOnce(&GrantRow) -> Vec<NewAudit> + Send + 'static, ) -> Result<GrantRow, Error>;

        /// Stores an authorization code.
        pub async fn insert_code(&self, row: &CodeRow, audit: Vec<NewAudit>) -> Result<(), Error>;

        /// Uses the code with this hash: the first use wins; a second use revokes what the first
        /// issued.
        pub async fn use_code(&self, hash: &[u8; 32], now: Timestamp, audit: impl FnOnce(&CodeUse) -> Vec<NewAudit> + Send + 'static, ) -> Result<CodeUse, Error>;

        /// Uses the refresh token with this hash. A token used more than `grace_ms` ago revokes its
        /// family.
        pub async fn use_refresh(&self, hash: &[u8; 32], now: Timestamp, grace_ms: i64, audit: impl FnOnce(&RefreshUse) -> Vec<NewAudit> + Send + 'static, ) -> Result<RefreshUse, Error>;

        /// Stores, in one transaction, a new family (for a code exchange), an access token and a
        /// refresh token. Fails with [`Error::NotFound`] if the family has been revoked meanwhile.
        pub async fn issue_tokens(&self, family: Option<&FamilyRow>, access: &TokenRow, refresh: &RefreshRow) -> Result<(), Error>;

        /// Keeps a consent form until it is answered or expires; the expired ones go, and the
        /// oldest beyond `max` held.
        pub async fn hold_consent_form(&self, row: &ConsentFormRow, now: Timestamp, max: i64) -> Result<(), Error>;

        /// The consent form `id`, if `csrf_hash` is its current token's and it has not expired;
        /// its token is replaced by `next_csrf_hash` in the same step (a form is answered once).
        pub async fn take_consent_form(&self, id: &str, csrf_hash: &[u8; 32], next_csrf_hash: &[u8; 32], now: Timestamp) -> Result<Option<ConsentFormRow>, Error>;

        /// Ends a consent form (it was answered). `false`: it was already gone.
        pub async fn end_consent_form(&self, id: &str) -> Result<bool, Error>;

        /// RFC 7009: revokes the access token or the refresh token (with its family) that hashes to
        /// `hash`, if it belongs to `client_id`. Returns the revoked access-token ids (none when
        /// nothing matched, which is not an error).
        pub async fn revoke_oauth_token(&self, hash: &[u8; 32], client_id: &str, now: Timestamp) -> Result<Vec<String>, Error>;
    }
}
