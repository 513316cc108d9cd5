use std::borrow::Cow;

use bytes::Bytes;

use super::headers::split_list;
use super::{HeaderName, Headers, Message, Method, ParseError, Request, Response, Uri};

/// Limits applied while parsing, so a hostile peer cannot make us hold unbounded state.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Largest message accepted, headers and body (bytes).
    pub max_message_size: usize,
    /// Most header lines accepted.
    pub max_headers: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits { max_message_size: 65_535, max_headers: 256 }
    }
}

/// Longest Call-ID accepted (bytes). RFC 3261 sets no limit; real ones are under 100 bytes, and
/// a Call-ID keys tables, records and logs, so a 60 KB one must not get that far.
pub const MAX_CALL_ID_LEN: usize = 256;

/// Longest single (unfolded) header line accepted (bytes).
pub const MAX_HEADER_LINE_LEN: usize = 8192;

/// Finds the end of the header section: the offset of the first body byte.
pub(crate) fn header_end(buf: &[u8]) -> Option<usize> {
    let crlf = memfind(buf, b"\r\n\r\n").map(|i| i + 4);
    let lf = memfind(buf, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one complete SIP message. Content-Length, when present, bounds the body; without it
/// (datagram transports) the body is the rest of the buffer. The Content-Length header itself is
/// not kept: printing writes the body's real length.
pub fn parse_message(bytes: &[u8], limits: &ParseLimits) -> Result<Message, ParseError> {
    if bytes.len() > limits.max_message_size {
        return Err(ParseError::TooLarge(limits.max_message_size));
    }
    // RFC 3261 §7.5: ignore CRLFs before the start line.
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n').ok_or(ParseError::Empty)?;
    let bytes = &bytes[start..];
    let end = header_end(bytes).ok_or(ParseError::Incomplete)?;
    let head = decode_head(&bytes[..end]);
    let mut lines = unfold(&head);
    if lines.is_empty() {
        return Err(ParseError::Empty);
    }
    let start_line = lines.remove(0);
    if lines.len() > limits.max_headers {
        return Err(ParseError::TooManyHeaders(limits.max_headers));
    }
    let mut headers = Headers::new();
    let mut content_length = None;
    for line in &lines {
        let (name, value) = split_header_line(line)?;
        if name == HeaderName::ContentLength {
            note_content_length(&mut content_length, value)?;
            continue;
        }
        if name.is_list() && !value.is_empty() {
            for v in split_list(value) {
                headers.push(name.clone(), v);
            }
        } else {
            headers.push(name, value);
        }
    }
    let rest = &bytes[end..];
    let body = match content_length {
        Some(n) if n > rest.len() => {
            return Err(ParseError::BodyTruncated { declared: n, actual: rest.len() })
        }
        Some(n) => Bytes::copy_from_slice(&rest[..n]),
        None => Bytes::copy_from_slice(rest),
    };
    parse_start_line(&start_line, headers, body)
}

/// One unfolded header line as (name, trimmed value). A bare CR is refused anywhere in the
/// line: relayed to another leg it would end the header there for the next parser (header
/// injection). Other stray control bytes, seen in real traffic after tags, are kept (they end
/// no line for anyone).
fn split_header_line(line: &str) -> Result<(HeaderName, &str), ParseError> {
    if line.contains('\r') {
        return Err(ParseError::ControlCharacter(truncate_printable(line)));
    }
    if line.len() > MAX_HEADER_LINE_LEN {
        return Err(ParseError::HeaderTooLong(truncate(line), MAX_HEADER_LINE_LEN));
    }
    let (name, value) =
        line.split_once(':').ok_or_else(|| ParseError::HeaderLine(truncate(line)))?;
    let name = name.trim();
    if !super::method::is_token(name) {
        return Err(ParseError::HeaderLine(truncate(line)));
    }
    let name = HeaderName::parse(name);
    let value = value.trim();
    if name == HeaderName::CallId && value.len() > MAX_CALL_ID_LEN {
        return Err(ParseError::HeaderTooLong("Call-ID".into(), MAX_CALL_ID_LEN));
    }
    Ok((name, value))
}

/// Takes one Content-Length value into `found`. A second one is refused even when they agree:
/// a framer that read the first and a parser that read the last is how a second request is
/// smuggled through a stream. Digits only (no sign, no blank).
fn note_content_length(found: &mut Option<usize>, value: &str) -> Result<(), ParseError> {
    if found.is_some() {
        return Err(ParseError::DuplicateHeader("Content-Length"));
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::header("Content-Length", value));
    }
    let n = value.parse::<usize>().map_err(|_| ParseError::header("Content-Length", value))?;
    *found = Some(n);
    Ok(())
}

/// The one Content-Length of an unfolded header section (other lines are not checked here).
fn content_length(lines: &[Cow<'_, str>]) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        if HeaderName::parse(name.trim()) == HeaderName::ContentLength {
            note_content_length(&mut found, value.trim())?;
        }
    }
    Ok(found)
}

/// The Content-Length of a raw header section (the bytes up to and including the blank line),
/// read exactly as [`parse_message`] reads it: `Ok(None)` when there is none.
pub(crate) fn content_length_of_head(head: &[u8]) -> Result<Option<usize>, ParseError> {
    let start = head.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(head.len());
    let text = decode_head(&head[start..]);
    let mut lines = unfold(&text);
    if lines.is_empty() {
        return Ok(None);
    }
    lines.remove(0);
    content_length(&lines)
}

