//! The meeting dial-in UAS: a SIP [`Application`] that answers calls to the meet domain
//! itself (the gateway's `Pick` sends it INVITEs whose Request-URI host is a meet domain).
//!
//! - A new INVITE: refused with 403 unless it came over TLS (or the lab setting allows
//!   otherwise); its offer read ([`Offer::read`]: 488 with the reason otherwise); calls capped
//!   (503); the media anchor binds the participant's port ([`MeetingMedia`]); answered 200 at
//!   once with video declined. Its IVR starts with the Request-URI's user ([`Ivr::start`]).
//! - Keys come from SIP INFO in the dialog (`application/dtmf-relay`, `application/dtmf`)
//!   and from the media (RFC 4733 events, in-band tones: [`MeetingUas::digit`], called by the
//!   gateway). Before joining they go to the IVR; in the meeting to its controls.
//! - Joining goes through [`Rooms`]: bridged, waiting for the moderator, or refused. A refusal,
//!   an IVR that gave up or the end of the meeting plays its prompt, then voicegw hangs up
//!   ([`HANGUP_AFTER`] later, so the prompt is heard).
//! - BYE, or a 2xx never acknowledged, ends the participant's call.
//!
//! Sans-IO like the B2BUA: `now` comes in, everything leaves through the endpoint's ordered
//! output; its own timers (the IVR's, the hang-ups) are [`MeetingUas::poll_timeout`] and
//! [`MeetingUas::handle_timeout`], which the driver calls beside the endpoint's.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::Instant;
use media::dtmf::{info, Digit};
use media::srtp::MasterKey;
use sip::dialog::Dialog;
use sip::endpoint::{our_contact, response_to, Application, Carries, Endpoint};
use sip::message::{HeaderName, Method, Request};
use sip::transaction::{ClientKey, ServerKey};
use sip::{Peer, Response, Transport};

use crate::controls::Controls;
use crate::ivr::{Action, Directory, Ivr, IvrConfig, Prompt, Refusal};
use crate::offer::{Offer, OfferedAudio};
use crate::rooms::{MeetingInfo, RefuseWhy, RoomAction, Rooms};

/// How long after its last prompt voicegw hangs up on a caller it refused.
pub const HANGUP_AFTER: Duration = Duration::from_secs(5);

/// What the gateway's configuration says about meetings.
pub trait MeetPolicy: Directory {
    /// Whether a caller may dial in over `transport` (TLS only, unless a lab allows more).
    fn allows(&self, transport: Transport) -> bool;
    /// The meeting `id` (10 digits), for joining it.
    fn info(&self, id: &str) -> Option<MeetingInfo>;
    fn ivr(&self) -> IvrConfig;
}

/// The participants' media: a port each, prompts played to them, the meetings' bridges.
pub trait MeetingMedia {
    type Update;
    /// Binds call `call`'s port for `audio`: where voicegw receives, and its SRTP key when
    /// the offer is SRTP; or the refusal (status, reason).
    fn open(
        &mut self,
        call: u64,
        audio: &OfferedAudio,
    ) -> Result<(SocketAddr, Option<MasterKey>), (u16, String)>;
    /// Plays `prompt` to the call after those queued.
    fn play(&mut self, call: u64, prompt: Prompt);
    /// Stops the prompts playing and queued.
    fn stop_prompts(&mut self, call: u64);
    /// The call's audio joins meeting `meeting`'s bridge.
    fn bridge(&mut self, call: u64, meeting: &str);
    fn set_muted(&mut self, call: u64, muted: bool);
    /// The call ended: its port is released, it leaves its bridge.
    fn close(&mut self, call: u64);
    fn poll_update(&mut self) -> Option<Self::Update>;
}

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfTransport {
    Rfc4733,
    SipInfo,
    InBand,
}

impl DtmfTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfTransport::Rfc4733 => "rfc4733",
            DtmfTransport::SipInfo => "sip_info",
            DtmfTransport::InBand => "inband",
        }
    }
}

