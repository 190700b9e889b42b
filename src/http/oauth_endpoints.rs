//! The OAuth 2.1 authorization server's HTTP surface: metadata (RFC 8414, RFC 9728), registration
//! (RFC 7591), the authorization endpoint with its consent page, the token endpoint and revocation
//! (RFC 7009), plus the owner's management routes. Every URL is built from the request's `Host`,
//! which `guard` has already checked against our loopback names and configured hosts, so
//! `localhost` and `127.0.0.1` each see a consistent issuer. The logic lives in [`crate::oauth`];
//! the passphrase is checked here, with the same Argon2id verifier and backoff as the sign-in page.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::AppState;
use super::challenge::origin;
use super::error::{ApiError, oauth_error};
use super::extract::path;
use super::web::{Refusal, html, views};
use crate::api::{ClientList, DeletedClient, GrantList, RevokedGrant};
use crate::oauth::{self, Authorize, AuthorizeParams, ClientCredentials, Pending, TokenRequest};

/// A registration body larger than this is refused.
const MAX_REGISTRATION: usize = 64 * 1024;

fn scopes_supported() -> Vec<&'static str> {
    oauth::SCOPES.iter().map(|s| s.as_str()).collect()
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414). The issuer has no trailing slash.
pub async fn metadata(headers: HeaderMap) -> Json<Value> {
    let issuer = origin(&headers);
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes_supported(),
        "authorization_response_iss_parameter_supported": true,
    }))
}

/// `GET /.well-known/oauth-protected-resource[/mcp]` (RFC 9728).
pub async fn resource_metadata(headers: HeaderMap) -> Json<Value> {
    let issuer = origin(&headers);
    Json(protected_resource(
        &issuer,
        oauth::resource::mcp_resource(&issuer),
        "agentgate",
    ))
}

/// `GET /.well-known/oauth-protected-resource/mcp/{server}`: an upstream MCP server's own
/// resource, so its tokens are bound to it alone.
pub async fn upstream_resource_metadata(
    State(state): State<AppState>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !state.mcp_servers.contains(&server) {
        return ApiError::unknown_mcp_server(&server).into_response();
    }
    let issuer = origin(&headers);
    let resource = oauth::resource::server_resource(&issuer, &server);
    Json(protected_resource(
        &issuer,
        resource,
        &format!("{server} through agentgate"),
    ))
    .into_response()
}

fn protected_resource(issuer: &str, resource: String, name: &str) -> Value {
    json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "scopes_supported": scopes_supported(),
        "bearer_methods_supported": ["header"],
        "resource_name": name,
    })
}

/// `POST /register` (RFC 7591).
pub async fn register(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let invalid = |m: &str| oauth_error(&oauth::Error::InvalidClientMetadata(m.into()), false);
    if body.len() > MAX_REGISTRATION {
        let mut response = invalid(&format!(
            "the registration body is larger than {} KiB",
            MAX_REGISTRATION / 1024
        ));
        *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        return response;
    }
    if !super::extract::is_json(headers.get(header::CONTENT_TYPE)) {
        return invalid("the registration must be JSON, sent with Content-Type: application/json");
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return invalid(&format!("the body is not JSON: {e}")),
    };
    match state.oauth.register(&parsed).await {
        Ok(response) => (StatusCode::CREATED, Json(response)).into_response(),
        Err(e) => oauth_error(&e, false),
    }
}

/// Form or query pairs; a parameter given twice is an error (RFC 6749 §3.1).
fn pairs(text: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(text) {
        if map.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(format!("the parameter `{k}` is given more than once"));
        }
    }
    Ok(map)
}

fn error_page(status: StatusCode, text: &str) -> Response {
    html(
        status,
        views::message("Cannot sign this application in", text, None),
    )
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => error_page(StatusCode::BAD_REQUEST, "The redirect URI cannot be used."),
    }
}

