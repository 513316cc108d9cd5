//! The recording server on an endpoint of its own (`Solo`), in virtual time: the messages a
//! recording client sends, what it is answered, what the gateway is told.

use std::collections::HashMap;
use std::net::SocketAddr;

use sip::endpoint::{EndpointConfig, Output, Solo, Stack};
use sip::message::{Message, ParseLimits};
use sip::transaction::TimerConfig;
use sip::Transport;

use super::*;

const SRC: &str = "192.0.2.10:5060";
const VC: &str = "abcdef1ghij2klmno3pqr4";

/// Admits what comes from 192.0.2.10, refuses the rest with 403.
struct ByAddress;

impl Admit for ByAddress {
    fn admit(&mut self, req: &Request, source: &Peer, _: Instant) -> Result<String, Refusal> {
        if req.call_id().ok() == Some("challenged")
            && !req.headers.contains(&HeaderName::ProxyAuthorization)
        {
            return Err(Refusal {
                status: 407,
                reason: "credentials required".into(),
                challenges: vec!["Digest realm=\"r\", nonce=\"n\"".into()],
            });
        }
        if source.addr.ip().to_string() == "192.0.2.10" {
            Ok(VC.into())
        } else {
            Err((403, "source not allowed".to_string()).into())
        }
    }
}

/// voicegw's key for a session's SRTP streams (the same for all, in these tests).
fn key(session: u64) -> MasterKey {
    MasterKey { key: [session as u8; 16], salt: [7; 14] }
}

/// Ports from 20000 up; what was asked of it, as updates.
#[derive(Default)]
struct Ports {
    next: u16,
    queued: Vec<String>,
    open: HashMap<u64, usize>,
}

impl RecordingAnchor for Ports {
    type Update = String;
    fn open(
        &mut self,
        session: u64,
        vc: &str,
        _tx: &str,
        call_id: &str,
        offer: &Offer,
    ) -> Result<Opened, (u16, String)> {
        if call_id == "no-ports" {
            return Err((503, "media ports exhausted".into()));
        }
        let ports: Vec<u16> = offer
            .streams
            .iter()
            .map(|_| {
                self.next += 2;
                20000 + self.next
            })
            .collect();
        self.open.insert(session, ports.len());
        self.queued.push(format!("open {session} {vc} {ports:?}"));
        let keys = offer.streams.iter().map(|s| s.crypto.as_ref().map(|_| key(session))).collect();
        Ok(Opened { local: "198.51.100.1".parse().unwrap(), ports, keys })
    }
    fn update(
        &mut self,
        session: u64,
        offer: &Offer,
    ) -> Result<Vec<Option<MasterKey>>, (u16, String)> {
        let from: Vec<String> = offer.streams.iter().map(|s| format!("{:?}", s.from)).collect();
        self.queued.push(format!("update {session} {from:?}"));
        Ok(offer.streams.iter().map(|s| s.crypto.as_ref().map(|_| key(session))).collect())
    }
    fn close(&mut self, session: u64) {
        self.open.remove(&session);
        self.queued.push(format!("close {session}"));
    }
    fn poll_update(&mut self) -> Option<String> {
        (!self.queued.is_empty()).then(|| self.queued.remove(0))
    }
}

type Server = Stack<Solo<Srs<ByAddress, Ports>>>;

fn server(max: usize) -> Server {
    let mut local = HashMap::new();
    local.insert(Transport::Udp, "198.51.100.1:5060".parse::<SocketAddr>().unwrap());
    let cfg = EndpointConfig {
        timers: TimerConfig::default(),
        limits: ParseLimits::default(),
        local,
        user_agent: "voicegw-test".into(),
        max_transactions: 100,
        seed: [5; 32],
    };
    Stack::of(cfg, Solo(Srs::new(ByAddress, Ports::default(), max, 1_000_000)))
}

fn peer(addr: &str) -> Peer {
    Peer::new(Transport::Udp, addr.parse().unwrap())
}

#[derive(Debug, Default)]
struct Seen {
    sent: Vec<Message>,
    events: Vec<RecordingEvent>,
    media: Vec<String>,
    /// The order things came out in: 'm' media, 'e' event, 't' transmit.
    order: String,
}

