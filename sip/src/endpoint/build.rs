//! Messages an endpoint makes itself: tags, branches and TransactionIds, its Via and Contact,
//! responses to a request, and the stateless answer to a request that cannot be read.

use std::net::SocketAddr;

use rand::Rng;

use crate::message::{reason_phrase, HeaderName, NameAddr, Request, Response, Uri, Via};
use crate::Transport;

pub(crate) fn random_token(rng: &mut impl Rng, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

/// A random UUID v4 (a call's TransactionId).
pub(crate) fn uuid_v4(rng: &mut impl Rng) -> String {
    common::uuid::uuid_v4(rng.gen())
}

pub(crate) fn new_branch(rng: &mut impl Rng) -> String {
    format!("{}{}", crate::message::via_cookie(), random_token(rng, 16))
}

/// Our Via for a request sent from `local` over `transport`.
pub(crate) fn our_via(transport: Transport, local: SocketAddr, branch: &str) -> String {
    let mut v = Via::new(transport, &host_of(local), local.port(), branch);
    v.params.set("rport", None);
    v.to_string()
}

/// Our Contact on `transport`.
pub fn our_contact(transport: Transport, local: SocketAddr) -> String {
    let mut uri = Uri::sip(Some("voicegw"), &host_of(local), Some(local.port()));
    if transport != Transport::Udp {
        uri.params.set("transport", Some(&transport.as_str().to_ascii_lowercase()));
    }
    NameAddr::new(uri).to_string()
}

pub(crate) fn host_of(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

/// The CANCEL of `invite` (§9.1): its Request-URI, top Via, Max-Forwards, From, To, Call-ID
/// and Route, and its CSeq number.
pub fn cancel_of(invite: &Request) -> Request {
    let mut c = Request::new(crate::message::Method::Cancel, invite.uri.clone());
    for name in [
        HeaderName::Via,
        HeaderName::MaxForwards,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
    ] {
        if let Some(v) = invite.headers.get(&name) {
            c.headers.push(name, v);
        }
    }
    for r in invite.headers.get_all(&HeaderName::Route) {
        c.headers.push(HeaderName::Route, r);
    }
    let seq = invite.cseq().map(|s| s.seq).unwrap_or(1);
    c.headers.push(HeaderName::CSeq, format!("{seq} CANCEL"));
    c
}

/// A response to `req` (§8.2.6): Via, From, To (with `to_tag` if it has none), Call-ID, CSeq.
pub fn response_to(req: &Request, status: u16, to_tag: Option<&str>) -> Response {
    let mut r = Response::new(status, reason_phrase(status));
    for v in req.headers.get_all(&HeaderName::Via) {
        r.headers.push(HeaderName::Via, v);
    }
    if let Some(f) = req.headers.get(&HeaderName::From) {
        r.headers.push(HeaderName::From, f);
    }
    if let Some(t) = req.headers.get(&HeaderName::To) {
        match (to_tag, NameAddr::parse(t)) {
            (Some(tag), Ok(mut to)) if to.tag().is_none() && status > 100 => {
                to.set_tag(tag);
                r.headers.push(HeaderName::To, to.to_string());
            }
            _ => r.headers.push(HeaderName::To, t),
        }
    }
    if let Some(c) = req.headers.get(&HeaderName::CallId) {
        r.headers.push(HeaderName::CallId, c);
    }
    if let Some(c) = req.headers.get(&HeaderName::CSeq) {
        r.headers.push(HeaderName::CSeq, c);
    }
    r
}

/// Longest header value copied from a malformed request into its 400 (longer ones are left out).
const MAX_COPIED_VALUE: usize = 1024;

/// The answer to a request that did not parse or lacks a mandatory header: `505 Version Not
/// Supported` for a request line of another SIP version, else `400 Bad Request`, with whichever
/// of Via, From, To, Call-ID and CSeq the request had (values with control characters or longer
/// than [`MAX_COPIED_VALUE`] left out) and a `Warning` naming the fault. The response goes back
/// to the source the request came from (the connection, or the datagram's address), so only a
/// readable request line is needed. Responses, ACKs (never answered) and bytes without a
/// request line get `None`: they are dropped and counted.
pub fn bad_request_for(bytes: &[u8], warning: &str) -> Option<Response> {
    let head = &bytes[..crate::message::header_end(bytes).unwrap_or(bytes.len())];
    let text = String::from_utf8_lossy(head);
    let mut lines = text
        .trim_start_matches(['\r', '\n'])
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next()?;
    // Method first and version last; whatever lies between (a Request-URI with spaces in it)
    // does not stop the answer.
    let parts: Vec<&str> = first.split(' ').filter(|p| !p.is_empty()).collect();
    let (method, version) = (*parts.first()?, *parts.last()?);
    if parts.len() < 3
        || !crate::message::is_token(method)
        || method == "ACK"
        || !version.starts_with("SIP/")
        || first.chars().any(char::is_control)
    {
        return None;
    }
    let mut r = if version == "SIP/2.0" {
        Response::new(400, "Bad Request")
    } else {
        Response::new(505, "Version Not Supported")
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((n, v)) = line.split_once(':') else { continue };
        let name = HeaderName::parse(n.trim());
        let v = v.trim();
        if matches!(
            name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        ) && v.len() <= MAX_COPIED_VALUE
            && !v.chars().any(char::is_control)
        {
            r.headers.push(name, v);
        }
    }
    let warning: String =
        warning.chars().filter(|c| *c != '"' && !c.is_control()).take(120).collect();
    r.headers.push(HeaderName::Warning, format!("399 voicegw \"{warning}\""));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_request_needs_addressing_headers() {
        let raw = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\nContent-Length: 99\r\n\r\n";
        let r = bad_request_for(raw, "Content-Length \"99\" too big").unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(
            r.headers.get(&HeaderName::Warning),
            Some("399 voicegw \"Content-Length 99 too big\"")
        );
        assert!(bad_request_for(b"SIP/2.0 200 OK\r\n\r\n", "x").is_none());
        assert!(bad_request_for(b"ACK sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", "x").is_none());
        assert!(bad_request_for(b"\x00\x01garbage", "x").is_none());
        assert!(bad_request_for(b"INVITE sip:a@b\r\n\r\n", "x").is_none());
        assert!(bad_request_for(b"INVITE sip:a@b; lr SIP/2.0\r\nVia: x\r\n\r\n", "x").is_some());
        // Missing headers: answered with what there is, to the source.
        let r = bad_request_for(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", "x").unwrap();
        assert_eq!((r.status, r.headers.get(&HeaderName::Via)), (400, Some("x")));
        // Another SIP version: 505.
        let r = bad_request_for(b"OPTIONS sip:a@b SIP/7.0\r\nCall-ID: 1\r\n\r\n", "v").unwrap();
        assert_eq!((r.status, r.headers.get(&HeaderName::CallId)), (505, Some("1")));
        // A value with a bare CR is not echoed back.
        let r = bad_request_for(b"BYE sip:a@b SIP/2.0\r\nCall-ID: 1\rX: y\r\n\r\n", "c").unwrap();
        assert!(!r.headers.contains(&HeaderName::CallId));
    }
}
