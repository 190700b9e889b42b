//! The per-route access check. The credential is either the bearer token of the `Authorization`
//! header or, for a browser, the web session cookie; either becomes a [`Principal`] whose scopes
//! are checked against the route's row of the scope table. Nothing else a request carries (no
//! header, no query parameter) can add a scope. A session's state-changing requests must also
//! carry its CSRF token in `X-CSRF-Token` (the `Origin` check has already run in `guard`).
//! Page routes answer a missing credential with a redirect to the sign-in page and a missing
//! scope with an HTML page; API routes answer both in the JSON error shape.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use super::AppState;
use super::challenge::Challenge;
use super::cookie::{CSRF_HEADER, WebSession, session_cookie};
use super::error::ApiError;
use super::surface::{Access, Surface};
use super::web;
use crate::auth::{CredentialKind, Principal, Rejection};
use agentgate_policy::Scope;

/// The principal that made the request, put on the response for the request log (which prints
/// its name).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

/// The access check of one route, as a layer over its handler (`MethodRouter::route_layer`).
/// Written out as a service with its own small future rather than `from_fn`: a parked long-poll
/// holds this layer's future, and `from_fn`'s keeps two copies of the request and a boxed `Next`
/// for the whole wait.
#[derive(Clone)]
pub(super) struct Require {
    pub(super) state: AppState,
    pub(super) access: Access,
    pub(super) surface: Surface,
}

impl<S> Layer<S> for Require {
    type Service = Checked<S>;

    fn layer(&self, inner: S) -> Checked<S> {
        Checked {
            inner,
            rule: self.clone(),
        }
    }
}

/// A route's handler behind its access check.
#[derive(Clone)]
pub(super) struct Checked<S> {
    inner: S,
    rule: Require,
}

impl<S> Service<Request> for Checked<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = CheckFuture<S>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> CheckFuture<S> {
        if self.rule.access == Access::Public {
            return CheckFuture::Handling {
                handled: self.inner.call(req),
                caller: None,
            };
        }
        let Require {
            state,
            access,
            surface,
        } = self.rule.clone();
        CheckFuture::Admitting {
            admit: Box::pin(admit(state, access, surface, req)),
            inner: Some(self.inner.clone()),
        }
    }
}

/// The outcome of the check: the request, with its principal (and web session) attached, to be
/// handled; or the answer that refuses it.
type Admitted = Result<(Request, Option<Caller>), Response>;

pin_project! {
    /// Checking (boxed: it ends before the handler starts), then the handler's own future and the
    /// caller to put on its response.
    #[project = CheckProj]
    pub(super) enum CheckFuture<S: Service<Request>> {
        Admitting {
            admit: Pin<Box<dyn Future<Output = Admitted> + Send>>,
            inner: Option<S>,
        },
        Handling {
            #[pin]
            handled: S::Future,
            caller: Option<Caller>,
        },
    }
}

