//! The owner passphrase: stored as an Argon2id PHC string, verified slowly on purpose, and
//! rate-limited per source with exponential backoff.
//!
//! Used by the web inbox sign-in and the OAuth consent page; set through the admin API. The
//! passphrase itself is never stored or logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::clock::{Clock, Timestamp};
use crate::store::{self, Store, setting};

/// Argon2id memory cost in KiB (64 MiB): with three passes this puts one verification well above
/// 50 ms on current hardware, so guessing is slow even before the backoff.
pub const M_COST_KIB: u32 = 64 * 1024;
/// Argon2id passes.
pub const T_COST: u32 = 3;
/// Shortest accepted passphrase.
pub const MIN_LEN: usize = 8;
/// Longest accepted passphrase, in bytes (Argon2 input stays bounded).
pub const MAX_LEN: usize = 1024;
/// The first failure from a source locks it for this long; each further one doubles it.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest lock-out.
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// Sources tracked at once; beyond this, entries whose lock has passed are dropped first.
const MAX_TRACKED: usize = 10_000;

/// Why a passphrase operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No passphrase has been set yet.
    #[error("no owner passphrase is set; run `agentgate passphrase set`")]
    NotSet,
    /// The passphrase did not match. Deliberately says nothing more.
    #[error("wrong passphrase")]
    Wrong,
    /// Too many failures from this source; try again after the given time.
    #[error("too many failed attempts; try again in {} s", .0.as_secs().max(1))]
    Backoff(Duration),
    /// The new passphrase breaks the length rule.
    #[error("a passphrase has {MIN_LEN} to {MAX_LEN} bytes")]
    BadLength,
    /// Hashing failed (the OS random generator for the salt, or a corrupt stored hash).
    #[error("passphrase hashing failed: {0}")]
    Hash(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    locked_until: Timestamp,
}

/// Sets and verifies the owner passphrase.
pub struct Passphrases {
    store: Store,
    clock: Clock,
    sources: Mutex<HashMap<IpAddr, Backoff>>,
}

