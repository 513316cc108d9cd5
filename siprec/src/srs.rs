//! The recording server (SRS, RFC 7866): a SIP [`Application`] that answers recording sessions
//! itself. It sits on the gateway's endpoint beside the B2BUA (a `Pair`, the gateway's `Pick`
//! sending it INVITEs that [`crate::offer::is_recording_session`] recognises).
//!
//! - A new INVITE: its offer is read ([`Offer::read`]: 415/488 with the reason otherwise), the
//!   gateway's policy says which voice connector it belongs to ([`Admit`]: its refusal
//!   otherwise), the media anchor binds one port per stream ([`RecordingAnchor`]: 503
//!   otherwise), and it is answered 200 with `a=recvonly` on those ports. The session starts
//!   ([`RecordingEvent::Started`]) with the offer's streams, the raw metadata and its model.
//! - In its dialog: a re-INVITE or UPDATE with new metadata updates the session's state (a
//!   partial document is merged) and reports [`RecordingEvent::Updated`]; new stream addresses
//!   go to the anchor; the answer keeps the ports. BYE, or a 200 never acknowledged, ends it
//!   ([`RecordingEvent::Ended`]). OPTIONS and INFO are answered 200; other methods 405.
//! - Sessions are capped ([`Srs::new`]'s `max_sessions`: 503 beyond).
//!
//! Sans-IO like the B2BUA: time comes in as `now`, the anchor and the policy are the
//! gateway's, everything leaves through the endpoint's ordered output (media updates before
//! the answer that carries their ports).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use bytes::Bytes;
use media::srtp::MasterKey;
use sip::endpoint::{our_contact, response_to, Application, Carries, Endpoint};
use sip::message::{HeaderName, Method, Request, Response};
use sip::transaction::ServerKey;
use sip::{Instant, Peer};

use crate::metadata::Metadata;
use crate::offer::{Offer, OfferedStream};

/// Which voice connector a recording session belongs to: the gateway's policy (source
/// addresses, digest credentials) for the INVITE.
pub trait Admit {
    /// The voice connector's id, or the refusal.
    fn admit(&mut self, invite: &Request, source: &Peer, now: Instant) -> Result<String, Refusal>;
}

/// A recording session refused by the policy: its status, the reason (for the log and
/// `Warning`) and, for a 407, the `Proxy-Authenticate` challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
    pub challenges: Vec<String>,
}

impl From<(u16, String)> for Refusal {
    fn from((status, reason): (u16, String)) -> Refusal {
        Refusal { status, reason, challenges: Vec::new() }
    }
}

/// The media of recording sessions: ports bound at once (a port another program holds is
/// skipped, never found out too late), updates queued for the endpoint's output.
pub trait RecordingAnchor {
    type Update;
    /// Binds one port (and its RTCP port) per stream of `offer` for session `session`;
    /// returns the address, the ports and, for SRTP streams, voicegw's keys, in the order of
    /// the offer's streams, or the refusal (status, reason).
    fn open(
        &mut self,
        session: u64,
        voice_connector_id: &str,
        transaction_id: &str,
        call_id: &str,
        offer: &Offer,
    ) -> Result<Opened, (u16, String)>;
    /// A new offer for the session (the client's addresses, codecs or keys may have
    /// changed): voicegw's keys for the answer, or the refusal (the session goes on as it
    /// was).
    fn update(
        &mut self,
        session: u64,
        offer: &Offer,
    ) -> Result<Vec<Option<MasterKey>>, (u16, String)>;
    /// The session ended: its ports are released.
    fn close(&mut self, session: u64);
    /// Updates made by the calls above, in order.
    fn poll_update(&mut self) -> Option<Self::Update>;
}

/// A recording session's media, bound: where voicegw receives each stream of the offer, and
/// the key it answers for each SRTP stream (`None` for plain RTP).
#[derive(Debug, Clone)]
pub struct Opened {
    pub local: IpAddr,
    pub ports: Vec<u16>,
    pub keys: Vec<Option<MasterKey>>,
}

