//! One PutMedia connection (kvs-putmedia.md §1.3): `POST <endpoint>/putMedia` over HTTP/1.1
//! (`http://` or `https://` with rustls), its body streamed chunked from a bounded channel
//! while the acknowledgements are read from the response as they come: full duplex on hyper's
//! `client::conn::http1`. The connection is a task of its own that reports what happens as
//! [`ConnEvent`]s, each tagged with the connection's number so that the stream's task can
//! ignore the news of a connection it already dropped. Dropping a [`Connection`] aborts it;
//! [`Connection::end_body`] ends the body (the terminating chunk) and lets the response finish.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use crate::http::client::Target;

/// Longest wait for the TCP (and TLS) connection, and then for the response head.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Body frames queued for the connection before the stream's task stops handing more.
const BODY_FRAMES: usize = 8;
/// Most bytes of a refusal's body kept for the log (KVS's error message).
const ERROR_BODY_MAX: usize = 512;

/// What happened to a connection.
#[derive(Debug)]
pub enum ConnEvent {
    /// KVS answered 200: the body is being read, acknowledgements follow.
    Open,
    /// No 200: `status` is the HTTP status and `x-amz-ErrorType` (without its `:` suffix),
    /// or `None` when the connection could not be made or answered nothing in time.
    Refused { status: Option<(u16, String)>, reason: String },
    /// Bytes of the response body: the acknowledgement stream.
    Data(Bytes),
    /// The response ended, or the connection broke.
    Ended { reason: String },
}

/// The request body: frames from the stream's task until it drops its end. The body ends
/// (hyper writes the terminating chunk) only when the task said so with `ended`; a sender
/// that went away without saying so is an abort, and the body fails, so that hyper drops
/// the connection instead of ending the body: the connection's task is aborted too, but
/// that takes effect later, and until then hyper would read the closed channel as the end.
struct ChannelBody {
    frames: mpsc::Receiver<Bytes>,
    ended: Arc<AtomicBool>,
}

/// The stream's task dropped the connection without ending its body.
#[derive(Debug)]
struct BodyAborted;

impl std::fmt::Display for BodyAborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the PutMedia body was aborted")
    }
}

