//! Call audio streaming, the IO side of the `streaming` crate: each streamed call's two legs
//! become two streams (`isCaller` true for A, false for B). The relay thread copies the RTP
//! payloads its sessions accepted ([`deferred`]) and hands them, once per turn, to its
//! streaming [`worker`], where [`call::CallStreams`] put them through each leg's jitter buffer
//! and muxer and hand what they muxed to the sink: the local sink ([`local`], one Matroska file
//! per stream) or KVS (`crate::kvs::uploader`). Nothing is allocated per packet.

pub mod call;
pub mod deferred;
pub mod leg;
pub mod local;
pub mod metadata;
pub mod report;
pub mod worker;

use std::time::Duration;

/// What a relay thread's streams did since it last reported them to the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounters {
    pub started: u64,
    pub failed: u64,
    pub bytes: u64,
    pub fragments: u64,
    pub filled_samples: u64,
    pub dropped_bytes: u64,
}

impl StreamCounters {
    pub fn is_empty(&self) -> bool {
        *self == StreamCounters::default()
    }

    /// Adds them to the process metrics and starts again from zero.
    pub fn report(&mut self, r: &mut metrics::Registry) {
        use metrics::names;
        let l = metrics::Labels::default();
        r.add(names::STREAMS_STARTED, &l, self.started as f64);
        r.add(names::STREAMS_FAILED, &l, self.failed as f64);
        r.add(names::STREAM_BYTES, &l, self.bytes as f64);
        r.add(names::STREAM_FRAGMENTS, &l, self.fragments as f64);
        r.add(names::STREAM_FILL_MILLISECONDS, &l, (self.filled_samples / 8) as f64);
        r.add(names::STREAM_DROPPED_BYTES, &l, self.dropped_bytes as f64);
        *self = StreamCounters::default();
    }
}

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
