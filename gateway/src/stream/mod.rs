//! Call audio streaming, the IO side of the `streaming` crate: each streamed call's two legs
//! become two streams (`isCaller` true for A, false for B). The relay thread feeds them the
//! RTP its session accepted ([`call::CallStreams`] is the session's `Tap`) and hands what they
//! muxed to the sink at each visit; the local sink ([`local`]) writes one Matroska file per
//! stream. Nothing here runs per packet but the jitter buffer and the muxer (no allocation).

pub mod call;
pub mod leg;
pub mod local;

use std::time::Duration;

/// What every stream of the process shares (from `[streaming]`).
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    pub jitter_hold: Duration,
    pub blocks_per_fragment: u32,
}

impl StreamSettings {
    pub fn from_config(c: &connector::config::StreamingConfig) -> StreamSettings {
        StreamSettings {
            jitter_hold: Duration::from_millis(u64::from(c.jitter_hold_ms)),
            blocks_per_fragment: c.fragment_ms / 20,
        }
    }
}
