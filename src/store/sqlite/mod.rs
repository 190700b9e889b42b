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
use super::{AuditRow, Error};

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
            .busy_timeout(Duration::from_secs(5));
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

/// Nothing to announce: the writer's own instance is the only reader.
async fn announce(_conn: &mut Conn, _seq: i64) -> Result<(), Error> {
    Ok(())
}
