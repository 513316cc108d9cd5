//! One call leg's stream: G.711 RTP through the jitter buffer into the muxer. A leg whose codec
//! is not G.711 fails (with the reason the FAILED event carries) and the call goes on.

use common::Instant;
use media::rtp::RtpHeader;
use streaming::g711::Law;
use streaming::jitter::JitterBuffer;
use streaming::muxer::{Chunk, Muxer, StreamInfo};

use super::{StreamCounters, StreamSettings};

/// RTP payload type of comfort noise (RFC 3389): a pause, filled as silence.
const COMFORT_NOISE: u8 = 13;
/// Dynamic payload types (telephone-event and the like) are not audio to stream.
const FIRST_DYNAMIC: u8 = 96;

/// See the module documentation.
pub struct LegStream {
    /// The stream's name (`ChimeVoiceConnector-<VoiceConnectorId>-<uuid>`).
    pub name: String,
    info: StreamInfo,
    settings: StreamSettings,
    /// Set by the first G.711 packet, with the wall time of its arrival (epoch ms).
    pipeline: Option<(Law, JitterBuffer, Muxer)>,
    failed: Option<String>,
    failure_reported: bool,
    /// Whether the stream head was handed out, and the (filled samples, fragments) counted.
    head_sent: bool,
    counted: (u64, u64),
    /// Packets not streamed: telephone events, comfort noise, the other G.711 law.
    pub skipped: u64,
    /// The wall time (epoch ms) of the first audio.
    start_ms: u64,
}

impl LegStream {
    pub fn new(name: String, info: StreamInfo, settings: StreamSettings) -> LegStream {
        LegStream {
            name,
            info,
            settings,
            pipeline: None,
            failed: None,
            failure_reported: false,
            head_sent: false,
            counted: (0, 0),
            skipped: 0,
            start_ms: 0,
        }
    }

    /// Why the leg stopped streaming, once it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The failure, the first time it is asked for after it happened (to log and count once).
    pub fn new_failure(&mut self) -> Option<String> {
        if self.failure_reported {
            return None;
        }
        self.failure_reported = self.failed.is_some();
        self.failed.clone()
    }

    /// Whether any audio was taken.
    pub fn started(&self) -> bool {
        self.pipeline.is_some()
    }

    /// The wall time (epoch ms) of the first audio (0 before it).
    pub fn start_ms(&self) -> u64 {
        self.start_ms
    }

    /// Muxed bytes not yet drained.
    pub fn pending(&self) -> usize {
        self.pipeline.as_ref().map_or(0, |(_, _, mux)| mux.pending())
    }

    /// Fragments closed so far.
    pub fn fragments(&self) -> u64 {
        self.pipeline.as_ref().map_or(0, |(_, _, mux)| mux.fragments())
    }

    /// One accepted RTP packet; `wall_ms` gives its arrival on the wall clock (epoch ms),
    /// asked only for the first.
    pub fn rtp(
        &mut self,
        h: &RtpHeader,
        packet: &[u8],
        now: Instant,
        wall_ms: impl FnOnce() -> u64,
    ) {
        if self.failed.is_some() {
            return;
        }
        let pt = h.payload_type;
        let Some(law) = Law::from_payload_type(pt) else {
            if pt == COMFORT_NOISE || pt >= FIRST_DYNAMIC {
                self.skipped += 1;
            } else {
                self.fail(format!(
                    "the leg's codec (RTP payload type {pt}) is not G.711: only PCMU and PCMA are streamed"
                ));
            }
            return;
        };
        let Some(payload) = packet.get(h.payload_offset..h.payload_offset + h.payload_len) else {
            return;
        };
        if self.pipeline.is_none() {
            self.start_ms = wall_ms();
            let mux = match Muxer::new(self.info.clone(), self.start_ms) {
                Ok(m) => m,
                Err(e) => return self.fail(e.to_string()),
            };
            let jitter = JitterBuffer::new(law, self.settings.jitter_hold);
            self.pipeline = Some((law, jitter, mux));
        }
        let Some((own, jitter, mux)) = &mut self.pipeline else { return };
        if *own != law {
            self.skipped += 1;
            return;
        }
        jitter.push(now, h.ssrc, h.timestamp, payload, &mut |s| mux.pcm(s));
    }

    /// Releases the gaps that waited long enough.
    pub fn poll(&mut self, now: Instant) {
        if let Some((_, jitter, mux)) = &mut self.pipeline {
            jitter.poll(now, &mut |s| mux.pcm(s));
        }
    }