/// What the meeting UAS reports.
#[derive(Debug, Clone)]
pub enum MeetEvent {
    /// A call was answered (its IVR starts).
    Answered {
        call: u64,
        transaction_id: String,
        invite: Box<Request>,
        peer: Peer,
        at: Instant,
    },
    /// A dial-in was refused before it was answered.
    Refused {
        call_id: String,
        status: u16,
        reason: String,
    },
    Joined {
        call: u64,
        meeting: String,
        moderator: bool,
    },
    Waiting {
        call: u64,
        meeting: String,
    },
    IvrFailed {
        call: u64,
        why: Refusal,
    },
    Dtmf {
        call: u64,
        transport: DtmfTransport,
    },
    MeetingStarted {
        meeting: String,
    },
    MeetingEnded {
        meeting: String,
    },
    RecordingStarted {
        meeting: String,
    },
    RecordingStopped {
        meeting: String,
    },
    /// The call ended: `reason` is BYE, hung up by voicegw, or no ACK.
    Ended {
        call: u64,
        meeting: Option<String>,
        reason: &'static str,
        at: Instant,
    },
}

struct Call {
    dialog: Dialog,
    peer: Peer,
    invite: ServerKey,
    awaiting_ack: Option<(u32, ServerKey)>,
    ivr: Ivr,
    controls: Option<Controls>,
    hang_up_at: Option<Instant>,
}

/// See the module documentation.
pub struct MeetingUas<P, M> {
    policy: P,
    media: M,
    rooms: Rooms,
    calls: HashMap<u64, Call>,
    invites: HashSet<ServerKey>,
    max_calls: usize,
    next_id: u64,
}

impl<P: MeetPolicy, M: MeetingMedia> MeetingUas<P, M> {
    /// Call numbers start at `first_id` (the gateway keeps them apart from its other calls).
    pub fn new(policy: P, media: M, max_calls: usize, first_id: u64) -> Self {
        MeetingUas {
            policy,
            media,
            rooms: Rooms::new(),
            calls: HashMap::new(),
            invites: HashSet::new(),
            max_calls,
            next_id: first_id,
        }
    }

    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    pub fn media_mut(&mut self) -> &mut M {
        &mut self.media
    }

    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// Calls answered and not ended (in the IVR, waiting or in a meeting).
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    fn flush_media<H: Carries<Self, I>, const I: usize>(&mut self, ep: &mut Endpoint<H>) {
        while let Some(u) = self.media.poll_update() {
            ep.media::<Self, I>(u);
        }
    }