fn hasher() -> Result<Argon2<'static>, Error> {
    let params =
        Params::new(M_COST_KIB, T_COST, 1, None).map_err(|e| Error::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a passphrase into an Argon2id PHC string with a fresh random salt. CPU-heavy: call it
/// from a blocking thread.
pub fn hash(passphrase: &str) -> Result<String, Error> {
    let phc = hasher()?
        .hash_password(passphrase.as_bytes())
        .map_err(|e| Error::Hash(e.to_string()))?;
    Ok(phc.to_string())
}

/// Checks `candidate` against a PHC string, with the parameters the string records. CPU-heavy.
pub fn verify_phc(phc: &str, candidate: &str) -> Result<bool, Error> {
    let parsed = PasswordHash::new(phc).map_err(|e| Error::Hash(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(candidate.as_bytes(), &parsed)
        .is_ok())
}

impl Passphrases {
    /// A passphrase service over `store`.
    pub fn new(store: Store, clock: Clock) -> Passphrases {
        Passphrases {
            store,
            clock,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the owner passphrase. Returns when it was stored.
    pub async fn set(&self, passphrase: String) -> Result<Timestamp, Error> {
        if passphrase.chars().count() < MIN_LEN || passphrase.len() > MAX_LEN {
            return Err(Error::BadLength);
        }
        let phc = tokio::task::spawn_blocking(move || hash(&passphrase))
            .await
            .map_err(|e| Error::Hash(e.to_string()))??;
        let now = self.clock.now();
        self.store
            .put_setting(setting::PASSPHRASE, &phc, now)
            .await?;
        Ok(now)
    }

    /// Whether a passphrase has been set.
    pub async fn is_set(&self) -> Result<bool, Error> {
        Ok(self.store.setting(setting::PASSPHRASE).await?.is_some())
    }

    /// Verifies `candidate` for a request from `source`. A source that failed recently is refused
    /// without hashing until its backoff has passed; each failure doubles the backoff.
    pub async fn verify(&self, source: IpAddr, candidate: String) -> Result<(), Error> {
        let now = self.clock.now();
        if let Some(wait) = self.locked(source, now) {
            return Err(Error::Backoff(wait));
        }
        let phc = self
            .store
            .setting(setting::PASSPHRASE)
            .await?
            .ok_or(Error::NotSet)?;
        let ok = if candidate.len() > MAX_LEN {
            false
        } else {
            tokio::task::spawn_blocking(move || verify_phc(&phc, &candidate))
                .await
                .map_err(|e| Error::Hash(e.to_string()))??
        };
        if ok {
            if let Ok(mut sources) = self.sources.lock() {
                sources.remove(&source);
            }
            Ok(())
        } else {
            self.record_failure(source, self.clock.now());
            Err(Error::Wrong)
        }
    }

    fn locked(&self, source: IpAddr, now: Timestamp) -> Option<Duration> {
        let sources = self.sources.lock().ok()?;
        let entry = sources.get(&source)?;
        (entry.locked_until > now).then(|| entry.locked_until.since(now))
    }

    fn record_failure(&self, source: IpAddr, now: Timestamp) {
        let Ok(mut sources) = self.sources.lock() else {
            return;
        };
        if sources.len() >= MAX_TRACKED && !sources.contains_key(&source) {
            sources.retain(|_, b| b.locked_until > now);
        }
        let failures = sources.get(&source).map_or(0, |b| b.failures) + 1;
        let exp = failures.saturating_sub(1).min(20);
        let wait = BACKOFF_BASE.saturating_mul(1u32 << exp).min(BACKOFF_MAX);
        sources.insert(
            source,
            Backoff {
                failures,
                locked_until: now.plus(wait),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn service() -> (Passphrases, Clock, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = Store::open(&url).await.unwrap();
        let clock = Clock::manual(Timestamp::from_millis(1_800_000_000_000));
        (Passphrases::new(store, clock.clone()), clock, dir)
    }

    #[test]
    fn the_stored_form_is_argon2id_with_our_costs_and_no_plaintext() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_phc(&phc, "correct horse battery").unwrap());
        assert!(!verify_phc(&phc, "correct horse batterz").unwrap());
        assert_ne!(phc, hash("correct horse battery").unwrap(), "salts differ");
    }

    #[tokio::test]
    async fn failures_back_off_exponentially_per_source_and_success_resets() {
        let (svc, clock, _dir) = service().await;
        let me: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(matches!(
            svc.verify(me, "anything".into()).await,
            Err(Error::NotSet)
        ));
        svc.set("open sesame 1".into()).await.unwrap();

        assert!(matches!(
            svc.verify(me, "wrong".into()).await,
            Err(Error::Wrong)
        ));
        // Locked for 1 s: even the right passphrase is refused without being checked.
        match svc.verify(me, "open sesame 1".into()).await {
            Err(Error::Backoff(wait)) => assert_eq!(wait, Duration::from_secs(1)),
            other => panic!("expected backoff, got {other:?}"),
        }
        // Another source is not affected.
        assert!(matches!(
            svc.verify(other, "wrong".into()).await,
            Err(Error::Wrong)
        ));

        clock.advance(Duration::from_secs(1));
        assert!(matches!(
            svc.verify(me, "wrong again".into()).await,
            Err(Error::Wrong)
        ));
        match svc.verify(me, "open sesame 1".into()).await {
            Err(Error::Backoff(wait)) => assert_eq!(wait, Duration::from_secs(2)),
            other => panic!("expected backoff, got {other:?}"),
        }
        clock.advance(Duration::from_secs(2));
        assert!(matches!(
            svc.verify(me, "nope".into()).await,
            Err(Error::Wrong)
        ));
        match svc.verify(me, "x".into()).await {
            Err(Error::Backoff(wait)) => assert_eq!(wait, Duration::from_secs(4)),
            other => panic!("expected backoff, got {other:?}"),
        }
        clock.advance(Duration::from_secs(4));
        svc.verify(me, "open sesame 1".into()).await.unwrap();
        // Success forgot the failures: the next failure locks for 1 s again.
        assert!(matches!(
            svc.verify(me, "wrong".into()).await,
            Err(Error::Wrong)
        ));
        match svc.verify(me, "x".into()).await {
            Err(Error::Backoff(wait)) => assert_eq!(wait, Duration::from_secs(1)),
            other => panic!("expected backoff, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn short_and_huge_passphrases_are_refused_and_nothing_is_stored() {
        let (svc, _, _dir) = service().await;
        assert!(matches!(
            svc.set("short".into()).await,
            Err(Error::BadLength)
        ));
        assert!(matches!(
            svc.set("x".repeat(MAX_LEN + 1)).await,
            Err(Error::BadLength)
        ));
        assert!(!svc.is_set().await.unwrap());
    }
}
