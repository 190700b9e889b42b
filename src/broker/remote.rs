//! Other instances' writes (a shared PostgreSQL database): the broker hears every committed
//! audit entry, its own included, and brings what it holds in memory up to date — waiters on a
//! request another instance decided are released, rules another instance added or deleted are in
//! force, and the expirer learns of deadlines of requests created elsewhere. What it hears of its
//! own writes changes nothing.

use super::*;

impl Broker {
    /// Acts on one committed audit entry, whoever wrote it.
    pub async fn heard(&self, row: &AuditRow) {
        match row.event.as_str() {
            events::PERMISSION_DECIDED => {
                if let Some(id) = &row.subject {
                    self.wake(id);
                }
            }
            events::PERMISSION_CREATED => {
                let deadline = serde_json::from_str::<serde_json::Value>(&row.data)
                    .ok()
                    .and_then(|d| serde_json::from_value::<Timestamp>(d["deadline"].clone()).ok());
                if let Some(at) = deadline {
                    self.deadline_added(at);
                }
            }
            events::RULE_CREATED | events::RULE_DELETED => {
                if let Err(e) = self.reload_policy().await {
                    tracing::error!(error = %e, "cannot load the rules another instance changed");
                }
            }
            _ => {}
        }
    }

    /// Catches up after missing entries (the stream lagged): reloads the rules, lets every
    /// waiter look at its request again and the expirer at the deadlines.
    pub async fn resync(&self) {
        if let Err(e) = self.reload_policy().await {
            tracing::error!(error = %e, "cannot reload the rules");
        }
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|p| p.into_inner()));
        for sender in waiters.values() {
            let _ = sender.send(());
        }
        self.wake_expirer.notify_one();
    }

    /// Wakes the expirer if `at` comes before it would wake by itself.
    pub(super) fn deadline_added(&self, at: Timestamp) {
        if at.as_millis() < self.expirer_wakes_at.load(Ordering::SeqCst) {
            self.wake_expirer.notify_one();
        }
    }
}
