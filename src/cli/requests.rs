//! The broker's client verbs: `request`, `pending`, `approve`, `deny`, `rules`, `audit`,
//! `policy explain`.

use super::terminal::{esay, say};
use agentgate_policy::{Effect, FileOp, Kind};
use anyhow::Context;
use reqwest::Method;
use serde_json::Value;

use super::client::Client;
use super::commands::print_json;
use super::{AuditCommand, Command, PolicyCommand, RequestArgs, RulesCommand};
use crate::api::events;
use crate::api::{
    AuditEntry, AuditPage, Expiry, Explanation, NewPermission, NewRule, PermissionPage,
    PermissionView, Remember, ReplyOutcome, ReplyRequest, RuleList, RuleView, Status, Verdict,
};
use crate::audit::Verification;

/// Exit status of `request`: allowed.
pub const EXIT_ALLOWED: u8 = 0;
/// Denied (by a rule or a person).
pub const EXIT_DENIED: u8 = 1;
/// Nobody answered in time.
pub const EXIT_TIMEOUT: u8 = 2;
/// Withdrawn by its requester before anyone answered.
pub const EXIT_CANCELLED: u8 = 5;
/// Still pending (no `--wait`).
pub const EXIT_PENDING: u8 = 4;

pub(super) enum BrokerCommand {
    Request(NewPermission, bool),
    Explain(NewPermission),
    Pending(bool),
    Reply(String, ReplyRequest),
    RulesList,
    RulesAdd(NewRule),
    RulesRm(String),
    Audit { follow: bool, after: i64 },
    Verify,
}

impl BrokerCommand {
    /// The broker verb `command` names, validated; `None` for other verbs.
    pub fn from(command: &Command) -> Option<anyhow::Result<BrokerCommand>> {
        Some(match command {
            Command::Request(args) => {
                permission(args).map(|p| BrokerCommand::Request(p, args.wait))
            }
            Command::Policy(PolicyCommand::Explain(args)) => {
                permission(args).map(BrokerCommand::Explain)
            }
            Command::Pending { watch } => Ok(BrokerCommand::Pending(*watch)),
            Command::Approve {
                id,
                session,
                always,
                expires,
                pattern,
                message,
            } => {
                let remember = if *always {
                    Remember::Always
                } else if *session {
                    Remember::Session
                } else {
                    Remember::Once
                };
                expiry(expires.as_deref()).map(|expires_in| {
                    BrokerCommand::Reply(
                        id.clone(),
                        ReplyRequest {
                            decision: Verdict::Allow,
                            remember,
                            expires_in,
                            message: message.clone(),
                            pattern: pattern.clone(),
                        },
                    )
                })
            }
            Command::Deny {
                id,
                message,
                always,
            } => Ok(BrokerCommand::Reply(
                id.clone(),
                ReplyRequest {
                    decision: Verdict::Deny,
                    remember: if *always {
                        Remember::Always
                    } else {
                        Remember::Once
                    },
                    expires_in: None,
                    message: message.clone(),
                    pattern: None,
                },
            )),
            Command::Rules(RulesCommand::List) => Ok(BrokerCommand::RulesList),
            Command::Rules(RulesCommand::Rm { id }) => Ok(BrokerCommand::RulesRm(id.clone())),
            Command::Rules(RulesCommand::Add {
                action,
                kind,
                pattern,
                agent,
                workspace,
                operations,
                timeout,
                approvals,
                expires,
            }) => (|| {
                Ok(BrokerCommand::RulesAdd(NewRule {
                    action: enum_arg::<Effect>("action", action)?,
                    kind: enum_arg::<Kind>("kind", kind)?,
                    pattern: pattern.clone(),
                    agent: agent.clone(),
                    workspace: workspace.clone(),
                    operations: if operations.is_empty() {
                        None
                    } else {
                        Some(
                            operations
                                .iter()
                                .map(|o| enum_arg::<FileOp>("operation", o))
                                .collect::<anyhow::Result<_>>()?,
                        )
                    },
                    timeout: *timeout,
                    approvals: *approvals,
                    expires_in: expiry(expires.as_deref())?,
                    input: None,
                    annotations: None,
                }))
            })(),
            Command::Audit {
                command: Some(AuditCommand::Verify),
                ..
            } => Ok(BrokerCommand::Verify),
            Command::Audit {
                command: None,
                follow,
                after,
            } => Ok(BrokerCommand::Audit {
                follow: *follow,
                after: *after,
            }),
            _ => return None,
        })
    }
}

fn expiry(text: Option<&str>) -> anyhow::Result<Option<Expiry>> {
    text.map(|t| Expiry::parse(t).map_err(anyhow::Error::msg))
        .transpose()
}

