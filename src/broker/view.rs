//! Reading requests: one, a page of pending or decided ones, as the API shows them (with the
//! narrow rules a person could save, and the targets as the policy sees them).

use super::*;

/// What the policy matches for a stored request: its targets as normalised when it was asked
/// (a shell command is parsed again, so rows stored before a parser change are read as the
/// parser reads them now; a tool call's arguments are resolved again).
pub(super) fn subject_of(
    row: &PermissionRow,
    home: Option<&std::path::Path>,
) -> Result<Subject, Error> {
    let request: NewPermission = from_json(&row.body)?;
    let kind = request
        .kind
        .ok_or_else(|| Error::Corrupt(format!("request {} has no kind", row.id)))?;
    let targets = match (kind, request.command.as_deref()) {
        (Kind::Shell, Some(command)) => agentgate_policy::shell::targets(command),
        _ => from_json(&row.targets)?,
    };
    Ok(Subject {
        input: normalize::tool_input(kind, &request, home),
        kind,
        targets,
        operation: request.operation,
        agent: request.agent,
        workspace: request.workspace,
        session: request.session,
        requester: Some(row.requester_actor.clone()),
    })
}

/// The targets' texts, as the API lists them.
pub(super) fn texts(targets: &[Target]) -> Vec<String> {
    targets.iter().map(|t| t.text.clone()).collect()
}

/// A `cursor` from a previous page as (created_at, id), or a 400 naming the field.
fn page_cursor(cursor: Option<&str>) -> Result<Option<(Timestamp, String)>, Error> {
    let parse = |c: &str| {
        let (at, id) = c.split_once('.')?;
        Some((Timestamp::from_millis(at.parse().ok()?), id.to_owned()))
    };
    cursor
        .map(|c| parse(c).ok_or_else(|| invalid("cursor", "not a cursor from a previous page")))
        .transpose()
}

impl Broker {
    /// One request, for its requester or a `read` holder. A request past its deadline is timed
    /// out first, so nobody ever sees a stale pending.
    pub async fn get(&self, who: &Principal, id: &str) -> Result<PermissionView, Error> {
        let row = self.load_for(who, id).await?;
        self.view(row).await
    }

    /// The stored row of a request `who` may follow (timed out first if past its deadline).
    pub(super) async fn load_for(&self, who: &Principal, id: &str) -> Result<PermissionRow, Error> {
        let row = self.load(id).await?;
        if row.requester_actor != who.actor() && !who.scopes.allows(Scope::Read) {
            return Err(Error::NotYours);
        }
        Ok(row)
    }

    pub(super) async fn load(&self, id: &str) -> Result<PermissionRow, Error> {
        let row = self
            .store
            .permission(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        if row.status == Status::Pending && row.deadline.is_some_and(|d| d <= self.clock.now()) {
            self.expire(&row.id).await?;
            return self
                .store
                .permission(id)
                .await?
                .ok_or_else(|| Error::NotFound(id.to_owned()));
        }
        Ok(row)
    }

    /// Lists requests in creation order, optionally of one status, a page at a time.
    pub async fn list(
        &self,
        status: Option<Status>,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<PermissionPage, Error> {
        self.expire_due().await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self
            .store
            .list_permissions(status, page_cursor(cursor)?, limit + 1)
            .await?;
        self.page(rows, limit).await
    }

    /// Decided requests, newest first, a page at a time (the web inbox's history).
    pub async fn history(&self, cursor: Option<&str>, limit: i64) -> Result<PermissionPage, Error> {
        self.expire_due().await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self
            .store
            .decided_permissions(page_cursor(cursor)?, limit + 1)
            .await?;
        self.page(rows, limit).await
    }

    /// A page of `limit` views from `rows` (fetched with one extra row to tell whether more follow),
    /// with the cursor of its last entry when they do.
    pub(super) async fn page(
        &self,
        rows: Vec<PermissionRow>,
        limit: i64,
    ) -> Result<PermissionPage, Error> {
        let more = rows.len() as i64 > limit;
        let mut permissions = Vec::new();
        for row in rows.into_iter().take(limit as usize) {
            permissions.push(self.view(row).await?);
        }
        let next_cursor = more
            .then(|| permissions.last())
            .flatten()
            .map(|p| format!("{}.{}", p.created_at.as_millis(), p.id));
        Ok(PermissionPage {
            permissions,
            next_cursor,
        })
    }

    pub(super) async fn view(&self, row: PermissionRow) -> Result<PermissionView, Error> {
        let approvals = if row.approvals_required > 1 {
            self.store.approvals(&row.id).await?
        } else {
            Vec::new()
        };
        let status = row.status;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == row.kind)
            .ok_or_else(|| Error::Corrupt(format!("kind `{}`", row.kind)))?;
        let subject = subject_of(&row, self.settings.home.as_deref())?;
        let suggested_rules = if status == Status::Pending {
            narrow_rules(&subject, false)
        } else {
            Vec::new()
        };
        let parts = subject.targets;
        Ok(PermissionView {
            suggested_rules,
            id: row.id,
            status,
            kind,
            summary: row.summary,
            targets: texts(&parts),
            parts,
            request: from_json(&row.body)?,
            requester: row.requester_name,
            created_at: row.created_at,
            deadline: row.deadline,
            decided_at: row.decided_at,
            decided_by: row.decided_by.as_deref().map(from_json).transpose()?,
            message: row.message,
            approvals_required: u32::try_from(row.approvals_required).unwrap_or(1),
            approvals,
            allowed: status == Status::Allowed,
        })
    }
}
