//! The audit chain's bookkeeping that does not depend on the database: the head the writer caches
//! between writes (a task-local of the writer task) and the format of the head record kept in
//! `settings`. Below both backends' writers and every statement that appends.

use std::cell::RefCell;

/// Where the chain's head is recorded in `settings`: `seq:hash`, or `seq:hash:mac` when keyed.
pub(crate) const AUDIT_HEAD: &str = "audit_head";

/// The audit chain's head (last seq and hash) as of the writer's open transaction, so appending
/// does not re-read it for every write. `dirty` marks a head not yet recorded in `settings`.
#[derive(Clone, Default)]
pub(crate) struct Head {
    pub(crate) known: Option<(i64, Vec<u8>)>,
    pub(crate) dirty: bool,
}

tokio::task_local! {
    pub(crate) static HEAD: RefCell<Head>;
}

/// The chain's head, if the writer knows it. Only meaningful inside a write.
pub(crate) fn cached_head() -> Option<(i64, Vec<u8>)> {
    HEAD.try_with(|h| h.borrow().known.clone()).ok().flatten()
}

/// Moves the chain's head after an append inside a write.
pub(crate) fn set_head(seq: i64, hash: Vec<u8>) {
    let _ = HEAD.try_with(|h| {
        *h.borrow_mut() = Head {
            known: Some((seq, hash)),
            dirty: true,
        }
    });
}

pub(crate) fn snapshot() -> Head {
    HEAD.try_with(|h| h.borrow().clone()).unwrap_or_default()
}

pub(crate) fn restore(head: Head) {
    let _ = HEAD.try_with(|h| *h.borrow_mut() = head);
}

/// Keyed audit mode's key, shared by the store and its writer; unset: unkeyed.
pub(crate) type AuditKey = std::sync::Arc<std::sync::OnceLock<[u8; 32]>>;

/// The head record's text: `seq:hash`, or `seq:hash:mac` in keyed mode.
pub(crate) fn head_record(seq: i64, hash: &[u8], key: Option<&[u8; 32]>) -> String {
    match key {
        None => format!("{seq}:{}", hex(hash)),
        Some(key) => format!(
            "{seq}:{}:{}",
            hex(hash),
            hex(&crate::audit::head_mac(key, seq, hash))
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn parse_head(text: &str) -> Option<(i64, Vec<u8>)> {
    let mut fields = text.split(':');
    let seq = fields.next()?.parse().ok()?;
    Some((seq, unhex(fields.next()?)?))
}

/// The head record's HMAC (keyed mode), if it has one.
pub(crate) fn parse_head_mac(text: &str) -> Option<Vec<u8>> {
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
