//! The OAuth 2.1 authorization server that MCP clients sign in through: dynamic client
//! registration (RFC 7591), the authorization-code grant with PKCE S256 only, consent (with the
//! owner passphrase, checked by `http`), remembered consent, refresh-token rotation with reuse
//! detection, and revocation (RFC 7009).
//!
//! Access tokens are ordinary rows of the token store (hashed, expiring, revocable) that also name
//! their client, their audience (RFC 8707 `resource`) and their grant family. This module knows
//! no HTTP: `http::oauth` parses requests, checks the passphrase and maps [`Error`] to RFC 6749
//! responses.

pub mod pkce;
pub mod redirect;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentgate_policy::{Scope, ScopeSet};
use serde::Serialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use url::Url;

use crate::auth::secret::{self, TokenHash};
use crate::auth::{Authenticator, Principal};
use crate::clock::{Clock, Timestamp};
use crate::store::oauth::{
    ClientRow, CodeRow, CodeUse, FamilyRow, GrantRow, RefreshRow, RefreshUse,
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
/// Prefix of a client secret.
const CLIENT_SECRET_PREFIX: &str = "ags_";
/// Pending consents kept at once (oldest expired first when full).
const MAX_PENDING: usize = 1000;
/// Most redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 10;

/// Lifetimes and limits.
#[derive(Debug, Clone, Copy)]
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
    NotFound(&'static str, String),
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
            Error::NotFound(..) => "not_found",
            Error::Random | Error::Store(_) => "server_error",
        }
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

/// A client as the registration response and the CLI show it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    /// `cli_…`.
    pub client_id: String,
    /// Self-asserted name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// Registration time (RFC 3339).
    pub created_at: Timestamp,
}

/// A remembered consent as the CLI shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GrantInfo {
    /// `grt_…`.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// Its name, if it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Space-separated scopes.
    pub scope: String,
    /// When the owner allowed it.
    pub created_at: Timestamp,
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

/// A consent waiting for the owner's answer. Held in memory: it lives minutes.
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
    pending: Mutex<HashMap<String, Pending>>,
}

