use crate::Instant;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::anchor::{Anchor, NoAnchor};
use super::build::{bad_request_for, response_to};
use super::call::{Call, Side};
use super::router::{Direction, RejectCause, Router};
use crate::message::{parse_message, HeaderName, Message, Method, ParseLimits, Request, Response};
use crate::transaction::{Incoming, Layer, ServerKey, TimerConfig, TxEvent};
use crate::{Peer, Transport};

/// Static settings of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub timers: TimerConfig,
    pub limits: ParseLimits,
    /// The address advertised in Via and Contact for each transport we listen on.
    pub local: HashMap<Transport, SocketAddr>,
    /// Value of the `Server` / `User-Agent` headers.
    pub user_agent: String,
    /// Most calls at once; further INVITEs get 503.
    pub max_calls: usize,
    /// Most server transactions at once for requests outside a dialog (twice as many for
    /// in-dialog ones); further requests get a stateless 503 with `Retry-After`.
    pub max_transactions: usize,
    /// Seed of the cryptographic generator (ChaCha) behind tags, branches, Call-IDs and
    /// TransactionIds (RFC 3261 §19.3 asks for unguessable ones): from the OS in the gateway, a
    /// fixed one in tests.
    pub seed: [u8; 32],
}

/// What the core wants done, in the order it must be done: `U` is the anchor's media update
/// ([`Anchor::Update`](super::Anchor::Update)), which comes out before the message carrying
/// the SDP it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<U = std::convert::Infallible> {
    Transmit { peer: Peer, bytes: Bytes },
    Event(CallEvent),
    Media(U),
}

/// Call lifecycle events, for logs, metrics and (later) call detail records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A new call was accepted and its outbound leg started.
    Started {
        call: u64,
        /// The call's TransactionId (UUID v4, made by voicegw).
        transaction_id: String,
        /// Call-ID of the inbound (A) leg.
        call_id: String,
        /// Call-ID of the outbound (B) leg (a failover gives it a new one).
        b_call_id: String,
        direction: Direction,
        voice_connector_id: String,
        from: String,
        to: String,
        target: Peer,
        /// The digest user that authenticated the call.
        auth_user: Option<String>,
    },
    /// The next hop failed (`status`, or `None` for a timeout or transport error) and the call
    /// was sent to the next one.
    Failover {
        call: u64,
        status: Option<u16>,
        target: Peer,
        voice_connector_id: String,
        /// The outbound leg's new Call-ID.
        b_call_id: String,
    },
    /// The callee answered.
    Answered { call: u64 },
    /// The call is over; `status` is the final status of the INVITE (200 if answered).
    Ended { call: u64, status: u16, reason: String },
    /// A new INVITE was refused before a call existed.
    Rejected {
        /// A TransactionId for the refused call's record.
        transaction_id: String,
        call_id: String,
        status: u16,
        reason: String,
        cause: RejectCause,
        source: Peer,
        /// The voice connector the call was matched to, if it got that far.
        voice_connector_id: Option<String>,
        direction: Option<Direction>,
        from: String,
        to: String,
        /// The digest user that authenticated the call, if it got that far.
        auth_user: Option<String>,
    },
    /// A response voicegw sent on one of the call's legs.
    ResponseSent { call: u64, status: u16 },
}

/// Counters kept by the core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Requests answered 400 because they did not parse.
    pub bad_requests: u64,
    /// Malformed or unmatched messages dropped.
    pub dropped: u64,
    /// Requests refused with 503 because the transaction table was full.
    pub overloaded: u64,
    /// Responses sent or relayed by status class (index 1–6).
    pub responses_sent: [u64; 7],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Invite,
    Relay,
    Cancel,
    Bye,
    /// Requests whose outcome does not matter (BYE to a surplus fork).
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) call: u64,
    pub(crate) purpose: Purpose,
}

/// The B2BUA core. See the module docs.
pub struct B2bua<R: Router, M: Anchor = NoAnchor> {
    pub(crate) cfg: CoreConfig,
    pub(crate) router: R,
    pub(crate) anchor: M,
    pub(crate) layer: Layer<Owner>,
    pub(crate) calls: HashMap<u64, Call>,
    /// (Call-ID, our tag) → (call, leg)
    pub(crate) dialogs: HashMap<(String, String), (u64, Side)>,
    pub(crate) invites: HashMap<ServerKey, u64>,
    pub(crate) next_call: u64,
    pub(crate) rng: StdRng,
    /// What the core wants done, in order (transmits are moved here from the transaction
    /// layer, and updates from the anchor, whenever something is appended).
    pub(crate) out: VecDeque<Output<M::Update>>,
    pub(crate) draining: bool,
    /// Why new calls are refused for now (503 with Retry-After), when they are.
    pub(crate) refusing: Option<&'static str>,
    pub(crate) stats: CoreStats,
}

