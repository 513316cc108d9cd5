//! The B2BUA core driven as a peer would drive it: the input is a program of operations
//! (new INVITEs from the caller, answers from either side to what voicegw sent them, in-dialog
//! requests, CANCEL, raw mutated messages, transport errors and jumps in time). At the end
//! voicegw hangs up whatever is still up and time runs on for ten minutes: every call must
//! have ended and every transaction must be gone (nothing left open for ever), and nothing
//! may panic on the way.
#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sip::b2bua::{B2bua, CallEvent, CoreConfig, Direction, Output, Route, Router, Target, Verdict};
use sip::message::{HeaderName, ParseLimits};
use sip::transaction::TimerConfig;
use sip::{Instant, Message, Peer, Request, Transport, Uri};

const A: &str = "127.0.0.1:5090";
const B: &str = "127.0.0.1:5080";

fn peer(s: &str) -> Peer {
    Peer::new(Transport::Udp, s.parse::<SocketAddr>().expect("address"))
}

struct Fixed;

impl Router for Fixed {
    fn route(&mut self, invite: &Request, _source: &Peer, _now: Instant) -> Verdict {
        let user = invite.uri.user.clone().unwrap_or_default();
        let target = |hop: &str| Target {
            peer: peer(hop),
            request_uri: Uri::parse(&format!(
                "sip:{}@{hop}",
                if user.is_empty() { "x" } else { "y" }
            ))
            .expect("uri"),
            voice_connector_id: "abcdef1ghij2klmno3pqr4".into(),
        };
        let mut route = Route::single(target(B), Direction::Outbound);
        if user.ends_with('1') {
            route.targets.push(target("127.0.0.1:5070"));
        }
        Verdict {
            result: Ok(route),
            voice_connector_id: Some("abcdef1ghij2klmno3pqr4".into()),
            direction: Some(Direction::Outbound),
            auth_user: None,
        }
    }
}

/// A response to `req` (as the peer it was sent to), with a To tag.
fn answer(req: &Request, status: u16, tag: &str) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {status} X\r\n");
    for v in req.headers.get_all(&HeaderName::Via) {
        s += &format!("Via: {v}\r\n");
    }
    let h = |n: HeaderName| req.headers.get(&n).unwrap_or("").to_string();
    let to = h(HeaderName::To);
    let to = if to.contains("tag=") || status == 100 { to } else { format!("{to};tag={tag}") };
    s += &format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:peer@{B}>\r\n",
        h(HeaderName::From),
        h(HeaderName::CallId),
        h(HeaderName::CSeq)
    );
    if (200..300).contains(&status) && req.method == sip::Method::Invite {
        s += "Content-Type: application/sdp\r\n\r\nv=0\r\n";
    } else {
        s += "\r\n";
    }
    s.into_bytes()
}

/// With `FUZZ_TRACE` set (running one input), prints every message in and out.
fn trace(what: &str, bytes: &[u8]) {
    if std::env::var_os("FUZZ_TRACE").is_some() {
        eprintln!("--- {what}\n{}", String::from_utf8_lossy(bytes).escape_debug());
    }
}

/// Hands `bytes` from `from` to the core, traced.
fn feed<R: Router>(core: &mut B2bua<R>, bytes: &[u8], from: &str, now: Instant) {
    trace(&format!("{from} -> voicegw at {now:?}"), bytes);
    core.handle_bytes(bytes, peer(from), now);
}

fn invite(n: u8, branch: u32) -> String {
    format!("INVITE sip:+1206555010{}@vc SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\nFrom: <sip:+12065550100@{A}>;tag=a{n}\r\nTo: <sip:+12065550101@vc>\r\nCall-ID: call-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{A}>\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n", n % 3)
}

