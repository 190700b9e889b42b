//! The audit chain in SQLite: appending entries inside a write's transaction, the head the
//! writer caches between writes and records once per batch (signed in keyed mode), and the head
//! record's format. Below the writer and every store file that appends.

use std::cell::RefCell;

use sqlx::SqliteConnection;

use super::{AuditRow, Error, NewAudit};
use crate::audit;

/// Where the chain's head is recorded in `settings`: `seq:hash`, or `seq:hash:mac` when keyed.
pub(super) const AUDIT_HEAD: &str = "audit_head";

/// The audit chain's head (last seq and hash) as of the writer's open transaction, so appending
/// does not re-read it for every write. `dirty` marks a head not yet recorded in `settings`.
#[derive(Clone, Default)]
pub(super) struct Head {
    pub(super) known: Option<(i64, Vec<u8>)>,
    pub(super) dirty: bool,
}

tokio::task_local! {
    pub(super) static HEAD: RefCell<Head>;
}

/// The chain's head, if the writer knows it. Only meaningful inside a write.
pub(super) fn cached_head() -> Option<(i64, Vec<u8>)> {
    HEAD.try_with(|h| h.borrow().known.clone()).ok().flatten()
}

/// Moves the chain's head after an append inside a write.
pub(super) fn set_head(seq: i64, hash: Vec<u8>) {
    let _ = HEAD.try_with(|h| {
        *h.borrow_mut() = Head {
            known: Some((seq, hash)),
            dirty: true,
        }
    });
}

pub(super) fn snapshot() -> Head {
    HEAD.try_with(|h| h.borrow().clone()).unwrap_or_default()
}

pub(super) fn restore(head: Head) {
    let _ = HEAD.try_with(|h| *h.borrow_mut() = head);
}

/// Keyed audit mode's key, shared by the store and its writer; unset: unkeyed.
pub(super) type AuditKey = std::sync::Arc<std::sync::OnceLock<[u8; 32]>>;

/// Appends entries to the chain inside the caller's transaction and moves the recorded head.
pub(super) async fn append_audit(
    conn: &mut SqliteConnection,
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
        sqlx::query(
            "INSERT INTO audit (seq, at, event, subject, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(e.at.as_millis())
        .bind(e.event)
        .bind(&e.subject)
        .bind(&e.data)
        .bind(&prev)
        .bind(&hash[..])
        .execute(&mut *conn)
        .await
        .map_err(Error::Backend)?;
        out.push(AuditRow {
            seq,
            at: e.at,
            event: e.event.to_owned(),
            subject: e.subject,
            data: e.data,
            prev_hash: prev.clone(),
            hash: hash.to_vec(),
        });
        prev = hash.to_vec();
    }
    // The recorded head is written once per batch, just before its commit.
    set_head(seq, prev);
    Ok(out)
}

/// Records the chain's head in `settings` (in the writer's transaction), so verification notices
/// a truncated tail.
/// In keyed mode the record carries the head's HMAC too (`seq:hash:mac`).
pub(super) async fn record_head(
    conn: &mut SqliteConnection,
    seq: i64,
    hash: &[u8],
    key: Option<&[u8; 32]>,
) -> Result<(), Error> {
    let value = match key {
        None => format!("{seq}:{}", hex(hash)),
        Some(key) => format!(
            "{seq}:{}:{}",
            hex(hash),
            hex(&audit::head_mac(key, seq, hash))
        ),
    };
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 0) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )
    .bind(AUDIT_HEAD)
    .bind(value)
    .execute(conn)
    .await
    .map_err(Error::Backend)?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn parse_head(text: &str) -> Option<(i64, Vec<u8>)> {
    let mut fields = text.split(':');
    let seq = fields.next()?.parse().ok()?;
    Some((seq, unhex(fields.next()?)?))
}

/// The head record's HMAC (keyed mode), if it has one.
pub(super) fn parse_head_mac(text: &str) -> Option<Vec<u8>> {
    unhex(text.split(':').nth(2)?)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}
