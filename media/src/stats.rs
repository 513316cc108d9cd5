//! Receiver statistics for one RTP stream (one SSRC from one source), sans-IO: RFC 3550 A.1/A.3
//! sequence accounting and loss, A.8 interarrival jitter. Arrival times are given by the caller.
//!
//! Conventions (documented because tools differ):
//! - Every packet counts as received; there is no probation period (A.1's MIN_SEQUENTIAL), so
//!   packet counts equal what a capture shows.
//! - `lost` = expected − received (A.3), negative with duplicates; expected spans the base
//!   sequence number to the highest extended sequence number seen.
//! - Jitter is updated for every packet whose payload type has a known clock rate, against the
//!   previous such packet in arrival order (RFC 3550 A.8: the transit time of every packet is
//!   compared with the one before it, reordered packets included, and becomes the reference);
//!   packets of unknown rate (RFC 4733 events, undeclared dynamic types) are left out entirely.
//!   Kept in timestamp units, reported in ms.
//! - A timestamp that goes back while the sequence goes on is a media-clock restart: the jitter
//!   reference moves to that packet (no sample), instead of reporting the jump as jitter.
//! - Mean and maximum jitter, for reports, leave out the first packet, packets with the marker
//!   bit (talk-spurt starts), and comfort noise and the packet after it — the same convention
//!   as Wireshark's RTP stream analysis, so the two agree. Reordered packets (timestamp behind
//!   the previous packet's) count like any other: leaving them out, or keeping the reference on
//!   the latest in-order packet, bends the jitter of a reordering stream 10–20% low.

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
    /// Packets expected in sequence spans closed by a resynchronisation.
    expected_before: u64,
    /// Set by a resynchronisation: the next packet restarts the jitter reference.
    resync_jitter: bool,
    /// Packets with a known clock rate (the ones jitter is computed over).
    rated_packets: u64,
    have_rated: bool,
    /// The last packet moved the highest sequence number forward.
    advanced: bool,
    /// Timestamp restarts seen (timestamps going back while the sequence goes on).
    pub timestamp_resets: u32,
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
            self.clock_rate = a.clock_rate.filter(|r| *r > 0);
            self.have_rated = self.clock_rate.is_some();
            self.rated_packets = u64::from(self.have_rated);
            return;
        }
        if self.update_seq(a.sequence) {
            self.update_jitter(a);
        }
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.cycles = 0;
        self.bad_seq = None;
    }

    /// A.1 `update_seq`, counting every packet. Returns false for a packet after a very large
    /// jump that is not (yet) confirmed as a restart: it is left out of jitter.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        self.advanced = udelta > 0 && udelta < MAX_DROPOUT;
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1;
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A very large jump: two in a row mean the source restarted its sequence.
            if self.bad_seq == Some(seq) {
                // The source restarted its sequence (two consecutive packets agree). Close the
                // old span into `expected_before` and start a new one at the previous packet,
                // the first of the new sequence.
                self.resyncs += 1;
                self.expected_before += self.span_expected();
                self.init_seq(seq.wrapping_sub(1));
                self.max_seq = seq;
                self.resync_jitter = true;
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return false;
            }
        }
        // else: duplicate or reordered within MAX_MISORDER; nothing to move.
        true
    }

    fn update_jitter(&mut self, a: &Arrival) {
        if std::mem::take(&mut self.resync_jitter) && a.clock_rate.is_some() {
            // A restarted source restarts its timestamps too: take this packet as the new
            // reference instead of measuring it against the old sequence.
            self.last_arrival_ms = a.at_ms;
            self.ext_ts = i64::from(a.timestamp);
            self.last_ts32 = a.timestamp;
            self.last_pt = Some(a.payload_type);
            return;
        }
        // Packets of unknown clock rate (RFC 4733 events, undeclared dynamic payload types)
        // carry timestamps that say nothing about the audio clock: leave them out entirely.
        let Some(rate) = a.clock_rate.filter(|r| *r > 0) else {
            self.last_pt = Some(a.payload_type);
            return;
        };
        self.rated_packets += 1;
        if !self.have_rated {
            // The first packet with a known rate is the jitter reference.
            self.have_rated = true;
            self.clock_rate = Some(rate);
            self.last_arrival_ms = a.at_ms;
            self.ext_ts = i64::from(a.timestamp);
            self.last_ts32 = a.timestamp;
            self.last_pt = Some(a.payload_type);
            return;
        }
        // Extend the 32-bit timestamp against the previous one.
        let delta_ts = a.timestamp.wrapping_sub(self.last_ts32) as i32;
        let ext_ts = self.ext_ts + i64::from(delta_ts);
        let backwards = ext_ts < self.ext_ts;
        if backwards && self.advanced {
            // The sequence goes on but the timestamps went back: the sender restarted its media
            // clock (new codec, re-INVITE, …). Re-anchor on this packet rather than count the
            // restart as tens of seconds of "jitter".
            self.timestamp_resets += 1;
            self.last_arrival_ms = a.at_ms;
            self.ext_ts = i64::from(a.timestamp);
            self.last_ts32 = a.timestamp;
            self.last_pt = Some(a.payload_type);
            return;
        }
        let follows_cn = self.last_pt.is_some_and(crate::rtp::is_comfort_noise);
        {
            self.clock_rate = Some(rate);
            let ms_per_unit = 1000.0 / f64::from(rate);
            let expected = self.last_arrival_ms + (ext_ts - self.ext_ts) as f64 * ms_per_unit;
            let d_ms = (a.at_ms - expected).abs();
            let jitter_ms = self.jitter * ms_per_unit;
            let jitter_ms = jitter_ms + (d_ms - jitter_ms) / 16.0;
            self.jitter = jitter_ms / ms_per_unit;
            let regular = !a.marker && !a.comfort_noise && !follows_cn;
            if regular {
                self.jitter_max_ms = self.jitter_max_ms.max(jitter_ms);
                // Running mean over the rated packets before this one (Wireshark's weighting).
                let n = (self.rated_packets - 1) as f64;
                self.jitter_mean_ms = (self.jitter_mean_ms * (n - 1.0) + jitter_ms) / n;
                self.jitter_samples += 1;
            }
        }
        self.last_pt = Some(a.payload_type);
        self.last_arrival_ms = a.at_ms;
        self.ext_ts = ext_ts;
        self.last_ts32 = a.timestamp;
    }

    /// The highest extended sequence number received (A.1 cycles in the high bits).
    pub fn extended_max(&self) -> u64 {
        u64::from(self.cycles) * 65_536 + u64::from(self.max_seq)
    }

    fn span_expected(&self) -> u64 {
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq))
    }

    /// Packets expected: from the first sequence number to the highest (A.3), summed over the
    /// spans a sequence restart separates.
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        self.expected_before + self.span_expected()
    }

    /// Cumulative packets lost (A.3): expected − received, negative when duplicates arrived.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.packets as i64
    }

    /// The payload type of the latest packet.
    pub fn payload_type(&self) -> Option<u8> {
        self.last_pt
    }

    /// Clock rate of the stream, once a packet with a known rate arrived.
    pub fn clock_rate(&self) -> Option<u32> {
        self.clock_rate
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
        assert_eq!((s.packets, s.expected(), s.lost()), (20, 20, 0));
        // A restart with timestamps starting over does not disturb jitter.
        let mut t = ReceiveStats::new();
        for i in 0..10u16 {
            t.on_packet(&pkt(i, 8000 + u32::from(i) * 160, f64::from(i) * 20.0));
        }
        for i in 0..10u16 {
            t.on_packet(&pkt(30_000 + i, u32::from(i) * 160, 1000.0 + f64::from(i) * 20.0));
        }
        assert_eq!((t.packets, t.resyncs, t.lost()), (20, 1, 0));
        assert!(t.max_jitter_ms().unwrap() < 1e-9, "{:?}", t.max_jitter_ms());
    }

    #[test]
    fn timestamp_restart_with_continuous_sequence_reanchors() {
        let mut s = ReceiveStats::new();
        for i in 0..50u32 {
            s.on_packet(&pkt(i as u16, 300_000 + i * 160, f64::from(i) * 20.0));
        }
        for i in 50..100u32 {
            s.on_packet(&pkt(i as u16, (i - 50) * 160, f64::from(i) * 20.0 + 5.0));
        }
        assert_eq!(s.timestamp_resets, 1);
        assert!(s.max_jitter_ms().unwrap() < 1e-9, "{:?}", s.max_jitter_ms());
        // A late packet (older sequence and timestamp) is not a restart.
        s.on_packet(&pkt(98, 48 * 160, 2010.0));
        assert_eq!(s.timestamp_resets, 1);
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