fn parse_start_line(line: &str, headers: Headers, body: Bytes) -> Result<Message, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let (version, rest) =
            rest.split_once(' ').ok_or_else(|| ParseError::StartLine(truncate(line)))?;
        if version != "2.0" {
            return Err(ParseError::Version(truncate(version)));
        }
        let rest = rest.trim_start();
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status = code
            .parse::<u16>()
            .ok()
            .filter(|c| (100..700).contains(c))
            .ok_or_else(|| ParseError::StartLine(truncate(line)))?;
        return Ok(Message::Response(Response {
            status,
            reason: reason.trim().to_string(),
            headers,
            body,
        }));
    }
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (method, uri, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(u), Some(v), None) => (m, u, v),
        _ => return Err(ParseError::StartLine(truncate(line))),
    };
    if !super::method::is_token(method) {
        return Err(ParseError::StartLine(truncate(line)));
    }
    if version != "SIP/2.0" {
        return Err(ParseError::Version(truncate(version)));
    }
    Ok(Message::Request(Request {
        method: Method::parse(method),
        uri: Uri::parse(uri)?,
        headers,
        body,
    }))
}

/// Header text as UTF-8. Bytes that are not valid UTF-8 (seen in real traffic: stray binary
/// after a tag, Latin-1 display names) are read as Latin-1 characters instead of refusing the
/// message; printing then writes them UTF-8 encoded, and a re-parse gives the same message.
fn decode_head(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|&b| char::from(b)));
    }
    Cow::Owned(out)
}

/// Splits the header section into lines, joining continuation lines (RFC 3261 §7.3.1). Lines
/// are borrowed unless a continuation had to be joined.
fn unfold(head: &str) -> Vec<Cow<'_, str>> {
    let mut out: Vec<Cow<'_, str>> = Vec::with_capacity(24);
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(prev) = out.last_mut() {
                let joined = prev.to_mut();
                joined.push(' ');
                joined.push_str(line.trim_start());
                continue;
            }
        }
        out.push(Cow::Borrowed(line));
    }
    out
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Like [`truncate`], with control characters shown as `\xNN` (safe for a `Warning` or a log).
fn truncate_printable(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(80) {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str =
        "INVITE sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-1;rport, SIP/2.0/TCP 10.0.0.1\r\n\
Max-Forwards: 70\r\n\
f: \"Alice\" <sip:+12065550100@127.0.0.1>;tag=a1\r\n\
t: <sip:+12065550101@example.com>\r\n\
i: abc@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Subject: a long\r\n  folded header\r\n\
c: application/sdp\r\n\
l: 4\r\n\r\nv=0\r\nextra";

    #[test]
    fn parses_request_with_compact_folded_and_list_headers() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        let Message::Request(r) = &m else { panic!("not a request") };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri.user.as_deref(), Some("+12065550101"));
        assert_eq!(r.headers.get_all(&HeaderName::Via).count(), 2);
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK-1"));
        assert_eq!(r.from().unwrap().tag(), Some("a1"));
        assert_eq!(r.to().unwrap().tag(), None);
        assert_eq!(r.call_id().unwrap(), "abc@127.0.0.1");
        assert_eq!(r.cseq().unwrap().seq, 1);
        assert_eq!(r.headers.get(&HeaderName::Subject), Some("a long folded header"));
        assert_eq!(&r.body[..], b"v=0\r");
        assert_eq!(r.max_forwards(), Some(70));
        let again = Message::parse(&m.to_bytes()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn parses_response() {
        let m = Message::parse(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").unwrap();
        let Message::Response(r) = &m else { panic!("not a response") };
        assert_eq!((r.status, r.reason.as_str()), (180, "Ringing"));
        assert!(r.is_provisional());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b""[..],
            b"\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n",
            b"INVITE sip:a@b SIP/3.0\r\n\r\n",
            b"INVITE  SIP/2.0\r\n\r\n",
            b"SIP/2.0 99 Low\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nNoColon\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc",
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 3\r\n\r\nabc",
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 18446744073709551616\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nSubject: a\rInjected: yes\r\n\r\n",
            b"INV\xffITE sip:a@b SIP/2.0\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        ] {
            assert!(Message::parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn non_utf8_header_bytes_are_read_as_latin1() {
        let m =
            Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nFrom: \"Jos\xe9\" <sip:a@b>;tag=1\r\n\r\n")
                .unwrap();
        assert_eq!(m.headers().get(&HeaderName::From), Some("\"Jos\u{e9}\" <sip:a@b>;tag=1"));
        assert_eq!(Message::parse(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn enforces_limits() {
        let mut m = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
        for i in 0..300 {
            m.push_str(&format!("X-{i}: y\r\n"));
        }
        m.push_str("\r\n");
        assert_eq!(Message::parse(m.as_bytes()), Err(ParseError::TooManyHeaders(256)));
        let big = vec![b'a'; 70_000];
        assert!(matches!(Message::parse(&big), Err(ParseError::TooLarge(_))));
        let long_call_id =
            format!("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: {}\r\n\r\n", "x".repeat(257));
        assert!(matches!(
            Message::parse(long_call_id.as_bytes()),
            Err(ParseError::HeaderTooLong(..))
        ));
        let ok_call_id = format!("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: {}\r\n\r\n", "x".repeat(256));
        assert!(Message::parse(ok_call_id.as_bytes()).is_ok());
        let long_line = format!("OPTIONS sip:a@b SIP/2.0\r\nSubject: {}\r\n\r\n", "x".repeat(9000));
        assert!(matches!(Message::parse(long_line.as_bytes()), Err(ParseError::HeaderTooLong(..))));
    }
}
