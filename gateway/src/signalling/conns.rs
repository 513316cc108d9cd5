//! The table of TCP and TLS connections (inbound and outbound) and sending a SIP message to a
//! peer: on the UDP socket, on the peer's connection, or on a new outbound connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sip::{Peer, Transport};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::transport::{self, Inbound, StreamSettings};

/// Open connections, by id and by (transport, address).
#[derive(Default)]
pub struct Conns {
    by_id: HashMap<u64, (Peer, mpsc::Sender<Bytes>)>,
    by_addr: HashMap<(Transport, SocketAddr), u64>,
    /// How many of `by_id` are TLS (a metric; counted as they come and go).
    tls: usize,
}

impl Conns {
    pub fn insert(&mut self, id: u64, peer: Peer, tx: mpsc::Sender<Bytes>) {
        self.by_addr.insert((peer.transport, peer.addr), id);
        if let Some((old, _)) = self.by_id.insert(id, (peer, tx)) {
            self.tls -= usize::from(old.transport == Transport::Tls);
        }
        self.tls += usize::from(peer.transport == Transport::Tls);
    }

    pub fn remove(&mut self, id: u64, peer: Peer) {
        if let Some((old, _)) = self.by_id.remove(&id) {
            self.tls -= usize::from(old.transport == Transport::Tls);
        }
        if self.by_addr.get(&(peer.transport, peer.addr)) == Some(&id) {
            self.by_addr.remove(&(peer.transport, peer.addr));
        }
    }

    /// Open TLS connections.
    pub fn tls(&self) -> usize {
        self.tls
    }
}

/// Where SIP messages leave from.
pub struct Senders {
    pub udp: Option<Arc<UdpSocket>>,
    pub conns: Conns,
    pub settings: StreamSettings,
    /// The driver's inbound channel (new connections report there).
    pub inbound: mpsc::Sender<Inbound>,
}

impl Senders {
    /// Sends `bytes` to `peer`.
    pub async fn transmit(&mut self, peer: Peer, bytes: Bytes) {
        match peer.transport {
            Transport::Udp => {
                if let Some(s) = &self.udp {
                    if let Err(e) = s.send_to(&bytes, peer.addr).await {
                        // A pending ICMP error may surface here rather than on the receive side.
                        tracing::debug!(%peer, error = %e, "udp send failed");
                        // try_send: the driver itself drains this channel.
                        for failure in transport::udp_failures(s) {
                            let _ = self.inbound.try_send(failure);
                        }
                    }
                } else {
                    tracing::warn!(%peer, "no UDP listener to send from");
                }
            }
            Transport::Tcp | Transport::Tls => {
                let conns = &mut self.conns;
                let conn = peer
                    .conn
                    .filter(|c| conns.by_id.contains_key(c))
                    .or_else(|| conns.by_addr.get(&(peer.transport, peer.addr)).copied());
                if let Some((_, tx)) = conn.and_then(|c| conns.by_id.get(&c)) {
                    if tx.try_send(bytes).is_err() {
                        tracing::warn!(%peer, "connection write queue full or closed; message dropped");
                    }
                    return;
                }
                let id = self.settings.new_id();
                let (tx, rx) = mpsc::channel(256);
                let _ = tx.try_send(bytes);
                conns.insert(id, peer.with_conn(id), tx);
                tokio::spawn(transport::connect(
                    peer,
                    id,
                    rx,
                    self.settings.clone(),
                    self.inbound.clone(),
                ));
            }
        }
    }
}