impl<S> Future for CheckFuture<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                CheckProj::Admitting { admit, inner } => {
                    let (req, caller) = match ready!(admit.as_mut().poll(cx)) {
                        Ok(admitted) => admitted,
                        Err(refusal) => return Poll::Ready(Ok(refusal)),
                    };
                    let Some(mut inner) = inner.take() else {
                        // Polled again after handing the request on: never happens.
                        return Poll::Ready(Ok(
                            ApiError::internal("access check reused").into_response()
                        ));
                    };
                    let handled = inner.call(req);
                    self.set(CheckFuture::Handling { handled, caller });
                }
                CheckProj::Handling { handled, caller } => {
                    let mut response = ready!(handled.poll(cx))?;
                    if let Some(caller) = caller.take() {
                        response.extensions_mut().insert(caller);
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

/// Authenticates `req` and checks its scopes against the route's (non-public) `access`.
async fn admit(state: AppState, access: Access, surface: Surface, mut req: Request) -> Admitted {
    let mcp =
        (surface == Surface::Mcp).then(|| Challenge::for_path(req.headers(), req.uri().path()));
    let found = if mcp.is_some() && !req.headers().contains_key(header::AUTHORIZATION) {
        // `/mcp` takes bearer tokens only: a browser's session cookie is no credential there.
        Err(Failure::Credential {
            error: ApiError::unauthenticated(Rejection::Missing),
            cookie: false,
        })
    } else {
        authenticate(&state, req.headers(), req.method(), Csrf::Token).await
    };
    let found = found.and_then(|(principal, session)| {
        audience_check(&principal, mcp.as_ref())?;
        Ok((principal, session))
    });
    let (principal, session) = match found {
        Ok(found) => found,
        Err(failure) => {
            let refusal = match (surface, failure) {
                (Surface::Page, Failure::Credential { cookie, .. }) => {
                    web::to_sign_in(req.uri(), cookie)
                }
                (_, Failure::Credential { error, .. }) | (_, Failure::Csrf(error)) => match &mcp {
                    Some(challenge) => challenge.unauthorized(error).into_response(),
                    None => error.into_response(),
                },
            };
            drain(req).await;
            return Err(refusal);
        }
    };
    let caller = Caller(principal.clone());
    if !access.allows(&principal.scopes) {
        // Every scope the rule names is missing (a refused rule names at least one).
        let required = access.scopes().first().copied().unwrap_or(Scope::Admin);
        let mut refusal = match (surface, &mcp) {
            (_, Some(challenge)) => challenge
                .insufficient(&principal, access.scopes())
                .into_response(),
            (Surface::Page, None) => web::forbidden_page(&principal, required, session.as_ref()),
            (_, None) => ApiError::insufficient_scope(required).into_response(),
        };
        refusal.extensions_mut().insert(caller);
        drain(req).await;
        return Err(refusal);
    }
    req.extensions_mut().insert::<Arc<Principal>>(principal);
    if let Some(session) = session {
        req.extensions_mut().insert(session);
    }
    Ok((req, Some(caller)))
}

/// Reads what is left of a refused request's body (the guard has bounded its size), so the
/// connection stays usable: a client that sends its next request on the same connection (an MCP
/// client starting OAuth after a 401) must not find it closed. A body that does not arrive within
/// a second is left, and the connection with it.
async fn drain(req: Request) {
    let body = req.into_body();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        axum::body::to_bytes(body, super::extract::MAX_BODY),
    )
    .await;
}

/// An OAuth access token is accepted only on the resource it was issued for (RFC 8707): `/mcp`,
/// under the host name it was requested with. Everywhere else it is an invalid token.
fn audience_check(principal: &Principal, mcp: Option<&Challenge>) -> Result<(), Failure> {
    let Some(binding) = &principal.oauth else {
        return Ok(());
    };
    if mcp.is_some_and(|c| c.resource == binding.audience) {
        return Ok(());
    }
    Err(Failure::Credential {
        error: ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "this OAuth access token was issued for `{}` and is not accepted here",
                binding.audience
            ),
        )
        .with_challenge(
            r#"Bearer realm="agentgate", error="invalid_token", error_description="wrong audience""#
                .into(),
        ),
        cookie: false,
    })
}

/// Resolves when `who`'s credential ends: revoked (OAuth family revocations and deleted clients
/// included), its session signed out or its pairing revoked, or its expiry passed. It listens
/// from the moment it is made, so an ending that comes later is never missed; long-lived answers
/// (event streams) stop with it, and the client's reconnect must authenticate again.
pub(super) fn credential_ended(
    state: &AppState,
    who: &Principal,
) -> impl Future<Output = ()> + Send + 'static {
    let mut endings = match who.kind {
        CredentialKind::Token => state.auth.revocations(),
        CredentialKind::Session => state.sessions.endings(),
    };
    let expiry = who.expires_at.map(|at| at.since(state.clock.now()));
    let id = who.token_id.clone();
    async move {
        let ended = async move {
            loop {
                match endings.recv().await {
                    Ok(gone) if gone == id => return,
                    Ok(_) => {}
                    // Missed some (ours may be among them), or the daemon is going away.
                    Err(_) => return,
                }
            }
        };
        match expiry {
            Some(left) => tokio::select! {
                () = ended => {}
                () = tokio::time::sleep(left) => {}
            },
            None => ended.await,
        }
    }
}

