//! Scripted model servers the real agents talk to: OpenAI chat completions (opencode), the
//! Anthropic Messages API (Claude Code) and the OpenAI Responses API (Codex), each streamed as
//! the real APIs stream. A script says which shell command the model asks to run; every request
//! is recorded so a test can read what the agent sent back (the tool result, a denial's reason).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, header};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Default)]
pub struct Script {
    /// The command the model asks to run next.
    pub command: Mutex<String>,
    /// Or another tool call: its name and input.
    pub tool: Mutex<Option<(String, Value)>>,
    /// Every request body, in order.
    pub requests: Mutex<Vec<Value>>,
}

#[derive(Clone)]
pub struct Model {
    pub addr: SocketAddr,
    pub script: Arc<Script>,
}

impl Model {
    pub fn set_command(&self, command: &str) {
        *self.script.tool.lock().unwrap() = None;
        *self.script.command.lock().unwrap() = command.to_owned();
    }

    /// The model calls `name` with `input` instead of the shell.
    pub fn set_tool(&self, name: &str, input: Value) {
        *self.script.command.lock().unwrap() = "(tool)".into();
        *self.script.tool.lock().unwrap() = Some((name.to_owned(), input));
    }

    pub fn requests(&self) -> Vec<Value> {
        self.script.requests.lock().unwrap().clone()
    }

    /// Every request body as text, for finding what the agent sent back.
    pub fn transcript(&self) -> String {
        self.requests()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub async fn start() -> Model {
    let script = Arc::new(Script::default());
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/v1/responses", post(responses))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Model { addr, script }
}

fn sse(events: Vec<(Option<&str>, Value)>, done: bool) -> Response<Body> {
    let mut text = String::new();
    for (name, data) in events {
        if let Some(n) = name {
            text.push_str(&format!("event: {n}\n"));
        }
        text.push_str(&format!("data: {data}\n\n"));
    }
    if done {
        text.push_str("data: [DONE]\n\n");
    }
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(text))
        .unwrap()
}

fn record(script: &Script, body: &Value) -> String {
    script.requests.lock().unwrap().push(body.clone());
    script.command.lock().unwrap().clone()
}

/// The tool call to make: the scripted one, or the shell tool (`shell`) with the command.
fn call(script: &Script, shell: &str, command: &str) -> (String, Value) {
    script.tool.lock().unwrap().clone().unwrap_or_else(|| {
        (
            shell.to_owned(),
            json!({"command": command, "description": "Run the scripted command"}),
        )
    })
}

/// opencode: a `bash` tool call while the conversation has no tool result yet, then text.
async fn chat(State(script): State<Arc<Script>>, body: axum::Json<Value>) -> Response<Body> {
    let command = record(&script, &body);
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let answered = messages.last().is_some_and(|m| m["role"] == "tool");
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
            "model": "fake-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
        "model": "fake-model", "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
    if !has_tools || answered || command.is_empty() {
        let text = if has_tools { "Done." } else { "A title" };
        return sse(
            vec![
                (
                    None,
                    chunk(json!({"role": "assistant", "content": text}), Value::Null),
                ),
                (None, chunk(json!({}), json!("stop"))),
                (None, usage),
            ],
            true,
        );
    }
    let n = messages.len();
    let (name, arguments) = call(&script, "bash", &command);
    let arguments = arguments.to_string();
    sse(
        vec![
            (
                None,
                chunk(
                    json!({"role": "assistant", "tool_calls": [{"index": 0, "id": format!("call_{n}"),
                    "type": "function", "function": {"name": name, "arguments": arguments}}]}),
                    Value::Null,
                ),
            ),
            (None, chunk(json!({}), json!("tool_calls"))),
            (None, usage),
        ],
        true,
    )
}

/// Claude Code: a `Bash` tool use while the last user turn carries no tool result, then text.
async fn messages(State(script): State<Arc<Script>>, body: axum::Json<Value>) -> Response<Body> {
    let command = record(&script, &body);
    let has_bash = body["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "Bash"));
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let answered = last["content"]
        .as_array()
        .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
    let n = body["messages"].as_array().map_or(0, Vec::len);
    let start = json!({"type": "message_start", "message": {"id": format!("msg_{n}"), "type": "message",
        "role": "assistant", "model": "claude-fake", "content": [], "stop_reason": null,
        "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}}});
    let stop = |reason: &str| {
        vec![
            (
                Some("content_block_stop"),
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                Some("message_delta"),
                json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null},
                    "usage": {"output_tokens": 1}}),
            ),
            (Some("message_stop"), json!({"type": "message_stop"})),
        ]
    };
    let mut events = vec![(Some("message_start"), start)];
    if !has_bash || answered || command.is_empty() {
        events.push((
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ));
        events.push((
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Done."}}),
        ));
        events.extend(stop("end_turn"));
    } else {
        let (name, input) = call(&script, "Bash", &command);
        let input = input.to_string();
        events.push((
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use",
                "id": format!("toolu_fake{n:04}"), "name": name, "input": {}}}),
        ));
        events.push((
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": input}}),
        ));
        events.extend(stop("tool_use"));
    }
    sse(events, false)
}

/// Codex: an `exec_command` call while the input has no call output yet, then a message.
async fn responses(State(script): State<Arc<Script>>, body: axum::Json<Value>) -> Response<Body> {
    let command = record(&script, &body);
    let input = body["input"].as_array().cloned().unwrap_or_default();
    let answered = input.iter().any(|i| i["type"] == "function_call_output");
    let n = input.len();
    let id = format!("resp_{n}");
    let item = if answered || command.is_empty() {
        json!({"type": "message", "id": format!("msg_{n}"), "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Done.", "annotations": []}]})
    } else {
        json!({"type": "function_call", "id": format!("fc_{n}"), "call_id": format!("call_fake{n}"),
            "name": "exec_command", "arguments": json!({"cmd": command}).to_string(), "status": "completed"})
    };
    let usage = json!({"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 2});
    sse(
        vec![
            (
                Some("response.created"),
                json!({"type": "response.created", "response": {"id": id, "status": "in_progress", "output": []}}),
            ),
            (
                Some("response.output_item.added"),
                json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
            ),
            (
                Some("response.output_item.done"),
                json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
            ),
            (
                Some("response.completed"),
                json!({"type": "response.completed", "response": {"id": id, "status": "completed",
                    "output": [item], "usage": usage}}),
            ),
        ],
        false,
    )
}
