use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;

use super::anchor::{Anchor, NoAnchor};
use super::build::response_to;
use super::call::{Call, Side, CALLEE, CALLER};
use super::router::{Direction, RejectCause, Router};
use crate::endpoint::{
    self, Application, Carries, Endpoint, EndpointConfig, EndpointStats, Pick, Solo, Stack,
};
use crate::message::{HeaderName, Method, ParseLimits, Request, Response};
use crate::transaction::{ClientKey, ServerKey, TimerConfig};
use crate::{Instant, Peer, Transport};

/// Static settings of the B2BUA and its endpoint.
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
    /// Seed of the endpoint's cryptographic generator ([`EndpointConfig::seed`]).
    pub seed: [u8; 32],
}

impl CoreConfig {
    /// The endpoint's part.
    pub fn endpoint(&self) -> EndpointConfig {
        EndpointConfig {
            timers: self.timers,
            limits: self.limits,
            local: self.local.clone(),
            user_agent: self.user_agent.clone(),
            max_transactions: self.max_transactions,
            seed: self.seed,
        }
    }
}

/// What the B2BUA wants done, in order: `U` is the anchor's media update
/// ([`Anchor::Update`](super::Anchor::Update)), which comes out before the message carrying
/// the SDP it was made for.
pub type Output<U = std::convert::Infallible> = endpoint::Output<CallEvent, U>;

/// Counters kept by the endpoint the B2BUA sits on.
pub type CoreStats = EndpointStats;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Invite,
    Relay,
    Cancel,
    Bye,
    /// Requests whose outcome does not matter (BYE to a surplus fork).
    Discard,
}

/// What one of the B2BUA's client transactions is for (the call, and which request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub(crate) call: u64,
    pub(crate) purpose: Purpose,
}

/// The B2BUA application: its calls, and what it consults (the router) and drives (the media
/// anchor). See the module docs.
pub struct App<R: Router, M: Anchor = NoAnchor> {
    pub(crate) router: R,
    pub(crate) anchor: M,
    /// Most calls at once.
    pub(crate) max_calls: usize,
    pub(crate) calls: HashMap<u64, Call>,
    pub(crate) invites: HashMap<ServerKey, u64>,
    pub(crate) next_call: u64,
    pub(crate) draining: bool,
    /// Why new calls are refused for now (503 with Retry-After), when they are.
    pub(crate) refusing: Option<&'static str>,
}

impl<R: Router, M: Anchor> App<R, M> {
    /// The B2BUA application, to run beside others on one endpoint ([`crate::endpoint::Pair`]);
    /// [`B2bua`] runs it alone.
    pub fn new(cfg: &CoreConfig, router: R, anchor: M) -> Self {
        App {
            router,
            anchor,
            max_calls: cfg.max_calls,
            calls: HashMap::new(),
            invites: HashMap::new(),
            next_call: 0,
            draining: false,
            refusing: None,
        }
    }
}

/// A B2BUA: the SIP endpoint with the B2BUA application alone on top.
pub type B2bua<R, M = NoAnchor> = Stack<Solo<App<R, M>>>;

/// The B2BUA at work on one input: the application and the endpoint it was lent.
pub(crate) struct Cx<'a, R: Router, M: Anchor, H: Carries<App<R, M>, I>, const I: usize> {
    pub(crate) ep: &'a mut Endpoint<H>,
    pub(crate) app: &'a mut App<R, M>,
}

impl<R: Router> B2bua<R, NoAnchor> {
    /// A B2BUA that relays SDP untouched.
    pub fn new(cfg: CoreConfig, router: R) -> Self {
        Stack::with_anchor(cfg, router, NoAnchor)
    }
}

impl<R: Router, M: Anchor> B2bua<R, M> {
    /// A B2BUA that anchors media through `anchor`.
    pub fn with_anchor(cfg: CoreConfig, router: R, anchor: M) -> Self {
        Stack::of(cfg.endpoint(), Solo(App::new(&cfg, router, anchor)))
    }
}

/// A host whose first application is the B2BUA: alone ([`Solo`]) or beside another one
/// (the first of a [`crate::endpoint::Pair`], `Trio` or `Quartet`). The B2BUA's operations ([`Stack::hang_up`] and the rest) work on either.
pub trait HostsB2bua {
    type R: Router;
    type M: Anchor;
    fn b2bua(&self) -> &App<Self::R, Self::M>;
    fn b2bua_mut(&mut self) -> &mut App<Self::R, Self::M>;
}

impl<R: Router, M: Anchor> HostsB2bua for Solo<App<R, M>> {
    type R = R;
    type M = M;
    fn b2bua(&self) -> &App<R, M> {
        &self.0
    }
    fn b2bua_mut(&mut self) -> &mut App<R, M> {
        &mut self.0
    }
}

