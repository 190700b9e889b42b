//! Extractors whose failures speak the API's error shape: [`JsonBody`] for request bodies,
//! [`Authed`] for the principal the access layer attached, and [`path`] / [`query`], the one way
//! every handler refuses a bad path parameter or query string.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::Principal;

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// A JSON body: `Content-Type: application/json`, at most [`MAX_BODY`] bytes, no unknown fields
/// (the wire types say `deny_unknown_fields`). A bad body is a 400 naming the field, an oversized
/// one a 413; the handler never runs, so nothing is written.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::bad_request(
                "unsupported_content_type",
                "the request body must be JSON, sent with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request("invalid_body", "the request body could not be read")
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// 413 for a body over [`MAX_BODY`].
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {} KiB", MAX_BODY / 1024),
    )
}

/// Parses a JSON body, naming the failing field in the error.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "malformed_json",
            "the request body is empty; expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() {
            let field = (path != ".").then_some(path);
            let message = match &field {
                Some(f) => format!("{f}: {inner}"),
                None => inner.to_string(),
            };
            ApiError::invalid_field(field, strip_position(&message))
        } else {
            ApiError::bad_request(
                "malformed_json",
                format!("the request body is not valid JSON: {inner}"),
            )
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

/// serde_json appends " at line 1 column 42" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

pub(super) fn is_json(value: Option<&axum::http::HeaderValue>) -> bool {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The verified principal of the request. Present on every route whose access is not public;
/// the access layer put it there from the credential, and nothing else can.
pub struct Authed(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Arc<Principal>>()
            .cloned()
            .map(Authed)
            .ok_or_else(|| ApiError::internal("handler needs a principal but its route is public"))
    }
}

/// Unwraps a query, or answers 400 naming what is wrong.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| {
        let text = e.body_text();
        let message = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text)
            .to_owned();
        ApiError::bad_request("invalid_query", format!("query string: {message}"))
    })
}

/// Unwraps a path parameter.
pub fn path(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(s)| s)
        .map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CreateToken;

    fn body_error(json: &str) -> serde_json::Value {
        use axum::response::IntoResponse;
        let err = parse::<CreateToken>(json.as_bytes()).err().unwrap();
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn bad_bodies_name_the_field_and_list_valid_values() {
        let e = body_error(r#"{"name":"x","scopes":["read","root"]}"#);
        assert_eq!(e["error"], "invalid_request");
        assert_eq!(e["field"], "scopes[1]");
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains("unknown variant `root`") && msg.contains("`approve`"),
            "{msg}"
        );

        let e = body_error(r#"{"name":"x","scopes":["read"],"admin":true}"#);
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("unknown field `admin`"),
            "{e}"
        );

        let e = body_error(r#"{"scopes":["read"]}"#);
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("missing field `name`"),
            "{e}"
        );

        let e = body_error(r#"{"name":"x","scopes":["read"],"expires_in":"soon"}"#);
        assert_eq!(e["field"], "expires_in");

        for garbage in [
            "{",
            "not json",
            r#"{"name":"x","scopes":["read"]} {}"#,
            "",
            "  ",
        ] {
            assert_eq!(body_error(garbage)["error"], "malformed_json", "{garbage}");
        }
    }

    #[test]
    fn content_types() {
        let hv = |s: &'static str| axum::http::HeaderValue::from_static(s);
        assert!(is_json(Some(&hv("application/json"))));
        assert!(is_json(Some(&hv("Application/JSON; charset=utf-8"))));
        assert!(is_json(Some(&hv("application/merge-patch+json"))));
        assert!(!is_json(Some(&hv("text/plain"))));
        assert!(!is_json(Some(&hv("application/x-www-form-urlencoded"))));
        assert!(!is_json(None));
    }
}