    /// The leg ended: everything buffered is muxed and the last fragment closed.
    pub fn finish(&mut self) {
        if let Some((_, jitter, mux)) = &mut self.pipeline {
            jitter.finish(&mut |s| mux.pcm(s));
            mux.finish();
        }
    }

    /// Moves to the end of `out` what was muxed since the last call (the stream head first,
    /// once), and counts what is new in `c`. Nothing before audio started. (Local files.)
    pub fn drain(&mut self, out: &mut Vec<u8>, c: &mut StreamCounters) {
        if self.pipeline.is_none() {
            return;
        }
        if let Some(head) = self.take_head(c) {
            out.extend_from_slice(&head);
        }
        if let Some((_, _, mux)) = &mut self.pipeline {
            mux.take_output(out);
        }
        self.count(c);
    }

    /// The stream head (EBML header, Segment, Info, Tracks), the first time it is asked for
    /// after audio started; the stream counts as started then.
    pub fn take_head(&mut self, c: &mut StreamCounters) -> Option<Vec<u8>> {
        let (_, _, mux) = self.pipeline.as_ref()?;
        if self.head_sent {
            return None;
        }
        self.head_sent = true;
        c.started += 1;
        let mut head = Vec::with_capacity(256);
        mux.write_header(&mut head);
        Some(head)
    }

    /// Hands `f` what was muxed since the last call, split where fragments begin (an upload
    /// keeps whole fragments until they are acknowledged), and counts what is new in `c`.
    pub fn drain_chunks(&mut self, c: &mut StreamCounters, f: impl FnMut(Chunk<'_>)) {
        if let Some((_, _, mux)) = &mut self.pipeline {
            mux.take_chunks(f);
            self.count(c);
        }
    }

    /// Counts the fill and the fragments new since the last count.
    fn count(&mut self, c: &mut StreamCounters) {
        let Some((_, jitter, mux)) = &self.pipeline else { return };
        let now = (jitter.stats().filled_samples, mux.fragments());
        c.filled_samples += now.0 - self.counted.0;
        c.fragments += now.1 - self.counted.1;
        self.counted = now;
    }

    fn fail(&mut self, reason: String) {
        if let Some((_, jitter, mux)) = &mut self.pipeline {
            jitter.finish(&mut |s| mux.pcm(s));
            mux.finish();
        }
        self.failed = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn leg() -> LegStream {
        let info = StreamInfo {
            tags: vec![("TransactionId".into(), "t".into())],
            track_name: None,
            segment_uid: [0; 16],
            blocks_per_fragment: 50,
            app: "test".into(),
        };
        let settings =
            StreamSettings { jitter_hold: Duration::from_millis(60), blocks_per_fragment: 50 };
        LegStream::new("s".into(), info, settings)
    }

    fn packet(pt: u8, seq: u16) -> (RtpHeader, Vec<u8>) {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(&[0xd5; 160]);
        (RtpHeader::parse(&p).expect("rtp"), p)
    }

    #[test]
    fn g711_is_streamed_events_and_comfort_noise_are_skipped_other_codecs_fail() {
        let mut l = leg();
        let at = |ms: u64| Instant::from_origin(Duration::from_millis(ms));
        for (i, pt) in [8u8, 8, 101, 13, 8].into_iter().enumerate() {
            let (h, p) = packet(pt, i as u16);
            l.rtp(&h, &p, at(i as u64 * 20), || 1_700_000_000_000);
        }
        assert!(l.started() && l.failure().is_none());
        assert_eq!(l.skipped, 2);
        let (h, p) = packet(0, 9);
        l.rtp(&h, &p, at(200), || 0);
        assert_eq!(l.skipped, 3, "the other law is not mixed in");
        let (h, p) = packet(18, 10);
        l.rtp(&h, &p, at(220), || 0);
        assert!(l.failure().is_some_and(|r| r.contains("payload type 18")), "{:?}", l.failure());
        assert!(l.new_failure().is_some() && l.new_failure().is_none(), "reported once");
        let mut out = Vec::new();
        let mut c = StreamCounters::default();
        l.drain(&mut out, &mut c);
        assert_eq!((c.started, c.fragments), (1, 1));
        assert!(out.windows(13).any(|w| w == b"A_PCM/INT/LIT"));
        assert!(
            out.windows(32).any(|w| w == b"AWS_KINESISVIDEO_END_OF_FRAGMENT"),
            "closed on failure"
        );

        let mut g729 = leg();
        let (h, p) = packet(18, 0);
        g729.rtp(&h, &p, at(0), || 0);
        assert!(!g729.started() && g729.failure().is_some());
    }
}
