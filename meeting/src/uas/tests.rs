//! The meeting UAS on an endpoint of its own (`Solo`), in virtual time: room systems dial in,
//! are answered, go through the IVR by SIP INFO or media keys, join, wait, mute, leave.

use std::collections::HashMap;

use sip::endpoint::{EndpointConfig, Output, Solo, Stack};
use sip::message::{Message, ParseLimits};
use sip::transaction::TimerConfig;

use super::*;
use crate::ivr::{MeetingRef, ModeratorRef};

const ROOM: &str = "192.0.2.30:5061";

struct Config {
    allow_udp: bool,
}

impl Directory for Config {
    fn meeting(&self, id: &str) -> Option<MeetingRef> {
        ["1234567890", "5555555555"].contains(&id).then(|| MeetingRef { id: id.into() })
    }
    fn moderator(&self, id: &str) -> Option<ModeratorRef> {
        (id == "5555555555123")
            .then(|| ModeratorRef { meeting_id: "5555555555".into(), passcode: "4321".into() })
    }
}

impl MeetPolicy for Config {
    fn allows(&self, t: Transport) -> bool {
        t == Transport::Tls || self.allow_udp
    }
    fn info(&self, id: &str) -> Option<MeetingInfo> {
        self.meeting(id).map(|m| MeetingInfo {
            moderated: m.id == "5555555555",
            id: m.id,
            max_participants: 10,
        })
    }
    fn ivr(&self) -> IvrConfig {
        IvrConfig::default()
    }
}

/// What the media was asked, as text.
#[derive(Default)]
struct Media {
    queued: Vec<String>,
}

impl MeetingMedia for Media {
    type Update = String;
    fn open(
        &mut self,
        call: u64,
        a: &OfferedAudio,
    ) -> Result<(SocketAddr, Option<MasterKey>), (u16, String)> {
        self.queued.push(format!("open {call} {:?}", a.law));
        Ok(("198.51.100.1:20000".parse().unwrap(), None))
    }
    fn play(&mut self, call: u64, p: Prompt) {
        self.queued.push(format!("play {call} {}", p.name()));
    }
    fn stop_prompts(&mut self, call: u64) {
        self.queued.push(format!("stop {call}"));
    }
    fn bridge(&mut self, call: u64, meeting: &str) {
        self.queued.push(format!("bridge {call} {meeting}"));
    }
    fn set_muted(&mut self, call: u64, muted: bool) {
        self.queued.push(format!("muted {call} {muted}"));
    }
    fn close(&mut self, call: u64) {
        self.queued.push(format!("close {call}"));
    }
    fn poll_update(&mut self) -> Option<String> {
        (!self.queued.is_empty()).then(|| self.queued.remove(0))
    }
}

type Uas = Stack<Solo<MeetingUas<Config, Media>>>;

fn uas(allow_udp: bool) -> Uas {
    let mut local = HashMap::new();
    local.insert(Transport::Udp, "198.51.100.1:5060".parse::<SocketAddr>().unwrap());
    local.insert(Transport::Tls, "198.51.100.1:5061".parse::<SocketAddr>().unwrap());
    let cfg = EndpointConfig {
        timers: TimerConfig::default(),
        limits: ParseLimits::default(),
        local,
        user_agent: "voicegw-test".into(),
        max_transactions: 100,
        seed: [4; 32],
    };
    Stack::of(cfg, Solo(MeetingUas::new(Config { allow_udp }, Media::default(), 10, 1)))
}

fn tls() -> Peer {
    Peer::new(Transport::Tls, ROOM.parse().unwrap())
}

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

const SDP: &str = "v=0\r\no=room 1 1 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 192.0.2.30\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\nm=video 5002 RTP/AVP 96\r\n";

fn invite(user: &str, call_id: &str, transport: &str) -> String {
    let at = if user.is_empty() { String::new() } else { format!("{user}@") };
    format!("INVITE sip:{at}meet.voicegw.local SIP/2.0\r\nVia: SIP/2.0/{transport} {ROOM};branch=z9hG4bK-{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:room@192.0.2.30>;tag=r-{call_id}\r\nTo: <sip:{at}meet.voicegw.local>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:room@{ROOM};transport=tls>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}", SDP.len())
}

fn in_dialog(method: &str, call_id: &str, to_tag: &str, cseq: u32, body: (&str, &str)) -> String {
    let ct =
        if body.0.is_empty() { String::new() } else { format!("Content-Type: {}\r\n", body.0) };
    format!("{method} sip:voicegw@198.51.100.1:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {ROOM};branch=z9hG4bK-{method}-{call_id}-{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:room@192.0.2.30>;tag=r-{call_id}\r\nTo: <sip:meet.voicegw.local>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{ct}Content-Length: {}\r\n\r\n{}", body.1.len(), body.1)
}

