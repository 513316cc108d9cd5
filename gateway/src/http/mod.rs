//! A minimal HTTP/1.1 listener: `GET /metrics` (Prometheus text), `GET /health`, and the
//! API's `GET /voice-connectors/{id}/termination/health` (the last OPTIONS ping).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::Registry;

use connector::policy::HealthBook;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub async fn serve(
    listener: TcpListener,
    registry: Arc<Mutex<Registry>>,
    health: HealthBook,
    clock: crate::driver::clock::Clock,
) {
    let mut failures = 0u32;
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => {
                failures = 0;
                stream
            }
            Err(e) => {
                // No descriptors left (or another transient error): back off, never spin.
                if failures == 0 {
                    tracing::warn!(error = %e, "metrics listener: accept failed; backing off");
                }
                let ms = (10u64 << failures.min(7)).min(1000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                failures = failures.saturating_add(1);
                continue;
            }
        };
        let registry = registry.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // Read the request head (bounded in size and time).
            while n < buf.len() {
                match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf[n..])).await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let mut parts = head.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, ctype, body) = if method == "GET"
                && (path == "/metrics" || path.starts_with("/metrics?"))
            {
                let text = registry.lock().unwrap_or_else(|e| e.into_inner()).render();
                ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text)
            } else if method == "GET" && path == "/health" {
                let r = registry.lock().unwrap_or_else(|e| e.into_inner());
                if r.get(metrics::names::CDR_SPOOL_FAILING, &metrics::Labels::default()) > 0.0 {
                    (
                        "503 Service Unavailable",
                        "text/plain",
                        "cdr spool failing: records held in memory (disk full or read-only)\n"
                            .to_string(),
                    )
                } else {
                    ("200 OK", "text/plain", "ok\n".to_string())
                }
            } else if let Some(id) = (method == "GET")
                .then(|| {
                    path.strip_prefix("/voice-connectors/")?.strip_suffix("/termination/health")
                })
                .flatten()
            {
                let book = health.lock().unwrap_or_else(|e| e.into_inner());
                match book.get(id) {
                        Some(h) => ("200 OK", "application/json", h.to_json(clock.wall_of(h.at))),
                        None => (
                            "404 Not Found",
                            "application/json",
                            serde_json::json!({"Code": "NotFound", "Message": format!("no OPTIONS ping recorded for voice connector {id}")}).to_string(),
                        ),
                    }
            } else {
                ("404 Not Found", "text/plain", "not found\n".to_string())
            };
            let resp = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = stream.write_all(resp.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
