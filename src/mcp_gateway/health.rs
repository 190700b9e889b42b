//! Whether an upstream may be started now.

use std::sync::Arc;
use std::time::Duration;

/// Consecutive start failures of one upstream, and when the next start may be tried: an
/// upstream that cannot start is retried after 250 ms, doubling to at most 30 s, not by every
/// client at once.
#[derive(Clone, Default)]
pub struct Health(Arc<std::sync::Mutex<(u32, Option<tokio::time::Instant>)>>);

impl Health {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(30);

    pub(super) fn waiting(&self) -> Option<Duration> {
        let (_, retry_at) = *self.0.lock().ok()?;
        let left = retry_at?.saturating_duration_since(tokio::time::Instant::now());
        (!left.is_zero()).then_some(left)
    }

    pub(super) fn failures(&self) -> u32 {
        self.0.lock().map_or(0, |h| h.0)
    }

    pub(super) fn record(&self, started: bool) {
        let Ok(mut h) = self.0.lock() else { return };
        if started {
            *h = (0, None);
            return;
        }
        h.0 = h.0.saturating_add(1);
        let wait = Self::FIRST
            .saturating_mul(1 << h.0.saturating_sub(1).min(16))
            .min(Self::MAX);
        h.1 = Some(tokio::time::Instant::now() + wait);
    }
}
