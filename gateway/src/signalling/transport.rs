//! Socket IO for SIP: a UDP receive loop and TCP/TLS connection tasks that frame messages by
//! Content-Length. Everything read goes to the driver as [`Inbound`]; everything to write comes
//! from the driver.
//!
//! Limits, so a peer cannot hold descriptors or the driver's writes: a connection counts
//! against `max_connections` from `accept` on (TLS handshakes included, 10 s at most); an idle
//! connection closes after `idle`; a message begun must be complete within `message_timeout`
//! however slowly its bytes trickle in; a write that does not complete within
//! `write_timeout` (a peer that never reads) closes the connection. Accept errors (no
//! descriptors left) back off up to a second instead of spinning.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sip::framing::{Frame, StreamFramer, PONG};
use sip::message::ParseLimits;
use sip::{Peer, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// What the transports tell the driver.
#[derive(Debug)]
pub enum Inbound {
    Message {
        bytes: Bytes,
        peer: Peer,
    },
    /// A connection is up; the driver writes to it through `tx`.
    Opened {
        conn: u64,
        peer: Peer,
        tx: mpsc::Sender<Bytes>,
    },
    Closed {
        conn: u64,
        peer: Peer,
    },
    /// A connection could not be made, or was closed for garbage.
    Failed {
        peer: Peer,
        reason: String,
        garbage: bool,
    },
}

/// Shared connection settings.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub limits: ParseLimits,
    pub idle: Duration,
    pub max_connections: usize,
    /// A message must be complete this long after its first byte arrived.
    pub message_timeout: Duration,
    /// A write to the peer must complete within this.
    pub write_timeout: Duration,
    /// Connections open or being set up (accepted sockets, TLS handshakes, outbound connects).
    pub open: Arc<AtomicUsize>,
    pub next_id: Arc<std::sync::atomic::AtomicU64>,
    /// Client side of outbound TLS connections.
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// Where connection deadlines read the time.
    pub clock: crate::driver::clock::Clock,
}

impl StreamSettings {
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A place for one connection, held until dropped; `None` when `max_connections` are open.
    fn slot(&self) -> Option<Slot> {
        let mut now = self.open.load(Ordering::Relaxed);
        loop {
            if now >= self.max_connections {
                return None;
            }
            match self.open.compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(Slot(self.open.clone())),
                Err(actual) => now = actual,
            }
        }
    }
}

/// One connection's place in the count of open connections.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Backoff after an accept error: doubles from 10 ms to 1 s.
fn accept_backoff(failures: u32) -> Duration {
    Duration::from_millis(10u64 << failures.min(7)).min(Duration::from_secs(1))
}

/// Receives datagrams forever.
pub async fn udp_loop(socket: Arc<UdpSocket>, inbound: mpsc::Sender<Inbound>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                // Keep-alives (CRLF) and empty datagrams carry no message.
                if buf[..n].iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                let msg = Inbound::Message {
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                    peer: Peer::new(Transport::Udp, from),
                };
                if inbound.send(msg).await.is_err() {
                    return;
                }
            }
            // An ICMP error (IP_RECVERR): each queued one fails the transactions towards the
            // datagram's destination.
            Err(e) => {
                tracing::debug!(error = %e, "udp receive error");
                if report_udp_errors(&socket, &inbound).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The ICMP errors queued on `socket`, each as the transport error of its destination.
pub fn udp_failures(socket: &UdpSocket) -> impl Iterator<Item = Inbound> {
    crate::signalling::udp_errors::drain(socket).into_iter().map(|e| Inbound::Failed {
        peer: Peer::new(Transport::Udp, e.destination),
        reason: e.reason,
        garbage: false,
    })
}

/// Reads the ICMP errors queued on `socket` and reports each as a transport error.
pub async fn report_udp_errors(
    socket: &UdpSocket,
    inbound: &mpsc::Sender<Inbound>,
) -> Result<(), ()> {
    for failure in udp_failures(socket) {
        inbound.send(failure).await.map_err(|_| ())?;
    }
    Ok(())
}

/// Accepts TCP (or, with `tls`, TLS) connections forever.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    settings: StreamSettings,
    inbound: mpsc::Sender<Inbound>,
) {
    let transport = if tls.is_some() { Transport::Tls } else { Transport::Tcp };
    let mut failures = 0u32;
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => {
                failures = 0;
                x
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, %transport, "accept failed; backing off");
                }
                tokio::time::sleep(accept_backoff(failures)).await;
                failures = failures.saturating_add(1);
                continue;
            }
        };
        let Some(slot) = settings.slot() else {
            tracing::warn!(%from, %transport, limit = settings.max_connections, "connection refused: limit reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer::new(transport, from);
        let (settings, inbound, tls) = (settings.clone(), inbound.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => run_connection(stream, peer, settings, inbound).await,
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => run_connection(s, peer, settings, inbound).await,
                        Ok(Err(e)) => {
                            let _ = inbound
                                .send(Inbound::Failed {
                                    peer,
                                    reason: format!("TLS handshake: {e}"),
                                    garbage: true,
                                })
                                .await;
                        }
                        Err(_) => {
                            let _ = inbound
                                .send(Inbound::Failed {
                                    peer,
                                    reason: "TLS handshake timed out".into(),
                                    garbage: true,
                                })
                                .await;
                        }
                    }
                }
            }
        });
    }
}

