//! The owner passphrase: stored as an Argon2id PHC string, verified slowly on purpose, and
//! guessing bounded three ways: a failure budget per source with exponential backoff (every
//! loopback address is one source, since any of 127.0.0.0/8 reaches a loopback listener; IPv6 by
//! /64), taken *before* hashing so concurrent guesses cannot all be hashed; at most
//! [`MAX_CONCURRENT`] verifications at once (each costs 64 MiB); and a global rate.
//!
//! Used by the web inbox sign-in and the OAuth consent page; set through the admin API. The
//! passphrase itself is never stored or logged.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::api::events;
use crate::clock::{Clock, Timestamp};
use crate::store::web::Failures;
use crate::store::{self, NewAudit, Store, setting};

/// Argon2id memory cost in KiB (64 MiB): with three passes this puts one verification well above
/// 50 ms on current hardware, so guessing is slow even before the backoff.
pub const M_COST_KIB: u32 = 64 * 1024;
/// Argon2id passes.
pub const T_COST: u32 = 3;
/// Shortest accepted passphrase, in characters.
pub const MIN_LEN: usize = 12;
/// Verifications running at once; the rest are refused with a short `Retry-After`.
pub const MAX_CONCURRENT: usize = 2;
/// Verifications in any [`GLOBAL_WINDOW`], from all sources together.
pub const GLOBAL_MAX: u32 = 30;
/// The window of the global rate.
const GLOBAL_WINDOW: Duration = Duration::from_secs(60);
/// Passphrases too common to accept, compared without case or spaces.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "passw0rd",
    "123456789012",
    "1234567890123",
    "qwertyuiopas",
    "qwertyuiop123",
    "iloveyou1234",
    "letmein12345",
    "administrator",
    "welcome12345",
    "trustno1trustno1",
    "abcdefghijkl",
    "passwordpassword",
    "changemechangeme",
    "agentgateagentgate",
    "000000000000",
    "111111111111",
    "aaaaaaaaaaaa",
];
/// Longest accepted passphrase, in bytes (Argon2 input stays bounded).
pub const MAX_LEN: usize = 1024;
/// The first failure from a source locks it for this long; each further one doubles it.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest lock-out.
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// Tries at claiming a source's budget when other guesses (on any instance) race for it.
const CLAIM_TRIES: usize = 8;

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
    #[error("a passphrase has {MIN_LEN} to {MAX_LEN} characters")]
    BadLength,
    /// The new passphrase is trivially guessable.
    #[error("that passphrase is too easy to guess: {0}")]
    Weak(&'static str),
    /// Hashing failed (the OS random generator for the salt, or a corrupt stored hash).
    #[error("passphrase hashing failed: {0}")]
    Hash(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Sets and verifies the owner passphrase.
pub struct Passphrases {
    store: Store,
    clock: Clock,
    running: tokio::sync::Semaphore,
    /// Start of the current global window and the verifications in it.
    global: Mutex<(Timestamp, u32)>,
}

/// The lock after `failures` failures: 1 s, doubling, at most [`BACKOFF_MAX`].
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    BACKOFF_BASE.saturating_mul(1u32 << exp).min(BACKOFF_MAX)
}

/// Whose failure budget a guess spends: all of loopback is one source, IPv6 counts by /64.
fn budget_key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(v4) if v4.is_loopback() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => budget_key(IpAddr::V4(v4)),
            None if v6.is_loopback() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        other => other,
    }
}

