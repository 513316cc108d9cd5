//! Receiver statistics for one RTP stream (one SSRC from one source), sans-IO: RFC 3550 A.1/A.3
//! sequence accounting and loss, A.8 interarrival jitter. Arrival times are given by the caller.
//!
//! Conventions (documented because tools differ):
//! - Every packet counts as received; there is no probation period (A.1's MIN_SEQUENTIAL), so
//!   packet counts equal what a capture shows.
//! - `lost` = expected − received (A.3), negative with duplicates; expected spans the base
//!   sequence number to the highest extended sequence number seen.
//! - Jitter is updated for every packet whose payload type has a known clock rate, against the
//!   previous packet in timestamp order; it is kept in timestamp units and reported in ms.
//! - Mean and maximum jitter, for reports, leave out the first packet, packets with the marker
//!   bit (talk-spurt starts), comfort noise and the packet after it, and packets whose timestamp
//!   goes backwards — the same convention as Wireshark's RTP stream analysis, so the two agree.

/// A.1: jumps larger than this many sequence numbers are not "in order".
const MAX_DROPOUT: u16 = 3000;
/// A.1: packets up to this far behind the highest are late, not a restart.
const MAX_MISORDER: u16 = 100;

/// Statistics of one received stream.
#[derive(Debug, Clone, Default)]
pub struct ReceiveStats {
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    bad_seq: Option<u16>,
    /// Packets received (duplicates included).
    pub packets: u64,
    /// Payload bytes received.
    pub payload_bytes: u64,
    // Jitter state (A.8), in RTP timestamp units.
    jitter: f64,
    last_arrival_ms: f64,
    ext_ts: i64,
    last_ts32: u32,
    have_ref: bool,
    last_pt: Option<u8>,
    clock_rate: Option<u32>,
    // Report convention (see module docs).
    jitter_max_ms: f64,
    jitter_mean_ms: f64,
    jitter_samples: u64,
    /// Packets that started a new sequence (A.1 resynchronisation after a large jump).
    pub resyncs: u32,
}

/// One received packet, as far as statistics care.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub sequence: u16,
    pub timestamp: u32,
    pub payload_type: u8,
    pub marker: bool,
    pub payload_len: usize,
    /// Arrival time in milliseconds on any monotonic scale.
    pub at_ms: f64,
    /// Clock rate of this packet's payload type; `None` when unknown (no jitter then).
    pub clock_rate: Option<u32>,
    /// Comfort noise payload (excluded from jitter reports).
    pub comfort_noise: bool,
}

impl ReceiveStats {
    pub fn new() -> Self {
        ReceiveStats::default()
    }

    pub fn on_packet(&mut self, a: &Arrival) {
        self.packets += 1;
        self.payload_bytes += a.payload_len as u64;
        if !self.started {
            self.started = true;
            self.init_seq(a.sequence);
            self.last_arrival_ms = a.at_ms;
            self.ext_ts = i64::from(a.timestamp);
            self.last_ts32 = a.timestamp;
            self.have_ref = true;
            self.last_pt = Some(a.payload_type);
            self.clock_rate = a.clock_rate;
            return;
        }
        self.update_seq(a.sequence);
        self.update_jitter(a);
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.cycles = 0;
        self.bad_seq = None;
    }

