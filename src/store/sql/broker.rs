//! Permission requests, approvals, stored rules and the hash-chained audit log.
//!
//! Every state change is one transaction that also appends its audit entries, so a decision that
//! cannot be audited is not made (it fails closed).

use super::audit::{Query, append_audit, record_head};
use super::column::decode;
use super::{Conn, This};
use crate::api::Status;
use crate::clock::Timestamp;
use crate::store::chain::{AUDIT_HEAD, parse_head, parse_head_mac};
use crate::store::{
    AuditRow, Conflict, Decided, Error, Inserted, NewAudit, PendingBudget, PermissionRow, RuleRow,
};

/// What a request is read as: who asked as an actor defaults to the token that asked (rows from
/// before the column).
const PERMISSION_SELECT: &str = "id, kind, summary, body, targets, agent, session, workspace, \
     requester_id, requester_name, status, created_at, deadline, approvals_required, decided_at, \
     decided_by, message, COALESCE(requester_actor, requester_id) AS requester_actor";
pub(super) const PERMISSION_COLUMNS: &str = "id, kind, summary, body, targets, agent, session, workspace, requester_id, \
     requester_name, status, created_at, deadline, approvals_required, decided_at, decided_by, message, \
     requester_actor";

impl This {
    pub(crate) async fn insert_permission(
        &self,
        row: &PermissionRow,
        audit: Vec<NewAudit>,
        budget: Option<PendingBudget>,
    ) -> Result<Inserted, Error> {
        let row = row.clone();
        if super::ONE_STATEMENT_REQUESTS {
            self.writer
                .write_unguarded(move |conn| {
                    Box::pin(super::store_request(conn, row, audit, budget))
                })
                .await
        } else {
            self.writer
                .write(move |conn| Box::pin(super::store_request(conn, row, audit, budget)))
                .await
        }
    }

