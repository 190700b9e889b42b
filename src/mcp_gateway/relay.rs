//! One client session at `/mcp/{name}` relayed to its own upstream session.
//!
//! The client's `initialize` starts the upstream (a child process in its own process group, killed
//! when the session ends) and answers with the upstream's own capabilities. From then on every
//! message passes through as it is — requests, notifications, and the server's own requests to the
//! client (elicitation, sampling, roots), which are forwarded to the client and never answered by
//! us — except two: `tools/call`, which the broker decides first, and `tools/list`, from which
//! the tools the policy denies outright are left out. A client's cancellation cancels what it
//! cancels: the upstream request, or the pending broker request.

// Logging levels and resources/subscribe are relayed for the clients that still send them.
#![allow(deprecated)]

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CallToolResult,
    CancelledNotificationParam, ClientNotification, ClientRequest, ClientResult, CompleteRequest,
    CompleteRequestParams, CompleteResult, ContentBlock, CustomNotification, CustomRequest,
    CustomResult, ErrorData, GetExtensions, GetPromptRequest, GetPromptRequestParams,
    GetPromptResponse, Implementation, InitializeRequestParams, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, PingRequest, ProgressNotification, ProgressNotificationParam,
    ProgressToken, ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse,
    RequestOptionalParam, RootsListChangedNotification, ServerNotification, ServerRequest,
    ServerResult, SetLevelRequest, SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams,
    ToolAnnotations, UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RequestContext, RunningService, Service,
    ServiceExt,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, RoleServer};
use tokio::io::AsyncBufReadExt;

use super::McpServer;
use super::config;
use super::decide::{self, Verdict};
use crate::auth::Principal;
use crate::broker::Broker;

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

struct Session {
    upstream: RunningService<RoleClient, Upstream>,
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

    fn session(&self) -> Result<&Session, ErrorData> {
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
    async fn start(
        &self,
        params: InitializeRequestParams,
        client: Peer<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
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
        Ok(ServerResult::InitializeResult(answer))
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
    async fn forward(
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
            answer = handle.await_response() => answer.map_err(|e| match e {
                rmcp::service::ServiceError::McpError(e) => e,
                other => self.gone(other),
            }),
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

    async fn list_tools(
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

    async fn call_tool(
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

/// The verified principal `http` attached to the request.
fn caller(context: &RequestContext<RoleServer>) -> Option<Arc<Principal>> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Arc<Principal>>())
        .cloned()
}

/// `request` with the `_meta` (a progress token) the client sent on it.
fn with_meta<R: GetExtensions>(mut request: R, context: &RequestContext<RoleServer>) -> R {
    request.extensions_mut().insert(context.meta.clone());
    request
}

fn unexpected(answer: &ServerResult) -> ErrorData {
    ErrorData::internal_error(
        format!("the upstream answered with the wrong kind of result: {answer:?}"),
        None,
    )
}

/// Forwards a request built from `params`, expecting the answer `$variant`.
macro_rules! relay {
    ($self:ident, $context:ident, $request:expr, $variant:ident) => {{
        let request = with_meta($request, &$context);
        match $self.forward(request, &$context).await? {
            ServerResult::$variant(result) => Ok(result),
            other => Err(unexpected(&other)),
        }
    }};
}

impl ServerHandler for Relay {
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        match self.start(request, context.peer.clone()).await? {
            ServerResult::InitializeResult(result) => Ok(result),
            other => Err(unexpected(&other)),
        }
    }

    async fn ping(&self, context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        if self.session.get().is_none() {
            return Ok(());
        }
        let request = ClientRequest::PingRequest(PingRequest::default());
        self.forward(request, &context).await.map(|_| ())
    }

    async fn complete(
        &self,
        params: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        relay!(
            self,
            context,
            ClientRequest::CompleteRequest(CompleteRequest::new(params)),
            CompleteResult
        )
    }

    async fn set_level(
        &self,
        params: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = with_meta(
            ClientRequest::SetLevelRequest(SetLevelRequest::new(params)),
            &context,
        );
        self.forward(request, &context).await.map(|_| ())
    }

    async fn get_prompt(
        &self,
        params: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        relay!(
            self,
            context,
            ClientRequest::GetPromptRequest(GetPromptRequest::new(params)),
            GetPromptResult
        )
        .map(GetPromptResponse::Complete)
    }

    async fn list_prompts(
        &self,
        params: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        relay!(
            self,
            context,
            ClientRequest::ListPromptsRequest(paginated(params)),
            ListPromptsResult
        )
    }

    async fn list_resources(
        &self,
        params: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        relay!(
            self,
            context,
            ClientRequest::ListResourcesRequest(paginated(params)),
            ListResourcesResult
        )
    }

    async fn list_resource_templates(
        &self,
        params: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        relay!(
            self,
            context,
            ClientRequest::ListResourceTemplatesRequest(paginated(params)),
            ListResourceTemplatesResult
        )
    }

    async fn read_resource(
        &self,
        params: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        relay!(
            self,
            context,
            ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params)),
            ReadResourceResult
        )
        .map(ReadResourceResponse::Complete)
    }

    async fn subscribe(
        &self,
        params: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = with_meta(
            ClientRequest::SubscribeRequest(SubscribeRequest::new(params)),
            &context,
        );
        self.forward(request, &context).await.map(|_| ())
    }

    async fn unsubscribe(
        &self,
        params: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = with_meta(
            ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(params)),
            &context,
        );
        self.forward(request, &context).await.map(|_| ())
    }

