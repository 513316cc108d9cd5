//! What a call's streams tell the driver, for the CDR's `Streaming`, the streaming detail
//! record and the streaming status events: the relay thread in local mode, the relay thread
//! and each stream's upload task in KVS mode. At most four reports per stream (streaming,
//! started, failed, ended) and one per call, so the channel that carries them is bounded by
//! the calls.

/// One leg's stream as the events describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFacts {
    /// The A leg's audio (the caller's).
    pub is_caller: bool,
    /// `ChimeVoiceConnector-<VoiceConnectorId>-<uuid>`.
    pub name: String,
    /// The stream's ARN when the sink knows one (KVS); local streams get one made up from the
    /// name by the event writer.
    pub arn: Option<String>,
    /// The wall time (epoch ms) of the first audio, the stream's producer start.
    pub start_ms: u64,
    /// The number of the stream's first fragment (KVS's, or the fragment's index in a local
    /// file, from 1).
    pub start_fragment: String,
    /// A recording session's stream: its m-line index and `a=label` (the events' `sdp`).
    pub sdp: Option<(usize, String)>,
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamReport {
    /// A leg's first audio was handed to its stream (KVS mode: `Started` follows at the
    /// first acknowledged fragment). Marks the call's record as streamed.
    Streaming { call: u64, start_ms: u64 },
    /// A leg's stream started (local mode: its first audio was written; KVS: its first
    /// fragment was acknowledged). The STARTED event.
    Started { call: u64, stream: StreamFacts },
    /// A leg cannot be streamed (its codec, or the sink gave up); no `Ended` follows.
    /// `started`: the leg had streamed audio before it failed.
    Failed { call: u64, is_caller: bool, started: bool, reason: String, at_ms: u64 },
    /// A leg's stream ended with its call.
    Ended { call: u64, stream: StreamFacts, end_ms: u64, current_fragment: String },
    /// The call's streams are all done (after its legs' last reports): sent when the last
    /// [`CallClosed`] of the call is dropped.
    Closed { call: u64 },
}

/// Held by whatever may still report on a call's streams (its relay session, each upload
/// task); the last one dropped sends the call's `Closed`.
#[derive(Debug)]
pub struct CallClosed {
    pub call: u64,
    pub reports: tokio::sync::mpsc::UnboundedSender<StreamReport>,
}

impl Drop for CallClosed {
    fn drop(&mut self) {
        // Fails only when the driver is gone (the process is stopping).
        let _ = self.reports.send(StreamReport::Closed { call: self.call });
    }
}

impl StreamReport {
    pub fn call(&self) -> u64 {
        match self {
            StreamReport::Streaming { call, .. }
            | StreamReport::Started { call, .. }
            | StreamReport::Failed { call, .. }
            | StreamReport::Ended { call, .. }
            | StreamReport::Closed { call } => *call,
        }
    }
}
