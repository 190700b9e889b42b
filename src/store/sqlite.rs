//! The SQLite backend: one file in the data dir, WAL mode, `synchronous = FULL` so that a write is
//! on disk before the API answers.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, migrate::Migrator};

use futures_util::future::BoxFuture;
use sqlx::SqliteConnection;

use super::{AuditRow, Conflict, Error, NewAudit, OAuthBinding, TokenRow};
use crate::clock::Timestamp;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

pub(super) const TOKEN_COLUMNS: &str = "id, name, secret_hash, scopes, created_at, expires_at, \
     last_used_at, revoked_at, created_by, client_id, audience, family_id, person";

/// A pool of connections to one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    /// Runs broker writes with group commit (see `sqlite_writer`).
    pub(super) writer: super::sqlite_writer::Writer,
    /// Keyed audit mode's key, once set: the writer signs every head it records with it.
    pub(super) audit_key: super::sqlite_audit::AuditKey,
    /// Every committed audit entry, for the event streams.
    pub(super) events: tokio::sync::broadcast::Sender<std::sync::Arc<super::AuditRow>>,
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
            .map_err(Error::Backend)?;
        // SQLite creates the file with the umask's mode; the WAL and SHM files copy this mode.
        if let Ok(meta) = std::fs::metadata(path) {
            let mut perms = meta.permissions();
            perms.set_mode(0o600);
            let _ = std::fs::set_permissions(path, perms);
        }
        MIGRATOR.run(&pool).await.map_err(Error::Migrate)?;
        let audit_key = super::sqlite_audit::AuditKey::default();
        let writer = super::sqlite_writer::Writer::start(&pool, audit_key.clone()).await?;
        let (events, _) = tokio::sync::broadcast::channel(4096);
        Ok(SqliteStore {
            pool,
            writer,
            audit_key,
            events,
        })
    }

    /// Runs `change`, then appends the entries `audit` makes of its outcome, in one transaction
    /// of the writer: if the audit cannot be written, neither is the change (fail closed). The
    /// entries are published once committed.
    pub(super) async fn audited<T, F, A>(&self, change: F, audit: A) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, Error>>
            + Send
            + 'static,
        A: FnOnce(&T) -> Vec<NewAudit> + Send + 'static,
    {
        let (out, rows) = self
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let out = change(&mut *conn).await?;
                    let rows = super::sqlite_audit::append_audit(conn, audit(&out)).await?;
                    Ok((out, rows))
                })
            })
            .await?;
        self.publish(&rows);
        Ok(out)
    }

    /// Tells the event streams about committed entries.
    pub(super) fn publish(&self, rows: &[AuditRow]) {
        for row in rows {
            let _ = self.events.send(std::sync::Arc::new(row.clone()));
        }
    }

    pub(super) async fn insert_token(
        &self,
        row: &TokenRow,
        audit: Vec<NewAudit>,
    ) -> Result<(), Error> {
        let row = row.clone();
        self.audited(
            move |conn| Box::pin(async move { insert_token(&mut *conn, &row).await }),
            move |_| audit,
        )
        .await
    }

    pub(super) async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRow>, Error> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?");
        let row = sqlx::query(&sql)
            .bind(&hash[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::Backend)?;
        row.as_ref().map(token_from_row).transpose()
    }

    pub(super) async fn live_tokens(&self) -> Result<Vec<TokenRow>, Error> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE revoked_at IS NULL AND client_id IS NULL \
             ORDER BY created_at, name"
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::Backend)?;
        rows.iter().map(token_from_row).collect()
    }

    pub(super) async fn count_tokens(&self) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM tokens")
            .fetch_one(&self.pool)
            .await
            .map_err(Error::Backend)
    }

    pub(super) async fn revoke_token(
        &self,
        id: &str,
        now: Timestamp,
        audit: impl FnOnce(&TokenRow) -> Vec<NewAudit> + Send + 'static,
    ) -> Result<TokenRow, Error> {
        let id = id.to_owned();
        self.audited(
            move |conn| Box::pin(async move { revoke_token(conn, &id, now).await }),
            audit,
        )
        .await
    }

    pub(super) async fn touch_token(&self, id: &str, now: Timestamp) -> Result<(), Error> {
        sqlx::query("UPDATE tokens SET last_used_at = ? WHERE id = ?")
            .bind(now.as_millis())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(Error::Backend)?;
        Ok(())
    }

    pub(super) async fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::Backend)
    }

    pub(super) async fn put_setting(
        &self,
        key: &str,
        value: &str,
        now: Timestamp,
        audit: Vec<NewAudit>,
    ) -> Result<(), Error> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.audited(
            move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) \
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(&key)
                    .bind(&value)
                    .bind(now.as_millis())
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::Backend)?;
                    Ok(())
                })
            },
            move |_| audit,
        )
        .await
    }
}

