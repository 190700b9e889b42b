//! Web sessions and pairing links: the browser's credential.
//!
//! A session is a credential like an API token: it becomes a [`Principal`] with scopes, and every
//! route checks those scopes through the same scope table. The owner gets one by signing in with
//! the passphrase (scope `admin`); a second device gets one from a one-time pairing link (scope
//! `approve` by default). The cookie's secret has 256 bits; only its SHA-256 is stored. A session
//! ends on sign-out, after an idle period, at an absolute expiry, or when its pairing is revoked.

use std::sync::Arc;
use std::time::Duration;

use agentgate_policy::{Scope, ScopeSet};

use super::secret::{self, TokenHash};
use super::{CredentialKind, Error, Principal, Rejection};
use crate::api::events;
use crate::api::{CreatePairing, Expiry, PairingInfo};
use crate::clock::{Clock, Timestamp};
use serde_json::json;

use crate::store::web::{PairingRow, SessionRow};
use crate::store::{NewAudit, Store};

/// Prefix of a session cookie's secret.
pub const COOKIE_PREFIX: &str = "ags_";
/// Prefix of a pairing link's code.
pub const PAIRING_PREFIX: &str = "agp_";
/// Name of the session of the owner, signed in with the passphrase.
pub const OWNER_SESSION_NAME: &str = "owner (web)";
/// How long a pairing link works unless asked otherwise.
pub const PAIRING_DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);
/// The longest a pairing link may work.
pub const PAIRING_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Activity is written at most this often per session (idle expiry may come this much early).
const TOUCH_INTERVAL: Duration = Duration::from_secs(30);

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however active.
    pub absolute: Duration,
}

impl Default for SessionSettings {
    fn default() -> SessionSettings {
        SessionSettings {
            idle: Duration::from_secs(12 * 3600),
            absolute: Duration::from_secs(7 * 86_400),
        }
    }
}

/// A verified session.
#[derive(Debug, Clone)]
pub struct SessionAuth {
    /// Who it is, with its scopes (the same type an API token becomes).
    pub principal: Arc<Principal>,
    /// The CSRF token every state-changing request of this session must carry.
    pub csrf: String,
}

/// A new session: the cookie to set, once.
pub struct NewSession {
    /// The cookie's value (a secret).
    pub cookie: String,
    /// How long the cookie should live (the absolute expiry).
    pub max_age: Duration,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSession { cookie: [redacted] }")
    }
}

/// Why a pairing link cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// Unknown, expired, already used or revoked: one answer for all, so a link cannot be probed.
    #[error("this pairing link has expired or was already used")]
    Unusable,
    /// Bad request to create one.
    #[error("{0}")]
    Invalid(String),
    /// Creating, verifying or storing failed.
    #[error(transparent)]
    Auth(#[from] Error),
}

/// Signs browsers in and out, and manages pairing links.
pub struct Sessions {
    store: Store,
    clock: Clock,
    settings: SessionSettings,
    ended: tokio::sync::broadcast::Sender<String>,
}

impl Sessions {
    /// Sessions over `store`.
    pub fn new(store: Store, clock: Clock, settings: SessionSettings) -> Sessions {
        Sessions {
            store,
            clock,
            settings,
            ended: tokio::sync::broadcast::channel(super::REVOCATIONS_BUFFERED).0,
        }
    }

    /// The lifetimes in force.
    pub fn settings(&self) -> SessionSettings {
        self.settings
    }

    /// Starts an owner session (scope `admin`). The caller has verified the passphrase.
    pub async fn sign_in_owner(&self) -> Result<NewSession, Error> {
        let now = self.clock.now();
        let (row, cookie) = self.new_row(
            OWNER_SESSION_NAME.to_owned(),
            [Scope::Admin].into_iter().collect(),
            None,
            now,
        )?;
        let audit = vec![NewAudit::of(
            now,
            events::SESSION_SIGNED_IN,
            Some(&row.id),
            json!({"name": row.name, "with": "passphrase", "expires_at": row.expires_at}),
        )];
        self.store.insert_session(&row, audit).await?;
        Ok(NewSession {
            cookie,
            max_age: self.settings.absolute,
        })
    }

