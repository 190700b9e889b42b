//! Several instances on one database (PostgreSQL): each follows the shared audit log (the store
//! publishes every committed entry, whichever instance wrote it) and brings what it holds in
//! memory up to date — the broker's waiters, rules and expirer, and the token cache. Nothing here
//! decides anything: every decision is a conditional write in the database, so two instances
//! racing (two approvals, a timeout and an approval) settle in the database, once.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;

use crate::auth::Authenticator;
use crate::broker::Broker;
use crate::store::Store;

/// Follows the other instances' writes until the broker stops. Does nothing on a store no other
/// instance can write to.
pub fn spawn(store: &Store, broker: Arc<Broker>, auth: Arc<Authenticator>) {
    if !store.is_shared() {
        return;
    }
    let mut entries = store.subscribe_audit();
    tokio::spawn(async move {
        let mut stopped = Box::pin(broker.until_stopped());
        loop {
            let next = tokio::select! {
                _ = &mut stopped => return,
                next = entries.recv() => next,
            };
            match next {
                Ok(row) => {
                    // What is already here is handled together (see `Broker::heard`).
                    let mut rows = vec![row];
                    while let Ok(more) = entries.try_recv() {
                        rows.push(more);
                    }
                    broker.heard(&rows).await;
                    for row in &rows {
                        auth.heard(row).await;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "fell behind the shared audit log; catching up");
                    broker.resync().await;
                    auth.revalidate().await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}
