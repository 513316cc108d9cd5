//! Call flows through the core with a scripted caller (A) and callee (B), in virtual time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::Instant;

use super::*;
use crate::message::{HeaderName, Message, Method, ParseLimits, Request, Response, Uri};
use crate::transaction::TimerConfig;
use crate::{Peer, Transport};

const A: &str = "127.0.0.1:5090";
const B: &str = "127.0.0.1:5080";

struct FixedRouter;

const C: &str = "127.0.0.1:5070";

impl Router for FixedRouter {
    /// `forbidden` is refused; `failover` goes to B then C; `callerid` sets a caller ID.
    fn route(&mut self, invite: &Request, _source: &Peer, _now: Instant) -> Verdict {
        let user = invite.uri.user.clone().unwrap_or_default();
        let verdict = |result| Verdict {
            result,
            voice_connector_id: Some("abcdef1ghij2klmno3pqr4".into()),
            direction: Some(Direction::Outbound),
            auth_user: None,
        };
        if user == "forbidden" {
            return verdict(Err(Reject::new(403, "source not allowed")));
        }
        let target = |hop: &str, vc: &str| Target {
            peer: peer(hop),
            request_uri: Uri::parse(&format!("sip:{user}@{hop}")).unwrap(),
            voice_connector_id: vc.into(),
        };
        let mut route = Route::single(target(B, "abcdef1ghij2klmno3pqr4"), Direction::Outbound);
        if user == "failover" {
            route.targets.push(target(C, "zyxwvu1ghij2klmno3pqr4"));
        }
        if user == "callerid" {
            route.caller_id = Some("+12065550111".into());
        }
        if user == "trusted" {
            route.customer_asserts_identity = true;
        }
        verdict(Ok(route))
    }
}

fn peer(s: &str) -> Peer {
    Peer::new(Transport::Udp, s.parse::<SocketAddr>().unwrap())
}

fn core() -> B2bua<FixedRouter> {
    let mut local = HashMap::new();
    local.insert(Transport::Udp, "127.0.0.1:5060".parse().unwrap());
    B2bua::new(
        CoreConfig {
            timers: TimerConfig::default(),
            limits: ParseLimits::default(),
            local,
            user_agent: "voicegw-test".into(),
            max_calls: 100_000,
            seed: [1; 32],
            max_transactions: 100_000,
        },
        FixedRouter,
    )
}

/// Everything the core sent, parsed, with the events.
/// (`ResponseSent` events are left out; `responses_sent_are_reported_per_call` checks them.)
fn drain(c: &mut B2bua<FixedRouter>) -> (Vec<(Peer, Message)>, Vec<CallEvent>) {
    let (msgs, evs) = drain_all(c);
    (msgs, evs.into_iter().filter(|e| !matches!(e, CallEvent::ResponseSent { .. })).collect())
}

fn drain_all(c: &mut B2bua<FixedRouter>) -> (Vec<(Peer, Message)>, Vec<CallEvent>) {
    let (mut msgs, mut evs) = (Vec::new(), Vec::new());
    while let Some(o) = c.poll_output() {
        match o {
            Output::Transmit { peer, bytes } => msgs.push((peer, Message::parse(&bytes).unwrap())),
            Output::Event(e) => evs.push(e),
        }
    }
    (msgs, evs)
}

fn invite(user: &str, branch: &str) -> String {
    format!("INVITE sip:{user}@abcdef1ghij2klmno3pqr4.voiceconnector.local SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch={branch}\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:+12065550100@{A}>;tag=atag\r\nTo: <sip:{user}@abcdef1ghij2klmno3pqr4.voiceconnector.local>\r\nCall-ID: call-a\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{A}>\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n")
}

fn req(m: &Message) -> &Request {
    match m {
        Message::Request(r) => r,
        Message::Response(_) => panic!("expected a request, got {m:?}"),
    }
}

fn resp(m: &Message) -> &Response {
    match m {
        Message::Response(r) => r,
        Message::Request(_) => panic!("expected a response, got {m:?}"),
    }
}

/// Builds B's response to the request `r`.
fn answer(r: &Request, status: u16, to_tag: &str) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {status} X\r\n");
    for v in r.headers.get_all(&HeaderName::Via) {
        out += &format!("Via: {v}\r\n");
    }
    out += &format!("From: {}\r\n", r.headers.get(&HeaderName::From).unwrap());
    let to = r.headers.get(&HeaderName::To).unwrap();
    if to.contains("tag=") {
        out += &format!("To: {to}\r\n");
    } else {
        out += &format!("To: {to};tag={to_tag}\r\n");
    }
    out += &format!(
        "Call-ID: {}\r\nCSeq: {}\r\nContact: <sip:bob@{B}>\r\n\r\n",
        r.call_id().unwrap(),
        r.headers.get(&HeaderName::CSeq).unwrap()
    );
    out.into_bytes()
}

/// Sets up an answered, ACKed call; returns B's INVITE and A's view of the 200.
fn established(c: &mut B2bua<FixedRouter>, t: Instant) -> (Request, Response) {
    c.handle_bytes(invite("+12065550101", "z9hG4bKa1").as_bytes(), peer(A), t);
    let (m, _) = drain(c);
    let b_inv = req(&m[1].1).clone();
    c.handle_bytes(&answer(&b_inv, 200, "btag"), peer(B), t);
    let (m, _) = drain(c);
    let ok = resp(&m[0].1).clone();
    let ack = format!("ACK sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKack\r\nFrom: \"Alice\" <sip:+12065550100@{A}>;tag=atag\r\nTo: {}\r\nCall-ID: call-a\r\nCSeq: 1 ACK\r\n\r\n", ok.headers.get(&HeaderName::To).unwrap());
    c.handle_bytes(ack.as_bytes(), peer(A), t);
    let (m, _) = drain(c);
    assert_eq!(m.len(), 1);
    assert_eq!(req(&m[0].1).method, Method::Ack);
    assert_eq!(m[0].0, peer(B));
    (b_inv, ok)
}