    fn new_row(
        &self,
        name: String,
        scopes: ScopeSet,
        pairing_id: Option<String>,
        now: Timestamp,
    ) -> Result<(SessionRow, String), Error> {
        let cookie = secret::random_256(COOKIE_PREFIX).map_err(Error::Random)?;
        let row = SessionRow {
            id: secret::new_id("ses_").map_err(Error::Random)?,
            secret_hash: TokenHash::of(&cookie).0,
            name,
            scopes,
            csrf: secret::random_256("").map_err(Error::Random)?,
            pairing_id,
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus(self.settings.absolute),
            revoked_at: None,
        };
        Ok((row, cookie))
    }

    /// Verifies a session cookie's value.
    pub async fn authenticate(&self, cookie: &str) -> Result<SessionAuth, Error> {
        if !secret::well_formed_256(COOKIE_PREFIX, cookie) {
            return Err(Error::Unauthenticated(Rejection::Malformed));
        }
        let hash = TokenHash::of(cookie);
        let row = self
            .store
            .session_by_hash(&hash.0)
            .await?
            .ok_or(Error::Unauthenticated(Rejection::Unknown))?;
        if !hash.ct_eq(&row.secret_hash) {
            return Err(Error::Unauthenticated(Rejection::Unknown));
        }
        if row.revoked_at.is_some() {
            return Err(Error::Unauthenticated(Rejection::Revoked));
        }
        let now = self.clock.now();
        let idle_end = row.last_seen_at.plus(self.settings.idle);
        if row.expires_at <= now || idle_end <= now {
            return Err(Error::Unauthenticated(Rejection::Expired));
        }
        let interval = TOUCH_INTERVAL.min(self.settings.idle / 8);
        if now.since(row.last_seen_at) >= interval {
            self.store.touch_session(&row.id, now).await?;
        }
        Ok(SessionAuth {
            principal: Arc::new(Principal {
                token_id: row.id,
                name: row.name,
                scopes: row.scopes,
                expires_at: Some(row.expires_at.min(now.plus(self.settings.idle))),
                kind: CredentialKind::Session,
                oauth: None,
                person: None,
            }),
            csrf: row.csrf,
        })
    }

    /// Ends a session.
    pub async fn sign_out(&self, session_id: &str) -> Result<(), Error> {
        let now = self.clock.now();
        let audit = vec![NewAudit::of(
            now,
            events::SESSION_SIGNED_OUT,
            Some(session_id),
            json!({}),
        )];
        self.store.revoke_session(session_id, now, audit).await?;
        let _ = self.ended.send(session_id.to_owned());
        Ok(())
    }

    /// The ids of sessions as they end (sign-out, revoked pairing), for event streams that must
    /// end with their session.
    pub fn endings(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.ended.subscribe()
    }

