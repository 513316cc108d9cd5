//! What the media thread ([`crate::media_thread`]) needs besides its event loop: commands, timing,
//! and the media-quality records (formats.md §4) with the metrics they feed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use media::relay::{Counters, Session, Side};
use metrics::{names, Labels, Registry};
use serde_json::{json, Value};
use sip::b2bua::Direction;

use crate::media_anchor::CallContext;

/// Commands from the driver.
#[derive(Debug)]
pub enum RelayCmd {
    Peer {
        side: Side,
        rtp: std::net::SocketAddr,
        rtcp: Option<std::net::SocketAddr>,
        mux: bool,
        rates: Vec<(u8, u32)>,
    },
    /// SRTP keys of a leg (peer's, voicegw's); `None` for plain RTP.
    Srtp {
        side: Side,
        inbound: Option<(media::srtp::Suite, media::srtp::MasterKey)>,
        outbound: Option<(media::srtp::Suite, media::srtp::MasterKey)>,
    },
    Close,
}

/// Where media-quality records go (`path` None: logging disabled for the voice connector)
/// and the metrics registry they also feed.
#[derive(Debug, Clone)]
pub struct RecordSink {
    pub path: Option<PathBuf>,
    pub aws_region: String,
    pub metrics: Option<(Arc<std::sync::Mutex<Registry>>, Labels)>,
}

/// Largest datagram read: the buffer keeps 14 bytes spare for an SRTP/SRTCP trailer.
pub(crate) const RECV_MAX: usize = 2048 - 14;

/// Timing of a relay: record period and media inactivity limit.
#[derive(Debug, Clone, Copy)]
pub struct RelayTiming {
    pub record_period: Duration,
    /// `None`: never hang up for silence.
    pub inactivity: Option<Duration>,
}

/// The wallclock in NTP format (seconds since 1900 in the high 32 bits).
pub(crate) fn ntp_now() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Counters at the last record, so records carry per-minute packets and bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    received: [Counters; 2],
    sent: [Counters; 2],
    /// Cumulative loss per record prefix (`cust2vc`, …) at this snapshot.
    lost: std::collections::HashMap<&'static str, f64>,
}

fn minus(a: Counters, b: Counters) -> Counters {
    Counters {
        rtp_packets: a.rtp_packets - b.rtp_packets,
        rtp_bytes: a.rtp_bytes - b.rtp_bytes,
        rtcp_packets: a.rtcp_packets - b.rtcp_packets,
        rtcp_bytes: a.rtcp_bytes - b.rtcp_bytes,
    }
}

