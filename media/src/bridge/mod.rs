//! A meeting's audio bridge (issue 14), sans-IO: every participant's RTP in, for every
//! participant a mix of everyone else out, paced by one media clock per meeting.
//!
//! - In: each participant's G.711 packets go through a small playout buffer ([`playout`]):
//!   reordered packets fall into place, a lost or late frame is silence, and a participant whose
//!   clock drifts is re-anchored rather than left to drift.
//! - The mix, every 20 ms: the frames of the participants who speak (a frame above the voice
//!   floor, about −60 dBFS, or within 300 ms after one; silent participants cost a level check
//!   and nothing more) are summed once, and each
//!   participant gets the sum minus their own frame (N−1), limited so that loud talkers
//!   together never wrap around, then encoded in the participant's law. Muted participants are
//!   not heard; a participant who joins fades in and one who leaves fades out over one frame,
//!   so nobody hears a click.
//! - The active speaker: the loudest voice, held for a moment so that it does not flicker.
//!
//! Beside the bridge, [`participant`] has what each leg needs on its way in and out: its keys
//! heard from its RTP, and prompts played to it.
//!
//! Time comes in as `now`; [`Bridge::poll_timeout`] says when the next frame is due and
//! [`Bridge::handle_timeout`] makes every frame that is due. No allocation per frame or packet
//! once a participant has joined.

pub mod participant;
pub mod playout;

use std::time::Duration;

use common::Instant;

use crate::g711::Law;
use crate::rtp::RtpHeader;
use playout::Playout;

/// Samples per frame (20 ms at 8 kHz).
pub const FRAME: usize = 160;
/// The media clock's period.
pub const PERIOD: Duration = Duration::from_millis(20);
/// A frame whose mean absolute level is below this is silence (about −60 dBFS: digital
/// silence, comfort noise and a quiet room, not the soft start of a word).
const VOICE_FLOOR: u32 = 32;
/// Frames a voice stays in the mix after its last frame above the floor (300 ms), so that
/// soft syllables and word endings between louder frames are not cut out.
const HANGOVER: u8 = 15;
/// Frames after a join in which the participant's first mixed frame fades in: the playout
/// depth and a little more (a participant who joins mid-word is not heard with a click).
const JOIN_RAMP_WINDOW: u8 = 5;
/// Above this the sum is compressed (about −3 dBFS), so that the limit is reached softly.
const KNEE: i32 = 23_000;
/// How long the active speaker holds before a louder voice takes over.
const SPEAKER_HOLD: u32 = 15;

/// A participant's place in the bridge.
pub type ParticipantId = u64;

/// The id [`Bridge::handle_timeout`] gives the meeting's recording frames: everyone heard
/// (the full mix), G.711 µ-law.
pub const RECORDING: ParticipantId = u64::MAX;

/// The meeting's recording stream, while it records.
#[derive(Debug)]
struct Recording {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
}

#[derive(Debug)]
struct Participant {
    id: ParticipantId,
    law: Law,
    playout: Playout,
    muted: bool,
    /// The frame heard from them this period (their contribution), and whether it counts.
    frame: [i16; FRAME],
    speaking: bool,
    /// Frames left of the hangover.
    hang: u8,
    /// Frames left in which a first mixed frame ramps up from silence (a participant who
    /// joins talking fades in; one who starts talking later starts at once).
    gain_ramp: u8,
    /// Leaving: their last frame fades out, then they are gone.
    leaving: bool,
    /// What goes out to them: their own RTP stream.
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// Smoothed level, for the active speaker.
    level: u32,
    /// Packets in, frames out.
    pub packets_in: u64,
    pub frames_out: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Bridge {
    participants: Vec<Participant>,
    next_tick: Option<Instant>,
    /// The period's sum (i32: no overflow for up to 65 536 full-scale voices).
    sum: [i32; FRAME],
    out: [u8; 12 + FRAME],
    speaker: Option<ParticipantId>,
    speaker_held: u32,
    recording: Option<Recording>,
    /// Frames made.
    pub ticks: u64,
}

impl Default for Bridge {
    fn default() -> Self {
        Bridge {
            participants: Vec::new(),
            next_tick: None,
            sum: [0; FRAME],
            out: [0; 12 + FRAME],
            speaker: None,
            speaker_held: 0,
            recording: None,
            ticks: 0,
        }
    }
}

/// The mean absolute level of a frame.
fn level(frame: &[i16; FRAME]) -> u32 {
    frame.iter().map(|s| u32::from(s.unsigned_abs())).sum::<u32>() / FRAME as u32
}

/// The soft limiter: linear below the knee, then compressed towards full scale.
#[inline]
fn limit(v: i32) -> i16 {
    let a = v.abs();
    if a <= KNEE {
        return v as i16;
    }
    // Above the knee, the excess is compressed 4:1 and the result clipped at full scale.
    let squeezed = (KNEE + (a - KNEE) / 4).min(i32::from(i16::MAX));
    (squeezed * v.signum()) as i16
}

impl Bridge {
    pub fn new() -> Bridge {
        Bridge::default()
    }