impl OAuth {
    /// An authorization server over `store`, issuing tokens `auth` verifies.
    pub fn new(store: Store, clock: Clock, auth: Arc<Authenticator>, settings: Settings) -> OAuth {
        OAuth {
            store,
            clock,
            auth,
            settings,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Lifetimes and limits.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// RFC 7591 registration. `body` is the parsed JSON; unknown members are ignored. Returns the
    /// registration response (with the client secret, shown this once, for confidential clients).
    pub async fn register(&self, body: &Value) -> Result<Value, Error> {
        let meta = |m: String| Error::InvalidClientMetadata(m);
        let obj = body
            .as_object()
            .ok_or_else(|| meta("the registration body must be a JSON object".into()))?;
        let strings = |key: &str| -> Result<Option<Vec<String>>, Error> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| meta(format!("`{key}` must be an array of strings")))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(meta(format!("`{key}` must be an array of strings"))),
            }
        };
        let text = |key: &str, max: usize| -> Result<Option<String>, Error> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
                Some(Value::String(_)) => Err(meta(format!("`{key}` has at most {max} bytes"))),
                Some(_) => Err(meta(format!("`{key}` must be a string"))),
            }
        };
        let redirect_uris = strings("redirect_uris")?.unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err(Error::InvalidRedirectUri(
                "`redirect_uris` must list at least one URI".into(),
            ));
        }
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(Error::InvalidRedirectUri(format!(
                "at most {MAX_REDIRECT_URIS} redirect URIs"
            )));
        }
        for uri in &redirect_uris {
            redirect::check_registrable(uri).map_err(Error::InvalidRedirectUri)?;
        }
        let auth_method =
            text("token_endpoint_auth_method", 64)?.unwrap_or_else(|| "client_secret_basic".into());
        if !["none", "client_secret_basic", "client_secret_post"].contains(&auth_method.as_str()) {
            return Err(meta(format!(
                "token_endpoint_auth_method `{auth_method}` is not supported; use none, \
                 client_secret_basic or client_secret_post"
            )));
        }
        let grant_types =
            strings("grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
        if let Some(bad) = grant_types
            .iter()
            .find(|g| !["authorization_code", "refresh_token"].contains(&g.as_str()))
        {
            return Err(meta(format!(
                "grant type `{bad}` is not supported; use authorization_code and refresh_token"
            )));
        }
        let response_types = strings("response_types")?.unwrap_or_else(|| vec!["code".into()]);
        if response_types.iter().any(|r| r != "code") {
            return Err(meta("the only response type is `code`".into()));
        }
        let application_type = text("application_type", 16)?.unwrap_or_else(|| "native".into());
        if !["native", "web"].contains(&application_type.as_str()) {
            return Err(meta("application_type is `native` or `web`".into()));
        }
        let client_name = text("client_name", 200)?;
        let scope = text("scope", 1000)?;
        let now = self.clock.now();
        let client_id = id("cli_")?;
        let secret = match auth_method.as_str() {
            "none" => None,
            _ => Some(random(CLIENT_SECRET_PREFIX)?),
        };
        let mut response = json!({
            "client_id": client_id,
            "client_id_issued_at": now.as_millis() / 1000,
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": auth_method,
            "grant_types": grant_types,
            "response_types": response_types,
            "application_type": application_type,
        });
        if let Some(name) = &client_name {
            response["client_name"] = json!(name);
        }
        if let Some(scope) = &scope {
            response["scope"] = json!(scope);
        }
        let row = ClientRow {
            id: client_id,
            secret_hash: secret.as_deref().map(|s| TokenHash::of(s).0),
            name: client_name,
            redirect_uris,
            auth_method,
            application_type,
            grant_types,
            scope,
            metadata: response.to_string(),
            created_at: now,
            deleted_at: None,
        };
        let cap = store::oauth::ClientCap {
            max: self.settings.max_clients,
            unauthorized: self
                .settings
                .max_unauthorized_clients
                .min(self.settings.max_clients),
            stale_before: Timestamp::from_millis(
                now.as_millis()
                    - i64::try_from(self.settings.unauthorized_client_ttl.as_millis())
                        .unwrap_or(i64::MAX / 2),
            ),
            now,
        };
        let audit = vec![NewAudit::of(
            now,
            "oauth.client_registered",
            Some(&row.id),
            json!({
                "name": row.name, "redirect_uris": row.redirect_uris,
                "auth_method": row.auth_method,
            }),
        )];
        match self.store.insert_client(&row, cap, audit).await {
            Err(store::Error::Conflict("client cap")) => {
                return Err(Error::TooManyClients(self.settings.max_clients));
            }
            other => other?,
        }
        if let Some(secret) = secret {
            response["client_secret"] = json!(secret);
            response["client_secret_expires_at"] = json!(0);
        }
        Ok(response)
    }

    /// Registered clients.
    pub async fn clients(&self) -> Result<Vec<ClientInfo>, Error> {
        Ok(self
            .store
            .live_clients()
            .await?
            .into_iter()
            .map(|c| ClientInfo {
                client_id: c.id,
                client_name: c.name,
                redirect_uris: c.redirect_uris,
                token_endpoint_auth_method: c.auth_method,
                created_at: c.created_at,
            })
            .collect())
    }

    /// Deletes a client: its grants, refresh tokens and access tokens stop working at once, and
    /// it gets `invalid_client` from then on.
    pub async fn delete_client(&self, client_id: &str) -> Result<usize, Error> {
        let now = self.clock.now();
        let audit = vec![NewAudit::of(
            now,
            "oauth.client_deleted",
            Some(client_id),
            json!({}),
        )];
        let revoked = match self.store.delete_client(client_id, now, audit).await {
            Err(store::Error::NotFound) => {
                return Err(Error::NotFound("client", client_id.to_owned()));
            }
            other => other?,
        };
        self.forget(&revoked);
        Ok(revoked.len())
    }

    /// Remembered consents.
    pub async fn grants(&self) -> Result<Vec<GrantInfo>, Error> {
        let names: HashMap<String, Option<String>> = self
            .store
            .live_clients()
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        Ok(self
            .store
            .live_grants(None)
            .await?
            .into_iter()
            .map(|g| GrantInfo {
                client_name: names.get(&g.client_id).cloned().flatten(),
                id: g.id,
                client_id: g.client_id,
                scope: scope_string(&g.scopes),
                created_at: g.created_at,
            })
            .collect())
    }

    /// Revokes a remembered consent: the client sees the consent page again next time. Tokens
    /// already issued keep working until they expire or are revoked.
    pub async fn revoke_grant(&self, grant_id: &str) -> Result<(), Error> {
        let now = self.clock.now();
        let audit = move |g: &GrantRow| {
            vec![NewAudit::of(
                now,
                "oauth.consent_revoked",
                Some(&g.id),
                json!({"client_id": g.client_id, "scope": scope_string(&g.scopes)}),
            )]
        };
        match self.store.revoke_grant(grant_id, now, audit).await {
            Err(store::Error::NotFound) => Err(Error::NotFound("grant", grant_id.to_owned())),
            other => other.map(|_| ()).map_err(Error::from),
        }
    }

    fn forget(&self, token_ids: &[String]) {
        for id in token_ids {
            self.auth.forget(id);
        }
    }

    /// `GET /authorize`. `issuer` is our origin as the request reached us; `resource` maps a
    /// requested resource to its canonical form, or `None` when we do not protect it; `default_resource`
    /// is used when the request names none.
    pub async fn authorize(
        &self,
        issuer: &str,
        params: AuthorizeParams,
        resource: &(dyn Fn(&str) -> Option<String> + Sync),
        default_resource: &str,
        owner_signed_in: bool,
    ) -> Result<Authorize, Error> {
        let Some(client_id) = params.client_id.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(Authorize::ErrorPage(
                "The request names no client (client_id is missing).".into(),
            ));
        };
        let Some(client) = self.store.client(client_id).await? else {
            return Ok(Authorize::ErrorPage(format!(
                "No application is registered as `{client_id}`. It may have been deleted; \
                 the application has to register again."
            )));
        };
        let redirect_uri = match params.redirect_uri.as_deref() {
            Some(uri) if redirect::matches(&client.redirect_uris, uri) => uri.to_owned(),
            Some(uri) => {
                return Ok(Authorize::ErrorPage(format!(
                    "The redirect URI `{uri}` is not registered for this application."
                )));
            }
            None => match client.redirect_uris.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Ok(Authorize::ErrorPage(
                        "The request names no redirect URI, and the application registered \
                         several."
                            .into(),
                    ));
                }
            },
        };
        let answer = Answer {
            redirect_uri: &redirect_uri,
            state: params.state.as_deref(),
            issuer,
        };
        if params.response_type.as_deref() != Some("code") {
            return Ok(answer.error("unsupported_response_type", "response_type must be `code`"));
        }
        let challenge = match (
            params.code_challenge.as_deref(),
            params.code_challenge_method.as_deref(),
        ) {
            (None | Some(""), _) => {
                return Ok(answer.error(
                    "invalid_request",
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                ));
            }
            (Some(c), Some("S256")) if pkce::valid_challenge(c) => c.to_owned(),
            (Some(_), Some("S256")) => {
                return Ok(answer.error(
                    "invalid_request",
                    "code_challenge must be 43 base64url characters (SHA-256)",
                ));
            }
            (Some(_), _) => {
                return Ok(answer.error(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not accepted)",
                ));
            }
        };
        let scopes = match parse_scopes(params.scope.as_deref()) {
            Ok(s) => s,
            Err(e) => return Ok(answer.error(e.code(), &e.to_string())),
        };
        let resource = match params.resource.as_deref() {
            None => default_resource.to_owned(),
            Some(r) => match resource(r) {
                Some(canonical) => canonical,
                None => {
                    return Ok(answer.error(
                        "invalid_target",
                        &format!("this server does not protect the resource `{r}`"),
                    ));
                }
            },
        };
        let prompts: Vec<&str> = params
            .prompt
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
            .collect();
        if prompts.contains(&"none") && prompts.len() > 1 {
            return Ok(answer.error(
                "invalid_request",
                "prompt=none cannot be combined with other values",
            ));
        }
        let must_ask = prompts.iter().any(|p| matches!(*p, "consent" | "login"));
        let pending = Pending {
            id: id("authz_")?,
            csrf: random("csrf_")?,
            client_id: client.id.clone(),
            client_name: client.name.clone(),
            redirect_uri: redirect_uri.clone(),
            state: params.state.clone(),
            code_challenge: challenge,
            scopes,
            resource,
            issuer: issuer.to_owned(),
            one_click: false,
            expires_at: self.clock.now().plus(self.settings.consent_ttl),
        };
        let mut pending = pending;
        if !must_ask {
            // Anyone who knows a public client's id can start an authorization, so remembered
            // consent never issues a code by itself: it only spares the signed-in owner the
            // passphrase.
            let remembered = self
                .store
                .live_grants(Some(&client.id))
                .await?
                .iter()
                .any(|g| g.scopes.covers(pending.scopes));
            if prompts.contains(&"none") {
                return Ok(answer.error(
                    "consent_required",
                    if remembered {
                        "the owner confirms each sign-in in the browser; prompt=none cannot be answered"
                    } else {
                        "the owner has not allowed this application yet"
                    },
                ));
            }
            pending.one_click = remembered && owner_signed_in;
        }
        self.hold(pending.clone());
        Ok(Authorize::Consent(Box::new(pending)))
    }

    fn hold(&self, pending: Pending) {
        let now = self.clock.now();
        if let Ok(mut map) = self.pending.lock() {
            map.retain(|_, p| p.expires_at > now);
            if map.len() >= MAX_PENDING
                && let Some(oldest) = map
                    .values()
                    .min_by_key(|p| p.expires_at)
                    .map(|p| p.id.clone())
            {
                map.remove(&oldest);
            }
            map.insert(pending.id.clone(), pending);
        }
    }

    /// The pending authorization a consent form answers, if `csrf` is its current token. The
    /// token is used up: the pending authorization gets a new one (for the form shown again
    /// after a wrong passphrase), so a replayed form fails.
    pub fn take_form(&self, pending_id: &str, csrf: &str) -> Result<Pending, ConsentError> {
        let now = self.clock.now();
        let mut map = self.pending.lock().map_err(|_| ConsentError::Stale)?;
        let entry = map.get_mut(pending_id).ok_or(ConsentError::Stale)?;
        if entry.expires_at <= now || !bool::from(entry.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
            return Err(ConsentError::Stale);
        }
        entry.csrf = random("csrf_").map_err(|_| ConsentError::Stale)?;
        Ok(entry.clone())
    }

    /// The owner answered (the passphrase already checked for an approval): the redirect to send.
    pub async fn answer(
        &self,
        pending: &Pending,
        approve: bool,
        remember: bool,
    ) -> Result<String, Error> {
        let removed = self
            .pending
            .lock()
            .ok()
            .and_then(|mut map| map.remove(&pending.id));
        if removed.is_none() {
            return Err(Error::InvalidRequest(ConsentError::Stale.to_string()));
        }
        let answer = Answer {
            redirect_uri: &pending.redirect_uri,
            state: pending.state.as_deref(),
            issuer: &pending.issuer,
        };
        if !approve {
            return Ok(
                match answer.error("access_denied", "the owner denied access") {
                    Authorize::Redirect(url) => url,
                    _ => pending.redirect_uri.clone(),
                },
            );
        }
        if remember {
            let grant = GrantRow {
                id: id("grt_")?,
                client_id: pending.client_id.clone(),
                scopes: pending.scopes,
                created_at: self.clock.now(),
                revoked_at: None,
            };
            let audit = vec![NewAudit::of(
                grant.created_at,
                "oauth.consent_remembered",
                Some(&grant.id),
                json!({"client_id": grant.client_id, "scope": scope_string(&grant.scopes)}),
            )];
            self.store.insert_grant(&grant, audit).await?;
        }
        self.issue_code(pending).await
    }

    async fn issue_code(&self, pending: &Pending) -> Result<String, Error> {
        let code = random(CODE_PREFIX)?;
        let now = self.clock.now();
        let audit = vec![NewAudit::of(
            now,
            "oauth.consent_granted",
            Some(&pending.client_id),
            json!({
                "client_name": pending.client_name, "scope": scope_string(&pending.scopes),
                "resource": pending.resource, "redirect_uri": pending.redirect_uri,
                "one_click": pending.one_click,
            }),
        )];
        self.store
            .insert_code(
                &CodeRow {
                    code_hash: TokenHash::of(&code).0,
                    client_id: pending.client_id.clone(),
                    redirect_uri: pending.redirect_uri.clone(),
                    code_challenge: pending.code_challenge.clone(),
                    resource: pending.resource.clone(),
                    scopes: pending.scopes,
                    family_id: id("fam_")?,
                    created_at: now,
                    expires_at: now.plus(self.settings.code_ttl),
                },
                audit,
            )
            .await?;
        Ok(Answer {
            redirect_uri: &pending.redirect_uri,
            state: pending.state.as_deref(),
            issuer: &pending.issuer,
        }
        .with(&[("code", &code)]))
    }

    /// Authenticates a client at `/token` or `/revoke`.
    pub async fn client_of(&self, creds: &ClientCredentials) -> Result<ClientRow, Error> {
        let client_id = creds
            .id
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::InvalidClient("client authentication is required".into()))?;
        let client = self
            .store
            .client(client_id)
            .await?
            .ok_or_else(|| Error::InvalidClient(format!("unknown client `{client_id}`")))?;
        if let Some(expected) = client.secret_hash {
            let presented = creds.secret.as_deref().unwrap_or("");
            if !TokenHash::of(presented).ct_eq(&expected) {
                return Err(Error::InvalidClient("client authentication failed".into()));
            }
        }
        Ok(client)
    }

    /// `POST /token`.
    pub async fn token(
        &self,
        creds: &ClientCredentials,
        req: TokenRequest,
        resource: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<TokenResponse, Error> {
        let grant = req
            .grant_type
            .clone()
            .ok_or_else(|| Error::InvalidRequest("grant_type is required".into()))?;
        if !matches!(grant.as_str(), "authorization_code" | "refresh_token") {
            return Err(Error::UnsupportedGrantType);
        }
        let client = self.client_of(creds).await?;
        if grant == "authorization_code" {
            self.exchange_code(&client, req, resource).await
        } else {
            self.refresh(&client, req, resource).await
        }
    }

    async fn exchange_code(
        &self,
        client: &ClientRow,
        req: TokenRequest,
        resource: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<TokenResponse, Error> {
        let code = req
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::InvalidRequest("code is required".into()))?;
        let verifier = req
            .code_verifier
            .as_deref()
            .ok_or_else(|| Error::InvalidRequest("code_verifier is required (PKCE)".into()))?;
        let now = self.clock.now();
        let row = match self
            .store
            .use_code(
                &TokenHash::of(code).0,
                now,
                family_revoked(now, "authorization code reused"),
            )
            .await?
        {
            CodeUse::Fresh(row) => row,
            CodeUse::Reused(revoked) => {
                self.forget(&revoked);
                return Err(Error::InvalidGrant(
                    "the authorization code was already used; the tokens issued for it are revoked"
                        .into(),
                ));
            }
            CodeUse::Unknown => {
                return Err(Error::InvalidGrant("unknown authorization code".into()));
            }
        };
        if row.client_id != client.id {
            return Err(Error::InvalidGrant(
                "the authorization code was issued to another client".into(),
            ));
        }
        if row.expires_at <= now {
            return Err(Error::InvalidGrant(
                "the authorization code has expired".into(),
            ));
        }
        if req
            .redirect_uri
            .as_deref()
            .is_some_and(|r| r != row.redirect_uri)
        {
            return Err(Error::InvalidGrant(
                "redirect_uri differs from the authorization request's".into(),
            ));
        }
        if !pkce::verify(verifier, &row.code_challenge) {
            return Err(Error::InvalidGrant(
                "the PKCE code_verifier does not match".into(),
            ));
        }
        check_resource(req.resource.as_deref(), &row.resource, resource)?;
        let family = FamilyRow {
            id: row.family_id.clone(),
            client_id: client.id.clone(),
            resource: row.resource.clone(),
            scopes: row.scopes,
            created_at: now,
            revoked_at: None,
        };
        self.issue(client, &family, true, row.scopes).await
    }

    async fn refresh(
        &self,
        client: &ClientRow,
        req: TokenRequest,
        resource: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<TokenResponse, Error> {
        let token = req
            .refresh_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::InvalidRequest("refresh_token is required".into()))?;
        let grace = i64::try_from(self.settings.refresh_grace.as_millis()).unwrap_or(i64::MAX);
        let family = match self
            .store
            .use_refresh(&TokenHash::of(token).0, self.clock.now(), grace, {
                let entry = family_revoked(self.clock.now(), "refresh token reused");
                move |used: &RefreshUse| match used {
                    RefreshUse::Reused(revoked) => entry(&CodeUse::Reused(revoked.clone())),
                    _ => Vec::new(),
                }
            })
            .await?
        {
            RefreshUse::Valid(family) => family,
            RefreshUse::Reused(revoked) => {
                self.forget(&revoked);
                return Err(Error::InvalidGrant(
                    "the refresh token was already used; every token of this grant is revoked"
                        .into(),
                ));
            }
            RefreshUse::Invalid => {
                return Err(Error::InvalidGrant(
                    "the refresh token is unknown, expired or revoked".into(),
                ));
            }
        };
        if family.client_id != client.id {
            return Err(Error::InvalidGrant(
                "the refresh token was issued to another client".into(),
            ));
        }
        check_resource(req.resource.as_deref(), &family.resource, resource)?;
        let scopes = match req.scope.as_deref() {
            None => family.scopes,
            Some(text) => {
                let wanted = parse_scopes(Some(text))?;
                if !family.scopes.covers(wanted) {
                    return Err(Error::InvalidScope(
                        "a refresh cannot widen the granted scope".into(),
                    ));
                }
                wanted
            }
        };
        self.issue(client, &family, false, scopes).await
    }

    async fn issue(
        &self,
        client: &ClientRow,
        family: &FamilyRow,
        new_family: bool,
        scopes: ScopeSet,
    ) -> Result<TokenResponse, Error> {
        let now = self.clock.now();
        let (access, row) =
            crate::auth::mint_row(String::new(), scopes, now).map_err(|_| Error::Random)?;
        let refresh = random(REFRESH_PREFIX)?;
        let label: String = client
            .name
            .as_deref()
            .unwrap_or("client")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(24)
            .collect();
        let row = TokenRow {
            name: format!("oauth.{label}.{}", &row.id[4..]),
            expires_at: Some(now.plus(self.settings.access_ttl)),
            oauth: Some(OAuthBinding {
                client_id: client.id.clone(),
                audience: family.resource.clone(),
                family_id: family.id.clone(),
            }),
            ..row
        };
        let refresh_row = RefreshRow {
            token_hash: TokenHash::of(&refresh).0,
            family_id: family.id.clone(),
            created_at: now,
            expires_at: now.plus(self.settings.refresh_ttl),
        };
        match self
            .store
            .issue_tokens(new_family.then_some(family), &row, &refresh_row)
            .await
        {
            Err(store::Error::NotFound) => {
                return Err(Error::InvalidGrant("this grant has been revoked".into()));
            }
            other => other?,
        }
        Ok(TokenResponse {
            access_token: access.expose().to_owned(),
            token_type: "Bearer",
            expires_in: self.settings.access_ttl.as_secs(),
            refresh_token: refresh,
            scope: scope_string(&scopes),
        })
    }

    /// `POST /revoke` (RFC 7009): revokes an access token, or a refresh token and its whole
    /// grant. Unknown tokens are not an error.
    pub async fn revoke(&self, creds: &ClientCredentials, token: &str) -> Result<(), Error> {
        let client = self.client_of(creds).await?;
        let revoked = self
            .store
            .revoke_oauth_token(&TokenHash::of(token).0, &client.id, self.clock.now())
            .await?;
        self.forget(&revoked);
        Ok(())
    }
}

