//! The MCP server at `/mcp` (streamable HTTP, the official Rust SDK `rmcp`): the permission broker
//! as MCP tools.
//!
//! - `request_permission`: any broker request kind; waits (bounded) for the decision;
//! - `approval_prompt`: Claude Code's `--permission-prompt-tool` contract;
//! - `list_pending` and `reply`: for approvers.
//!
//! Authentication, the scope check and Host/Origin checks happen in `http` before a message reaches
//! this module; each tool still checks its own scope against the caller, which `http` attaches to
//! the request (defence in depth). Tools never decide anything themselves: the broker does.

use std::sync::Arc;
use std::time::Duration;

use agentgate_policy::Scope;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::agents::tool_call::{self, Caller};
use crate::api::{NewPermission, PermissionView, ReplyRequest, Status};
use crate::auth::Principal;
use crate::broker::{self, Broker};

/// The `/mcp` service.
pub type Service = StreamableHttpService<Gate, LocalSessionManager>;

/// How long `request_permission` waits for a person unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// The MCP endpoint (also the OAuth resource: `http://<host>/mcp`).
pub const MCP_PATH: &str = "/mcp";

/// The scope a tool needs, or `None` for an unknown tool (rmcp answers those).
pub fn required_scope(tool: &str) -> Option<Scope> {
    match tool {
        "request_permission" | "approval_prompt" => Some(Scope::Request),
        "list_pending" | "reply" => Some(Scope::Approve),
        _ => None,
    }
}

