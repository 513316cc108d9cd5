//! Call audio streaming, sans-IO: what turns a call leg's RTP into the Matroska stream Kinesis
//! Video Streams takes, and what reads KVS's answers. Nothing here reads a clock, sleeps or
//! owns a socket: time comes in as `now` (and wall time as milliseconds since the epoch), and
//! bytes go out to whoever drives it (a local file, or a PutMedia connection).
//!
//! - [`g711`]: µ-law/A-law to 16-bit PCM.
//! - [`jitter`]: RTP packets in any order in, a gap-free PCM timeline out.
//! - [`mkv`]: the EBML elements KVS needs; [`muxer`]: PCM to fragments (Clusters) with their
//!   tags, 20 ms blocks, absolute millisecond timecodes.
//! - [`ack`]: PutMedia's acknowledgement stream, parsed incrementally, and its error table.
//! - [`upload`]: one stream's PutMedia connections: what to send, acknowledgements,
//!   reconnects with backoff, rotation, a bounded buffer, giving up.

pub mod ack;
/// G.711 lives in `media` (the meeting bridge encodes too); its old path stays.
pub use media::g711;
pub mod jitter;
pub mod mkv;
pub mod muxer;
pub mod upload;
