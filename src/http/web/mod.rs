//! The web inbox: server-rendered pages, their embedded assets, sign-in and pairing.
//!
//! Pages are routes of the scope table like any other: the access layer has already checked the
//! session (or bearer token) and the scope. The pages' JavaScript acts through the same JSON API
//! as every client (`/api/v1/permissions/{id}/reply`, `/api/v1/tokens`, …), with the session
//! cookie and its CSRF token; so the inbox can answer exactly when its credential may.

pub(super) mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use agentgate_policy::Scope;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use maud::Markup;
use serde::Deserialize;

use super::AppState;
use super::cookie::{SESSION_COOKIE, WebSession};
use super::error::ApiError;
use super::extract::Authed;
use crate::api::Status;
use crate::auth::passphrase;
use crate::auth::session::NewSession;
use crate::auth::{CredentialKind, Principal, session};
use views::Viewer;

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Authed(principal) = Authed::from_request_parts(parts, state).await?;
        let csrf = parts.extensions.get::<WebSession>().map(|s| s.csrf.clone());
        Ok(Viewer { principal, csrf })
    }
}

/// How a page answers a passphrase the verifier refused (the sign-in page and the OAuth consent
/// page alike): the status, the sentence to show with the form, and `Retry-After` during a
/// backoff. Any other failure is an error of the API.
pub(super) struct Refusal {
    /// 401, 429 or 409.
    pub status: StatusCode,
    /// What the page says.
    pub text: String,
    retry_after: Option<u64>,
}

impl Refusal {
    /// The page's words for a refused passphrase; the status and `Retry-After` are the API's
    /// (one mapping of `passphrase::Error`, in `http/error.rs`).
    pub(super) fn of(err: passphrase::Error) -> Result<Refusal, ApiError> {
        let text = match &err {
            passphrase::Error::Wrong => {
                "That passphrase is not right. Each failed attempt makes the next one wait longer."
                    .to_owned()
            }
            passphrase::Error::Backoff(wait) => format!(
                "Too many failed attempts. Try again in {} s.",
                wait.as_secs().max(1)
            ),
            passphrase::Error::NotSet => {
                "No owner passphrase is set yet. Set one with `agentgate passphrase set` first."
                    .to_owned()
            }
            _ => return Err(err.into()),
        };
        let api = ApiError::from(err);
        Ok(Refusal {
            status: api.status(),
            text,
            retry_after: api.retry_after(),
        })
    }

    /// Adds `Retry-After` to the page that shows the refusal.
    pub(super) fn apply(&self, mut page: Response) -> Response {
        if let Some(secs) = self.retry_after {
            page.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        page
    }
}

/// An HTML response with a status.
pub(super) fn html(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        markup.into_string(),
    )
        .into_response()
}

fn viewer(principal: &Arc<Principal>, session: Option<&WebSession>) -> Viewer {
    Viewer {
        principal: principal.clone(),
        csrf: session.map(|s| s.csrf.clone()),
    }
}

/// Where a page request without a valid credential goes: the sign-in page, which returns to the
/// page afterwards. `expired`: a session cookie was presented but no longer works (it is cleared).
pub fn to_sign_in(uri: &Uri, expired: bool) -> Response {
    let next = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut location = format!(
        "/login?next={}",
        form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    if expired {
        location.push_str("&expired=1");
    }
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location)],
        "sign in first",
    )
        .into_response();
    if expired {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, clear_cookie());
    }
    response
}

/// 403 page for a page whose scope the credential lacks.
pub fn forbidden_page(
    principal: &Arc<Principal>,
    required: Scope,
    session: Option<&WebSession>,
) -> Response {
    html(
        StatusCode::FORBIDDEN,
        views::forbidden(&viewer(principal, session), required),
    )
}

fn session_cookie(new: &NewSession) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        new.cookie,
        new.max_age.as_secs()
    ))
    .map_err(|_| ApiError::internal("session cookie is not a header value"))
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("agentgate_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// A local path to return to after sign-in; anything else (another site, `//host`) is `/`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.starts_with("/login")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// `?next=…&expired=1` of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    expired: Option<String>,
}

/// `GET /login`.
pub async fn sign_in_page(q: Result<Query<SignInQuery>, QueryRejection>) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or(SignInQuery {
        next: None,
        expired: None,
    });
    let notice = q
        .expired
        .is_some()
        .then_some("Your session has ended. Sign in again to continue where you were.");
    html(
        StatusCode::OK,
        views::sign_in(&safe_next(q.next.as_deref()), notice, None),
    )
}

/// `POST /login` (a form): the owner passphrase, rate-limited per source, then a session.
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let mut passphrase = None;
    let mut next = None;
    for (key, value) in form_urlencoded::parse(&body) {
        match &*key {
            "passphrase" => passphrase = Some(value.into_owned()),
            "next" => next = Some(value.into_owned()),
            _ => {}
        }
    }
    let next = safe_next(next.as_deref());
    let fail =
        |status: StatusCode, text: &str| html(status, views::sign_in(&next, None, Some(text)));
    let Some(passphrase) = passphrase.filter(|p| !p.is_empty()) else {
        return fail(StatusCode::BAD_REQUEST, "Enter the passphrase.");
    };
    if let Err(e) = state.passphrases.verify(peer.ip(), passphrase).await {
        return match Refusal::of(e) {
            Ok(refusal) => refusal.apply(fail(refusal.status, &refusal.text)),
            Err(e) => e.into_response(),
        };
    }
    let new = match state.sessions.sign_in_owner().await {
        Ok(new) => new,
        Err(e) => return ApiError::from(e).into_response(),
    };
    redirect_with_session(&next, &new)
}