#[derive(Debug, Default)]
struct Seen {
    sent: Vec<Message>,
    events: Vec<MeetEvent>,
    media: Vec<String>,
}

fn drain(s: &mut Uas) -> Seen {
    let mut seen = Seen::default();
    while let Some(o) = s.poll_output() {
        match o {
            Output::Transmit { bytes, .. } => seen.sent.push(Message::parse(&bytes).unwrap()),
            Output::Event(e) => seen.events.push(e),
            Output::Media(m) => seen.media.push(m),
        }
    }
    seen
}

/// Dials `user`; returns the 200's To tag.
fn dial(s: &mut Uas, user: &str, call_id: &str, now: Instant) -> (String, Seen) {
    s.handle_bytes(invite(user, call_id, "TLS").as_bytes(), tls(), now);
    let seen = drain(s);
    let ok = seen
        .sent
        .iter()
        .find_map(|m| match m {
            Message::Response(r) if r.status == 200 => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("answered: {seen:?}"));
    let tag = ok.to().unwrap().tag().unwrap().to_string();
    s.handle_bytes(in_dialog("ACK", call_id, &tag, 1, ("", "")).as_bytes(), tls(), now);
    (tag, seen)
}

/// Keys by SIP INFO, one every 300 ms.
fn info_keys(s: &mut Uas, call_id: &str, tag: &str, keys: &str, from_ms: u64) -> Seen {
    let mut all = Seen::default();
    for (i, k) in keys.chars().enumerate() {
        let body = format!("Signal={k}\r\nDuration=160\r\n");
        let msg = in_dialog("INFO", call_id, tag, 10 + i as u32, ("application/dtmf-relay", &body));
        s.handle_bytes(msg.as_bytes(), tls(), at(from_ms + 300 * i as u64));
        let seen = drain(s);
        all.sent.extend(seen.sent);
        all.events.extend(seen.events);
        all.media.extend(seen.media);
    }
    all
}

#[test]
fn a_meeting_id_dialled_over_tls_is_answered_and_joined_and_udp_is_refused() {
    let mut s = uas(false);
    s.handle_bytes(
        invite("1234567890", "udp1", "UDP").as_bytes(),
        Peer::new(Transport::Udp, "192.0.2.30:5060".parse().unwrap()),
        at(0),
    );
    let seen = drain(&mut s);
    let Some(Message::Response(r)) = seen.sent.first() else { panic!("{seen:?}") };
    assert_eq!(r.status, 403);
    assert!(r.headers.get(&HeaderName::Warning).is_some_and(|w| w.contains("TLS only")));

    let (_, seen) = dial(&mut s, "1234567890", "c1", at(0));
    assert_eq!(seen.media, ["open 1 MuLaw", "stop 1", "bridge 1 1234567890"]);
    let Some(Message::Response(ok)) =
        seen.sent.iter().find(|m| matches!(m, Message::Response(r) if r.status == 200))
    else {
        panic!()
    };
    let body = String::from_utf8_lossy(&ok.body);
    assert!(body.contains("m=audio 20000 RTP/AVP 0 101") && body.contains("m=video 0 "), "{body}");
    let kinds: Vec<String> = seen
        .events
        .iter()
        .map(|e| format!("{e:?}").split(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(kinds, ["Answered", "MeetingStarted", "Joined"], "{:?}", seen.events);
    assert_eq!(s.app().0.rooms().participants(), 1);
}

#[test]
fn the_ivr_collects_the_id_by_sip_info_and_the_caller_joins() {
    let mut s = uas(false);
    let (tag, seen) = dial(&mut s, "", "c2", at(0));
    assert_eq!(seen.media, ["open 1 MuLaw", "play 1 enter-meeting-id"]);
    let seen = info_keys(&mut s, "c2", &tag, "1234567890#", 1000);
    assert!(seen.sent.iter().all(|m| matches!(m, Message::Response(r) if r.status == 200)));
    assert_eq!(seen.media, ["stop 1", "stop 1", "bridge 1 1234567890"]);
    let dtmf = seen
        .events
        .iter()
        .filter(|e| matches!(e, MeetEvent::Dtmf { transport: DtmfTransport::SipInfo, .. }))
        .count();
    assert_eq!(dtmf, 11);
    assert!(seen
        .events
        .iter()
        .any(|e| matches!(e, MeetEvent::Joined { call: 1, moderator: false, .. })));
}

#[test]
fn a_moderated_meeting_waits_for_its_moderator_and_keys_from_media_work_too() {
    let mut s = uas(false);
    let (_, seen) = dial(&mut s, "5555555555", "p1", at(0));
    assert!(seen.media.contains(&"play 1 waiting-for-moderator".to_string()), "{:?}", seen.media);
    assert!(seen.events.iter().any(|e| matches!(e, MeetEvent::Waiting { call: 1, .. })));
    let (_, seen) = dial(&mut s, "5555555555123", "m1", at(1000));
    assert_eq!(seen.media, ["open 2 MuLaw", "play 2 enter-moderator-passcode"]);
    // The passcode from the media (RFC 4733 events the gateway read).
    for (i, k) in "4321#".chars().enumerate() {
        let (ep, host) = s.split();
        host.0.digit::<Solo<MeetingUas<Config, Media>>, 0>(
            ep,
            2,
            Digit::from_char(k).unwrap(),
            DtmfTransport::Rfc4733,
            at(2000 + i as u64 * 200),
        );
    }
    let seen = drain(&mut s);
    let bridged: Vec<&String> = seen.media.iter().filter(|m| m.starts_with("bridge")).collect();
    assert_eq!(
        bridged,
        ["bridge 1 5555555555", "bridge 2 5555555555"],
        "the waiting participant with the moderator"
    );
    // *7 from the participant: muted, and told so.
    for k in ['*', '7'] {
        let (ep, host) = s.split();
        host.0.digit::<Solo<MeetingUas<Config, Media>>, 0>(
            ep,
            1,
            Digit::from_char(k).unwrap(),
            DtmfTransport::InBand,
            at(5000),
        );
    }
    assert_eq!(drain(&mut s).media, ["muted 1 true", "play 1 muted"]);
    // *9 from the moderator: everyone in the meeting is told it is recorded; *9 from the
    // participant does nothing (moderators only).
    let key = |s: &mut Uas, call: u64, k: char, ms: u64| {
        let (ep, host) = s.split();
        host.0.digit::<Solo<MeetingUas<Config, Media>>, 0>(
            ep,
            call,
            Digit::from_char(k).unwrap(),
            DtmfTransport::Rfc4733,
            at(ms),
        );
    };
    key(&mut s, 1, '*', 6000);
    key(&mut s, 1, '9', 6100);
    assert!(drain(&mut s).events.iter().all(|e| !matches!(e, MeetEvent::RecordingStarted { .. })));
    key(&mut s, 2, '*', 7000);
    key(&mut s, 2, '9', 7100);
    let seen = drain(&mut s);
    assert_eq!(seen.media, ["play 1 recording-started", "play 2 recording-started"]);
    assert!(seen.events.iter().any(|e| matches!(e, MeetEvent::RecordingStarted { .. })));
}

#[test]
fn a_caller_that_fails_the_ivr_is_told_and_hung_up_and_a_bye_ends_a_meeting() {
    let mut s = uas(false);
    let (tag, _) = dial(&mut s, "", "c3", at(0));
    let seen = info_keys(&mut s, "c3", &tag, "1#1#1#", 1000);
    assert!(seen
        .events
        .iter()
        .any(|e| matches!(e, MeetEvent::IvrFailed { why: Refusal::UnknownMeeting, .. })));
    assert!(seen.media.contains(&"play 1 goodbye".to_string()));
    let due = s.app().0.poll_timeout().expect("the hang-up");
    let (ep, host) = s.split();
    host.0.handle_timeout::<Solo<MeetingUas<Config, Media>>, 0>(ep, due);
    let seen = drain(&mut s);
    assert!(
        matches!(seen.sent.first(), Some(Message::Request(r)) if r.method == Method::Bye),
        "{seen:?}"
    );
    assert!(seen
        .events
        .iter()
        .any(|e| matches!(e, MeetEvent::Ended { call: 1, reason: "hung up by voicegw", .. })));
    assert_eq!(s.app().0.active_calls(), 0);

    let (tag, _) = dial(&mut s, "1234567890", "c4", at(20_000));
    s.handle_bytes(in_dialog("BYE", "c4", &tag, 2, ("", "")).as_bytes(), tls(), at(30_000));
    let seen = drain(&mut s);
    assert!(seen.events.iter().any(|e| matches!(e, MeetEvent::MeetingEnded { .. })), "{seen:?}");
    assert!(seen.media.contains(&"close 2".to_string()));
    assert_eq!((s.app().0.active_calls(), s.app().0.rooms().meetings()), (0, 0));
}
