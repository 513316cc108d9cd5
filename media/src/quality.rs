//! Media quality of a relayed call over one record period, as typed values: per leg, what came
//! in from its peer and went out to it, the round-trip time and the MOS. The gateway writes
//! them as formats.md §4 records and feeds the metrics from the same values (no JSON in
//! between).

use crate::relay::{Counters, Session, Side};
use crate::stats::ReceiveStats;

/// One direction of a leg in a period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Flow {
    /// Packets and bytes in the period.
    pub counts: Counters,
    /// Packets lost since the call started (cumulative); `None` when nothing reports it (the
    /// far end sent no receiver report about what voicegw sends it).
    pub packets_lost: Option<u64>,
    /// Interarrival jitter in microseconds; `None` before any packet with a known clock rate
    /// (or, outbound, without a far-end report).
    pub jitter_us: Option<u64>,
}

/// One leg in a period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LegQuality {
    /// From the leg's peer to voicegw (measured by voicegw).
    pub inbound: Flow,
    /// From voicegw to the leg's peer (the far end's reports).
    pub outbound: Flow,
    /// Round-trip time to the peer in microseconds, from its reports on SRs.
    pub rtt_us: Option<u64>,
    /// MOS (G.107 simplified), `None` when the leg carried no RTP either way in the period or
    /// its codec has no E-model impairment.
    pub mos: Option<f64>,
}

/// The counters at the last record, so the next one counts its period only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    received: [Counters; 2],
    sent: [Counters; 2],
}

/// A leg voicegw terminates (a meeting participant) over a period: `received` and `sent` in
/// the period, what voicegw measured on what it receives (`stats`); no far-end report or RTT
/// (the MOS takes its delay from the jitter, as `mos_of` does without reports).
pub fn terminated_leg(stats: &ReceiveStats, received: Counters, sent: Counters) -> LegQuality {
    let inbound = Flow {
        counts: received,
        packets_lost: Some(stats.lost().max(0).unsigned_abs()),
        jitter_us: stats.jitter_ms().map(|j| (j * 1000.0).round() as u64),
    };
    let outbound = Flow { counts: sent, packets_lost: None, jitter_us: None };
    let mos =
        if received.rtp_packets + sent.rtp_packets == 0 { None } else { mos_from(stats, None) };
    LegQuality { inbound, outbound, rtt_us: None, mos }
}

/// `a − b`, counter by counter (never below zero).
pub fn minus(a: Counters, b: Counters) -> Counters {
    Counters {
        rtp_packets: a.rtp_packets.saturating_sub(b.rtp_packets),
        rtp_bytes: a.rtp_bytes.saturating_sub(b.rtp_bytes),
        rtcp_packets: a.rtcp_packets.saturating_sub(b.rtcp_packets),
        rtcp_bytes: a.rtcp_bytes.saturating_sub(b.rtcp_bytes),
    }
}

/// Both legs of `s` since `last` (A first), and the snapshot the next period starts from.
pub fn period(s: &Session, last: &Snapshot) -> ([LegQuality; 2], Snapshot) {
    let snap = Snapshot {
        received: [s.side(Side::A).received, s.side(Side::B).received],
        sent: [s.side(Side::A).sent, s.side(Side::B).sent],
    };
    let legs = [Side::A, Side::B].map(|side| leg(s, side, last, &snap));
    (legs, snap)
}

fn leg(s: &Session, side: Side, last: &Snapshot, snap: &Snapshot) -> LegQuality {
    let st = s.side(side);
    let i = side.index();
    let rx = minus(snap.received[i], last.received[i]);
    let tx = minus(snap.sent[i], last.sent[i]);
    let inbound = Flow {
        counts: rx,
        packets_lost: Some(st.stats.lost().max(0).unsigned_abs()),
        jitter_us: st.stats.jitter_ms().map(|j| (j * 1000.0).round() as u64),
    };
    // What the far end reports about the stream voicegw sends it; its jitter is in the units
    // of that stream's clock.
    let sent_rate = s.side(side.other()).stats.clock_rate().unwrap_or(8000);
    let outbound = Flow {
        counts: tx,
        packets_lost: st.far_end_report.map(|(lost, _)| i64::from(lost).max(0).unsigned_abs()),
        jitter_us: st
            .far_end_report
            .map(|(_, j)| (f64::from(j) * 1e6 / f64::from(sent_rate)).round() as u64),
    };
    let rtt_us = st.rtt_ms.map(|r| (r * 1000.0).round() as u64);
    let mos = if rx.rtp_packets + tx.rtp_packets == 0 { None } else { mos_of(s, side) };
    LegQuality { inbound, outbound, rtt_us, mos }
}

/// MOS of a leg from what voicegw measured on the stream it receives there: loss and jitter,
/// and the delay from the RTT when the peer's reports gave one, else estimated as `voicegw
/// analyze` does (d = 2·jitter + ptime): endpoints that send no RTCP still get a MOS.
fn mos_of(s: &Session, side: Side) -> Option<f64> {
    let st = s.side(side);
    mos_from(&st.stats, st.rtt_ms)
}

/// The MOS of a received stream's `stats`, with the RTT when known.
fn mos_from(stats: &ReceiveStats, rtt_ms: Option<f64>) -> Option<f64> {
    let codec = match stats.payload_type()? {
        0 | 8 => crate::emodel::G711_PLC,
        18 => crate::emodel::G729A_VAD,
        _ => return None,
    };
    let expected = stats.expected();
    if expected == 0 {
        return None;
    }
    let loss_pct = stats.lost().max(0) as f64 * 100.0 / expected as f64;
    // Packetization time: 20 ms, the G.711/G.729 default (the stream's own ptime is not
    // tracked by the relay yet).
    let rtt = rtt_ms.unwrap_or(0.0);
    Some(crate::emodel::reported_mos(rtt, stats.jitter_ms()?, 20.0, loss_pct, codec, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_without_media_has_counts_of_zero_and_no_mos() {
        let s = Session::new();
        let (legs, snap) = period(&s, &Snapshot::default());
        for l in legs {
            assert_eq!(l.inbound.counts, Counters::default());
            assert_eq!(l.inbound.packets_lost, Some(0));
            assert_eq!((l.outbound.packets_lost, l.outbound.jitter_us), (None, None));
            assert_eq!((l.rtt_us, l.mos), (None, None));
        }
        assert_eq!(snap, Snapshot::default());
    }
}
