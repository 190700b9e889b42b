//! The PostgreSQL backend: one database that several instances share. The statements are
//! `store/sql/`, shared with SQLite; this file holds what differs:
//!
//! - every writer batch takes one advisory transaction lock, the audit chain's, so appends from
//!   every instance form one chain and `seq` order is commit order; the head is re-read under
//!   the lock (another instance may have moved it);
//! - each commit that appended announces the new head with `NOTIFY`, and `follow` (one task per
//!   instance, `LISTEN`ing) reads every entry in `seq` order and publishes it to this instance's
//!   event streams, whoever wrote it;
//! - start-up: migrations under sqlx's advisory lock (instances starting together do not race),
//!   and a refusal, with the reason, of a wrong URL, password or database.

mod follow;

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::chain::{self, AuditKey, Head};
use super::{AuditRow, Error};

#[path = "../sql/audit.rs"]
#[allow(clippy::duplicate_mod)] // the statements both engines accept, compiled per backend
mod audit;
#[path = "../sql/broker.rs"]
#[allow(clippy::duplicate_mod)] // the statements both engines accept, compiled per backend
mod broker;
#[path = "../sql/column.rs"]
#[allow(clippy::duplicate_mod)] // the statements both engines accept, compiled per backend
mod column;
#[path = "../sql/oauth.rs"]
#[allow(clippy::duplicate_mod)] // the statements both engines accept, compiled per backend
mod oauth;
#[path = "../sql/tokens.rs"]
#[allow(clippy::duplicate_mod)] // the statements both engines accept, compiled per backend
mod tokens;
#[path = "../sql/web.rs"]
#[allow(clippy::duplicate_mod)] // the statements both engines accept, compiled per backend
mod web;
#[path = "../sql/writer.rs"]
#[allow(clippy::duplicate_mod)] // the statements both engines accept, compiled per backend
mod writer;

type Db = sqlx::Postgres;
type Conn = sqlx::PgConnection;
type DbRow = sqlx::postgres::PgRow;
type This = PgStore;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock every instance's writer holds while it appends to the audit chain.
#[cfg_attr(not(test), allow(dead_code))] // spelled out in BEGIN_BATCH; a test holds them equal
const CHAIN_LOCK: i64 = 0x6167_656e_7467_6174; // "agentgat"
/// A batch's beginning: its transaction, then the chain's lock ([`CHAIN_LOCK`], in decimal).
const BEGIN_BATCH: &str = "BEGIN; SELECT pg_advisory_xact_lock(7018690069353947508); \
     SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
/// The channel commits announce new audit entries on.
const CHANNEL: &str = "agentgate_audit";
/// How long a request waits for a free connection before it is refused (503).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per instance.
const MAX_CONNECTIONS: u32 = 16;

/// A pool of connections to one PostgreSQL database, and this instance's follower of its audit
/// log.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// Runs audited writes with group commit (see `sql/writer.rs`).
    writer: writer::Writer,
    /// Keyed audit mode's key, once set: the writer signs every head it records with it.
    audit_key: AuditKey,
    /// Every committed audit entry, from any instance, for the event streams.
    events: tokio::sync::broadcast::Sender<std::sync::Arc<AuditRow>>,
    /// The entries this instance wrote, for what must happen once per entry (notifications).
    own: tokio::sync::broadcast::Sender<std::sync::Arc<AuditRow>>,
    /// Stops the follower when the last clone of the store is dropped.
    _follower: std::sync::Arc<DropGuard>,
}

