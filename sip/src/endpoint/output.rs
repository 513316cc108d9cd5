//! What the endpoint wants done, and what it counts.

use bytes::Bytes;

use crate::Peer;

/// What the endpoint and its application want done, in the order it must be done: `E` is the
/// application's event (the call facts), `U` its media update, which comes out before the
/// message carrying the SDP it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<E, U = std::convert::Infallible> {
    Transmit { peer: Peer, bytes: Bytes },
    Event(E),
    Media(U),
}

/// Counters kept by the endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Requests answered 400 because they did not parse.
    pub bad_requests: u64,
    /// Malformed or unmatched messages dropped.
    pub dropped: u64,
    /// Requests refused with 503 because the transaction table was full.
    pub overloaded: u64,
    /// Responses sent or relayed by status class (index 1–6).
    pub responses_sent: [u64; 7],
}
