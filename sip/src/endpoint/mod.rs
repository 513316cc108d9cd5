//! The SIP endpoint (sans-IO): what every application on voicegw's SIP address shares — the
//! transaction layer and its timers (RFC 3261 §17), the dialog table (§12), the checks every
//! request passes before a transaction exists, stateless answers, the ordered output queue and
//! the counters.
//!
//! Applications sit on top through [`Application`]: the endpoint hands each one the new
//! requests, ACKs, responses and transaction timeouts that are its own, and the application
//! answers through the [`Endpoint`] it is lent. The B2BUA ([`crate::b2bua`]) is the first
//! application; a recording server or a meeting UAS is another implementation of the trait,
//! and the gateway chooses which application a new request goes to (an application may itself
//! dispatch to others).
//!
//! Drive a [`Stack`] (an endpoint with its application): feed [`Stack::handle_bytes`] and
//! [`Stack::handle_timeout`], then drain [`Stack::poll_output`] and wait until
//! [`Stack::poll_timeout`].

mod application;
pub(crate) mod build;
mod output;
mod stack;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;

pub use application::Application;
pub use output::{EndpointStats, Output};
pub use stack::Stack;

use crate::message::{parse_message, HeaderName, Message, Method, ParseLimits, Request, Response};
use crate::transaction::{Incoming, Layer, ServerKey, TimerConfig, TxEvent};
use crate::{Instant, Peer, Transport};
pub use build::bad_request_for;

/// Static settings of the endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub timers: TimerConfig,
    pub limits: ParseLimits,
    /// The address advertised in Via and Contact for each transport we listen on.
    pub local: HashMap<Transport, SocketAddr>,
    /// Value of the `Server` / `User-Agent` headers.
    pub user_agent: String,
    /// Most server transactions at once for requests outside a dialog (twice as many for
    /// in-dialog ones); further requests get a stateless 503 with `Retry-After`.
    pub max_transactions: usize,
    /// Seed of the cryptographic generator (ChaCha) behind tags, branches, Call-IDs and
    /// TransactionIds (RFC 3261 §19.3 asks for unguessable ones): from the OS in the gateway, a
    /// fixed one in tests.
    pub seed: [u8; 32],
}

/// A dialog's key in the table: (Call-ID, voicegw's tag).
pub type DialogId = (String, String);

/// The endpoint. See the module docs.
pub struct Endpoint<A: Application> {
    pub(crate) cfg: EndpointConfig,
    pub(crate) layer: Layer<A::Owner>,
    /// Dialogs voicegw is a party to, and what each one is to its application.
    pub(crate) dialogs: HashMap<DialogId, A::Dialog>,
    pub(crate) rng: StdRng,
    /// What the endpoint and its applications want done, in order (transmits are moved here
    /// from the transaction layer whenever something else is appended).
    pub(crate) out: VecDeque<Output<A::Event, A::Update>>,
    pub(crate) stats: EndpointStats,
}

