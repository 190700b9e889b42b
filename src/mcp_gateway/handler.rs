//! The MCP methods of a relayed session: each request the client sends is rebuilt with the
//! client's `_meta` and sent upstream (`tools/call` and `tools/list` through the broker first),
//! and each notification passed on.

// Logging levels and resources/subscribe are relayed for the clients that still send them.
#![allow(deprecated)]

use rmcp::RoleServer;
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientNotification, ClientRequest,
    CompleteRequest, CompleteRequestParams, CompleteResult, CustomNotification, CustomRequest,
    CustomResult, ErrorData, GetExtensions, GetPromptRequest, GetPromptRequestParams,
    GetPromptResponse, InitializeRequestParams, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    PingRequest, ProgressNotification, ProgressNotificationParam, ReadResourceRequest,
    ReadResourceRequestParams, ReadResourceResponse, RootsListChangedNotification, ServerResult,
    SetLevelRequest, SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams,
    UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext};

use super::relay::{Relay, paginated, unexpected};

/// `request` with the `_meta` (a progress token) the client sent on it.
fn with_meta<R: GetExtensions>(mut request: R, context: &RequestContext<RoleServer>) -> R {
    request.extensions_mut().insert(context.meta.clone());
    request
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
        self.start(request, context.peer.clone()).await
    }

    async fn ping(&self, context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        if self.session().is_err() {
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
        match self.decided_call(call, context).await? {
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
        match self.filtered_list(request, &context).await? {
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
            .session()
            .ok()
            .and_then(|s| s.upstream.peer().peer_info())
        {
            Some(info) => InitializeResult::new(info.capabilities.clone()),
            None => InitializeResult::new(Default::default()),
        }
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