fn drain(s: &mut Server) -> Seen {
    let mut seen = Seen::default();
    while let Some(o) = s.poll_output() {
        match o {
            Output::Transmit { bytes, .. } => {
                seen.order.push('t');
                seen.sent.push(Message::parse(&bytes).unwrap());
            }
            Output::Event(e) => {
                seen.order.push('e');
                seen.events.push(e);
            }
            Output::Media(m) => {
                seen.order.push('m');
                seen.media.push(m);
            }
        }
    }
    seen
}

fn status(m: &Message) -> u16 {
    match m {
        Message::Response(r) => r.status,
        Message::Request(_) => 0,
    }
}

const SDP: &str = "v=0\r\no=src 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\nm=audio 40002 RTP/AVP 0\r\na=label:2\r\na=sendonly\r\n";

fn meta(mode: &str, name: &str) -> String {
    format!("<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>{mode}</datamode><participant participant_id='p1'><nameID aor='sip:alice@example.com'><name>{name}</name></nameID></participant></recording>")
}

fn invite(call_id: &str, to_tag: &str, cseq: u32, sdp: &str, meta: &str) -> String {
    let body = format!("--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{meta}\r\n--b--\r\n");
    let to_tag = if to_tag.is_empty() { String::new() } else { format!(";tag={to_tag}") };
    format!("INVITE sip:recorder@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bK-{call_id}-{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:src@192.0.2.10>;tag=src1\r\nTo: <sip:recorder@198.51.100.1>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:src@{SRC}>;+sip.src\r\nRequire: siprec\r\nContent-Type: multipart/mixed;boundary=b\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

fn in_dialog(method: &str, call_id: &str, to_tag: &str, cseq: u32) -> String {
    format!("{method} sip:voicegw@198.51.100.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bK-{method}-{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:src@192.0.2.10>;tag=src1\r\nTo: <sip:recorder@198.51.100.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n")
}

fn at(ms: u64) -> Instant {
    Instant::from_origin(std::time::Duration::from_millis(ms))
}

#[test]
fn a_recording_session_is_answered_recvonly_updated_and_ended() {
    let mut s = server(10);
    s.handle_bytes(
        invite("rs1", "", 1, SDP, &meta("complete", "Alice")).as_bytes(),
        peer(SRC),
        at(0),
    );
    let seen = drain(&mut s);
    assert_eq!(seen.order, "met", "the ports before the event, the event before the answer");
    assert_eq!(seen.media, ["open 1000000 abcdef1ghij2klmno3pqr4 [20002, 20004]"]);
    let Message::Response(ok) = &seen.sent[0] else { panic!("a response") };
    assert_eq!(ok.status, 200);
    let body = String::from_utf8_lossy(&ok.body);
    assert!(
        body.contains("m=audio 20002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:1\r\na=recvonly"),
        "{body}"
    );
    assert!(body.contains("m=audio 20004 RTP/AVP 0"), "{body}");
    assert!(ok.headers.get(&HeaderName::Contact).is_some_and(|c| c.contains("+sip.srs")));
    let to_tag = ok.to().unwrap().tag().unwrap().to_string();
    let RecordingEvent::Started {
        session,
        voice_connector_id,
        streams,
        metadata,
        metadata_xml,
        tolerated,
        ..
    } = &seen.events[0]
    else {
        panic!("{:?}", seen.events)
    };
    assert_eq!((*session, voice_connector_id.as_str()), (1_000_000, VC));
    assert_eq!(streams.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), ["1", "2"]);
    assert!(metadata_xml.as_deref().is_some_and(|x| x.contains("Alice")));
    assert_eq!(metadata.as_ref().unwrap().participants[0].name.as_deref(), Some("Alice"));
    assert!(tolerated.is_empty(), "{tolerated:?}");
    assert_eq!(s.app().0.active_sessions(), 1);

    // A re-INVITE with partial metadata (a transfer renames the participant) and new ports.
    let moved = SDP.replace("40000", "41000");
    s.handle_bytes(
        invite("rs1", &to_tag, 2, &moved, &meta("partial", "Carol")).as_bytes(),
        peer(SRC),
        at(1000),
    );
    let seen = drain(&mut s);
    assert_eq!(status(&seen.sent[0]), 200);
    let Message::Response(ok) = &seen.sent[0] else { panic!() };
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio 20002"), "the same ports");
    assert!(seen.media[0].starts_with("update 1000000") && seen.media[0].contains("41000"));
    let RecordingEvent::Updated { metadata, metadata_xml, .. } = &seen.events[0] else {
        panic!("{:?}", seen.events)
    };
    assert!(metadata_xml.contains("Carol"));
    assert_eq!(metadata.as_ref().unwrap().participants[0].name.as_deref(), Some("Carol"), "merged");

    // OPTIONS in the dialog, then BYE.
    s.handle_bytes(in_dialog("OPTIONS", "rs1", &to_tag, 3).as_bytes(), peer(SRC), at(2000));
    assert_eq!(status(&drain(&mut s).sent[0]), 200);
    s.handle_bytes(in_dialog("BYE", "rs1", &to_tag, 4).as_bytes(), peer(SRC), at(3000));
    let seen = drain(&mut s);
    assert_eq!(status(&seen.sent[0]), 200);
    assert_eq!(seen.media, ["close 1000000"]);
    assert!(matches!(
        seen.events[..],
        [RecordingEvent::Ended { session: 1_000_000, reason: "BYE", .. }]
    ));
    assert_eq!(s.app().0.active_sessions(), 0);
    // The dialog is gone: a late BYE gets 481.
    s.handle_bytes(in_dialog("BYE", "rs1", &to_tag, 5).as_bytes(), peer(SRC), at(3100));
    assert_eq!(status(&drain(&mut s).sent[0]), 481);
}

#[test]
fn refusals_carry_the_status_and_the_reason() {
    let mut s = server(1);
    // Not from an allowed source.
    s.handle_bytes(
        invite("r1", "", 1, SDP, &meta("complete", "A")).as_bytes(),
        peer("203.0.113.5:5060"),
        at(0),
    );
    let seen = drain(&mut s);
    assert_eq!(status(&seen.sent[0]), 403);
    assert!(matches!(&seen.events[0], RecordingEvent::Refused { status: 403, .. }));
    // Challenged: the policy's challenges go out with the 407.
    s.handle_bytes(
        invite("challenged", "", 1, SDP, &meta("complete", "A")).as_bytes(),
        peer(SRC),
        at(0),
    );
    let seen = drain(&mut s);
    let Message::Response(r) = &seen.sent[0] else { panic!() };
    assert_eq!(r.status, 407);
    assert_eq!(
        r.headers.get(&HeaderName::ProxyAuthenticate),
        Some("Digest realm=\"r\", nonce=\"n\"")
    );
    // No audio.
    let video = "v=0\r\no=src 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n";
    s.handle_bytes(invite("r2", "", 1, video, &meta("complete", "A")).as_bytes(), peer(SRC), at(0));
    assert_eq!(status(&drain(&mut s).sent[0]), 488);
    // No media ports.
    s.handle_bytes(
        invite("no-ports", "", 1, SDP, &meta("complete", "A")).as_bytes(),
        peer(SRC),
        at(0),
    );
    let seen = drain(&mut s);
    assert_eq!(status(&seen.sent[0]), 503);
    let Message::Response(r) = &seen.sent[0] else { panic!() };
    assert!(r
        .headers
        .get(&HeaderName::Warning)
        .is_some_and(|w| w.contains("media ports exhausted")));
    // The cap: one session at a time.
    s.handle_bytes(invite("ok1", "", 1, SDP, &meta("complete", "A")).as_bytes(), peer(SRC), at(0));
    assert_eq!(status(&drain(&mut s).sent[0]), 200);
    s.handle_bytes(invite("ok2", "", 1, SDP, &meta("complete", "A")).as_bytes(), peer(SRC), at(0));
    assert_eq!(status(&drain(&mut s).sent[0]), 503);
    assert_eq!(s.app().0.active_sessions(), 1);
}

#[test]
fn a_200_never_acknowledged_ends_the_session() {
    let mut s = server(10);
    s.handle_bytes(invite("na", "", 1, SDP, &meta("complete", "A")).as_bytes(), peer(SRC), at(0));
    drain(&mut s);
    // No ACK: after 64*T1 the transaction gives up.
    let mut now = 0;
    let mut ended = false;
    while now < 40_000 && !ended {
        now = s
            .poll_timeout()
            .map_or(now + 1000, |t| t.since_origin().as_millis() as u64)
            .max(now + 1);
        s.handle_timeout(at(now));
        ended = drain(&mut s)
            .events
            .iter()
            .any(|e| matches!(e, RecordingEvent::Ended { reason: "no ACK", .. }));
    }
    assert!(ended, "ended at {now} ms");
    assert_eq!(s.app().0.active_sessions(), 0);
    assert!(s.app().0.anchor.open.is_empty(), "the ports are released");
}

#[test]
fn an_acknowledged_200_is_not_retransmitted_and_the_session_lasts() {
    let mut s = server(10);
    s.handle_bytes(invite("ak", "", 1, SDP, &meta("complete", "A")).as_bytes(), peer(SRC), at(0));
    let seen = drain(&mut s);
    let Message::Response(ok) = &seen.sent[0] else { panic!() };
    let tag = ok.to().unwrap().tag().unwrap().to_string();
    s.handle_bytes(in_dialog("ACK", "ak", &tag, 1).as_bytes(), peer(SRC), at(10));
    drain(&mut s);
    // A re-INVITE, acknowledged too.
    s.handle_bytes(
        invite("ak", &tag, 2, SDP, &meta("partial", "B")).as_bytes(),
        peer(SRC),
        at(1000),
    );
    assert_eq!(status(&drain(&mut s).sent[0]), 200);
    s.handle_bytes(in_dialog("ACK", "ak", &tag, 2).as_bytes(), peer(SRC), at(1010));
    drain(&mut s);
    let mut now = 1010;
    let mut resent = 0;
    while now < 60_000 {
        now = s
            .poll_timeout()
            .map_or(now + 1000, |t| t.since_origin().as_millis() as u64)
            .max(now + 1);
        s.handle_timeout(at(now));
        let seen = drain(&mut s);
        resent += seen.sent.len();
        assert!(seen.events.is_empty(), "{:?}", seen.events);
    }
    assert_eq!(resent, 0, "no 200 retransmitted after its ACK");
    assert_eq!(s.app().0.active_sessions(), 1);
}

#[test]
fn a_second_recording_session_of_the_same_call_id_is_a_session_of_its_own() {
    let mut s = server(10);
    s.handle_bytes(
        invite("twice", "", 1, SDP, &meta("complete", "A")).as_bytes(),
        peer(SRC),
        at(0),
    );
    let first = drain(&mut s);
    s.handle_bytes(
        invite("twice", "", 5, SDP, &meta("complete", "A")).as_bytes(),
        peer(SRC),
        at(10),
    );
    let second = drain(&mut s);
    let tag = |seen: &Seen| {
        let Some(Message::Response(ok)) = seen.sent.first() else { panic!("{seen:?}") };
        assert_eq!(ok.status, 200);
        ok.to().unwrap().tag().unwrap().to_string()
    };
    let (t1, t2) = (tag(&first), tag(&second));
    assert_ne!(t1, t2, "two dialogs");
    let RecordingEvent::Started { tolerated, session, .. } = &second.events[0] else { panic!() };
    assert!(tolerated.contains(&"second_session_same_call_id"), "{tolerated:?}");
    let second_id = *session;
    assert_eq!(s.app().0.active_sessions(), 2);
    // The first one's BYE ends the first one only.
    s.handle_bytes(in_dialog("BYE", "twice", &t1, 2).as_bytes(), peer(SRC), at(20));
    let seen = drain(&mut s);
    assert!(
        matches!(&seen.events[..], [RecordingEvent::Ended { session, .. }] if *session != second_id),
        "{seen:?}"
    );
    assert_eq!(s.app().0.active_sessions(), 1);
}
