//! A streamed call's two legs, as the relay session's [`Tap`]: A (the caller, `isCaller`
//! true) and B. At each visit of the relay thread the legs release what waited and hand what
//! they muxed to the sink; when the call closes they are finished.

use common::Instant;
use media::relay::{Side, Tap};
use media::rtp::RtpHeader;
use streaming::muxer::StreamInfo;

use super::leg::LegStream;
use super::local::{LocalSink, Write};
use super::report::{StreamFacts, StreamReport};
use super::{StreamCounters, StreamSettings};
use crate::driver::clock::Clock;
use crate::relay::anchor::{CallContext, StreamSpec};

/// Muxed bytes a leg gathers before they are handed to the sink (about a second of audio).
const DRAIN_AT: usize = 16 * 1024;

/// What a relay thread needs to stream calls: the sink and the shared settings.
#[derive(Clone)]
pub struct Streamer {
    pub sink: LocalSink,
    pub settings: StreamSettings,
    pub clock: Clock,
    /// What the streams did, for the driver (records and status events). Unbounded but
    /// bounded by the calls: at most three reports per stream and one per call.
    pub reports: tokio::sync::mpsc::UnboundedSender<StreamReport>,
}

/// See the module documentation.
pub struct CallStreams {
    legs: [LegStream; 2],
    streamer: Streamer,
    call: u64,
    /// Each leg's start was reported.
    started: [bool; 2],
}

/// `ChimeVoiceConnector-<VoiceConnectorId>-<uuid>` (formats.md §9).
pub fn stream_name(voice_connector_id: &str, random: [u8; 16]) -> String {
    format!("ChimeVoiceConnector-{voice_connector_id}-{}", common::uuid::uuid_v4(random))
}

/// A tag value as KVS takes it: at most 256 bytes, cut at a character boundary (a Call-ID
/// comes from the peer and may be anything SIP allows).
fn tag_value(v: &str) -> String {
    let mut end = v.len().min(256);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v[..end].to_string()
}

impl CallStreams {
    pub fn new(ctx: &CallContext, spec: &StreamSpec, streamer: Streamer) -> CallStreams {
        let leg = |track: &str| {
            let info = StreamInfo {
                tags: vec![
                    ("TransactionId".into(), ctx.transaction_id.clone()),
                    ("VoiceConnectorId".into(), ctx.voice_connector_id.clone()),
                    ("CallId".into(), tag_value(&spec.call_id)),
                ],
                track_name: Some(track.into()),
                segment_uid: rand::random(),
                blocks_per_fragment: streamer.settings.blocks_per_fragment,
                app: concat!("voicegw ", env!("CARGO_PKG_VERSION")).into(),
            };
            let name = stream_name(&ctx.voice_connector_id, rand::random());
            LegStream::new(name, info, streamer.settings)
        };
        CallStreams {
            legs: [leg("AUDIO_FROM_CALLER"), leg("AUDIO_FROM_CALLEE")],
            streamer,
            call: ctx.call,
            started: [false; 2],
        }
    }

    /// Releases what waited long enough and hands what was muxed to the sink.
    pub fn visit(&mut self, now: Instant, c: &mut StreamCounters) {
        for leg in &mut self.legs {
            leg.poll(now);
        }
        self.flush(now, false, c);
    }

    /// The call closed: both legs are finished and their files closed.
    pub fn finish(&mut self, now: Instant, c: &mut StreamCounters) {
        for leg in &mut self.legs {
            leg.finish();
        }
        self.flush(now, true, c);
        self.report(StreamReport::Closed { call: self.call });
    }

    fn report(&self, r: StreamReport) {
        // Fails only when the driver is gone (the process is stopping).
        let _ = self.streamer.reports.send(r);
    }

    fn wall_ms(&self, now: Instant) -> u64 {
        let wall = self.streamer.clock.wall_of(now);
        wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    fn flush(&mut self, now: Instant, end: bool, c: &mut StreamCounters) {
        for i in 0..2 {
            let is_caller = i == 0;
            if let Some(reason) = self.legs[i].new_failure() {
                c.failed += 1;
                let leg = &self.legs[i];
                tracing::warn!(call = self.call, stream = %leg.name, %reason, "call audio not streamed");
                let (at_ms, started) = (self.wall_ms(now), self.started[i]);
                let call = self.call;
                self.report(StreamReport::Failed { call, is_caller, started, reason, at_ms });
            }
            let leg = &self.legs[i];
            if !leg.started() {
                continue;
            }
            if !self.started[i] {
                self.started[i] = true;
                self.report(StreamReport::Started { call: self.call, stream: self.facts(i) });
            }
            let leg = &mut self.legs[i];
            // Drained about once a second, not at every visit: each drain is a queue entry
            // and a write of the writer thread, which shares the cores with the relay.
            if !end && leg.pending() < DRAIN_AT {
                continue;
            }
            let mut bytes = Vec::new();
            leg.drain(&mut bytes, c);
            if !bytes.is_empty() {
                c.bytes += bytes.len() as u64;
                c.dropped_bytes +=
                    self.streamer.sink.send(Write::Bytes { name: leg.name.clone(), bytes });
            }
            if end {
                let _ = self.streamer.sink.send(Write::End { name: leg.name.clone() });
                if leg.failure().is_none() {
                    let current_fragment = leg.fragments().to_string();
                    let (stream, end_ms) = (self.facts(i), self.wall_ms(now));
                    let call = self.call;
                    self.report(StreamReport::Ended { call, stream, end_ms, current_fragment });
                }
            }
        }
    }

    /// Leg `i`'s stream as the events describe it (local: fragments counted from 1).
    fn facts(&self, i: usize) -> StreamFacts {
        let leg = &self.legs[i];
        StreamFacts {
            is_caller: i == 0,
            name: leg.name.clone(),
            arn: None,
            start_ms: leg.start_ms(),
            start_fragment: "1".into(),
        }
    }
}

impl Tap for CallStreams {
    fn rtp(&mut self, side: Side, header: &RtpHeader, packet: &[u8], now: Instant) {
        let leg = &mut self.legs[side.index()];
        let clock = self.streamer.clock;
        leg.rtp(header, packet, now, || {
            let wall = clock.wall_of(now);
            wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tag_values_fit_kvs() {
        let name = stream_name("abcdef1ghij2klmno3pqr4", [0; 16]);
        assert_eq!(
            name,
            "ChimeVoiceConnector-abcdef1ghij2klmno3pqr4-00000000-0000-4000-8000-000000000000"
        );
        assert_eq!(tag_value("abc@host"), "abc@host");
        let long = "é".repeat(200); // 400 bytes
        let cut = tag_value(&long);
        assert_eq!((cut.len(), cut.chars().count()), (256, 128));
    }
}
