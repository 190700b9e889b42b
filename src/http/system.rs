//! `/healthz`, `/api/v1/whoami`, `/api/v1/bridges` and `/api/v1/gateways`.

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::extract::Authed;
use crate::api::{BridgeList, GatewayInfo, GatewayList, Health, WhoAmI};

/// `GET /healthz`: the daemon answers. No credential needed.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// `GET /api/v1/whoami`: the presented credential, as verified.
pub async fn whoami(Authed(who): Authed) -> Json<WhoAmI> {
    Json(WhoAmI {
        id: who.token_id.clone(),
        name: who.name.clone(),
        scopes: who.scopes.to_vec(),
        expires_at: who.expires_at,
    })
}

/// `GET /api/v1/bridges`: the agent servers followed, and how each connection stands.
pub async fn bridges(State(state): State<AppState>) -> Json<BridgeList> {
    Json(state.bridges.list())
}

/// `GET /api/v1/gateways`: each gateway, and whether its upstream accepts a connection now.
pub async fn gateways(State(state): State<AppState>) -> Json<GatewayList> {
    let checks = state.gateways.iter().map(|g| async move {
        let upstream = g.upstream.as_deref().and_then(|u| url::Url::parse(u).ok());
        let (reachable, error) = match upstream
            .as_ref()
            .and_then(|u| Some((u.host_str()?.to_owned(), u.port_or_known_default()?)))
        {
            None => (None, None),
            Some((host, port)) => {
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let connect = tokio::net::TcpStream::connect((host, port));
                match tokio::time::timeout(std::time::Duration::from_secs(1), connect).await {
                    Ok(Ok(_)) => (Some(true), None),
                    Ok(Err(e)) => (Some(false), Some(e.to_string())),
                    Err(_) => (Some(false), Some("no answer within 1 s".to_owned())),
                }
            }
        };
        GatewayInfo {
            name: g.name.clone(),
            preset: g.preset.as_str().to_owned(),
            listen: g.proxy.as_ref().map(|p| p.listen.to_string()),
            upstream: g.upstream.clone(),
            reachable,
            error,
        }
    });
    Json(GatewayList {
        gateways: futures_util::future::join_all(checks).await,
    })
}