/// The formats.md §4 record for the current state; returns the new snapshot.
fn record(
    ctx: &CallContext,
    s: &Session,
    last: &Snapshot,
    aws_region: &str,
    now_ms: u128,
) -> (Value, Snapshot) {
    // Termination: the caller (A) is the customer; origination: the callee (B) is.
    let (cust, rem) = match ctx.direction {
        Direction::Outbound => (Side::A, Side::B),
        Direction::Inbound => (Side::B, Side::A),
    };
    let idx = |side: Side| if side == Side::A { 0 } else { 1 };
    let mut snap = Snapshot {
        received: [s.side(Side::A).received, s.side(Side::B).received],
        sent: [s.side(Side::A).sent, s.side(Side::B).sent],
        lost: Default::default(),
    };
    let dir = |prefix: &str, side: Side, v: &mut serde_json::Map<String, Value>| {
        let st = s.side(side);
        let rx = minus(snap.received[idx(side)], last.received[idx(side)]);
        let tx = minus(snap.sent[idx(side)], last.sent[idx(side)]);
        let into = format!("{prefix}2vc");
        v.insert(format!("{into}_rtp_packets"), json!(rx.rtp_packets));
        v.insert(format!("{into}_rtp_bytes"), json!(rx.rtp_bytes));
        v.insert(format!("{into}_rtcp_packets"), json!(rx.rtcp_packets));
        v.insert(format!("{into}_rtcp_bytes"), json!(rx.rtcp_bytes));
        v.insert(format!("{into}_packets_lost"), json!(st.stats.lost().max(0)));
        // Jitter in microseconds; null before any packet with a known clock rate.
        v.insert(
            format!("{into}_jitter"),
            json!(st.stats.jitter_ms().map(|j| (j * 1000.0).round() as u64)),
        );
        let out = format!("vc2{prefix}");
        v.insert(format!("{out}_rtp_packets"), json!(tx.rtp_packets));
        v.insert(format!("{out}_rtp_bytes"), json!(tx.rtp_bytes));
        v.insert(format!("{out}_rtcp_packets"), json!(tx.rtcp_packets));
        v.insert(format!("{out}_rtcp_bytes"), json!(tx.rtcp_bytes));
        // What the far end reports about the stream we send it (its RTCP receiver reports);
        // null when it sent none (never a made-up 0).
        let sent_rate = s.side(side.other()).stats.clock_rate().unwrap_or(8000);
        let (lost, jitter) = match st.far_end_report {
            Some((lost, jitter)) => (
                json!(lost.max(0)),
                json!((f64::from(jitter) * 1e6 / f64::from(sent_rate)).round() as u64),
            ),
            None => (Value::Null, Value::Null),
        };
        v.insert(format!("{out}_packets_lost"), lost);
        v.insert(format!("{out}_jitter"), jitter);
    };
    // RTT of a leg from its peer's reports on SRs voicegw forwarded to it (or on voicegw's
    // own SRs).
    let rtt_us = |side: Side| s.side(side).rtt_ms.map(|r| (r * 1000.0).round() as u64);
    // MOS of a leg from what voicegw measured on the stream it receives there: loss and jitter,
    // and the delay from the RTT when the peer's reports gave one, else estimated as
    // `voicegw analyze` does (d = 2·jitter + ptime): endpoints that send no RTCP still get a
    // MOS. Null only when the leg carried no RTP either way in the period (or a codec without
    // an E-model impairment).
    let mos = |side: Side| -> Option<f64> {
        let st = s.side(side);
        let i = idx(side);
        let period_rtp = (snap.received[i].rtp_packets - last.received[i].rtp_packets)
            + (snap.sent[i].rtp_packets - last.sent[i].rtp_packets);
        if period_rtp == 0 {
            return None;
        }
        let codec = match st.stats.payload_type()? {
            0 | 8 => media::emodel::G711_PLC,
            18 => media::emodel::G729A_VAD,
            _ => return None,
        };
        let expected = st.stats.expected();
        if expected == 0 {
            return None;
        }
        let loss_pct = st.stats.lost().max(0) as f64 * 100.0 / expected as f64;
        // Packetization time: 20 ms, the G.711/G.729 default (the stream's own ptime is not
        // tracked by the relay yet).
        let rtt = st.rtt_ms.unwrap_or(0.0);
        Some(media::emodel::reported_mos(rtt, st.stats.jitter_ms()?, 20.0, loss_pct, codec, 1.0))
    };
    let mut v = serde_json::Map::new();
    v.insert("voice_connector_id".into(), json!(ctx.voice_connector_id));
    v.insert("event_timestamp".into(), json!(now_ms as u64));
    v.insert("call_id".into(), json!(ctx.transaction_id));
    v.insert("from_sip_user".into(), json!(ctx.from_user));
    v.insert("from_country".into(), json!(ctx.from_country));
    v.insert("to_sip_user".into(), json!(ctx.to_user));
    v.insert("to_country".into(), json!(ctx.to_country));
    v.insert("endpoint_id".into(), Value::Null);
    v.insert("aws_region".into(), json!(aws_region));
    dir("cust", cust, &mut v);
    v.insert("rtt_btwn_vc_and_cust".into(), json!(rtt_us(cust)));
    v.insert("mos_btwn_vc_and_cust".into(), json!(mos(cust)));
    dir("rem", rem, &mut v);
    v.insert("rtt_btwn_vc_and_rem".into(), json!(rtt_us(rem)));
    v.insert("mos_btwn_vc_and_rem".into(), json!(mos(rem)));
    for prefix in ["cust2vc", "vc2cust", "rem2vc", "vc2rem"] {
        let k = format!("{prefix}_packets_lost");
        snap.lost.insert(prefix, v.get(&k).and_then(Value::as_f64).unwrap_or(0.0));
    }
    (Value::Object(v), snap)
}

/// Writes the current record (JSON line) and feeds the metrics; returns the new snapshot.
pub(crate) fn write_record(
    ctx: &CallContext,
    s: &Session,
    last: &Snapshot,
    sink: Option<&RecordSink>,
) -> Snapshot {
    use std::io::Write as _;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let region = sink.map(|k| k.aws_region.as_str()).unwrap_or("");
    let (rec, snap) = record(ctx, s, last, region, now_ms);
    let Some(sink) = sink else { return snap };
    if let Some((registry, labels)) = &sink.metrics {
        feed_metrics(&rec, last, &snap, registry, labels);
    }
    if let Some(path) = &sink.path {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let line = format!("{rec}\n");
        match std::fs::OpenOptions::new().create(true).append(true).open(path) {
            Ok(mut f) => {
                if let Err(e) = f.write_all(line.as_bytes()) {
                    tracing::warn!(path = %path.display(), error = %e, "media-quality record not written");
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "media-quality log unavailable")
            }
        }
    }
    snap
}