/// What the recording server reports.
#[derive(Debug, Clone)]
pub enum RecordingEvent {
    /// A recording session was answered.
    Started {
        session: u64,
        transaction_id: String,
        voice_connector_id: String,
        invite: Request,
        source: Peer,
        streams: Vec<OfferedStream>,
        /// The metadata as sent, and its model (`None` when absent or unreadable).
        metadata_xml: Option<String>,
        metadata: Option<Metadata>,
        /// What the offer and the metadata had that was tolerated (metric labels).
        tolerated: Vec<&'static str>,
        at: Instant,
    },
    /// New metadata (a re-INVITE or UPDATE): the session's state after it.
    Updated { session: u64, request: Request, metadata_xml: String, metadata: Option<Metadata> },
    /// The session ended.
    Ended { session: u64, reason: &'static str, at: Instant },
    /// A recording INVITE was refused.
    Refused { call_id: String, voice_connector_id: Option<String>, status: u16, reason: String },
}

struct Session {
    dialog: (String, String),
    invite: ServerKey,
    /// The latest INVITE answered 2xx and not yet acknowledged: its CSeq number and key.
    awaiting_ack: Option<(u32, ServerKey)>,
    local: IpAddr,
    ports: Vec<u16>,
    /// voicegw's SRTP key per stream (answered in `a=crypto`).
    keys: Vec<Option<MasterKey>>,
    offer: Offer,
    metadata: Option<Metadata>,
    version: u64,
}

/// See the module documentation.
pub struct Srs<P, A> {
    policy: P,
    anchor: A,
    max_sessions: usize,
    next_id: u64,
    sessions: HashMap<u64, Session>,
    invites: HashSet<ServerKey>,
}

/// The metric label of what a metadata document had that was tolerated.
fn metadata_label(t: crate::metadata::Tolerated) -> &'static str {
    use crate::metadata::Tolerated as T;
    match t {
        T::DraftNamespace => "metadata_draft_namespace",
        T::DraftAttributes => "metadata_draft_attributes",
        T::SendRecvInParticipant => "metadata_send_recv_in_participant",
        T::UnknownElements => "metadata_unknown_elements",
        T::MissingId => "metadata_missing_id",
    }
}

impl<P: Admit, A: RecordingAnchor> Srs<P, A> {
    /// A recording server with the gateway's `policy` and media `anchor`, taking at most
    /// `max_sessions` at once; session ids start at `first_id` (the gateway keeps them apart
    /// from the B2BUA's call numbers).
    pub fn new(policy: P, anchor: A, max_sessions: usize, first_id: u64) -> Srs<P, A> {
        Srs {
            policy,
            anchor,
            max_sessions,
            next_id: first_id,
            sessions: HashMap::new(),
            invites: HashSet::new(),
        }
    }

    pub fn active_sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    pub fn anchor_mut(&mut self) -> &mut A {
        &mut self.anchor
    }

    fn flush_media<H: Carries<Self, I>, const I: usize>(&mut self, ep: &mut Endpoint<H>) {
        while let Some(u) = self.anchor.poll_update() {
            ep.media::<Self, I>(u);
        }
    }

