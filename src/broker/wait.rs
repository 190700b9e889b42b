//! Waiting for a decision: one long-poll (`wait`), the create-then-wait every surface uses
//! (`ask_and_wait`), and the watches waiters park on (`Interest`, woken by `settle`).

use super::*;

/// What a waiter does after looking at its request.
pub(super) enum Look {
    Done(Box<PermissionView>),
    Park(tokio::time::Instant),
}

/// A waiter's interest in one request. When the waiter is done (answered, timed out, or its
/// client went away), the request's watch is forgotten if nobody else is watching it, so the
/// waiter map holds only requests that someone waits on.
pub(super) struct Interest<'a> {
    broker: &'a Broker,
    id: &'a str,
    rx: Option<watch::Receiver<()>>,
}

impl<'a> Interest<'a> {
    fn new(broker: &'a Broker, id: &'a str) -> Self {
        Interest {
            broker,
            id,
            rx: Some(broker.watch(id)),
        }
    }

    /// Resolves when the request may have changed (or its watch was dropped: look again).
    async fn changed(&mut self) {
        if let Some(rx) = &mut self.rx {
            let _ = rx.changed().await;
        }
    }

    /// Watches afresh after a change (a decision takes the old watch out of the map).
    fn renew(&mut self) {
        self.rx = None;
        self.rx = Some(self.broker.watch(self.id));
    }
}

impl Drop for Interest<'_> {
    fn drop(&mut self) {
        self.rx = None;
        let mut waiters = self
            .broker
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if waiters
            .get(self.id)
            .is_some_and(|s| s.receiver_count() == 0)
        {
            waiters.remove(self.id);
        }
    }
}

impl Broker {
    /// An agent asks and waits for the decision: up to `max`, or with `None` until it is decided
    /// (by a person, a rule or its timeout) or the daemon stops. Returns the request as it then
    /// stands, pending if the wait ran out.
    pub async fn ask_and_wait(
        &self,
        who: &Principal,
        request: NewPermission,
        max: Option<Duration>,
    ) -> Result<PermissionView, Error> {
        // Boxed: a long wait parks here, and should not carry the creation's state with it.
        let mut view = Box::pin(self.create(who, request)).await?;
        let mut left = max;
        while view.status == Status::Pending
            && left.is_none_or(|l| !l.is_zero())
            && !*self.stopping().borrow()
        {
            let step = left.map_or(MAX_WAIT, |l| l.min(MAX_WAIT));
            view = self.wait(who, &view.id, step).await?;
            left = left.map(|l| l.saturating_sub(step));
        }
        Ok(view)
    }

    /// An asker that gives up after `patience` asks and waits: the request times out (and is
    /// recorded as `timeout`) by then, and the answer is the request as it then stands.
    pub async fn ask_within(
        &self,
        who: &Principal,
        request: NewPermission,
        patience: Duration,
    ) -> Result<PermissionView, Error> {
        let mut view = Box::pin(self.create_within(who, request, Some(patience))).await?;
        // A little past the deadline, so the expirer's `timeout` is what the asker hears.
        let until = tokio::time::Instant::now() + patience + Duration::from_secs(2);
        while view.status == Status::Pending && !*self.stopping().borrow() {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            view = self.wait(who, &view.id, left).await?;
        }
        Ok(view)
    }

    /// Waits up to `max` (capped at [`MAX_WAIT`]) for `id` to be decided; returns it either way.
    /// A waiter parks holding only its watch receiver and a timer, so 10,000 of them stay small;
    /// everything else is looked up again when it wakes.
    pub async fn wait(
        &self,
        who: &Principal,
        id: &str,
        max: Duration,
    ) -> Result<PermissionView, Error> {
        let until = tokio::time::Instant::now() + max.min(MAX_WAIT);
        // Check existence and access before registering interest, so unknown ids leave nothing
        // behind in the waiter map. (No view is kept in this frame: it would be parked with us.)
        if let Look::Done(view) = Box::pin(self.look(who, id, until)).await? {
            return Ok(*view);
        }
        // Registered before each look, so a decision made after the look still wakes us.
        let mut interest = Interest::new(self, id);
        loop {
            let wake = match Box::pin(self.look(who, id, until)).await? {
                Look::Done(view) => return Ok(*view),
                Look::Park(wake) => wake,
            };
            if tokio::time::timeout_at(wake, interest.changed())
                .await
                .is_ok()
            {
                interest.renew();
            }
        }
    }

    /// One look at a waited-on request: done (decided, the wait is over or the daemon is
    /// stopping), or when to look again at the latest: at the end of the wait, or just after the
    /// request's own deadline (to report its timeout).
    pub(super) async fn look(
        &self,
        who: &Principal,
        id: &str,
        until: tokio::time::Instant,
    ) -> Result<Look, Error> {
        // The row alone says whether to park; the view (with its suggested rules) is built only
        // for the answer.
        let row = self.load_for(who, id).await?;
        let now = tokio::time::Instant::now();
        if row.status != Status::Pending || now >= until || *self.stopping.borrow() {
            return Ok(Look::Done(Box::new(self.view(row).await?)));
        }
        Ok(Look::Park(match row.deadline {
            Some(deadline) => {
                let left = deadline.since(self.clock.now()) + Duration::from_millis(5);
                until.min(now + left)
            }
            None => until,
        }))
    }

    /// Requests that parked waiters are watching (each is forgotten once nobody watches it).
    pub fn watched(&self) -> usize {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub(super) fn watch(&self, id: &str) -> watch::Receiver<()> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    pub(super) fn wake(&self, id: &str) {
        let sender = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(s) = sender {
            let _ = s.send(());
        }
    }
}
