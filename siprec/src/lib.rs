//! SIPREC (RFC 7866), sans-IO: what voicegw needs to be a recording server for the SBCs and
//! PBXes that record through it. Nothing here reads a clock or owns a socket.
//!
//! - [`metadata`]: the recording metadata (RFC 7865, `application/rs-metadata+xml`) as a
//!   typed model: the session, its participants and streams, who sends and receives which
//!   stream, start and stop times. Parsed from the shapes real recording clients send (the RFC's
//!   and the earlier draft's still used by SBCs), bounded against hostile documents, merged on
//!   partial updates, and given out as JSON for the streaming events.
//! - [`offer`]: a recording session's offer: how an INVITE says it is one, its SDP and
//!   metadata parts, its audio streams (index, label, source, codec, direction) with what
//!   vendors do differently, and the `a=recvonly` answer.
//! - [`srs`]: the recording server, a SIP application on the gateway's endpoint: it answers
//!   recording sessions itself and reports them to the gateway.

pub mod client;
pub mod metadata;
pub mod offer;
pub mod srs;
