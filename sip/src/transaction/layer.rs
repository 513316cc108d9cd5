use crate::Instant;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use bytes::Bytes;

use super::client_invite::ClientTimerOutcome;
use super::server_invite::{ServerInviteState, ServerOutcome};
use super::{
    ClientAction, ClientInvite, ClientKey, ClientNonInvite, ServerInvite, ServerKey,
    ServerNonInvite, TimerConfig,
};
use crate::message::{Method, Request, Response};
use crate::{ParseError, Peer};

/// What the layer made of an incoming message.
#[derive(Debug)]
pub enum Incoming<O> {
    /// A new request; a server transaction was created under `key` (never for ACK).
    Request { key: ServerKey, request: Request, peer: Peer },
    /// An ACK that is not for a non-2xx response of ours: an ACK for a 2xx (its own
    /// transaction) or for a dialog; `invite` is the INVITE transaction it matched, if any.
    Ack { request: Request, peer: Peer },
    /// A response for a client transaction, for its owner.
    Response { key: ClientKey, response: Response, owner: O },
    /// A retransmission the transactions absorbed.
    Absorbed,
    /// A response that matches no transaction (e.g. a 2xx retransmission after Timer M);
    /// a B2BUA may still need to ACK it.
    Stray(Response),
    /// A new request refused because the layer holds [`Layer::set_max_server`] server
    /// transactions already (no transaction was created): answer it statelessly with 503.
    Overloaded { request: Request, peer: Peer },
}

/// Timer-driven events for the TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent<O> {
    /// Timer B or F: no final response; treat as 408.
    Timeout { key: ClientKey, owner: O },
    /// Timer H or L: a final response was never acknowledged.
    NoAck { key: ServerKey },
}

enum ClientTx {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

impl ClientTx {
    fn deadline(&self) -> Option<Instant> {
        match self {
            ClientTx::Invite(t) => t.deadline(),
            ClientTx::NonInvite(t) => t.deadline(),
        }
    }
    fn is_terminated(&self) -> bool {
        match self {
            ClientTx::Invite(t) => t.is_terminated(),
            ClientTx::NonInvite(t) => t.is_terminated(),
        }
    }
    fn request(&self) -> &Request {
        match self {
            ClientTx::Invite(t) => t.request(),
            ClientTx::NonInvite(t) => t.request(),
        }
    }
}

enum ServerTx {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

impl ServerTx {
    fn deadline(&self) -> Option<Instant> {
        match self {
            ServerTx::Invite(t) => t.deadline(),
            ServerTx::NonInvite(t) => t.deadline(),
        }
    }
    fn is_terminated(&self) -> bool {
        match self {
            ServerTx::Invite(t) => t.is_terminated(),
            ServerTx::NonInvite(t) => t.is_terminated(),
        }
    }
}

struct ClientEntry<O> {
    tx: ClientTx,
    peer: Peer,
    owner: O,
    id: u64,
}

struct ServerEntry {
    tx: ServerTx,
    peer: Peer,
    id: u64,
}

#[derive(Clone)]
enum TimerRef {
    Client(ClientKey),
    Server(ServerKey),
}

/// Owns every transaction, matches messages to them and runs their timers.
pub struct Layer<O> {
    cfg: TimerConfig,
    clients: HashMap<ClientKey, ClientEntry<O>>,
    servers: HashMap<ServerKey, ServerEntry>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_refs: HashMap<u64, TimerRef>,
    next_id: u64,
    transmits: VecDeque<(Peer, Bytes)>,
    events: VecDeque<TxEvent<O>>,
    /// Most server transactions for requests outside a dialog; in-dialog requests (To tag)
    /// may use up to twice as many, so calls in progress can still end under a flood.
    max_server: usize,
}

impl<O: Clone> Layer<O> {
    pub fn new(cfg: TimerConfig) -> Self {
        Layer {
            cfg,
            clients: HashMap::new(),
            servers: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_refs: HashMap::new(),
            next_id: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            max_server: usize::MAX / 2,
        }
    }

