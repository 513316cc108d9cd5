//! Message framing on stream transports (TCP, TLS): RFC 3261 §18.3 (Content-Length delimits the
//! body) and RFC 5626 §3.5.1 keep-alives (a CRLFCRLF "ping" is answered with a CRLF "pong").

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::message::{content_length_of_head, header_end, ParseLimits};

/// Why a stream must be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramingError {
    #[error("header section exceeds {0} bytes")]
    HeadersTooLarge(usize),
    #[error("message of {0} bytes exceeds the limit of {1}")]
    MessageTooLarge(usize, usize),
    #[error("bad Content-Length on a stream transport: {0}")]
    BadContentLength(String),
    #[error("more than {0} header lines")]
    TooManyHeaders(usize),
}

/// What the framer found at the head of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete SIP message (headers and body), ready for [`crate::Message::parse`].
    Message(Bytes),
    /// A CRLFCRLF keep-alive ping: answer with [`PONG`].
    Ping,
    /// A CRLF keep-alive pong.
    Pong,
}

/// The keep-alive answer to a ping.
pub const PONG: &[u8] = b"\r\n";

/// Accumulates stream bytes and cuts them into messages.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: ParseLimits,
    /// Bytes at the head of `buf` already searched for the end of the header section, so a
    /// peer that trickles a header byte by byte costs linear, not quadratic, work.
    scanned: usize,
}

impl StreamFramer {
    pub fn new(limits: ParseLimits) -> Self {
        StreamFramer { buf: BytesMut::with_capacity(4096), limits, scanned: 0 }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that do not yet form a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed, or an error after which
    /// the connection should be closed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            self.scanned = 0;
            return Ok(Some(Frame::Ping));
        }
        if self.buf.starts_with(b"\r\n") && self.buf.len() >= 3 && !self.buf[2..].starts_with(b"\r")
        {
            self.buf.advance(2);
            self.scanned = 0;
            return Ok(Some(Frame::Pong));
        }
        if self.buf.starts_with(b"\r\n") || self.buf.starts_with(b"\r") || self.buf.is_empty() {
            return Ok(None);
        }
        let max = self.limits.max_message_size;
        // Resume the search a few bytes before where the last one stopped (a terminator may
        // straddle two reads).
        let from = self.scanned.saturating_sub(3);
        let Some(end) = header_end(&self.buf[from..]).map(|e| e + from) else {
            self.scanned = self.buf.len();
            if self.buf.len() > max {
                return Err(FramingError::HeadersTooLarge(max));
            }
            return Ok(None);
        };
        let head = &self.buf[..end];
        let lines = head.split(|&b| b == b'\n').filter(|l| !l.is_empty() && *l != b"\r").count();
        if lines > self.limits.max_headers + 1 {
            return Err(FramingError::TooManyHeaders(self.limits.max_headers));
        }
        // The parser's own reading of Content-Length (one, digits only; absent means 0: a
        // stream message without one has no body we could delimit), so the framer and the
        // parser can never disagree on where a message ends.
        let cl = content_length_of_head(head)
            .map_err(|e| FramingError::BadContentLength(e.to_string()))?
            .unwrap_or(0);
        let total = end
            .checked_add(cl)
            .filter(|t| *t <= max)
            .ok_or(FramingError::MessageTooLarge(end.saturating_add(cl), max))?;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.scanned = 0;
        Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer() -> StreamFramer {
        StreamFramer::new(ParseLimits { max_message_size: 1000, max_headers: 10 })
    }

    #[test]
    fn splits_messages_and_keepalives_across_reads() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabc";
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(msg);
        stream.extend_from_slice(msg);
        stream.extend_from_slice(b"\r\nOPTIONS");
        let mut f = framer();
        let mut out = Vec::new();
        for chunk in stream.chunks(7) {
            f.push(chunk);
            while let Some(fr) = f.next_frame().unwrap() {
                out.push(fr);
            }
        }
        assert_eq!(
            out,
            vec![
                Frame::Ping,
                Frame::Message(Bytes::from_static(msg)),
                Frame::Message(Bytes::from_static(msg)),
                Frame::Pong
            ]
        );
        assert_eq!(f.buffered(), 7);
    }

    #[test]
    fn limits() {
        let mut f = framer();
        f.push(&[b'a'; 1001]);
        assert_eq!(f.next_frame(), Err(FramingError::HeadersTooLarge(1000)));
        let mut f = framer();
        f.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n");
        assert!(matches!(f.next_frame(), Err(FramingError::MessageTooLarge(..))));
        let mut f = framer();
        f.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n");
        assert!(matches!(f.next_frame(), Err(FramingError::BadContentLength(_))));
        let mut f = framer();
        f.push(b"INVITE sip:a@b SIP/2.0\r\n");
        for _ in 0..11 {
            f.push(b"X: y\r\n");
        }
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::TooManyHeaders(10)));
    }

    #[test]
    fn hostile_content_lengths() {
        for bad in [
            &b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 18446744073709551615\r\n\r\n"[..],
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nl: 0\r\nContent-Length: 30\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: +3\r\n\r\nabc",
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: \r\n\r\n",
        ] {
            let mut f = framer();
            f.push(bad);
            assert!(f.next_frame().is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn framer_and_parser_agree_on_the_header_end() {
        // A bare-LF blank line ends the header section for the parser, so it does for the
        // framer: the Content-Length after it is body text, not a header.
        let msg = b"OPTIONS sip:a@b SIP/2.0\nl: 0\n\nContent-Length: 30\r\n\r\n";
        let mut f = framer();
        f.push(msg);
        let Some(Frame::Message(m)) = f.next_frame().unwrap() else { panic!("no message") };
        assert_eq!(&m[..], b"OPTIONS sip:a@b SIP/2.0\nl: 0\n\n");
    }
}