/// Refuses passphrases that are short, blank or among the most common.
pub fn check_strength(passphrase: &str) -> Result<(), Error> {
    if passphrase.chars().count() < MIN_LEN || passphrase.len() > MAX_LEN {
        return Err(Error::BadLength);
    }
    if passphrase.trim().is_empty() {
        return Err(Error::Weak("it is only whitespace"));
    }
    let folded: String = passphrase
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    let mut distinct: Vec<char> = folded.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Err(Error::Weak("it repeats too few characters"));
    }
    if COMMON.iter().any(|c| folded == *c) {
        return Err(Error::Weak("it is one of the most common passphrases"));
    }
    Ok(())
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
            running: tokio::sync::Semaphore::new(MAX_CONCURRENT),
            global: Mutex::new((Timestamp::from_millis(0), 0)),
        }
    }

    /// Replaces the owner passphrase (`by` names who, for the audit log). Returns when it was
    /// stored.
    pub async fn set(&self, passphrase: String, by: &str) -> Result<Timestamp, Error> {
        check_strength(&passphrase)?;
        let phc = tokio::task::spawn_blocking(move || hash(&passphrase))
            .await
            .map_err(|e| Error::Hash(e.to_string()))??;
        let now = self.clock.now();
        let changed = self.is_set().await?;
        let audit = vec![NewAudit::of(
            now,
            if changed {
                events::PASSPHRASE_CHANGED
            } else {
                events::PASSPHRASE_SET
            },
            None,
            serde_json::json!({"by": by}),
        )];
        self.store
            .put_setting(setting::PASSPHRASE, &phc, now, audit)
            .await?;
        Ok(now)
    }

    /// Whether a passphrase has been set.
    pub async fn is_set(&self) -> Result<bool, Error> {
        Ok(self.store.setting(setting::PASSPHRASE).await?.is_some())
    }

    /// Verifies `candidate` for a request from `source`. The source's budget is spent before
    /// hashing (a failure is recorded first and forgotten on success), so a source that failed
    /// recently, or has a guess in flight, is refused without hashing until its backoff has
    /// passed; each failure doubles the backoff. Beyond [`MAX_CONCURRENT`] verifications at once,
    /// or [`GLOBAL_MAX`] a minute, guesses are refused too.
    pub async fn verify(&self, source: IpAddr, candidate: String) -> Result<(), Error> {
        let source = budget_key(source).to_string();
        let phc = self
            .store
            .setting(setting::PASSPHRASE)
            .await?
            .ok_or(Error::NotSet)?;
        let Ok(_slot) = self.running.try_acquire() else {
            return Err(Error::Backoff(Duration::from_secs(1)));
        };
        let now = self.clock.now();
        self.take_budget(&source, now).await?;
        let ok = if candidate.len() > MAX_LEN {
            false
        } else {
            tokio::task::spawn_blocking(move || verify_phc(&phc, &candidate))
                .await
                .map_err(|e| Error::Hash(e.to_string()))??
        };
        if ok {
            self.store.clear_passphrase_failures(&source, now).await?;
            Ok(())
        } else {
            // The lock taken before hashing counts from the answer too: a slow hash must not
            // shorten the wait the person (or the guesser) sees.
            self.restamp(&source, self.clock.now()).await?;
            Err(Error::Wrong)
        }
    }

    /// Restarts a source's current backoff from `now` (its failure count unchanged).
    async fn restamp(&self, source: &str, now: Timestamp) -> Result<(), Error> {
        if let Some(seen) = self.store.passphrase_failures(source).await? {
            let until = now.plus(backoff(failure_count(seen.count)));
            if until > seen.locked_until {
                let next = Failures {
                    count: seen.count,
                    locked_until: until,
                };
                // Losing this race means another guess moved the lock further already.
                self.store
                    .swap_passphrase_failures(source, Some(seen), next)
                    .await?;
            }
        }
        Ok(())
    }

    fn take_global(&self, now: Timestamp) -> Result<(), Error> {
        let mut global = self
            .global
            .lock()
            .map_err(|_| Error::Hash("poisoned".into()))?;
        let (start, count) = *global;
        if now.since(start) >= GLOBAL_WINDOW || now < start {
            *global = (now, 1);
            return Ok(());
        }
        if count >= GLOBAL_MAX {
            return Err(Error::Backoff(
                GLOBAL_WINDOW.saturating_sub(now.since(start)),
            ));
        }
        global.1 = count + 1;
        Ok(())
    }

    /// Refuses a locked source, then a full global rate; otherwise records the failure this guess
    /// will be if wrong. The budget is in the store, claimed by compare-and-set, so it holds
    /// across restarts and across every instance sharing the database.
    async fn take_budget(&self, source: &str, now: Timestamp) -> Result<(), Error> {
        let mut counted = false;
        for _ in 0..CLAIM_TRIES {
            let seen = self.store.passphrase_failures(source).await?;
            if let Some(locked) = seen.filter(|f| f.locked_until > now) {
                return Err(Error::Backoff(locked.locked_until.since(now)));
            }
            // Only a guess that will be hashed counts against the global rate.
            if !counted {
                self.take_global(now)?;
                counted = true;
            }
            let count = seen.map_or(0, |f| f.count) + 1;
            let next = Failures {
                count,
                locked_until: now.plus(backoff(failure_count(count))),
            };
            if self
                .store
                .swap_passphrase_failures(source, seen, next)
                .await?
            {
                return Ok(());
            }
        }
        // Others keep winning: they hold the budget now.
        Err(Error::Backoff(BACKOFF_BASE))
    }
}

