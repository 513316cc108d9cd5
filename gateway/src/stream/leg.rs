//! One call leg's stream: G.711 RTP through the jitter buffer into the muxer. A leg whose codec
//! is not G.711 fails (with the reason the FAILED event carries) and the call goes on.

use common::Instant;
use media::rtp::RtpHeader;
use streaming::g711::Law;
use streaming::jitter::JitterBuffer;
use streaming::muxer::{Muxer, StreamInfo};

use super::StreamSettings;

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
    /// Packets not streamed: telephone events, comfort noise, the other G.711 law.
    pub skipped: u64,
}

impl LegStream {
    pub fn new(name: String, info: StreamInfo, settings: StreamSettings) -> LegStream {
        LegStream { name, info, settings, pipeline: None, failed: None, skipped: 0 }
    }

    /// Why the leg stopped streaming, once it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Whether any audio was taken.
    pub fn started(&self) -> bool {
        self.pipeline.is_some()
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
            let mux = match Muxer::new(self.info.clone(), wall_ms()) {
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

    /// The stream head (written once per file or connection), if audio started.
    pub fn header(&self, out: &mut Vec<u8>) {
        if let Some((_, _, mux)) = &self.pipeline {
            mux.write_header(out);
        }
    }

    /// Moves what was muxed since the last call to the end of `out`.
    pub fn take(&mut self, out: &mut Vec<u8>) {
        if let Some((_, _, mux)) = &mut self.pipeline {
            mux.take_output(out);
        }
    }

    /// Counters for the records and metrics: samples of silence filled, fragments.
    pub fn figures(&self) -> (u64, u64) {
        self.pipeline.as_ref().map_or((0, 0), |(_, j, m)| (j.stats().filled_samples, m.fragments()))
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
        let mut out = Vec::new();
        l.header(&mut out);
        l.take(&mut out);
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