    fn refuse<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: &ServerKey,
        req: &Request,
        vc: Option<String>,
        refusal: impl Into<Refusal>,
        now: Instant,
    ) {
        let Refusal { status, reason, challenges } = refusal.into();
        self.invites.remove(key);
        let mut r = response_to(req, status, Some(&ep.new_tag()));
        r.headers
            .push(HeaderName::Warning, format!("399 voicegw \"{}\"", reason.replace('"', "'")));
        for c in challenges {
            r.headers.push(HeaderName::ProxyAuthenticate, c);
        }
        ep.respond(key, &r, now);
        let call_id = req.call_id().unwrap_or_default().to_string();
        ep.emit::<Self, I>(RecordingEvent::Refused {
            call_id,
            voice_connector_id: vc,
            status,
            reason,
        });
    }

    /// The 200 carrying session `id`'s answer.
    fn answer(
        ep: &mut Endpoint<impl sip::endpoint::Host>,
        req: &Request,
        s: &Session,
        peer: &Peer,
    ) -> Response {
        let mut ok = response_to(req, 200, Some(&s.dialog.1));
        let contact = our_contact(peer.transport, ep.local_addr(peer.transport));
        ok.headers.push(HeaderName::Contact, format!("{contact};+sip.srs"));
        ok.headers.push(HeaderName::Server, ep.config().user_agent.clone());
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        let sdp = s.offer.answer(s.local, &s.ports, &s.keys, s.version);
        ok.body = Bytes::from(sdp.to_text());
        ok
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
        let offer = match Offer::read(req.content_type().unwrap_or_default(), &req.body) {
            Ok(o) => o,
            Err(e) => {
                return self.refuse::<H, I>(ep, &key, &req, None, (e.status(), e.to_string()), now)
            }
        };
        let vc = match self.policy.admit(&req, &peer, now) {
            Ok(vc) => vc,
            Err(refusal) => return self.refuse::<H, I>(ep, &key, &req, None, refusal, now),
        };
        if self.sessions.len() >= self.max_sessions {
            let why = (503, "too many recording sessions".to_string());
            return self.refuse::<H, I>(ep, &key, &req, Some(vc), why, now);
        }
        let id = self.next_id;
        self.next_id += 1;
        let transaction_id = ep.new_uuid();
        let call_id = req.call_id().unwrap_or_default().to_string();
        let Opened { local, ports, keys } =
            match self.anchor.open(id, &vc, &transaction_id, &call_id, &offer) {
                Ok(x) => x,
                Err(refusal) => return self.refuse::<H, I>(ep, &key, &req, Some(vc), refusal, now),
            };
        let metadata_xml = offer.metadata.as_ref().map(|m| String::from_utf8_lossy(m).into_owned());
        let mut tolerated: Vec<&'static str> = offer.tolerated.iter().map(|t| t.as_str()).collect();
        // Another recording session of the same Call-ID (a client that records a call again,
        // or forks its recording): a session of its own, with a dialog of its own.
        if self.sessions.values().any(|s| s.dialog.0 == call_id) {
            tolerated.push("second_session_same_call_id");
        }
        let metadata = match offer.metadata.as_deref().map(Metadata::parse) {
            Some(Ok(m)) => {
                tolerated.extend(m.tolerated.iter().map(|t| metadata_label(*t)));
                Some(m)
            }
            Some(Err(_)) => {
                tolerated.push("metadata_unreadable");
                None
            }
            None => None,
        };
        let dialog = (call_id, ep.new_tag());
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let session = Session {
            dialog: dialog.clone(),
            invite: key.clone(),
            awaiting_ack: Some((cseq, key.clone())),
            local,
            ports,
            keys,
            offer,
            metadata: metadata.clone(),
            version: 1,
        };
        let ok = Self::answer(ep, &req, &session, &peer);
        let streams = session.offer.streams.clone();
        self.sessions.insert(id, session);
        ep.insert_dialog::<Self, I>(dialog, id);
        self.flush_media::<H, I>(ep);
        ep.emit::<Self, I>(RecordingEvent::Started {
            session: id,
            transaction_id,
            voice_connector_id: vc,
            invite: req.clone(),
            source: peer,
            streams,
            metadata_xml,
            metadata,
            tolerated,
            at: now,
        });
        ep.respond(&key, &ok, now);
    }

    /// A re-INVITE or UPDATE in session `id`'s dialog.
    fn on_reoffer<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        id: u64,
        key: ServerKey,
        req: Request,
        peer: Peer,
        now: Instant,
    ) {
        let Some(s) = self.sessions.get_mut(&id) else { return };
        if req.body.is_empty() {
            // No offer (an UPDATE refreshing a session timer, an offerless re-INVITE): the
            // current answer stands.
            let ok = Self::answer(ep, &req, s, &peer);
            ep.respond(&key, &ok, now);
            return;
        }
        let offer = match Offer::read(req.content_type().unwrap_or_default(), &req.body) {
            Ok(o) => o,
            Err(e) => {
                let r = response_to(&req, e.status(), None);
                ep.respond(&key, &r, now);
                return;
            }
        };
        if offer.streams.len() != s.offer.streams.len() {
            // The ports were bound for the first offer's streams.
            ep.respond(&key, &response_to(&req, 488, None), now);
            return;
        }
        s.keys = match self.anchor.update(id, &offer) {
            Ok(keys) => keys,
            Err((status, reason)) => {
                let mut r = response_to(&req, status, None);
                r.headers.push(
                    HeaderName::Warning,
                    format!("399 voicegw \"{}\"", reason.replace('"', "'")),
                );
                ep.respond(&key, &r, now);
                return;
            }
        };
        let metadata_xml = offer.metadata.as_ref().map(|m| String::from_utf8_lossy(m).into_owned());
        if let Some(doc) = &offer.metadata {
            if let Ok(update) = Metadata::parse(doc) {
                match &mut s.metadata {
                    Some(state) => state.merge(update),
                    None => s.metadata = Some(update),
                }
            }
        }
        s.version += 1;
        s.offer = offer;
        if req.method == Method::Invite {
            let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
            if let Some((_, old)) = s.awaiting_ack.replace((cseq, key.clone())) {
                self.invites.remove(&old);
            }
            self.invites.insert(key.clone());
        }
        let ok = Self::answer(ep, &req, s, &peer);
        let metadata = s.metadata.clone();
        self.flush_media::<H, I>(ep);
        if let Some(metadata_xml) = metadata_xml {
            ep.emit::<Self, I>(RecordingEvent::Updated {
                session: id,
                request: req.clone(),
                metadata_xml,
                metadata,
            });
        }
        ep.respond(&key, &ok, now);
    }

    fn end<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        id: u64,
        reason: &'static str,
        now: Instant,
    ) {
        if let Some(s) = self.sessions.remove(&id) {
            ep.remove_dialog(&s.dialog);
            self.invites.remove(&s.invite);
            if let Some((_, k)) = &s.awaiting_ack {
                self.invites.remove(k);
            }
            self.anchor.close(id);
            self.flush_media::<H, I>(ep);
            ep.emit::<Self, I>(RecordingEvent::Ended { session: id, reason, at: now });
        }
    }
}

