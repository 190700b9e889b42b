//! One client session at `/mcp/{name}` relayed to its own upstream session.
//!
//! The client's `initialize` starts the upstream (a child process in its own process group, killed
//! when the session ends) and answers with the upstream's own capabilities. From then on every
//! message passes through as it is — requests, notifications, and the server's own requests to the
//! client (elicitation, sampling, roots), which are forwarded to the client and never answered by
//! us — except two: `tools/call`, which the broker decides first, and `tools/list`, from which
//! the tools the policy denies outright are left out. A client's cancellation cancels what it
//! cancels: the upstream request, or the pending broker request.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{
    CallToolRequest, CallToolResult, CancelledNotificationParam, ClientRequest, ContentBlock,
    ErrorData, Implementation, InitializeRequestParams, InitializeResult, PaginatedRequestParams,
    ProgressNotificationParam, RequestOptionalParam, ServerResult, ToolAnnotations,
};
use rmcp::service::{Peer, PeerRequestOptions, RequestContext, RunningService, ServiceExt};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, RoleServer};
use tokio::io::AsyncBufReadExt;

use super::McpServer;
use super::config;
use super::decide::{self, Verdict};
use super::health::Health;
use super::upstream::{ProgressTokens, Upstream};
use crate::auth::Principal;
use crate::broker::Broker;

/// How long a call's progress token stays the client's after the upstream answered: rmcp may
/// still be handing on a progress notification the upstream sent before its answer.
const PROGRESS_GRACE: Duration = Duration::from_secs(2);

/// The server side of one client session.
pub struct Relay {
    server: Arc<McpServer>,
    health: Health,
    tokens: ProgressTokens,
    broker: Arc<Broker>,
    live: Arc<AtomicUsize>,
    children: super::Children,
    session: tokio::sync::OnceCell<Session>,
}

pub(super) struct Session {
    pub(super) upstream: RunningService<RoleClient, Upstream>,
    /// The tools' annotations as the upstream last listed them.
    hints: std::sync::Mutex<std::collections::HashMap<String, ToolAnnotations>>,
    /// Whether the tools were listed once (by the client, or by us before a first call).
    listed: std::sync::atomic::AtomicBool,
    _slot: Slot,
    _child: Option<super::ChildGuard>,
}

