//! `/api/v1/events` (SSE) and `/api/v1/audit`: the audit log is the event stream. Each event's id
//! is its audit sequence number, so `Last-Event-ID` resumes without loss: the backlog is read
//! from the store after subscribing to live events, and duplicates are skipped by id.

use std::convert::Infallible;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::AppState;
use super::error::ApiError;
use super::extract::Authed;
use super::extract::query;
use crate::api::{AuditEntry, AuditPage};
use crate::audit::Verification;

/// `?after=N&limit=M` for the audit log; `?last_event_id=N` for events.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    last_event_id: Option<i64>,
}

/// `GET /api/v1/audit`.
pub async fn list_audit(
    State(state): State<AppState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let q = query(q)?;
    let entries = state
        .broker
        .audit(q.after.unwrap_or(0), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(AuditPage { entries }))
}

/// `GET /api/v1/audit/head`: the last entry's sequence number (0 when empty), so a client can
/// follow events from "now" without replaying history.
pub async fn audit_head(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let seq = state.broker.audit_head_seq().await?;
    Ok(Json(serde_json::json!({ "seq": seq })))
}

/// `GET /api/v1/audit/verify`.
pub async fn verify_audit(State(state): State<AppState>) -> Result<Json<Verification>, ApiError> {
    Ok(Json(state.broker.verify_audit().await?))
}

/// `GET /api/v1/events`. The stream ends when its credential does: revoked, signed out, or
/// past its expiry (the client's reconnect then authenticates again).
pub async fn events(
    State(state): State<AppState>,
    Authed(who): Authed,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let q = query(q)?;
    let from_header = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_request",
                        "Last-Event-ID must be an event id (a number)",
                    )
                })?,
        ),
    };
    let mut last = from_header.or(q.last_event_id).unwrap_or(0);
    let broker = state.broker.clone();
    let (tx, rx) = mpsc::channel::<Event>(256);
    let mut live = broker.subscribe();
    let stopped = broker.until_stopped();
    let ended = super::access::credential_ended(&state, &who);
    tokio::spawn(async move {
        tokio::pin!(stopped);
        tokio::pin!(ended);
        'outer: loop {
            // Backlog (or catching up after lagging behind the live channel).
            loop {
                let Ok(page) = broker.audit(last, 1000).await else {
                    break 'outer;
                };
                for entry in &page {
                    if tx.send(event(entry)).await.is_err() {
                        break 'outer;
                    }
                    last = entry.seq;
                }
                if page.len() < 1000 {
                    break;
                }
            }
            loop {
                tokio::select! {
                    msg = live.recv() => match msg {
                        Ok(entry) => {
                            if entry.seq <= last { continue; }
                            if entry.seq > last + 1 { continue 'outer; }
                            if tx.send(event(&crate::broker::audit_entry((*entry).clone()))).await.is_err() { break 'outer; }
                            last = entry.seq;
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue 'outer,
                        Err(broadcast::error::RecvError::Closed) => break 'outer,
                    },
                    _ = &mut stopped => break 'outer,
                    _ = tx.closed() => break 'outer,
                    () = &mut ended => break 'outer,
                }
            }
        }
    });
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn event(entry: &AuditEntry) -> Event {
    Event::default()
        .id(entry.seq.to_string())
        .event(entry.event.clone())
        .json_data(entry)
        .unwrap_or_else(|_| {
            Event::default()
                .id(entry.seq.to_string())
                .event(entry.event.clone())
        })
}