    fn refuse<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: &ServerKey,
        req: &Request,
        (status, reason): (u16, String),
        now: Instant,
    ) {
        self.invites.remove(key);
        let mut r = response_to(req, status, Some(&ep.new_tag()));
        r.headers
            .push(HeaderName::Warning, format!("399 voicegw \"{}\"", reason.replace('"', "'")));
        ep.respond(key, &r, now);
        let call_id = req.call_id().unwrap_or_default().to_string();
        ep.emit::<Self, I>(MeetEvent::Refused { call_id, status, reason });
    }

    fn on_invite<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        req: Request,
        peer: Peer,
        now: Instant,
    ) {
        self.invites.insert(key.clone());
        if !self.policy.allows(peer.transport) {
            let why = format!("{} takes TLS only (SIP over TLS on 5061)", req.uri.host);
            return self.refuse::<H, I>(ep, &key, &req, (403, why), now);
        }
        let offer = match Offer::read(&req.body) {
            Ok(o) => o,
            Err(e) => return self.refuse::<H, I>(ep, &key, &req, (488, e.to_string()), now),
        };
        if self.calls.len() >= self.max_calls {
            let why = (503, "too many meeting participants".to_string());
            return self.refuse::<H, I>(ep, &key, &req, why, now);
        }
        let call = self.next_id;
        self.next_id += 1;
        let (local, own_key) = match self.media.open(call, &offer.audio) {
            Ok(x) => x,
            Err(refusal) => return self.refuse::<H, I>(ep, &key, &req, refusal, now),
        };
        let tag = ep.new_tag();
        let Some(dialog) = Dialog::uas(&req, &tag) else {
            self.media.close(call);
            self.flush_media::<H, I>(ep);
            let why = (400, "the INVITE has no usable Contact".to_string());
            return self.refuse::<H, I>(ep, &key, &req, why, now);
        };
        let mut ok = response_to(&req, 200, Some(&tag));
        let contact = our_contact(peer.transport, ep.local_addr(peer.transport));
        ok.headers.push(HeaderName::Contact, contact);
        ok.headers.push(HeaderName::Server, ep.config().user_agent.clone());
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = Bytes::from(offer.answer(local, own_key.as_ref(), 1).to_text());
        let user = req.uri.user.clone().unwrap_or_default();
        let ivr = Ivr::start(self.policy.ivr(), &user, &self.policy, now);
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        self.calls.insert(
            call,
            Call {
                dialog,
                peer,
                invite: key.clone(),
                awaiting_ack: Some((cseq, key.clone())),
                ivr,
                controls: None,
                hang_up_at: None,
            },
        );
        ep.insert_dialog::<Self, I>((req.call_id().unwrap_or_default().to_string(), tag), call);
        self.flush_media::<H, I>(ep);
        let transaction_id = ep.new_uuid();
        ep.emit::<Self, I>(MeetEvent::Answered {
            call,
            transaction_id,
            invite: Box::new(req.clone()),
            peer,
            at: now,
        });
        ep.respond(&key, &ok, now);
        self.follow_ivr::<H, I>(ep, call, now);
    }

    /// Carries out what call `call`'s IVR decided.
    fn follow_ivr<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        call: u64,
        now: Instant,
    ) {
        loop {
            let Some(c) = self.calls.get_mut(&call) else { return };
            let Some(action) = c.ivr.poll_action() else { break };
            match action {
                Action::Play(p) => self.media.play(call, p),
                Action::StopPrompts => self.media.stop_prompts(call),
                Action::Hangup { reason } => {
                    c.hang_up_at = Some(now + HANGUP_AFTER);
                    ep.emit::<Self, I>(MeetEvent::IvrFailed { call, why: reason });
                }
                Action::Join { meeting, moderator } => {
                    let Some(info) = self.policy.info(&meeting) else {
                        // The configuration changed under the IVR: as an unknown meeting.
                        self.media.play(call, Prompt::Goodbye);
                        c.hang_up_at = Some(now + HANGUP_AFTER);
                        continue;
                    };
                    c.controls = Some(Controls::new(moderator));
                    let actions = self.rooms.join(call, &info, moderator);
                    self.follow_rooms::<H, I>(ep, actions, now);
                }
            }
        }
        self.flush_media::<H, I>(ep);
    }

    fn follow_rooms<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        actions: Vec<RoomAction>,
        now: Instant,
    ) {
        for a in actions {
            match a {
                RoomAction::Bridge { call, meeting } => {
                    self.media.stop_prompts(call);
                    self.media.bridge(call, &meeting);
                    let moderator = self.rooms.is_moderator(call);
                    ep.emit::<Self, I>(MeetEvent::Joined { call, meeting, moderator });
                }
                RoomAction::Wait { call } => {
                    self.media.play(call, Prompt::WaitingForModerator);
                    let meeting = self.rooms.meeting_of(call).unwrap_or_default().to_string();
                    ep.emit::<Self, I>(MeetEvent::Waiting { call, meeting });
                }
                RoomAction::Refuse { call, why } => {
                    let p = match why {
                        RefuseWhy::Full => Prompt::MeetingFull,
                        RefuseWhy::Locked => Prompt::MeetingLockedOut,
                    };
                    self.media.play(call, p);
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.controls = None;
                        c.hang_up_at = Some(now + HANGUP_AFTER);
                    }
                }
                RoomAction::Mute { call, muted } => {
                    self.media.set_muted(call, muted);
                    self.media.play(call, if muted { Prompt::Muted } else { Prompt::Unmuted });
                }
                RoomAction::Locked { call, locked } => {
                    self.media.play(call, if locked { Prompt::Locked } else { Prompt::Unlocked });
                }
                RoomAction::Disconnect { call } => {
                    self.media.play(call, Prompt::MeetingEnded);
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.controls = None;
                        c.hang_up_at = Some(now + HANGUP_AFTER);
                    }
                }
                RoomAction::StartRecording { meeting } => {
                    // Everyone in the meeting is told (as the service's meetings do).
                    for call in self.rooms.bridged(&meeting) {
                        self.media.play(call, Prompt::RecordingStarted);
                    }
                    ep.emit::<Self, I>(MeetEvent::RecordingStarted { meeting })
                }
                RoomAction::StopRecording { meeting } => {
                    for call in self.rooms.bridged(&meeting) {
                        self.media.play(call, Prompt::RecordingStopped);
                    }
                    ep.emit::<Self, I>(MeetEvent::RecordingStopped { meeting })
                }
                RoomAction::MeetingStarted { meeting } => {
                    ep.emit::<Self, I>(MeetEvent::MeetingStarted { meeting })
                }
                RoomAction::MeetingEnded { meeting } => {
                    ep.emit::<Self, I>(MeetEvent::MeetingEnded { meeting })
                }
            }
        }
    }

    /// A key from call `call` (from its media: RFC 4733 or in-band; INFO comes in here too).
    pub fn digit<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        call: u64,
        d: Digit,
        transport: DtmfTransport,
        now: Instant,
    ) {
        let Some(c) = self.calls.get_mut(&call) else { return };
        ep.emit::<Self, I>(MeetEvent::Dtmf { call, transport });
        if !c.ivr.is_done() {
            c.ivr.digit(d, &self.policy, now);
            self.follow_ivr::<H, I>(ep, call, now);
            return;
        }
        let Some(cmd) = c.controls.as_mut().and_then(|k| k.digit(d, now)) else { return };
        let actions = self.rooms.command(call, cmd);
        self.follow_rooms::<H, I>(ep, actions, now);
        self.flush_media::<H, I>(ep);
    }

    /// When [`MeetingUas::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .filter_map(|c| match (c.hang_up_at, c.ivr.poll_timeout()) {
                (Some(h), Some(i)) => Some(h.min(i)),
                (h, i) => h.or(i),
            })
            .min()
    }

    pub fn handle_timeout<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        now: Instant,
    ) {
        let due: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.hang_up_at.is_some_and(|t| t <= now)
                    || c.ivr.poll_timeout().is_some_and(|t| t <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for call in due {
            let hang_up =
                self.calls.get(&call).and_then(|c| c.hang_up_at).is_some_and(|t| t <= now);
            if hang_up {
                self.hang_up::<H, I>(ep, call, now);
                continue;
            }
            if let Some(c) = self.calls.get_mut(&call) {
                c.ivr.handle_timeout(&self.policy, now);
            }
            self.follow_ivr::<H, I>(ep, call, now);
        }
    }

    /// voicegw ends call `call`: BYE.
    fn hang_up<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        call: u64,
        now: Instant,
    ) {
        let Some(c) = self.calls.get_mut(&call) else { return };
        let mut bye = c.dialog.request(Method::Bye, None);
        bye.headers.push_front(HeaderName::Via, ep.new_via(c.peer.transport));
        let peer = c.peer;
        self.end::<H, I>(ep, call, "hung up by voicegw", now);
        let _ = ep.send_request::<Self, I>(bye, peer, call, now);
    }

    fn end<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        call: u64,
        reason: &'static str,
        now: Instant,
    ) {
        let Some(c) = self.calls.remove(&call) else { return };
        self.invites.remove(&c.invite);
        if let Some((_, k)) = &c.awaiting_ack {
            self.invites.remove(k);
        }
        ep.remove_dialog(&(c.dialog.id.call_id.clone(), c.dialog.id.local_tag.clone()));
        let meeting = self.rooms.meeting_of(call).map(str::to_string);
        let actions = self.rooms.leave(call);
        self.media.close(call);
        self.flush_media::<H, I>(ep);
        ep.emit::<Self, I>(MeetEvent::Ended { call, meeting, reason, at: now });
        self.follow_rooms::<H, I>(ep, actions, now);
        self.flush_media::<H, I>(ep);
    }

    fn call_of<H: Carries<Self, I>, const I: usize>(
        ep: &Endpoint<H>,
        req: &Request,
    ) -> Option<u64> {
        let tag = req.to().ok().and_then(|t| t.tag().map(str::to_string))?;
        ep.dialog::<Self, I>(&(req.call_id().unwrap_or_default().to_string(), tag)).copied()
    }
}