fuzz_target!(|data: &[u8]| {
    let mut local = HashMap::new();
    local.insert(Transport::Udp, "127.0.0.1:5060".parse().expect("address"));
    let mut core = B2bua::new(
        CoreConfig {
            timers: TimerConfig::default(),
            limits: ParseLimits::default(),
            local,
            user_agent: "fuzz".into(),
            max_calls: 8,
            max_transactions: 64,
            seed: [3; 32],
        },
        Fixed,
    );
    let mut now = Instant::ZERO;
    // What voicegw sent each side, newest last (bounded).
    let mut to_a: Vec<Request> = Vec::new();
    let mut to_b: Vec<Request> = Vec::new();
    // Responses voicegw sent A (for in-dialog requests: their To tags).
    let mut from_gw: Vec<sip::Response> = Vec::new();
    let mut calls: Vec<u64> = Vec::new();
    let mut branch = 0u32;
    let collect = |core: &mut B2bua<Fixed>,
                   to_a: &mut Vec<Request>,
                   to_b: &mut Vec<Request>,
                   from_gw: &mut Vec<sip::Response>,
                   calls: &mut Vec<u64>| {
        while let Some(o) = core.poll_output() {
            match o {
                Output::Transmit { peer: p, bytes } => match {
                    trace(&format!("voicegw -> {}", p.addr), &bytes);
                    Message::parse(&bytes)
                } {
                    Ok(Message::Request(r)) if p.addr == peer(A).addr => to_a.push(r),
                    Ok(Message::Request(r)) => to_b.push(r),
                    Ok(Message::Response(r)) => from_gw.push(r),
                    Err(e) => panic!("voicegw sent a message it cannot parse: {e}"),
                },
                Output::Event(CallEvent::Started { call, .. }) => calls.push(call),
                Output::Event(_) => {}
            }
        }
        for v in [&mut *to_a, &mut *to_b] {
            if v.len() > 16 {
                v.drain(..v.len() - 16);
            }
        }
        if from_gw.len() > 16 {
            from_gw.drain(..from_gw.len() - 16);
        }
    };
    let mut ops = data.chunks(3);
    while let Some(op) = ops.next() {
        let (kind, x, y) = (op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0));
        branch += 1;
        match kind % 8 {
            0 => feed(&mut core, invite(x % 4, branch).as_bytes(), A, now),
            1 | 2 => {
                // A side answers one of the requests voicegw sent it.
                let (list, from, tag) =
                    if kind % 8 == 1 { (&to_b, B, "btag") } else { (&to_a, A, "atag") };
                if let Some(r) = list.get(usize::from(x) % list.len().max(1)) {
                    let status = [100, 180, 183, 200, 200, 486, 503, 408][usize::from(y) % 8];
                    feed(&mut core, &answer(r, status, tag), from, now);
                }
            }
            3 => {
                // An in-dialog request from A, addressed with a To tag voicegw gave it.
                if let Some(r) = from_gw.iter().rev().find(|r| r.status >= 200 && r.status < 300) {
                    let method =
                        ["BYE", "INFO", "INVITE", "UPDATE", "ACK", "OPTIONS"][usize::from(x) % 6];
                    let to = r.headers.get(&HeaderName::To).unwrap_or("<sip:x@y>");
                    let call_id = r.headers.get(&HeaderName::CallId).unwrap_or("c");
                    let from = r.headers.get(&HeaderName::From).unwrap_or("<sip:a@a>;tag=a0");
                    let cseq = u32::from(y) + 2;
                    let m = format!("{method} sip:voicegw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKd{branch}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@{A}>\r\n\r\n");
                    feed(&mut core, m.as_bytes(), A, now);
                }
            }
            4 => {
                // CANCEL of one of the INVITEs.
                let n = x % 4;
                let m = format!("CANCEL sip:+1206555010{}@vc SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bK{}\r\nFrom: <sip:+12065550100@{A}>;tag=a{n}\r\nTo: <sip:+12065550101@vc>\r\nCall-ID: call-{n}\r\nCSeq: 1 CANCEL\r\n\r\n", n % 3, y);
                feed(&mut core, m.as_bytes(), A, now);
            }
            5 => now = now + Duration::from_millis(u64::from(x) * 250 + u64::from(y)),
            6 => core.transport_error(peer(if x % 2 == 0 { B } else { A }), now),
            _ => {
                // A raw message: an earlier one with a byte changed.
                if let Some(r) = to_b.last() {
                    let mut bytes = answer(r, 200, "btag");
                    let at = usize::from(x) % bytes.len();
                    bytes[at] = y;
                    feed(&mut core, &bytes, B, now);
                }
            }
        }
        core.handle_timeout(now);
        collect(&mut core, &mut to_a, &mut to_b, &mut from_gw, &mut calls);
    }
    // voicegw hangs up what is still up; the peers answer nothing from now on.
    for call in calls.clone() {
        core.hang_up(call, "fuzz end", now);
    }
    let end = now + Duration::from_secs(600);
    while let Some(at) = core.poll_timeout() {
        if at > end {
            break;
        }
        now = at;
        core.handle_timeout(now);
        collect(&mut core, &mut to_a, &mut to_b, &mut from_gw, &mut calls);
        for call in calls.clone() {
            core.hang_up(call, "fuzz end", now);
        }
    }
    assert_eq!(core.active_calls(), 0, "a call outlived its transactions");
    assert_eq!(core.transactions(), (0, 0), "a transaction was never freed");
});
