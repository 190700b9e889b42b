//! The OAuth 2.1 authorization server that MCP clients sign in through: dynamic client
//! registration (RFC 7591), the authorization-code grant with PKCE S256 only, consent (with the
//! owner passphrase, checked by `http`), remembered consent, refresh-token rotation with reuse
//! detection, and revocation (RFC 7009).
//!
//! Access tokens are ordinary rows of the token store (hashed, expiring, revocable) that also name
//! their client, their audience (RFC 8707 `resource`) and their grant family. This module knows
//! no HTTP: `http::oauth` parses requests, checks the passphrase and maps [`Error`] to RFC 6749
//! responses.

mod authorize;
mod clients;
pub mod pkce;
pub mod redirect;
mod register;
pub mod resource;
mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentgate_policy::{Scope, ScopeSet};
use serde::Serialize;

pub use crate::api::{ClientInfo, GrantInfo};
use serde_json::{Value, json};
use url::Url;

use crate::api::events;
use crate::auth::secret::{self, TokenHash};
use crate::auth::{Authenticator, Principal};
use crate::clock::{Clock, Timestamp};
use crate::store::oauth::{
    ClientRow, CodeRow, CodeUse, ConsentFormRow, FamilyRow, GrantRow, RefreshRow, RefreshUse,
};
use crate::store::{self, NewAudit, OAuthBinding, Store, TokenRow};

/// The scopes an OAuth client may ask for. `admin`, `write` and `execute` are never handed to an
/// OAuth client.
pub const SCOPES: [Scope; 3] = [Scope::Request, Scope::Approve, Scope::Read];
/// Asked for when a request names no scope: what an agent needs to ask for permission.
pub const DEFAULT_SCOPE: Scope = Scope::Request;
/// Prefix of a refresh token.
const REFRESH_PREFIX: &str = "agr_";
/// Prefix of an authorization code.
const CODE_PREFIX: &str = "agc_";
/// Prefix of a client secret: its own, not the session cookie's `ags_` (secrets issued before
/// carry `ags_` and still work: they are checked by hash, whatever their prefix).
const CLIENT_SECRET_PREFIX: &str = "agk_";
/// Pending consents kept at once (oldest expired first when full).
const MAX_PENDING: usize = 1000;
/// Most redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 10;

/// Lifetimes and limits.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Most live registered clients.
    pub max_clients: u32,
    /// Most live clients that were never authorized (counted apart, so registrations from a web
    /// page cannot fill the whole cap).
    pub max_unauthorized_clients: u32,
    /// A client never authorized within this time after registering is deleted.
    pub unauthorized_client_ttl: Duration,
    /// Access-token lifetime (`expires_in`).
    pub access_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// Authorization-code lifetime.
    pub code_ttl: Duration,
    /// How long a consent page stays answerable.
    pub consent_ttl: Duration,
    /// A refresh token used again within this time (a concurrent refresh) is not reuse.
    pub refresh_grace: Duration,
    /// The upstream MCP servers (`[[mcp_server]]` names): each `/mcp/{name}` is a resource.
    pub mcp_servers: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_clients: 100,
            max_unauthorized_clients: 20,
            unauthorized_client_ttl: Duration::from_secs(3600),
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            code_ttl: Duration::from_secs(300),
            consent_ttl: Duration::from_secs(600),
            refresh_grace: Duration::from_secs(5),
            mcp_servers: Vec::new(),
        }
    }
}

