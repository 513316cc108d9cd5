//! The recording client on an endpoint of its own (`Solo`), in virtual time: what it sends to
//! the recorder, what the recorder answers, what the gateway is told.

use std::collections::HashMap;

use sip::endpoint::{EndpointConfig, Output, Solo, Stack};
use sip::message::{Message, ParseLimits};
use sip::transaction::TimerConfig;
use sip::Transport;

use super::*;

const SRS: &str = "192.0.2.50:5060";

/// Ports 30000 up; what was asked of it, as updates.
#[derive(Default)]
struct Ports {
    queued: Vec<String>,
    refuse: bool,
}

impl ForkAnchor for Ports {
    type Update = String;
    fn open(&mut self, call: u64) -> Result<(IpAddr, [u16; 2]), String> {
        if self.refuse {
            return Err("media ports exhausted".into());
        }
        self.queued.push(format!("open {call}"));
        Ok(("198.51.100.1".parse().unwrap(), [30000, 30002]))
    }
    fn answered(&mut self, call: u64, to: [Option<SocketAddr>; 2]) {
        self.queued.push(format!("answered {call} {to:?}"));
    }
    fn close(&mut self, call: u64) {
        self.queued.push(format!("close {call}"));
    }
    fn poll_update(&mut self) -> Option<String> {
        (!self.queued.is_empty()).then(|| self.queued.remove(0))
    }
}

type Client = Stack<Solo<RecordingClient<Ports>>>;

fn client() -> Client {
    let mut local = HashMap::new();
    local.insert(Transport::Udp, "198.51.100.1:5060".parse::<SocketAddr>().unwrap());
    let cfg = EndpointConfig {
        timers: TimerConfig::default(),
        limits: ParseLimits::default(),
        local,
        user_agent: "voicegw-test".into(),
        max_transactions: 100,
        seed: [6; 32],
    };
    Stack::of(cfg, Solo(RecordingClient::new(Ports::default())))
}

fn target() -> Target {
    Target {
        uri: Uri::parse("sip:recorder@192.0.2.50").unwrap(),
        peer: Peer::new(Transport::Udp, SRS.parse().unwrap()),
    }
}

#[derive(Debug, Default)]
struct Seen {
    sent: Vec<Message>,
    events: Vec<ClientEvent>,
    media: Vec<String>,
}

fn drain(s: &mut Client) -> Seen {
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

fn at(ms: u64) -> Instant {
    Instant::from_origin(std::time::Duration::from_millis(ms))
}

fn start(s: &mut Client, call: u64, now: Instant) -> Request {
    let (ep, host) = s.split();
    host.0.start::<Solo<RecordingClient<Ports>>, 0>(ep, call, &target(), "<recording/>", now);
    let seen = drain(s);
    assert_eq!(seen.media, [format!("open {call}")]);
    let Some(Message::Request(invite)) = seen.sent.into_iter().next() else { panic!("INVITE") };
    invite
}

fn reply(invite: &Request, status: u16, body: &str) -> Vec<u8> {
    let mut r = response_to(invite, status, Some("srs1"));
    r.headers.push(HeaderName::Contact, "<sip:srs@192.0.2.50:5060>");
    if !body.is_empty() {
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = Bytes::from(body.to_string());
    }
    r.to_bytes().to_vec()
}

const ANSWER: &str = "v=0\r\no=srs 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=label:1\r\na=recvonly\r\nm=audio 40002 RTP/AVP 0\r\na=label:2\r\na=recvonly\r\n";

fn srs() -> Peer {
    Peer::new(Transport::Udp, SRS.parse().unwrap())
}

#[test]
fn a_call_is_offered_answered_forked_and_hung_up_with_its_call() {
    let mut s = client();
    let invite = start(&mut s, 7, at(0));
    assert_eq!(invite.headers.get(&HeaderName::parse("Require")), Some("siprec"));
    assert!(invite.headers.get(&HeaderName::Contact).is_some_and(|c| c.ends_with(";+sip.src")));
    let offer = crate::offer::Offer::read(
        invite.headers.get(&HeaderName::ContentType).unwrap(),
        &invite.body,
    )
    .expect("voicegw's own offer reads as a recording session");
    let labels: Vec<&str> = offer.streams.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["1", "2"]);
    assert!(offer.streams.iter().all(|s| s.direction == crate::offer::Direction::SendOnly));
    assert_eq!(offer.metadata.as_deref(), Some(&b"<recording/>"[..]));
    assert!(offer.tolerated.is_empty(), "{:?}", offer.tolerated);

    s.handle_bytes(&reply(&invite, 180, ""), srs(), at(10));
    assert!(drain(&mut s).events.is_empty());
    s.handle_bytes(&reply(&invite, 200, ANSWER), srs(), at(20));
    let seen = drain(&mut s);
    assert_eq!(seen.media, ["answered 7 [Some(192.0.2.50:40000), Some(192.0.2.50:40002)]"]);
    assert_eq!(seen.events, [ClientEvent::Started { call: 7, recorder: SRS.parse().unwrap() }]);
    let Some(Message::Request(ack)) = seen.sent.first() else { panic!("{seen:?}") };
    assert_eq!(
        (ack.method.clone(), ack.uri.to_string()),
        (Method::Ack, "sip:srs@192.0.2.50:5060".into())
    );
    // A retransmitted 2xx is acknowledged again.
    s.handle_bytes(&reply(&invite, 200, ANSWER), srs(), at(600));
    let again = drain(&mut s);
    assert!(
        matches!(again.sent.first(), Some(Message::Request(r)) if r.method == Method::Ack),
        "{again:?}"
    );

    let (ep, host) = s.split();
    host.0.stop::<Solo<RecordingClient<Ports>>, 0>(ep, 7, at(5000));
    let seen = drain(&mut s);
    assert_eq!(seen.media, ["close 7"]);
    assert_eq!(seen.events, [ClientEvent::Ended { call: 7, by_recorder: false }]);
    let Some(Message::Request(bye)) = seen.sent.first() else { panic!("{seen:?}") };
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(s.app().0.active_sessions(), 0);
}

