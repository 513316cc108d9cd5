//! The SIP endpoint (sans-IO): what every application on voicegw's SIP address shares — the
//! transaction layer and its timers (RFC 3261 §17), the dialog table (§12), the checks every
//! request passes before a transaction exists, stateless answers, the ordered output queue and
//! the counters.
//!
//! Applications ([`Application`]: the B2BUA of [`crate::b2bua`], later a recording server or a
//! meeting UAS) sit on top. The endpoint hands its input to a [`Host`]: [`Solo`] carries one
//! application; [`Pair`], [`Trio`] and [`Quartet`] carry two, three and four, and ask the
//! gateway's [`Pick`] which one takes each new request outside a dialog, while in-dialog
//! requests, ACKs, CANCELs, responses and timeouts go to the application whose dialog or
//! transaction they are (one that only sends requests, a recording client, is never picked). An
//! application answers through the [`Endpoint`] it is lent; [`Carries`] says how its owners,
//! dialogs, events and media updates travel in the host's types, so the same implementation
//! runs alone or beside others.
//!
//! Drive a [`Stack`] (an endpoint with its host): feed [`Stack::handle_bytes`] and
//! [`Stack::handle_timeout`], then drain [`Stack::poll_output`] (transmits, events and media
//! updates, in the order they were made) and wait until [`Stack::poll_timeout`].

mod application;
pub(crate) mod build;
mod host;
mod many;
mod output;
mod stack;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;

pub use application::Application;
pub use host::{Carries, Host, Pick, Solo, Which};
pub use many::{Either, OneOf3, OneOf4, Pair, Quartet, Trio};
pub use output::{EndpointStats, Output};
pub use stack::Stack;

use crate::message::{
    parse_message, HeaderName, Message, Method, ParseError, ParseLimits, Request, Response,
};
use crate::transaction::{ClientKey, Incoming, Layer, ServerKey, TimerConfig, TxEvent};
use crate::{Instant, Peer, Transport};
pub use build::{bad_request_for, cancel_of, our_contact, response_to};

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
pub struct Endpoint<H: Host> {
    pub(crate) cfg: EndpointConfig,
    pub(crate) layer: Layer<H::Owner>,
    /// Dialogs voicegw is a party to, and what each one is to its application.
    pub(crate) dialogs: HashMap<DialogId, H::Dialog>,
    pub(crate) rng: StdRng,
    /// What the endpoint and its applications want done, in order (transmits are moved here
    /// from the transaction layer whenever something else is appended).
    pub(crate) out: VecDeque<Output<H::Event, H::Update>>,
    pub(crate) stats: EndpointStats,
}

impl<H: Host> Endpoint<H> {
    pub fn new(cfg: EndpointConfig) -> Endpoint<H> {
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
    pub fn handle_bytes(&mut self, app: &mut H, bytes: &[u8], peer: Peer, now: Instant) {
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

    fn handle_request(&mut self, app: &mut H, req: Request, peer: Peer, now: Instant) {
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

    fn handle_response(&mut self, app: &mut H, resp: Response, now: Instant) {
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
    pub fn handle_timeout(&mut self, app: &mut H, now: Instant) {
        self.layer.handle_timeout(now);
        self.pump(app, now);
    }

    /// The driver could not reach `peer` (connection refused, TLS failure…).
    pub fn transport_error(&mut self, app: &mut H, peer: Peer, now: Instant) {
        self.layer.transport_error(peer);
        self.pump(app, now);
    }

    /// Hands the transaction layer's timer events to their application.
    fn pump(&mut self, app: &mut H, now: Instant) {
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

    /// The ACK for the 2xx that INVITE server transaction `key` sent arrived (an application
    /// matches it to its dialog): the 2xx is no longer retransmitted.
    pub fn ack_received(&mut self, key: &ServerKey, now: Instant) {
        self.layer.ack_received(key, now);
    }

    /// A new random tag (From/To), from the endpoint's cryptographic generator.
    pub fn new_tag(&mut self) -> String {
        build::random_token(&mut self.rng, 10)
    }

    /// A new random UUID v4 (a session's TransactionId).
    pub fn new_uuid(&mut self) -> String {
        build::uuid_v4(&mut self.rng)
    }

    /// voicegw's Via for a new request sent over `transport` (a new branch, `rport`).
    pub fn new_via(&mut self, transport: Transport) -> String {
        let branch = build::new_branch(&mut self.rng);
        build::our_via(transport, self.local_addr(transport), &branch)
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
    pub fn push(&mut self, o: Output<H::Event, H::Update>) {
        self.collect_transmits();
        self.out.push_back(o);
    }

    /// Moves the transaction layer's messages into the output queue.
    pub fn collect_transmits(&mut self) {
        while let Some((peer, bytes)) = self.layer.poll_transmit() {
            self.out.push_back(Output::Transmit { peer, bytes });
        }
    }

    pub fn poll_output(&mut self) -> Option<Output<H::Event, H::Update>> {
        self.collect_transmits();
        self.out.pop_front()
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.layer.poll_timeout()
    }

    /// Starts a client transaction of application `A` for `request` to `peer`.
    pub fn send_request<A: Application, const I: usize>(
        &mut self,
        request: Request,
        peer: Peer,
        owner: A::Owner,
        now: Instant,
    ) -> Result<ClientKey, ParseError>
    where
        H: Carries<A, I>,
    {
        self.layer.send_request(request, peer, H::owner(owner), now)
    }

    /// Application `A`'s dialog `id`, if it has one.
    pub fn dialog<A: Application, const I: usize>(&self, id: &DialogId) -> Option<&A::Dialog>
    where
        H: Carries<A, I>,
    {
        self.dialogs.get(id).and_then(H::dialog_of)
    }

    /// Enters dialog `id` in the table as application `A`'s.
    pub fn insert_dialog<A: Application, const I: usize>(&mut self, id: DialogId, dialog: A::Dialog)
    where
        H: Carries<A, I>,
    {
        self.dialogs.insert(id, H::dialog(dialog));
    }

    /// Takes dialog `id` out of the table.
    pub fn remove_dialog(&mut self, id: &DialogId) {
        self.dialogs.remove(id);
    }

    /// Appends application `A`'s event after everything produced before it.
    pub fn emit<A: Application, const I: usize>(&mut self, event: A::Event)
    where
        H: Carries<A, I>,
    {
        self.push(Output::Event(H::event(event)));
    }

    /// Appends application `A`'s media update after everything produced before it.
    pub fn media<A: Application, const I: usize>(&mut self, update: A::Update)
    where
        H: Carries<A, I>,
    {
        self.push(Output::Media(H::update(update)));
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

#[cfg(test)]
mod tests;
