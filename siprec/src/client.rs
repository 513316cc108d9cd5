//! The recording client (SRC, RFC 7866 §6): a SIP [`Application`] that forks calls to a
//! recording server. It takes no requests of its own accord: the gateway starts a recording
//! session for an answered call ([`RecordingClient::start`]) and stops it when the call ends
//! ([`RecordingClient::stop`]); what comes back (responses, the recorder's BYE) reaches it
//! through the endpoint.
//!
//! - The INVITE: `Require: siprec`, `+sip.src` in the Contact, a `multipart/mixed` body with
//!   the SDP offer — two `m=audio` lines, `a=sendonly`, `a=label:1` (the caller's audio) and
//!   `a=label:2` (the callee's), on ports of the gateway's ([`ForkAnchor`]), PCMU and PCMA
//!   offered since the call's packets are copied as they are — and the gateway's RFC 7865
//!   metadata (`Content-Disposition: recording-session`).
//! - A 2xx is acknowledged and tells the anchor where each stream goes (a declined stream,
//!   port 0, is not sent); retransmitted 2xx are acknowledged again. Any other final response,
//!   or none, fails the session ([`ClientEvent::Failed`]) and releases its ports: the call is
//!   never touched.
//! - The call ends: BYE (or CANCEL while the INVITE is pending, and ACK then BYE should a 2xx
//!   still come). The recorder's BYE ends the recording, not the call.
//!
//! Sans-IO like the rest: time comes in as `now`, everything leaves through the endpoint's
//! ordered output (media updates before the messages that depend on them).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use media::sdp::Sdp;
use sip::dialog::Dialog;
use sip::endpoint::{cancel_of, our_contact, response_to, Application, Carries, Endpoint};
use sip::message::{HeaderName, Method, NameAddr, Request, Response, Uri};
use sip::transaction::{ClientKey, ServerKey};
use sip::{Instant, Peer};

/// The media of recording sessions the gateway sends: two ports per call, bound at once.
pub trait ForkAnchor {
    type Update;
    /// Binds the ports of call `call`'s two streams (the caller's audio, the callee's);
    /// returns the address and the ports, or why not.
    fn open(&mut self, call: u64) -> Result<(IpAddr, [u16; 2]), String>;
    /// The recorder answered: where each stream goes (`None`: declined, not sent).
    fn answered(&mut self, call: u64, to: [Option<SocketAddr>; 2]);
    /// The session ended: nothing more is sent, the ports are released.
    fn close(&mut self, call: u64);
    /// Updates made by the calls above, in order.
    fn poll_update(&mut self) -> Option<Self::Update>;
}

/// Where a voice connector's calls are recorded: the recorder's URI (the Request-URI and the
/// To of the INVITE) and the address and transport it is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uri: Uri,
    pub peer: Peer,
}

/// What the recording client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The recorder answered call `call`'s recording session.
    Started { call: u64, recorder: SocketAddr },
    /// The recording session could not be set up (or its answer could not be used).
    Failed { call: u64, why: Failure, reason: String },
    /// An answered recording session ended: by the recorder's BYE, or with its call.
    Ended { call: u64, by_recorder: bool },
}

/// Why a recording session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The recorder refused it with this status.
    Status(u16),
    /// The recorder answered nothing (Timer B, or the transport failed).
    NoAnswer,
    /// No ports could be bound for its streams.
    NoPorts,
    /// The INVITE could not be sent.
    NotSent,
    /// The recorder's 2xx could not be used (no To tag or Contact, no stream accepted).
    UnusableAnswer,
}

impl Failure {
    /// The metric label: the status, or what happened.
    pub fn label(self) -> String {
        match self {
            Failure::Status(s) => s.to_string(),
            Failure::NoAnswer => "no_answer".into(),
            Failure::NoPorts => "no_ports".into(),
            Failure::NotSent => "not_sent".into(),
            Failure::UnusableAnswer => "unusable_answer".into(),
        }
    }
}

/// What a client transaction of the recording client is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub call: u64,
    pub purpose: Purpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Invite,
    Cancel,
    Bye,
}

enum State {
    /// The INVITE waits for its final response; `stopped` once its call ended.
    Inviting { invite: Request, provisional: bool, stopped: bool },
    /// Answered: the dialog, and the ACK sent (again for a retransmitted 2xx).
    Up { dialog: Box<Dialog>, ack: Bytes },
}

struct Session {
    peer: Peer,
    state: State,
}

