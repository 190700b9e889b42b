//! The client side of a relayed session: what the upstream asks of its client (elicitation,
//! sampling, roots) goes to ours, and what it tells (progress, logging, list changes) too, under
//! the client's own progress tokens.

use std::sync::Arc;

use rmcp::model::{
    ClientResult, ErrorData, InitializeRequestParams, ProgressToken, ServerNotification,
    ServerRequest,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, Service};
use rmcp::{RoleClient, RoleServer};

/// Which progress token of ours (on a request to the upstream) stands for which of the client's.
#[derive(Clone, Default)]
pub(super) struct ProgressTokens(
    Arc<std::sync::Mutex<std::collections::HashMap<ProgressToken, ProgressToken>>>,
);

/// A mapping in [`ProgressTokens`], removed when the request ends.
pub(super) struct Mapped {
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
    pub(super) fn map(&self, ours: ProgressToken, theirs: ProgressToken) -> Mapped {
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
    pub(super) client: Peer<RoleServer>,
    pub(super) info: InitializeRequestParams,
    pub(super) tokens: ProgressTokens,
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
