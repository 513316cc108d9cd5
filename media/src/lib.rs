//! voicegw media plane (sans-IO parts).
//!
//! - [`rtp`]: RTP/RTCP headers read in place.
//! - [`stats`]: per-stream receiver statistics (RFC 3550 A.1, A.3, A.8).
//! - [`capture`]: a pcap/pcapng reader down to UDP payloads, for `voicegw analyze` and tests.
//! - [`emodel`]: MOS by the simplified ITU-T G.107 E-model (formats.md §4).
//! - [`sdp`]: session descriptions (parse, inspect, print back).
//! - port ranges and RTP/RTCP port-pair allocation.
//!
//! The relay itself (SDP anchoring, forwarding, SRTP, per-minute records) is the media-plane
//! issue's remaining work.

pub mod capture;
pub mod emodel;
mod ports;
pub mod quality;
pub mod relay;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod srtp;
pub mod stats;

pub use ports::{PortAllocator, PortError, PortRange};
