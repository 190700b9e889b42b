//! The SQLite backend: one file in the data dir, WAL mode, `synchronous = FULL` so that a write is
//! on disk before the API answers. One instance owns the file: its writer caches the audit
//! chain's head between batches. The statements are `store/sql/`, shared with PostgreSQL; this
//! file holds what differs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::chain::AuditKey;
use super::{AuditRow, Error, Inserted, NewAudit, PendingBudget, PermissionRow};

#[path = "../sql/audit.rs"]
mod audit;
#[path = "../sql/broker.rs"]
mod broker;
#[path = "../sql/column.rs"]
mod column;
#[path = "../sql/oauth.rs"]
mod oauth;
#[path = "../sql/tokens.rs"]
mod tokens;
#[path = "../sql/web.rs"]
mod web;
#[path = "../sql/writer.rs"]
mod writer;

type Db = sqlx::Sqlite;
type Conn = sqlx::SqliteConnection;
type DbRow = sqlx::sqlite::SqliteRow;
type This = SqliteStore;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A pool of connections to one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Runs audited writes with group commit (see `sql/writer.rs`).
    writer: writer::Writer,
    /// Keyed audit mode's key, once set: the writer signs every head it records with it.
    audit_key: AuditKey,
    /// Every committed audit entry, for the event streams.
    events: tokio::sync::broadcast::Sender<std::sync::Arc<AuditRow>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, readable by its owner only, and
    /// runs the migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Checkpoints are `checkpointer`'s, beside the writes rather than inside a commit.
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(Error::db)?;
        // SQLite creates the file with the umask's mode; the WAL and SHM files copy this mode.
        if let Ok(meta) = std::fs::metadata(path) {
            let mut perms = meta.permissions();
            perms.set_mode(0o600);
            let _ = std::fs::set_permissions(path, perms);
        }
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| super::migration_failed(e, &MIGRATOR))?;
        let audit_key = AuditKey::default();
        let writer = writer::Writer::start(&pool, audit_key.clone()).await?;
        tokio::spawn(checkpointer(pool.clone()));
        let (events, _) = tokio::sync::broadcast::channel(4096);
        Ok(SqliteStore {
            pool,
            writer,
            audit_key,
            events,
        })
    }

    /// Every committed audit entry, as this instance publishes it.
    pub(super) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<AuditRow>> {
        self.events.subscribe()
    }

    /// The entries this instance wrote: all of them.
    pub(super) fn subscribe_own(
        &self,
    ) -> tokio::sync::broadcast::Receiver<std::sync::Arc<AuditRow>> {
        self.events.subscribe()
    }

    /// Tells the event streams about committed entries: this instance wrote them all.
    pub(super) fn publish(&self, rows: &[AuditRow]) {
        for row in rows {
            let _ = self.events.send(std::sync::Arc::new(row.clone()));
        }
    }

    /// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`): these transactions
    /// read before they write, and a deferred one could not upgrade its lock if another write
    /// (a token's last-use time, say) committed in between.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Db>, Error> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(Error::db)
    }
}

/// Begins a writer batch. The file has one writer, so the chain's head it cached stays true.
async fn begin_batch(conn: &mut Conn) -> Result<(), Error> {
    sqlx::query("BEGIN IMMEDIATE")
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(Error::db)
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies the WAL back into the database file every [`CHECKPOINT_EVERY`] on a connection of its
/// own, until the pool is closed. SQLite would otherwise do it inside whichever commit crosses
/// 1,000 pages, and that write would wait for it (milliseconds, with its fsync); a passive
/// checkpoint runs beside the writer without blocking it.
async fn checkpointer(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "checkpointing the SQLite WAL failed; trying again");
        }
    }
}

/// Whether `store_request` is one statement (which needs no savepoint of its own).
const ONE_STATEMENT_REQUESTS: bool = false;

/// Stores a new request with its audit entries, within the requester's pending budget if it has
/// one: the budget claim, then the request and its entries in one round trip to the connection's
/// worker thread (PostgreSQL does all of it in one statement).
async fn store_request(
    conn: &mut Conn,
    row: PermissionRow,
    audit: Vec<NewAudit>,
    budget: Option<PendingBudget>,
) -> Result<Inserted, Error> {
    // The budget is one row per requester, claimed in the write's transaction (so concurrent
    // requests cannot overshoot it) before the request is stored.
    if let Some(b) = budget
        && !claim_budget(conn, &row.requester_actor, b).await?
    {
        return broker::over_budget(conn, &row.requester_actor).await;
    }
    // The request and its entries go in one round trip: two statements, whose parameters are
    // numbered across both (`$20` on are the entries').
    let rows = audit::chain_entries(conn, audit).await?;
    let mut sql = format!(
        "INSERT INTO permissions ({}, old_content_bytes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19)",
        broker::PERMISSION_COLUMNS
    );
    if !rows.is_empty() {
        sql = format!("{sql}; {}", audit::insert_rows(rows.len(), 20));
    }
    let query = broker::bind_permission(sqlx::query(&sql), &row, budget.map_or(0, |b| b.adding));
    audit::bind_rows(query, &rows)
        .execute(&mut *conn)
        .await
        .map_err(Error::db)?;
    audit::chained(&rows);
    Ok(Inserted::Stored(rows))
}