    /// Participants in the bridge (leaving ones included until their fade-out).
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Participant `id` joins, sending and receiving `law`; what goes out to them is RTP stream
    /// `ssrc`, starting at `seq` and `timestamp` (random, from the caller). The media clock
    /// starts with the first participant.
    pub fn join(
        &mut self,
        id: ParticipantId,
        law: Law,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        now: Instant,
    ) {
        if self.participants.iter().any(|p| p.id == id) {
            return;
        }
        self.participants.push(Participant {
            id,
            law,
            playout: Playout::new(),
            muted: false,
            frame: [0; FRAME],
            speaking: false,
            hang: 0,
            gain_ramp: JOIN_RAMP_WINDOW,
            leaving: false,
            ssrc,
            seq,
            timestamp,
            level: 0,
            packets_in: 0,
            frames_out: 0,
        });
        if self.next_tick.is_none() {
            self.next_tick = Some(now + PERIOD);
        }
    }

    /// Participant `id` leaves: heard fading out in the next frame, then gone.
    pub fn leave(&mut self, id: ParticipantId) {
        if let Some(p) = self.participants.iter_mut().find(|p| p.id == id) {
            p.leaving = true;
        }
    }

    /// Mutes or unmutes participant `id` (others stop or start hearing them).
    pub fn set_muted(&mut self, id: ParticipantId, muted: bool) {
        if let Some(p) = self.participants.iter_mut().find(|p| p.id == id) {
            p.muted = muted;
        }
    }

    pub fn is_muted(&self, id: ParticipantId) -> Option<bool> {
        self.participants.iter().find(|p| p.id == id).map(|p| p.muted)
    }

    /// Mutes everyone but `id`.
    pub fn mute_others(&mut self, id: ParticipantId) {
        for p in self.participants.iter_mut().filter(|p| p.id != id) {
            p.muted = true;
        }
    }

    /// An RTP packet from participant `id` (already accepted by the relay: its source and
    /// SRTP are the relay's business). Packets of another payload type than the participant's
    /// law (telephone-events, comfort noise) are not audio and are left out.
    pub fn rtp(&mut self, id: ParticipantId, packet: &[u8]) {
        if let Ok(h) = RtpHeader::parse(packet) {
            self.rtp_parsed(id, &h, packet);
        }
    }

    /// [`Bridge::rtp`] for a packet whose header the caller parsed already.
    pub fn rtp_parsed(&mut self, id: ParticipantId, h: &RtpHeader, packet: &[u8]) {
        let Some(p) = self.participants.iter_mut().find(|p| p.id == id) else { return };
        if h.payload_type != p.law.payload_type() {
            return;
        }
        let Some(payload) = packet.get(h.payload_offset..h.payload_offset + h.payload_len) else {
            return;
        };
        p.packets_in += 1;
        p.playout.push(h.ssrc, h.timestamp, payload, p.law);
    }

    /// Starts (with RTP stream `ssrc`) or stops the meeting's recording: while on, every frame
    /// also goes out as the full mix of everyone heard, to [`RECORDING`].
    pub fn set_recording(&mut self, on: bool, ssrc: u32) {
        self.recording = on.then_some(Recording { ssrc, seq: 0, timestamp: 0 });
    }

    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// The active speaker: the loudest voice, held a moment.
    pub fn active_speaker(&self) -> Option<ParticipantId> {
        self.speaker
    }