impl<A: Application> Endpoint<A> {
    pub fn new(cfg: EndpointConfig) -> Endpoint<A> {
        let mut layer = Layer::new(cfg.timers);
        layer.set_max_server(cfg.max_transactions);
        Endpoint {
            layer,
            dialogs: HashMap::new(),
            rng: StdRng::from_seed(cfg.seed),
            out: VecDeque::new(),
            stats: EndpointStats::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Live transactions (client, server).
    pub fn transactions(&self) -> (usize, usize) {
        self.layer.counts()
    }

    /// Transactions that still wait for a response or an ACK.
    pub fn in_flight(&self) -> usize {
        self.layer.in_flight()
    }

    /// The address advertised for `transport` (falling back to the UDP one).
    pub fn local_addr(&self, transport: Transport) -> SocketAddr {
        local_for(&self.cfg, transport)
    }

    /// Handles one datagram or framed stream message from `peer`, handing `app` what is its.
    pub fn handle_bytes(&mut self, app: &mut A, bytes: &[u8], peer: Peer, now: Instant) {
        match parse_message(bytes, &self.cfg.limits) {
            Ok(Message::Request(r)) => self.handle_request(app, r, peer, now),
            Ok(Message::Response(r)) => self.handle_response(app, r, now),
            Err(e) => {
                if let Some(resp) = bad_request_for(bytes, &e.to_string()) {
                    self.stats.bad_requests += 1;
                    tracing::debug!(%peer, error = %e, "malformed request answered 400");
                    self.send_stateless(peer, &resp);
                } else {
                    self.stats.dropped += 1;
                    tracing::debug!(%peer, error = %e, "malformed message dropped");
                }
            }
        }
    }

    fn handle_request(&mut self, app: &mut A, req: Request, peer: Peer, now: Instant) {
        // Requests missing the transaction-identifying headers cannot be answered statefully.
        let missing = [
            req.top_via().err(),
            req.cseq().err(),
            req.call_id().err(),
            req.from().err(),
            req.to().err(),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|e| e.to_string());
        if let Some(reason) = missing {
            if let Some(resp) = bad_request_for(&req.to_bytes(), &reason) {
                self.stats.bad_requests += 1;
                self.send_stateless(peer, &resp);
            } else {
                self.stats.dropped += 1;
            }
            return;
        }
        if let Ok(cseq) = req.cseq() {
            if cseq.method != req.method && req.method != Method::Ack {
                self.stats.bad_requests += 1;
                let mut resp = build::response_to(&req, 400, None);
                resp.headers.push(
                    HeaderName::Warning,
                    "399 voicegw \"CSeq method does not match the request method\"",
                );
                self.send_stateless(peer, &resp);
                return;
            }
        }
        match self.layer.on_request(req, peer, now) {
            Ok(Incoming::Request { key, request, peer }) => {
                app.on_request(self, key, request, peer, now)
            }
            Ok(Incoming::Ack { request, peer }) => app.on_ack(self, request, peer, now),
            Ok(Incoming::Overloaded { request, peer }) => {
                self.stats.overloaded += 1;
                let mut resp = build::response_to(&request, 503, None);
                resp.headers.push(HeaderName::RetryAfter, "5");
                resp.headers.push(HeaderName::Warning, "399 voicegw \"too many transactions\"");
                self.send_stateless(peer, &resp);
            }
            Ok(_) => {}
            Err(e) => {
                self.stats.dropped += 1;
                tracing::debug!(%peer, error = %e, "request dropped");
            }
        }
        self.pump(app, now);
    }

    fn handle_response(&mut self, app: &mut A, resp: Response, now: Instant) {
        match self.layer.on_response(resp, now) {
            Ok(Incoming::Response { key, response, owner }) => {
                app.on_response(self, key, response, owner, now)
            }
            Ok(Incoming::Stray(r)) => app.on_stray_response(self, r, now),
            Ok(_) => {}
            Err(e) => {
                self.stats.dropped += 1;
                tracing::debug!(error = %e, "response dropped");
            }
        }
        self.pump(app, now);
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, app: &mut A, now: Instant) {
        self.layer.handle_timeout(now);
        self.pump(app, now);
    }

    /// The driver could not reach `peer` (connection refused, TLS failure…).
    pub fn transport_error(&mut self, app: &mut A, peer: Peer, now: Instant) {
        self.layer.transport_error(peer);
        self.pump(app, now);
    }

    /// Hands the transaction layer's timer events to their application.
    fn pump(&mut self, app: &mut A, now: Instant) {
        while let Some(ev) = self.layer.poll_event() {
            match ev {
                TxEvent::Timeout { key, owner } => app.on_client_timeout(self, key, owner, now),
                TxEvent::NoAck { key } => app.on_no_ack(self, key, now),
            }
        }
    }

    /// Sends a response through server transaction `key`, counting it; false when the
    /// transaction is gone or already answered finally.
    pub fn respond(&mut self, key: &ServerKey, resp: &Response, now: Instant) -> bool {
        let sent = self.layer.respond(key, resp, now);
        if sent {
            self.count_response(resp.status);
        }
        sent
    }

    /// Sends a response without a transaction (malformed or refused requests).
    pub fn send_stateless(&mut self, peer: Peer, resp: &Response) {
        self.count_response(resp.status);
        self.layer.send_raw(peer, resp.to_bytes());
    }

    /// Sends `bytes` to `peer` outside any transaction (an ACK for a 2xx, a keep-alive).
    pub fn send_raw(&mut self, peer: Peer, bytes: Bytes) {
        self.layer.send_raw(peer, bytes);
    }

    fn count_response(&mut self, status: u16) {
        self.stats.responses_sent[(status / 100) as usize % 7] += 1;
    }

    /// Appends `o` after everything produced before it.
    pub fn push(&mut self, o: Output<A::Event, A::Update>) {
        self.collect_transmits();
        self.out.push_back(o);
    }

    /// Moves the transaction layer's messages into the output queue.
    pub fn collect_transmits(&mut self) {
        while let Some((peer, bytes)) = self.layer.poll_transmit() {
            self.out.push_back(Output::Transmit { peer, bytes });
        }
    }

    pub fn poll_output(&mut self) -> Option<Output<A::Event, A::Update>> {
        self.collect_transmits();
        self.out.pop_front()
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.layer.poll_timeout()
    }
}

/// The address advertised for `transport` (falling back to the UDP one).
pub(crate) fn local_for(cfg: &EndpointConfig, transport: Transport) -> SocketAddr {
    cfg.local
        .get(&transport)
        .or_else(|| cfg.local.get(&Transport::Udp))
        .copied()
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], transport.default_port())))
}
