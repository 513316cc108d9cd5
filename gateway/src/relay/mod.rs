//! Call media: the anchor the B2BUA drives (ports, sockets, SDP through `media::negotiate`),
//! the media threads that relay RTP/RTCP through `media::relay`, and the media-quality records
//! and metrics they emit.

pub mod anchor;
pub mod fork;
pub mod record;
pub mod thread;