fn redirect_with_session(to: &str, new: &NewSession) -> Response {
    let cookie = match session_cookie(new) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, to.to_owned())],
        "",
    )
        .into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// `POST /logout`: ends the session the request was made with.
pub async fn sign_out(
    State(state): State<AppState>,
    Authed(principal): Authed,
) -> Result<Response, ApiError> {
    if principal.kind != CredentialKind::Session {
        return Err(ApiError::bad_request(
            "not_a_session",
            "only a web session signs out; revoke a token with DELETE /api/v1/tokens/{id}",
        ));
    }
    state.sessions.sign_out(&principal.token_id).await?;
    let mut response = Json(serde_json::json!({ "signed_out": true })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    Ok(response)
}

/// `GET /pair/{code}`: a page with one button; the link is used only when it is pressed.
pub async fn pair_page(code: Result<Path<String>, PathRejection>) -> Response {
    match code {
        Ok(Path(code)) => html(
            StatusCode::OK,
            views::pair_confirm(&format!("/pair/{code}")),
        ),
        Err(_) => unusable_pairing(),
    }
}

/// `POST /pair/{code}`: uses the one-time link and signs this browser in with its scopes.
pub async fn pair(
    State(state): State<AppState>,
    code: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(code)) = code else {
        return unusable_pairing();
    };
    match state.sessions.redeem(&code).await {
        Ok(new) => redirect_with_session("/", &new),
        Err(session::PairingError::Unusable) => unusable_pairing(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn unusable_pairing() -> Response {
    html(
        StatusCode::GONE,
        views::message(
            "Link expired or used",
            "This pairing link has expired or was already used. Links work once, for a few \
             minutes. Ask for a new one with `agentgate pair`.",
            None,
        ),
    )
}

/// `GET /`: the inbox.
pub async fn inbox(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ApiError> {
    // The position first, then the list: an event after the position is replayed by the page,
    // and one already reflected in the list is recognised by its id.
    let after = state.broker.audit_head_seq().await?;
    let page = state.broker.list(Some(Status::Pending), None, 500).await?;
    let v = viewer;
    Ok(html(
        StatusCode::OK,
        views::inbox(&v, &page.permissions, after, state.clock.now()),
    ))
}

/// `GET /ui/cards/{id}`: one request's card, for the live inbox.
pub async fn card(
    State(state): State<AppState>,
    viewer: Viewer,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let view = state.broker.get(&viewer.principal, &id).await?;
    let v = viewer;
    Ok(html(
        StatusCode::OK,
        views::card(&v, &view, state.clock.now()),
    ))
}

/// `?cursor=` of the history page.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /history`.
pub async fn history(
    State(state): State<AppState>,
    viewer: Viewer,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let page = state.broker.history(q.cursor.as_deref(), 50).await?;
    let v = viewer;
    Ok(html(
        StatusCode::OK,
        views::history(&v, &page.permissions, page.next_cursor.as_deref()),
    ))
}

/// `GET /rules`.
pub async fn rules(State(state): State<AppState>, viewer: Viewer) -> Response {
    let v = viewer;
    html(StatusCode::OK, views::rules(&v, &state.broker.rules()))
}

/// `GET /tokens` (admin).
pub async fn tokens(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let tokens: Vec<_> = state
        .auth
        .list_tokens()
        .await?
        .iter()
        .map(|row| super::tokens::info(row, now))
        .collect();
    let pairings = state.sessions.pairings().await?;
    let clients = state.oauth.clients().await?;
    let grants = state.oauth.grants().await?;
    let oauth = views::OAuthView {
        clients: &clients,
        grants: &grants,
    };
    let v = viewer;
    Ok(html(
        StatusCode::OK,
        views::tokens(&v, &tokens, &pairings, &oauth),
    ))
}

/// `GET /audit`: the latest 100 entries and the chain check.
pub async fn audit(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ApiError> {
    let head = state.broker.audit_head_seq().await?;
    let mut entries = state.broker.audit((head - 100).max(0), 100).await?;
    entries.reverse();
    let check = state.broker.verify_audit().await?;
    let v = viewer;
    Ok(html(StatusCode::OK, views::audit(&v, &entries, &check)))
}

/// `GET /static/{file}`: the assets compiled into the binary.
pub async fn asset(file: Result<Path<String>, PathRejection>) -> Response {
    let (body, content_type) = match file.as_ref().map(|Path(f)| f.as_str()) {
        Ok("app.js") => (APP_JS, "text/javascript; charset=utf-8"),
        Ok("app.css") => (APP_CSS, "text/css; charset=utf-8"),
        _ => {
            return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such asset")
                .into_response();
        }
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_returned_to_after_sign_in() {
        assert_eq!(safe_next(Some("/history?cursor=1")), "/history?cursor=1");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "/login?next=/",
            "/x\ny",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