impl<R: Router> B2bua<R, NoAnchor> {
    /// A core that relays SDP untouched.
    pub fn new(cfg: CoreConfig, router: R) -> Self {
        B2bua::with_anchor(cfg, router, NoAnchor)
    }
}

impl<R: Router, M: Anchor> B2bua<R, M> {
    /// A core that anchors media through `anchor`.
    pub fn with_anchor(cfg: CoreConfig, router: R, anchor: M) -> Self {
        B2bua {
            anchor,
            layer: {
                let mut l = Layer::new(cfg.timers);
                l.set_max_server(cfg.max_transactions);
                l
            },
            rng: StdRng::from_seed(cfg.seed),
            cfg,
            router,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            invites: HashMap::new(),
            next_call: 0,
            out: VecDeque::new(),
            draining: false,
            refusing: None,
            stats: CoreStats::default(),
        }
    }

    pub fn router_mut(&mut self) -> &mut R {
        &mut self.router
    }

    pub fn anchor(&self) -> &M {
        &self.anchor
    }

    pub fn anchor_mut(&mut self) -> &mut M {
        &mut self.anchor
    }

    /// Passes a body from the leg on `from` through the anchor (SDP rewriting).
    pub(crate) fn media_body(
        &mut self,
        call: u64,
        from: super::call::Side,
        headers: &crate::message::Headers,
        body: &mut Bytes,
    ) -> Result<(), super::router::Reject> {
        if body.is_empty() {
            return Ok(());
        }
        let ct = headers.get(&HeaderName::ContentType).unwrap_or("").to_string();
        let rewritten = self.anchor.rewrite(call, from, &ct, body);
        self.collect_output();
        *body = rewritten?;
        Ok(())
    }

    /// Whether call `id` was answered and is still up.
    pub fn is_answered(&self, id: u64) -> bool {
        self.calls.get(&id).is_some_and(|c| c.answered_at.is_some())
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Live transactions (client, server).
    pub fn transactions(&self) -> (usize, usize) {
        self.layer.counts()
    }

    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    /// Stops accepting new calls (503); calls and transactions in progress go on.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Refuses new calls with `503` (`Warning` `why`, Retry-After 5) until called with `None`;
    /// calls and transactions in progress go on. For conditions that pass (the gateway cannot
    /// record calls, for example), unlike [`B2bua::drain`].
    pub fn refuse_new_calls(&mut self, why: Option<&'static str>) {
        self.refusing = why;
    }

    /// True when no call is up and no transaction still waits for a response or an ACK
    /// (transactions that only absorb retransmissions do not count).
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty() && self.layer.in_flight() == 0
    }