    /// Creates a one-time pairing link for `creator`, who must hold every scope it grants.
    /// Returns the pairing and the code (shown once, in the link).
    pub async fn create_pairing(
        &self,
        creator: &Principal,
        req: CreatePairing,
    ) -> Result<(PairingInfo, String), PairingError> {
        let name = req.name.unwrap_or_else(|| "paired device".to_owned());
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(PairingError::Invalid(
                "`name` must have 1 to 64 characters and no control characters".into(),
            ));
        }
        let scopes: ScopeSet = match req.scopes {
            None => [Scope::Approve].into_iter().collect(),
            Some(list) if list.is_empty() => {
                return Err(PairingError::Invalid(
                    "`scopes` must name at least one scope".into(),
                ));
            }
            Some(list) => list.into_iter().collect(),
        };
        if let Some(missing) = scopes.iter().find(|s| !creator.scopes.allows(*s)) {
            return Err(PairingError::Auth(Error::Escalation(missing)));
        }
        let ttl = match req.expires_in {
            None => PAIRING_DEFAULT_TTL,
            Some(Expiry::After(d)) if d >= Duration::from_secs(60) && d <= PAIRING_MAX_TTL => d,
            Some(_) => {
                return Err(PairingError::Invalid(
                    "`expires_in` of a pairing link must be between 1m and 24h".into(),
                ));
            }
        };
        let now = self.clock.now();
        let code = secret::random_256(PAIRING_PREFIX).map_err(Error::Random)?;
        let row = PairingRow {
            id: secret::new_id("pair_").map_err(Error::Random)?,
            name,
            code_hash: TokenHash::of(&code).0,
            scopes,
            created_at: now,
            expires_at: now.plus(ttl),
            created_by: creator.name.clone(),
            redeemed_at: None,
            revoked_at: None,
        };
        let audit = vec![NewAudit::of(
            now,
            events::PAIRING_CREATED,
            Some(&row.id),
            json!({
                "name": row.name, "scopes": row.scopes.to_string(),
                "expires_at": row.expires_at, "by": row.created_by,
            }),
        )];
        self.store
            .insert_pairing(&row, audit)
            .await
            .map_err(Error::from)?;
        Ok((pairing_info(&row), code))
    }

    /// Uses a pairing link: it works once, before its expiry, unless revoked.
    pub async fn redeem(&self, code: &str) -> Result<NewSession, PairingError> {
        if !secret::well_formed_256(PAIRING_PREFIX, code) {
            return Err(PairingError::Unusable);
        }
        let now = self.clock.now();
        let hash = TokenHash::of(code);
        // Build the session before the transaction so that randomness cannot fail inside it.
        let cookie = secret::random_256(COOKIE_PREFIX).map_err(Error::Random)?;
        let csrf = secret::random_256("").map_err(Error::Random)?;
        let id = secret::new_id("ses_").map_err(Error::Random)?;
        let absolute = self.settings.absolute;
        let cookie_hash = TokenHash::of(&cookie).0;
        let redeemed = self
            .store
            .redeem_pairing(&hash.0, now, move |pairing| SessionRow {
                id,
                secret_hash: cookie_hash,
                name: format!("{} (paired)", pairing.name),
                scopes: pairing.scopes,
                csrf,
                pairing_id: Some(pairing.id.clone()),
                created_at: now,
                last_seen_at: now,
                expires_at: now.plus(absolute),
                revoked_at: None,
            }, move |(pairing, session)| {
                vec![NewAudit::of(
                    now,
                    events::PAIRING_REDEEMED,
                    Some(&pairing.id),
                    json!({"name": pairing.name, "session": session.id, "scopes": session.scopes.to_string()}),
                )]
            })
            .await
            .map_err(Error::from)?;
        match redeemed {
            Some(_) => Ok(NewSession {
                cookie,
                max_age: absolute,
            }),
            None => Err(PairingError::Unusable),
        }
    }

    /// Live pairings, newest first.
    pub async fn pairings(&self) -> Result<Vec<PairingInfo>, Error> {
        let rows = self.store.live_pairings().await?;
        Ok(rows.iter().map(pairing_info).collect())
    }

    /// Revokes a pairing (an unused link stops working; a paired device is signed out).
    /// Returns how many sessions ended.
    pub async fn revoke_pairing(&self, id: &str) -> Result<usize, Error> {
        let now = self.clock.now();
        let pairing = id.to_owned();
        let audit = move |ended: &Vec<String>| {
            vec![NewAudit::of(
                now,
                events::PAIRING_REVOKED,
                Some(&pairing),
                json!({"sessions_ended": ended}),
            )]
        };
        match self.store.revoke_pairing(id, now, audit).await {
            Ok(ended) => {
                for session in &ended {
                    let _ = self.ended.send(session.clone());
                }
                Ok(ended.len())
            }
            Err(crate::store::Error::NotFound) => Err(Error::PairingNotFound(id.to_owned())),
            Err(e) => Err(e.into()),
        }
    }
}

fn pairing_info(row: &PairingRow) -> PairingInfo {
    PairingInfo {
        id: row.id.clone(),
        name: row.name.clone(),
        scopes: row.scopes.iter().collect(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        created_by: row.created_by.clone(),
        redeemed_at: row.redeemed_at,
    }
}
