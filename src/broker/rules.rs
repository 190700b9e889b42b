//! The policy in force: configured rules plus stored ones, reloaded after every change; the
//! rules API and `explain`.

use super::*;

pub(super) fn rule_entry(event: &'static str, rule: &Rule, at: Timestamp) -> NewAudit {
    NewAudit {
        at,
        event,
        subject: Some(rule.id.clone()),
        data: to_json(&json!({"rule": rule.spec, "origin": rule.origin})),
    }
}

fn rule_from_row(row: &RuleRow) -> Result<Rule, Error> {
    let spec: RuleSpec = from_json(&row.spec)?;
    let origin: Origin = from_json(&row.origin)?;
    Rule::new(spec, row.id.clone(), origin)
        .map_err(|e| Error::Corrupt(format!("rule {}: {e}", row.id)))
}

pub(super) fn rule_error(e: RuleError) -> Error {
    invalid(e.field, e.reason)
}

impl Broker {
    pub(super) fn policy(&self) -> Arc<RuleSet> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the stored rules and puts them in force. Reloads run one at a time, so one that read
    /// before a change cannot put its older rules in force after one that read after it.
    pub(super) async fn reload_policy(&self) -> Result<(), Error> {
        let _one_at_a_time = self.reloading.lock().await;
        let mut rules = self.configured.clone();
        for row in self.store.rules().await? {
            rules.push(rule_from_row(&row)?);
        }
        let set = RuleSet::new(rules).map_err(|e| Error::Corrupt(e.to_string()))?;
        match self.policy.write() {
            Ok(mut p) => *p = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        Ok(())
    }

    /// Explains what the policy would decide, without storing anything.
    pub fn explain(&self, request: NewPermission) -> Result<Explanation, Error> {
        let n =
            normalize::normalize(request, self.settings.home.as_deref()).map_err(Error::Invalid)?;
        let decision = self
            .policy()
            .decide(&n.subject, self.clock.now().as_millis());
        let shell = match n.subject.kind {
            Kind::Shell => agentgate_policy::shell::parse(&n.summary).ok(),
            _ => None,
        };
        Ok(Explanation {
            targets: n.subject.targets.iter().map(|t| t.text.clone()).collect(),
            shell,
            decision,
        })
    }

    /// Configured rules (read-only) then stored ones.
    pub fn rules(&self) -> Vec<RuleView> {
        self.policy()
            .rules()
            .iter()
            .cloned()
            .map(|r| self.rule_view(r))
            .collect()
    }

    pub(super) fn rule_view(&self, rule: Rule) -> RuleView {
        let read_only = matches!(rule.origin, Origin::Config { .. });
        RuleView {
            expires: rule.spec.expires_at.map(Timestamp::from_millis),
            spec: rule.spec,
            origin: rule.origin,
            read_only,
        }
    }

    /// Adds a rule (admin). Pending requests it now decides are resolved at once.
    pub async fn add_rule(
        &self,
        who: &Principal,
        new: NewRule,
    ) -> Result<(RuleView, Vec<String>), Error> {
        let now = self.clock.now();
        let spec = RuleSpec {
            agent: new.agent,
            workspace: new.workspace,
            operations: new.operations,
            timeout: new.timeout,
            approvals: new.approvals,
            input: new.input,
            annotations: new.annotations,
            expires_at: match new.expires_in {
                None | Some(Expiry::Never) => None,
                Some(Expiry::After(d)) => Some(now.plus(d).as_millis()),
            },
            ..RuleSpec::new(new.action, new.kind, new.pattern)
        };
        let id = secret::new_id("rule_").map_err(|_| Error::Random)?;
        let origin = Origin::Api {
            by: who.name.clone(),
            at: now.as_millis(),
        };
        let rule = Rule::new(spec, id, origin).map_err(rule_error)?;
        let row = RuleRow {
            id: rule.id.clone(),
            spec: to_json(&rule.spec),
            origin: to_json(&rule.origin),
            created_at: now,
        };
        let rows = self
            .store
            .add_rules(&[row], vec![rule_entry(events::RULE_CREATED, &rule, now)])
            .await?;
        self.publish(rows);
        self.reload_policy().await?;
        let resolved = self.resolve_covered(who.actor()).await?;
        Ok((self.rule_view(rule), resolved))
    }

    /// Deletes a stored rule; configured rules are read-only.
    pub async fn delete_rule(&self, id: &str) -> Result<RuleView, Error> {
        let policy = self.policy();
        let rule = policy
            .rules()
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| Error::RuleNotFound(id.to_owned()))?;
        if matches!(rule.origin, Origin::Config { .. }) {
            return Err(Error::RuleReadOnly(id.to_owned()));
        }
        let now = self.clock.now();
        let rows = self
            .store
            .delete_rule(id, vec![rule_entry(events::RULE_DELETED, &rule, now)])
            .await?
            .ok_or_else(|| Error::RuleNotFound(id.to_owned()))?;
        self.publish(rows);
        self.reload_policy().await?;
        Ok(self.rule_view(rule))
    }
}
