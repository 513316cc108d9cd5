//! voicegw media plane (sans-IO parts).
//!
//! - [`rtp`]: RTP/RTCP headers read in place.
//! - [`stats`]: per-stream receiver statistics (RFC 3550 A.1, A.3, A.8).
//! - [`bridge`]: a meeting's audio bridge (N−1 mixes paced by one media clock).
//! - [`capture`]: a pcap/pcapng reader down to UDP payloads, for `voicegw analyze` and tests.
//! - [`emodel`]: MOS by the simplified ITU-T G.107 E-model (formats.md §4).
//! - [`g711`]: µ-law/A-law to and from 16-bit PCM.
//! - [`sdp`]: session descriptions (parse, inspect, print back).
//! - [`negotiate`]: SDP offer/answer through the anchor and SDES key choice per leg.
//! - [`relay`]: a call's forwarding decisions (latching, counters, RTCP, SRTP in place).
//! - [`quality`]: a record period's figures per leg and direction, and the MOS.
//! - [`rtcp`], [`srtp`]: RTCP reports; SRTP/SRTCP (RFC 3711).
//! - [`dtmf`]: DTMF keys from RFC 4733 events, SIP INFO bodies and in-band tones.
//! - [`wav`], [`resample`]: prompt audio read from WAV files and brought to 8 kHz.
//! - port ranges and RTP/RTCP port-pair allocation.

pub mod bridge;
pub mod capture;
pub mod conference;
pub mod dtmf;
pub mod emodel;
pub mod g711;
pub mod negotiate;
mod ports;
pub mod quality;
pub mod relay;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod srtp;
pub mod stats;
pub mod wav;

pub use ports::{PortAllocator, PortError, PortRange};
