//! The audit log as the broker reads it: entries after a position, the event stream, and
//! verification of the chain (and of the head's signature in keyed mode).

use super::*;

/// An audit row as the API shows it.
pub fn audit_entry(row: AuditRow) -> AuditEntry {
    AuditEntry {
        seq: row.seq,
        at: row.at,
        event: row.event,
        subject: row.subject,
        data: serde_json::from_str(&row.data).unwrap_or(serde_json::Value::String(row.data)),
        hash: row.hash.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

impl Broker {
    /// Subscribes to new audit entries (the event stream).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AuditRow>> {
        self.store.subscribe_audit()
    }

    /// Audit entries after `after`.
    pub async fn audit(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, Error> {
        let rows = self.store.audit_after(after, limit.clamp(1, 1000)).await?;
        Ok(rows.into_iter().map(audit_entry).collect())
    }

    /// The sequence number of the last audit entry (0 when the log is empty).
    pub async fn audit_head_seq(&self) -> Result<i64, Error> {
        Ok(self.store.audit_head().await?.map_or(0, |(seq, _)| seq))
    }

    /// Verifies the whole hash chain and names the first bad entry.
    pub async fn verify_audit(&self) -> Result<Verification, Error> {
        let mut verifier = Verifier::default();
        let mut after = 0;
        'pages: loop {
            let rows = self.store.audit_after(after, 1000).await?;
            for r in &rows {
                let entry = audit::Entry {
                    seq: r.seq,
                    at: r.at.as_millis(),
                    event: &r.event,
                    subject: r.subject.as_deref(),
                    data: &r.data,
                    prev_hash: &r.prev_hash,
                    hash: &r.hash,
                };
                if !verifier.push(&entry) {
                    break 'pages;
                }
                after = r.seq;
            }
            if rows.len() < 1000 {
                break;
            }
        }
        let head = self.store.audit_head().await?;
        let mut verification = verifier.finish(head.clone());
        if let Some(key) = self.store.audit_key() {
            verification.keyed = true;
            let mac = self.store.audit_head_mac().await?;
            let signed = match (&head, &mac) {
                (Some((seq, hash)), Some(mac)) => {
                    bool::from(audit::head_mac(&key, *seq, hash).ct_eq(mac.as_slice()))
                }
                (None, None) => true,
                _ => false,
            };
            if !signed && verification.ok {
                verification.ok = false;
                verification.first_bad = Some(audit::BadEntry {
                    seq: head.map_or(0, |(seq, _)| seq),
                    problem: "forged".into(),
                    detail: "the chain's head is not signed with this daemon's audit key: the log \
                             was rewritten by someone who could write the database but not read \
                             the key"
                        .into(),
                });
            }
        }
        Ok(verification)
    }

    pub(super) fn publish(&self, rows: Vec<AuditRow>) {
        self.store.publish(&rows);
    }
}