impl std::error::Error for BodyAborted {}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.frames.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(None) if self.ended.load(Ordering::Acquire) => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(BodyAborted))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A task aborted when its handle is dropped (the connection's IO driver).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The stream's end of one PutMedia connection. Dropping it aborts the connection: its task
/// is aborted, and the body, not marked ended, fails (see [`ChannelBody`]), so an abort
/// never looks like a body that ended.
pub struct Connection {
    _task: AbortOnDrop,
    body: Option<mpsc::Sender<Bytes>>,
    ended: Arc<AtomicBool>,
}

impl Connection {
    /// Opens `POST <target>/putMedia` with `headers` (signed: see [`super::sign`]); events go
    /// to `events` tagged with `tag`.
    pub fn open(
        target: Target,
        headers: Vec<(String, String)>,
        tag: u64,
        events: mpsc::Sender<(u64, ConnEvent)>,
    ) -> Connection {
        let (body_tx, body_rx) = mpsc::channel(BODY_FRAMES);
        let ended = Arc::new(AtomicBool::new(false));
        let body = ChannelBody { frames: body_rx, ended: ended.clone() };
        let task = tokio::spawn(async move {
            let end = run(&target, headers, body, tag, &events).await;
            let _ = events.send((tag, end)).await;
        });
        Connection { _task: AbortOnDrop(task), body: Some(body_tx), ended }
    }

    /// Room for one more body frame: the permit to send it, or `None` while the connection
    /// is behind (or its body ended).
    pub fn reserve(&self) -> Option<mpsc::Permit<'_, Bytes>> {
        self.body.as_ref()?.try_reserve().ok()
    }

    /// Waits for room for one more body frame (never resolves once the body ended).
    pub async fn ready(&self) {
        match &self.body {
            Some(b) => {
                let _ = b.reserve().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Ends the body: hyper sends the terminating chunk; the response goes on to its end.
    pub fn end_body(&mut self) {
        self.ended.store(true, Ordering::Release);
        self.body = None;
    }
}

/// The connection's life; returns its last event.
async fn run(
    target: &Target,
    headers: Vec<(String, String)>,
    body: ChannelBody,
    tag: u64,
    events: &mpsc::Sender<(u64, ConnEvent)>,
) -> ConnEvent {
    let refused = |reason: String| ConnEvent::Refused { status: None, reason };
    let tcp = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((target.host(), target.port())),
    )
    .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return refused(format!("connect to {}: {e}", target.describe())),
        Err(_) => return refused(format!("connect to {}: no answer in time", target.describe())),
    };
    let _ = tcp.set_nodelay(true);
    let req = match request(target, headers, body) {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    if target.is_tls() {
        let tls = match tokio::time::timeout(CONNECT_TIMEOUT, target.tls_connect(tcp)).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return refused(format!("TLS to {}: {e}", target.describe())),
            Err(_) => return refused(format!("TLS to {}: no answer in time", target.describe())),
        };
        exchange(TokioIo::new(tls), req, tag, events).await
    } else {
        exchange(TokioIo::new(tcp), req, tag, events).await
    }
}

fn request(
    target: &Target,
    headers: Vec<(String, String)>,
    body: ChannelBody,
) -> Result<hyper::Request<ChannelBody>, String> {
    let mut b = hyper::Request::post(target.path_with("/putMedia"));
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.header(hyper::header::USER_AGENT, concat!("voicegw/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::TRANSFER_ENCODING, "chunked")
        .header(hyper::header::CONNECTION, "keep-alive")
        .body(body)
        .map_err(|e| format!("the PutMedia request cannot be built: {e}"))
}

async fn exchange<I>(
    io: I,
    req: hyper::Request<ChannelBody>,
    tag: u64,
    events: &mpsc::Sender<(u64, ConnEvent)>,
) -> ConnEvent
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let refused = |reason: String| ConnEvent::Refused { status: None, reason };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(io).await {
        Ok(x) => x,
        Err(e) => return refused(format!("HTTP: {e}")),
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let r = conn.await;
        let _ = done_tx.send(r.err().map(|e| e.to_string()));
    }));
    let resp = match tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return refused(format!("HTTP: {e}")),
        Err(_) => return refused("no response within 10 s".into()),
    };
    let status = resp.status().as_u16();
    if status != 200 {
        let error_type = resp
            .headers()
            .get("x-amz-errortype")
            .or_else(|| resp.headers().get("x-amzn-errortype"))
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or_default().chars().take(64).collect())
            .unwrap_or_default();
        let message = error_body(resp.into_body()).await;
        let reason = format!("PutMedia answered {status} {error_type} {message}");
        return ConnEvent::Refused { status: Some((status, error_type)), reason };
    }
    if events.send((tag, ConnEvent::Open)).await.is_err() {
        return ConnEvent::Ended { reason: "the stream is gone".into() };
    }
    let mut body = resp.into_body();
    loop {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    if events.send((tag, ConnEvent::Data(data))).await.is_err() {
                        return ConnEvent::Ended { reason: "the stream is gone".into() };
                    }
                }
            }
            Some(Err(e)) => return ConnEvent::Ended { reason: format!("response: {e}") },
            None => break,
        }
    }
    // The response ended; the connection's own error, if it broke, says more.
    let why = tokio::time::timeout(Duration::from_millis(100), done_rx).await;
    match why {
        Ok(Ok(Some(e))) => ConnEvent::Ended { reason: format!("connection: {e}") },
        _ => ConnEvent::Ended { reason: "response ended".into() },
    }
}

/// The first bytes of a refusal's body, printable, for the log (bounded in size and time).
async fn error_body(mut body: hyper::body::Incoming) -> String {
    let mut kept = Vec::new();
    let read = async {
        while let Some(Ok(f)) = body.frame().await {
            if let Ok(d) = f.into_data() {
                let room = ERROR_BODY_MAX.saturating_sub(kept.len());
                kept.extend_from_slice(&d[..d.len().min(room)]);
                if kept.len() >= ERROR_BODY_MAX {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    String::from_utf8_lossy(&kept).chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> (mpsc::Sender<Bytes>, Arc<AtomicBool>, ChannelBody) {
        let (tx, rx) = mpsc::channel(2);
        let ended = Arc::new(AtomicBool::new(false));
        (tx, ended.clone(), ChannelBody { frames: rx, ended })
    }

    #[tokio::test]
    async fn a_body_ends_only_when_told_and_fails_when_its_sender_vanishes() {
        let (tx, ended, mut b) = body();
        tx.send(Bytes::from_static(b"ab")).await.unwrap();
        ended.store(true, Ordering::Release);
        drop(tx);
        let f = b.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), Bytes::from_static(b"ab"));
        assert!(b.frame().await.is_none(), "ended: the terminating chunk");

        let (tx, _ended, mut b) = body();
        tx.send(Bytes::from_static(b"ab")).await.unwrap();
        drop(tx);
        assert!(b.frame().await.unwrap().is_ok());
        assert!(b.frame().await.unwrap().is_err(), "dropped: an abort, never an end");
    }
}