/// The B2BUA as the first of several applications.
macro_rules! hosts_b2bua_first {
    ($host:ident, $($other:ident),+) => {
        impl<R: Router, M: Anchor, $($other: Application,)+ P: Pick> HostsB2bua
            for crate::endpoint::$host<App<R, M>, $($other,)+ P>
        {
            type R = R;
            type M = M;
            fn b2bua(&self) -> &App<R, M> {
                &self.first
            }
            fn b2bua_mut(&mut self) -> &mut App<R, M> {
                &mut self.first
            }
        }
    };
}

hosts_b2bua_first!(Pair, S);
hosts_b2bua_first!(Trio, S, T);
hosts_b2bua_first!(Quartet, S, T, U);

impl<H> Stack<H>
where
    H: HostsB2bua + Carries<App<<H as HostsB2bua>::R, <H as HostsB2bua>::M>, 0>,
{
    pub(crate) fn cx(&mut self) -> Cx<'_, H::R, H::M, H, 0> {
        let (ep, host) = self.split();
        Cx { ep, app: host.b2bua_mut() }
    }

    fn b2bua(&self) -> &App<H::R, H::M> {
        self.app().b2bua()
    }

    fn b2bua_mut(&mut self) -> &mut App<H::R, H::M> {
        self.app_mut().b2bua_mut()
    }

    pub fn router_mut(&mut self) -> &mut H::R {
        &mut self.b2bua_mut().router
    }

    pub fn anchor(&self) -> &H::M {
        &self.b2bua().anchor
    }

    pub fn anchor_mut(&mut self) -> &mut H::M {
        &mut self.b2bua_mut().anchor
    }

    /// Whether call `id` was answered and is still up.
    pub fn is_answered(&self, id: u64) -> bool {
        self.b2bua().calls.get(&id).is_some_and(|c| c.state.answered_at().is_some())
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.b2bua().calls.len()
    }

    /// Live transactions (client, server).
    pub fn transactions(&self) -> (usize, usize) {
        self.endpoint().transactions()
    }

    pub fn stats(&self) -> &CoreStats {
        self.endpoint().stats()
    }

    /// Stops accepting new calls (503); calls and transactions in progress go on.
    pub fn drain(&mut self) {
        self.b2bua_mut().draining = true;
    }

    /// Refuses new calls with `503` (`Warning` `why`, Retry-After 5) until called with `None`;
    /// calls and transactions in progress go on. For conditions that pass (the gateway cannot
    /// record calls, for example), unlike [`B2bua::drain`].
    pub fn refuse_new_calls(&mut self, why: Option<&'static str>) {
        self.b2bua_mut().refusing = why;
    }

    /// True when no call is up and no transaction still waits for a response or an ACK
    /// (transactions that only absorb retransmissions do not count).
    pub fn is_idle(&self) -> bool {
        self.b2bua().calls.is_empty() && self.endpoint().in_flight() == 0
    }

    /// Hangs up call `id` on both legs (media inactivity, an operator); false if it is not up.
    pub fn hang_up(&mut self, id: u64, reason: &str, now: Instant) -> bool {
        self.cx().hang_up(id, reason, now)
    }

    /// The INVITE of call `id`'s caller leg (`caller`: the one voicegw received) or callee
    /// leg (the one it sent, after the latest failover), while the call is up.
    pub fn invite_of(&self, id: u64, caller: bool) -> Option<&Request> {
        let leg = if caller { CALLER } else { CALLEE };
        self.b2bua().calls.get(&id).map(|c| &c.legs[leg].invite)
    }

    /// The BYEs that would end call `id` on each confirmed leg, for a crash-recovery journal.
    pub fn recovery_byes(&self, id: u64) -> Vec<(Peer, Request)> {
        super::in_dialog::recovery_byes(self.b2bua(), id)
    }

    /// Sends a BYE journaled by an earlier process (crash recovery).
    pub fn send_recovery_bye(&mut self, peer: Peer, bye: Request, now: Instant) {
        self.cx().send_recovery_bye(peer, bye, now)
    }
}

impl<R: Router, M: Anchor> Application for App<R, M> {
    type Owner = Owner;
    type Dialog = (u64, Side);
    type Event = CallEvent;
    type Update = M::Update;

