//! A streamed call's two legs, as the relay session's [`Tap`]: A (the caller, `isCaller`
//! true) and B. At each visit of the relay thread the legs release what waited and hand what
//! they muxed to the sink; when the call closes they are finished.
//!
//! Local sink: the bytes go to the writer thread, one file per leg, and the relay thread
//! reports each stream's start and end. KVS sink: a leg's first audio opens its upload task
//! ([`KvsSink::open`]) with the stream head, and the muxed bytes follow split where fragments
//! begin; the task reports the stream's start (at its first acknowledged fragment) and end.

use std::sync::Arc;

use common::Instant;
use media::relay::{Side, Tap};
use media::rtp::RtpHeader;
use streaming::muxer::{Chunk, StreamInfo};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::leg::LegStream;
use super::local::{LocalSink, Write};
use super::report::{CallClosed, StreamFacts, StreamReport};
use super::{StreamCounters, StreamSettings};
use crate::driver::clock::Clock;
use crate::kvs::uploader::{KvsSink, Piece, StreamJob};
use crate::relay::anchor::{CallContext, StreamSpec};

/// Muxed bytes a leg gathers before they are handed to the sink (about a second of audio).
const DRAIN_AT: usize = 16 * 1024;

/// Where the streams go (`streaming.sink`).
#[derive(Clone)]
pub enum Sink {
    Local(LocalSink),
    Kvs(KvsSink),
}

/// What a relay thread needs to stream calls: the sink and the shared settings.
#[derive(Clone)]
pub struct Streamer {
    pub sink: Sink,
    pub settings: StreamSettings,
    pub clock: Clock,
    /// What the streams did, for the driver (records and status events). Unbounded but
    /// bounded by the calls: at most four reports per stream and one per call.
    pub reports: mpsc::UnboundedSender<StreamReport>,
}

/// A leg's upload task, as its relay thread sees it.
struct Outlet {
    tx: Option<mpsc::Sender<Piece>>,
    /// A piece was dropped (the task was behind): what follows is skipped up to the next
    /// fragment, which the upload can take whole.
    skipping: bool,
}

impl Outlet {
    /// Queues a chunk without waiting: returns (bytes queued, bytes dropped).
    fn send(&mut self, chunk: Chunk<'_>) -> (u64, u64) {
        let n = chunk.bytes.len() as u64;
        let Some(tx) = &self.tx else { return (0, 0) };
        if self.skipping && chunk.fragment.is_none() {
            return (0, n);
        }
        self.skipping = false;
        let piece = Piece::Chunk { fragment: chunk.fragment, bytes: chunk.bytes.to_vec() };
        match tx.try_send(piece) {
            Ok(()) => (n, 0),
            Err(TrySendError::Full(_)) => {
                self.skipping = true;
                (0, n)
            }
            // The task ended (its upload failed and was reported): nothing more to send.
            Err(TrySendError::Closed(_)) => {
                self.tx = None;
                (0, 0)
            }
        }
    }

    /// The leg ended (`failure`: it stopped streaming before).
    fn end(&mut self, at_ms: u64, failure: Option<String>) {
        if let Some(tx) = self.tx.take() {
            // When the queue is full the end is still seen (the channel closes), without
            // the failure's reason.
            let _ = tx.try_send(Piece::End { at_ms, failure });
        }
    }
}