#[test]
fn basic_call_relays_trying_ringing_ok_ack_and_caller_bye() {
    let t = Instant::ZERO;
    let mut c = core();
    c.handle_bytes(invite("+12065550101", "z9hG4bKa1").as_bytes(), peer(A), t);
    let (m, ev) = drain(&mut c);
    assert_eq!(m.len(), 2);
    assert_eq!((m[0].0, resp(&m[0].1).status), (peer(A), 100));
    let b_inv = req(&m[1].1).clone();
    assert_eq!(m[1].0, peer(B));
    assert_eq!(b_inv.uri.to_string(), format!("sip:+12065550101@{B}"));
    assert_ne!(b_inv.call_id().unwrap(), "call-a");
    assert_eq!(b_inv.max_forwards(), Some(69));
    assert_eq!(&b_inv.body[..], b"v=0\r\n");
    assert_eq!(b_inv.from().unwrap().display.as_deref(), Some("Alice"));
    assert!(matches!(ev[0], CallEvent::Started { .. }));

    c.handle_bytes(&answer(&b_inv, 100, "btag"), peer(B), t);
    c.handle_bytes(&answer(&b_inv, 180, "btag"), peer(B), t);
    let (m, _) = drain(&mut c);
    assert_eq!(m.len(), 1);
    let ringing = resp(&m[0].1);
    assert_eq!(ringing.status, 180);
    assert_eq!(ringing.call_id().unwrap(), "call-a");
    assert!(ringing.to().unwrap().tag().is_some());

    let mut c = core();
    let (_, ok) = established(&mut c, t);
    assert_eq!(ok.status, 200);
    // Caller hangs up.
    let bye = format!("BYE sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKbye\r\nFrom: <sip:+12065550100@{A}>;tag=atag\r\nTo: {}\r\nCall-ID: call-a\r\nCSeq: 2 BYE\r\n\r\n", ok.headers.get(&HeaderName::To).unwrap());
    c.handle_bytes(bye.as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let b_bye = req(&m[0].1).clone();
    assert_eq!((m[0].0, &b_bye.method), (peer(B), &Method::Bye));
    assert_eq!(b_bye.uri.to_string(), format!("sip:bob@{B}"));
    assert_eq!(b_bye.to().unwrap().tag(), Some("btag"));
    c.handle_bytes(&answer(&b_bye, 200, "btag"), peer(B), t);
    let (m, ev) = drain(&mut c);
    assert_eq!((m[0].0, resp(&m[0].1).status), (peer(A), 200));
    assert_eq!(resp(&m[0].1).cseq().unwrap().to_string(), "2 BYE");
    assert!(matches!(ev[0], CallEvent::Ended { status: 200, .. }));
    assert_eq!(c.active_calls(), 0);
}

#[test]
fn a_second_2xx_from_another_fork_is_acked_and_hung_up() {
    let t = Instant::ZERO;
    let mut c = core();
    let (b_inv, _) = established(&mut c, t);
    c.handle_bytes(&answer(&b_inv, 200, "fork2"), peer(B), t);
    let (m, ev) = drain(&mut c);
    let sent: Vec<(Method, Option<String>)> = m
        .iter()
        .map(|(_, x)| (req(x).method.clone(), req(x).to().unwrap().tag().map(str::to_string)))
        .collect();
    assert_eq!(
        sent,
        vec![(Method::Ack, Some("fork2".into())), (Method::Bye, Some("fork2".into()))]
    );
    assert!(m.iter().all(|(p, _)| *p == peer(B)));
    assert!(ev.is_empty());
    assert_eq!(c.active_calls(), 1, "the first dialog's call goes on");
}

/// A 2xx whose Contact cannot be parsed (found by the stateful fuzz, after a CANCEL that had to
/// wait for a provisional response): the callee is acknowledged and hung up at the address the
/// INVITE went to, the caller gets a failure, and the call ends.
#[test]
fn a_2xx_with_an_unusable_contact_ends_the_call() {
    for cancel_first in [false, true] {
        let t = Instant::ZERO;
        let mut c = core();
        c.handle_bytes(invite("+12065550101", "z9hG4bKu1").as_bytes(), peer(A), t);
        let (m, _) = drain(&mut c);
        let b_inv = req(&m[1].1).clone();
        if cancel_first {
            let cancel = format!("CANCEL sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKu1\r\nFrom: \"Alice\" <sip:+12065550100@{A}>;tag=atag\r\nTo: <sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local>\r\nCall-ID: call-a\r\nCSeq: 1 CANCEL\r\n\r\n");
            c.handle_bytes(cancel.as_bytes(), peer(A), t);
            let (m, _) = drain(&mut c);
            let statuses: Vec<u16> = m.iter().map(|(_, x)| resp(x).status).collect();
            assert_eq!(statuses, vec![200, 487], "{m:?}");
        }
        let ok = String::from_utf8(answer(&b_inv, 200, "btag"))
            .unwrap()
            .replace(&format!("<sip:bob@{B}>"), "<sip:bob@127.0.\x0c.1:5080>");
        c.handle_bytes(ok.as_bytes(), peer(B), t);
        let (m, ev) = drain(&mut c);
        let to_b: Vec<Method> =
            m.iter().filter(|(p, _)| *p == peer(B)).map(|(_, x)| req(x).method.clone()).collect();
        assert_eq!(to_b, vec![Method::Ack, Method::Bye], "{m:?}");
        assert!(m.iter().filter(|(p, _)| *p == peer(B)).all(|(_, x)| req(x).uri == b_inv.uri));
        if !cancel_first {
            let to_a: Vec<u16> =
                m.iter().filter(|(p, _)| *p == peer(A)).map(|(_, x)| resp(x).status).collect();
            assert_eq!(to_a, vec![502], "{m:?}");
        }
        assert!(ev.iter().any(|e| matches!(e, CallEvent::Ended { .. })), "{ev:?}");
        assert_eq!(c.active_calls(), 0);
    }
}

/// The caller's ACK is lost (a loaded machine, UDP): its BYE still ends the call cleanly, the
/// callee getting the ACK for its 2xx before the BYE.
#[test]
fn a_bye_from_the_caller_before_its_ack_acks_the_callee_first() {
    let t = Instant::ZERO;
    let mut c = core();
    c.handle_bytes(invite("+12065550101", "z9hG4bKl1").as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let b_inv = req(&m[1].1).clone();
    c.handle_bytes(&answer(&b_inv, 200, "btag"), peer(B), t);
    let (m, _) = drain(&mut c);
    let ok = resp(&m[0].1).clone();
    let bye = format!("BYE sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKl2\r\nFrom: \"Alice\" <sip:+12065550100@{A}>;tag=atag\r\nTo: {}\r\nCall-ID: call-a\r\nCSeq: 2 BYE\r\n\r\n", ok.headers.get(&HeaderName::To).unwrap());
    c.handle_bytes(bye.as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let to_b: Vec<Method> =
        m.iter().filter(|(p, _)| *p == peer(B)).map(|(_, x)| req(x).method.clone()).collect();
    assert_eq!(to_b, vec![Method::Ack, Method::Bye], "{m:?}");
}

#[test]
fn callee_bye_is_relayed_to_the_caller() {
    let t = Instant::ZERO;
    let mut c = core();
    let (b_inv, _) = established(&mut c, t);
    let bye = format!("BYE sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {B};branch=z9hG4bKbb\r\nFrom: {};tag=btag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\n\r\n", b_inv.headers.get(&HeaderName::To).unwrap(), b_inv.headers.get(&HeaderName::From).unwrap(), b_inv.call_id().unwrap());
    c.handle_bytes(bye.as_bytes(), peer(B), t);
    let (m, _) = drain(&mut c);
    let a_bye = req(&m[0].1).clone();
    assert_eq!((m[0].0, &a_bye.method), (peer(A), &Method::Bye));
    assert_eq!(a_bye.uri.to_string(), format!("sip:alice@{A}"));
    assert_eq!(a_bye.call_id().unwrap(), "call-a");
    assert_eq!(a_bye.to().unwrap().tag(), Some("atag"));
    c.handle_bytes(&answer(&a_bye, 200, "x"), peer(A), t);
    let (m, ev) = drain(&mut c);
    assert_eq!((m[0].0, resp(&m[0].1).status), (peer(B), 200));
    assert!(matches!(ev[0], CallEvent::Ended { .. }));
}

#[test]
fn cancel_before_answer_gives_487_and_cancels_the_callee() {
    let t = Instant::ZERO;
    let mut c = core();
    c.handle_bytes(invite("+12065550101", "z9hG4bKa1").as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let b_inv = req(&m[1].1).clone();
    // CANCEL before any provisional from B: the CANCEL waits for one (§9.1).
    let cancel = format!("CANCEL sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKa1\r\nFrom: \"Alice\" <sip:+12065550100@{A}>;tag=atag\r\nTo: <sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local>\r\nCall-ID: call-a\r\nCSeq: 1 CANCEL\r\n\r\n");
    c.handle_bytes(cancel.as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let statuses: Vec<(u16, String)> = m
        .iter()
        .map(|(_, x)| (resp(x).status, resp(x).cseq().unwrap().method.to_string()))
        .collect();
    assert_eq!(statuses, vec![(200, "CANCEL".into()), (487, "INVITE".into())]);
    c.handle_bytes(&answer(&b_inv, 180, "btag"), peer(B), t);
    let (m, _) = drain(&mut c);
    assert_eq!(m.len(), 1);
    let b_cancel = req(&m[0].1);
    assert_eq!(b_cancel.method, Method::Cancel);
    assert_eq!(b_cancel.top_via().unwrap().branch(), b_inv.top_via().unwrap().branch());
    assert_eq!(b_cancel.cseq().unwrap().seq, 1);
    c.handle_bytes(&answer(b_cancel, 200, "btag"), peer(B), t);
    c.handle_bytes(&answer(&b_inv, 487, "btag"), peer(B), t);
    let (m, ev) = drain(&mut c);
    assert_eq!(m.len(), 1, "only the ACK for B's 487 is sent");
    assert_eq!(req(&m[0].1).method, Method::Ack);
    assert!(matches!(ev[0], CallEvent::Ended { status: 487, .. }));
    // A's ACK for the 487 is absorbed by the server transaction.
    let ack = format!("ACK sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKa1\r\nFrom: <sip:a@a>;tag=atag\r\nTo: <sip:b@b>;tag=x\r\nCall-ID: call-a\r\nCSeq: 1 ACK\r\n\r\n");
    c.handle_bytes(ack.as_bytes(), peer(A), t);
    assert!(drain(&mut c).0.is_empty());
}

#[test]
fn two_hundred_is_retransmitted_until_ack_and_callee_retransmission_is_reacked() {
    let t = Instant::ZERO;
    let mut c = core();
    c.handle_bytes(invite("+12065550101", "z9hG4bKa1").as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let b_inv = req(&m[1].1).clone();
    c.handle_bytes(&answer(&b_inv, 200, "btag"), peer(B), t);
    let (m, _) = drain(&mut c);
    let ok = resp(&m[0].1).clone();
    // No ACK from A: the 200 goes out again after T1, then 2·T1.
    let mut now = t;
    for expected in [500u64, 1500] {
        now = c.poll_timeout().unwrap();
        assert_eq!(now - t, Duration::from_millis(expected));
        c.handle_timeout(now);
        let (m, _) = drain(&mut c);
        assert_eq!(m.len(), 1);
        assert_eq!(resp(&m[0].1).status, 200);
    }
    // B retransmits its 200 before A's ACK: nothing to re-ACK yet.
    c.handle_bytes(&answer(&b_inv, 200, "btag"), peer(B), now);
    assert!(drain(&mut c).0.is_empty());
    let ack = format!("ACK sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKack\r\nFrom: <sip:a@a>;tag=atag\r\nTo: {}\r\nCall-ID: call-a\r\nCSeq: 1 ACK\r\n\r\n", ok.headers.get(&HeaderName::To).unwrap());
    c.handle_bytes(ack.as_bytes(), peer(A), now);
    let (m, _) = drain(&mut c);
    let b_ack = m[0].1.to_bytes();
    // Now a 200 retransmission from B is answered with the same ACK.
    c.handle_bytes(&answer(&b_inv, 200, "btag"), peer(B), now);
    let (m, _) = drain(&mut c);
    assert_eq!(m[0].1.to_bytes(), b_ack);
    // And voicegw stops retransmitting its 200 to A.
    let next = c.poll_timeout().unwrap();
    c.handle_timeout(next);
    assert!(drain(&mut c)
        .0
        .iter()
        .all(|(_, m)| !matches!(m, Message::Response(r) if r.status == 200)));
}

#[test]
fn unanswered_invite_times_out_with_408() {
    let t = Instant::ZERO;
    let mut c = core();
    c.handle_bytes(invite("+12065550101", "z9hG4bKa1").as_bytes(), peer(A), t);
    drain(&mut c);
    let mut retransmits = 0;
    let mut last = Vec::new();
    while let Some(at) = c.poll_timeout() {
        if at - t > Duration::from_secs(40) {
            break;
        }
        c.handle_timeout(at);
        let (m, ev) = drain(&mut c);
        retransmits += m.iter().filter(|(p, _)| *p == peer(B)).count();
        last.extend(m.into_iter().filter(|(p, _)| *p == peer(A)).map(|(_, m)| resp(&m).status));
        if !ev.is_empty() {
            assert!(matches!(ev[0], CallEvent::Ended { status: 408, .. }));
        }
    }
    assert_eq!(retransmits, 6);
    assert_eq!(last.first(), Some(&408));
    assert_eq!(c.active_calls(), 0);
}

#[test]
fn local_answers_options_501_481_483_403_and_400() {
    let t = Instant::ZERO;
    let mut c = core();
    let mk = |m: &str, extra: &str| {
        format!("{m} sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bK{m}\r\nFrom: <sip:a@a>;tag=1\r\nTo: <sip:b@b>{extra}\r\nCall-ID: x\r\nCSeq: 1 {m}\r\nMax-Forwards: 70\r\n\r\n")
    };
    let status = |c: &mut B2bua<FixedRouter>, s: String| {
        c.handle_bytes(s.as_bytes(), peer(A), t);
        let (m, _) = drain(c);
        resp(&m.last().unwrap().1).clone()
    };
    let ok = status(&mut c, mk("OPTIONS", ""));
    assert_eq!(ok.status, 200);
    assert!(ok.headers.get(&HeaderName::Allow).unwrap().contains("INVITE"));
    assert_eq!(status(&mut c, mk("SUBSCRIBE", "")).status, 501);
    assert_eq!(status(&mut c, mk("FOO", "")).status, 501);
    assert_eq!(status(&mut c, mk("BYE", ";tag=unknown")).status, 481);
    assert_eq!(status(&mut c, mk("BYE", "")).status, 481);
    let looped = invite("+12065550101", "z9hG4bKmf").replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(status(&mut c, looped).status, 483);
    let forbidden = invite("forbidden", "z9hG4bKfb");
    let r = status(&mut c, forbidden);
    assert_eq!(r.status, 403);
    assert!(r.headers.get(&HeaderName::Warning).unwrap().contains("source not allowed"));
    let bad = invite("+1", "z9hG4bKbad").replace("CSeq: 1 INVITE", "CSeq: one INVITE");
    let r = status(&mut c, bad);
    assert_eq!(r.status, 400);
    assert!(r.headers.get(&HeaderName::Warning).unwrap().contains("CSeq"));
    // Garbage that cannot be answered is dropped and counted.
    c.handle_bytes(b"\x16\x03\x01garbage", peer(A), t);
    assert!(drain(&mut c).0.is_empty());
    assert_eq!(c.stats().dropped, 1);
    assert_eq!(c.stats().bad_requests, 1);
}

/// Requests missing a mandatory header get a 400 naming it, another SIP version gets 505, and a
/// bare CR inside a header value (header injection) is refused, never relayed.
#[test]
fn malformed_requests_are_answered_not_dropped() {
    let t = Instant::ZERO;
    let mut c = core();
    let answers = |c: &mut B2bua<FixedRouter>, s: &str| {
        c.handle_bytes(s.as_bytes(), peer(A), t);
        let (m, _) = drain(c);
        m.into_iter().map(|(p, m)| (p, resp(&m).clone())).collect::<Vec<_>>()
    };
    let full = invite("+12065550101", "z9hG4bKmh");
    for (header, line) in [
        ("Via", format!("Via: SIP/2.0/UDP {A};branch=z9hG4bKmh\r\n")),
        ("CSeq", "CSeq: 1 INVITE\r\n".to_string()),
        ("Call-ID", "Call-ID: call-a\r\n".to_string()),
        ("From", format!("From: \"Alice\" <sip:+12065550100@{A}>;tag=atag\r\n")),
        (
            "To",
            "To: <sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local>\r\n".to_string(),
        ),
    ] {
        let m = full.replace(&line, "");
        assert_ne!(m, full, "{header} not removed");
        let r = answers(&mut c, &m);
        assert_eq!(r.len(), 1, "missing {header}: {r:?}");
        assert_eq!((r[0].0, r[0].1.status), (peer(A), 400), "missing {header}");
        let warning = r[0].1.headers.get(&HeaderName::Warning).unwrap();
        assert!(warning.contains(header), "missing {header}: {warning}");
    }
    let v7 = full.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
    let r = answers(&mut c, &v7);
    assert_eq!(r[0].1.status, 505);
    assert_eq!(r[0].1.call_id().unwrap(), "call-a");
    let injected =
        full.replace("Max-Forwards: 70", "Subject: hi\rP-Asserted-Identity: <sip:911@x>");
    let r = answers(&mut c, &injected);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].1.status, 400);
    assert!(r[0].1.headers.get(&HeaderName::Warning).unwrap().contains("control character"));
    // An ACK is never answered, even when malformed.
    assert!(answers(&mut c, &full.replace("CSeq: 1 INVITE", "").replace("INVITE sip", "ACK sip"))
        .is_empty());
    assert_eq!(c.active_calls(), 0);
}

/// Relayed requests still pending when the call ends are answered (487 for a re-INVITE, 481
/// otherwise) and their transactions freed, not left open for ever.
#[test]
fn requests_pending_when_the_call_ends_are_answered() {
    let t = Instant::ZERO;
    let mut c = core();
    let (b_inv, ok) = established(&mut c, t);
    let to = ok.headers.get(&HeaderName::To).unwrap().to_string();
    let in_dialog = |method: &str, cseq: u32, branch: &str| {
        format!("{method} sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch={branch}\r\nFrom: <sip:a@a>;tag=atag\r\nTo: {to}\r\nCall-ID: call-a\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@{A}>\r\n\r\n")
    };
    // A sends INFO and a re-INVITE; B never answers either.
    c.handle_bytes(in_dialog("INFO", 2, "z9hG4bKinfo").as_bytes(), peer(A), t);
    c.handle_bytes(in_dialog("INVITE", 3, "z9hG4bKreinv").as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    assert_eq!(m.iter().filter(|(p, _)| *p == peer(B)).count(), 2, "{m:?}");
    // B hangs up.
    let bye = format!("BYE sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {B};branch=z9hG4bKbbye\r\nFrom: {};tag=btag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 9 BYE\r\n\r\n", b_inv.headers.get(&HeaderName::To).unwrap(), b_inv.headers.get(&HeaderName::From).unwrap(), b_inv.call_id().unwrap());
    c.handle_bytes(bye.as_bytes(), peer(B), t);
    let (m, _) = drain(&mut c);
    let a_bye = m.iter().find(|(p, m)| *p == peer(A) && matches!(m, Message::Request(_))).unwrap();
    c.handle_bytes(&answer(req(&a_bye.1), 200, "atag"), peer(A), t);
    let (m, ev) = drain(&mut c);
    assert!(ev.iter().any(|e| matches!(e, CallEvent::Ended { .. })), "{ev:?}");
    let mut to_a: Vec<(u16, String)> = m
        .iter()
        .filter(|(p, m)| *p == peer(A) && matches!(m, Message::Response(_)))
        .map(|(_, m)| (resp(m).status, resp(m).cseq().unwrap().method.as_str().to_string()))
        .collect();
    to_a.sort();
    assert_eq!(to_a, vec![(481, "INFO".to_string()), (487, "INVITE".to_string())]);
    // Every transaction ends once its timers ran out.
    let end = t + Duration::from_secs(120);
    while let Some(at) = c.poll_timeout() {
        if at > end {
            break;
        }
        c.handle_timeout(at);
        drain(&mut c);
    }
    assert_eq!(c.transactions(), (0, 0));
    assert!(c.is_idle());
}

/// A flood of OPTIONS cannot grow the transaction table past its cap: the excess gets a
/// stateless 503, and a call in progress can still end.
#[test]
fn transaction_table_is_capped_under_a_flood() {
    let t = Instant::ZERO;
    let mut c = core();
    c.ep.layer.set_max_server(50);
    let (b_inv, _ok) = established(&mut c, t);
    let mut refused = 0;
    for i in 0..2000 {
        let o = format!("OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKo{i}\r\nFrom: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: flood{i}\r\nCSeq: 1 OPTIONS\r\n\r\n");
        c.handle_bytes(o.as_bytes(), peer(A), t);
        let (m, _) = drain(&mut c);
        if resp(&m[0].1).status == 503 {
            assert!(resp(&m[0].1).headers.contains(&HeaderName::RetryAfter));
            refused += 1;
        }
    }
    assert!(c.transactions().1 <= 50, "{:?}", c.transactions());
    assert_eq!(refused, 2000 - 49, "the INVITE's transaction holds one place");
    assert_eq!(c.stats().overloaded, refused);
    // The callee's BYE (in dialog) still goes through.
    let bye = format!("BYE sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {B};branch=z9hG4bKfbye\r\nFrom: {};tag=btag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 9 BYE\r\n\r\n", b_inv.headers.get(&HeaderName::To).unwrap(), b_inv.headers.get(&HeaderName::From).unwrap(), b_inv.call_id().unwrap());
    c.handle_bytes(bye.as_bytes(), peer(B), t);
    let (m, _) = drain(&mut c);
    assert!(
        m.iter()
            .any(|(p, m)| *p == peer(A)
                && matches!(m, Message::Request(r) if r.method == Method::Bye)),
        "{m:?}"
    );
}

/// RFC 3325: the customer's identity headers reach the carrier only when its voice connector
/// trusts it; the carrier's reach the customer.
#[test]
fn identity_headers_cross_only_from_a_trusted_leg() {
    let t = Instant::ZERO;
    for (user, relayed) in [("+12065550101", false), ("trusted", true)] {
        let mut c = core();
        let inv = invite(user, "z9hG4bKpai").replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nP-Asserted-Identity: <sip:+18005551212@x>\r\nRemote-Party-ID: <sip:911@x>;party=calling\r\nP-Preferred-Identity: <sip:boss@x>\r\n",
        );
        c.handle_bytes(inv.as_bytes(), peer(A), t);
        let (m, _) = drain(&mut c);
        let b_inv = req(&m[1].1).clone();
        for h in ["P-Asserted-Identity", "Remote-Party-ID", "P-Preferred-Identity"] {
            assert_eq!(b_inv.headers.contains(&HeaderName::parse(h)), relayed, "{user}: {h}");
        }
        // The carrier's asserted identity in its 200 reaches the customer.
        let ok = String::from_utf8(answer(&b_inv, 200, "btag")).unwrap().replacen(
            "\r\n",
            "\r\nP-Asserted-Identity: <sip:+12065550101@carrier>\r\n",
            1,
        );
        c.handle_bytes(ok.as_bytes(), peer(B), t);
        let (m, _) = drain(&mut c);
        let to_a = resp(&m[0].1);
        assert_eq!(
            to_a.headers.get(&HeaderName::parse("P-Asserted-Identity")),
            Some("<sip:+12065550101@carrier>")
        );
    }
}

/// After a crash, a new core ends both legs of a journaled call with the BYEs the old one made.
#[test]
fn recovery_byes_end_both_legs_from_a_new_core() {
    let t = Instant::ZERO;
    let mut c = core();
    let (b_inv, ok) = established(&mut c, t);
    let byes = c.recovery_byes(1);
    assert_eq!(byes.len(), 2);
    let mut fresh = core();
    for (p, bye) in &byes {
        // Through text, as the journal keeps them.
        let Message::Request(r) = Message::parse(&bye.to_bytes()).unwrap() else { panic!() };
        fresh.send_recovery_bye(*p, r, t);
    }
    let (m, _) = drain(&mut fresh);
    assert_eq!(m.len(), 2);
    let to_a = m.iter().find(|(p, _)| *p == peer(A)).map(|(_, m)| req(m).clone()).unwrap();
    let to_b = m.iter().find(|(p, _)| *p == peer(B)).map(|(_, m)| req(m).clone()).unwrap();
    assert_eq!(to_a.method, Method::Bye);
    assert_eq!(to_a.call_id().unwrap(), "call-a");
    assert_eq!(to_a.to().unwrap().tag(), Some("atag"));
    assert_eq!(to_a.from().unwrap().tag(), ok.to().unwrap().tag());
    assert_eq!(to_b.call_id().unwrap(), b_inv.call_id().unwrap());
    assert_eq!(to_b.to().unwrap().tag(), Some("btag"));
    assert!(to_b.cseq().unwrap().seq > 1000);
    // The peers answer; nothing is left behind.
    fresh.handle_bytes(&answer(&to_a, 200, "atag"), peer(A), t);
    fresh.handle_bytes(&answer(&to_b, 200, "btag"), peer(B), t);
    let end = t + Duration::from_secs(60);
    while let Some(at) = fresh.poll_timeout() {
        if at > end {
            break;
        }
        fresh.handle_timeout(at);
        drain(&mut fresh);
    }
    assert_eq!(fresh.transactions(), (0, 0));
}

#[test]
fn reinvite_and_its_ack_are_relayed() {
    let t = Instant::ZERO;
    let mut c = core();
    let (b_inv, ok) = established(&mut c, t);
    let reinv = format!("INVITE sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKre\r\nFrom: <sip:a@a>;tag=atag\r\nTo: {}\r\nCall-ID: call-a\r\nCSeq: 2 INVITE\r\nContact: <sip:alice@{A}>\r\nContent-Type: application/sdp\r\n\r\nv=0\r\na=sendonly\r\n", ok.headers.get(&HeaderName::To).unwrap());
    c.handle_bytes(reinv.as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let statuses: Vec<u16> = m
        .iter()
        .filter(|(_, m)| matches!(m, Message::Response(_)))
        .map(|(_, m)| resp(m).status)
        .collect();
    assert_eq!(statuses, vec![]);
    let b_re = req(&m.last().unwrap().1).clone();
    assert_eq!(b_re.method, Method::Invite);
    assert_eq!(b_re.call_id().unwrap(), b_inv.call_id().unwrap());
    assert_eq!(b_re.cseq().unwrap().seq, 2);
    assert!(b_re.body.ends_with(b"a=sendonly\r\n"));
    c.handle_bytes(&answer(&b_re, 200, "btag"), peer(B), t);
    let (m, _) = drain(&mut c);
    assert_eq!(resp(&m[0].1).status, 200);
    assert_eq!(resp(&m[0].1).cseq().unwrap().seq, 2);
    let ack = format!("ACK sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKack2\r\nFrom: <sip:a@a>;tag=atag\r\nTo: {}\r\nCall-ID: call-a\r\nCSeq: 2 ACK\r\n\r\n", ok.headers.get(&HeaderName::To).unwrap());
    c.handle_bytes(ack.as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    assert_eq!(req(&m[0].1).method, Method::Ack);
    assert_eq!(req(&m[0].1).cseq().unwrap().seq, 2);
    // An UPDATE from B is relayed to A with A's dialog identifiers.
    let update = format!("UPDATE sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {B};branch=z9hG4bKup\r\nFrom: {};tag=btag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 UPDATE\r\nContact: <sip:bob@{B}>\r\n\r\n", b_inv.headers.get(&HeaderName::To).unwrap(), b_inv.headers.get(&HeaderName::From).unwrap(), b_inv.call_id().unwrap());
    c.handle_bytes(update.as_bytes(), peer(B), t);
    let (m, _) = drain(&mut c);
    assert_eq!((m[0].0, &req(&m[0].1).method), (peer(A), &Method::Update));
    assert_eq!(req(&m[0].1).call_id().unwrap(), "call-a");
}

#[test]
fn draining_refuses_new_calls() {
    let t = Instant::ZERO;
    let mut c = core();
    c.drain();
    c.handle_bytes(invite("+12065550101", "z9hG4bKa1").as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let r = resp(&m[0].1);
    assert_eq!(r.status, 503);
    assert!(r.headers.contains(&HeaderName::RetryAfter));
    assert!(c.is_idle() || c.transactions().1 == 1);
}

#[test]
fn refusing_new_calls_is_lifted_again() {
    let t = Instant::ZERO;
    let mut c = core();
    c.refuse_new_calls(Some("call records cannot be written"));
    c.handle_bytes(invite("+12065550101", "z9hG4bKr1").as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let r = resp(&m[0].1);
    assert_eq!(r.status, 503);
    assert!(r.headers.get(&HeaderName::Warning).is_some_and(|w| w.contains("call records")));
    assert!(r.headers.contains(&HeaderName::RetryAfter));
    c.refuse_new_calls(None);
    let mut i = invite("+12065550101", "z9hG4bKr2");
    i = i.replace("call-a", "call-r2");
    c.handle_bytes(i.as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    assert!(m.iter().any(|(p, b)| *p == peer(B) && req(b).method == Method::Invite), "{m:?}");
}

/// Mutated and truncated messages (a seeded, bounded fuzz): the core never panics, and every
/// call it accepted can still be completed or times out cleanly.
#[test]
fn mutated_input_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let samples = [
        invite("+12065550101", "z9hG4bKf1"),
        format!("BYE sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKfb\r\nFrom: <sip:a@a>;tag=atag\r\nTo: <sip:b@b>;tag=x\r\nCall-ID: call-a\r\nCSeq: 2 BYE\r\n\r\n"),
        format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKzz\r\nFrom: <sip:a@a>;tag=1\r\nTo: <sip:b@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContact: <sip:b@{B}>\r\n\r\n"),
        format!("CANCEL sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKf1\r\nFrom: <sip:a@a>;tag=atag\r\nTo: <sip:x@y>\r\nCall-ID: call-a\r\nCSeq: 1 CANCEL\r\n\r\n"),
    ];
    let t = Instant::ZERO;
    let mut c = core();
    let mut started = 0;
    for i in 0..20_000u32 {
        let mut m = samples[i as usize % samples.len()].clone().into_bytes();
        for _ in 0..rng.gen_range(1..6) {
            if m.is_empty() {
                break;
            }
            let pos = rng.gen_range(0..m.len());
            match rng.gen_range(0..4) {
                0 => m[pos] = rng.gen(),
                1 => m.truncate(pos),
                2 => m.insert(pos, b"\r\n:;<>\",@ "[rng.gen_range(0..10)]),
                _ => {
                    m.remove(pos);
                }
            }
        }
        let from = if i % 2 == 0 { peer(A) } else { peer(B) };
        let now = t + Duration::from_millis(u64::from(i));
        c.handle_bytes(&m, from, now);
        c.handle_timeout(now);
        while let Some(o) = c.poll_output() {
            started += usize::from(matches!(o, Output::Event(CallEvent::Started { .. })));
        }
    }
    // The mutations leave many messages valid: the fuzz must have exercised real calls.
    assert!(started > 100, "only {started} calls started");
    assert!(c.stats().bad_requests > 100 && c.stats().dropped > 100, "{:?}", c.stats());
    // Let every timer run out: all calls end, nothing is left behind.
    let end = t + Duration::from_secs(600);
    while let Some(at) = c.poll_timeout() {
        if at > end {
            break;
        }
        c.handle_timeout(at);
        while c.poll_output().is_some() {}
    }
    assert_eq!(c.active_calls(), 0);
    assert_eq!(c.transactions(), (0, 0));
}

/// An anchor that tags bodies with the side they came from and records opens and closes.
#[derive(Default)]
struct TagAnchor {
    log: Vec<String>,
    refuse_open: bool,
    /// The log again, as updates for the output queue.
    updates: std::collections::VecDeque<String>,
}

impl TagAnchor {
    fn note(&mut self, what: String) {
        self.updates.push_back(what.clone());
        self.log.push(what);
    }
}

impl Anchor for TagAnchor {
    type Update = String;

    fn poll_update(&mut self) -> Option<String> {
        self.updates.pop_front()
    }

    fn open(&mut self, call: u64, _: &str, route: &Route, _: &Request) -> Result<(), Reject> {
        self.note(format!("open {call} {}", route.first().voice_connector_id));
        if self.refuse_open {
            let mut r = Reject::new(503, "no media ports");
            r.retry_after = Some(1);
            return Err(r);
        }
        Ok(())
    }
    fn rewrite(
        &mut self,
        call: u64,
        from: Side,
        ct: &str,
        body: &bytes::Bytes,
    ) -> Result<bytes::Bytes, Reject> {
        if body.starts_with(b"unrelayable") {
            return Err(Reject::new(488, "no audio"));
        }
        self.note(format!("rewrite {call} {from:?} {ct}"));
        Ok(bytes::Bytes::from(format!("{}from-{from:?}\r\n", String::from_utf8_lossy(body))))
    }
    fn close(&mut self, call: u64) {
        self.note(format!("close {call}"));
    }
}

fn anchored(anchor: TagAnchor) -> B2bua<FixedRouter, TagAnchor> {
    let mut local = HashMap::new();
    local.insert(Transport::Udp, "127.0.0.1:5060".parse().unwrap());
    B2bua::with_anchor(
        CoreConfig {
            timers: TimerConfig::default(),
            limits: ParseLimits::default(),
            local,
            user_agent: "t".into(),
            max_calls: 10,
            seed: [1; 32],
            max_transactions: 100_000,
        },
        FixedRouter,
        anchor,
    )
}

fn drain_any<M: Anchor>(c: &mut B2bua<FixedRouter, M>) -> Vec<(Peer, Message)> {
    let mut out = Vec::new();
    while let Some(o) = c.poll_output() {
        if let Output::Transmit { peer, bytes } = o {
            out.push((peer, Message::parse(&bytes).unwrap()));
        }
    }
    out
}

/// Media updates leave in the output queue in the order they were made: before the message
/// whose SDP they were made for, after what was sent before them, and the call's close before
/// its `Ended` event.
#[test]
fn media_updates_come_out_in_order_with_the_messages() {
    let t = Instant::ZERO;
    let mut c = anchored(TagAnchor::default());
    c.handle_bytes(invite("+12065550101", "z9hG4bKo1").as_bytes(), peer(A), t);
    let mut seen = Vec::new();
    let collect = |c: &mut B2bua<FixedRouter, TagAnchor>, seen: &mut Vec<String>| {
        while let Some(o) = c.poll_output() {
            seen.push(match o {
                Output::Transmit { peer: p, bytes } => match Message::parse(&bytes).unwrap() {
                    Message::Request(r) => format!("{:?} to {}", r.method, p.addr),
                    Message::Response(r) => format!("{} to {}", r.status, p.addr),
                },
                Output::Event(e) => {
                    format!("event {}", format!("{e:?}").split([' ', '{']).next().unwrap())
                }
                Output::Media(u) => u,
            });
        }
    };
    collect(&mut c, &mut seen);
    let b_inv_at = seen.iter().position(|s| s.starts_with("Invite to")).unwrap();
    let rewrite_at = seen.iter().position(|s| s.starts_with("rewrite 1 A")).unwrap();
    let open_at = seen.iter().position(|s| s.starts_with("open 1")).unwrap();
    let trying_at = seen.iter().position(|s| s.starts_with("100 to")).unwrap();
    assert!(open_at < rewrite_at && rewrite_at < b_inv_at, "{seen:?}");
    assert!(trying_at < open_at, "the 100 was sent before the anchor was asked: {seen:?}");
    seen.clear();
    c.hang_up(1, "test", t);
    // Nobody answers the outbound INVITE: the call ends when its transaction times out.
    for secs in [1, 5, 33, 40, 70] {
        c.handle_timeout(t + std::time::Duration::from_secs(secs));
        collect(&mut c, &mut seen);
    }
    let close_at = seen.iter().position(|s| s == "close 1");
    let ended_at = seen.iter().position(|s| s == "event Ended");
    assert!(close_at.is_some() && close_at < ended_at, "{seen:?}");
}

#[test]
fn sdp_bodies_go_through_the_anchor_both_ways_and_media_is_released() {
    let t = Instant::ZERO;
    let mut c = anchored(TagAnchor::default());
    c.handle_bytes(invite("+12065550101", "z9hG4bKm1").as_bytes(), peer(A), t);
    let m = drain_any(&mut c);
    let b_inv = req(&m[1].1).clone();
    assert_eq!(&b_inv.body[..], b"v=0\r\nfrom-A\r\n");
    let mut ok = answer(&b_inv, 200, "btag");
    ok.truncate(ok.len() - 2);
    let ok = [ok, b"Content-Type: application/sdp\r\n\r\nv=0\r\n".to_vec()].concat();
    c.handle_bytes(&ok, peer(B), t);
    let m = drain_any(&mut c);
    assert_eq!(&resp(&m[0].1).body[..], b"v=0\r\nfrom-B\r\n");
    let bye = format!("BYE sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKmb\r\nFrom: <sip:a@a>;tag=atag\r\nTo: {}\r\nCall-ID: call-a\r\nCSeq: 2 BYE\r\n\r\n", resp(&m[0].1).headers.get(&HeaderName::To).unwrap());
    c.handle_bytes(bye.as_bytes(), peer(A), t);
    let m = drain_any(&mut c);
    // The caller never ACKed: the callee gets its ACK first, then the BYE.
    let bye_b = m.iter().map(|(_, x)| req(x)).find(|r| r.method == Method::Bye).unwrap();
    c.handle_bytes(&answer(bye_b, 200, "btag"), peer(B), t);
    drain_any(&mut c);
    assert_eq!(
        c.anchor_mut().log,
        vec![
            "open 1 abcdef1ghij2klmno3pqr4",
            "rewrite 1 A application/sdp",
            "rewrite 1 B application/sdp",
            "close 1"
        ]
    );
}

#[test]
fn unrelayable_offer_gets_488_and_exhaustion_503() {
    let t = Instant::ZERO;
    let mut c = anchored(TagAnchor::default());
    let inv =
        invite("+12065550101", "z9hG4bKu1").replace("\r\n\r\nv=0\r\n", "\r\n\r\nunrelayable\r\n");
    c.handle_bytes(inv.as_bytes(), peer(A), t);
    let m = drain_any(&mut c);
    let last = resp(&m.last().unwrap().1);
    assert_eq!(last.status, 488);
    assert!(last.headers.get(&HeaderName::Warning).unwrap().contains("no audio"));
    assert_eq!(c.anchor_mut().log.last().map(String::as_str), Some("close 1"));
    assert!(m.iter().all(|(p, _)| *p == peer(A)), "nothing may reach the callee");

    let mut c = anchored(TagAnchor { refuse_open: true, ..TagAnchor::default() });
    c.handle_bytes(invite("+12065550101", "z9hG4bKu2").as_bytes(), peer(A), t);
    let m = drain_any(&mut c);
    let last = resp(&m.last().unwrap().1);
    assert_eq!(last.status, 503);
    assert!(last.headers.contains(&HeaderName::RetryAfter));
    assert_eq!(c.active_calls(), 0);
}

#[test]
fn hang_up_sends_bye_to_both_legs_and_ends_the_call() {
    let t = Instant::ZERO;
    let mut c = core();
    established(&mut c, t);
    assert!(c.hang_up(1, "media inactivity", t));
    let (m, _) = drain(&mut c);
    let byes: Vec<Peer> =
        m.iter().filter(|(_, x)| req(x).method == Method::Bye).map(|(p, _)| *p).collect();
    assert_eq!(byes, vec![peer(A), peer(B)]);
    for (_, x) in &m {
        let from = if m.iter().position(|(_, y)| y == x) == Some(0) { peer(A) } else { peer(B) };
        c.handle_bytes(&answer(req(x), 200, "x"), from, t);
    }
    let (_, ev) = drain(&mut c);
    assert!(matches!(ev.last(), Some(CallEvent::Ended { status: 200, .. })), "{ev:?}");
    assert_eq!(c.active_calls(), 0);
    assert!(!c.hang_up(1, "again", t));
}

/// Sends a `failover` INVITE; returns the INVITE that reached B.
fn failover_call(c: &mut B2bua<FixedRouter>, t: Instant) -> Request {
    c.handle_bytes(invite("failover", "z9hG4bKf1").as_bytes(), peer(A), t);
    let (m, _) = drain(c);
    assert_eq!(m[1].0, peer(B));
    req(&m[1].1).clone()
}

#[test]
fn a_5xx_or_408_moves_the_call_to_the_next_hop_which_can_answer() {
    for status in [503, 500, 408] {
        let t = Instant::ZERO;
        let mut c = core();
        let b_inv = failover_call(&mut c, t);
        c.handle_bytes(&answer(&b_inv, 180, "btag"), peer(B), t);
        c.handle_bytes(&answer(&b_inv, status, "btag"), peer(B), t);
        let (m, ev) = drain(&mut c);
        // B's failure is acknowledged; A only saw the 180; a new INVITE goes to C.
        let to_a = statuses_to(&m, peer(A));
        assert_eq!(to_a, vec![180]);
        let acks = m
            .iter()
            .filter(|(p, x)| {
                *p == peer(B) && matches!(x, Message::Request(r) if r.method == Method::Ack)
            })
            .count();
        assert_eq!(acks, 1);
        let c_inv = m
            .iter()
            .find(|(p, _)| *p == peer(C))
            .map(|(_, x)| req(x).clone())
            .expect("INVITE to C");
        assert_eq!(c_inv.method, Method::Invite);
        assert_eq!(c_inv.uri.to_string(), format!("sip:failover@{C}"));
        assert_ne!(c_inv.call_id().unwrap(), b_inv.call_id().unwrap());
        assert_eq!(c_inv.body, b_inv.body, "the anchored offer goes to the next hop");
        assert!(ev.iter().any(|e| matches!(e, CallEvent::Failover { status: Some(s), voice_connector_id, .. } if *s == status && voice_connector_id == "zyxwvu1ghij2klmno3pqr4")));
        c.handle_bytes(&answer(&c_inv, 200, "ctag"), peer(C), t);
        let (m, ev) = drain(&mut c);
        let ok = m.iter().find(|(p, _)| *p == peer(A)).map(|(_, x)| resp(x).clone()).unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(ok.call_id().unwrap(), "call-a");
        assert!(ev.iter().any(|e| matches!(e, CallEvent::Answered { .. })));
        // A late retransmission of B's failure does not disturb the call.
        c.handle_bytes(&answer(&b_inv, status, "btag"), peer(B), t);
        let (_, ev) = drain(&mut c);
        assert!(ev.is_empty());
        assert_eq!(c.active_calls(), 1);
    }
}

#[test]
fn other_4xx_and_6xx_are_final_without_failover() {
    for status in [486, 404, 603] {
        let t = Instant::ZERO;
        let mut c = core();
        let b_inv = failover_call(&mut c, t);
        c.handle_bytes(&answer(&b_inv, status, "btag"), peer(B), t);
        let (m, ev) = drain(&mut c);
        assert!(m.iter().all(|(p, _)| *p != peer(C)), "no INVITE to C after {status}");
        let to_a = statuses_to(&m, peer(A));
        assert_eq!(to_a, vec![status]);
        assert!(matches!(ev[..], [CallEvent::Ended { status: s, .. }] if s == status));
    }
}

#[test]
fn when_every_hop_fails_the_best_response_is_relayed_and_503_becomes_500() {
    let t = Instant::ZERO;
    // B 503, C 500: both 5xx, so the first collected wins.
    let mut c = core();
    let c_inv = failed_over_to_c(&mut c, t);
    c.handle_bytes(&answer(&c_inv, 500, "ctag"), peer(C), t);
    let (m, ev) = drain(&mut c);
    let to_a = statuses_to(&m, peer(A));
    // Both 5xx: the first collected (503) is relayed, as 500 (§16.7 step 6).
    assert_eq!(to_a, vec![500]);
    assert!(matches!(ev[..], [CallEvent::Ended { status: 503, .. }]));
    assert_eq!(c.active_calls(), 0);
}

#[test]
fn a_timeout_or_transport_error_moves_to_the_next_hop() {
    // Timeout: B never answers; after Timer B (64*T1) the INVITE goes to C.
    let t = Instant::ZERO;
    let mut c = core();
    failover_call(&mut c, t);
    let mut to_c = None;
    let mut now = t;
    while let Some(at) = c.poll_timeout() {
        if at - t > Duration::from_secs(40) {
            break;
        }
        now = at;
        c.handle_timeout(at);
        let (m, ev) = drain(&mut c);
        if let Some((_, x)) = m.iter().find(|(p, _)| *p == peer(C)) {
            to_c = Some(req(x).clone());
            assert!(ev.iter().any(|e| matches!(e, CallEvent::Failover { status: None, .. })));
            break;
        }
    }
    let c_inv = to_c.expect("INVITE to C after Timer B");
    assert!(now - t >= Duration::from_secs(32));
    // C answers 486: a real 4xx beats the made-up 408.
    c.handle_bytes(&answer(&c_inv, 486, "ctag"), peer(C), now);
    let (m, _) = drain(&mut c);
    let to_a = statuses_to(&m, peer(A));
    assert_eq!(to_a, vec![486]);

    // Transport error: at once.
    let mut c = core();
    failover_call(&mut c, t);
    c.transport_error(peer(B), t);
    let (m, _) = drain(&mut c);
    assert!(m.iter().any(|(p, x)| *p == peer(C) && req(x).method == Method::Invite));
    // C unreachable too: the made-up 408 is all there is.
    c.transport_error(peer(C), t);
    let (m, ev) = drain(&mut c);
    let to_a = statuses_to(&m, peer(A));
    assert_eq!(to_a, vec![408]);
    assert!(matches!(ev[..], [CallEvent::Ended { status: 408, .. }]));
}

#[test]
fn cancel_during_failover_cancels_the_current_hop_only() {
    let t = Instant::ZERO;
    let mut c = core();
    let c_inv = failed_over_to_c(&mut c, t);
    c.handle_bytes(&answer(&c_inv, 180, "ctag"), peer(C), t);
    drain(&mut c);
    let cancel = format!("CANCEL sip:failover@abcdef1ghij2klmno3pqr4.voiceconnector.local SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKf1\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:+12065550100@{A}>;tag=atag\r\nTo: <sip:failover@abcdef1ghij2klmno3pqr4.voiceconnector.local>\r\nCall-ID: call-a\r\nCSeq: 1 CANCEL\r\n\r\n");
    c.handle_bytes(cancel.as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let cancels: Vec<Peer> = m
        .iter()
        .filter(|(_, x)| matches!(x, Message::Request(r) if r.method == Method::Cancel))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(cancels, vec![peer(C)]);
    c.handle_bytes(&answer(&c_inv, 487, "ctag"), peer(C), t);
    let (_, ev) = drain(&mut c);
    assert!(matches!(ev[..], [CallEvent::Ended { status: 487, .. }]));
}

#[test]
fn caller_id_override_replaces_the_from_user() {
    let t = Instant::ZERO;
    let mut c = core();
    c.handle_bytes(invite("callerid", "z9hG4bKc1").as_bytes(), peer(A), t);
    let (m, _) = drain(&mut c);
    let b_inv = req(&m[1].1);
    assert_eq!(b_inv.from().unwrap().uri.user.as_deref(), Some("+12065550111"));
    assert_eq!(b_inv.from().unwrap().display.as_deref(), Some("Alice"));
}

#[test]
fn a_transport_error_after_answer_does_not_end_the_call() {
    // An ICMP error from the callee's address (say, for the ACK) arrives while the answered
    // INVITE's client transaction absorbs 2xx retransmissions: the call stays up.
    let t = Instant::ZERO;
    let mut c = core();
    established(&mut c, t);
    c.transport_error(peer(B), t);
    let (m, ev) = drain(&mut c);
    assert!(m.is_empty() && ev.is_empty(), "{m:?} {ev:?}");
    assert_eq!(c.active_calls(), 1);
}

#[test]
fn responses_sent_are_reported_per_call() {
    let t = Instant::ZERO;
    let mut c = core();
    c.handle_bytes(invite("+12065550101", "z9hG4bKr1").as_bytes(), peer(A), t);
    let (m, ev) = drain_all(&mut c);
    let b_inv = req(&m[1].1).clone();
    let sent = |ev: &[CallEvent]| -> Vec<u16> {
        ev.iter()
            .filter_map(|e| match e {
                CallEvent::ResponseSent { call: 1, status } => Some(*status),
                _ => None,
            })
            .collect()
    };
    assert_eq!(sent(&ev), vec![100]);
    c.handle_bytes(&answer(&b_inv, 180, "btag"), peer(B), t);
    c.handle_bytes(&answer(&b_inv, 486, "btag"), peer(B), t);
    let (_, ev) = drain_all(&mut c);
    assert_eq!(sent(&ev), vec![180, 486]);
    // A refusal before any call exists is reported by `Rejected`, not `ResponseSent`.
    c.handle_bytes(invite("forbidden", "z9hG4bKr2").as_bytes(), peer(A), t);
    let (_, ev) = drain_all(&mut c);
    assert!(ev.iter().all(|e| !matches!(e, CallEvent::ResponseSent { .. })));
    assert!(ev.iter().any(|e| matches!(e, CallEvent::Rejected { status: 403, .. })));
}

/// The statuses of the responses sent to `who`.
fn statuses_to(m: &[(Peer, Message)], who: Peer) -> Vec<u16> {
    m.iter().filter(|(p, _)| *p == who).map(|(_, x)| resp(x).status).collect()
}

/// The first request sent to `who`.
fn request_to(m: &[(Peer, Message)], who: Peer) -> Request {
    m.iter().find(|(p, _)| *p == who).map(|(_, x)| req(x).clone()).expect("a request to the peer")
}

/// A `failover` call whose first hop answered 503; returns the INVITE that reached C.
fn failed_over_to_c(c: &mut B2bua<FixedRouter>, t: Instant) -> Request {
    let b_inv = failover_call(c, t);
    c.handle_bytes(&answer(&b_inv, 503, "btag"), peer(B), t);
    let (m, _) = drain(c);
    request_to(&m, peer(C))
}
