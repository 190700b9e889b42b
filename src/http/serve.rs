//! The connection loop under the router: hyper's HTTP/1.1 connection builder, set up here rather
//! than with `axum::serve`'s defaults, because a gate holds thousands of parked long-polls and must
//! bound what an idle or slow client can hold.
//!
//! - A client has [`HEADER_READ_TIMEOUT`] to send a request's head (slowloris), and an idle
//!   keep-alive connection is closed after the same time.
//! - At most [`MAX_HEADERS`] headers per request.
//! - Replies go out at once (`TCP_NODELAY`): a decision or an event is a small write.
//! - Shutdown stops accepting, lets requests in flight finish (long-polls and event streams end
//!   themselves: see `Broker::begin_shutdown`), and closes idle connections.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::{Routes, Site, lane};

pub use super::limits::{HEADER_READ_TIMEOUT, MAX_HEADERS};

/// Serves `site` on `listener` until `shutdown` completes, then finishes what is in flight.
pub async fn serve(
    listener: TcpListener,
    site: Site,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // A gateway's connection tasks share one copy, held until hyper is needed, if ever.
    let shared = std::sync::Arc::new(http.clone());
    let graceful = GracefulShutdown::new();
    let stop = tokio::sync::watch::channel(false).0;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let site = site.clone();
        if let Routes::Proxy(gate) = &site.routes {
            // A gateway: its fast lane first, then hyper for whatever the lane does not take.
            let gate = gate.clone();
            let http = shared.clone();
            let mut stopping = stop.subscribe();
            tokio::spawn(async move {
                // Boxed: the lane's future is freed when the connection leaves it.
                let left = Box::pin(lane::serve(&site, &gate, tcp, peer, &mut stopping)).await;
                if let lane::Left::Hyper(io) = left {
                    proxied(&http, site, io, peer, stopping).await;
                }
            });
            continue;
        }
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            site.on_head(&mut request);
            site.clone().handle(request.map(Body::new), peer)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
        // `map`, not an async block around `.await`: the block would hold the connection twice
        // (once captured, once awaited), and 10,000 parked long-polls would pay for both.
        tokio::spawn(connection.map(move |served| {
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }));
    }
    drop(listener);
    let _ = stop.send(true);
    graceful.shutdown().await;
    Ok(())
}

/// Serves a gateway's connection with hyper from where its fast lane left it, carrying protocol
/// upgrades (WebSockets). hyper-util's graceful watcher cannot hold an upgrade, so the
/// connection is shut down gracefully by hand when `stopping` turns.
async fn proxied(
    http: &http1::Builder,
    site: Site,
    io: lane::Prefixed,
    peer: std::net::SocketAddr,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        site.on_head(&mut request);
        site.clone().handle(request.map(Body::new), peer)
    });
    // Boxed, so that the task holds it once (pinned in the block, it would be held twice).
    let mut connection = Box::pin(
        http.serve_connection(TokioIo::new(io), service)
            .with_upgrades(),
    );
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = stop => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// A failed accept: the peer's own trouble is skipped; anything else (out of file descriptors)
/// is logged and waited out, so the loop does not spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
