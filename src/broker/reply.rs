//! A person answers: first writer wins, no credential answers its own request, N-of-M counts
//! people, and a remembered rule is narrow, bound to the requester, and never releases its
//! author's own requests.

use super::*;

/// A replier's edited pattern must still cover the request it answers (every target) and, unless
/// the replier holds `admin` (who may write any rule), be no wider than the suggested rule.
fn check_pattern(
    who: &Principal,
    subject: &Subject,
    suggested: &[RuleSpec],
    pattern: &str,
) -> Result<(), Error> {
    let kind = subject.kind;
    let probe = Rule::new(
        RuleSpec::new(Effect::Allow, kind, pattern),
        "probe".into(),
        Origin::Config { index: 0 },
    )
    .map_err(rule_error)?;
    let set = RuleSet::new(vec![probe]).map_err(rule_error)?;
    let only_targets = Subject {
        agent: None,
        workspace: None,
        session: None,
        requester: None,
        operation: subject.operation,
        ..subject.clone()
    };
    if set.decide(&only_targets, 0).effect != Effect::Allow {
        return Err(invalid(
            "pattern",
            "the edited pattern must match every target of the request it answers",
        ));
    }
    if !who.scopes.allows(Scope::Admin) && !agentgate_policy::no_wider(pattern, suggested) {
        return Err(Error::PatternTooWide(format!(
            "the pattern `{pattern}` is wider than the suggested rule `{}`; only `admin` may write wider rules",
            suggested.first().map_or("", |s| s.pattern.as_str())
        )));
    }
    Ok(())
}

impl Broker {
    /// A person answers. First writer wins; a credential never answers its own request; `deny`
    /// wins over any approvals; `allow` needs the request's number of distinct approvers.
    pub async fn reply(
        &self,
        who: &Principal,
        id: &str,
        reply: ReplyRequest,
    ) -> Result<ReplyOutcome, Error> {
        if reply.message.as_ref().is_some_and(|m| m.len() > 4096) {
            return Err(invalid("message", "at most 4096 bytes"));
        }
        if reply.remember == Remember::Once
            && (reply.pattern.is_some() || reply.expires_in.is_some())
        {
            return Err(invalid(
                "remember",
                "`pattern` and `expires_in` need remember `session` or `always`",
            ));
        }
        let row = self.load(id).await?;
        if row.requester_actor == who.actor() {
            return Err(Error::SelfApproval);
        }
        if row.status != Status::Pending {
            return Err(Error::AlreadyDecided(Box::new(self.view(row).await?)));
        }
        if reply.decision == Verdict::Allow
            && row.approvals_required > 1
            && reply.remember != Remember::Once
        {
            // Only an `ask` rule asks for several approvers, and `ask` outranks any remembered
            // allow: such a rule could never take effect, so none is saved or half-recorded.
            return Err(invalid(
                "remember",
                format!(
                    "this request needs {} approvals (an ask rule requires them), and a remembered allow never outranks an ask rule; allow it `once`",
                    row.approvals_required
                ),
            ));
        }
        let now = self.clock.now();
        let rules = self.remembered_rules(who, &row, &reply, now)?;
        let mut approvers = vec![who.name.clone()];
        if reply.decision == Verdict::Allow && row.approvals_required > 1 {
            let entry = NewAudit {
                at: now,
                event: events::PERMISSION_APPROVED,
                subject: Some(row.id.clone()),
                data: to_json(
                    &json!({"approver": who.name, "person": who.person, "required": row.approvals_required}),
                ),
            };
            let added = self
                .store
                .add_approval(&row.id, &who.approver(), &who.name, now, vec![entry])
                .await;
            let (names, audit_rows) = match added {
                Ok(Some(x)) => x,
                Ok(None) => return Err(self.already_decided(id).await),
                Err(store::Error::Conflict(store::Conflict::Approval)) => {
                    return Err(Error::AlreadyApproved);
                }
                Err(e) => return Err(e.into()),
            };
            self.publish(audit_rows);
            if (names.len() as i64) < row.approvals_required {
                let permission = self.view(self.load(id).await?).await?;
                return Ok(ReplyOutcome {
                    permission,
                    remembered: Vec::new(),
                    resolved: Vec::new(),
                });
            }
            approvers = names;
        }
        let status = match reply.decision {
            Verdict::Allow => Status::Allowed,
            Verdict::Deny => Status::Denied,
        };
        let by = DecidedBy {
            source: Source::Person,
            rule: None,
            approver: Some(who.name.clone()),
            approvers: if approvers.len() > 1 {
                approvers
            } else {
                Vec::new()
            },
            auto_resolved: false,
            reason: None,
        };
        if !self
            .settle(&row.id, status, &by, reply.message.clone(), &rules, now)
            .await?
        {
            return Err(self.already_decided(id).await);
        }
        let mut resolved = Vec::new();
        if !rules.is_empty() {
            // `settle` already put the new rules in force.
            resolved = self.resolve_covered(who.actor()).await?;
        }
        let permission = self.view(self.load(id).await?).await?;
        Ok(ReplyOutcome {
            permission,
            remembered: rules.into_iter().map(|r| self.rule_view(r)).collect(),
            resolved,
        })
    }

