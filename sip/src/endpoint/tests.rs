//! Two applications on one endpoint: the B2BUA and a small UAS that ends calls itself (the shape
//! of a recording server or a meeting), with the gateway's pick by Request-URI host.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;

use super::build::response_to;
use super::*;
use crate::b2bua::{
    App, CallEvent, CoreConfig, Direction, NoAnchor, Route, Router, Target, Verdict,
};
use crate::message::{HeaderName, Message, Method, Request, Uri};
use crate::transaction::TimerConfig;
use crate::{Instant, Peer, Transport};

const A: &str = "127.0.0.1:5090";
const B: &str = "127.0.0.1:5080";

fn peer(s: &str) -> Peer {
    Peer::new(Transport::Udp, s.parse::<SocketAddr>().unwrap())
}

/// Every INVITE goes to B.
struct ToB;

impl Router for ToB {
    fn route(&mut self, invite: &Request, _source: &Peer, _now: Instant) -> Verdict {
        let target = Target {
            peer: peer(B),
            request_uri: Uri::parse(&format!("sip:{}@{B}", invite.uri.user.clone().unwrap()))
                .unwrap(),
            voice_connector_id: "abcdef1ghij2klmno3pqr4".into(),
        };
        Verdict {
            result: Ok(Route::single(target, Direction::Outbound)),
            voice_connector_id: Some("abcdef1ghij2klmno3pqr4".into()),
            direction: Some(Direction::Outbound),
            auth_user: None,
        }
    }
}

/// A UAS that answers INVITEs itself (`ring` only rings, so that it can be cancelled), ACKs,
/// BYEs and CANCELs in its own dialogs and transactions, and reports what it saw.
#[derive(Default)]
struct Answering {
    invites: HashSet<ServerKey>,
    ringing: HashMap<String, (ServerKey, Request)>,
}

impl Application for Answering {
    type Owner = ();
    type Dialog = ();
    type Event = String;
    type Update = Infallible;

    fn on_request<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        req: Request,
        _peer: Peer,
        now: Instant,
    ) {
        let call_id = req.call_id().unwrap().to_string();
        match req.method {
            Method::Invite if req.uri.user.as_deref() == Some("ring") => {
                ep.respond(&key, &response_to(&req, 180, Some("uas")), now);
                self.invites.insert(key.clone());
                self.ringing.insert(call_id, (key, req));
                ep.emit::<Self, I>("ringing".into());
            }
            Method::Invite => {
                let mut ok = response_to(&req, 200, Some("uas"));
                ok.headers.push(HeaderName::Contact, "<sip:uas@127.0.0.1:5060>");
                ep.respond(&key, &ok, now);
                self.invites.insert(key);
                ep.insert_dialog::<Self, I>((call_id, "uas".into()), ());
                ep.emit::<Self, I>("answered".into());
            }
            Method::Bye => {
                assert!(ep.dialog::<Self, I>(&(call_id.clone(), "uas".into())).is_some());
                ep.respond(&key, &response_to(&req, 200, None), now);
                ep.remove_dialog(&(call_id, "uas".into()));
                ep.emit::<Self, I>("ended".into());
            }
            Method::Cancel => {
                ep.respond(&key, &response_to(&req, 200, None), now);
                if let Some((invite, inv)) = self.ringing.remove(&call_id) {
                    ep.respond(&invite, &response_to(&inv, 487, Some("uas")), now);
                }
                ep.emit::<Self, I>("cancelled".into());
            }
            _ => {
                ep.respond(&key, &response_to(&req, 405, None), now);
            }
        }
    }

    fn on_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        _req: Request,
        _peer: Peer,
        _now: Instant,
    ) {
        ep.emit::<Self, I>("confirmed".into());
    }

    fn on_no_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        _key: ServerKey,
        _now: Instant,
    ) {
        ep.emit::<Self, I>("no ack".into());
    }

    fn has_invite(&self, key: &ServerKey) -> bool {
        self.invites.contains(key)
    }
}

/// The gateway's pick: the meet domain is the UAS's, the rest the B2BUA's.
fn by_host(req: &Request, _peer: Peer) -> Which {
    if req.uri.host.starts_with("meet.") {
        Which::Second
    } else {
        Which::First
    }
}

type Both = Pair<App<ToB, NoAnchor>, Answering, fn(&Request, Peer) -> Which>;

fn stack() -> Stack<Both> {
    let mut local = HashMap::new();
    local.insert(Transport::Udp, "127.0.0.1:5060".parse().unwrap());
    let cfg = CoreConfig {
        timers: TimerConfig::default(),
        limits: Default::default(),
        local,
        user_agent: "voicegw-test".into(),
        max_calls: 100,
        seed: [3; 32],
        max_transactions: 100,
    };
    let b2bua = App::new(&cfg, ToB, NoAnchor);
    let by_host: fn(&Request, Peer) -> Which = by_host;
    Stack::of(cfg.endpoint(), Pair { first: b2bua, second: Answering::default(), pick: by_host })
}

type Seen = (Vec<(Peer, Message)>, Vec<Either<CallEvent, String>>);