impl<P: Admit, A: RecordingAnchor> Application for Srs<P, A> {
    type Owner = ();
    /// A dialog is a recording session (its id).
    type Dialog = u64;
    type Event = RecordingEvent;
    type Update = A::Update;

    fn on_request<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        req: Request,
        peer: Peer,
        now: Instant,
    ) {
        let to_tag = req.to().ok().and_then(|t| t.tag().map(str::to_string));
        let session = to_tag.as_ref().and_then(|tag| {
            let id = (req.call_id().unwrap_or_default().to_string(), tag.clone());
            ep.dialog::<Self, I>(&id).copied()
        });
        match (&req.method, session) {
            (Method::Invite, None) if to_tag.is_none() => {
                self.on_invite::<H, I>(ep, key, req, peer, now)
            }
            (Method::Invite | Method::Update, Some(id)) => {
                self.on_reoffer::<H, I>(ep, id, key, req, peer, now)
            }
            (Method::Bye, Some(id)) => {
                ep.respond(&key, &response_to(&req, 200, None), now);
                self.end::<H, I>(ep, id, "BYE", now);
            }
            (Method::Cancel, _) => {
                // Recording INVITEs are answered at once: nothing is left to cancel.
                ep.respond(&key, &response_to(&req, 200, None), now);
            }
            (Method::Options | Method::Info, Some(_)) => {
                ep.respond(&key, &response_to(&req, 200, None), now);
            }
            (_, None) if to_tag.is_some() => {
                ep.respond(&key, &response_to(&req, 481, None), now);
            }
            _ => {
                let mut r = response_to(&req, 405, None);
                r.headers
                    .push(HeaderName::Allow, "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO");
                ep.respond(&key, &r, now);
            }
        }
    }

    /// The ACK of an INVITE's 2xx in a session's dialog: the 2xx is no longer retransmitted.
    fn on_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        request: Request,
        _peer: Peer,
        now: Instant,
    ) {
        let Some(tag) = request.to().ok().and_then(|t| t.tag().map(str::to_string)) else {
            return;
        };
        let id = (request.call_id().unwrap_or_default().to_string(), tag);
        let Some(&session) = ep.dialog::<Self, I>(&id) else { return };
        let Some(s) = self.sessions.get_mut(&session) else { return };
        let cseq = request.cseq().map(|c| c.seq).unwrap_or(0);
        if s.awaiting_ack.as_ref().is_some_and(|(n, _)| *n == cseq) {
            if let Some((_, key)) = s.awaiting_ack.take() {
                ep.ack_received(&key, now);
                if key != s.invite {
                    self.invites.remove(&key);
                }
            }
        }
    }

    fn on_no_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        now: Instant,
    ) {
        self.invites.remove(&key);
        let unacknowledged = |s: &Session| s.awaiting_ack.as_ref().is_some_and(|(_, k)| *k == key);
        if let Some(id) = self.sessions.iter().find(|(_, s)| unacknowledged(s)).map(|(id, _)| *id) {
            self.end::<H, I>(ep, id, "no ACK", now);
        }
    }

    fn has_invite(&self, key: &ServerKey) -> bool {
        self.invites.contains(key)
    }
}

#[cfg(test)]
mod tests;