/// Errors, each with its RFC 6749 / 7591 error code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `invalid_client`: unknown, deleted, or failed authentication.
    #[error("{0}")]
    InvalidClient(String),
    /// 400 `invalid_grant`: a bad, expired, used or revoked code or refresh token.
    #[error("{0}")]
    InvalidGrant(String),
    /// 400 `unsupported_grant_type`.
    #[error("grant_type must be authorization_code or refresh_token")]
    UnsupportedGrantType,
    /// 400 `invalid_scope`.
    #[error("{0}")]
    InvalidScope(String),
    /// 400 `invalid_target` (RFC 8707): a resource this server does not protect.
    #[error("{0}")]
    InvalidTarget(String),
    /// 400 `invalid_redirect_uri` (RFC 7591).
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// 400 `invalid_client_metadata` (RFC 7591).
    #[error("{0}")]
    InvalidClientMetadata(String),
    /// 403: the client cap is reached.
    #[error(
        "{0} clients are registered, the most allowed; delete unused ones with `agentgate oauth clients rm ID`"
    )]
    TooManyClients(u32),
    /// 404: no such client or grant (owner-side management).
    #[error("no live {0} has id `{1}`")]
    NotFound(Missing, String),
    /// The OS CSPRNG failed.
    #[error("the system random number generator failed")]
    Random,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Error {
    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::InvalidClient(_) => "invalid_client",
            Error::InvalidGrant(_) => "invalid_grant",
            Error::UnsupportedGrantType => "unsupported_grant_type",
            Error::InvalidScope(_) => "invalid_scope",
            Error::InvalidTarget(_) => "invalid_target",
            Error::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Error::InvalidClientMetadata(_) => "invalid_client_metadata",
            Error::TooManyClients(_) => "too_many_clients",
            Error::NotFound(Missing::Client, _) => "client_not_found",
            Error::NotFound(Missing::Grant, _) => "grant_not_found",
            Error::Random | Error::Store(_) => "server_error",
        }
    }
}

/// What the owner asked for that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A registered client.
    Client,
    /// A remembered consent.
    Grant,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Missing::Client => "client",
            Missing::Grant => "grant",
        })
    }
}

fn random(prefix: &str) -> Result<String, Error> {
    secret::random_256(prefix).map_err(|_| Error::Random)
}

fn id(prefix: &str) -> Result<String, Error> {
    secret::new_id(prefix).map_err(|_| Error::Random)
}

/// Space-separated scope names to a set; every name must be one an OAuth client may get.
pub fn parse_scopes(text: Option<&str>) -> Result<ScopeSet, Error> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    let Some(text) = text else {
        return Ok([DEFAULT_SCOPE].into_iter().collect());
    };
    let mut set = ScopeSet::default();
    for name in text.split(' ').filter(|n| !n.is_empty()) {
        match name.parse::<Scope>() {
            Ok(s) if SCOPES.contains(&s) => set.insert(s),
            _ => {
                return Err(Error::InvalidScope(format!(
                    "unknown scope `{name}`; this server offers: {}",
                    scope_string(&SCOPES.into_iter().collect())
                )));
            }
        }
    }
    Ok(set)
}

/// A scope set as OAuth writes it: space-separated.
pub fn scope_string(scopes: &ScopeSet) -> String {
    scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a scope lets a client do, in words for the consent page.
pub fn scope_words(scope: Scope) -> &'static str {
    match scope {
        Scope::Request => "Ask you for permission before acting (its requests go to your inbox)",
        Scope::Approve => "Answer permission requests for you: allow or deny what agents ask",
        Scope::Read => "Read permission requests, rules and the audit log",
        Scope::Admin => "Manage tokens, rules and settings",
        Scope::Write => "Write through gateway routes",
        Scope::Execute => "Run commands through gateway routes",
    }
}

/// The parameters of `GET /authorize` (all optional here; checked in order).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeParams {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// A registered client.
    pub client_id: Option<String>,
    /// One of the client's redirect URIs (may be omitted when it registered exactly one).
    pub redirect_uri: Option<String>,
    /// Echoed back.
    pub state: Option<String>,
    /// PKCE challenge.
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// RFC 8707 resource.
    pub resource: Option<String>,
    /// `none`, `consent`, `login`.
    pub prompt: Option<String>,
}

/// A consent waiting for the owner's answer: a row of the store (`oauth_consent_forms`) for its
/// few minutes, so any instance may take the answer.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The pending authorization's id (in the form).
    pub id: String,
    /// The form's single-use CSRF token.
    pub csrf: String,
    /// The client.
    pub client_id: String,
    /// Its self-asserted name.
    pub client_name: Option<String>,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// Echoed back.
    pub state: Option<String>,
    /// PKCE challenge.
    pub code_challenge: String,
    /// Requested scopes.
    pub scopes: ScopeSet,
    /// Canonical resource.
    pub resource: String,
    /// The issuer the request came through (`iss` of the answer).
    pub issuer: String,
    /// The owner already allowed this client these scopes and the browser carries the owner's
    /// signed-in session: one click confirms, no passphrase (RFC 8252 §8.6: remembered consent
    /// is never processed without a person in the browser).
    pub one_click: bool,
    expires_at: Timestamp,
}

