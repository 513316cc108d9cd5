//! What a relay thread tells the driver about a call's streams, for the CDR's `Streaming`, the
//! streaming detail record and the streaming status events. At most three reports per stream
//! (started, failed, ended), so the channel that carries them is bounded by the calls.

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
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamReport {
    /// A leg's first audio reached its stream.
    Started { call: u64, stream: StreamFacts },
    /// A leg cannot be streamed (its codec, or the sink gave up); no `Ended` follows.
    /// `started`: the leg had streamed audio before it failed.
    Failed { call: u64, is_caller: bool, started: bool, reason: String, at_ms: u64 },
    /// A leg's stream ended with its call.
    Ended { call: u64, stream: StreamFacts, end_ms: u64, current_fragment: String },
    /// The call's streams are all done (after its legs' last reports).
    Closed { call: u64 },
}

impl StreamReport {
    pub fn call(&self) -> u64 {
        match self {
            StreamReport::Started { call, .. }
            | StreamReport::Failed { call, .. }
            | StreamReport::Ended { call, .. }
            | StreamReport::Closed { call } => *call,
        }
    }
}