    async fn call_tool(
        &self,
        params: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let call = with_meta(CallToolRequest::new(params), &context);
        match self.call_tool(call, context).await? {
            ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(result)),
            other => Err(unexpected(&other)),
        }
    }

    async fn list_tools(
        &self,
        params: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let request = with_meta(ClientRequest::ListToolsRequest(paginated(params)), &context);
        match self.list_tools(request, &context).await? {
            ServerResult::ListToolsResult(result) => Ok(result),
            other => Err(unexpected(&other)),
        }
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        relay!(
            self,
            context,
            ClientRequest::CustomRequest(request),
            CustomResult
        )
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleServer>,
    ) {
        self.notify(ClientNotification::ProgressNotification(
            ProgressNotification::new(params),
        ))
        .await;
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        self.notify(ClientNotification::RootsListChangedNotification(
            RootsListChangedNotification::default(),
        ))
        .await;
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        _context: NotificationContext<RoleServer>,
    ) {
        self.notify(ClientNotification::CustomNotification(notification))
            .await;
    }

    fn get_info(&self) -> InitializeResult {
        match self
            .session
            .get()
            .and_then(|s| s.upstream.peer().peer_info())
        {
            Some(info) => InitializeResult::new(info.capabilities.clone()),
            None => InitializeResult::new(Default::default()),
        }
    }
}

fn paginated<M: Default>(
    params: Option<PaginatedRequestParams>,
) -> RequestOptionalParam<M, PaginatedRequestParams> {
    match params {
        Some(p) => RequestOptionalParam::with_param(p),
        None => RequestOptionalParam::default(),
    }
}

impl Relay {
    /// A client notification passed on (cancellations are handled through the request's token:
    /// the upstream has its own request ids; `initialized` was sent by our own client).
    async fn notify(&self, notification: ClientNotification) {
        if let Ok(session) = self.session() {
            let _ = session
                .upstream
                .peer()
                .send_notification(notification)
                .await;
        }
    }
}

/// Consecutive start failures of one upstream, and when the next start may be tried: an
/// upstream that cannot start is retried after 250 ms, doubling to at most 30 s, not by every
/// client at once.
#[derive(Clone, Default)]
pub struct Health(Arc<std::sync::Mutex<(u32, Option<tokio::time::Instant>)>>);

impl Health {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(30);

    fn waiting(&self) -> Option<Duration> {
        let (_, retry_at) = *self.0.lock().ok()?;
        let left = retry_at?.saturating_duration_since(tokio::time::Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn failures(&self) -> u32 {
        self.0.lock().map_or(0, |h| h.0)
    }

    fn record(&self, started: bool) {
        let Ok(mut h) = self.0.lock() else { return };
        if started {
            *h = (0, None);
            return;
        }
        h.0 = h.0.saturating_add(1);
        let wait = Self::FIRST
            .saturating_mul(1 << h.0.saturating_sub(1).min(16))
            .min(Self::MAX);
        h.1 = Some(tokio::time::Instant::now() + wait);
    }
}

/// Which progress token of ours (on a request to the upstream) stands for which of the client's.
#[derive(Clone, Default)]
struct ProgressTokens(
    Arc<std::sync::Mutex<std::collections::HashMap<ProgressToken, ProgressToken>>>,
);

/// A mapping in [`ProgressTokens`], removed when the request ends.
struct Mapped {
    ours: ProgressToken,
    tokens: ProgressTokens,
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if let Ok(mut map) = self.tokens.0.lock() {
            map.remove(&self.ours);
        }
    }
}

impl ProgressTokens {
    fn map(&self, ours: ProgressToken, theirs: ProgressToken) -> Mapped {
        if let Ok(mut map) = self.0.lock() {
            map.insert(ours.clone(), theirs);
        }
        Mapped {
            ours,
            tokens: self.clone(),
        }
    }

    fn theirs(&self, ours: &ProgressToken) -> Option<ProgressToken> {
        self.0.lock().ok()?.get(ours).cloned()
    }
}

/// The client side of the upstream session: what the upstream asks of its client goes to ours.
pub struct Upstream {
    client: Peer<RoleServer>,
    info: InitializeRequestParams,
    tokens: ProgressTokens,
}

impl Service<RoleClient> for Upstream {
    async fn handle_request(
        &self,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, ErrorData> {
        tokio::select! {
            answer = self.client.send_request(request) => answer.map_err(|e| match e {
                rmcp::service::ServiceError::McpError(e) => e,
                other => ErrorData::internal_error(format!("the client did not answer: {other}"), None),
            }),
            () = context.ct.cancelled() => Err(ErrorData::internal_error("cancelled by the server", None)),
        }
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        _context: NotificationContext<RoleClient>,
    ) -> Result<(), ErrorData> {
        let notification = match notification {
            // Cancellations name the upstream's own request ids, which the client never saw.
            ServerNotification::CancelledNotification(_) => return Ok(()),
            // Progress goes to the client under the client's own token, or not at all.
            ServerNotification::ProgressNotification(mut progress) => {
                match self.tokens.theirs(&progress.params.progress_token) {
                    Some(theirs) => {
                        progress.params.progress_token = theirs;
                        ServerNotification::ProgressNotification(progress)
                    }
                    None => return Ok(()),
                }
            }
            other => other,
        };
        let _ = self.client.send_notification(notification).await;
        Ok(())
    }

    fn get_info(&self) -> InitializeRequestParams {
        self.info.clone()
    }
}

/// How often a client waiting for a person hears progress (when it gave a progress token).
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