    /// When the next frame is due (none while nobody is in the bridge).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Makes every frame due at `now`; each participant's packet goes to `send` with their id.
    pub fn handle_timeout(&mut self, now: Instant, send: &mut impl FnMut(ParticipantId, &[u8])) {
        while let Some(t) = self.next_tick.filter(|t| *t <= now) {
            self.tick(send);
            self.next_tick = if self.participants.is_empty() { None } else { Some(t + PERIOD) };
            // A driver far behind (a stalled process) skips ahead rather than bursting.
            if self.next_tick.is_some_and(|n| n < now && now - n > PERIOD * 5) {
                self.next_tick = Some(now + PERIOD);
            }
        }
    }

    /// One period.
    fn tick(&mut self, send: &mut impl FnMut(ParticipantId, &[u8])) {
        self.ticks += 1;
        self.sum = [0; FRAME];
        let mut loudest: Option<(ParticipantId, u32)> = None;
        for p in &mut self.participants {
            p.playout.pop(&mut p.frame);
            let lvl = level(&p.frame);
            p.level = (p.level * 3 + lvl) / 4;
            if lvl >= VOICE_FLOOR {
                p.hang = HANGOVER;
            } else {
                p.hang = p.hang.saturating_sub(1);
            }
            p.speaking = !p.muted && p.hang > 0;
            if !p.speaking {
                p.gain_ramp = p.gain_ramp.saturating_sub(1);
                continue;
            }
            // A join fades in, a leave fades out, over this one frame.
            // (The join's ramp waits for their first frame that is mixed, a moment at most.)
            if p.gain_ramp > 0 || p.leaving {
                for (i, s) in p.frame.iter_mut().enumerate() {
                    let k = if p.leaving { FRAME - i } else { i } as i32;
                    *s = (i32::from(*s) * k / FRAME as i32) as i16;
                }
                p.gain_ramp = 0;
            }
            for (acc, s) in self.sum.iter_mut().zip(&p.frame) {
                *acc += i32::from(*s);
            }
            if loudest.is_none_or(|(_, l)| p.level > l) {
                loudest = Some((p.id, p.level));
            }
        }
        self.follow_speaker(loudest);
        if let Some(r) = self.recording.as_mut() {
            self.out[0] = 0x80;
            self.out[1] = Law::MuLaw.payload_type();
            self.out[2..4].copy_from_slice(&r.seq.to_be_bytes());
            self.out[4..8].copy_from_slice(&r.timestamp.to_be_bytes());
            self.out[8..12].copy_from_slice(&r.ssrc.to_be_bytes());
            for (b, v) in self.out[12..].iter_mut().zip(&self.sum) {
                *b = Law::MuLaw.encode(limit(*v));
            }
            r.seq = r.seq.wrapping_add(1);
            r.timestamp = r.timestamp.wrapping_add(FRAME as u32);
            send(RECORDING, &self.out);
        }
        for p in &mut self.participants {
            if p.leaving {
                continue;
            }
            self.out[0] = 0x80;
            self.out[1] = p.law.payload_type();
            self.out[2..4].copy_from_slice(&p.seq.to_be_bytes());
            self.out[4..8].copy_from_slice(&p.timestamp.to_be_bytes());
            self.out[8..12].copy_from_slice(&p.ssrc.to_be_bytes());
            let own = p.speaking;
            for (i, b) in self.out[12..].iter_mut().enumerate() {
                let v = if own { self.sum[i] - i32::from(p.frame[i]) } else { self.sum[i] };
                *b = p.law.encode(limit(v));
            }
            p.seq = p.seq.wrapping_add(1);
            p.timestamp = p.timestamp.wrapping_add(FRAME as u32);
            p.frames_out += 1;
            send(p.id, &self.out);
        }
        self.participants.retain(|p| !p.leaving);
    }

    fn follow_speaker(&mut self, loudest: Option<(ParticipantId, u32)>) {
        match (self.speaker, loudest) {
            (_, None) => {
                if self.speaker_held > 0 {
                    self.speaker_held -= 1;
                } else {
                    self.speaker = None;
                }
            }
            (Some(cur), Some((id, _))) if cur == id => self.speaker_held = SPEAKER_HOLD,
            (Some(_), Some((id, _))) => {
                if self.speaker_held > 0 {
                    self.speaker_held -= 1;
                } else {
                    self.speaker = Some(id);
                    self.speaker_held = SPEAKER_HOLD;
                }
            }
            (None, Some((id, _))) => {
                self.speaker = Some(id);
                self.speaker_held = SPEAKER_HOLD;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