/// One of the upstream's `max_sessions`, given back when the session ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Relay {
    /// A relay for a new client session.
    pub fn new(
        server: Arc<McpServer>,
        broker: Arc<Broker>,
        live: Arc<AtomicUsize>,
        children: super::Children,
        health: Health,
    ) -> Relay {
        Relay {
            server,
            health,
            tokens: ProgressTokens::default(),
            broker,
            live,
            children,
            session: tokio::sync::OnceCell::new(),
        }
    }

    fn name(&self) -> &str {
        &self.server.name
    }

    pub(super) fn session(&self) -> Result<&Session, ErrorData> {
        self.session
            .get()
            .ok_or_else(|| ErrorData::invalid_request("initialize the session first", None))
    }

    fn gone(&self, e: impl std::fmt::Display) -> ErrorData {
        ErrorData::internal_error(
            format!(
                "upstream MCP server `{}` failed: {e}; if it exited, start a new session",
                self.name()
            ),
            None,
        )
    }

    /// Starts the upstream for this session and answers the client's `initialize` with it.
    pub(super) async fn start(
        &self,
        params: InitializeRequestParams,
        client: Peer<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        let name = self.name().to_owned();
        let taken = self.live.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.live.clone());
        if taken >= self.server.max_sessions {
            return Err(ErrorData::internal_error(
                format!(
                    "upstream MCP server `{name}` already has its max_sessions ({}) sessions open; \
                     end one or try later",
                    self.server.max_sessions
                ),
                None,
            ));
        }
        let upstream = Upstream {
            client,
            info: params,
            tokens: self.tokens.clone(),
        };
        if let Some(wait) = self.health.waiting() {
            return Err(ErrorData::internal_error(
                format!(
                    "upstream MCP server `{name}` failed to start {} times in a row; the next \
                     try is in {:.1} s",
                    self.health.failures(),
                    wait.as_secs_f64()
                ),
                None,
            ));
        }
        let connected = self.connect(upstream).await;
        self.health.record(connected.is_ok());
        let (running, child) = connected?;
        let Some(info) = running.peer().peer_info() else {
            return Err(self.gone("no initialize result"));
        };
        let theirs = info
            .server_info
            .clone()
            .unwrap_or_else(|| Implementation::new("unnamed", "unknown"));
        let mut answer = InitializeResult::new(info.capabilities.clone()).with_server_info(
            Implementation::new(format!("agentgate/{name}"), theirs.version.clone()).with_title(
                format!(
                    "{} {} through agentgate",
                    theirs.title.as_deref().unwrap_or(&theirs.name),
                    theirs.version
                ),
            ),
        );
        if let Some(instructions) = &info.instructions {
            answer = answer.with_instructions(instructions.clone());
        }
        answer.protocol_version = info.protocol_version.clone();
        let session = Session {
            upstream: running,
            hints: Default::default(),
            listed: Default::default(),
            _slot: slot,
            _child: child,
        };
        if self.session.set(session).is_err() {
            return Err(ErrorData::invalid_request("already initialized", None));
        }
        tracing::info!(mcp_server = name, "an upstream session started");
        Ok(answer)
    }

    /// Starts the upstream side of a session: a child, or a session on the HTTP server.
    async fn connect(
        &self,
        upstream: Upstream,
    ) -> Result<
        (
            RunningService<RoleClient, Upstream>,
            Option<super::ChildGuard>,
        ),
        ErrorData,
    > {
        Ok(match &self.server.upstream {
            config::Upstream::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let transport = self.spawn(command, args, env, cwd.as_deref())?;
                let child = transport.id().map(|pid| self.children.track(pid));
                (self.handshake(upstream.serve(transport)).await?, child)
            }
            config::Upstream::Http { url, bearer } => {
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                if let Some(bearer) = bearer {
                    let token = bearer
                        .read("bearer")
                        .map_err(|e| self.gone(format!("its credentials: {e}")))?;
                    config = config.auth_header(token);
                }
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .map_err(|e| self.gone(e))?;
                let transport = StreamableHttpClientTransport::with_client(http, config);
                (self.handshake(upstream.serve(transport)).await?, None)
            }
        })
    }

    /// Starts a stdio upstream in its own process group (killed when dropped); its stderr goes
    /// to our log under the server's name.
    fn spawn(
        &self,
        command: &str,
        args: &[String],
        env: &std::collections::BTreeMap<String, String>,
        cwd: Option<&std::path::Path>,
    ) -> Result<TokioChildProcess, ErrorData> {
        let name = self.name().to_owned();
        let mut process = tokio::process::Command::new(command);
        process.args(args).envs(env);
        if let Some(cwd) = cwd {
            process.current_dir(cwd);
        }
        let mut wrapped = CommandWrap::from(process);
        wrapped.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
        let (transport, stderr) = TokioChildProcess::builder(wrapped)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                ErrorData::internal_error(
                    format!(
                        "cannot start upstream MCP server `{name}` (`{}`): {e}",
                        crate::display::visible(command, 200)
                    ),
                    None,
                )
            })?;
        if let Some(stderr) = stderr {
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(
                        mcp_server = name,
                        "{}",
                        crate::display::visible(&line, 2000)
                    );
                }
            });
        }
        Ok(transport)
    }

    /// The upstream's side of `initialize`, within the server's timeout.
    async fn handshake<E: std::fmt::Display>(
        &self,
        serving: impl std::future::Future<Output = Result<RunningService<RoleClient, Upstream>, E>>,
    ) -> Result<RunningService<RoleClient, Upstream>, ErrorData> {
        let name = self.name();
        match tokio::time::timeout(self.server.timeout, serving).await {
            Ok(Ok(running)) => Ok(running),
            Ok(Err(e)) => Err(ErrorData::internal_error(
                format!(
                    "upstream MCP server `{name}` did not complete initialize (it is down, \
                     exited, or answered with something that is not MCP): {e}"
                ),
                None,
            )),
            Err(_) => Err(ErrorData::internal_error(
                format!(
                    "upstream MCP server `{name}` did not answer initialize within {} s",
                    self.server.timeout.as_secs()
                ),
                None,
            )),
        }
    }

    /// Sends `request` upstream and returns its answer; the client's cancellation is passed on.
    pub(super) async fn forward(
        &self,
        request: ClientRequest,
        context: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        let session = self.session()?;
        let mut options = PeerRequestOptions::no_options();
        options.timeout = Some(self.server.timeout);
        let handle = session
            .upstream
            .peer()
            .send_cancellable_request(request, options)
            .await
            .map_err(|e| self.gone(e))?;
        let (id, peer) = (handle.id.clone(), handle.peer.clone());
        // rmcp gives the upstream request a progress token of its own: the client's is put back
        // on the upstream's progress notifications for as long as the request runs.
        let mapped = context
            .meta
            .get_progress_token()
            .map(|theirs| self.tokens.map(handle.progress_token.clone(), theirs));
        tokio::select! {
            answer = handle.await_response() => {
                // rmcp hands the upstream's notifications to tasks of their own but delivers its
                // response at once, so the last progress notification may still be on its way:
                // it keeps the client's token a little longer, and the answer waits its turn.
                if let Some(mapped) = mapped {
                    tokio::spawn(async move {
                        tokio::time::sleep(PROGRESS_GRACE).await;
                        drop(mapped);
                    });
                }
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
                answer.map_err(|e| match e {
                    rmcp::service::ServiceError::McpError(e) => e,
                    other => self.gone(other),
                })
            }
            () = context.ct.cancelled() => {
                let _ = peer
                    .notify_cancelled(CancelledNotificationParam::new(
                        Some(id),
                        Some("the client cancelled".into()),
                    ))
                    .await;
                drop(mapped);
                Err(ErrorData::internal_error("cancelled by the client", None))
            }
        }
    }

    pub(super) async fn filtered_list(
        &self,
        request: ClientRequest,
        context: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        let mut answer = self.forward(request, context).await?;
        if let ServerResult::ListToolsResult(list) = &mut answer {
            self.remember(&list.tools);
            list.tools.retain(|tool| {
                !decide::hidden(
                    &self.broker,
                    self.name(),
                    &tool.name,
                    tool.annotations.as_ref(),
                )
            });
        }
        Ok(answer)
    }

    /// Keeps what the upstream says of its tools, for the broker's hints.
    fn remember(&self, tools: &[rmcp::model::Tool]) {
        let Ok(session) = self.session() else { return };
        session.listed.store(true, Ordering::Release);
        if let Ok(mut hints) = session.hints.lock() {
            for tool in tools {
                if let Some(a) = &tool.annotations {
                    hints.insert(tool.name.to_string(), a.clone());
                }
            }
        }
    }

    /// Lists the upstream's tools (every page) if nobody has yet: a client that calls a tool by
    /// name without listing must not escape a rule on what the server says of it.
    async fn learn_tools(&self, context: &RequestContext<RoleServer>) -> Result<(), ErrorData> {
        if self.session()?.listed.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut cursor = None;
        for _ in 0..100 {
            let params = cursor
                .take()
                .map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            let request = ClientRequest::ListToolsRequest(paginated(params));
            match self.forward(request, context).await? {
                ServerResult::ListToolsResult(list) => {
                    self.remember(&list.tools);
                    match list.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                other => return Err(unexpected(&other)),
            }
        }
        Ok(())
    }

    pub(super) async fn decided_call(
        &self,
        call: CallToolRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        self.learn_tools(&context).await?;
        let session = self.session()?;
        let Some(who) = caller(&context) else {
            return Err(ErrorData::internal_error("no verified caller", None));
        };
        let tool = call.params.name.to_string();
        let hint = session
            .hints
            .lock()
            .ok()
            .and_then(|h| h.get(&tool).cloned());
        let agent = context.peer.peer_info().map(|i| i.client_info.name.clone());
        let progress = context.meta.get_progress_token();
        let peer = context.peer.clone();
        let notify = move |n: u32, words: String| {
            let peer = peer.clone();
            let token = progress.clone();
            async move {
                if let Some(token) = token {
                    let _ = peer
                        .notify_progress(
                            ProgressNotificationParam::new(token, f64::from(n)).with_message(words),
                        )
                        .await;
                }
            }
        };
        let verdict = decide::tool_call(
            &self.broker,
            &who,
            decide::Call {
                server: self.name(),
                tool: &tool,
                arguments: call.params.arguments.as_ref(),
                hints: hint.as_ref(),
                agent,
            },
            &context.ct,
            notify,
        )
        .await;
        match verdict {
            Verdict::Allow => {
                self.forward(ClientRequest::CallToolRequest(call), &context)
                    .await
            }
            Verdict::Refuse(words) => {
                Ok(ServerResult::CallToolResult(CallToolResult::error(vec![
                    ContentBlock::text(words),
                ])))
            }
            Verdict::Invalid(words) => Err(ErrorData::invalid_params(words, None)),
            Verdict::Cancelled => Err(ErrorData::internal_error("cancelled by the client", None)),
        }
    }
}

/// An answer of the wrong kind for the request.
pub(super) fn unexpected(answer: &ServerResult) -> ErrorData {
    ErrorData::internal_error(
        format!("the upstream answered with the wrong kind of result: {answer:?}"),
        None,
    )
}

/// A list request with an optional cursor.
pub(super) fn paginated<M: Default>(
    params: Option<PaginatedRequestParams>,
) -> RequestOptionalParam<M, PaginatedRequestParams> {
    match params {
        Some(p) => RequestOptionalParam::with_param(p),
        None => RequestOptionalParam::default(),
    }
}

/// The verified principal `http` attached to the request.
fn caller(context: &RequestContext<RoleServer>) -> Option<Arc<Principal>> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Arc<Principal>>())
        .cloned()
}

/// How often a client waiting for a person hears progress (when it gave a progress token).
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