/// The audit entry for a grant family revoked because a code or refresh token came back.
fn family_revoked(
    now: Timestamp,
    because: &'static str,
) -> impl FnOnce(&CodeUse) -> Vec<NewAudit> + Send + 'static {
    move |used| match used {
        CodeUse::Reused(revoked) => vec![NewAudit::of(
            now,
            "oauth.family_revoked",
            None,
            json!({"because": because, "tokens_revoked": revoked.len()}),
        )],
        _ => Vec::new(),
    }
}

/// Whether `principal` (an OAuth access token) may be used on `resource`.
pub fn audience_allows(principal: &Principal, resource: &str) -> bool {
    principal
        .oauth
        .as_ref()
        .is_none_or(|b| b.audience == resource)
}

fn check_resource(
    presented: Option<&str>,
    bound: &str,
    resource: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<(), Error> {
    let Some(presented) = presented else {
        return Ok(());
    };
    match resource(presented) {
        Some(canonical) if canonical == bound => Ok(()),
        Some(_) => Err(Error::InvalidTarget(format!(
            "the grant is for `{bound}`, not `{presented}`"
        ))),
        None => Err(Error::InvalidTarget(format!(
            "this server does not protect the resource `{presented}`"
        ))),
    }
}

/// Builds redirects back to the client: always with `state` (if the request had one) and `iss`
/// (RFC 9207).
struct Answer<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl Answer<'_> {
    fn with(&self, pairs: &[(&str, &str)]) -> String {
        let Ok(mut url) = Url::parse(self.redirect_uri) else {
            return self.redirect_uri.to_owned();
        };
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in pairs {
                query.append_pair(k, v);
            }
            if let Some(state) = self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", self.issuer);
        }
        url.into()
    }

    fn error(&self, code: &str, description: &str) -> Authorize {
        Authorize::Redirect(self.with(&[("error", code), ("error_description", description)]))
    }
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

    #[test]
    fn answers_carry_state_and_issuer_and_keep_the_redirect_query() {
        let a = Answer {
            redirect_uri: "http://127.0.0.1:9/cb?x=1",
            state: Some("s t"),
            issuer: "http://127.0.0.1:7700",
        };
        assert_eq!(
            a.with(&[("code", "c")]),
            "http://127.0.0.1:9/cb?x=1&code=c&state=s+t&iss=http%3A%2F%2F127.0.0.1%3A7700"
        );
    }
}
