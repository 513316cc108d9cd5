//! Socket IO for SIP: a UDP receive loop and TCP/TLS connection tasks that frame messages by
//! Content-Length. Everything read goes to the driver as [`Inbound`]; everything to write comes
//! from the driver.

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
    pub open: Arc<AtomicUsize>,
    pub next_id: Arc<std::sync::atomic::AtomicU64>,
    /// Client side of outbound TLS connections.
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
}

impl StreamSettings {
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
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
    crate::udp_errors::drain(socket).into_iter().map(|e| Inbound::Failed {
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
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, %transport, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if settings.open.load(Ordering::Relaxed) >= settings.max_connections {
            tracing::warn!(%from, %transport, limit = settings.max_connections, "connection refused: limit reached");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let peer = Peer::new(transport, from);
        let (settings, inbound, tls) = (settings.clone(), inbound.clone(), tls.clone());
        tokio::spawn(async move {
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
    settings.open.fetch_add(1, Ordering::Relaxed);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut framer = StreamFramer::new(settings.limits);
    let mut buf = vec![0u8; 16 * 1024];
    let addr: SocketAddr = peer.addr;
    loop {
        tokio::select! {
            read = tokio::time::timeout(settings.idle, rd.read(&mut buf)) => {
                let n = match read {
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
                            if wr.write_all(PONG).await.is_err() { failed = true; break; }
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
            }
            out = rx.recv() => {
                match out {
                    Some(bytes) => {
                        if let Err(e) = wr.write_all(&bytes).await {
                            tracing::debug!(%addr, error = %e, "write error");
                            break;
                        }
                    }
                    None => break,
                }
            }
        }
    }
    let _ = wr.shutdown().await;
    settings.open.fetch_sub(1, Ordering::Relaxed);
    let _ = inbound.send(Inbound::Closed { conn, peer }).await;
}