fn drain(s: &mut Stack<Both>) -> Seen {
    let (mut msgs, mut evs) = (Vec::new(), Vec::new());
    while let Some(o) = s.poll_output() {
        match o {
            Output::Transmit { peer, bytes } => msgs.push((peer, Message::parse(&bytes).unwrap())),
            Output::Event(Either::First(CallEvent::ResponseSent { .. })) => {}
            Output::Event(e) => evs.push(e),
            Output::Media(_) => {}
        }
    }
    (msgs, evs)
}

fn request(method: &str, uri: &str, call_id: &str, to_tag: &str, branch: &str, seq: u32) -> String {
    let to_tag = if to_tag.is_empty() { String::new() } else { format!(";tag={to_tag}") };
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@{A}>;tag=atag\r\nTo: <{uri}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\nContact: <sip:alice@{A}>\r\nContent-Length: 0\r\n\r\n"
    )
}

fn statuses(m: &[(Peer, Message)]) -> Vec<u16> {
    m.iter()
        .filter_map(|(_, x)| match x {
            Message::Response(r) => Some(r.status),
            Message::Request(_) => None,
        })
        .collect()
}

fn second(evs: &[Either<CallEvent, String>]) -> Vec<&str> {
    evs.iter()
        .filter_map(|e| match e {
            Either::Second(s) => Some(s.as_str()),
            Either::First(_) => None,
        })
        .collect()
}

#[test]
fn new_requests_go_to_the_application_the_gateway_picks_and_the_rest_follows_its_dialog() {
    let t = Instant::ZERO;
    let mut s = stack();
    let a = peer(A);

    // To the meet domain: the UAS answers, nothing goes to B.
    let uri = "sip:1234567890@meet.example.com";
    s.handle_bytes(request("INVITE", uri, "m1", "", "z9hG4bKm1", 1).as_bytes(), a, t);
    let (m, ev) = drain(&mut s);
    assert_eq!(statuses(&m), vec![200], "{m:?}");
    assert!(m.iter().all(|(p, _)| *p == a));
    assert_eq!(second(&ev), vec!["answered"]);
    s.handle_bytes(request("ACK", uri, "m1", "uas", "z9hG4bKm1a", 1).as_bytes(), a, t);
    assert_eq!(second(&drain(&mut s).1), vec!["confirmed"]);

    // To a voice connector: the B2BUA relays it to B.
    let vc = "sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local";
    s.handle_bytes(request("INVITE", vc, "c1", "", "z9hG4bKc1", 1).as_bytes(), a, t);
    let (m, ev) = drain(&mut s);
    assert!(
        m.iter().any(|(p, x)| *p == peer(B)
            && matches!(x, Message::Request(r) if r.method == Method::Invite)),
        "{m:?}"
    );
    assert!(matches!(ev.as_slice(), [Either::First(CallEvent::Started { .. })]), "{ev:?}");
    // The B2BUA's operations work on the pair as on the B2BUA alone.
    assert_eq!(s.active_calls(), 1);
    let call = match &ev[0] {
        Either::First(CallEvent::Started { call, .. }) => *call,
        _ => unreachable!(),
    };
    assert!(s.invite_of(call, true).is_some() && !s.is_answered(call));

    // A BYE in the UAS's dialog is the UAS's, whatever its Request-URI.
    s.handle_bytes(
        request("BYE", "sip:uas@127.0.0.1:5060", "m1", "uas", "z9hG4bKm2", 2).as_bytes(),
        a,
        t,
    );
    let (m, ev) = drain(&mut s);
    assert_eq!(statuses(&m), vec![200]);
    assert_eq!(second(&ev), vec!["ended"]);

    // A dialog nobody knows: the first application's 481.
    s.handle_bytes(request("BYE", uri, "m1", "uas", "z9hG4bKm3", 3).as_bytes(), a, t);
    let (m, ev) = drain(&mut s);
    assert_eq!(statuses(&m), vec![481]);
    assert!(ev.is_empty(), "{ev:?}");
}

#[test]
fn a_cancel_goes_to_the_application_that_has_the_invite() {
    let t = Instant::ZERO;
    let mut s = stack();
    let a = peer(A);
    let uri = "sip:ring@meet.example.com";
    s.handle_bytes(request("INVITE", uri, "r1", "", "z9hG4bKr1", 1).as_bytes(), a, t);
    let (m, ev) = drain(&mut s);
    assert_eq!(statuses(&m), vec![180]);
    assert_eq!(second(&ev), vec!["ringing"]);
    s.handle_bytes(request("CANCEL", uri, "r1", "", "z9hG4bKr1", 1).as_bytes(), a, t);
    let (m, ev) = drain(&mut s);
    assert_eq!(statuses(&m), vec![200, 487]);
    assert_eq!(second(&ev), vec!["cancelled"]);

    // A CANCEL for an INVITE nobody has: the B2BUA's 481.
    s.handle_bytes(request("CANCEL", uri, "r2", "", "z9hG4bKr9", 1).as_bytes(), a, t);
    assert_eq!(statuses(&drain(&mut s).0), vec![481]);
}