/// Builds the `/mcp` service. Host and Origin are checked by `http::guard` for every route, with
/// the configured hosts; rmcp's own loopback-only host list would refuse those, so it is off.
pub fn service(broker: Arc<Broker>) -> Service {
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    StreamableHttpService::new(
        move || {
            Ok(Gate {
                broker: broker.clone(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// The MCP server handler.
#[derive(Clone)]
pub struct Gate {
    broker: Arc<Broker>,
}

fn schema(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

fn tools() -> Vec<Tool> {
    let kinds = json!(["file", "shell", "tool", "network", "directory"]);
    let ops = json!([
        "read",
        "create",
        "modify",
        "overwrite",
        "delete",
        "rename",
        "move"
    ]);
    vec![
        Tool::new(
            "request_permission",
            "Ask the person (through agentgate's policy, then its inbox) before acting. Returns \
             the decision: status allowed, denied or timeout (a timeout is a denial), the rule or \
             person that decided, and any message. Waits up to `wait` seconds (default 120, at \
             most 300); a request still pending then is returned as pending with its id.",
            schema(json!({
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": kinds, "description": "What the agent wants to do"},
                    "operation": {"type": "string", "enum": ops, "description": "file: the operation"},
                    "path": {"type": "string", "description": "file, directory: absolute path"},
                    "paths": {"type": "array", "items": {"type": "string"}, "description": "file: several paths"},
                    "target_path": {"type": "string", "description": "file: destination of rename/move"},
                    "content_preview": {"type": "string", "description": "file: what will be written (≤ 4 KiB)"},
                    "old_content": {"type": "string", "description": "file: current content, for a diff"},
                    "command": {"type": "string", "description": "shell: the command line"},
                    "cwd": {"type": "string", "description": "shell: working directory"},
                    "name": {"type": "string", "description": "tool: the tool's name"},
                    "input": {"description": "tool: its input"},
                    "url": {"type": "string", "description": "network: the URL"},
                    "method": {"type": "string", "description": "network: the HTTP method"},
                    "agent": {"type": "string"},
                    "session": {"type": "string"},
                    "workspace": {"type": "string"},
                    "reason": {"type": "string", "description": "Why the agent wants this"},
                    "timeout": {"type": "integer", "minimum": 0, "description": "Seconds the request waits for a person (0: indefinitely)"},
                    "wait": {"type": "integer", "minimum": 0, "maximum": 300, "description": "Seconds this call waits for the decision"}
                },
                "required": ["kind"]
            })),
        ),
        Tool::new(
            "approval_prompt",
            "Claude Code's permission prompt tool (--permission-prompt-tool): decides whether \
             `tool_name` may run with `input`, by policy first, then by a person. Returns JSON \
             text {\"behavior\":\"allow\",\"updatedInput\":…} or {\"behavior\":\"deny\",\"message\":…}.",
            schema(json!({
                "type": "object",
                "properties": {
                    "tool_name": {"type": "string"},
                    "input": {"type": "object"},
                    "tool_use_id": {"type": "string"}
                },
                "required": ["tool_name", "input"]
            })),
        ),
        Tool::new(
            "list_pending",
            "Permission requests waiting for a person (approvers only).",
            schema(json!({"type": "object", "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": 100}
            }})),
        ),
        Tool::new(
            "reply",
            "Answer a pending permission request (approvers only). A credential cannot answer its \
             own request.",
            schema(json!({
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "decision": {"type": "string", "enum": ["allow", "deny"]},
                    "remember": {"type": "string", "enum": ["once", "session", "always"]},
                    "message": {"type": "string"},
                    "expires_in": {"type": "string", "description": "For remember=always: e.g. 1h, 7d"}
                },
                "required": ["id", "decision"]
            })),
        ),
    ]
}

fn text(result: Value, is_error: bool) -> CallToolResult {
    let block = ContentBlock::text(result.to_string());
    if is_error {
        CallToolResult::error(vec![block])
    } else {
        CallToolResult::success(vec![block])
    }
}

fn failure(message: impl std::fmt::Display) -> CallToolResult {
    text(json!({"error": message.to_string()}), true)
}

/// The caller `http` attached to the request.
fn caller(context: &RequestContext<RoleServer>) -> Option<Arc<Principal>> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Arc<Principal>>())
        .cloned()
}

fn view_json(view: &PermissionView) -> Value {
    json!({
        "id": view.id,
        "status": view.status,
        "allowed": view.allowed,
        "decided_by": view.decided_by,
        "message": view.message,
    })
}

impl Gate {
    async fn request_permission(&self, who: &Principal, mut args: JsonObject) -> CallToolResult {
        let wait = match args.remove("wait") {
            None | Some(Value::Null) => DEFAULT_WAIT,
            Some(v) => match v.as_u64() {
                Some(secs) => Duration::from_secs(secs).min(broker::MAX_WAIT),
                None => return failure("`wait` must be a whole number of seconds"),
            },
        };
        let request: NewPermission = match serde_json::from_value(Value::Object(args)) {
            Ok(r) => r,
            Err(e) => return failure(format!("invalid request: {e}")),
        };
        match self.broker.ask_and_wait(who, request, Some(wait)).await {
            Ok(view) => text(view_json(&view), false),
            Err(e) => failure(e),
        }
    }

    async fn approval_prompt(&self, who: &Principal, args: JsonObject) -> CallToolResult {
        let Some(tool_name) = args.get("tool_name").and_then(Value::as_str) else {
            return failure("`tool_name` is required");
        };
        let Some(input) = args.get("input").filter(|v| v.is_object()) else {
            return failure("`input` must be an object");
        };
        let caller = Caller {
            agent: "claude-code".into(),
            ..Caller::default()
        };
        let request = tool_call::request(&caller, tool_name, input);
        let view = match self.broker.ask_and_wait(who, request, None).await {
            Ok(view) => view,
            Err(broker::Error::Invalid(_)) => {
                // The mapped request did not validate (a relative path, say): ask about the
                // tool call as such instead.
                match self
                    .broker
                    .ask_and_wait(who, tool_call::as_tool(&caller, tool_name, input), None)
                    .await
                {
                    Ok(view) => view,
                    Err(e) => return failure(e),
                }
            }
            Err(e) => return failure(e),
        };
        let answer = if view.status == Status::Allowed {
            json!({"behavior": "allow", "updatedInput": input})
        } else {
            json!({"behavior": "deny", "message": tool_call::denial_words(&view)})
        };
        text(answer, false)
    }

    async fn list_pending(&self, args: JsonObject) -> CallToolResult {
        let limit = args.get("limit").and_then(Value::as_i64).unwrap_or(50);
        match self.broker.list(Some(Status::Pending), None, limit).await {
            Ok(page) => text(
                json!({"pending": page.permissions.iter().map(|p| json!({
                    "id": p.id,
                    "kind": p.kind,
                    "summary": p.summary,
                    "agent": p.request.agent,
                    "reason": p.request.reason,
                    "deadline": p.deadline,
                })).collect::<Vec<_>>()}),
                false,
            ),
            Err(e) => failure(e),
        }
    }

    async fn reply(&self, who: &Principal, mut args: JsonObject) -> CallToolResult {
        let Some(id) = args
            .remove("id")
            .and_then(|v| v.as_str().map(str::to_owned))
        else {
            return failure("`id` is required");
        };
        let reply: ReplyRequest = match serde_json::from_value(Value::Object(args)) {
            Ok(r) => r,
            Err(e) => return failure(format!("invalid reply: {e}")),
        };
        match self.broker.reply(who, &id, reply).await {
            Ok(outcome) => text(serde_json::to_value(&outcome).unwrap_or(Value::Null), false),
            Err(e) => failure(e),
        }
    }
}

impl ServerHandler for Gate {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agentgate", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "agentgate decides whether an agent may act. Call request_permission (or use \
                 approval_prompt as Claude Code's --permission-prompt-tool) before acting; \
                 approvers use list_pending and reply.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(needed) = required_scope(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        };
        let Some(who) = caller(&context) else {
            return Ok(failure("no verified credential is attached to this call").into());
        };
        if !who.scopes.allows(needed) {
            return Ok(failure(format!("this tool needs the `{needed}` scope")).into());
        }
        let args = request.arguments.unwrap_or_default();
        let work = async {
            match &*request.name {
                "request_permission" => self.request_permission(&who, args).await,
                "approval_prompt" => self.approval_prompt(&who, args).await,
                "list_pending" => self.list_pending(args).await,
                _ => self.reply(&who, args).await,
            }
        };
        // A client that cancels the call (or goes away) stops the wait; the request itself stays
        // in the broker, pending or decided, as it would for any other client.
        let result = tokio::select! {
            result = work => result,
            () = context.ct.cancelled() => failure("the call was cancelled"),
        };
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_tool_has_a_scope() {
        for tool in tools() {
            assert!(required_scope(&tool.name).is_some(), "{}", tool.name);
        }
        assert_eq!(required_scope("nope"), None);
    }
}