/// Opens an outbound TCP connection — TLS over it when `peer` is TLS — and runs
/// it; `rx` holds what the driver already queued.
pub async fn connect(
    peer: Peer,
    conn: u64,
    rx: mpsc::Receiver<Bytes>,
    settings: StreamSettings,
    inbound: mpsc::Sender<Inbound>,
) {
    let Some(_slot) = settings.slot() else {
        let reason = format!("connection limit ({}) reached", settings.max_connections);
        let _ = inbound.send(Inbound::Failed { peer, reason, garbage: false }).await;
        let _ = inbound.send(Inbound::Closed { conn, peer }).await;
        return;
    };
    match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(peer.addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            if peer.transport != Transport::Tls {
                serve(stream, peer.with_conn(conn), conn, rx, settings, inbound).await;
                return;
            }
            let failed = |reason: String| Inbound::Failed { peer, reason, garbage: false };
            let Some(connector) = settings.tls_client.clone().map(tokio_rustls::TlsConnector::from)
            else {
                let _ = inbound.send(failed("no TLS client configuration".into())).await;
                let _ = inbound.send(Inbound::Closed { conn, peer }).await;
                return;
            };
            let name = rustls::pki_types::ServerName::IpAddress(peer.addr.ip().into());
            match tokio::time::timeout(Duration::from_secs(10), connector.connect(name, stream))
                .await
            {
                Ok(Ok(s)) => serve(s, peer.with_conn(conn), conn, rx, settings, inbound).await,
                Ok(Err(e)) => {
                    let _ = inbound.send(failed(format!("TLS handshake: {e}"))).await;
                    let _ = inbound.send(Inbound::Closed { conn, peer }).await;
                }
                Err(_) => {
                    let _ = inbound.send(failed("TLS handshake timed out".into())).await;
                    let _ = inbound.send(Inbound::Closed { conn, peer }).await;
                }
            }
        }
        Ok(Err(e)) => {
            let _ = inbound
                .send(Inbound::Failed { peer, reason: format!("connect: {e}"), garbage: false })
                .await;
            let _ = inbound.send(Inbound::Closed { conn, peer }).await;
        }
        Err(_) => {
            let _ = inbound
                .send(Inbound::Failed { peer, reason: "connect timed out".into(), garbage: false })
                .await;
            let _ = inbound.send(Inbound::Closed { conn, peer }).await;
        }
    }
}

async fn run_connection<S>(
    stream: S,
    peer: Peer,
    settings: StreamSettings,
    inbound: mpsc::Sender<Inbound>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let conn = settings.new_id();
    let (tx, rx) = mpsc::channel(256);
    let peer = peer.with_conn(conn);
    if inbound.send(Inbound::Opened { conn, peer, tx }).await.is_err() {
        return;
    }
    serve(stream, peer, conn, rx, settings, inbound).await;
}

