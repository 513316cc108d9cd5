//! The gateway's HTTP server, on hyper (HTTP/1.1): the routes of [`routes`] (metrics, health,
//! termination health; the admin API later). Request heads must arrive within 5 s, and the
//! number of connections served at once is capped, so a slow or flooding client costs little.

pub mod client;
pub mod routes;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

pub use routes::State;

/// Most HTTP connections served at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 256;

/// How long a client has to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `state` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, state: State) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut failures = 0u32;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                failures = 0;
                stream
            }
            Err(e) => {
                // No descriptors left (or another transient error): back off, never spin.
                if failures == 0 {
                    tracing::warn!(error = %e, "HTTP listener: accept failed; backing off");
                }
                let ms = (10u64 << failures.min(7)).min(1000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                failures = failures.saturating_add(1);
                continue;
            }
        };
        if open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let state = state.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let a = routes::route(req.method().as_str(), req.uri().path(), &state);
                async move { Ok::<_, Infallible>(response(a)) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn response(a: routes::Answer) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(a.body)));
    *r.status_mut() =
        hyper::StatusCode::from_u16(a.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(a.content_type),
    );
    r
}
