//! The audit log's hash chain: how an entry's hash is computed and how a log is verified.
//!
//! Each entry's hash covers the previous entry's hash, its own sequence number, time, event,
//! subject and data, so editing, inserting, reordering or deleting an entry breaks the chain from
//! that point on. The head (last seq and hash) is also kept in the settings table, written in the
//! same transaction, so truncating the tail is caught too. Pure: the store calls [`chain_hash`]
//! inside its write transaction; [`Verifier`] consumes rows in order.
//!
//! The chain has no secret: whoever can write the database can recompute every hash and the
//! head. Keyed mode adds an HMAC over the head with a key kept outside the database
//! ([`head_mac`]), so a rewrite by someone who can write the database but not read the key is
//! caught too.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash of one entry, given the previous entry's hash.
pub fn chain_hash(
    prev: &[u8],
    seq: i64,
    at: i64,
    event: &str,
    subject: Option<&str>,
    data: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    for field in [event, subject.unwrap_or(""), data] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.update([u8::from(subject.is_some())]);
    h.finalize().into()
}

/// The keyed mode's signature of the chain's head (`seq`, `hash`).
pub fn head_mac(key: &[u8; 32], seq: i64, hash: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC pads a key shorter than the hash's block with zeros: the same key, at block size.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
    mac.update(b"agentgate audit head\0");
    mac.update(&seq.to_be_bytes());
    mac.update(hash);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod mac_tests {
    #[test]
    fn the_head_mac_is_rfc_2104_hmac_sha256() {
        use hmac::{Hmac, Mac};
        let key = [7u8; 32];
        let mut reference = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        reference.update(b"agentgate audit head\0");
        reference.update(&5i64.to_be_bytes());
        reference.update(b"h");
        let expected: [u8; 32] = reference.finalize().into_bytes().into();
        assert_eq!(super::head_mac(&key, 5, b"h"), expected);
        assert_ne!(super::head_mac(&[8u8; 32], 5, b"h"), expected);
    }
}

/// The outcome of verifying the whole log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Verification {
    /// Whether the chain is intact.
    pub ok: bool,
    /// How many entries were checked.
    pub entries: u64,
    /// The first entry found wrong, if any.
    pub first_bad: Option<BadEntry>,
    /// The head's signature was checked with the audit key (keyed mode).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyed: bool,
}

/// Where the chain breaks and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BadEntry {
    /// The sequence number of the first entry that does not verify.
    pub seq: i64,
    /// `altered`, `inserted`, `deleted` or `truncated`.
    pub problem: String,
    /// A sentence for people.
    pub detail: String,
}

/// One stored entry, as the verifier needs it.
pub struct Entry<'a> {
    /// Sequence number.
    pub seq: i64,
    /// Unix ms.
    pub at: i64,
    /// Event name.
    pub event: &'a str,
    /// Request or rule id.
    pub subject: Option<&'a str>,
    /// JSON data as stored.
    pub data: &'a str,
    /// Stored previous hash.
    pub prev_hash: &'a [u8],
    /// Stored hash.
    pub hash: &'a [u8],
}

/// Checks entries one by one, in sequence order.
pub struct Verifier {
    expected_seq: i64,
    prev: Vec<u8>,
    entries: u64,
    bad: Option<BadEntry>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev: GENESIS.to_vec(),
            entries: 0,
            bad: None,
        }
    }
}

impl Verifier {
    /// Feeds the next entry; returns false once a problem is found (stop feeding).
    pub fn push(&mut self, e: &Entry<'_>) -> bool {
        if self.bad.is_some() {
            return false;
        }
        self.entries += 1;
        let recomputed = chain_hash(e.prev_hash, e.seq, e.at, e.event, e.subject, e.data);
        let problem = if e.seq > self.expected_seq && e.prev_hash != self.prev.as_slice() {
            Some((
                "deleted",
                format!("entries {} to {} are missing", self.expected_seq, e.seq - 1),
            ))
        } else if e.seq != self.expected_seq {
            Some((
                "inserted",
                format!(
                    "entry {} is out of sequence (expected {})",
                    e.seq, self.expected_seq
                ),
            ))
        } else if recomputed.as_slice() != e.hash {
            Some((
                "altered",
                format!(
                    "entry {} does not match its hash: its contents were changed",
                    e.seq
                ),
            ))
        } else if e.prev_hash != self.prev.as_slice() {
            Some((
                "inserted",
                format!("entry {} does not follow the entry before it", e.seq),
            ))
        } else {
            None
        };
        if let Some((problem, detail)) = problem {
            self.bad = Some(BadEntry {
                seq: e.seq,
                problem: problem.into(),
                detail,
            });
            return false;
        }
        self.expected_seq = e.seq + 1;
        self.prev = e.hash.to_vec();
        true
    }

    /// Finishes, comparing the last entry with the recorded head (`None`: no head recorded).
    pub fn finish(mut self, head: Option<(i64, Vec<u8>)>) -> Verification {
        let last = self.expected_seq - 1;
        if self.bad.is_none()
            && let Some((seq, hash)) = head
            && (seq != last || hash != self.prev)
        {
            let problem = if seq > last { "truncated" } else { "inserted" };
            self.bad = Some(BadEntry {
                seq: last + 1,
                problem: problem.into(),
                detail: format!(
                    "the log ends at entry {last} but its recorded head is entry {seq}"
                ),
            });
        }
        Verification {
            ok: self.bad.is_none(),
            entries: self.entries,
            first_bad: self.bad,
            keyed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Owned {
        seq: i64,
        data: String,
        prev: Vec<u8>,
        hash: Vec<u8>,
    }

    fn chain(n: i64) -> Vec<Owned> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let data = format!("{{\"n\":{seq}}}");
                let hash = chain_hash(&prev, seq, seq * 10, "e", Some("s"), &data).to_vec();
                let o = Owned {
                    seq,
                    data,
                    prev: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                o
            })
            .collect()
    }

    fn verify(rows: &[Owned], head: Option<(i64, Vec<u8>)>) -> Verification {
        let mut v = Verifier::default();
        for r in rows {
            let e = Entry {
                seq: r.seq,
                at: r.seq * 10,
                event: "e",
                subject: Some("s"),
                data: &r.data,
                prev_hash: &r.prev,
                hash: &r.hash,
            };
            if !v.push(&e) {
                break;
            }
        }
        v.finish(head)
    }

    #[test]
    fn an_intact_chain_verifies_and_each_kind_of_tampering_is_named() {
        let rows = chain(5);
        let head = Some((5, rows[4].hash.clone()));
        assert!(verify(&rows, head.clone()).ok);

        let mut altered = chain(5);
        altered[2].data = "{\"n\":99}".into();
        let v = verify(&altered, head.clone());
        assert_eq!(
            v.first_bad.as_ref().map(|b| (b.seq, b.problem.as_str())),
            Some((3, "altered"))
        );

        let mut deleted = chain(5);
        deleted.remove(2);
        let v = verify(&deleted, head.clone());
        assert_eq!(
            v.first_bad.as_ref().map(|b| (b.seq, b.problem.as_str())),
            Some((4, "deleted"))
        );

        let truncated: Vec<Owned> = chain(5).into_iter().take(4).collect();
        let v = verify(&truncated, head);
        assert_eq!(
            v.first_bad.as_ref().map(|b| b.problem.as_str()),
            Some("truncated")
        );
    }
}