/// Reads frames and writes queued messages until the peer closes, idles out or sends garbage.
async fn serve<S>(
    stream: S,
    peer: Peer,
    conn: u64,
    mut rx: mpsc::Receiver<Bytes>,
    settings: StreamSettings,
    inbound: mpsc::Sender<Inbound>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut framer = StreamFramer::new(settings.limits);
    let mut buf = vec![0u8; 16 * 1024];
    let addr: SocketAddr = peer.addr;
    // When the message now partly buffered must be complete.
    let mut message_deadline: Option<tokio::time::Instant> = None;
    loop {
        let wait = match message_deadline {
            Some(d) => d.saturating_duration_since(settings.clock.tokio_now()).min(settings.idle),
            None => settings.idle,
        };
        tokio::select! {
            read = tokio::time::timeout(wait, rd.read(&mut buf)) => {
                let n = match read {
                    Err(_) if message_deadline.is_some_and(|d| d <= settings.clock.tokio_now()) => {
                        tracing::info!(%addr, secs = settings.message_timeout.as_secs(), "connection closed: a message was not complete in time");
                        let _ = inbound.send(Inbound::Failed { peer, reason: "message not complete in time".into(), garbage: true }).await;
                        break;
                    }
                    Err(_) => { tracing::debug!(%addr, "idle connection closed"); break; }
                    Ok(Err(e)) => { tracing::debug!(%addr, error = %e, "read error"); break; }
                    Ok(Ok(0)) => break,
                    Ok(Ok(n)) => n,
                };
                framer.push(&buf[..n]);
                let mut failed = false;
                loop {
                    match framer.next_frame() {
                        Ok(Some(Frame::Message(bytes))) => {
                            if inbound.send(Inbound::Message { bytes, peer }).await.is_err() { failed = true; break; }
                        }
                        Ok(Some(Frame::Ping)) => {
                            if !write_within(&mut wr, PONG, settings.write_timeout, addr).await { failed = true; break; }
                        }
                        Ok(Some(Frame::Pong)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            let _ = inbound.send(Inbound::Failed { peer, reason: e.to_string(), garbage: true }).await;
                            failed = true;
                            break;
                        }
                    }
                }
                if failed { break; }
                message_deadline = match (framer.buffered(), message_deadline) {
                    (0, _) => None,
                    (_, Some(d)) => Some(d),
                    (_, None) => Some(settings.clock.tokio_now() + settings.message_timeout),
                };
            }
            out = rx.recv() => {
                match out {
                    Some(bytes) => {
                        if !write_within(&mut wr, &bytes, settings.write_timeout, addr).await {
                            break;
                        }
                    }
                    None => break,
                }
            }
        }
    }
    let _ = tokio::time::timeout(settings.write_timeout, wr.shutdown()).await;
    let _ = inbound.send(Inbound::Closed { conn, peer }).await;
}

/// Writes `bytes` unless the peer does not take them within `limit` (it does not read).
async fn write_within<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bytes: &[u8],
    limit: Duration,
    addr: SocketAddr,
) -> bool {
    match tokio::time::timeout(limit, wr.write_all(bytes)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(%addr, error = %e, "write error");
            false
        }
        Err(_) => {
            tracing::info!(%addr, secs = limit.as_secs(), "connection closed: the peer does not read");
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests may read the clock
mod tests {
    use super::*;

    /// A peer that never reads: the write gives up after the limit instead of blocking the
    /// connection (and the driver's queue to it) for ever.
    #[tokio::test]
    async fn writes_to_a_peer_that_never_reads_time_out() {
        let (mut ours, _theirs) = tokio::io::duplex(64);
        let addr: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        assert!(write_within(&mut ours, &[b'x'; 32], Duration::from_millis(50), addr).await);
        let start = std::time::Instant::now();
        assert!(!write_within(&mut ours, &[b'x'; 4096], Duration::from_millis(50), addr).await);
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn connection_slots_are_capped_and_given_back() {
        let settings = StreamSettings {
            limits: ParseLimits::default(),
            idle: Duration::from_secs(1),
            max_connections: 2,
            message_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            open: Arc::new(AtomicUsize::new(0)),
            next_id: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            tls_client: None,
            clock: crate::driver::clock::Clock::start(),
        };
        let a = settings.slot().unwrap();
        let _b = settings.slot().unwrap();
        assert!(settings.slot().is_none());
        drop(a);
        assert!(settings.slot().is_some());
        assert_eq!(accept_backoff(0), Duration::from_millis(10));
        assert_eq!(accept_backoff(30), Duration::from_secs(1));
    }
}
