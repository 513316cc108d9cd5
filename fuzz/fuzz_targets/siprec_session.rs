//! The SIPREC applications driven as hostile peers would drive them: the input is a program of
//! operations. The recording server gets recording INVITEs (their labels, directions and
//! metadata from the input), re-INVITEs, UPDATEs, ACKs, BYEs, CANCELs and raw bytes; the
//! recording client starts and stops recordings and gets whatever the input makes the recorder
//! answer (any status, any SDP, BYEs, raw bytes). Time jumps in between. At the end every
//! session is hung up and time runs on for ten minutes: no session and no transaction may be
//! left, every port given back, and nothing may panic on the way.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sip::endpoint::{EndpointConfig, Output, Solo, Stack};
use sip::message::{HeaderName, ParseLimits};
use sip::transaction::TimerConfig;
use sip::{Instant, Message, Peer, Request, Transport, Uri};
use siprec::client::{ClientEvent, ForkAnchor, RecordingClient, Target};
use siprec::offer::Offer;
use siprec::srs::{Admit, Opened, RecordingAnchor, Refusal, Srs};

const SRC: &str = "192.0.2.10:5060";
const SRS: &str = "192.0.2.50:5060";

fn peer(s: &str) -> Peer {
    Peer::new(Transport::Udp, s.parse::<SocketAddr>().expect("address"))
}

fn config() -> EndpointConfig {
    let mut local = HashMap::new();
    local.insert(Transport::Udp, "198.51.100.1:5060".parse::<SocketAddr>().expect("local"));
    EndpointConfig {
        timers: TimerConfig::default(),
        limits: ParseLimits::default(),
        local,
        user_agent: "fuzz".into(),
        max_transactions: 64,
        seed: [3; 32],
    }
}

struct Everyone;

impl Admit for Everyone {
    fn admit(&mut self, req: &Request, _: &Peer, _: Instant) -> Result<String, Refusal> {
        if req.call_id().is_ok_and(|c| c.ends_with('7')) {
            return Err((403, "refused".to_string()).into());
        }
        Ok("vc".into())
    }
}

/// Ports handed out and given back.
#[derive(Default)]
struct Ports {
    open: HashSet<u64>,
}

impl RecordingAnchor for Ports {
    type Update = ();
    fn open(&mut self, s: u64, _: &str, _: &str, _: &str, o: &Offer) -> Result<Opened, (u16, String)> {
        assert!(self.open.insert(s), "a session opened twice");
        let keys = o.streams.iter().map(|_| None).collect();
        Ok(Opened { local: "198.51.100.1".parse().expect("ip"), ports: vec![20000; o.streams.len()], keys })
    }
    fn update(&mut self, s: u64, o: &Offer) -> Result<Vec<Option<media::srtp::MasterKey>>, (u16, String)> {
        assert!(self.open.contains(&s), "an update for a closed session");
        Ok(o.streams.iter().map(|_| None).collect())
    }
    fn close(&mut self, s: u64) {
        self.open.remove(&s);
    }
    fn poll_update(&mut self) -> Option<()> {
        None
    }
}

#[derive(Default)]
struct Forks {
    open: HashSet<u64>,
}

impl ForkAnchor for Forks {
    type Update = ();
    fn open(&mut self, call: u64) -> Result<(IpAddr, [u16; 2]), String> {
        assert!(self.open.insert(call), "a recording opened twice");
        Ok(("198.51.100.1".parse().expect("ip"), [30000, 30002]))
    }
    fn answered(&mut self, call: u64, _: [Option<SocketAddr>; 2]) {
        assert!(self.open.contains(&call), "answered after close");
    }
    fn close(&mut self, call: u64) {
        self.open.remove(&call);
    }
    fn poll_update(&mut self) -> Option<()> {
        None
    }
}

/// Takes the next `n` bytes (fewer at the end).
fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(data.len());
    let (a, b) = data.split_at(n);
    *data = b;
    a
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace(['\r', '\n'], " ")
}