/// Parses an enum the way the API does, so the message lists the valid values.
fn enum_arg<T: serde::de::DeserializeOwned>(flag: &str, value: &str) -> anyhow::Result<T> {
    serde_json::from_value(Value::String(value.to_owned()))
        .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

fn permission(a: &RequestArgs) -> anyhow::Result<NewPermission> {
    let input = a
        .input
        .as_deref()
        .map(|t| serde_json::from_str::<Value>(t).context("--input must be JSON"))
        .transpose()?;
    let (path, paths) = match a.paths.as_slice() {
        [] => (None, None),
        [one] => (Some(one.clone()), None),
        many => (None, Some(many.to_vec())),
    };
    Ok(NewPermission {
        kind: Some(enum_arg::<Kind>("kind", &a.kind)?),
        operation: a
            .operation
            .as_deref()
            .map(|o| enum_arg::<FileOp>("operation", o))
            .transpose()?,
        path,
        paths,
        target_path: a.target_path.clone(),
        content_preview: None,
        old_content: None,
        command: a.command.clone(),
        cwd: a.cwd.clone(),
        name: a.name.clone(),
        input,
        hints: None,
        url: a.network_url.clone(),
        method: a.method.clone(),
        agent: a.agent.clone(),
        session: a.session.clone(),
        workspace: a.workspace.clone(),
        reason: a.reason.clone(),
        timeout: a.timeout,
    })
}

pub(super) async fn run(client: &Client, json: bool, command: BrokerCommand) -> anyhow::Result<u8> {
    match command {
        BrokerCommand::Request(request, wait) => {
            let mut view: PermissionView = client
                .send(Method::POST, "/api/v1/permissions", Some(&request))
                .await?;
            if !json && view.status == Status::Pending {
                esay!(
                    "{} is pending: waiting for a person ({})",
                    view.id,
                    deadline_text(&view)
                );
            }
            while wait && view.status == Status::Pending {
                view = client
                    .get(&format!("/api/v1/permissions/{}?wait=300", view.id))
                    .await?;
            }
            if json {
                print_json(&view)?;
            } else {
                say!("{}", outcome_line(&view));
            }
            Ok(match view.status {
                Status::Allowed => EXIT_ALLOWED,
                Status::Denied => EXIT_DENIED,
                Status::Timeout => EXIT_TIMEOUT,
                Status::Cancelled => EXIT_CANCELLED,
                Status::Pending => EXIT_PENDING,
            })
        }
        BrokerCommand::Explain(request) => {
            let e: Explanation = client
                .send(Method::POST, "/api/v1/policy/explain", Some(&request))
                .await?;
            if json {
                print_json(&e)?;
            } else {
                say!("decision: {}", e.decision.effect);
                say!("why:      {}", e.decision.reason);
                let shell = e.shell.as_deref().unwrap_or_default();
                for part in &e.decision.parts {
                    say!("part `{}`: {}", part.target, part.effect);
                    if let Some(p) = shell.iter().find(|p| p.text == part.target) {
                        if !p.assignments.is_empty() {
                            say!("    assignments: {}", p.assignments.join(" "));
                        }
                        if !p.redirects.is_empty() {
                            say!("    redirections: {}", p.redirects.join(" "));
                        }
                        if !p.also.is_empty() {
                            say!("    ask/deny rules also see: {}", p.also.join(" | "));
                        }
                    }
                    if let Some(why) = &part.opaque {
                        say!("    opaque, no allow rule covers it: {why}");
                    }
                    if part.matched.is_empty() {
                        say!("    no rule matches (default: ask)");
                    }
                    for m in &part.matched {
                        let won = if part.rule.as_deref() == Some(m.rule.as_str()) {
                            "  <- decides"
                        } else {
                            ""
                        };
                        say!("    {} {} `{}`{won}", m.rule, m.action, m.pattern);
                    }
                }
            }
            Ok(0)
        }
        BrokerCommand::Pending(watch) => {
            // Follow from here: what is pending now is listed, what happens next is streamed.
            let head: Value = client.get("/api/v1/audit/head").await?;
            let head = head["seq"].as_i64().unwrap_or(0);
            let page: PermissionPage = client
                .get("/api/v1/permissions?status=pending&limit=500")
                .await?;
            if json && !watch {
                print_json(&page)?;
            } else {
                for p in &page.permissions {
                    say!("{}", pending_line(p));
                }
                if page.permissions.is_empty() && !watch {
                    say!("nothing is pending");
                }
            }
            if watch {
                follow(client, json, head, true).await?;
            }
            Ok(0)
        }
        BrokerCommand::Reply(id, reply) => {
            let out: ReplyOutcome = client
                .send(
                    Method::POST,
                    &format!("/api/v1/permissions/{id}/reply"),
                    Some(&reply),
                )
                .await?;
            if json {
                print_json(&out)?;
            } else {
                say!("{}", outcome_line(&out.permission));
                for r in &out.remembered {
                    say!("remembered {}", rule_line(r));
                }
                for other in &out.resolved {
                    say!("also resolved {other}");
                }
            }
            Ok(0)
        }
        BrokerCommand::RulesList => {
            let list: RuleList = client.get("/api/v1/rules").await?;
            if json {
                print_json(&list)?;
            } else {
                for r in &list.rules {
                    say!("{}", rule_line(r));
                }
            }
            Ok(0)
        }
        BrokerCommand::RulesAdd(rule) => {
            let added: Value = client
                .send(Method::POST, "/api/v1/rules", Some(&rule))
                .await?;
            if json {
                print_json(&added)?;
            } else {
                let view: RuleView = serde_json::from_value(added["rule"].clone())?;
                say!("added {}", rule_line(&view));
            }
            Ok(0)
        }
        BrokerCommand::RulesRm(id) => {
            let removed: RuleView = client
                .send::<(), _>(Method::DELETE, &format!("/api/v1/rules/{id}"), None)
                .await?;
            if json {
                print_json(&removed)?;
            } else {
                say!("removed {}", rule_line(&removed));
            }
            Ok(0)
        }
        BrokerCommand::Audit {
            follow: keep,
            after,
        } => {
            let mut last = after;
            loop {
                let page: AuditPage = client
                    .get(&format!("/api/v1/audit?after={last}&limit=1000"))
                    .await?;
                for e in &page.entries {
                    print_entry(e, json)?;
                    last = e.seq;
                }
                if page.entries.len() < 1000 {
                    break;
                }
            }
            if keep {
                follow(client, json, last, false).await?;
            }
            Ok(0)
        }
        BrokerCommand::Verify => {
            let v: Verification = client.get("/api/v1/audit/verify").await?;
            if json {
                print_json(&v)?;
            } else if let Some(bad) = &v.first_bad {
                say!(
                    "audit log BROKEN at entry {} ({}): {}",
                    bad.seq,
                    bad.problem,
                    bad.detail
                );
            } else {
                say!(
                    "audit log intact: {} entries verified{}",
                    v.entries,
                    if v.keyed {
                        ", head signed with the audit key"
                    } else {
                        " (unkeyed: a rewrite by someone who can write the database is not detectable; see audit_key_file)"
                    }
                );
            }
            Ok(if v.ok { 0 } else { 1 })
        }
    }
}

/// Follows the event stream after `last`, printing entries (or pending-request changes).
async fn follow(client: &Client, json: bool, last: i64, pending_view: bool) -> anyhow::Result<()> {
    let mut response = client
        .stream(&format!("/api/v1/events?last_event_id={last}"))
        .await?;
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await.context("reading the event stream")? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            if data.is_empty() {
                continue;
            }
            let entry: AuditEntry =
                serde_json::from_str(&data).context("an event that is not an audit entry")?;
            if pending_view {
                match entry.event.as_str() {
                    events::PERMISSION_CREATED if entry.data["policy"] == "ask" => say!(
                        "+ {} {} (from {})",
                        entry.subject.as_deref().unwrap_or("?"),
                        entry.data["summary"].as_str().unwrap_or(""),
                        entry.data["requester"].as_str().unwrap_or("?")
                    ),
                    events::PERMISSION_DECIDED => say!(
                        "- {} {}",
                        entry.subject.as_deref().unwrap_or("?"),
                        entry.data["status"].as_str().unwrap_or("")
                    ),
                    _ => {}
                }
            } else {
                print_entry(&entry, json)?;
            }
        }
    }
    Ok(())
}