    /// Caps the server transactions (see [`Incoming::Overloaded`]).
    pub fn set_max_server(&mut self, max: usize) {
        self.max_server = max.clamp(1, usize::MAX / 2);
    }

    pub fn config(&self) -> TimerConfig {
        self.cfg
    }

    /// Number of live transactions (client, server).
    pub fn counts(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    fn schedule(&mut self, id: u64, at: Option<Instant>) {
        if let Some(at) = at {
            self.timers.push(Reverse((at, id)));
        }
    }

    fn new_id(&mut self, r: TimerRef) -> u64 {
        self.next_id += 1;
        self.timer_refs.insert(self.next_id, r);
        self.next_id
    }

    /// Handles an incoming request.
    pub fn on_request(
        &mut self,
        request: Request,
        peer: Peer,
        now: Instant,
    ) -> Result<Incoming<O>, ParseError> {
        let key = ServerKey::of_request(&request)?;
        if request.method == Method::Ack {
            if let Some(e) = self.servers.get_mut(&key) {
                if let ServerTx::Invite(t) = &mut e.tx {
                    if matches!(
                        t.state,
                        ServerInviteState::Completed | ServerInviteState::Confirmed
                    ) && t.last_status() >= 300
                    {
                        t.on_ack(now);
                        let (id, at) = (e.id, t.deadline());
                        self.schedule(id, at);
                        return Ok(Incoming::Absorbed);
                    }
                }
            }
            return Ok(Incoming::Ack { request, peer });
        }
        if let Some(e) = self.servers.get_mut(&key) {
            let out = match &mut e.tx {
                ServerTx::Invite(t) => t.on_request_retransmission(),
                ServerTx::NonInvite(t) => t.on_request_retransmission(),
            };
            if let ServerOutcome::Transmit(b) = out {
                self.transmits.push_back((e.peer, b));
            }
            return Ok(Incoming::Absorbed);
        }
        // Only near the cap is the To tag read (in-dialog requests get twice the room).
        if self.servers.len() >= self.max_server {
            let in_dialog = request.to().ok().is_some_and(|t| t.tag().is_some());
            if !in_dialog || self.servers.len() >= self.max_server * 2 {
                return Ok(Incoming::Overloaded { request, peer });
            }
        }
        let reliable = peer.transport.is_reliable();
        let tx = if request.method == Method::Invite {
            ServerTx::Invite(ServerInvite::new(reliable, self.cfg))
        } else {
            ServerTx::NonInvite(ServerNonInvite::new(reliable, self.cfg))
        };
        let id = self.new_id(TimerRef::Server(key.clone()));
        self.servers.insert(key.clone(), ServerEntry { tx, peer, id });
        Ok(Incoming::Request { key, request, peer })
    }

    /// Handles an incoming response.
    pub fn on_response(
        &mut self,
        response: Response,
        now: Instant,
    ) -> Result<Incoming<O>, ParseError> {
        let key = ClientKey::of_response(&response)?;
        let Some(e) = self.clients.get_mut(&key) else {
            return Ok(Incoming::Stray(response));
        };
        let action = match &mut e.tx {
            ClientTx::Invite(t) => {
                let (ack, action) = t.on_response(response, now);
                if let Some(ack) = ack {
                    self.transmits.push_back((e.peer, ack));
                }
                action
            }
            ClientTx::NonInvite(t) => t.on_response(response, now),
        };
        let (id, at, owner) = (e.id, e.tx.deadline(), e.owner.clone());
        self.schedule(id, at);
        Ok(match action {
            ClientAction::Deliver(response) => Incoming::Response { key, response, owner },
            ClientAction::Absorb => Incoming::Absorbed,
        })
    }

    /// Starts a client transaction and queues the request for `peer`. ACK must not be sent this
    /// way (use [`Layer::send_raw`]).
    pub fn send_request(
        &mut self,
        request: Request,
        peer: Peer,
        owner: O,
        now: Instant,
    ) -> Result<ClientKey, ParseError> {
        let key = ClientKey::of_request(&request)?;
        let reliable = peer.transport.is_reliable();
        let tx = if request.method == Method::Invite {
            ClientTx::Invite(ClientInvite::new(request, reliable, now, self.cfg))
        } else {
            ClientTx::NonInvite(ClientNonInvite::new(request, reliable, now, self.cfg))
        };
        let wire = match &tx {
            ClientTx::Invite(t) => t.wire().clone(),
            ClientTx::NonInvite(t) => t.wire().clone(),
        };
        self.transmits.push_back((peer, wire));
        let id = self.new_id(TimerRef::Client(key.clone()));
        let at = tx.deadline();
        self.clients.insert(key.clone(), ClientEntry { tx, peer, owner, id });
        self.schedule(id, at);
        Ok(key)
    }

    /// Queues bytes outside any transaction (ACK for a 2xx, keep-alive answers).
    pub fn send_raw(&mut self, peer: Peer, bytes: Bytes) {
        self.transmits.push_back((peer, bytes));
    }

    /// Sends a response through the server transaction `key`. Returns false when the
    /// transaction is gone or its state forbids another response.
    pub fn respond(&mut self, key: &ServerKey, response: &Response, now: Instant) -> bool {
        let Some(e) = self.servers.get_mut(key) else { return false };
        let wire = response.to_bytes();
        let sent = match &mut e.tx {
            ServerTx::Invite(t) => t.send_response(response.status, wire, now),
            ServerTx::NonInvite(t) => t.send_response(response.status, wire, now),
        };
        let Some(bytes) = sent else { return false };
        self.transmits.push_back((e.peer, bytes));
        let (id, at) = (e.id, e.tx.deadline());
        self.schedule(id, at);
        true
    }

    /// The TU saw the ACK for the 2xx sent by INVITE server transaction `key`.
    pub fn ack_received(&mut self, key: &ServerKey, now: Instant) {
        if let Some(e) = self.servers.get_mut(key) {
            if let ServerTx::Invite(t) = &mut e.tx {
                t.on_ack(now);
                let (id, at) = (e.id, t.deadline());
                self.schedule(id, at);
            }
        }
    }

    /// Transactions still doing work: clients waiting for a final response and servers that
    /// have not sent one (or wait for the ACK of a 2xx). Transactions that only linger to absorb
    /// retransmissions (Timers D, I, J, K) are not counted.
    pub fn in_flight(&self) -> usize {
        use super::client_invite::ClientInviteState as CI;
        use super::client_non_invite::ClientNonInviteState as CN;
        use super::server_invite::ServerInviteState as SI;
        use super::server_non_invite::ServerNonInviteState as SN;
        let clients = self
            .clients
            .values()
            .filter(|e| match &e.tx {
                ClientTx::Invite(t) => matches!(t.state, CI::Calling | CI::Proceeding),
                ClientTx::NonInvite(t) => matches!(t.state, CN::Trying | CN::Proceeding),
            })
            .count();
        let servers = self
            .servers
            .values()
            .filter(|e| match &e.tx {
                ServerTx::Invite(t) => matches!(t.state, SI::Proceeding | SI::Accepted),
                ServerTx::NonInvite(t) => matches!(t.state, SN::Trying | SN::Proceeding),
            })
            .count();
        clients + servers
    }

    /// The status of the last response sent by a server transaction, if it still exists.
    pub fn server_status(&self, key: &ServerKey) -> Option<u16> {
        match &self.servers.get(key)?.tx {
            ServerTx::Invite(t) => Some(t.last_status()),
            ServerTx::NonInvite(_) => Some(0),
        }
    }

    /// The request a client transaction sent (to build a CANCEL), and its peer.
    pub fn client_request(&self, key: &ClientKey) -> Option<(&Request, Peer)> {
        self.clients.get(key).map(|e| (e.tx.request(), e.peer))
    }

    /// Whether a client INVITE transaction is still waiting for a final response.
    pub fn client_pending(&self, key: &ClientKey) -> bool {
        self.clients.get(key).is_some_and(|e| match &e.tx {
            ClientTx::Invite(t) => matches!(
                t.state,
                super::client_invite::ClientInviteState::Calling
                    | super::client_invite::ClientInviteState::Proceeding
            ),
            ClientTx::NonInvite(t) => !t.is_terminated(),
        })
    }

    /// Fails every client transaction towards `peer` that still waits for a final response
    /// (transport error, §17.1.4): each reports Timeout. Transactions that already have their
    /// final response (an INVITE in Accepted or Completed state absorbing retransmissions) are
    /// left alone: a late ICMP error must not undo an answered call.
    pub fn transport_error(&mut self, peer: Peer) {
        use super::client_invite::ClientInviteState as CI;
        use super::client_non_invite::ClientNonInviteState as CN;
        let keys: Vec<ClientKey> = self
            .clients
            .iter()
            .filter(|(_, e)| e.peer.addr == peer.addr && e.peer.transport == peer.transport)
            .filter(|(_, e)| match &e.tx {
                ClientTx::Invite(t) => matches!(t.state, CI::Calling | CI::Proceeding),
                ClientTx::NonInvite(t) => matches!(t.state, CN::Trying | CN::Proceeding),
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(e) = self.clients.remove(&key) {
                self.timer_refs.remove(&e.id);
                self.events.push_back(TxEvent::Timeout { key, owner: e.owner });
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<(Peer, Bytes)> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent<O>> {
        self.events.pop_front()
    }

    /// The next instant [`Layer::handle_timeout`] must be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if self.timer_live(id, at) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    fn timer_live(&self, id: u64, at: Instant) -> bool {
        match self.timer_refs.get(&id) {
            Some(TimerRef::Client(k)) => {
                self.clients.get(k).and_then(|e| e.tx.deadline()) == Some(at)
            }
            Some(TimerRef::Server(k)) => {
                self.servers.get(k).and_then(|e| e.tx.deadline()) == Some(at)
            }
            None => false,
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.timer_live(id, at) {
                continue;
            }
            match self.timer_refs.get(&id).cloned() {
                Some(TimerRef::Client(k)) => self.fire_client(&k, now),
                Some(TimerRef::Server(k)) => self.fire_server(&k, now),
                None => {}
            }
        }
    }

    fn fire_client(&mut self, key: &ClientKey, now: Instant) {
        let Some(e) = self.clients.get_mut(key) else { return };
        let outcome = match &mut e.tx {
            ClientTx::Invite(t) => t.on_timeout(now),
            ClientTx::NonInvite(t) => t.on_timeout(now),
        };
        match outcome {
            ClientTimerOutcome::Retransmit(b) => self.transmits.push_back((e.peer, b)),
            ClientTimerOutcome::Timeout => {
                self.events.push_back(TxEvent::Timeout { key: key.clone(), owner: e.owner.clone() })
            }
            ClientTimerOutcome::Nothing => {}
        }
        if e.tx.is_terminated() {
            let id = e.id;
            self.clients.remove(key);
            self.timer_refs.remove(&id);
        } else {
            let (id, at) = (e.id, e.tx.deadline());
            self.schedule(id, at);
        }
    }

    fn fire_server(&mut self, key: &ServerKey, now: Instant) {
        let Some(e) = self.servers.get_mut(key) else { return };
        let outcome = match &mut e.tx {
            ServerTx::Invite(t) => t.on_timeout(now),
            ServerTx::NonInvite(t) => t.on_timeout(now),
        };
        match outcome {
            ServerOutcome::Transmit(b) => self.transmits.push_back((e.peer, b)),
            ServerOutcome::NoAck => self.events.push_back(TxEvent::NoAck { key: key.clone() }),
            ServerOutcome::Nothing => {}
        }
        if e.tx.is_terminated() {
            let id = e.id;
            self.servers.remove(key);
            self.timer_refs.remove(&id);
        } else {
            let (id, at) = (e.id, e.tx.deadline());
            self.schedule(id, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::{Message, Transport};

    fn peer() -> Peer {
        Peer::new(Transport::Udp, "127.0.0.1:5090".parse::<SocketAddr>().unwrap())
    }

    fn request(s: &str) -> Request {
        match Message::parse(s.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn response(s: &str) -> Response {
        match Message::parse(s.as_bytes()).unwrap() {
            Message::Response(r) => r,
            Message::Request(_) => unreachable!(),
        }
    }

    const INVITE: &str = "INVITE sip:b@gw SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKs1\r\nFrom: <sip:a@a>;tag=1\r\nTo: <sip:b@gw>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";

    #[test]
    fn server_invite_retransmission_absorbed_and_non_2xx_ack_matched() {
        let t0 = Instant::ZERO;
        let mut l: Layer<u32> = Layer::new(TimerConfig::default());
        let Incoming::Request { key, request, .. } =
            l.on_request(request(INVITE), peer(), t0).unwrap()
        else {
            panic!("expected a new request")
        };
        let mut trying = Response::new(100, "Trying");
        trying.headers = request.headers.clone();
        assert!(l.respond(&key, &trying, t0));
        assert!(l.poll_transmit().is_some());
        assert!(matches!(l.on_request(request.clone(), peer(), t0).unwrap(), Incoming::Absorbed));
        assert_eq!(l.poll_transmit().map(|(_, b)| b), Some(trying.to_bytes()));
        let busy = Response::new(486, "Busy Here");
        assert!(l.respond(&key, &busy, t0));
        l.poll_transmit();
        // Timer G retransmits at T1.
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        l.handle_timeout(t0 + Duration::from_millis(500));
        assert!(l.poll_transmit().is_some());
        let ack = request.clone();
        let mut ack = ack;
        ack.method = Method::Ack;
        assert!(matches!(l.on_request(ack, peer(), t0).unwrap(), Incoming::Absorbed));
        // Confirmed: Timer I ends it after T4, with no more retransmissions.
        let at = l.poll_timeout().unwrap();
        l.handle_timeout(at);
        assert!(l.poll_transmit().is_none());
        assert_eq!(l.counts(), (0, 0));
    }

    #[test]
    fn client_response_matching_and_timeout_event() {
        let t0 = Instant::ZERO;
        let mut l: Layer<u32> = Layer::new(TimerConfig::default());
        let key = l.send_request(request(INVITE), peer(), 7, t0).unwrap();
        assert!(l.poll_transmit().is_some());
        let other = response("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKother\r\nCSeq: 1 INVITE\r\n\r\n");
        assert!(matches!(l.on_response(other, t0).unwrap(), Incoming::Stray(_)));
        let ringing = response("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKs1\r\nCSeq: 1 INVITE\r\n\r\n");
        match l.on_response(ringing, t0).unwrap() {
            Incoming::Response { key: k, owner, .. } => assert_eq!((k, owner), (key.clone(), 7)),
            other => panic!("{other:?}"),
        }
        // No more Timer A after a provisional; Timer B fires at 32 s.
        let at = l.poll_timeout().unwrap();
        assert_eq!(at, t0 + Duration::from_secs(32));
        l.handle_timeout(at);
        assert_eq!(l.poll_event(), Some(TxEvent::Timeout { key, owner: 7 }));
        assert!(l.poll_transmit().is_none());
        assert_eq!(l.counts(), (0, 0));
    }
}
