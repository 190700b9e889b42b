//! [`ApiError`]: the one type that becomes an error response. Every module error is mapped to a
//! status and a machine code here, once. 5xx bodies are opaque; their cause rides in the response
//! extensions to the request log, never to the client.

use agentgate_policy::Scope;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::ErrorBody;
use crate::api::Source;
use crate::auth::{self, Rejection, passphrase, session};
use crate::broker;
use crate::oauth;
use crate::store;

/// An error answer of the API: `{"error": code, "message": …}` with the right status. Boxed so
/// that `Result<_, ApiError>` stays one pointer wide on the success path.
#[derive(Debug)]
pub struct ApiError(Box<Repr>);

#[derive(Debug)]
struct Repr {
    status: StatusCode,
    code: &'static str,
    message: String,
    required: Option<Scope>,
    field: Option<String>,
    www_authenticate: Option<String>,
    retry_after: Option<u64>,
    cause: Option<String>,
    decision: Option<serde_json::Value>,
}

/// The internal cause of a 5xx, for the request log only.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

impl ApiError {
    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// Its `Retry-After`, in seconds, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.0.retry_after
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError(Box::new(Repr {
            status,
            code,
            message: message.into(),
            required: None,
            field: None,
            www_authenticate: None,
            retry_after: None,
            cause: None,
            decision: None,
        }))
    }

    fn with(mut self, f: impl FnOnce(&mut Repr)) -> ApiError {
        f(&mut self.0);
        self
    }

    /// 400 with a machine code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 naming the offending field of the body.
    pub fn invalid_field(field: Option<String>, message: impl Into<String>) -> ApiError {
        ApiError::bad_request("invalid_request", message).with(|r| r.field = field)
    }

    /// 401 with `WWW-Authenticate: Bearer realm="agentgate"` (RFC 6750 §3).
    pub fn unauthenticated(why: Rejection) -> ApiError {
        let (message, challenge) = match why {
            Rejection::Missing => (
                "this route needs a bearer token in the Authorization header",
                r#"Bearer realm="agentgate""#,
            ),
            Rejection::Malformed => (
                "the Authorization header must be `Bearer agt_…`",
                r#"Bearer realm="agentgate", error="invalid_request""#,
            ),
            Rejection::Unknown => (
                "the token is not valid",
                r#"Bearer realm="agentgate", error="invalid_token""#,
            ),
            Rejection::Expired => (
                "the token has expired",
                r#"Bearer realm="agentgate", error="invalid_token", error_description="expired""#,
            ),
            Rejection::Revoked => (
                "the token has been revoked",
                r#"Bearer realm="agentgate", error="invalid_token", error_description="revoked""#,
            ),
        };
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            .with(|r| r.www_authenticate = Some(challenge.to_owned()))
    }

    /// 404 for `/mcp/{server}` (or its metadata) naming no `[[mcp_server]]`.
    pub fn unknown_mcp_server(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_mcp_server",
            format!(
                "no [[mcp_server]] is named `{}`",
                crate::display::visible(name, 64)
            ),
        )
    }

    /// 403 for a valid credential without the route's scope (RFC 6750 §3.1).
    pub fn insufficient_scope(required: Scope) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this route requires the `{required}` scope"),
        )
        .with(|r| {
            r.required = Some(required);
            r.www_authenticate = Some(format!(
                r#"Bearer error="insufficient_scope", scope="{required}""#
            ));
        })
    }

    /// 500 whose cause is logged but not shown.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        let cause = cause.to_string();
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; see the daemon's log",
        )
        .with(|r| r.cause = Some(cause))
    }

    /// Replaces the `WWW-Authenticate` challenge (the MCP endpoint's points to its metadata).
    pub fn with_challenge(self, challenge: String) -> ApiError {
        self.with(|r| r.www_authenticate = Some(challenge))
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.0.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = *self.0;
        let body = ErrorBody {
            error: this.code.to_owned(),
            message: this.message,
            required: this.required,
            field: this.field,
            decision: this.decision,
        };
        let mut response = (this.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(value) = this
            .www_authenticate
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(secs) = this.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(cause) = this.cause {
            response.extensions_mut().insert(ErrorCause(cause));
        }
        response
    }
}

impl From<auth::Error> for ApiError {
    fn from(err: auth::Error) -> ApiError {
        use auth::Error as E;
        match err {
            E::Unauthenticated(why) => ApiError::unauthenticated(why),
            E::Escalation(scope) => {
                ApiError::new(StatusCode::FORBIDDEN, "scope_escalation", err.to_string())
                    .with(|r| r.required = Some(scope))
            }
            E::InvalidName(_) => ApiError::invalid_field(Some("name".into()), err.to_string()),
            E::NoScopes => ApiError::invalid_field(Some("scopes".into()), err.to_string()),
            E::NameTaken(_) => ApiError::new(StatusCode::CONFLICT, "name_taken", err.to_string()),
            E::TokenNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "token_not_found", err.to_string())
            }
            E::PairingNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "pairing_not_found", err.to_string())
            }
            E::LastAdmin(_) => ApiError::new(StatusCode::CONFLICT, "last_admin", err.to_string()),
            E::Store(ref e) => store_failure(e, &err),
            E::Random(_) => ApiError::internal(format!("{:#}", AnyChain(&err))),
        }
    }
}

