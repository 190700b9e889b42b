//! The floor under the gateway's fast lane (`src/http/lane.rs`): a request head parsed with
//! `httparse` and written upstream, the answer's head parsed and written back, in the client
//! connection's own task over an upstream connection of its own; no token, no table, no header
//! rules. Bodiless requests and `Content-Length` answers only. docs/PERFORMANCE.md compares the
//! lane and nginx with it, in the shared harness's set-up:
//!
//!     cargo build --release --example raw_floor
//!     taskset -c 0 target/release/examples/raw_floor 127.0.0.1:18088 127.0.0.1:18080 [current-thread]
//!     taskset -c 1 wrk -t1 -c64 -d10s --latency http://127.0.0.1:18088/
//!
//! Not part of agentgate: a measuring stick, so it stops at the first error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1).cloned(), args.get(2).cloned()) else {
        eprintln!("usage: raw_floor LISTEN UPSTREAM [current-thread]");
        std::process::exit(2);
    };
    let mut runtime = match args.get(3).map(String::as_str) {
        Some("current-thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(&listen).await.unwrap();
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let _ = conn(client, upstream).await;
            });
        }
    });
}

async fn conn(mut client: TcpStream, upstream: String) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut up = TcpStream::connect(&upstream).await?;
    up.set_nodelay(true)?;
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    let mut out = Vec::with_capacity(4096);
    let mut ubuf = vec![0u8; 4096];
    loop {
        // Read a request head.
        let head_len = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[..filled]) {
                Ok(httparse::Status::Complete(n)) => {
                    out.clear();
                    out.extend_from_slice(req.method.unwrap().as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(req.path.unwrap().as_bytes());
                    out.extend_from_slice(b" HTTP/1.1\r\n");
                    for h in req.headers.iter() {
                        if h.name.eq_ignore_ascii_case("connection")
                            || h.name.eq_ignore_ascii_case("authorization")
                        {
                            continue;
                        }
                        header_line(&mut out, h);
                    }
                    out.extend_from_slice(b"x-forwarded-for: 127.0.0.1\r\n\r\n");
                    break n;
                }
                Ok(httparse::Status::Partial) => {
                    let n = client.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    filled += n;
                }
                Err(_) => return Ok(()),
            }
        };
        buf.copy_within(head_len..filled, 0);
        filled -= head_len;
        up.write_all(&out).await?;
        // Read the answer.
        let mut ufilled = 0;
        loop {
            let n = up.read(&mut ubuf[ufilled..]).await?;
            if n == 0 {
                return Ok(());
            }
            ufilled += n;
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut res = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = res.parse(&ubuf[..ufilled]) {
                let mut len = 0usize;
                out.clear();
                out.extend_from_slice(b"HTTP/1.1 ");
                out.extend_from_slice(res.code.unwrap().to_string().as_bytes());
                out.push(b' ');
                out.extend_from_slice(res.reason.unwrap_or("").as_bytes());
                out.extend_from_slice(b"\r\n");
                for h in res.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        len = std::str::from_utf8(h.value).unwrap().parse().unwrap();
                    }
                    if h.name.eq_ignore_ascii_case("connection") {
                        continue;
                    }
                    header_line(&mut out, h);
                }
                out.extend_from_slice(b"\r\n");
                while ufilled < n + len {
                    let m = up.read(&mut ubuf[ufilled..]).await?;
                    if m == 0 {
                        return Ok(());
                    }
                    ufilled += m;
                }
                out.extend_from_slice(&ubuf[n..n + len]);
                client.write_all(&out).await?;
                break;
            }
        }
    }
}

/// Writes one header as `name: value`.
fn header_line(out: &mut Vec<u8>, h: &httparse::Header<'_>) {
    out.extend_from_slice(h.name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(h.value);
    out.extend_from_slice(b"\r\n");
}
