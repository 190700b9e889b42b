//! Following the shared audit log: every instance publishes every committed entry to its own
//! event streams (SSE, the broker's reactions to other instances' writes), once and in `seq`
//! order, whichever instance wrote it.
//!
//! A `LISTEN` connection wakes the reader when a commit announces a new head; the reader then
//! reads every entry after the last it published. A notification can be lost (the listening
//! connection dropped and was re-established), so the reader also looks once a second: nothing
//! is missed, it is at worst a second late.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use super::CHANNEL;
use crate::store::AuditRow;

/// How often the reader looks without being woken.
const SAFETY_NET: Duration = Duration::from_secs(1);
/// Entries read at a time.
const PAGE: i64 = 1000;
/// Longest wait between attempts to reach a database that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Publishes every entry after `last` to `events` until `stop`.
pub(super) async fn follow(
    pool: PgPool,
    events: broadcast::Sender<Arc<AuditRow>>,
    mut last: i64,
    stop: CancellationToken,
) {
    let woken = Arc::new(Notify::new());
    tokio::spawn(listen(pool.clone(), woken.clone(), stop.clone()));
    let mut backoff = Duration::from_millis(100);
    loop {
        match read_after(&pool, last).await {
            Ok(rows) => {
                backoff = Duration::from_millis(100);
                let full = rows.len() as i64 == PAGE;
                for row in rows {
                    last = row.seq;
                    let _ = events.send(Arc::new(row));
                }
                if full {
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the audit log; trying again");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = woken.notified() => {}
            _ = tokio::time::sleep(SAFETY_NET) => {}
        }
    }
}

async fn read_after(pool: &PgPool, last: i64) -> Result<Vec<AuditRow>, crate::store::Error> {
    let rows = sqlx::query(
        "SELECT seq, at, event, subject, data, prev_hash, hash FROM audit \
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(last)
    .bind(PAGE)
    .fetch_all(pool)
    .await
    .map_err(crate::store::Error::db)?;
    rows.iter().map(super::column::decode).collect()
}

/// Wakes the reader on every announcement, and after every reconnection (announcements may have
/// been missed while the connection was down).
async fn listen(pool: PgPool, woken: Arc<Notify>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = stop.cancelled() => return,
            l = listener => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for audit entries; trying again");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(100);
        woken.notify_one();
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                n = listener.try_recv() => n,
            };
            match next {
                // Announced, or reconnected after a loss: either way, look.
                Ok(_) => woken.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the audit announcements; reconnecting");
                    woken.notify_one();
                    break;
                }
            }
        }
    }
}