    /// A.1 `update_seq`, counting every packet.
    fn update_seq(&mut self, seq: u16) {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1;
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A very large jump: two in a row mean the source restarted its sequence.
            if self.bad_seq == Some(seq) {
                self.resyncs += 1;
                let received = self.packets;
                self.init_seq(seq);
                // Keep the packet count; expected restarts from here, so re-base.
                self.base_seq = (u32::from(seq)).wrapping_sub((received - 1) as u32);
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
            }
        }
        // else: duplicate or reordered within MAX_MISORDER; nothing to move.
    }

    fn update_jitter(&mut self, a: &Arrival) {
        // Extend the 32-bit timestamp against the previous one.
        let delta_ts = a.timestamp.wrapping_sub(self.last_ts32) as i32;
        let ext_ts = self.ext_ts + i64::from(delta_ts);
        let backwards = ext_ts < self.ext_ts;
        let follows_cn = self.last_pt.is_some_and(crate::rtp::is_comfort_noise);
        if let Some(rate) = a.clock_rate.filter(|r| *r > 0) {
            self.clock_rate = Some(rate);
            let ms_per_unit = 1000.0 / f64::from(rate);
            let expected = self.last_arrival_ms + (ext_ts - self.ext_ts) as f64 * ms_per_unit;
            let d_ms = (a.at_ms - expected).abs();
            let jitter_ms = self.jitter * ms_per_unit;
            let jitter_ms = jitter_ms + (d_ms - jitter_ms) / 16.0;
            self.jitter = jitter_ms / ms_per_unit;
            let regular = !a.marker && !a.comfort_noise && !backwards && !follows_cn;
            if regular {
                self.jitter_max_ms = self.jitter_max_ms.max(jitter_ms);
                // Running mean over the packets before this one (Wireshark's weighting).
                let n = (self.packets - 1) as f64;
                self.jitter_mean_ms = (self.jitter_mean_ms * (n - 1.0) + jitter_ms) / n;
                self.jitter_samples += 1;
            }
        }
        self.last_pt = Some(a.payload_type);
        if !backwards {
            self.last_arrival_ms = a.at_ms;
            self.ext_ts = ext_ts;
            self.last_ts32 = a.timestamp;
        }
    }

    /// The highest extended sequence number received (A.1 cycles in the high bits).
    pub fn extended_max(&self) -> u64 {
        u64::from(self.cycles) * 65_536 + u64::from(self.max_seq)
    }

    /// Packets expected: from the first sequence number to the highest (A.3).
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq))
    }

    /// Cumulative packets lost (A.3): expected − received, negative when duplicates arrived.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.packets as i64
    }

    /// Current interarrival jitter in RTP timestamp units (what RTCP reports carry).
    pub fn jitter_ts_units(&self) -> u32 {
        self.jitter.round() as u32
    }

    /// Current interarrival jitter in milliseconds, `None` before the clock rate is known.
    pub fn jitter_ms(&self) -> Option<f64> {
        self.clock_rate.map(|r| self.jitter * 1000.0 / f64::from(r))
    }

    /// Highest jitter seen (report convention), ms.
    pub fn max_jitter_ms(&self) -> Option<f64> {
        (self.jitter_samples > 0).then_some(self.jitter_max_ms)
    }

    /// Mean jitter (report convention), ms.
    pub fn mean_jitter_ms(&self) -> Option<f64> {
        (self.jitter_samples > 0).then_some(self.jitter_mean_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ts: u32, at_ms: f64) -> Arrival {
        Arrival {
            sequence: seq,
            timestamp: ts,
            payload_type: 0,
            marker: false,
            payload_len: 160,
            at_ms,
            clock_rate: Some(8000),
            comfort_noise: false,
        }
    }

    #[test]
    fn perfect_stream_has_no_loss_or_jitter() {
        let mut s = ReceiveStats::new();
        for i in 0..100u16 {
            s.on_packet(&pkt(i, u32::from(i) * 160, f64::from(i) * 20.0));
        }
        assert_eq!((s.packets, s.expected(), s.lost()), (100, 100, 0));
        assert_eq!(s.jitter_ms(), Some(0.0));
        assert_eq!(s.max_jitter_ms(), Some(0.0));
    }

    #[test]
    fn loss_across_sequence_wrap_and_duplicates() {
        let mut s = ReceiveStats::new();
        let mut seq = 65_530u16;
        for i in 0..20u32 {
            if i != 7 && i != 8 {
                s.on_packet(&pkt(seq, i * 160, f64::from(i) * 20.0));
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.extended_max(), 65_536 + 13);
        assert_eq!((s.packets, s.expected(), s.lost()), (18, 20, 2));
        s.on_packet(&pkt(seq.wrapping_sub(1), 19 * 160, 400.0));
        assert_eq!(s.lost(), 1, "a duplicate counts as received");
    }

    #[test]
    fn constant_offset_jitter_converges_to_the_rfc_value() {
        // Alternating ±2 ms around the nominal arrival: |D| = 4 ms each time after the first,
        // so J converges to 4 ms (32 timestamp units at 8 kHz).
        let mut s = ReceiveStats::new();
        for i in 0..2000u32 {
            let off = if i % 2 == 0 { 2.0 } else { -2.0 };
            s.on_packet(&pkt(i as u16, i * 160, f64::from(i) * 20.0 + off));
        }
        let j = s.jitter_ms().unwrap();
        assert!((j - 4.0).abs() < 1e-6, "{j}");
        assert_eq!(s.jitter_ts_units(), 32);
        assert!((s.max_jitter_ms().unwrap() - 4.0).abs() < 1e-6);
    }

    #[test]
    fn sequence_restart_resyncs_after_two_packets() {
        let mut s = ReceiveStats::new();
        for i in 0..10u16 {
            s.on_packet(&pkt(i, u32::from(i) * 160, f64::from(i) * 20.0));
        }
        for i in 0..10u16 {
            s.on_packet(&pkt(40_000 + i, u32::from(10 + i) * 160, f64::from(10 + i) * 20.0));
        }
        assert_eq!(s.resyncs, 1);
        assert_eq!((s.packets, s.lost()), (20, 0));
    }

    #[test]
    fn unknown_clock_rate_means_no_jitter() {
        let mut s = ReceiveStats::new();
        for i in 0..10u16 {
            let mut p = pkt(i, u32::from(i) * 160, f64::from(i) * 21.0);
            p.clock_rate = None;
            s.on_packet(&p);
        }
        assert_eq!(s.jitter_ms(), None);
        assert_eq!(s.max_jitter_ms(), None);
    }
}
