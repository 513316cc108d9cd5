//! A jitter buffer for one G.711 stream: RTP packets in any order in, 8 kHz PCM out in
//! timestamp order, with silence where a packet never came, so the output's sample count is
//! its timeline (the muxer's timecodes are `start + samples / 8`).
//!
//! - In-order packets are decoded into a ring of samples and released at once: the buffer adds
//!   no delay while nothing is missing.
//! - A gap waits up to `hold` for its packets (reordering), then is filled with silence and
//!   counted ([`JitterStats::filled_samples`]). A packet that arrives after its place was
//!   released is late and dropped ([`JitterStats::late`]); a repeat is a duplicate.
//! - The timeline follows the RTP timestamps of one SSRC. A new SSRC, a timestamp that runs
//!   ahead of real time, or a run of packets far in the past restarts the mapping after what
//!   was already buffered ([`JitterStats::resyncs`]).
//! - The output can never run ahead of real time by more than [`EARLY_SLACK`] (plus one
//!   packet): silence is filled only up to where the arrival clock says the stream is, so a
//!   hostile timestamp cannot make the stream (and its storage) grow faster than the call.
//! - Memory is fixed at construction (a 2 s ring and its bitmap); nothing is allocated per
//!   packet.

use std::time::Duration;

use common::Instant;

use crate::g711::Law;

/// Samples per second (G.711).
pub const RATE: u64 = 8000;
/// The ring: 2.048 s of samples. A packet that ends further than this past the oldest sample
/// not yet released forces that sample out (filled with silence if it is missing).
const WINDOW: usize = 16384;
const MASK: u64 = WINDOW as u64 - 1;
/// The largest packet taken, in samples (256 ms); bigger ones are refused.
pub const MAX_PACKET: usize = 2048;
/// How far (in samples) the timeline may run ahead of the arrival clock: 1 s.
pub const EARLY_SLACK: u64 = RATE;
/// Consecutive packets far in the past (more than the ring behind) after which the timeline
/// restarts: a sender that restarted its timestamps without changing SSRC.
const RESYNC_AFTER_FAR_LATE: u32 = 16;

/// What became of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Placed on the timeline (some of it may have been late).
    Accepted,
    /// Its place was already released: dropped.
    Late,
    /// Every sample of it was already buffered: dropped.
    Duplicate,
    /// Empty or longer than [`MAX_PACKET`]: dropped.
    Refused,
    /// It would take the stream further ahead of real time than [`EARLY_SLACK`]: dropped.
    Early,
}

/// Counters of one buffer's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub packets: u64,
    pub late: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub early: u64,
    /// Samples of silence put where packets were missing.
    pub filled_samples: u64,
    pub resyncs: u64,
    /// Samples released (decoded and filled).
    pub samples_out: u64,
}

/// The last accepted packet: the mapping from its SSRC's timestamps to the timeline.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    ts: u32,
    pos: u64,
    at: Instant,
}

/// See the module documentation.
pub struct JitterBuffer {
    law: Law,
    hold: Duration,
    ring: Box<[i16]>,
    present: Box<[u64]>,
    /// Timeline position of the next sample out.
    next: u64,
    /// One past the furthest sample written.
    end: u64,
    /// When the first packet came: the arrival clock's origin for the timeline.
    origin: Option<Instant>,
    anchor: Option<Anchor>,
    /// Since when the sample at `next` has been missing while later ones are buffered.
    gap_since: Option<Instant>,
    far_late_run: u32,
    stats: JitterStats,
}

static SILENCE: [i16; 1024] = [0; 1024];

fn samples_in(d: Duration) -> u64 {
    // Saturates: a duration of centuries is still a bound, not an overflow.
    u64::try_from(d.as_micros().saturating_mul(RATE as u128) / 1_000_000).unwrap_or(u64::MAX)
}