impl From<session::PairingError> for ApiError {
    fn from(err: session::PairingError) -> ApiError {
        use session::PairingError as E;
        match err {
            E::Unusable => ApiError::new(StatusCode::GONE, "pairing_unusable", err.to_string()),
            E::Invalid(message) => ApiError::bad_request("invalid_request", message),
            E::Auth(inner) => inner.into(),
        }
    }
}

impl From<passphrase::Error> for ApiError {
    fn from(err: passphrase::Error) -> ApiError {
        use passphrase::Error as E;
        match err {
            E::NotSet => ApiError::new(StatusCode::CONFLICT, "passphrase_not_set", err.to_string()),
            E::Wrong => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong_passphrase",
                err.to_string(),
            ),
            E::Backoff(wait) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "backoff", err.to_string())
                    .with(|r| r.retry_after = Some(wait.as_secs().max(1)))
            }
            E::BadLength | E::Weak(_) => {
                ApiError::invalid_field(Some("passphrase".into()), err.to_string())
            }
            E::Store(ref e) => store_failure(e, &err),
            E::Hash(_) => ApiError::internal(format!("{:#}", AnyChain(&err))),
        }
    }
}

impl From<broker::Error> for ApiError {
    fn from(err: broker::Error) -> ApiError {
        use broker::Error as E;
        match err {
            E::Invalid(invalid) => {
                ApiError::invalid_field(Some(invalid.field.to_owned()), invalid.message)
            }
            E::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "permission_not_found",
                err.to_string(),
            ),
            E::AlreadyDecided(view) => {
                let who = match &view.decided_by {
                    Some(by) => match (&by.approver, &by.rule, by.source) {
                        (Some(name), _, _) => format!(" by {name}"),
                        (None, Some(rule), _) => format!(" by rule {rule}"),
                        (None, None, Source::Timeout) => " by timeout".to_owned(),
                        _ => String::new(),
                    },
                    None => String::new(),
                };
                let message = format!(
                    "this request was already decided{who}: {}",
                    view.status.as_str()
                );
                let decision = serde_json::to_value(&*view).ok();
                ApiError::new(StatusCode::CONFLICT, "already_decided", message)
                    .with(|r| r.decision = decision)
            }
            E::SelfApproval => {
                ApiError::new(StatusCode::FORBIDDEN, "self_approval", err.to_string())
            }
            E::AlreadyApproved => {
                ApiError::new(StatusCode::CONFLICT, "already_approved", err.to_string())
            }
            E::TooManyPending(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_pending",
                err.to_string(),
            )
            .with(|r| r.retry_after = Some(30)),
            E::PatternTooWide(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "pattern_too_wide", err.to_string())
            }
            E::NotYours => ApiError::insufficient_scope(Scope::Read),
            E::RuleNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "rule_not_found", err.to_string())
            }
            E::RuleReadOnly(_) => {
                ApiError::new(StatusCode::CONFLICT, "rule_read_only", err.to_string())
            }
            E::Store(ref e) => store_failure(e, &err),
            E::Random | E::Corrupt(_) => ApiError::internal(format!("{:#}", AnyChain(&err))),
        }
    }
}

/// A store failure: 503 with `Retry-After` when the database is unreachable or every connection
/// is busy (nothing was written; trying again may work), otherwise an internal error.
fn store_failure(e: &store::Error, err: &dyn std::error::Error) -> ApiError {
    let cause = format!("{:#}", AnyChain(err));
    if e.is_unavailable() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the database is unavailable, so nothing was changed; try again shortly",
        )
        .with(|r| {
            r.retry_after = Some(1);
            r.cause = Some(cause);
        })
    } else {
        ApiError::internal(cause)
    }
}

/// Formats an error with its sources, for the log.
struct AnyChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for AnyChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl From<oauth::Error> for ApiError {
    fn from(err: oauth::Error) -> ApiError {
        match oauth_status(&err) {
            StatusCode::INTERNAL_SERVER_ERROR => {
                ApiError::internal(format!("{:#}", AnyChain(&err)))
            }
            status => ApiError::new(status, err.code(), err.to_string()),
        }
    }
}

/// The one status of each OAuth error, on every surface (the protocol endpoints, the owner's API):
/// `invalid_client` 401, a full client cap 403, an unknown client or grant 404, a server fault
/// 500, everything else 400.
fn oauth_status(err: &oauth::Error) -> StatusCode {
    match err {
        oauth::Error::InvalidClient(_) => StatusCode::UNAUTHORIZED,
        oauth::Error::TooManyClients(_) => StatusCode::FORBIDDEN,
        oauth::Error::NotFound(..) => StatusCode::NOT_FOUND,
        oauth::Error::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        oauth::Error::Random | oauth::Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// An error of the OAuth protocol endpoints, in the RFC 6749 §5.2 / RFC 7591 §3.2.2 shape:
/// `{"error": code, "error_description": …}`, with [`oauth_status`]'s status (and a `Basic`
/// challenge on a 401 when the client tried Basic authentication).
pub fn oauth_error(err: &oauth::Error, tried_basic: bool) -> Response {
    let status = oauth_status(err);
    let description = if status == StatusCode::INTERNAL_SERVER_ERROR {
        "internal error; see the daemon's log".to_owned()
    } else {
        err.to_string()
    };
    let mut response = (
        status,
        Json(serde_json::json!({"error": err.code(), "error_description": description})),
    )
        .into_response();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        response
            .extensions_mut()
            .insert(ErrorCause(format!("{:#}", AnyChain(err))));
    }
    if status == StatusCode::UNAUTHORIZED && tried_basic {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="agentgate""#),
        );
    }
    response
}