/// The verified principal of a request on a gateway's listener: a bearer API token or the
/// inbox's session; an OAuth access token is for `/mcp` only. The upstream's own web UI cannot
/// send our CSRF token, so there a session's state-changing request must instead be one the
/// browser marks as its own origin's (`Origin`, which `guard` has checked is the gateway's, or
/// `Sec-Fetch-Site: same-origin`).
pub(super) async fn credential(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Arc<Principal>, ApiError> {
    let found = authenticate(state, headers, method, Csrf::SameOrigin)
        .await
        .and_then(|(principal, _)| audience_check(&principal, None).map(|()| principal));
    found.map_err(|failure| match failure {
        Failure::Credential { error, .. } | Failure::Csrf(error) => error,
    })
}

/// How a session's state-changing request proves it comes from our own page.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Csrf {
    /// The session's CSRF token in `X-CSRF-Token` (our pages send it).
    Token,
    /// The browser's own marks: an `Origin` (the guard checked it is this listener's) or
    /// `Sec-Fetch-Site: same-origin`.
    SameOrigin,
}

enum Failure {
    /// No valid credential. `cookie`: a session cookie was presented (it expired or ended).
    Credential { error: ApiError, cookie: bool },
    /// A session request without its CSRF token.
    Csrf(ApiError),
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    csrf: Csrf,
) -> Result<(Arc<Principal>, Option<WebSession>), Failure> {
    if headers.contains_key(header::AUTHORIZATION) {
        let presented = bearer(headers).map_err(|why| Failure::Credential {
            error: ApiError::unauthenticated(why),
            cookie: false,
        })?;
        let principal =
            state
                .auth
                .authenticate(presented)
                .await
                .map_err(|e| Failure::Credential {
                    error: e.into(),
                    cookie: false,
                })?;
        return Ok((principal, None));
    }
    let Some(cookie) = session_cookie(headers) else {
        return Err(Failure::Credential {
            error: ApiError::unauthenticated(Rejection::Missing),
            cookie: false,
        });
    };
    // Boxed: a session is read from the store, and that future need not be carried by every
    // bearer request's.
    let auth = Box::pin(state.sessions.authenticate(cookie))
        .await
        .map_err(|e| Failure::Credential {
            error: e.into(),
            cookie: true,
        })?;
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let same_origin = csrf == Csrf::SameOrigin
        && (headers.contains_key(header::ORIGIN)
            || headers
                .get("sec-fetch-site")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin")));
    if !safe && !same_origin {
        let presented = headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(presented.ct_eq(auth.csrf.as_bytes())) {
            return Err(Failure::Csrf(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "this request needs the session's CSRF token in the X-CSRF-Token header; \
                 reload the page and try again",
            )));
        }
    }
    Ok((auth.principal, Some(WebSession { csrf: auth.csrf })))
}

/// The token text of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 7235 §2.1).
fn bearer(headers: &HeaderMap) -> Result<&str, Rejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(Rejection::Missing)?;
    if values.next().is_some() {
        return Err(Rejection::Malformed);
    }
    let text = value.to_str().map_err(|_| Rejection::Malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(Rejection::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::Malformed);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Rejection::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; agentgate_session=ags_x ; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("ags_x"));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("agentgate_sessionx=1"),
        );
        assert_eq!(session_cookie(&h), None);
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn only_a_single_bearer_header_yields_a_token() {
        assert_eq!(bearer(&headers(&["Bearer abc"])), Ok("abc"));
        assert_eq!(bearer(&headers(&["bearer   abc "])), Ok("abc"));
        assert_eq!(bearer(&headers(&[])), Err(Rejection::Missing));
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Token abc",
            "abc",
        ] {
            assert_eq!(bearer(&headers(&[bad])), Err(Rejection::Malformed), "{bad}");
        }
        assert_eq!(
            bearer(&headers(&["Bearer a", "Bearer b"])),
            Err(Rejection::Malformed)
        );
    }
}