/// See the module documentation.
pub struct CallStreams {
    legs: [LegStream; 2],
    /// KVS: each leg's upload, once its audio started.
    outlets: [Option<Outlet>; 2],
    streamer: Streamer,
    call: u64,
    voice_connector_id: String,
    retention_hours: u32,
    /// A recording session's streams: each side's m-line index and label.
    sdp: [Option<(usize, String)>; 2],
    /// Each leg's start was reported.
    started: [bool; 2],
    /// Dropped when the call's media closes: with the upload tasks' own, the call's `Closed`.
    closed: Option<Arc<CallClosed>>,
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
            // Local files are named by it; a KVS stream's name comes from the control plane.
            let name = stream_name(&ctx.voice_connector_id, rand::random());
            LegStream::new(name, info, streamer.settings)
        };
        let closed = Arc::new(CallClosed { call: ctx.call, reports: streamer.reports.clone() });
        CallStreams {
            legs: [leg("AUDIO_FROM_CALLER"), leg("AUDIO_FROM_CALLEE")],
            outlets: [None, None],
            call: ctx.call,
            voice_connector_id: ctx.voice_connector_id.clone(),
            retention_hours: spec.retention_hours,
            sdp: spec.sdp.clone(),
            streamer,
            started: [false; 2],
            closed: Some(closed),
        }
    }

    /// Releases what waited long enough and hands what was muxed to the sink.
    pub fn visit(&mut self, now: Instant, c: &mut StreamCounters) {
        for leg in &mut self.legs {
            leg.poll(now);
        }
        self.flush(now, false, c);
    }

    /// The call closed: both legs are finished, their files closed or their uploads told.
    pub fn finish(&mut self, now: Instant, c: &mut StreamCounters) {
        for leg in &mut self.legs {
            leg.finish();
        }
        self.flush(now, true, c);
        self.closed = None;
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
                // A leg with an upload ends it with the reason, and its task reports it.
                if self.outlets[i].is_none() {
                    let (at_ms, started) = (self.wall_ms(now), self.started[i]);
                    let call = self.call;
                    self.report(StreamReport::Failed { call, is_caller, started, reason, at_ms });
                }
            }
            if !self.legs[i].started() {
                continue;
            }
            if !self.started[i] {
                self.started[i] = true;
                self.start(i, c);
            }
            let leg_end = end || self.legs[i].failure().is_some();
            // Drained about once a second, not at every visit: each drain is a queue entry
            // and a write of the writer thread, which shares the cores with the relay.
            if !leg_end && self.legs[i].pending() < DRAIN_AT {
                continue;
            }
            match &self.streamer.sink {
                Sink::Local(sink) => {
                    let leg = &mut self.legs[i];
                    let mut bytes = Vec::new();
                    leg.drain(&mut bytes, c);
                    if !bytes.is_empty() {
                        c.bytes += bytes.len() as u64;
                        c.dropped_bytes +=
                            sink.send(Write::Bytes { name: leg.name.clone(), bytes });
                    }
                    if end {
                        let _ = sink.send(Write::End { name: leg.name.clone() });
                        if leg.failure().is_none() {
                            let current_fragment = leg.fragments().to_string();
                            let (stream, end_ms) = (self.facts(i), self.wall_ms(now));
                            let call = self.call;
                            self.report(StreamReport::Ended {
                                call,
                                stream,
                                end_ms,
                                current_fragment,
                            });
                        }
                    }
                }
                Sink::Kvs(_) => {
                    let Some(outlet) = &mut self.outlets[i] else { continue };
                    let (mut queued, mut dropped) = (0, 0);
                    self.legs[i].drain_chunks(c, |chunk| {
                        let (q, d) = outlet.send(chunk);
                        queued += q;
                        dropped += d;
                    });
                    c.bytes += queued;
                    c.dropped_bytes += dropped;
                    if leg_end {
                        let at_ms = self.streamer.clock.wall_of(now);
                        let at_ms = at_ms
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64);
                        outlet.end(at_ms, self.legs[i].failure().map(str::to_string));
                    }
                }
            }
        }
    }

    /// Leg `i`'s audio started: local, its STARTED report; KVS, its upload task.
    fn start(&mut self, i: usize, c: &mut StreamCounters) {
        match &self.streamer.sink {
            Sink::Local(_) => {
                self.report(StreamReport::Started { call: self.call, stream: self.facts(i) })
            }
            Sink::Kvs(kvs) => {
                let leg = &mut self.legs[i];
                let start_ms = leg.start_ms();
                let Some(head) = leg.take_head(c) else { return };
                c.bytes += head.len() as u64;
                let call = self.call;
                self.report(StreamReport::Streaming { call, start_ms });
                let Some(closed) = self.closed.clone() else { return };
                let tx = kvs.open(StreamJob {
                    call,
                    is_caller: i == 0,
                    voice_connector_id: self.voice_connector_id.clone(),
                    retention_hours: self.retention_hours,
                    head,
                    start_ms,
                    sdp: self.sdp[i].clone(),
                    closed,
                });
                self.outlets[i] = Some(Outlet { tx: Some(tx), skipping: false });
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
            sdp: self.sdp[i].clone(),
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