fn print_entry(e: &AuditEntry, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(e)?);
    } else {
        say!(
            "{:>6} {} {:<20} {} {}",
            e.seq,
            e.at,
            e.event,
            e.subject.as_deref().unwrap_or("-"),
            e.data
        );
    }
    Ok(())
}

fn deadline_text(p: &PermissionView) -> String {
    match p.deadline {
        Some(d) => format!("times out at {d}"),
        None => "no timeout".to_owned(),
    }
}

fn pending_line(p: &PermissionView) -> String {
    let agent = p.request.agent.as_deref().unwrap_or(&p.requester);
    let reason = p
        .request
        .reason
        .as_deref()
        .map(|r| format!(" — {r}"))
        .unwrap_or_default();
    format!(
        "{}  {:<9} {}  [{agent}, {}]{reason}",
        p.id,
        p.kind.as_str(),
        p.summary,
        deadline_text(p)
    )
}

fn outcome_line(p: &PermissionView) -> String {
    let by = match &p.decided_by {
        Some(b) => match (&b.approver, &b.rule) {
            (Some(a), _) => format!(" by {a}"),
            (None, Some(r)) => format!(" by rule {r}"),
            _ => String::new(),
        },
        None => String::new(),
    };
    let message = p
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    format!("{} {}{by}{message}", p.id, p.status.as_str())
}

fn rule_line(r: &RuleView) -> String {
    let mut filters = Vec::new();
    if let Some(a) = &r.spec.agent {
        filters.push(format!("agent={a}"));
    }
    if let Some(w) = &r.spec.workspace {
        filters.push(format!("workspace={w}"));
    }
    if let Some(s) = &r.spec.session {
        filters.push(format!("session={s}"));
    }
    if let Some(e) = r.expires {
        filters.push(format!("expires={e}"));
    }
    let ro = if r.read_only { " (config)" } else { "" };
    format!(
        "{}{ro}  {} {} `{}` {}",
        r.spec.id.as_deref().unwrap_or("?"),
        r.spec.action,
        r.spec.kind,
        r.spec.pattern,
        filters.join(" ")
    )
}
