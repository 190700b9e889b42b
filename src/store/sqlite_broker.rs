//! SQLite: permission requests, approvals, stored rules and the hash-chained audit log.
//!
//! Every state change is one transaction that also appends its audit entries, so a decision that
//! cannot be audited is not made (it fails closed).

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::sqlite::SqliteStore;
use super::sqlite::column::{corrupt, opt_ts, ts};
use super::sqlite_audit::{AUDIT_HEAD, append_audit, parse_head, parse_head_mac, record_head};
use super::{
    AuditRow, Conflict, Decided, Error, Inserted, NewAudit, PendingBudget, PermissionRow, RuleRow,
};
use crate::clock::Timestamp;

const PERMISSION_COLUMNS: &str = "id, kind, summary, body, targets, agent, session, workspace, requester_id, \
     requester_name, status, created_at, deadline, approvals_required, decided_at, decided_by, message, \
     requester_actor";

impl SqliteStore {
    pub(super) async fn insert_permission(
        &self,
        row: &PermissionRow,
        audit: Vec<NewAudit>,
        budget: Option<PendingBudget>,
    ) -> Result<Inserted, Error> {
        let row = row.clone();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    if let Some(b) = budget {
                        let (pending, old_content): (i64, i64) = sqlx::query_as(
                            "SELECT COUNT(*), \
                             COALESCE(SUM(LENGTH(json_extract(body, '$.old_content'))), 0) \
                             FROM permissions WHERE status = 'pending' AND requester_actor = ?",
                        )
                        .bind(&row.requester_actor)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(Error::Backend)?;
                        if pending >= b.max_count || old_content + b.adding > b.max_old_content {
                            return Ok(Inserted::OverBudget {
                                pending,
                                old_content,
                            });
                        }
                    }
                    sqlx::query(&format!(
                        "INSERT INTO permissions ({PERMISSION_COLUMNS}) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ))
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
                    .bind(&row.status)
                    .bind(row.created_at.as_millis())
                    .bind(row.deadline.map(Timestamp::as_millis))
                    .bind(row.approvals_required)
                    .bind(row.decided_at.map(Timestamp::as_millis))
                    .bind(&row.decided_by)
                    .bind(&row.message)
                    .bind(&row.requester_actor)
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::Backend)?;
                    append_audit(conn, audit).await.map(Inserted::Stored)
                })
            })
            .await
    }

    pub(super) async fn permission(&self, id: &str) -> Result<Option<PermissionRow>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {PERMISSION_COLUMNS} FROM permissions WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::Backend)?;
        row.as_ref().map(permission_from_row).transpose()
    }

    pub(super) async fn list_permissions(
        &self,
        status: Option<&str>,
        after: Option<(Timestamp, String)>,
        limit: i64,
    ) -> Result<Vec<PermissionRow>, Error> {
        let (after_at, after_id) =
            after.map_or((i64::MIN, String::new()), |(t, id)| (t.as_millis(), id));
        let rows = sqlx::query(&format!(
            "SELECT {PERMISSION_COLUMNS} FROM permissions \
             WHERE (?1 IS NULL OR status = ?1) AND (created_at, id) > (?2, ?3) \
             ORDER BY created_at, id LIMIT ?4"
        ))
        .bind(status)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Backend)?;
        rows.iter().map(permission_from_row).collect()
    }

    pub(super) async fn decided_permissions(
        &self,
        before: Option<(Timestamp, String)>,
        limit: i64,
    ) -> Result<Vec<PermissionRow>, Error> {
        let (before_at, before_id) =
            before.map_or((i64::MAX, String::new()), |(t, id)| (t.as_millis(), id));
        let rows = sqlx::query(&format!(
            "SELECT {PERMISSION_COLUMNS} FROM permissions \
             WHERE status != 'pending' AND (created_at, id) < (?1, ?2) \
             ORDER BY created_at DESC, id DESC LIMIT ?3"
        ))
        .bind(before_at)
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Backend)?;
        rows.iter().map(permission_from_row).collect()
    }

    pub(super) async fn due_permissions(&self, now: Timestamp) -> Result<Vec<String>, Error> {
        sqlx::query_scalar(
            "SELECT id FROM permissions WHERE status = 'pending' AND deadline IS NOT NULL \
             AND deadline <= ? ORDER BY deadline",
        )
        .bind(now.as_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Backend)
    }

    pub(super) async fn next_deadline(&self) -> Result<Option<Timestamp>, Error> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(deadline) FROM permissions WHERE status = 'pending' AND deadline IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(Error::Backend)?;
        Ok(at.map(Timestamp::from_millis))
    }

    pub(super) async fn decide_permission(
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
                    let changed = sqlx::query(
                        "UPDATE permissions SET status = ?, decided_at = ?, decided_by = ?, message = ? \
                         WHERE id = ? AND status = 'pending'",
                    )
                    .bind(&decided.status)
                    .bind(decided.at.as_millis())
                    .bind(&decided.by)
                    .bind(&decided.message)
                    .bind(&decided.id)
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::Backend)?
                    .rows_affected();
                    if changed == 0 {
                        return Ok(None);
                    }
                    insert_rules(conn, &new_rules).await?;
                    append_audit(conn, audit).await.map(Some)
                })
            })
            .await
    }

    pub(super) async fn add_approval(
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
                    let pending: Option<i64> = sqlx::query_scalar(
                        "SELECT 1 FROM permissions WHERE id = ? AND status = 'pending'",
                    )
                    .bind(&permission_id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(Error::Backend)?;
                    if pending.is_none() {
                        return Ok(None);
                    }
                    let inserted = sqlx::query(
                        "INSERT INTO approvals (permission_id, token_id, token_name, at) \
                         VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    )
                    .bind(&permission_id)
                    .bind(&token_id)
                    .bind(&token_name)
                    .bind(at.as_millis())
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::Backend)?
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

    pub(super) async fn approvals(&self, permission_id: &str) -> Result<Vec<String>, Error> {
        let mut conn = self.pool.acquire().await.map_err(Error::Backend)?;
        approvers(&mut conn, permission_id).await
    }

    pub(super) async fn rules(&self) -> Result<Vec<RuleRow>, Error> {
        let rows =
            sqlx::query("SELECT id, spec, origin, created_at FROM rules ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await
                .map_err(Error::Backend)?;
        rows.iter()
            .map(|r| {
                Ok(RuleRow {
                    id: r.try_get("id").map_err(corrupt)?,
                    spec: r.try_get("spec").map_err(corrupt)?,
                    origin: r.try_get("origin").map_err(corrupt)?,
                    created_at: Timestamp::from_millis(r.try_get("created_at").map_err(corrupt)?),
                })
            })
            .collect()
    }

    pub(super) async fn add_rules(
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

    pub(super) async fn delete_rule(
        &self,
        id: &str,
        audit: Vec<NewAudit>,
    ) -> Result<Option<Vec<AuditRow>>, Error> {
        let id = id.to_owned();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let deleted = sqlx::query("DELETE FROM rules WHERE id = ?")
                        .bind(&id)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::Backend)?
                        .rows_affected();
                    if deleted == 0 {
                        return Ok(None);
                    }
                    append_audit(conn, audit).await.map(Some)
                })
            })
            .await
    }

    pub(super) async fn append(&self, audit: Vec<NewAudit>) -> Result<Vec<AuditRow>, Error> {
        self.writer
            .write(move |conn| Box::pin(async move { append_audit(conn, audit).await }))
            .await
    }

    pub(super) async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, Error> {
        let rows = sqlx::query(
            "SELECT seq, at, event, subject, data, prev_hash, hash FROM audit \
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Backend)?;
        rows.iter().map(audit_from_row).collect()
    }

    /// The recorded head's HMAC, in keyed mode.
    pub(super) async fn audit_head_mac(&self) -> Result<Option<Vec<u8>>, Error> {
        let head: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(AUDIT_HEAD)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::Backend)?;
        Ok(head.and_then(|h| parse_head_mac(&h)))
    }

    /// Turns keyed mode on. A head recorded without a signature (a log from before keyed mode)
    /// is signed now, trusted on first use.
    pub(super) async fn use_audit_key(&self, key: [u8; 32]) -> Result<(), Error> {
        if self.audit_key.set(key).is_err() && self.audit_key.get() != Some(&key) {
            return Err(Error::Conflict(Conflict::AuditKey));
        }
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let head: Option<String> =
                        sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                            .bind(AUDIT_HEAD)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(Error::Backend)?;
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
    pub(super) fn audit_key(&self) -> Option<[u8; 32]> {
        self.audit_key.get().copied()
    }

    pub(super) async fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>, Error> {
        let head: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(AUDIT_HEAD)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::Backend)?;
        Ok(head.and_then(|h| parse_head(&h)))
    }
}

