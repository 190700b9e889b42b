//! Other instances' writes (a shared PostgreSQL database): the broker hears every committed
//! audit entry, its own included, and brings what it holds in memory up to date — waiters on a
//! request another instance decided are released, rules another instance added or deleted are in
//! force, and the expirer learns of deadlines of requests created elsewhere. What it hears of its
//! own writes changes nothing.

use super::*;

impl Broker {
    /// Acts on committed audit entries, whoever wrote them, in the order given. Rules change
    /// first: a decision and the rule it remembered are committed together, and the waiter the
    /// decision releases may ask again at once, so the rule must already be in force.
    pub async fn heard(&self, rows: &[Arc<AuditRow>]) {
        let rules_changed = rows
            .iter()
            .any(|r| r.event == events::RULE_CREATED || r.event == events::RULE_DELETED);
        if rules_changed && let Err(e) = self.reload_policy().await {
            tracing::error!(error = %e, "cannot load the rules another instance changed");
        }
        for row in rows {
            match row.event.as_str() {
                events::PERMISSION_DECIDED => {
                    if let Some(id) = &row.subject {
                        self.wake(id);
                    }
                }
                events::PERMISSION_CREATED => {
                    if let Some(at) = deadline_of(row) {
                        self.deadline_added(at);
                    }
                }
                _ => {}
            }
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

/// The deadline a `permission.created` entry records, if any.
fn deadline_of(row: &AuditRow) -> Option<Timestamp> {
    let data: serde_json::Value = serde_json::from_str(&row.data).ok()?;
    serde_json::from_value(data.get("deadline")?.clone()).ok()
}
