//! Appending to the audit chain inside a write's transaction, and recording its head once per
//! batch, just before the commit (signed in keyed mode). Compiled once per backend.

use futures_util::future::BoxFuture;

use super::{Conn, Db, This};
use crate::audit;
use crate::store::chain::{self, AUDIT_HEAD, cached_head, set_head};
use crate::store::{AuditRow, Error, NewAudit};

/// Appends entries to the chain inside the caller's transaction and moves the recorded head.
pub(crate) async fn append_audit(
    conn: &mut Conn,
    entries: Vec<NewAudit>,
) -> Result<Vec<AuditRow>, Error> {
    let rows = chain_entries(conn, entries).await?;
    if rows.is_empty() {
        return Ok(rows);
    }
    for chunk in rows.chunks(MAX_ROWS_PER_INSERT) {
        let sql = insert_rows(chunk.len(), 1);
        bind_rows(sqlx::query(&sql), chunk)
            .execute(&mut *conn)
            .await
            .map_err(Error::Backend)?;
    }
    chained(&rows);
    Ok(rows)
}

/// A query of this backend with its arguments.
pub(crate) type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

/// Columns bound per audit row by [`bind_rows`].
const AUDIT_PARAMS: usize = 7;

/// Most rows per `INSERT`: 3,500 parameters, well inside SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_ROWS_PER_INSERT: usize = 500;

/// One `INSERT` of `n` audit rows (one round trip), their parameters numbered from `$first`.
pub(crate) fn insert_rows(n: usize, first: usize) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| {
            let p: Vec<String> = (0..AUDIT_PARAMS)
                .map(|c| format!("${}", first + i * AUDIT_PARAMS + c))
                .collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO audit (seq, at, event, subject, data, prev_hash, hash) VALUES {}",
        values.join(", ")
    )
}

/// Binds `rows` in the order [`insert_rows`] numbers them.
pub(crate) fn bind_rows<'q>(mut query: Query<'q>, rows: &'q [AuditRow]) -> Query<'q> {
    for row in rows {
        query = query
            .bind(row.seq)
            .bind(row.at.as_millis())
            .bind(&row.event)
            .bind(&row.subject)
            .bind(&row.data)
            .bind(&row.prev_hash)
            .bind(&row.hash);
    }
    query
}

/// The rows `entries` become at the end of the chain, hashed but not yet written: the caller
/// writes them in its transaction, then calls [`chained`].
pub(crate) async fn chain_entries(
    conn: &mut Conn,
    entries: Vec<NewAudit>,
) -> Result<Vec<AuditRow>, Error> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    // The writer task caches the chain's head between writes; read it only when unknown.
    let (mut seq, mut prev) = match cached_head() {
        Some(head) => head,
        None => {
            let last: Option<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(Error::Backend)?;
            last.unwrap_or((0, audit::GENESIS.to_vec()))
        }
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        seq += 1;
        let hash = audit::chain_hash(
            &prev,
            seq,
            e.at.as_millis(),
            e.event,
            e.subject.as_deref(),
            &e.data,
        );
        out.push(AuditRow {
            seq,
            at: e.at,
            event: e.event.to_owned(),
            subject: e.subject,
            data: e.data,
            prev_hash: prev,
            hash: hash.to_vec(),
        });
        prev = hash.to_vec();
    }
    Ok(out)
}

/// `rows` (from [`chain_entries`]) are written: the chain's head moves to the last of them. The
/// recorded head is written once per batch, just before its commit.
pub(crate) fn chained(rows: &[AuditRow]) {
    if let Some(last) = rows.last() {
        set_head(last.seq, last.hash.clone());
    }
}

/// The statement that records the chain's head in `settings`, for the writer to send with its
/// `COMMIT` in one round trip. Its only values are digits, hex and `:` (see
/// [`chain::head_record`]), so it is written inline; anything else is refused.
pub(crate) fn head_statement(
    seq: i64,
    hash: &[u8],
    key: Option<&[u8; 32]>,
) -> Result<String, Error> {
    let record = chain::head_record(seq, hash, key);
    if !record.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
        return Err(Error::Corrupt(format!("audit head record `{record}`")));
    }
    Ok(format!(
        "INSERT INTO settings (key, value, updated_at) VALUES ('{AUDIT_HEAD}', '{record}', 0) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value"
    ))
}

/// Records the chain's head in `settings` (in the writer's transaction), so verification notices
/// a truncated tail. In keyed mode the record carries the head's HMAC too.
pub(crate) async fn record_head(
    conn: &mut Conn,
    seq: i64,
    hash: &[u8],
    key: Option<&[u8; 32]>,
) -> Result<(), Error> {
    let statement = head_statement(seq, hash, key)?;
    sqlx::Executor::execute(conn, statement.as_str())
        .await
        .map(|_| ())
        .map_err(Error::Backend)
}

impl This {
    /// Runs `change`, then appends the entries `audit` makes of its outcome, in one transaction
    /// of the writer: if the audit cannot be written, neither is the change (fail closed). The
    /// entries are published once committed.
    pub(crate) async fn audited<T, F, A>(&self, change: F, audit: A) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, Error>> + Send + 'static,
        A: FnOnce(&T) -> Vec<NewAudit> + Send + 'static,
    {
        let (out, rows) = self
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let out = change(&mut *conn).await?;
                    let rows = append_audit(conn, audit(&out)).await?;
                    Ok((out, rows))
                })
            })
            .await?;
        self.publish(&rows);
        Ok(out)
    }
}