async fn approvers(conn: &mut SqliteConnection, permission_id: &str) -> Result<Vec<String>, Error> {
    sqlx::query_scalar(
        "SELECT token_name FROM approvals WHERE permission_id = ? ORDER BY at, token_name",
    )
    .bind(permission_id)
    .fetch_all(conn)
    .await
    .map_err(Error::Backend)
}

async fn insert_rules(conn: &mut SqliteConnection, rules: &[RuleRow]) -> Result<(), Error> {
    for rule in rules {
        sqlx::query("INSERT INTO rules (id, spec, origin, created_at) VALUES (?, ?, ?, ?)")
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
                _ => Error::Backend(e),
            })?;
    }
    Ok(())
}

fn permission_from_row(r: &SqliteRow) -> Result<PermissionRow, Error> {
    Ok(PermissionRow {
        id: r.try_get("id").map_err(corrupt)?,
        kind: r.try_get("kind").map_err(corrupt)?,
        summary: r.try_get("summary").map_err(corrupt)?,
        body: r.try_get("body").map_err(corrupt)?,
        targets: r.try_get("targets").map_err(corrupt)?,
        agent: r.try_get("agent").map_err(corrupt)?,
        session: r.try_get("session").map_err(corrupt)?,
        workspace: r.try_get("workspace").map_err(corrupt)?,
        requester_actor: r
            .try_get::<Option<String>, _>("requester_actor")
            .map_err(corrupt)?
            .map_or_else(|| r.try_get("requester_id").map_err(corrupt), Ok)?,
        requester_id: r.try_get("requester_id").map_err(corrupt)?,
        requester_name: r.try_get("requester_name").map_err(corrupt)?,
        status: r.try_get("status").map_err(corrupt)?,
        created_at: ts(r, "created_at")?,
        deadline: opt_ts(r, "deadline")?,
        approvals_required: r.try_get("approvals_required").map_err(corrupt)?,
        decided_at: opt_ts(r, "decided_at")?,
        decided_by: r.try_get("decided_by").map_err(corrupt)?,
        message: r.try_get("message").map_err(corrupt)?,
    })
}

fn audit_from_row(r: &SqliteRow) -> Result<AuditRow, Error> {
    Ok(AuditRow {
        seq: r.try_get("seq").map_err(corrupt)?,
        at: ts(r, "at")?,
        event: r.try_get("event").map_err(corrupt)?,
        subject: r.try_get("subject").map_err(corrupt)?,
        data: r.try_get("data").map_err(corrupt)?,
        prev_hash: r.try_get("prev_hash").map_err(corrupt)?,
        hash: r.try_get("hash").map_err(corrupt)?,
    })
}