/// Revokes a live token in one statement, so the last-admin check and the revocation cannot
/// interleave with another revocation.
async fn revoke_token(
    conn: &mut SqliteConnection,
    id: &str,
    now: Timestamp,
) -> Result<TokenRow, Error> {
    let sql = format!(
        "UPDATE tokens SET revoked_at = ?1 \
         WHERE id = ?2 AND revoked_at IS NULL AND NOT ( \
           (',' || scopes || ',') LIKE '%,admin,%' \
           AND (expires_at IS NULL OR expires_at > ?1) \
           AND NOT EXISTS (SELECT 1 FROM tokens o WHERE o.id != ?2 AND o.revoked_at IS NULL \
             AND (o.expires_at IS NULL OR o.expires_at > ?1) \
             AND (',' || o.scopes || ',') LIKE '%,admin,%')) \
         RETURNING {TOKEN_COLUMNS}"
    );
    let revoked = sqlx::query(&sql)
        .bind(now.as_millis())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::Backend)?;
    if let Some(row) = revoked {
        return token_from_row(&row);
    }
    let live: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM tokens WHERE id = ? AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::Backend)?;
    Err(if live.is_some() {
        Error::LastAdmin
    } else {
        Error::NotFound
    })
}

/// Inserts a token row on any connection (a pool, or a transaction issuing OAuth tokens).
pub(super) async fn insert_token<'e, E>(conn: E, row: &TokenRow) -> Result<(), Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let oauth = row.oauth.as_ref();
    sqlx::query(
        "INSERT INTO tokens (id, name, secret_hash, scopes, created_at, expires_at, \
     last_used_at, revoked_at, created_by, client_id, audience, family_id, person) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.secret_hash[..])
    .bind(row.scopes.to_string())
    .bind(row.created_at.as_millis())
    .bind(row.expires_at.map(Timestamp::as_millis))
    .bind(row.last_used_at.map(Timestamp::as_millis))
    .bind(row.revoked_at.map(Timestamp::as_millis))
    .bind(&row.created_by)
    .bind(oauth.map(|o| &o.client_id))
    .bind(oauth.map(|o| &o.audience))
    .bind(oauth.map(|o| &o.family_id))
    .bind(&row.person)
    .execute(conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            if db.message().contains("secret_hash") {
                Error::Conflict(Conflict::TokenSecret)
            } else {
                Error::Conflict(Conflict::TokenName)
            }
        }
        _ => Error::Backend(e),
    })?;
    Ok(())
}

pub(super) fn token_from_row(row: &SqliteRow) -> Result<TokenRow, Error> {
    use column::{corrupt, hash32, opt_ts, scopes, ts};
    Ok(TokenRow {
        id: row.try_get("id").map_err(corrupt)?,
        name: row.try_get("name").map_err(corrupt)?,
        secret_hash: hash32(row, "secret_hash")?,
        scopes: scopes(row)?,
        created_at: ts(row, "created_at")?,
        expires_at: opt_ts(row, "expires_at")?,
        last_used_at: opt_ts(row, "last_used_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
        created_by: row.try_get("created_by").map_err(corrupt)?,
        oauth: oauth_binding(row)?,
        person: row.try_get("person").map_err(corrupt)?,
    })
}

fn oauth_binding(row: &SqliteRow) -> Result<Option<OAuthBinding>, Error> {
    use column::corrupt;
    let client_id: Option<String> = row.try_get("client_id").map_err(corrupt)?;
    let Some(client_id) = client_id else {
        return Ok(None);
    };
    let audience: Option<String> = row.try_get("audience").map_err(corrupt)?;
    let family_id: Option<String> = row.try_get("family_id").map_err(corrupt)?;
    match (audience, family_id) {
        (Some(audience), Some(family_id)) => Ok(Some(OAuthBinding {
            client_id,
            audience,
            family_id,
        })),
        _ => Err(Error::Corrupt(
            "an OAuth token without its audience or family".into(),
        )),
    }
}

/// Decoding stored columns: a value that does not decode makes the row corrupt.
pub(super) mod column {
    use agentgate_policy::{Scope, ScopeSet};
    use sqlx::Row;
    use sqlx::sqlite::SqliteRow;

    use super::Error;
    use crate::clock::Timestamp;

    /// A decoding failure as a corrupt row.
    pub fn corrupt(e: sqlx::Error) -> Error {
        Error::Corrupt(e.to_string())
    }

    /// A Unix-milliseconds column.
    pub fn ts(row: &SqliteRow, col: &str) -> Result<Timestamp, Error> {
        Ok(Timestamp::from_millis(row.try_get(col).map_err(corrupt)?))
    }

    /// A nullable Unix-milliseconds column.
    pub fn opt_ts(row: &SqliteRow, col: &str) -> Result<Option<Timestamp>, Error> {
        let v: Option<i64> = row.try_get(col).map_err(corrupt)?;
        Ok(v.map(Timestamp::from_millis))
    }

    /// A SHA-256 column.
    pub fn hash32(row: &SqliteRow, col: &str) -> Result<[u8; 32], Error> {
        let hash: Vec<u8> = row.try_get(col).map_err(corrupt)?;
        hash.try_into()
            .map_err(|_| Error::Corrupt(format!("{col} is not 32 bytes")))
    }

    /// The comma-separated `scopes` column.
    pub fn scopes(row: &SqliteRow) -> Result<ScopeSet, Error> {
        let scopes: String = row.try_get("scopes").map_err(corrupt)?;
        scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<Scope>())
            .collect::<Result<ScopeSet, _>>()
            .map_err(|e| Error::Corrupt(e.to_string()))
    }
}
