//! Timeouts: the expirer task sleeps until the earliest deadline and times out what is due
//! (an unanswered request is denied, and says so).

use super::*;

impl Broker {
    /// Starts the task that times out pending requests at their deadline. It also expires, at
    /// once, what passed its deadline while the daemon was down.
    pub fn spawn_expirer(self: &Arc<Self>) {
        let broker = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(b) = broker.upgrade() else { return };
                // A request created from here on wakes the next sleep at once (its permit is kept).
                b.expirer_wakes_at.store(i64::MIN, Ordering::SeqCst);
                if let Err(err) = b.expire_due().await {
                    tracing::error!(error = %err, "expiring pending requests failed");
                }
                let wait = match b.store.next_deadline().await {
                    Ok(Some(at)) => at.since(b.clock.now()).min(Duration::from_secs(60)),
                    _ => Duration::from_secs(60),
                };
                let wait = wait.max(Duration::from_millis(5));
                b.expirer_wakes_at
                    .store(b.clock.now().plus(wait).as_millis(), Ordering::SeqCst);
                let stopped = b.until_stopped();
                tokio::select! {
                    _ = b.wake_expirer.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = b.clock.moved() => {}
                    _ = stopped => {}
                }
                if *b.stopping.borrow() {
                    return;
                }
            }
        });
    }

    /// Times out every pending request whose deadline has passed. Returns how many.
    pub async fn expire_due(&self) -> Result<usize, Error> {
        let due = self.store.due_permissions(self.clock.now()).await?;
        let mut n = 0;
        for id in due {
            if self.expire(&id).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    pub(super) async fn expire(&self, id: &str) -> Result<bool, Error> {
        let now = self.clock.now();
        let by = DecidedBy {
            source: Source::Timeout,
            rule: None,
            approver: None,
            approvers: Vec::new(),
            auto_resolved: false,
            reason: Some("nobody answered before the deadline; the outcome is deny".into()),
        };
        self.settle(id, Status::Timeout, &by, None, &[], now).await
    }
}
