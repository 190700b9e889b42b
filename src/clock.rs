//! The only place that reads wall time. Everything else takes a [`Clock`] so tests can move time.
//!
//! Timestamps are Unix milliseconds ([`Timestamp`]); on the wire they are RFC 3339 strings.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From Unix milliseconds, as stored.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Unix milliseconds, as stored.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This time plus `d`, saturating far in the future.
    pub fn plus(self, d: Duration) -> Timestamp {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    fn to_system_time(self) -> SystemTime {
        match u64::try_from(self.0) {
            Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
            Err(_) => UNIX_EPOCH,
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, to the second.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&humantime::format_rfc3339_seconds(self.to_system_time()), f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let time = humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)?;
        let ms = time
            .duration_since(UNIX_EPOCH)
            .map_err(serde::de::Error::custom)?
            .as_millis();
        Ok(Timestamp(
            i64::try_from(ms).map_err(serde::de::Error::custom)?,
        ))
    }
}

/// Where "now" comes from.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The system's wall clock.
    System,
    /// A clock that moves only when told to: tests use it to expire tokens and backoffs.
    Manual(Arc<Manual>),
}

/// A manual clock's time, and the tasks to wake when it moves.
#[derive(Debug, Default)]
pub struct Manual {
    ms: AtomicI64,
    moved: tokio::sync::Notify,
}

impl Clock {
    /// A manual clock starting at `start`.
    pub fn manual(start: Timestamp) -> Clock {
        Clock::Manual(Arc::new(Manual {
            ms: AtomicI64::new(start.0),
            moved: tokio::sync::Notify::new(),
        }))
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        match self {
            #[allow(clippy::disallowed_methods)] // the one permitted reader of wall time
            Clock::System => {
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0);
                Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
            }
            Clock::Manual(m) => Timestamp(m.ms.load(Ordering::SeqCst)),
        }
    }

    /// Moves a manual clock forward; the system clock cannot be moved and ignores this.
    /// Sleepers waiting on [`Clock::moved`] are woken, as real time would have woken them.
    pub fn advance(&self, d: Duration) {
        if let Clock::Manual(m) = self {
            let delta = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            m.ms.fetch_add(delta, Ordering::SeqCst);
            m.moved.notify_waiters();
        }
    }

    /// Resolves when a manual clock is moved; never for the system clock (whose sleepers wake
    /// with real time). A task sleeping until a clock time also waits on this.
    pub async fn moved(&self) {
        match self {
            Clock::System => std::future::pending().await,
            Clock::Manual(m) => m.moved.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_rfc3339_and_parse_back() {
        let t = Timestamp::from_millis(1_790_000_000_000);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-09-21T14:13:20Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }

    #[tokio::test]
    async fn moving_a_manual_clock_wakes_who_waits_on_it() {
        let clock = Clock::manual(Timestamp::from_millis(0));
        let waiter = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.moved().await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = Clock::manual(Timestamp::from_millis(1000));
        assert_eq!(clock.now().as_millis(), 1000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now().as_millis(), 3000);
        assert_eq!(
            clock.now().since(Timestamp::from_millis(500)),
            Duration::from_millis(2500)
        );
        assert_eq!(Timestamp::from_millis(0).since(clock.now()), Duration::ZERO);
    }
}
