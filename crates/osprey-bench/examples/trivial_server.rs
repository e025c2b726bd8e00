//! A trivial embedding endpoint for measuring the generator itself: every POST
//! gets a fixed one-vector JSON at once, so the client's cost dominates.
//!
//! ```sh
//! taskset -c 1 cargo run --release -p osprey-bench --example trivial_server -- 127.0.0.1:9100
//! ```
//! It serves on one thread (pin it to a core of its own) and stops after an
//! hour, or at Ctrl-C.
//!
//! With a second argument D (milliseconds), request n waits (n mod 100)/50 × D:
//! latencies spread evenly from 0 to 2D, so p50 ≈ D, p90 ≈ 1.8 D and p99 ≈ 1.98 D
//! for any client, which makes two clients' percentiles comparable.

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const BODY: &[u8] = b"[[0.1,0.2,0.3]]";

async fn answer(
    req: Request<hyper::body::Incoming>,
    delay: Option<Duration>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the request body so the connection stays reusable.
    let _ = req.into_body().collect().await;
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into());
    let spread_ms: Option<f64> = std::env::args().nth(2).and_then(|d| d.parse().ok());
    let counter = Rc::new(Cell::new(0u64));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("trivial server on http://{}", listener.local_addr()?);
        let serve = async {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let counter = counter.clone();
                let service = service_fn(move |req| {
                    let delay = spread_ms.map(|d| {
                        let n = counter.get();
                        counter.set(n + 1);
                        Duration::from_secs_f64((n % 100) as f64 / 50.0 * d / 1000.0)
                    });
                    answer(req, delay)
                });
                tokio::task::spawn_local(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        };
        tokio::select! {
            () = serve => {}
            _ = tokio::signal::ctrl_c() => {}
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
        Ok(())
    })
}