/// See the module documentation.
pub struct RecordingClient<A> {
    anchor: A,
    /// By call number (the gateway's, one session per call).
    sessions: HashMap<u64, Session>,
}

const BOUNDARY: &str = "voicegw-siprec";

impl<A: ForkAnchor> RecordingClient<A> {
    pub fn new(anchor: A) -> Self {
        RecordingClient { anchor, sessions: HashMap::new() }
    }

    pub fn anchor_mut(&mut self) -> &mut A {
        &mut self.anchor
    }

    /// Recording sessions set up or being set up.
    pub fn active_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Whether call `call` is being recorded (or its recording is being set up).
    pub fn records(&self, call: u64) -> bool {
        self.sessions.contains_key(&call)
    }

    fn flush_media<H: Carries<Self, I>, const I: usize>(&mut self, ep: &mut Endpoint<H>) {
        while let Some(u) = self.anchor.poll_update() {
            ep.media::<Self, I>(u);
        }
    }

    /// Starts recording call `call` to `target` with the gateway's RFC 7865 `metadata`.
    /// Nothing happens for a call already recorded; a failure is reported as
    /// [`ClientEvent::Failed`].
    pub fn start<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        call: u64,
        target: &Target,
        metadata: &str,
        now: Instant,
    ) {
        if self.sessions.contains_key(&call) {
            return;
        }
        let (ip, ports) = match self.anchor.open(call) {
            Ok(x) => x,
            Err(reason) => {
                ep.emit::<Self, I>(ClientEvent::Failed { call, why: Failure::NoPorts, reason });
                return;
            }
        };
        let transport = target.peer.transport;
        let local = ep.local_addr(transport);
        let mut invite = Request::new(Method::Invite, target.uri.clone());
        invite.headers.push(HeaderName::Via, ep.new_via(transport));
        invite.headers.push(HeaderName::MaxForwards, "70");
        let from = NameAddr::new(Uri::sip(Some("voicegw"), &host_of(local.ip()), None));
        invite.headers.push(HeaderName::From, format!("{from};tag={}", ep.new_tag()));
        invite.headers.push(HeaderName::To, NameAddr::new(target.uri.clone()).to_string());
        invite.headers.push(HeaderName::CallId, ep.new_uuid());
        invite.headers.push(HeaderName::CSeq, "1 INVITE");
        let contact = our_contact(transport, local);
        invite.headers.push(HeaderName::Contact, format!("{contact};+sip.src"));
        invite.headers.push(HeaderName::parse("Require"), "siprec");
        invite.headers.push(HeaderName::parse("User-Agent"), ep.config().user_agent.clone());
        invite
            .headers
            .push(HeaderName::ContentType, format!("multipart/mixed;boundary={BOUNDARY}"));
        invite.body = Bytes::from(body(ip, ports, metadata));
        self.flush_media::<H, I>(ep);
        let owner = Owner { call, purpose: Purpose::Invite };
        match ep.send_request::<Self, I>(invite.clone(), target.peer, owner, now) {
            Ok(_) => {
                let state = State::Inviting { invite, provisional: false, stopped: false };
                self.sessions.insert(call, Session { peer: target.peer, state });
            }
            Err(e) => {
                self.anchor.close(call);
                self.flush_media::<H, I>(ep);
                let reason = format!("the recording INVITE cannot be sent: {e}");
                ep.emit::<Self, I>(ClientEvent::Failed { call, why: Failure::NotSent, reason });
            }
        }
    }

    /// Call `call` ended: its recording session ends too.
    pub fn stop<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        call: u64,
        now: Instant,
    ) {
        let Some(s) = self.sessions.get_mut(&call) else { return };
        match &mut s.state {
            State::Inviting { invite, provisional, stopped } => {
                if *stopped {
                    return;
                }
                *stopped = true;
                // CANCEL only after a provisional response (RFC 3261 §9.1); a 2xx that still
                // comes is acknowledged and hung up.
                if *provisional {
                    let cancel = cancel_of(invite);
                    let owner = Owner { call, purpose: Purpose::Cancel };
                    let _ = ep.send_request::<Self, I>(cancel, s.peer, owner, now);
                }
                self.anchor.close(call);
                self.flush_media::<H, I>(ep);
            }
            State::Up { .. } => {
                self.hang_up::<H, I>(ep, call, now);
                ep.emit::<Self, I>(ClientEvent::Ended { call, by_recorder: false });
            }
        }
    }

    /// BYE to the recorder; the session is gone.
    fn hang_up<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        call: u64,
        now: Instant,
    ) {
        let Some(s) = self.sessions.remove(&call) else { return };
        self.anchor.close(call);
        self.flush_media::<H, I>(ep);
        if let State::Up { mut dialog, .. } = s.state {
            ep.remove_dialog(&(dialog.id.call_id.clone(), dialog.id.local_tag.clone()));
            let mut bye = dialog.request(Method::Bye, None);
            bye.headers.push_front(HeaderName::Via, ep.new_via(s.peer.transport));
            let owner = Owner { call, purpose: Purpose::Bye };
            let _ = ep.send_request::<Self, I>(bye, s.peer, owner, now);
        }
    }

    fn on_invite_response<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        call: u64,
        resp: Response,
        now: Instant,
    ) {
        let Some(s) = self.sessions.get_mut(&call) else { return };
        let (invite, provisional, stopped) = match &mut s.state {
            State::Inviting { invite, provisional, stopped, .. } => (invite, provisional, stopped),
            State::Up { ack, .. } => {
                // A retransmitted 2xx (the transaction passes them on): acknowledged again.
                if resp.is_success() {
                    ep.send_raw(s.peer, ack.clone());
                }
                return;
            }
        };
        if resp.is_provisional() {
            if !*provisional && *stopped {
                let cancel = cancel_of(invite);
                let owner = Owner { call, purpose: Purpose::Cancel };
                let _ = ep.send_request::<Self, I>(cancel, s.peer, owner, now);
            }
            *provisional = true;
            return;
        }
        if !resp.is_success() {
            let stopped = *stopped;
            self.sessions.remove(&call);
            if !stopped {
                self.anchor.close(call);
                self.flush_media::<H, I>(ep);
                let reason = format!("the recorder answered {} {}", resp.status, resp.reason);
                let why = Failure::Status(resp.status);
                ep.emit::<Self, I>(ClientEvent::Failed { call, why, reason });
            }
            return;
        }
        // 2xx: the dialog, its ACK, where the streams go.
        let stopped = *stopped;
        let Some(mut dialog) = Dialog::uac(invite, &resp) else {
            // No usable To tag or Contact: nothing to acknowledge or hang up properly.
            self.sessions.remove(&call);
            self.anchor.close(call);
            self.flush_media::<H, I>(ep);
            let reason = "the recorder's 2xx has no To tag or Contact".to_string();
            let why = Failure::UnusableAnswer;
            ep.emit::<Self, I>(ClientEvent::Failed { call, why, reason });
            return;
        };
        let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        let mut ack = dialog.request(Method::Ack, Some(seq));
        ack.headers.push_front(HeaderName::Via, ep.new_via(s.peer.transport));
        let ack = ack.to_bytes();
        ep.send_raw(s.peer, ack.clone());
        let recorder = s.peer.addr;
        let id = (dialog.id.call_id.clone(), dialog.id.local_tag.clone());
        s.state = State::Up { dialog: Box::new(dialog), ack };
        ep.insert_dialog::<Self, I>(id, call);
        if stopped {
            self.hang_up::<H, I>(ep, call, now);
            return;
        }
        match streams_of(&resp) {
            Some(to) if to.iter().any(Option::is_some) => {
                self.anchor.answered(call, to);
                self.flush_media::<H, I>(ep);
                ep.emit::<Self, I>(ClientEvent::Started { call, recorder });
            }
            _ => {
                self.hang_up::<H, I>(ep, call, now);
                let reason = "the recorder's answer accepts no stream".to_string();
                let why = Failure::UnusableAnswer;
                ep.emit::<Self, I>(ClientEvent::Failed { call, why, reason });
            }
        }
    }
}

fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The INVITE's body: the SDP offer and the metadata.
fn body(ip: IpAddr, ports: [u16; 2], metadata: &str) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut sdp = format!(
        "v=0\r\no=voicegw 1 1 IN {family} {ip}\r\ns=voicegw recording\r\nc=IN {family} {ip}\r\nt=0 0\r\n"
    );
    for (port, label) in ports.iter().zip(["1", "2"]) {
        sdp.push_str(&format!(
            "m=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=label:{label}\r\na=sendonly\r\n"
        ));
    }
    format!(
        "--{BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--{BOUNDARY}\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{metadata}\r\n--{BOUNDARY}--\r\n"
    )
}

/// Where the recorder's answer wants each stream: its first two `m=audio` lines in order
/// (port 0 or no address: declined). `None` when the answer has no readable SDP.
fn streams_of(resp: &Response) -> Option<[Option<SocketAddr>; 2]> {
    let ct = resp.headers.get(&HeaderName::ContentType).unwrap_or("application/sdp");
    let body: Bytes = if ct.to_ascii_lowercase().starts_with("multipart/") {
        let parts = sip::message::multipart::parse(ct, &resp.body).ok()?;
        parts
            .into_iter()
            .find(|p| p.content_type().is_some_and(|t| t.eq_ignore_ascii_case("application/sdp")))?
            .body
    } else {
        resp.body.clone()
    };
    let sdp = Sdp::parse(&body).ok()?;
    let mut out = [None, None];
    let audio = sdp.media.iter().filter(|m| m.kind.eq_ignore_ascii_case("audio"));
    for (slot, m) in out.iter_mut().zip(audio) {
        if m.port != 0 && m.attributes("inactive").next().is_none() {
            *slot = sdp.media_addr(m).map(|ip| SocketAddr::new(ip, m.port));
        }
    }
    Some(out)
}