    /// Closes a pending request that its requester withdrew (`who`, e.g. an MCP client that
    /// cancelled its call; `note` says why): recorded as `cancelled`, never as anyone's decision.
    /// `false`: it was no longer pending.
    pub async fn withdraw(&self, id: &str, who: &str, note: Option<String>) -> Result<bool, Error> {
        let reason = format!("withdrawn by {who}");
        self.close_from_outside(id, Status::Cancelled, Source::Requester, who, reason, note)
            .await
    }

    /// Closes a pending request that was answered in the agent's own interface (`upstream`,
    /// e.g. opencode's TUI): recorded with that provenance, never as a person's decision through
    /// agentgate. `false`: it was no longer pending.
    pub async fn answered_upstream(
        &self,
        id: &str,
        allowed: bool,
        upstream: &str,
        note: Option<String>,
    ) -> Result<bool, Error> {
        let status = if allowed {
            Status::Allowed
        } else {
            Status::Denied
        };
        let reason = format!("answered in {upstream} itself");
        self.close_from_outside(id, status, Source::Upstream, upstream, reason, note)
            .await
    }

    /// Settles a pending request as `status`, closed by `who` outside agentgate's own replies
    /// (the requester, or the agent's interface): never recorded as a person's decision.
    async fn close_from_outside(
        &self,
        id: &str,
        status: Status,
        source: Source,
        who: &str,
        reason: String,
        note: Option<String>,
    ) -> Result<bool, Error> {
        let by = DecidedBy {
            source,
            rule: None,
            approver: Some(who.to_owned()),
            approvers: Vec::new(),
            auto_resolved: false,
            reason: Some(reason),
        };
        self.settle(id, status, &by, note, &[], self.clock.now())
            .await
    }

    pub(super) async fn already_decided(&self, id: &str) -> Error {
        match self.store.permission(id).await {
            Ok(Some(row)) => match self.view(row).await {
                Ok(view) => Error::AlreadyDecided(Box::new(view)),
                Err(e) => e,
            },
            Ok(None) => Error::NotFound(id.to_owned()),
            Err(e) => e.into(),
        }
    }

    /// The narrow rules a `session` or `always` reply saves.
    pub(super) fn remembered_rules(
        &self,
        who: &Principal,
        row: &PermissionRow,
        reply: &ReplyRequest,
        now: Timestamp,
    ) -> Result<Vec<Rule>, Error> {
        let session_only = match reply.remember {
            Remember::Once => return Ok(Vec::new()),
            Remember::Session => true,
            Remember::Always => false,
        };
        if session_only && row.session.is_none() {
            return Err(invalid(
                "remember",
                "`session` needs a request that names its session",
            ));
        }
        let subject = subject_of(row, self.settings.home.as_deref())?;
        let mut specs = narrow_rules(&subject, session_only);
        if specs.is_empty() {
            return Err(invalid(
                "remember",
                "no rule can cover this request (a part the policy cannot know statically); answer it `once`",
            ));
        }
        if let Some(pattern) = &reply.pattern {
            if specs.len() != 1 {
                return Err(invalid(
                    "pattern",
                    "only a request with one target can take an edited pattern",
                ));
            }
            check_pattern(who, &subject, &specs, pattern)?;
            if let Some(spec) = specs.first_mut() {
                spec.pattern = pattern.clone();
            }
        }
        let expires_at = match reply.expires_in {
            None | Some(Expiry::Never) => None,
            Some(Expiry::After(d)) => Some(now.plus(d).as_millis()),
        };
        let action = match reply.decision {
            Verdict::Allow => Effect::Allow,
            Verdict::Deny => Effect::Deny,
        };
        specs
            .into_iter()
            .map(|mut spec| {
                spec.action = action;
                spec.expires_at = expires_at;
                let id = secret::new_id("rem_").map_err(|_| Error::Random)?;
                let origin = Origin::Remembered {
                    request_id: row.id.clone(),
                    approver: who.name.clone(),
                    at: now.as_millis(),
                };
                Rule::new(spec, id, origin).map_err(rule_error)
            })
            .collect()
    }

    /// Decides every pending request that the current rules now allow or deny, except those
    /// `creator` made: a credential never releases its own request, not even through a rule.
    pub(super) async fn resolve_covered(&self, creator: &str) -> Result<Vec<String>, Error> {
        let now = self.clock.now();
        let policy = self.policy();
        let mut resolved = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .list_permissions(Some(Status::Pending), cursor.take(), MAX_PAGE)
                .await?;
            let last = page.last().map(|r| (r.created_at, r.id.clone()));
            for row in page.iter().filter(|r| r.requester_actor != creator) {
                let decision = policy.decide(
                    &subject_of(row, self.settings.home.as_deref())?,
                    now.as_millis(),
                );
                let status = match decision.effect {
                    Effect::Ask => continue,
                    Effect::Allow => Status::Allowed,
                    Effect::Deny => Status::Denied,
                };
                let by = DecidedBy {
                    source: Source::Rule,
                    rule: decision.rule.clone(),
                    approver: None,
                    approvers: Vec::new(),
                    auto_resolved: true,
                    reason: Some(decision.reason.clone()),
                };
                if self.settle(&row.id, status, &by, None, &[], now).await? {
                    resolved.push(row.id.clone());
                }
            }
            if (page.len() as i64) < MAX_PAGE {
                return Ok(resolved);
            }
            cursor = last;
        }
    }
}