impl PgStore {
    /// Connects, migrates (under sqlx's advisory lock) and starts following the audit log.
    pub async fn open(options: &PgConnectOptions) -> Result<PgStore, Error> {
        // Nothing waits on the database for ever: a lock held by a stuck peer or a statement on
        // a hung server fails (503, try again) instead of holding a request.
        let options = options.clone().application_name("agentgate").options([
            ("lock_timeout", "5s"),
            ("statement_timeout", "30s"),
            ("idle_in_transaction_session_timeout", "60s"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(refused)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| super::migration_failed(e, &MIGRATOR))?;
        let audit_key = AuditKey::default();
        let writer = writer::Writer::start(&pool, audit_key.clone()).await?;
        let (events, _) = tokio::sync::broadcast::channel(4096);
        let (own, _) = tokio::sync::broadcast::channel(4096);
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit")
            .fetch_one(&pool)
            .await
            .map_err(Error::db)?;
        let stop = CancellationToken::new();
        tokio::spawn(follow::follow(
            pool.clone(),
            events.clone(),
            head.unwrap_or(0),
            stop.clone(),
        ));
        Ok(PgStore {
            pool,
            writer,
            audit_key,
            events,
            own,
            _follower: std::sync::Arc::new(stop.drop_guard()),
        })
    }

    /// Every committed audit entry, in `seq` order, from the follower.
    pub(super) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<AuditRow>> {
        self.events.subscribe()
    }

    /// The entries this instance wrote, once committed.
    pub(super) fn subscribe_own(
        &self,
    ) -> tokio::sync::broadcast::Receiver<std::sync::Arc<AuditRow>> {
        self.own.subscribe()
    }

    /// Tells what follows this instance's own writes. The event streams hear of them from the
    /// follower, with every other instance's, once and in order.
    pub(super) fn publish(&self, rows: &[AuditRow]) {
        for row in rows {
            let _ = self.own.send(std::sync::Arc::new(row.clone()));
        }
    }

    /// A plain transaction: row locks and conditional updates keep these writes correct when
    /// instances race.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Db>, Error> {
        self.pool.begin().await.map_err(Error::db)
    }
}

/// A connection refused at start-up, said plainly: a wrong password and a missing database by
/// their SQLSTATE.
fn refused(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e {
        let why = match db.code().as_deref() {
            Some("28P01") | Some("28000") => Some("the server refused the user or password"),
            Some("3D000") => Some("the database does not exist (create it first)"),
            _ => None,
        };
        if let Some(why) = why {
            return Error::Open(format!("{why}: {}", db.message()));
        }
    }
    match Error::db(e) {
        Error::Unavailable(why) => Error::Open(format!("cannot reach the server: {why}")),
        other => other,
    }
}

/// Begins a writer batch holding the audit chain's lock and reads the chain's head under it
/// (another instance may have appended since): one round trip.
async fn begin_batch(conn: &mut Conn) -> Result<(), Error> {
    use futures_util::TryStreamExt;
    use sqlx::Row;
    let results: Vec<_> = sqlx::Executor::fetch_many(&mut *conn, BEGIN_BATCH)
        .try_collect()
        .await
        .map_err(Error::db)?;
    // The rows: the lock's (one void column), then the head's, if the chain has entries.
    let head = results
        .iter()
        .filter_map(|r| r.as_ref().right())
        .find(|row| row.columns().len() == 2);
    let known = match head {
        Some(row) => (
            row.try_get::<i64, _>(0).map_err(Error::Backend)?,
            row.try_get::<Vec<u8>, _>(1).map_err(Error::Backend)?,
        ),
        None => (0, crate::audit::GENESIS.to_vec()),
    };
    chain::restore(Head {
        known: Some(known),
        dirty: false,
    });
    Ok(())
}

/// Commits a writer batch; if it moved the chain (`moved`: the new head's seq and the statement
/// that records it), the same round trip records the head and tells every instance's follower
/// (`NOTIFY` is delivered at commit).
async fn commit(conn: &mut Conn, moved: Option<(i64, String)>) -> Result<(), Error> {
    let sql = match moved {
        Some((seq, head)) => format!("{head}; SELECT pg_notify('{CHANNEL}', '{seq}'); COMMIT"),
        None => "COMMIT".to_owned(),
    };
    sqlx::Executor::execute(conn, sql.as_str())
        .await
        .map(|_| ())
        .map_err(Error::db)
}

/// Whether `store_request` is one statement (which needs no savepoint of its own).
const ONE_STATEMENT_REQUESTS: bool = true;

/// A new request and its audit entries in one statement, so one round trip: the budget claim,
/// the request and the entries are data-modifying CTEs, each conditional on the one before. A
/// request over its requester's budget stores nothing (and the chain does not move).
async fn store_request(
    conn: &mut Conn,
    row: crate::store::PermissionRow,
    audit: Vec<crate::store::NewAudit>,
    budget: Option<crate::store::PendingBudget>,
) -> Result<crate::store::Inserted, Error> {
    if let Some(b) = budget
        && !broker::could_fit(b)
    {
        return broker::over_budget(conn, &row.requester_actor).await;
    }
    let entries = audit::chain_entries(conn, audit).await?;
    let columns = broker::PERMISSION_COLUMNS;
    let sql = format!(
        "WITH claim AS ( \
             INSERT INTO pending_budgets (requester_actor, pending, old_content) \
             SELECT $18, 1, $19 WHERE $20 \
             ON CONFLICT (requester_actor) DO UPDATE \
             SET pending = pending_budgets.pending + 1, \
                 old_content = pending_budgets.old_content + excluded.old_content \
             WHERE pending_budgets.pending < $21 \
               AND pending_budgets.old_content + excluded.old_content <= $22 \
             RETURNING 1), \
         admitted AS (SELECT 1 WHERE NOT $20 OR EXISTS (SELECT 1 FROM claim)), \
         stored AS ( \
             INSERT INTO permissions ({columns}, old_content_bytes) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                    $18, $19 FROM admitted \
             RETURNING 1), \
         chained AS ( \
             INSERT INTO audit (seq, at, event, subject, data, prev_hash, hash) \
             SELECT * FROM UNNEST($23::BIGINT[], $24::BIGINT[], $25::TEXT[], $26::TEXT[], \
                                  $27::TEXT[], $28::BYTEA[], $29::BYTEA[]) \
             WHERE EXISTS (SELECT 1 FROM stored)) \
         SELECT COUNT(*) FROM stored"
    );
    let query = broker::bind_permission(sqlx::query(&sql), &row, budget.map_or(0, |b| b.adding));
    let stored: i64 = query
        .bind(budget.is_some())
        .bind(budget.map_or(0, |b| b.max_count))
        .bind(budget.map_or(0, |b| b.max_old_content))
        .bind(entries.iter().map(|e| e.seq).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.at.as_millis()).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.event.clone()).collect::<Vec<_>>())
        .bind(
            entries
                .iter()
                .map(|e| e.subject.clone())
                .collect::<Vec<_>>(),
        )
        .bind(entries.iter().map(|e| e.data.clone()).collect::<Vec<_>>())
        .bind(
            entries
                .iter()
                .map(|e| e.prev_hash.clone())
                .collect::<Vec<_>>(),
        )
        .bind(entries.iter().map(|e| e.hash.clone()).collect::<Vec<_>>())
        .fetch_one(&mut *conn)
        .await
        .and_then(|r| sqlx::Row::try_get(&r, 0))
        .map_err(Error::db)?;
    if stored == 0 {
        return broker::over_budget(conn, &row.requester_actor).await;
    }
    audit::chained(&entries);
    Ok(crate::store::Inserted::Stored(entries))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_batch_takes_the_chain_lock() {
        assert!(
            super::BEGIN_BATCH.contains(&format!("pg_advisory_xact_lock({});", super::CHAIN_LOCK)),
            "{}",
            super::BEGIN_BATCH
        );
    }
}
