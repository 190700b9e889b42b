//! The floor under the gateway's proxy path: hyper's server and client connections joined with
//! nothing between them (no token, no table, no header rules, no pool: one upstream connection
//! per client connection). docs/PERFORMANCE.md compares the gateway with it, in the shared
//! harness's set-up:
//!
//!     cargo build --release --example proxy_floor
//!     taskset -c 0 target/release/examples/proxy_floor 127.0.0.1:18086 127.0.0.1:18080 [current-thread]
//!     taskset -c 1 wrk -t1 -c64 -d10s --latency http://127.0.0.1:18086/
//!
//! `current-thread` runs it on tokio's current-thread runtime rather than the multi-thread one
//! the daemon uses. Not part of agentgate: a measuring stick, so it stops at the first error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: proxy_floor LISTEN UPSTREAM [current-thread]");
        std::process::exit(2);
    };
    let mut runtime = match args.get(3).map(String::as_str) {
        Some("current-thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().build().expect("a runtime");
    runtime.block_on(serve(listen.clone(), upstream.clone()));
}

async fn serve(listen: String, upstream: String) {
    let listener = TcpListener::bind(&listen)
        .await
        .expect("the listen address");
    loop {
        let (client, _) = listener.accept().await.expect("a connection");
        client.set_nodelay(true).unwrap();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let tcp = TcpStream::connect(&upstream).await.expect("the upstream");
            tcp.set_nodelay(true).unwrap();
            let (sender, connection) =
                hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let sender = Arc::new(Mutex::new(sender));
            let service = service_fn(move |request: hyper::Request<Incoming>| {
                sender.lock().unwrap().send_request(request)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(client), service)
                .await;
        });
    }
}