impl<P: MeetPolicy, M: MeetingMedia> Application for MeetingUas<P, M> {
    /// A BYE voicegw sent: the call it ended.
    type Owner = u64;
    /// A dialog is a participant's call.
    type Dialog = u64;
    type Event = MeetEvent;
    type Update = M::Update;

    fn on_request<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        req: Request,
        peer: Peer,
        now: Instant,
    ) {
        let in_dialog = req.to().ok().and_then(|t| t.tag().map(str::to_string)).is_some();
        let call = Self::call_of::<H, I>(ep, &req);
        match (&req.method, call) {
            (Method::Invite, None) if !in_dialog => self.on_invite::<H, I>(ep, key, req, peer, now),
            (Method::Bye, Some(call)) => {
                ep.respond(&key, &response_to(&req, 200, None), now);
                self.end::<H, I>(ep, call, "BYE", now);
            }
            (Method::Info, Some(call)) => {
                let ct = req.content_type().unwrap_or_default().to_string();
                ep.respond(&key, &response_to(&req, 200, None), now);
                if let Some(d) = info::digit(&ct, &req.body) {
                    self.digit::<H, I>(ep, call, d, DtmfTransport::SipInfo, now);
                }
            }
            (Method::Cancel, _) => {
                // Answered at once: nothing is left to cancel.
                ep.respond(&key, &response_to(&req, 200, None), now);
            }
            (Method::Options | Method::Update, Some(_)) => {
                ep.respond(&key, &response_to(&req, 200, None), now);
            }
            (Method::Invite, Some(_)) => {
                // A re-INVITE (hold, a codec change) is not taken: the call stays as it is.
                ep.respond(&key, &response_to(&req, 488, None), now);
            }
            (_, None) if in_dialog => {
                ep.respond(&key, &response_to(&req, 481, None), now);
            }
            _ => {
                let mut r = response_to(&req, 405, None);
                r.headers
                    .push(HeaderName::Allow, "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE");
                ep.respond(&key, &r, now);
            }
        }
    }

    fn on_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        request: Request,
        _peer: Peer,
        now: Instant,
    ) {
        let Some(call) = Self::call_of::<H, I>(ep, &request) else { return };
        let Some(c) = self.calls.get_mut(&call) else { return };
        let cseq = request.cseq().map(|c| c.seq).unwrap_or(0);
        if c.awaiting_ack.as_ref().is_some_and(|(n, _)| *n == cseq) {
            if let Some((_, key)) = c.awaiting_ack.take() {
                ep.ack_received(&key, now);
            }
        }
    }

    fn on_response<H: Carries<Self, I>, const I: usize>(
        &mut self,
        _ep: &mut Endpoint<H>,
        _key: ClientKey,
        _response: Response,
        _owner: u64,
        _now: Instant,
    ) {
        // The answer to a BYE voicegw sent: the call is already gone.
    }

    fn on_no_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        now: Instant,
    ) {
        self.invites.remove(&key);
        let unacked = |c: &Call| c.awaiting_ack.as_ref().is_some_and(|(_, k)| *k == key);
        if let Some(call) = self.calls.iter().find(|(_, c)| unacked(c)).map(|(id, _)| *id) {
            self.end::<H, I>(ep, call, "no ACK", now);
        }
    }

    fn has_invite(&self, key: &ServerKey) -> bool {
        self.invites.contains(key)
    }

    fn flush<H: Carries<Self, I>, const I: usize>(&mut self, ep: &mut Endpoint<H>) {
        self.flush_media::<H, I>(ep);
    }
}

#[cfg(test)]
mod tests;