/// Adds a record's per-minute counts to the CloudWatch-named metrics and sets the gauges.
fn feed_metrics(
    rec: &Value,
    last: &Snapshot,
    snap: &Snapshot,
    registry: &std::sync::Mutex<Registry>,
    l: &Labels,
) {
    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
    let n = |k: &str| rec[k].as_f64();
    let dirs = [
        (
            "cust2vc",
            [
                names::CUSTOMER_TO_VC_RTP_PACKETS,
                names::CUSTOMER_TO_VC_RTP_BYTES,
                names::CUSTOMER_TO_VC_RTCP_PACKETS,
                names::CUSTOMER_TO_VC_RTCP_BYTES,
                names::CUSTOMER_TO_VC_PACKETS_LOST,
                names::CUSTOMER_TO_VC_JITTER,
            ],
        ),
        (
            "vc2cust",
            [
                names::VC_TO_CUSTOMER_RTP_PACKETS,
                names::VC_TO_CUSTOMER_RTP_BYTES,
                names::VC_TO_CUSTOMER_RTCP_PACKETS,
                names::VC_TO_CUSTOMER_RTCP_BYTES,
                names::VC_TO_CUSTOMER_PACKETS_LOST,
                names::VC_TO_CUSTOMER_JITTER,
            ],
        ),
        (
            "rem2vc",
            [
                names::REMOTE_TO_VC_RTP_PACKETS,
                names::REMOTE_TO_VC_RTP_BYTES,
                names::REMOTE_TO_VC_RTCP_PACKETS,
                names::REMOTE_TO_VC_RTCP_BYTES,
                names::REMOTE_TO_VC_PACKETS_LOST,
                names::REMOTE_TO_VC_JITTER,
            ],
        ),
        (
            "vc2rem",
            [
                names::VC_TO_REMOTE_RTP_PACKETS,
                names::VC_TO_REMOTE_RTP_BYTES,
                names::VC_TO_REMOTE_RTCP_PACKETS,
                names::VC_TO_REMOTE_RTCP_BYTES,
                names::VC_TO_REMOTE_PACKETS_LOST,
                names::VC_TO_REMOTE_JITTER,
            ],
        ),
    ];
    for (prefix, [pk, by, cpk, cby, lost, jit]) in dirs {
        r.add(pk, l, n(&format!("{prefix}_rtp_packets")).unwrap_or(0.0));
        r.add(by, l, n(&format!("{prefix}_rtp_bytes")).unwrap_or(0.0));
        r.add(cpk, l, n(&format!("{prefix}_rtcp_packets")).unwrap_or(0.0));
        r.add(cby, l, n(&format!("{prefix}_rtcp_bytes")).unwrap_or(0.0));
        // Loss is cumulative in the record: count what is new since the last one.
        let now_lost = n(&format!("{prefix}_packets_lost")).unwrap_or(0.0);
        let before = last.lost.get(prefix).copied().unwrap_or(0.0);
        r.add(lost, l, (now_lost - before).max(0.0));
        if let Some(j) = n(&format!("{prefix}_jitter")) {
            r.set(jit, l, j);
        }
    }
    let _ = snap;
    for (k, m) in [
        ("rtt_btwn_vc_and_cust", names::RTT_VC_CUSTOMER),
        ("rtt_btwn_vc_and_rem", names::RTT_VC_REMOTE),
        ("mos_btwn_vc_and_cust", names::MOS_VC_CUSTOMER),
        ("mos_btwn_vc_and_rem", names::MOS_VC_REMOTE),
    ] {
        if let Some(v) = n(k) {
            r.set(m, l, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::relay::Component;

    /// The exact field list of formats.md §4.
    const FIELDS: &str = "voice_connector_id, event_timestamp, call_id, from_sip_user, from_country, to_sip_user, to_country, endpoint_id, aws_region, cust2vc_rtp_packets, cust2vc_rtp_bytes, cust2vc_rtcp_packets, cust2vc_rtcp_bytes, cust2vc_packets_lost, cust2vc_jitter, vc2cust_rtp_packets, vc2cust_rtp_bytes, vc2cust_rtcp_packets, vc2cust_rtcp_bytes, vc2cust_packets_lost, vc2cust_jitter, rtt_btwn_vc_and_cust, mos_btwn_vc_and_cust, rem2vc_rtp_packets, rem2vc_rtp_bytes, rem2vc_rtcp_packets, rem2vc_rtcp_bytes, rem2vc_packets_lost, rem2vc_jitter, vc2rem_rtp_packets, vc2rem_rtp_bytes, vc2rem_rtcp_packets, vc2rem_rtcp_bytes, vc2rem_packets_lost, vc2rem_jitter, rtt_btwn_vc_and_rem, mos_btwn_vc_and_rem";

    #[test]
    fn record_has_exactly_the_documented_fields_and_per_minute_counts() {
        let ctx = CallContext {
            call: 1,
            transaction_id: "6f1a3c2e-1111-4a2b-9c3d-0123456789ab".into(),
            voice_connector_id: "abcdef1ghij2klmno3pqr4".into(),
            direction: Direction::Outbound,
            from_user: "+12065550100".into(),
            to_user: "+12065550101".into(),
            from_country: Some("US".into()),
            to_country: None,
            latching: Default::default(),
        };
        let mut s = Session::new();
        s.set_peer(Side::A, "10.0.0.1:4000".parse().unwrap(), None, false, vec![]);
        s.set_peer(Side::B, "10.0.0.2:6000".parse().unwrap(), None, false, vec![]);
        let pkt = |seq: u16| {
            let mut p = vec![0x80, 0, (seq >> 8) as u8, seq as u8, 0, 0, 0, 0, 0, 0, 0, 7];
            p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            p.extend_from_slice(&[0xd5; 160]);
            p
        };
        for i in 0..10u16 {
            if i != 4 {
                s.on_packet(
                    Side::A,
                    Component::Rtp,
                    "10.0.0.1:4000".parse().unwrap(),
                    &pkt(i),
                    f64::from(i) * 20.0,
                );
            }
        }
        let (rec, snap) = record(&ctx, &s, &Snapshot::default(), "us-east-1", 1_700_000_000_000);
        let keys: Vec<&str> = rec.as_object().unwrap().keys().map(String::as_str).collect();
        let want: Vec<&str> = FIELDS.split(", ").collect();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort_unstable();
        let mut sorted_want = want.clone();
        sorted_want.sort_unstable();
        assert_eq!(sorted_keys, sorted_want);
        assert_eq!(rec["cust2vc_rtp_packets"], 9);
        assert_eq!(rec["cust2vc_rtp_bytes"], 9 * 172);
        assert_eq!(rec["cust2vc_packets_lost"], 1);
        assert_eq!(rec["cust2vc_jitter"], 0);
        assert_eq!(rec["vc2rem_rtp_packets"], 9);
        assert_eq!(rec["rem2vc_rtp_packets"], 0);
        assert!(rec["rem2vc_jitter"].is_null(), "no packets from the carrier: jitter unknown");
        assert!(rec["rtt_btwn_vc_and_cust"].is_null() && rec["rtt_btwn_vc_and_rem"].is_null());
        // No RTCP from the PBX: MOS from voicegw's own loss and jitter (1 of 10 lost, d = 20 ms).
        let want = media::emodel::reported_mos(0.0, 0.0, 20.0, 10.0, media::emodel::G711_PLC, 1.0);
        assert_eq!(rec["mos_btwn_vc_and_cust"].as_f64(), Some(want), "{rec}");
        assert!(want > 1.0 && want < 4.0, "{want}");
        assert!(rec["mos_btwn_vc_and_rem"].is_null(), "no media from the carrier yet");
        // The carrier answers with RTP and reports on the SRs the PBX sent it through voicegw:
        // the remote leg's RTT, its view of our stream and a MOS appear.
        for i in 0..10u16 {
            let mut p = pkt(i);
            p[11] = 9; // SSRC 9
            s.on_packet(
                Side::B,
                Component::Rtp,
                "10.0.0.2:6000".parse().unwrap(),
                &p,
                f64::from(i) * 20.0,
            );
        }
        let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, 7, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0];
        sr.extend_from_slice(&[0; 12]);
        s.on_packet(Side::A, Component::Rtcp, "10.0.0.1:4001".parse().unwrap(), &sr, 1000.0);
        let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 9, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 9];
        rr.extend_from_slice(&[0, 0, 0, 16, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x80, 0]);
        s.on_packet(Side::B, Component::Rtcp, "10.0.0.2:6001".parse().unwrap(), &rr, 1540.0);
        let (rec3, _) = record(&ctx, &s, &snap, "us-east-1", 1_700_000_060_000);
        assert_eq!(rec3["rtt_btwn_vc_and_rem"], 40_000, "1540 - 1000 - 500 ms");
        assert_eq!(rec3["vc2rem_packets_lost"], 2);
        assert_eq!(rec3["vc2rem_jitter"], 2000, "16 units at 8 kHz");
        assert_eq!(rec3["mos_btwn_vc_and_rem"], 4.39, "G.711, no loss, no jitter, d = 20 + 20 ms");
        assert!(rec3["rtt_btwn_vc_and_cust"].is_null());
        // The next minute counts only new packets; loss stays cumulative.
        let (rec2, _) = record(&ctx, &s, &snap, "us-east-1", 1_700_000_060_000);
        assert_eq!(rec2["cust2vc_rtp_packets"], 0);
        assert_eq!(rec2["cust2vc_packets_lost"], 1);
    }
}