    pub(crate) async fn permission(&self, id: &str) -> Result<Option<PermissionRow>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {PERMISSION_SELECT} FROM permissions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::db)?;
        row.as_ref().map(decode::<PermissionRow>).transpose()
    }

    pub(crate) async fn list_permissions(
        &self,
        status: Option<Status>,
        after: Option<(Timestamp, String)>,
        limit: i64,
    ) -> Result<Vec<PermissionRow>, Error> {
        let (after_at, after_id) =
            after.map_or((i64::MIN, String::new()), |(t, id)| (t.as_millis(), id));
        let rows = sqlx::query(&format!(
            "SELECT {PERMISSION_SELECT} FROM permissions \
             WHERE ($1 IS NULL OR status = $1) AND (created_at, id) > ($2, $3) \
             ORDER BY created_at, id LIMIT $4"
        ))
        .bind(status)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db)?;
        rows.iter().map(decode::<PermissionRow>).collect()
    }

    pub(crate) async fn decided_permissions(
        &self,
        before: Option<(Timestamp, String)>,
        limit: i64,
    ) -> Result<Vec<PermissionRow>, Error> {
        let (before_at, before_id) =
            before.map_or((i64::MAX, String::new()), |(t, id)| (t.as_millis(), id));
        let rows = sqlx::query(&format!(
            "SELECT {PERMISSION_SELECT} FROM permissions \
             WHERE status != 'pending' AND (created_at, id) < ($1, $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(before_at)
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db)?;
        rows.iter().map(decode::<PermissionRow>).collect()
    }

    pub(crate) async fn due_permissions(&self, now: Timestamp) -> Result<Vec<String>, Error> {
        sqlx::query_scalar(
            "SELECT id FROM permissions WHERE status = 'pending' AND deadline IS NOT NULL \
             AND deadline <= $1 ORDER BY deadline",
        )
        .bind(now.as_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db)
    }

    pub(crate) async fn next_deadline(&self) -> Result<Option<Timestamp>, Error> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(deadline) FROM permissions WHERE status = 'pending' AND deadline IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(Error::db)?;
        Ok(at.map(Timestamp::from_millis))
    }

    pub(crate) async fn decide_permission(
        &self,
        decided: &Decided,
        new_rules: &[RuleRow],
        audit: Vec<NewAudit>,
    ) -> Result<Option<Vec<AuditRow>>, Error> {
        let decided = decided.clone();
        let new_rules = new_rules.to_vec();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let changed: Option<(Option<String>, i64)> = sqlx::query_as(
                        "UPDATE permissions SET status = $1, decided_at = $2, decided_by = $3, message = $4 \
                         WHERE id = $5 AND status = 'pending' \
                         RETURNING requester_actor, old_content_bytes",
                    )
                    .bind(decided.status)
                    .bind(decided.at.as_millis())
                    .bind(&decided.by)
                    .bind(&decided.message)
                    .bind(&decided.id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(Error::db)?;
                    let Some((actor, old_content)) = changed else {
                        return Ok(None);
                    };
                    // No longer pending: its budget is free again.
                    sqlx::query(
                        "UPDATE pending_budgets SET pending = pending - 1, \
                         old_content = CASE WHEN old_content > $2 THEN old_content - $2 ELSE 0 END \
                         WHERE requester_actor = $1 AND pending > 0",
                    )
                    .bind(actor)
                    .bind(old_content)
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::db)?;
                    insert_rules(conn, &new_rules).await?;
                    append_audit(conn, audit).await.map(Some)
                })
            })
            .await
    }

    pub(crate) async fn add_approval(
        &self,
        permission_id: &str,
        token_id: &str,
        token_name: &str,
        at: Timestamp,
        audit: Vec<NewAudit>,
    ) -> Result<Option<(Vec<String>, Vec<AuditRow>)>, Error> {
        let (permission_id, token_id, token_name) = (
            permission_id.to_owned(),
            token_id.to_owned(),
            token_name.to_owned(),
        );
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let pending = sqlx::query(
                        "SELECT id FROM permissions WHERE id = $1 AND status = 'pending'",
                    )
                    .bind(&permission_id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(Error::db)?;
                    if pending.is_none() {
                        return Ok(None);
                    }
                    let inserted = sqlx::query(
                        "INSERT INTO approvals (permission_id, token_id, token_name, at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(&permission_id)
                    .bind(&token_id)
                    .bind(&token_name)
                    .bind(at.as_millis())
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::db)?
                    .rows_affected();
                    if inserted == 0 {
                        return Err(Error::Conflict(Conflict::Approval));
                    }
                    let names = approvers(conn, &permission_id).await?;
                    let rows = append_audit(conn, audit).await?;
                    Ok(Some((names, rows)))
                })
            })
            .await
    }

    pub(crate) async fn approvals(&self, permission_id: &str) -> Result<Vec<String>, Error> {
        let mut conn = self.pool.acquire().await.map_err(Error::db)?;
        approvers(&mut conn, permission_id).await
    }

    pub(crate) async fn rules(&self) -> Result<Vec<RuleRow>, Error> {
        let rows =
            sqlx::query("SELECT id, spec, origin, created_at FROM rules ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await
                .map_err(Error::db)?;
        rows.iter().map(decode::<RuleRow>).collect()
    }

    pub(crate) async fn add_rules(
        &self,
        rules: &[RuleRow],
        audit: Vec<NewAudit>,
    ) -> Result<Vec<AuditRow>, Error> {
        let rules = rules.to_vec();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    insert_rules(conn, &rules).await?;
                    append_audit(conn, audit).await
                })
            })
            .await
    }

    pub(crate) async fn delete_rule(
        &self,
        id: &str,
        audit: Vec<NewAudit>,
    ) -> Result<Option<Vec<AuditRow>>, Error> {
        let id = id.to_owned();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let deleted = sqlx::query("DELETE FROM rules WHERE id = $1")
                        .bind(&id)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db)?
                        .rows_affected();
                    if deleted == 0 {
                        return Ok(None);
                    }
                    append_audit(conn, audit).await.map(Some)
                })
            })
            .await
    }

    pub(crate) async fn append_audit(&self, audit: Vec<NewAudit>) -> Result<Vec<AuditRow>, Error> {
        self.writer
            .write(move |conn| Box::pin(async move { append_audit(conn, audit).await }))
            .await
    }

    pub(crate) async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, Error> {
        let rows = sqlx::query(
            "SELECT seq, at, event, subject, data, prev_hash, hash FROM audit \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db)?;
        rows.iter().map(decode::<AuditRow>).collect()
    }

    /// The recorded head's HMAC, in keyed mode.
    pub(crate) async fn audit_head_mac(&self) -> Result<Option<Vec<u8>>, Error> {
        let head: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(AUDIT_HEAD)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db)?;
        Ok(head.and_then(|h| parse_head_mac(&h)))
    }

    /// Turns keyed mode on. A head recorded without a signature (a log from before keyed mode)
    /// is signed now, trusted on first use.
    pub(crate) async fn use_audit_key(&self, key: [u8; 32]) -> Result<(), Error> {
        if self.audit_key.set(key).is_err() && self.audit_key.get() != Some(&key) {
            return Err(Error::Conflict(Conflict::AuditKey));
        }
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let head: Option<String> =
                        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                            .bind(AUDIT_HEAD)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(Error::db)?;
                    if let Some(text) = head.filter(|h| parse_head_mac(h).is_none())
                        && let Some((seq, hash)) = parse_head(&text)
                    {
                        record_head(conn, seq, &hash, Some(&key)).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Keyed mode's key, if on.
    pub(crate) fn audit_key(&self) -> Option<[u8; 32]> {
        self.audit_key.get().copied()
    }

    pub(crate) async fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>, Error> {
        let head: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(AUDIT_HEAD)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db)?;
        Ok(head.and_then(|h| parse_head(&h)))
    }
}

