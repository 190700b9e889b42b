//! The per-route access check: the bearer credential from the `Authorization` header, verified,
//! then the route's required scope against the scopes of that credential. Nothing else a request
//! carries (no header, no query parameter) can add a scope.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::routes::Access;
use crate::auth::{Principal, Rejection};

/// The principal that made the request, put on the response for the request log (which prints
/// its name).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

pub(super) async fn require(
    State((state, access)): State<(AppState, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    if access == Access::Public {
        return next.run(req).await;
    }
    let principal = match bearer(req.headers()) {
        Ok(presented) => state.auth.authenticate(presented).await,
        Err(why) => return ApiError::unauthenticated(why).into_response(),
    };
    let principal = match principal {
        Ok(p) => p,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let caller = Caller(principal.clone());
    let mut response = match access {
        Access::Scope(required) if !principal.scopes.allows(required) => {
            ApiError::insufficient_scope(required).into_response()
        }
        _ => {
            req.extensions_mut().insert::<Arc<Principal>>(principal);
            next.run(req).await
        }
    };
    response.extensions_mut().insert(caller);
    response
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
