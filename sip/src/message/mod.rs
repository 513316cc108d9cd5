//! SIP messages (RFC 3261 §7, §20, §25): parsing, typed header access and printing.
//!
//! A [`Message`] keeps every header as its (unfolded) text so that nothing a peer sent is lost;
//! typed views ([`Via`], [`NameAddr`], [`CSeq`], [`Uri`]) are parsed on demand. Headers whose
//! grammar allows several comma-separated values (Via, Route, Contact, …) are split into one
//! [`Header`] per value when parsed, so `print` writes one value per line and a re-parse is equal.

mod auth;
mod cseq;
mod error;
mod headers;
mod method;
pub mod multipart;
mod name_addr;
mod params;
mod parse;
mod print;
mod uri;
mod via;

pub use auth::{Digest, DigestParam};
pub use cseq::CSeq;
pub use error::ParseError;
pub use headers::{Header, HeaderName, Headers};
pub(crate) use method::is_token;
pub use method::Method;
pub use name_addr::NameAddr;
pub use params::Params;
pub(crate) use parse::{content_length_of_head, header_end};
pub use parse::{parse_message, ParseLimits, MAX_CALL_ID_LEN, MAX_HEADER_LINE_LEN};
pub use uri::{Scheme, Uri};
pub use via::Via;

/// The RFC 3261 branch magic cookie (`z9hG4bK`).
pub fn via_cookie() -> &'static str {
    via::BRANCH_COOKIE
}

use bytes::Bytes;

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    /// Parses one complete message from a datagram or a framed stream message.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        parse_message(bytes, &ParseLimits::default())
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// Prints the message; Content-Length is always written and matches the body.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

/// Typed accessors shared by requests and responses.
macro_rules! common_accessors {
    ($t:ty) => {
        impl $t {
            /// The topmost Via.
            pub fn top_via(&self) -> Result<Via, ParseError> {
                let h =
                    self.headers.get(&HeaderName::Via).ok_or(ParseError::MissingHeader("Via"))?;
                Via::parse(h)
            }
            pub fn call_id(&self) -> Result<&str, ParseError> {
                self.headers.get(&HeaderName::CallId).ok_or(ParseError::MissingHeader("Call-ID"))
            }
            pub fn from(&self) -> Result<NameAddr, ParseError> {
                let h =
                    self.headers.get(&HeaderName::From).ok_or(ParseError::MissingHeader("From"))?;
                NameAddr::parse(h)
            }
            pub fn to(&self) -> Result<NameAddr, ParseError> {
                let h = self.headers.get(&HeaderName::To).ok_or(ParseError::MissingHeader("To"))?;
                NameAddr::parse(h)
            }
            pub fn cseq(&self) -> Result<CSeq, ParseError> {
                let h =
                    self.headers.get(&HeaderName::CSeq).ok_or(ParseError::MissingHeader("CSeq"))?;
                CSeq::parse(h)
            }
            /// The first Contact, if any (`*` is returned as an error).
            pub fn contact(&self) -> Option<Result<NameAddr, ParseError>> {
                self.headers.get(&HeaderName::Contact).map(NameAddr::parse)
            }
            /// All Record-Route values in order.
            pub fn record_route(&self) -> Result<Vec<NameAddr>, ParseError> {
                self.headers.get_all(&HeaderName::RecordRoute).map(NameAddr::parse).collect()
            }
            /// The Content-Type value, if any.
            pub fn content_type(&self) -> Option<&str> {
                self.headers.get(&HeaderName::ContentType)
            }
        }
    };
}
common_accessors!(Request);
common_accessors!(Response);

impl Request {
    pub fn new(method: Method, uri: Uri) -> Request {
        Request { method, uri, headers: Headers::default(), body: Bytes::new() }
    }

    /// Max-Forwards, if present and numeric.
    pub fn max_forwards(&self) -> Option<u32> {
        self.headers.get(&HeaderName::MaxForwards).and_then(|v| v.trim().parse().ok())
    }
}

impl Response {
    pub fn new(status: u16, reason: impl Into<String>) -> Response {
        Response { status, reason: reason.into(), headers: Headers::default(), body: Bytes::new() }
    }

    /// 1xx.
    pub fn is_provisional(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The status class digit (1–6).
    pub fn class(&self) -> u16 {
        self.status / 100
    }
}

/// The standard reason phrase of a status code (RFC 3261 §21), or "Unknown".
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}
