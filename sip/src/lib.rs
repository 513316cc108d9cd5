//! Sans-IO SIP stack for voicegw.
//!
//! Nothing in this crate reads a clock, sleeps or owns a socket: every entry point takes the
//! bytes it was given and an explicit `now`, and returns what to send, the events and the next
//! timeout. The tokio driver in the `voicegw` binary does the IO.
//!
//! - [`message`]: parsing and printing of SIP requests, responses, URIs and headers (RFC 3261 §7, §25).
//! - [`framing`]: message framing on stream transports (TCP/TLS) by Content-Length.
//! - [`transaction`]: the four RFC 3261 §17 transaction machines and their matching rules.
//! - [`dialog`]: dialog state (RFC 3261 §12).
//! - [`endpoint`]: the SIP endpoint every application sits on (transactions, dialogs, timers,
//!   the ordered output queue) and the [`endpoint::Application`] trait.
//! - [`b2bua`]: the first application, a back-to-back user agent that relays calls between an
//!   inbound and an outbound leg.

pub mod b2bua;
pub mod dialog;
pub mod endpoint;
pub mod framing;
pub mod message;
pub mod transaction;
pub mod transport;

pub use common::Instant;
pub use message::{
    Header, HeaderName, Headers, Message, Method, NameAddr, ParseError, Request, Response, Uri, Via,
};
pub use transport::{Peer, Transport};
