//! Wire types of the permission broker: requests, their views, replies, rules, events and audit.

use agentgate_policy::shell::Part;
use agentgate_policy::{Decision, Effect, FileOp, Kind, Origin, RuleSpec, Target};
use serde::{Deserialize, Serialize};

use super::Expiry;
use crate::clock::Timestamp;

/// `POST /api/v1/permissions`: one model for every kind. Which fields are required depends on the
/// kind; fields that do not belong to the kind are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPermission {
    /// file, shell, tool, network or directory.
    pub kind: Option<Kind>,
    /// file: read, create, modify, overwrite, delete, rename or move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<FileOp>,
    /// file, directory: the absolute path (`~` allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// file: several paths at once (bulk operations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// file: the destination of a rename or move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    /// file: what will be written (at most 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_preview: Option<String>,
    /// file: the current content, so a UI can show a diff (at most 256 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_content: Option<String>,
    /// shell: the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// shell: the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// tool: the tool's name, e.g. `server__tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// tool: its input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// tool: what the tool's server says of it (MCP annotations as `read_only`, `destructive`,
    /// `idempotent`, `open_world`): the server's own claim, which rules may match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<std::collections::BTreeMap<String, bool>>,
    /// network: the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// network: the HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The asking agent's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The agent's session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The agent's workspace (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The agent's explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds to wait for a person; 0 waits indefinitely. Default: the rule's, else 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a person.
    Pending,
    /// Allowed, by a rule or a person.
    Allowed,
    /// Denied, by a rule or a person.
    Denied,
    /// Nobody answered in time; the outcome is deny.
    Timeout,
    /// The requester withdrew it before anyone answered (an MCP client cancelled its call); the
    /// action never ran.
    Cancelled,
}

impl Status {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Allowed => "allowed",
            Status::Denied => "denied",
            Status::Timeout => "timeout",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Allowed,
            Status::Denied,
            Status::Timeout,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// Who or what decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A rule (configured or remembered), at creation or when a new rule covered it.
    Rule,
    /// A person (an `approve` credential).
    Person,
    /// Nobody answered in time.
    Timeout,
    /// Answered in the agent's own interface (opencode's TUI or web UI), not through agentgate:
    /// recorded as what happened there, never as a decision of ours.
    Upstream,
    /// The requester withdrew the request (an MCP client's `notifications/cancelled`).
    Requester,
}

/// The provenance of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidedBy {
    /// Rule, person or timeout.
    pub source: Source,
    /// The deciding rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The approving or denying token's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// Every approver, for N-of-M.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Resolved while pending because a new rule covered it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_resolved: bool,
    /// The policy's explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A permission request as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionView {
    /// `req_…`.
    pub id: String,
    /// Where it stands.
    pub status: Status,
    /// Its kind.
    pub kind: Kind,
    /// One line for people: the command, `modify /path`, the tool, `GET url`.
    pub summary: String,
    /// The normalised targets the policy matched.
    pub targets: Vec<String>,
    /// The same targets with what the policy knows about each: the forms ask and deny rules
    /// also match, and why no allow rule can cover a part (`opaque`).
    #[serde(default)]
    pub parts: Vec<Target>,
    /// The request as submitted, normalised.
    pub request: NewPermission,
    /// The token that asked.
    pub requester: String,
    /// When it was asked.
    pub created_at: Timestamp,
    /// When a pending request times out; `null`: it waits indefinitely.
    pub deadline: Option<Timestamp>,
    /// When it was decided.
    pub decided_at: Option<Timestamp>,
    /// How it was decided.
    pub decided_by: Option<DecidedBy>,
    /// A person's message; on deny, feedback for the agent.
    pub message: Option<String>,
    /// Distinct approvals needed to allow.
    pub approvals_required: u32,
    /// Approvers so far.
    pub approvals: Vec<String>,
    /// Whether the request is allowed now (`status == allowed`).
    pub allowed: bool,
    /// For a pending request: the narrow rules "always" would save (shown before saving; a reply
    /// may replace a single rule's pattern).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggested_rules: Vec<RuleSpec>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
}

/// How long a reply is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Remember {
    /// This request only.
    #[default]
    Once,
    /// Every matching request of the same session.
    Session,
    /// A narrow rule, saved.
    Always,
}

/// `POST /api/v1/permissions/{id}/reply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// allow or deny.
    pub decision: Verdict,
    /// once (default), session or always.
    #[serde(default)]
    pub remember: Remember,
    /// How long a remembered rule lasts; default never.
    #[serde(default)]
    pub expires_in: Option<Expiry>,
    /// Feedback for the agent (on deny) or a note.
    #[serde(default)]
    pub message: Option<String>,
    /// For `always`/`session`: the pattern to save instead of the suggested one (single-target
    /// requests only).
    #[serde(default)]
    pub pattern: Option<String>,
}

/// The answer to a reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplyOutcome {
    /// The request after the reply (still pending when more approvals are needed).
    pub permission: PermissionView,
    /// Rules saved by `session` or `always`.
    pub remembered: Vec<RuleView>,
    /// Other pending requests the new rules resolved.
    pub resolved: Vec<String>,
}

/// `GET /api/v1/permissions` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PermissionPage {
    /// The page, oldest first.
    pub permissions: Vec<PermissionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A rule as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleView {
    /// The rule.
    #[serde(flatten)]
    pub spec: RuleSpec,
    /// Where it came from.
    pub origin: Origin,
    /// Configured rules cannot be deleted through the API (edit config.toml).
    pub read_only: bool,
    /// The expiry as a time, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
}

/// `POST /api/v1/rules`: a rule added by an admin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// allow, ask or deny.
    pub action: Effect,
    /// The kind.
    pub kind: Kind,
    /// The glob.
    pub pattern: String,
    /// Agent filter (glob).
    #[serde(default)]
    pub agent: Option<String>,
    /// Workspace filter (path glob).
    #[serde(default)]
    pub workspace: Option<String>,
    /// File operations filter.
    #[serde(default)]
    pub operations: Option<Vec<FileOp>>,
    /// For ask: seconds.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// For ask: approvals.
    #[serde(default)]
    pub approvals: Option<u32>,
    /// Lifetime; default never.
    #[serde(default)]
    pub expires_in: Option<Expiry>,
    /// Tool rules: argument name (or JSON pointer) → glob; every one must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<std::collections::BTreeMap<String, String>>,
    /// Tool rules: what the tool's server says of it (`destructive: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, bool>>,
}

/// `GET /api/v1/rules`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleList {
    /// Configured rules first, then stored ones.
    pub rules: Vec<RuleView>,
}

/// `POST /api/v1/policy/explain`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    /// The normalised targets.
    pub targets: Vec<String>,
    /// For a shell command: every part with its assignments, redirections, the forms ask and
    /// deny rules also match, and why a part is opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<Part>>,
    /// The decision with every matching rule per target and why the winner won.
    pub decision: Decision,
}

/// One audit entry, which is also one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number; the SSE event id.
    pub seq: i64,
    /// When.
    pub at: Timestamp,
    /// `permission.created`, `permission.decided`, `permission.approved`, `rule.created`,
    /// `rule.deleted`.
    pub event: String,
    /// The request or rule id.
    pub subject: Option<String>,
    /// Details.
    pub data: serde_json::Value,
    /// This entry's hash (hex).
    pub hash: String,
}

/// `GET /api/v1/audit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    /// Entries in order.
    pub entries: Vec<AuditEntry>,
}
