//! What a meeting participant's leg needs besides the bridge: their keys heard from their RTP
//! ([`KeyListener`]: RFC 4733 telephone-events when negotiated, in-band tones in their audio
//! otherwise, never both for one key), and prompts played to them ([`PromptPlayer`]: clips
//! queued, cut into 20 ms frames, stopped when they start typing).

use std::collections::VecDeque;
use std::sync::Arc;

use super::FRAME;
use crate::dtmf::inband::InbandDetector;
use crate::dtmf::telephone_event::EventReceiver;
use crate::dtmf::Digit;
use crate::g711::Law;
use crate::rtp::RtpHeader;

/// Where a key was heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Rfc4733,
    InBand,
}

/// See the module documentation.
#[derive(Debug)]
pub struct KeyListener {
    law: Law,
    dtmf_pt: Option<u8>,
    events: EventReceiver,
    inband: InbandDetector,
    /// A telephone-event arrived: the device sends events, its audio is not searched for tones
    /// any more (a device that sends both would otherwise give every key twice).
    events_seen: bool,
    decoded: [i16; FRAME],
}

impl KeyListener {
    /// A participant sending `law` audio and telephone-events on `dtmf_pt` (when negotiated).
    pub fn new(law: Law, dtmf_pt: Option<u8>) -> KeyListener {
        KeyListener {
            law,
            dtmf_pt,
            events: EventReceiver::new(),
            inband: InbandDetector::new(),
            events_seen: false,
            decoded: [0; FRAME],
        }
    }

    /// One RTP packet from the participant; `found` gets each key that starts in it.
    pub fn rtp(&mut self, packet: &[u8], found: impl FnMut(Digit, KeySource)) {
        if let Ok(h) = RtpHeader::parse(packet) {
            self.rtp_parsed(&h, packet, found);
        }
    }

    /// [`KeyListener::rtp`] for a packet whose header the caller parsed already.
    pub fn rtp_parsed(
        &mut self,
        h: &RtpHeader,
        packet: &[u8],
        mut found: impl FnMut(Digit, KeySource),
    ) {
        let Some(payload) = packet.get(h.payload_offset..h.payload_offset + h.payload_len) else {
            return;
        };
        if Some(h.payload_type) == self.dtmf_pt {
            self.events_seen = true;
            if let Some(d) = self.events.packet(h.timestamp, payload) {
                found(d, KeySource::Rfc4733);
            }
            return;
        }
        if self.events_seen || h.payload_type != self.law.payload_type() {
            return;
        }
        for chunk in payload.chunks(FRAME) {
            for (out, code) in self.decoded.iter_mut().zip(chunk) {
                *out = self.law.decode(*code);
            }
            self.inband.push(&self.decoded[..chunk.len()], |d| found(d, KeySource::InBand));
        }
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct PromptPlayer {
    /// Clips queued, with how far the first one has played.
    queue: VecDeque<Arc<[i16]>>,
    at: usize,
}

impl PromptPlayer {
    pub fn new() -> PromptPlayer {
        PromptPlayer::default()
    }

    /// Queues `clip` after those playing.
    pub fn play(&mut self, clip: Arc<[i16]>) {
        if !clip.is_empty() {
            self.queue.push_back(clip);
        }
    }

    /// Stops everything playing and queued.
    pub fn stop(&mut self) {
        self.queue.clear();
        self.at = 0;
    }

    pub fn is_playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The next 20 ms of prompt into `frame` (silence after a clip's end); false when nothing
    /// is playing.
    pub fn next_frame(&mut self, frame: &mut [i16; FRAME]) -> bool {
        let Some(clip) = self.queue.front() else { return false };
        let end = (self.at + FRAME).min(clip.len());
        let n = end - self.at;
        frame[..n].copy_from_slice(&clip[self.at..end]);
        frame[n..].fill(0);
        self.at = end;
        if self.at >= clip.len() {
            self.queue.pop_front();
            self.at = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn event(code: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [code, if end { 0x8a } else { 0x0a }, d[0], d[1]]
    }

    /// `ms` of key `pair` (row and column frequencies) as A-law frames from `ts`.
    fn tone_frames(pair: (f32, f32), ms: usize, ts: u32) -> Vec<Vec<u8>> {
        (0..ms / 20)
            .map(|f| {
                let payload: Vec<u8> = (0..FRAME)
                    .map(|i| {
                        let t = (f * FRAME + i) as f32 / 8000.0;
                        let v = 6000.0 * (2.0 * std::f32::consts::PI * pair.0 * t).sin()
                            + 6000.0 * (2.0 * std::f32::consts::PI * pair.1 * t).sin();
                        Law::ALaw.encode(v as i16)
                    })
                    .collect();
                rtp(8, f as u16, ts + (f * FRAME) as u32, &payload)
            })
            .collect()
    }

    #[test]
    fn keys_come_from_telephone_events_and_then_not_from_the_audio() {
        let mut k = KeyListener::new(Law::ALaw, Some(101));
        let mut got = Vec::new();
        // In-band first (a device before it sent any event): heard.
        for p in tone_frames((770.0, 1336.0), 100, 0) {
            k.rtp(&p, |d, s| got.push((d.as_char(), s)));
        }
        // Events: each key once, whatever repeats.
        for (ts, code, end) in
            [(1600, 1, false), (1600, 1, true), (1600, 1, true), (3200, 11, true)]
        {
            k.rtp(&rtp(101, 9, ts, &event(code, end, 400)), |d, s| got.push((d.as_char(), s)));
        }
        // Tones after events were seen are the same keys again: not reported.
        for p in tone_frames((770.0, 1336.0), 100, 5000) {
            k.rtp(&p, |d, s| got.push((d.as_char(), s)));
        }
        assert_eq!(
            got,
            [('5', KeySource::InBand), ('1', KeySource::Rfc4733), ('#', KeySource::Rfc4733)]
        );
    }

    #[test]
    fn a_device_without_telephone_events_is_heard_in_band() {
        let mut k = KeyListener::new(Law::ALaw, None);
        let mut got = String::new();
        for p in tone_frames((941.0, 1477.0), 100, 0) {
            k.rtp(&p, |d, _| got.push(d.as_char()));
        }
        k.rtp(&[0x80], |_, _| panic!("a broken packet is no key"));
        assert_eq!(got, "#");
    }

    #[test]
    fn prompts_play_in_order_in_frames_and_stop_at_once() {
        let mut p = PromptPlayer::new();
        let mut f = [0i16; FRAME];
        assert!(!p.next_frame(&mut f));
        p.play(Arc::from(vec![1i16; 200]));
        p.play(Arc::from(vec![2i16; 160]));
        p.play(Arc::from(Vec::new()));
        assert!(p.next_frame(&mut f) && f.iter().all(|s| *s == 1));
        assert!(
            p.next_frame(&mut f)
                && f[..40].iter().all(|s| *s == 1)
                && f[40..].iter().all(|s| *s == 0)
        );
        assert!(p.next_frame(&mut f) && f.iter().all(|s| *s == 2));
        assert!(!p.is_playing());
        p.play(Arc::from(vec![3i16; 1000]));
        p.stop();
        assert!(!p.next_frame(&mut f));
    }
}