    /// Handles one datagram or framed stream message from `peer`.
    pub fn handle_bytes(&mut self, bytes: &[u8], peer: Peer, now: Instant) {
        match parse_message(bytes, &self.cfg.limits) {
            Ok(Message::Request(r)) => self.handle_request(r, peer, now),
            Ok(Message::Response(r)) => self.handle_response(r, now),
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

    fn handle_request(&mut self, req: Request, peer: Peer, now: Instant) {
        // Requests missing the transaction-identifying headers cannot be answered statefully.
        if req.top_via().is_err()
            || req.cseq().is_err()
            || req.call_id().is_err()
            || req.from().is_err()
            || req.to().is_err()
        {
            let reason = [
                req.top_via().err(),
                req.cseq().err(),
                req.call_id().err(),
                req.from().err(),
                req.to().err(),
            ]
            .into_iter()
            .flatten()
            .next()
            .map(|e| e.to_string())
            .unwrap_or_default();
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
                let mut resp = response_to(&req, 400, None);
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
                self.on_new_request(key, request, peer, now)
            }
            Ok(Incoming::Ack { request, peer }) => self.on_ack(request, peer, now),
            Ok(Incoming::Overloaded { request, peer }) => {
                self.stats.overloaded += 1;
                let mut resp = response_to(&request, 503, None);
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
        self.pump(now);
    }

    fn handle_response(&mut self, resp: Response, now: Instant) {
        match self.layer.on_response(resp, now) {
            Ok(Incoming::Response { key, response, owner }) => {
                self.on_response(key, response, owner, now)
            }
            Ok(Incoming::Stray(r)) => self.on_stray_response(r),
            Ok(_) => {}
            Err(e) => {
                self.stats.dropped += 1;
                tracing::debug!(error = %e, "response dropped");
            }
        }
        self.pump(now);
    }

    fn on_new_request(&mut self, key: ServerKey, req: Request, peer: Peer, now: Instant) {
        let has_to_tag = req.to().ok().and_then(|t| t.tag().map(str::to_string)).is_some();
        match req.method {
            Method::Cancel => self.on_cancel(key, req, now),
            _ if has_to_tag => self.on_in_dialog(key, req, peer, now),
            Method::Invite => self.on_invite(key, req, peer, now),
            Method::Options => {
                self.router.options(&req, &peer, now);
                let mut resp =
                    response_to(&req, 200, Some(&super::build::random_token(&mut self.rng, 10)));
                self.capabilities(&mut resp);
                self.respond(&key, &resp, now);
            }
            Method::Bye | Method::Update | Method::Info | Method::Prack => {
                self.respond(&key, &response_to(&req, 481, None), now);
            }
            _ => {
                let mut resp = response_to(&req, 501, None);
                self.capabilities(&mut resp);
                self.respond(&key, &resp, now);
            }
        }
    }

    pub(crate) fn capabilities(&self, resp: &mut Response) {
        resp.headers.push(HeaderName::Allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO");
        resp.headers.push(HeaderName::Accept, "application/sdp");
        resp.headers.push(HeaderName::Supported, "timer");
        resp.headers.push(HeaderName::Server, self.cfg.user_agent.clone());
    }

    /// Sends a response through server transaction `key`, counting it.
    pub(crate) fn respond(&mut self, key: &ServerKey, resp: &Response, now: Instant) -> bool {
        let call = self.invites.get(key).copied();
        self.respond_for(call, key, resp, now)
    }

    /// Sends a response through server transaction `key`, counting it, and reports it as a
    /// [`CallEvent::ResponseSent`] of `call` when the call is known (per-voice-connector
    /// `Sip1xxCodes`…`Sip6xxCodes`).
    pub(crate) fn respond_for(
        &mut self,
        call: Option<u64>,
        key: &ServerKey,
        resp: &Response,
        now: Instant,
    ) -> bool {
        let sent = self.layer.respond(key, resp, now);
        if sent {
            self.stats.responses_sent[(resp.status / 100) as usize % 7] += 1;
            if let Some(call) = call {
                self.emit(CallEvent::ResponseSent { call, status: resp.status });
            }
        }
        sent
    }

    /// Sends a response without a transaction (malformed requests).
    pub(crate) fn send_stateless(&mut self, peer: Peer, resp: &Response) {
        self.stats.responses_sent[(resp.status / 100) as usize % 7] += 1;
        self.layer.send_raw(peer, resp.to_bytes());
    }

    pub(crate) fn local_addr(&self, transport: Transport) -> SocketAddr {
        local_for(&self.cfg, transport)
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.pump(now);
    }

    /// Processes transaction events raised by the layer.
    fn pump(&mut self, now: Instant) {
        while let Some(ev) = self.layer.poll_event() {
            match ev {
                TxEvent::Timeout { key, owner } => self.on_client_timeout(key, owner, now),
                TxEvent::NoAck { key } => self.on_no_ack(key, now),
            }
        }
    }

    /// The driver could not reach `peer` (connection refused, TLS failure…).
    pub fn transport_error(&mut self, peer: Peer, now: Instant) {
        self.layer.transport_error(peer);
        self.pump(now);
    }

    pub fn poll_output(&mut self) -> Option<Output<M::Update>> {
        self.collect_output();
        self.out.pop_front()
    }

    /// Moves what the transaction layer and the anchor produced so far into the output queue,
    /// in that order (the layer's messages were made before the anchor was last called).
    pub(crate) fn collect_output(&mut self) {
        while let Some((peer, bytes)) = self.layer.poll_transmit() {
            self.out.push_back(Output::Transmit { peer, bytes });
        }
        while let Some(u) = self.anchor.poll_update() {
            self.out.push_back(Output::Media(u));
        }
    }

    /// Appends a call event after everything produced before it.
    pub(crate) fn emit(&mut self, ev: CallEvent) {
        self.collect_output();
        self.out.push_back(Output::Event(ev));
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.layer.poll_timeout()
    }

    /// Removes a call and its dialogs, and reports it ended.
    pub(crate) fn end_call(&mut self, id: u64, status: u16, reason: &str, now: Instant) {
        let Some(mut call) = self.calls.remove(&id) else { return };
        // Requests still relayed to the other leg (a re-INVITE, INFO, UPDATE…) would leave
        // their server transactions unanswered and never freed: the dialog is gone, so a
        // re-INVITE gets 487 and anything else 481.
        for (_, relay) in call.relays.drain() {
            let status = if relay.request.method == Method::Invite { 487 } else { 481 };
            let resp = response_to(&relay.request, status, None);
            self.respond_for(None, &relay.server_key, &resp, now);
        }
        self.dialogs
            .remove(&(call.a_invite.call_id().unwrap_or_default().to_string(), call.a_tag.clone()));
        self.dialogs.remove(&(call.b_call_id.clone(), call.b_tag.clone()));
        self.invites.remove(&call.a_invite_key);
        self.anchor.close(id);
        self.collect_output();
        self.emit(CallEvent::Ended { call: id, status, reason: reason.to_string() });
    }
}

/// The address advertised for `transport` (falling back to the UDP one).
pub(crate) fn local_for(cfg: &CoreConfig, transport: Transport) -> SocketAddr {
    cfg.local
        .get(&transport)
        .or_else(|| cfg.local.get(&Transport::Udp))
        .copied()
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], transport.default_port())))
}