/// Counts one more pending request (and its `old_content` bytes) against its requester's budget,
/// if it fits. `false`: it does not, and nothing changed.
async fn claim_budget(conn: &mut Conn, actor: &str, b: PendingBudget) -> Result<bool, Error> {
    if !broker::could_fit(b) {
        return Ok(false);
    }
    let claimed = sqlx::query(
        "INSERT INTO pending_budgets (requester_actor, pending, old_content) VALUES ($1, 1, $2) \
         ON CONFLICT (requester_actor) DO UPDATE \
         SET pending = pending_budgets.pending + 1, \
             old_content = pending_budgets.old_content + excluded.old_content \
         WHERE pending_budgets.pending < $3 \
           AND pending_budgets.old_content + excluded.old_content <= $4",
    )
    .bind(actor)
    .bind(b.adding)
    .bind(b.max_count)
    .bind(b.max_old_content)
    .execute(&mut *conn)
    .await
    .map_err(Error::db)?
    .rows_affected();
    Ok(claimed == 1)
}

/// Commits a writer batch, recording the audit chain's new head if it moved (`moved`: its seq
/// and the statement that records it) in the same round trip. Nothing to announce: the writer's
/// own instance is the only reader.
async fn commit(conn: &mut Conn, moved: Option<(i64, String)>) -> Result<(), Error> {
    let sql = match moved {
        Some((_, head)) => format!("{head}; COMMIT"),
        None => "COMMIT".to_owned(),
    };
    sqlx::Executor::execute(conn, sql.as_str())
        .await
        .map(|_| ())
        .map_err(Error::db)
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    /// 0010 rebuilds `permissions` (and `approvals`) to admit `cancelled`: a file migrated by the
    /// previous release keeps every row and its references, and foreign keys still hold.
    #[tokio::test]
    async fn the_cancelled_rebuild_keeps_rows_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        std::fs::create_dir(&old).unwrap();
        for entry in std::fs::read_dir("migrations/sqlite").unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if name.as_str() < "0010" {
                std::fs::copy(&path, old.join(name)).unwrap();
            }
        }
        let file = dir.path().join("agentgate.db");
        let options = super::SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .foreign_keys(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO tokens (id, name, secret_hash, scopes, created_at) \
               VALUES ('tok_a', 'a', x'01', 'request', 1); \
             INSERT INTO permissions (id, kind, summary, body, targets, requester_id, \
               requester_name, status, created_at, old_content_bytes) VALUES \
               ('p1', 'shell', 's', '{}', '[]', 'tok_a', 'a', 'pending', 1, 7), \
               ('p2', 'shell', 's', '{}', '[]', 'tok_a', 'a', 'allowed', 2, 0); \
             INSERT INTO approvals VALUES ('p2', 'tok_a', 'a', 3);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let refused = sqlx::query("UPDATE permissions SET status = 'cancelled' WHERE id = 'p1'")
            .execute(&mut conn)
            .await;
        assert!(refused.is_err(), "the old CHECK refuses `cancelled`");
        conn.close().await.unwrap();

        let store = super::SqliteStore::open(&file).await.unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT id, status, old_content_bytes FROM permissions ORDER BY id")
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        assert_eq!(
            rows,
            [
                ("p1".into(), "pending".into(), 7),
                ("p2".into(), "allowed".into(), 0)
            ]
        );
        sqlx::query("UPDATE permissions SET status = 'cancelled' WHERE id = 'p1'")
            .execute(&mut *conn)
            .await
            .unwrap();
        let approvals: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE permission_id = 'p2'")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(approvals, 1);
        let dangling = sqlx::query("INSERT INTO approvals VALUES ('nope', 'tok_a', 'a', 4)")
            .execute(&mut *conn)
            .await;
        assert!(dangling.is_err(), "approvals still reference permissions");
        let bogus = sqlx::query("UPDATE permissions SET status = 'maybe' WHERE id = 'p2'")
            .execute(&mut *conn)
            .await;
        assert!(bogus.is_err(), "the CHECK still holds");
    }

    /// Commits never checkpoint (`wal_autocheckpoint = 0`): the checkpointer copies the WAL
    /// into the database file beside them, within a few ticks.
    #[tokio::test]
    async fn the_wal_is_checkpointed_beside_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agentgate.db");
        let store = super::SqliteStore::open(&file).await.unwrap();
        let before = std::fs::metadata(&file).unwrap().len();
        let entries = (0..200)
            .map(|i| crate::store::NewAudit {
                at: crate::clock::Timestamp::from_millis(i),
                event: "test.entry",
                subject: None,
                data: format!("{{\"pad\":\"{}\"}}", "x".repeat(2000)),
            })
            .collect();
        store.append_audit(entries).await.unwrap();
        let wal = dir.path().join("agentgate.db-wal");
        assert!(
            std::fs::metadata(&wal).unwrap().len() > 400_000,
            "the entries are in the WAL"
        );
        let mut grown = false;
        for _ in 0..50 {
            if std::fs::metadata(&file).unwrap().len() > before + 400_000 {
                grown = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            grown,
            "the checkpointer copied the WAL into the database file"
        );
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE event = 'test.entry'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(count, 200);
    }
}