/// Binds a new request's columns as `$1`…`$18` ([`PERMISSION_COLUMNS`]) and its `old_content`
/// bytes as `$19`.
pub(super) fn bind_permission<'q>(
    query: Query<'q>,
    row: &'q PermissionRow,
    old_content: i64,
) -> Query<'q> {
    query
        .bind(&row.id)
        .bind(&row.kind)
        .bind(&row.summary)
        .bind(&row.body)
        .bind(&row.targets)
        .bind(&row.agent)
        .bind(&row.session)
        .bind(&row.workspace)
        .bind(&row.requester_id)
        .bind(&row.requester_name)
        .bind(row.status)
        .bind(row.created_at.as_millis())
        .bind(row.deadline.map(Timestamp::as_millis))
        .bind(row.approvals_required)
        .bind(row.decided_at.map(Timestamp::as_millis))
        .bind(&row.decided_by)
        .bind(&row.message)
        .bind(&row.requester_actor)
        .bind(old_content)
}

/// The answer to a request over its requester's budget: what the requester already holds.
pub(super) async fn over_budget(conn: &mut Conn, actor: &str) -> Result<Inserted, Error> {
    let (pending, old_content) = pending_of(conn, actor).await?;
    Ok(Inserted::OverBudget {
        pending,
        old_content,
    })
}

/// Whether a request could fit its budget at all (with nothing else pending).
pub(super) fn could_fit(b: PendingBudget) -> bool {
    b.max_count >= 1 && b.adding <= b.max_old_content
}

/// A requester's pending requests and their `old_content` bytes.
async fn pending_of(conn: &mut Conn, actor: &str) -> Result<(i64, i64), Error> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT pending, old_content FROM pending_budgets WHERE requester_actor = $1",
    )
    .bind(actor)
    .fetch_optional(&mut *conn)
    .await
    .map_err(Error::db)?;
    Ok(row.unwrap_or((0, 0)))
}

async fn approvers(conn: &mut Conn, permission_id: &str) -> Result<Vec<String>, Error> {
    sqlx::query_scalar(
        "SELECT token_name FROM approvals WHERE permission_id = $1 ORDER BY at, token_name",
    )
    .bind(permission_id)
    .fetch_all(conn)
    .await
    .map_err(Error::db)
}

async fn insert_rules(conn: &mut Conn, rules: &[RuleRow]) -> Result<(), Error> {
    for rule in rules {
        sqlx::query("INSERT INTO rules (id, spec, origin, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&rule.id)
            .bind(&rule.spec)
            .bind(&rule.origin)
            .bind(rule.created_at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    Error::Conflict(Conflict::RuleId)
                }
                _ => Error::db(e),
            })?;
    }
    Ok(())
}
