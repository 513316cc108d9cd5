//! voicegw media plane.
//!
//! This crate will hold the sans-IO RTP/RTCP relay and its statistics (issue: media plane). For
//! now it owns the media port range: its validation and RTP/RTCP pair allocation, which the
//! configuration already uses.

mod ports;

pub use ports::{PortAllocator, PortError, PortRange};