fn invite(call: &str, to_tag: &str, cseq: u32, media: &str, meta: &str) -> String {
    let sdp = format!("v=0\r\no=src 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n{media}");
    let body = format!("--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{meta}\r\n--b--\r\n");
    let to = if to_tag.is_empty() { String::new() } else { format!(";tag={to_tag}") };
    format!("INVITE sip:rec@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bK-{call}-{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:src@192.0.2.10>;tag=s\r\nTo: <sip:rec@198.51.100.1>{to}\r\nCall-ID: {call}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:src@{SRC}>;+sip.src\r\nRequire: siprec\r\nContent-Type: multipart/mixed;boundary=b\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

fn in_dialog(method: &str, call: &str, to_tag: &str, cseq: u32) -> String {
    format!("{method} sip:voicegw@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bK-{method}-{call}-{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:src@192.0.2.10>;tag=s\r\nTo: <sip:rec@198.51.100.1>;tag={to_tag}\r\nCall-ID: {call}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n")
}

/// A response from the recorder to `req`.
fn answer(req: &Request, status: u16, body: &str) -> Vec<u8> {
    let h = |n: HeaderName| req.headers.get(&n).unwrap_or("").to_string();
    let mut s = format!("SIP/2.0 {status} X\r\n");
    for v in req.headers.get_all(&HeaderName::Via) {
        s += &format!("Via: {v}\r\n");
    }
    s += &format!(
        "From: {}\r\nTo: {};tag=srs\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:srs@{SRS}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        h(HeaderName::From),
        h(HeaderName::To),
        h(HeaderName::CallId),
        h(HeaderName::CSeq),
        body.len()
    );
    s.into_bytes()
}

fn server(mut data: &[u8]) {
    let mut s = Stack::of(config(), Solo(Srs::new(Everyone, Ports::default(), 8, 1)));
    let mut now = Instant::ZERO;
    // (Call-ID, To tag, next CSeq) of answered sessions.
    let mut dialogs: Vec<(String, String, u32)> = Vec::new();
    let mut n = 0u32;
    while let Some(&op) = data.first() {
        data = &data[1..];
        let arg = take(&mut data, 1).first().copied().unwrap_or(0);
        match op % 8 {
            0 | 1 => {
                n += 1;
                let label = text(take(&mut data, (arg % 8) as usize));
                let dir = ["sendonly", "recvonly", "inactive", "sendrecv"][(arg % 4) as usize];
                let mut media = format!("m=audio 40000 RTP/AVP 0 8\r\na=label:{label}\r\na={dir}\r\n");
                if arg & 0x10 != 0 {
                    media += "m=audio 40002 RTP/SAVP 8\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
                }
                let meta = String::from_utf8_lossy(take(&mut data, (arg as usize) * 2)).into_owned();
                let call = format!("c{n}{}", arg % 10);
                s.handle_bytes(invite(&call, "", 1, &media, &meta).as_bytes(), peer(SRC), now);
            }
            2 => {
                let i = arg as usize % dialogs.len().max(1);
                if let Some((call, tag, cseq)) = dialogs.get_mut(i) {
                    let meta = String::from_utf8_lossy(take(&mut data, arg as usize)).into_owned();
                    let media = "m=audio 40004 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n";
                    s.handle_bytes(invite(call, tag, *cseq, media, &meta).as_bytes(), peer(SRC), now);
                    *cseq += 1;
                }
            }
            3 | 4 => {
                let method = ["ACK", "BYE", "UPDATE", "OPTIONS", "INFO", "CANCEL"][arg as usize % 6];
                let i = arg as usize % dialogs.len().max(1);
                if let Some((call, tag, cseq)) = dialogs.get_mut(i) {
                    let seq = if method == "ACK" { cseq.saturating_sub(1).max(1) } else { *cseq };
                    s.handle_bytes(in_dialog(method, call, tag, seq).as_bytes(), peer(SRC), now);
                    if method != "ACK" {
                        *cseq += 1;
                    }
                }
            }
            5 => {
                let raw = take(&mut data, arg as usize * 4);
                s.handle_bytes(raw, peer(SRC), now);
            }
            _ => {
                now = now + Duration::from_millis(u64::from(arg) * 100);
                s.handle_timeout(now);
            }
        }
        while let Some(o) = s.poll_output() {
            if let Output::Transmit { bytes, .. } = o {
                if let Ok(Message::Response(r)) = Message::parse(&bytes) {
                    let is_invite = r.cseq().is_ok_and(|c| c.method == sip::Method::Invite);
                    if r.status == 200 && is_invite {
                        let call = r.call_id().unwrap_or_default().to_string();
                        let tag = r.to().ok().and_then(|t| t.tag().map(str::to_string));
                        if let Some(tag) = tag {
                            if !dialogs.iter().any(|d| d.0 == call) && dialogs.len() < 16 {
                                dialogs.push((call, tag, 2));
                            }
                        }
                    }
                }
            }
        }
    }
    // Everything hung up, then time runs on: nothing is left.
    for (call, tag, cseq) in dialogs {
        s.handle_bytes(in_dialog("BYE", &call, &tag, cseq).as_bytes(), peer(SRC), now);
    }
    for _ in 0..60 {
        now = now + Duration::from_secs(10);
        s.handle_timeout(now);
        while s.poll_output().is_some() {}
    }
    assert_eq!(s.app().0.active_sessions(), 0, "a recording session was left");
    assert_eq!(s.endpoint().transactions(), (0, 0), "a transaction was left");
}

fn client(mut data: &[u8]) {
    let mut s = Stack::of(config(), Solo(RecordingClient::new(Forks::default())));
    let target = Target { uri: Uri::parse("sip:srs@192.0.2.50").expect("uri"), peer: peer(SRS) };
    let mut now = Instant::ZERO;
    let mut sent: Vec<Request> = Vec::new();
    while let Some(&op) = data.first() {
        data = &data[1..];
        let arg = take(&mut data, 1).first().copied().unwrap_or(0);
        let (ep, host) = s.split();
        match op % 6 {
            0 => host.0.start::<Solo<RecordingClient<Forks>>, 0>(ep, u64::from(arg % 8), &target, "<recording/>", now),
            1 => host.0.stop::<Solo<RecordingClient<Forks>>, 0>(ep, u64::from(arg % 8), now),
            2 => {
                if let Some(req) = sent.get(arg as usize % sent.len().max(1)) {
                    let status = [100, 180, 200, 200, 202, 403, 488, 503][arg as usize % 8];
                    let body = String::from_utf8_lossy(take(&mut data, arg as usize)).into_owned();
                    let body = if arg & 1 == 0 {
                        format!("v=0\r\no=s 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\nm=audio 0 RTP/AVP 0\r\n{body}", u16::from(arg) * 3)
                    } else {
                        body
                    };
                    let bytes = answer(req, status, &body);
                    s.handle_bytes(&bytes, peer(SRS), now);
                }
            }
            3 => {
                if let Some(req) = sent.get(arg as usize % sent.len().max(1)) {
                    let h = |n: HeaderName| req.headers.get(&n).unwrap_or("").to_string();
                    let bye = format!("BYE sip:voicegw@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP {SRS};branch=z9hG4bK-bye{arg}\r\nFrom: <sip:srs@192.0.2.50>;tag=srs\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} BYE\r\nContent-Length: 0\r\n\r\n", h(HeaderName::From), h(HeaderName::CallId), 10 + u32::from(arg));
                    s.handle_bytes(bye.as_bytes(), peer(SRS), now);
                }
            }
            4 => {
                let raw = take(&mut data, arg as usize * 4);
                s.handle_bytes(raw, peer(SRS), now);
            }
            _ => {
                now = now + Duration::from_millis(u64::from(arg) * 100);
                s.handle_timeout(now);
            }
        }
        while let Some(o) = s.poll_output() {
            match o {
                Output::Transmit { bytes, .. } => {
                    if let Ok(Message::Request(r)) = Message::parse(&bytes) {
                        if r.method == sip::Method::Invite && sent.len() < 32 {
                            sent.push(r);
                        }
                    }
                }
                Output::Event(ClientEvent::Started { call, .. }) => {
                    assert!(s.app().0.records(call), "started but not recorded");
                }
                _ => {}
            }
        }
    }
    for call in 0..8 {
        let (ep, host) = s.split();
        host.0.stop::<Solo<RecordingClient<Forks>>, 0>(ep, call, now);
    }
    for _ in 0..60 {
        now = now + Duration::from_secs(10);
        s.handle_timeout(now);
        while s.poll_output().is_some() {}
    }
    assert_eq!(s.app().0.active_sessions(), 0, "a recording was left");
    assert!(s.app_mut().0.anchor_mut().open.is_empty(), "ports were not given back");
    assert_eq!(s.endpoint().transactions(), (0, 0), "a transaction was left");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    if which & 1 == 0 {
        server(rest);
    } else {
        client(rest);
    }
});