/// A stored failure count as the backoff's exponent input.
fn failure_count(count: i64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn service() -> (Passphrases, Clock, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::store::DatabaseUrl::Sqlite(dir.path().join("p.db"));
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
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(matches!(
            svc.verify(me, "anything".into()).await,
            Err(Error::NotSet)
        ));
        svc.set("open sesame 1 2 3".into(), "test").await.unwrap();

        assert!(matches!(
            svc.verify(me, "wrong".into()).await,
            Err(Error::Wrong)
        ));
        // Locked for 1 s: even the right passphrase is refused without being checked.
        match svc.verify(me, "open sesame 1 2 3".into()).await {
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
        match svc.verify(me, "open sesame 1 2 3".into()).await {
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
        svc.verify(me, "open sesame 1 2 3".into()).await.unwrap();
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
    async fn every_loopback_address_spends_one_budget_and_concurrent_guesses_are_not_all_hashed() {
        let (svc, _clock, _dir) = service().await;
        svc.set("open sesame 1 2 3".into(), "test").await.unwrap();
        let first: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(matches!(
            svc.verify(first, "wrong".into()).await,
            Err(Error::Wrong)
        ));
        for fresh in ["127.0.0.2", "127.9.8.7", "::1", "::ffff:127.0.0.5"] {
            let ip: IpAddr = fresh.parse().unwrap();
            assert!(
                matches!(svc.verify(ip, "wrong".into()).await, Err(Error::Backoff(_))),
                "{fresh} shares the loopback budget"
            );
        }
        // Refused guesses do not use up the global rate: after 100 of them, another source is
        // still checked.
        for _ in 0..100 {
            assert!(matches!(
                svc.verify(first, "wrong".into()).await,
                Err(Error::Backoff(_))
            ));
        }
        let elsewhere: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(matches!(
            svc.verify(elsewhere, "wrong".into()).await,
            Err(Error::Wrong)
        ));
        // 24 guesses at once from one source: its budget is taken before hashing, so exactly
        // one is hashed; the others are refused at once.
        let svc = std::sync::Arc::new(svc);
        let burst = |addr: fn(u8) -> IpAddr| {
            let svc = svc.clone();
            async move {
                let tasks: Vec<_> = (0..24u8)
                    .map(|i| {
                        let svc = svc.clone();
                        tokio::spawn(async move { svc.verify(addr(i), "wrong".into()).await })
                    })
                    .collect();
                let mut wrong = 0;
                for t in tasks {
                    if matches!(t.await.unwrap(), Err(Error::Wrong)) {
                        wrong += 1;
                    }
                }
                wrong
            }
        };
        let same = burst(|_| IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1))).await;
        assert_eq!(same, 1);
        // From 24 different sources at once: at most MAX_CONCURRENT hash at a time, the rest are
        // told to retry (24 Argon2id hashes at once took the daemon to 1.6 GB before).
        let many = burst(|i| IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, i))).await;
        assert!(many < 24, "{many} of 24 were hashed");
    }

    #[test]
    fn weak_passphrases_are_refused() {
        for weak in [
            "            ",
            "short",
            "aaaaaaaaaaaaaaaa",
            "Password 123",
            "pass word 1 2 3",
            "abababababab",
        ] {
            assert!(check_strength(weak).is_err(), "{weak:?}");
        }
        check_strength("violet tractor 42 sundial").unwrap();
    }

    #[tokio::test]
    async fn short_and_huge_passphrases_are_refused_and_nothing_is_stored() {
        let (svc, _, _dir) = service().await;
        assert!(matches!(
            svc.set("short".into(), "test").await,
            Err(Error::BadLength)
        ));
        assert!(matches!(
            svc.set("x".repeat(MAX_LEN + 1), "test").await,
            Err(Error::BadLength)
        ));
        assert!(!svc.is_set().await.unwrap());
    }
}