#[test]
fn a_refusal_or_silence_fails_the_session_and_frees_its_ports() {
    let mut s = client();
    let invite = start(&mut s, 1, at(0));
    s.handle_bytes(&reply(&invite, 503, ""), srs(), at(10));
    let seen = drain(&mut s);
    assert_eq!(seen.media, ["close 1"]);
    assert!(
        matches!(
            &seen.events[..],
            [ClientEvent::Failed { call: 1, why: Failure::Status(503), .. }]
        ),
        "{seen:?}"
    );
    // No answer at all: Timer B (64 T1) fails it.
    start(&mut s, 2, at(100));
    for t in (1..80).map(|i| at(100 + i * 500)) {
        s.handle_timeout(t);
    }
    let seen = drain(&mut s);
    assert!(seen.media.contains(&"close 2".to_string()), "{seen:?}");
    assert!(
        seen.events
            .iter()
            .any(|e| matches!(e, ClientEvent::Failed { call: 2, why: Failure::NoAnswer, .. })),
        "{seen:?}"
    );
    assert_eq!(s.app().0.active_sessions(), 0);
    // No ports: failed at once, nothing sent.
    s.app_mut().0.anchor_mut().refuse = true;
    let (ep, host) = s.split();
    host.0.start::<Solo<RecordingClient<Ports>>, 0>(ep, 3, &target(), "<recording/>", at(0));
    let seen = drain(&mut s);
    assert!(seen.sent.is_empty());
    assert!(matches!(
        &seen.events[..],
        [ClientEvent::Failed { call: 3, why: Failure::NoPorts, .. }]
    ));
}

#[test]
fn the_recorders_bye_ends_the_recording_only() {
    let mut s = client();
    let invite = start(&mut s, 4, at(0));
    s.handle_bytes(&reply(&invite, 200, ANSWER), srs(), at(20));
    drain(&mut s);
    let from = invite.headers.get(&HeaderName::From).unwrap();
    let call_id = invite.call_id().unwrap();
    let bye = format!("BYE sip:voicegw@198.51.100.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {SRS};branch=z9hG4bK-srs-bye\r\nFrom: <sip:recorder@192.0.2.50>;tag=srs1\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n");
    s.handle_bytes(bye.as_bytes(), srs(), at(1000));
    let seen = drain(&mut s);
    assert!(matches!(seen.sent.first(), Some(Message::Response(r)) if r.status == 200), "{seen:?}");
    assert_eq!(seen.media, ["close 4"]);
    assert_eq!(seen.events, [ClientEvent::Ended { call: 4, by_recorder: true }]);
    // The call's end later sends nothing more.
    let (ep, host) = s.split();
    host.0.stop::<Solo<RecordingClient<Ports>>, 0>(ep, 4, at(2000));
    assert!(drain(&mut s).sent.is_empty());
}

#[test]
fn a_call_that_ends_while_the_recorder_thinks_is_cancelled_or_hung_up() {
    let mut s = client();
    let invite = start(&mut s, 5, at(0));
    s.handle_bytes(&reply(&invite, 180, ""), srs(), at(10));
    drain(&mut s);
    let (ep, host) = s.split();
    host.0.stop::<Solo<RecordingClient<Ports>>, 0>(ep, 5, at(20));
    let seen = drain(&mut s);
    assert!(
        matches!(seen.sent.first(), Some(Message::Request(r)) if r.method == Method::Cancel),
        "{seen:?}"
    );
    assert_eq!(seen.media, ["close 5"]);
    // The recorder answered anyway: ACK, then BYE; nothing reported as started.
    s.handle_bytes(&reply(&invite, 200, ANSWER), srs(), at(30));
    let seen = drain(&mut s);
    let methods: Vec<Method> = seen
        .sent
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.method.clone()),
            Message::Response(_) => None,
        })
        .collect();
    assert_eq!(methods, [Method::Ack, Method::Bye], "{seen:?}");
    assert!(seen.events.is_empty(), "{seen:?}");
}