impl<A: ForkAnchor> Application for RecordingClient<A> {
    type Owner = Owner;
    /// The call whose recording session the dialog is.
    type Dialog = u64;
    type Event = ClientEvent;
    type Update = A::Update;

    /// Requests in its dialogs: the recorder's BYE ends the recording (the call goes on);
    /// OPTIONS, UPDATE and INFO are answered 200; a re-INVITE is refused (488: the offer
    /// stands).
    fn on_request<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        req: Request,
        _peer: Peer,
        now: Instant,
    ) {
        let to_tag = req.to().ok().and_then(|t| t.tag().map(str::to_string)).unwrap_or_default();
        let id = (req.call_id().unwrap_or_default().to_string(), to_tag);
        let call = ep.dialog::<Self, I>(&id).copied();
        let Some(call) = call.filter(|c| self.sessions.contains_key(c)) else {
            ep.respond(&key, &response_to(&req, 481, None), now);
            return;
        };
        let status = match req.method {
            Method::Bye => 200,
            Method::Options | Method::Update | Method::Info => 200,
            _ => 488,
        };
        ep.respond(&key, &response_to(&req, status, None), now);
        if req.method == Method::Bye {
            ep.remove_dialog(&id);
            self.sessions.remove(&call);
            self.anchor.close(call);
            self.flush_media::<H, I>(ep);
            ep.emit::<Self, I>(ClientEvent::Ended { call, by_recorder: true });
        }
    }

    fn on_response<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        _key: ClientKey,
        response: Response,
        owner: Owner,
        now: Instant,
    ) {
        if owner.purpose == Purpose::Invite {
            self.on_invite_response::<H, I>(ep, owner.call, response, now);
        }
    }

    /// A retransmitted 2xx of an answered session: acknowledged again.
    fn on_stray_response<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        response: Response,
        _now: Instant,
    ) {
        if !response.is_success() || response.cseq().map(|c| c.method) != Ok(Method::Invite) {
            return;
        }
        let tag = response.from().ok().and_then(|f| f.tag().map(str::to_string));
        let id = (response.call_id().unwrap_or_default().to_string(), tag.unwrap_or_default());
        let Some(call) = ep.dialog::<Self, I>(&id).copied() else { return };
        if let Some(Session { peer, state: State::Up { ack, .. } }) = self.sessions.get(&call) {
            ep.send_raw(*peer, ack.clone());
        }
    }

    fn on_client_timeout<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        _key: ClientKey,
        owner: Owner,
        _now: Instant,
    ) {
        if owner.purpose != Purpose::Invite {
            return;
        }
        let Some(s) = self.sessions.get(&owner.call) else { return };
        let State::Inviting { stopped, .. } = s.state else { return };
        self.sessions.remove(&owner.call);
        if !stopped {
            self.anchor.close(owner.call);
            self.flush_media::<H, I>(ep);
            let reason = "the recorder did not answer".to_string();
            let why = Failure::NoAnswer;
            ep.emit::<Self, I>(ClientEvent::Failed { call: owner.call, why, reason });
        }
    }

    fn on_no_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        _ep: &mut Endpoint<H>,
        _key: ServerKey,
        _now: Instant,
    ) {
    }

    fn has_invite(&self, _key: &ServerKey) -> bool {
        false
    }

    fn flush<H: Carries<Self, I>, const I: usize>(&mut self, ep: &mut Endpoint<H>) {
        self.flush_media::<H, I>(ep);
    }
}

#[cfg(test)]
mod tests;