    fn on_request<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        request: Request,
        peer: Peer,
        now: Instant,
    ) {
        Cx { ep, app: self }.on_new_request(key, request, peer, now)
    }

    fn on_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        request: Request,
        peer: Peer,
        now: Instant,
    ) {
        Cx { ep, app: self }.on_ack(request, peer, now)
    }

    fn on_response<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ClientKey,
        response: Response,
        owner: Owner,
        now: Instant,
    ) {
        Cx { ep, app: self }.on_response(key, response, owner, now)
    }

    fn on_stray_response<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        response: Response,
        _now: Instant,
    ) {
        Cx { ep, app: self }.on_stray_response(response)
    }

    fn on_client_timeout<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ClientKey,
        owner: Owner,
        now: Instant,
    ) {
        Cx { ep, app: self }.on_client_timeout(key, owner, now)
    }

    fn on_no_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        now: Instant,
    ) {
        Cx { ep, app: self }.on_no_ack(key, now)
    }

    fn has_invite(&self, key: &ServerKey) -> bool {
        self.invites.contains_key(key)
    }

    fn flush<H: Carries<Self, I>, const I: usize>(&mut self, ep: &mut Endpoint<H>) {
        Cx { ep, app: self }.collect_output()
    }
}

impl<R: Router, M: Anchor, H: Carries<App<R, M>, I>, const I: usize> Cx<'_, R, M, H, I> {
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
        let rewritten = self.app.anchor.rewrite(call, from, &ct, body);
        self.collect_output();
        *body = rewritten?;
        Ok(())
    }

    fn on_new_request(&mut self, key: ServerKey, req: Request, peer: Peer, now: Instant) {
        let has_to_tag = req.to().ok().and_then(|t| t.tag().map(str::to_string)).is_some();
        match req.method {
            Method::Cancel => self.on_cancel(key, req, now),
            _ if has_to_tag => self.on_in_dialog(key, req, peer, now),
            Method::Invite => self.on_invite(key, req, peer, now),
            Method::Options => {
                self.app.router.options(&req, &peer, now);
                let mut resp =
                    response_to(&req, 200, Some(&super::build::random_token(&mut self.ep.rng, 10)));
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
        resp.headers.push(HeaderName::Server, self.ep.cfg.user_agent.clone());
    }

    /// Sends a response through server transaction `key`, counting it.
    pub(crate) fn respond(&mut self, key: &ServerKey, resp: &Response, now: Instant) -> bool {
        let call = self.app.invites.get(key).copied();
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
        let sent = self.ep.respond(key, resp, now);
        if let Some(call) = call.filter(|_| sent) {
            self.emit(CallEvent::ResponseSent { call, status: resp.status });
        }
        sent
    }

    /// Starts one of the B2BUA's client transactions.
    pub(crate) fn send_request(
        &mut self,
        request: Request,
        peer: Peer,
        owner: Owner,
        now: Instant,
    ) -> Result<ClientKey, crate::message::ParseError> {
        self.ep.send_request::<App<R, M>, I>(request, peer, owner, now)
    }

    pub(crate) fn local_addr(&self, transport: Transport) -> SocketAddr {
        self.ep.local_addr(transport)
    }

    /// Moves what the transaction layer and the anchor produced so far into the output queue,
    /// in that order (the layer's messages were made before the anchor was last called).
    pub(crate) fn collect_output(&mut self) {
        self.ep.collect_transmits();
        while let Some(u) = self.app.anchor.poll_update() {
            self.ep.media::<App<R, M>, I>(u);
        }
    }

    /// Appends a call event after everything produced before it.
    pub(crate) fn emit(&mut self, ev: CallEvent) {
        self.collect_output();
        self.ep.emit::<App<R, M>, I>(ev);
    }

    /// Removes a call and its dialogs, and reports it ended.
    pub(crate) fn end_call(&mut self, id: u64, status: u16, reason: &str, now: Instant) {
        let Some(mut call) = self.app.calls.remove(&id) else { return };
        // Requests still relayed to the other leg (a re-INVITE, INFO, UPDATE…) would leave
        // their server transactions unanswered and never freed: the dialog is gone, so a
        // re-INVITE gets 487 and anything else 481.
        for (_, relay) in call.relays.drain() {
            let status = if relay.request.method == Method::Invite { 487 } else { 481 };
            let resp = response_to(&relay.request, status, None);
            self.respond_for(None, &relay.server_key, &resp, now);
        }
        self.ep.remove_dialog(&(call.legs[CALLER].call_id.clone(), call.legs[CALLER].tag.clone()));
        self.ep.remove_dialog(&(call.legs[CALLEE].call_id.clone(), call.legs[CALLEE].tag.clone()));
        self.app.invites.remove(&call.inbound);
        self.app.anchor.close(id);
        self.collect_output();
        self.emit(CallEvent::Ended { call: id, status, reason: reason.to_string() });
    }
}