/// What a consent form's row keeps of its [`Pending`] (the id, the CSRF token's hash and the
/// expiry are columns).
#[derive(Serialize, serde::Deserialize)]
struct Held {
    client_id: String,
    client_name: Option<String>,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    scope: String,
    resource: String,
    issuer: String,
    one_click: bool,
}

impl Held {
    fn of(p: &Pending) -> Held {
        Held {
            client_id: p.client_id.clone(),
            client_name: p.client_name.clone(),
            redirect_uri: p.redirect_uri.clone(),
            state: p.state.clone(),
            code_challenge: p.code_challenge.clone(),
            scope: scope_string(&p.scopes),
            resource: p.resource.clone(),
            issuer: p.issuer.clone(),
            one_click: p.one_click,
        }
    }

    /// The pending authorization again, with its new CSRF token; `None` if the scopes no longer
    /// parse (a row edited behind our back).
    fn pending(self, id: String, csrf: String, expires_at: Timestamp) -> Option<Pending> {
        Some(Pending {
            id,
            csrf,
            client_id: self.client_id,
            client_name: self.client_name,
            redirect_uri: self.redirect_uri,
            state: self.state,
            code_challenge: self.code_challenge,
            scopes: parse_scopes(Some(&self.scope)).ok()?,
            resource: self.resource,
            issuer: self.issuer,
            one_click: self.one_click,
            expires_at,
        })
    }
}

/// What `GET /authorize` leads to.
#[derive(Debug)]
pub enum Authorize {
    /// The client or redirect URI is invalid: an error page, never a redirect.
    ErrorPage(String),
    /// A redirect to the client (a code, or an error the client should see).
    Redirect(String),
    /// The consent page.
    Consent(Box<Pending>),
}

/// Why a consent form cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// No such pending authorization, expired, already answered, or a wrong CSRF token.
    #[error(
        "this sign-in request has expired or was already answered; start again from the application"
    )]
    Stale,
}

/// Client credentials presented at `/token` or `/revoke`.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// `client_id` (from Basic or the form).
    pub id: Option<String>,
    /// `client_secret` (from Basic or the form).
    pub secret: Option<String>,
}

/// The form of `POST /token`.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: Option<String>,
    /// The code.
    pub code: Option<String>,
    /// Must match the authorization request's.
    pub redirect_uri: Option<String>,
    /// PKCE verifier.
    pub code_verifier: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// RFC 8707 resource.
    pub resource: Option<String>,
    /// A narrower scope on refresh.
    pub scope: Option<String>,
}

/// A successful token response.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires (the truth: clients refresh by it).
    pub expires_in: u64,
    /// The next refresh token (rotated on every use).
    pub refresh_token: String,
    /// Granted scopes.
    pub scope: String,
}

/// The authorization server.
pub struct OAuth {
    store: Store,
    clock: Clock,
    auth: Arc<Authenticator>,
    settings: Settings,
}

impl OAuth {
    /// An authorization server over `store`, issuing tokens `auth` verifies.
    pub fn new(store: Store, clock: Clock, auth: Arc<Authenticator>, settings: Settings) -> OAuth {
        OAuth {
            store,
            clock,
            auth,
            settings,
        }
    }

    /// Lifetimes and limits.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// Whether `principal` (an OAuth access token) may be used on `resource`.
pub fn audience_allows(principal: &Principal, resource: &str) -> bool {
    principal
        .oauth
        .as_ref()
        .is_none_or(|b| b.audience == resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_default_to_request_and_refuse_what_oauth_never_grants() {
        assert_eq!(scope_string(&parse_scopes(None).unwrap()), "request");
        assert_eq!(scope_string(&parse_scopes(Some("  ")).unwrap()), "request");
        assert_eq!(
            scope_string(&parse_scopes(Some("approve request")).unwrap()),
            "approve request"
        );
        for bad in ["admin", "request offline_access", "write", "READ"] {
            assert!(
                matches!(parse_scopes(Some(bad)), Err(Error::InvalidScope(_))),
                "{bad}"
            );
        }
    }
}