/// The consent page, with a policy that lets its form's answer redirect to the client.
fn consent_page(status: StatusCode, pending: &Pending, error: Option<&str>) -> Response {
    let redirect = url::Url::parse(&pending.redirect_uri).ok();
    let loopback = redirect.as_ref().is_some_and(oauth::redirect::is_loopback);
    let redirect_origin = redirect
        .as_ref()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let mut response = html(status, views::consent(pending, error, loopback));
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         form-action 'self' {redirect_origin}; base-uri 'none'; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// `GET /authorize`: an error page for a bad client or redirect URI (never a redirect), a
/// redirect with an error or a code (remembered consent), or the consent page.
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = match pairs(query.unwrap_or_default().as_bytes()) {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let get = |k: &str| q.get(k).cloned();
    let params = AuthorizeParams {
        response_type: get("response_type"),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        state: get("state"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        scope: get("scope"),
        resource: get("resource"),
        prompt: get("prompt"),
    };
    let issuer = origin(&headers);
    let owner = owner_signed_in(&state, &headers).await;
    match state.oauth.authorize(&issuer, params, owner).await {
        Ok(Authorize::ErrorPage(text)) => error_page(StatusCode::BAD_REQUEST, &text),
        Ok(Authorize::Redirect(location)) => see_other(&location),
        Ok(Authorize::Consent(pending)) => consent_page(StatusCode::OK, &pending, None),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Whether the browser carries the owner's signed-in web session (an `admin` session: the
/// passphrase sign-in, not a paired phone).
async fn owner_signed_in(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(cookie) = super::cookie::session_cookie(headers) else {
        return false;
    };
    state
        .sessions
        .authenticate(cookie)
        .await
        .is_ok_and(|s| s.principal.scopes.allows(agentgate_policy::Scope::Admin))
}

/// `POST /authorize`: the owner's answer. The form's single-use CSRF token must be the pending
/// authorization's current one (and `guard` has checked the `Origin`); approving needs the owner
/// passphrase. The answer is a 303 (never 307, which would resend the passphrase) to the client.
pub async fn consent(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match pairs(&body) {
        Ok(f) => f,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let pending = match state.oauth.take_form(field("authz"), field("csrf")).await {
        Ok(p) => p,
        Err(oauth::Error::InvalidRequest(text)) => {
            return error_page(StatusCode::BAD_REQUEST, &text);
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let approve = match field("decision") {
        "approve" => true,
        "deny" => false,
        _ => {
            return consent_page(
                StatusCode::BAD_REQUEST,
                &pending,
                Some("Choose Approve or Deny."),
            );
        }
    };
    // One click: remembered consent, confirmed from the owner's signed-in browser (checked
    // again now; the form alone proves nothing).
    let one_click = pending.one_click && owner_signed_in(&state, &headers).await;
    if approve && !one_click {
        let passphrase = field("passphrase");
        if passphrase.is_empty() {
            return consent_page(
                StatusCode::BAD_REQUEST,
                &pending,
                Some("Enter the owner passphrase to approve."),
            );
        }
        if let Err(e) = state
            .passphrases
            .verify(peer.ip(), passphrase.to_owned())
            .await
        {
            return match Refusal::of(e) {
                Ok(refusal) => {
                    refusal.apply(consent_page(refusal.status, &pending, Some(&refusal.text)))
                }
                Err(e) => e.into_response(),
            };
        }
    }
    let remember = field("remember") == "yes";
    match state.oauth.answer(&pending, approve, remember).await {
        Ok(location) => see_other(&location),
        Err(oauth::Error::InvalidRequest(text)) => error_page(StatusCode::BAD_REQUEST, &text),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: form-encoded id and secret)
/// or the form; both at once is an error. Returns whether Basic was tried.
fn credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(ClientCredentials, bool), oauth::Error> {
    let form_id = form.get("client_id").cloned();
    let form_secret = form.get("client_secret").cloned();
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok((
            ClientCredentials {
                id: form_id,
                secret: form_secret,
            },
            false,
        ));
    };
    let bad = || oauth::Error::InvalidClient("malformed Basic client authentication".into());
    let text = value.to_str().map_err(|_| bad())?;
    let (scheme, encoded) = text.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(oauth::Error::InvalidClient(
            "client authentication is Basic or in the form; bearer tokens are not accepted here"
                .into(),
        ));
    }
    if form_secret.is_some() {
        return Err(oauth::Error::InvalidRequest(
            "use one client authentication method, not Basic and client_secret together".into(),
        ));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let id = unescape(id);
    if form_id.as_deref().is_some_and(|f| f != id) {
        return Err(oauth::Error::InvalidRequest(
            "client_id in the form differs from the Basic credentials".into(),
        ));
    }
    Ok((
        ClientCredentials {
            id: Some(id),
            secret: Some(unescape(secret)),
        },
        true,
    ))
}

fn form_body(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, oauth::Error> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form {
        return Err(oauth::Error::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    pairs(body).map_err(oauth::Error::InvalidRequest)
}

/// The form of `/token` or `/revoke` and the client credentials it (or `Basic`) carries, with
/// whether `Basic` was tried; a bad form or malformed credentials are answered here.
fn client_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(HashMap<String, String>, ClientCredentials, bool), Box<Response>> {
    let form = form_body(headers, body).map_err(|e| Box::new(oauth_error(&e, false)))?;
    let (creds, basic) =
        credentials(headers, &form).map_err(|e| Box::new(oauth_error(&e, true)))?;
    Ok((form, creds, basic))
}

/// `POST /token`: `authorization_code` and `refresh_token`.
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (form, creds, basic) = match client_form(&headers, &body) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let get = |k: &str| form.get(k).cloned();
    let request = TokenRequest {
        grant_type: get("grant_type"),
        code: get("code"),
        redirect_uri: get("redirect_uri"),
        code_verifier: get("code_verifier"),
        refresh_token: get("refresh_token"),
        resource: get("resource"),
        scope: get("scope"),
    };
    let issuer = origin(&headers);
    match state.oauth.token(&creds, request, &issuer).await {
        Ok(tokens) => {
            (StatusCode::OK, [(header::PRAGMA, "no-cache")], Json(tokens)).into_response()
        }
        Err(e) => oauth_error(&e, basic),
    }
}

/// `POST /revoke` (RFC 7009): 200 whether or not the token was known.
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (form, creds, basic) = match client_form(&headers, &body) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error(
            &oauth::Error::InvalidRequest("token is required".into()),
            basic,
        );
    };
    match state.oauth.revoke(&creds, token).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => oauth_error(&e, basic),
    }
}

/// `GET /api/v1/oauth/clients`.
pub async fn list_clients(State(state): State<AppState>) -> Result<Json<ClientList>, ApiError> {
    Ok(Json(ClientList {
        clients: state.oauth.clients().await?,
    }))
}

/// `DELETE /api/v1/oauth/clients/{id}`: the client, its grants and tokens stop working.
pub async fn delete_client(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeletedClient>, ApiError> {
    let id = path(id)?;
    let revoked = state.oauth.delete_client(&id).await?;
    Ok(Json(DeletedClient {
        deleted: id,
        access_tokens_revoked: revoked,
    }))
}

/// `GET /api/v1/oauth/grants`: remembered consents.
pub async fn list_grants(State(state): State<AppState>) -> Result<Json<GrantList>, ApiError> {
    Ok(Json(GrantList {
        grants: state.oauth.grants().await?,
    }))
}

/// `DELETE /api/v1/oauth/grants/{id}`: the client sees the consent page again.
pub async fn revoke_grant(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RevokedGrant>, ApiError> {
    let id = path(id)?;
    state.oauth.revoke_grant(&id).await?;
    Ok(Json(RevokedGrant { revoked: id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded_and_exclusive() {
        let mut h = HeaderMap::new();
        let encoded = STANDARD.encode("cli%3Ax:s%2Bp");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        let (c, basic) = credentials(&h, &HashMap::new()).unwrap();
        assert!(basic);
        assert_eq!(c.id.as_deref(), Some("cli:x"));
        assert_eq!(c.secret.as_deref(), Some("s+p"));
        let both: HashMap<String, String> = [("client_secret".to_owned(), "x".to_owned())].into();
        assert!(matches!(
            credentials(&h, &both),
            Err(oauth::Error::InvalidRequest(_))
        ));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer agt_x"),
        );
        assert!(matches!(
            credentials(&h, &HashMap::new()),
            Err(oauth::Error::InvalidClient(_))
        ));
    }
}