impl JitterBuffer {
    /// A buffer for `law` that lets a gap wait `hold` for late packets.
    pub fn new(law: Law, hold: Duration) -> JitterBuffer {
        JitterBuffer {
            law,
            hold,
            ring: vec![0; WINDOW].into_boxed_slice(),
            present: vec![0; WINDOW / 64].into_boxed_slice(),
            next: 0,
            end: 0,
            origin: None,
            anchor: None,
            gap_since: None,
            far_late_run: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// When [`JitterBuffer::poll`] should next be called: when a waiting gap gives up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.gap_since.map(|since| since + self.hold)
    }

    /// Takes one RTP packet's G.711 payload (`ssrc`, `ts` from its header) that arrived at
    /// `now`, and releases to `out` whatever became ready.
    pub fn push(
        &mut self,
        now: Instant,
        ssrc: u32,
        ts: u32,
        payload: &[u8],
        out: &mut impl FnMut(&[i16]),
    ) -> Pushed {
        let n = payload.len();
        if n == 0 || n > MAX_PACKET {
            self.stats.refused += 1;
            return Pushed::Refused;
        }
        self.stats.packets += 1;
        let origin = *self.origin.get_or_insert(now);
        // Where real time says the stream may reach at most.
        let limit = samples_in(now - origin).saturating_add(EARLY_SLACK);
        let Some(pos) = self.place(now, ssrc, ts, n as u64, limit) else {
            self.stats.late += 1;
            return Pushed::Late;
        };
        let end = pos + n as u64;
        if end > limit + MAX_PACKET as u64 {
            // Only a run of resyncs gets here (each one places after what is buffered).
            self.stats.early += 1;
            return Pushed::Early;
        }
        // Make room: the ring holds at most WINDOW samples from `next`.
        if end > self.next + WINDOW as u64 {
            self.release_until(end - WINDOW as u64, out);
        }
        let start = (pos & MASK) as usize;
        if pos == self.next && self.end <= pos && start + n <= WINDOW {
            // The next packet in order with nothing waiting (the usual case): decoded in place
            // and released at once, no presence bits set and cleared.
            let run = &mut self.ring[start..start + n];
            for (o, &code) in run.iter_mut().zip(payload) {
                *o = self.law.decode(code);
            }
            self.next = end;
            self.end = end;
            self.stats.samples_out += n as u64;
            self.anchor = Some(Anchor { ssrc, ts, pos, at: now });
            self.gap_since = None;
            out(&self.ring[start..start + n]);
            return Pushed::Accepted;
        }
        let skip = self.next.saturating_sub(pos) as usize;
        let mut fresh = false;
        for (i, &code) in payload.iter().enumerate().skip(skip) {
            let p = pos + i as u64;
            let idx = (p & MASK) as usize;
            let (word, bit) = (idx / 64, 1u64 << (idx % 64));
            if self.present[word] & bit == 0 {
                self.present[word] |= bit;
                self.ring[idx] = self.law.decode(code);
                fresh = true;
            }
        }
        if !fresh {
            self.stats.duplicates += 1;
            return Pushed::Duplicate;
        }
        self.end = self.end.max(end);
        self.anchor = Some(Anchor { ssrc, ts, pos, at: now });
        self.poll(now, out);
        Pushed::Accepted
    }

    /// Where a packet of `n` samples goes on the timeline, or `None` if it is late.
    fn place(&mut self, now: Instant, ssrc: u32, ts: u32, n: u64, limit: u64) -> Option<u64> {
        let Some(a) = self.anchor else {
            return Some(self.next.max(self.end));
        };
        let resume = |me: &mut JitterBuffer| {
            // After what is buffered, and where the arrival clock says the stream is now (the
            // silence between is filled), but never beyond the real-time limit.
            me.stats.resyncs += 1;
            me.far_late_run = 0;
            let after = me.next.max(me.end);
            let by_clock = a.pos.saturating_add(samples_in(now - a.at)).min(limit);
            after.max(by_clock)
        };
        if a.ssrc != ssrc {
            return Some(resume(self));
        }
        let delta = i64::from(ts.wrapping_sub(a.ts) as i32);
        match a.pos.checked_add_signed(delta) {
            Some(pos) if pos.saturating_add(n) > limit => Some(resume(self)),
            Some(pos) if pos + n > self.next => {
                self.far_late_run = 0;
                Some(pos)
            }
            // Late: just behind is ordinary; far behind, repeatedly, is a restarted sender.
            late => {
                let far = late.is_none_or(|p| p + n + (WINDOW as u64) < self.next);
                self.far_late_run = if far { self.far_late_run + 1 } else { 0 };
                if self.far_late_run >= RESYNC_AFTER_FAR_LATE {
                    return Some(resume(self));
                }
                None
            }
        }
    }

    /// Releases what is ready at `now`: every buffered sample from the next one on, and the
    /// gaps that have waited `hold`, as silence.
    pub fn poll(&mut self, now: Instant, out: &mut impl FnMut(&[i16])) {
        while self.next < self.end {
            if self.is_present(self.next) {
                self.emit_present(out);
                self.gap_since = None;
                continue;
            }
            let since = *self.gap_since.get_or_insert(now);
            if now < since + self.hold {
                return;
            }
            self.fill_gap(self.end, out);
            self.gap_since = None;
        }
        self.gap_since = None;
    }

    /// Releases everything buffered, filling the gaps: the stream ends.
    pub fn finish(&mut self, out: &mut impl FnMut(&[i16])) {
        self.release_until(self.end, out);
    }

    /// Releases every sample before `target`, filling what is missing.
    fn release_until(&mut self, target: u64, out: &mut impl FnMut(&[i16])) {
        while self.next < target {
            if self.is_present(self.next) {
                self.emit_present(out);
            } else {
                self.fill_gap(target, out);
            }
        }
        self.gap_since = None;
    }

    fn is_present(&self, p: u64) -> bool {
        let idx = (p & MASK) as usize;
        self.present[idx / 64] & (1 << (idx % 64)) != 0
    }

    /// Emits the run of present samples at `next` (up to the ring's wrap), freeing their places.
    fn emit_present(&mut self, out: &mut impl FnMut(&[i16])) {
        let start = (self.next & MASK) as usize;
        let mut len = 0;
        while start + len < WINDOW && self.next + (len as u64) < self.end {
            let idx = start + len;
            let bit = 1u64 << (idx % 64);
            if self.present[idx / 64] & bit == 0 {
                break;
            }
            self.present[idx / 64] &= !bit;
            len += 1;
        }
        out(&self.ring[start..start + len]);
        self.next += len as u64;
        self.stats.samples_out += len as u64;
    }

    /// Emits silence for the missing samples at `next`, up to the next present one or `bound`.
    fn fill_gap(&mut self, bound: u64, out: &mut impl FnMut(&[i16])) {
        let mut len = 0u64;
        while self.next + len < bound && !self.is_present(self.next + len) {
            len += 1;
        }
        let mut left = len;
        while left > 0 {
            let k = left.min(SILENCE.len() as u64) as usize;
            out(&SILENCE[..k]);
            left -= k as u64;
        }
        self.next += len;
        self.stats.filled_samples += len;
        self.stats.samples_out += len;
    }
}

#[cfg(test)]
mod tests;
