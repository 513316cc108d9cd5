//! What the media thread ([`crate::relay::thread`]) needs besides its event loop: commands, timing,
//! and the media-quality records (formats.md §4): the typed figures of `media::quality`,
//! written as JSON lines and added to the metrics from the same values.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use media::quality::{self, Flow, LegQuality};
use media::relay::{Session, Side};
use metrics::{names, Labels, Registry};
use sip::b2bua::Direction;

use crate::relay::anchor::CallContext;

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
    /// Copies of the call's RTP (what each side sends, in clear) go out of these sockets
    /// (`[caller's rtp, rtcp, callee's rtp, rtcp]`) to a recording server.
    Fork {
        sockets: Box<[std::net::UdpSocket; 4]>,
    },
    ForkTo {
        to: [Option<std::net::SocketAddr>; 2],
    },
    Unfork,
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

/// Where the last record left off: the session's counters (records carry per-period packets
/// and bytes) and the cumulative losses it reported (the metrics count what is new), in the
/// record's order of directions (`cust2vc`, `vc2cust`, `rem2vc`, `vc2rem`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Snapshot {
    counters: quality::Snapshot,
    lost: [u64; 4],
}

/// A formats.md §4 record: the call's identity and both legs' quality in the period.
pub(crate) struct MediaRecord<'a> {
    ctx: &'a CallContext,
    aws_region: &'a str,
    event_timestamp: u64,
    /// The customer's leg (the caller on termination, the callee on origination), then the
    /// remote one.
    cust: LegQuality,
    rem: LegQuality,
}

impl MediaRecord<'_> {
    /// The four directions in the record's order, with their prefixes.
    fn flows(&self) -> [(&'static str, &Flow); 4] {
        [
            ("cust2vc", &self.cust.inbound),
            ("vc2cust", &self.cust.outbound),
            ("rem2vc", &self.rem.inbound),
            ("vc2rem", &self.rem.outbound),
        ]
    }

    fn lost(&self) -> [u64; 4] {
        self.flows().map(|(_, f)| f.packets_lost.unwrap_or(0))
    }
}

impl serde::Serialize for MediaRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.ctx;
        let mut m = s.serialize_map(Some(37))?;
        m.serialize_entry("voice_connector_id", &c.voice_connector_id)?;
        m.serialize_entry("event_timestamp", &self.event_timestamp)?;
        m.serialize_entry("call_id", &c.transaction_id)?;
        m.serialize_entry("from_sip_user", &c.from_user)?;
        m.serialize_entry("from_country", &c.from_country)?;
        m.serialize_entry("to_sip_user", &c.to_user)?;
        m.serialize_entry("to_country", &c.to_country)?;
        m.serialize_entry("endpoint_id", &None::<String>)?;
        m.serialize_entry("aws_region", self.aws_region)?;
        let flows = self.flows();
        for (i, (leg, name)) in [(&self.cust, "cust"), (&self.rem, "rem")].into_iter().enumerate() {
            for (prefix, f) in &flows[i * 2..i * 2 + 2] {
                m.serialize_entry(&format!("{prefix}_rtp_packets"), &f.counts.rtp_packets)?;
                m.serialize_entry(&format!("{prefix}_rtp_bytes"), &f.counts.rtp_bytes)?;
                m.serialize_entry(&format!("{prefix}_rtcp_packets"), &f.counts.rtcp_packets)?;
                m.serialize_entry(&format!("{prefix}_rtcp_bytes"), &f.counts.rtcp_bytes)?;
                m.serialize_entry(&format!("{prefix}_packets_lost"), &f.packets_lost)?;
                m.serialize_entry(&format!("{prefix}_jitter"), &f.jitter_us)?;
            }
            m.serialize_entry(&format!("rtt_btwn_vc_and_{name}"), &leg.rtt_us)?;
            m.serialize_entry(&format!("mos_btwn_vc_and_{name}"), &leg.mos)?;
        }
        m.end()
    }
}

/// The record for the period since `last`; returns the new snapshot.
fn record<'a>(
    ctx: &'a CallContext,
    s: &Session,
    last: &Snapshot,
    aws_region: &'a str,
    now_ms: u128,
) -> (MediaRecord<'a>, Snapshot) {
    let (legs, counters) = quality::period(s, &last.counters);
    // Termination: the caller (A) is the customer; origination: the callee (B) is.
    let (cust, rem) = match ctx.direction {
        Direction::Outbound => (legs[0], legs[1]),
        Direction::Inbound => (legs[1], legs[0]),
    };
    let rec = MediaRecord { ctx, aws_region, event_timestamp: now_ms as u64, cust, rem };
    let snap = Snapshot { counters, lost: rec.lost() };
    (rec, snap)
}

/// Writes the current record (JSON line, stamped `wall`) and feeds the metrics; returns the
/// new snapshot.
pub(crate) fn write_record(
    ctx: &CallContext,
    s: &Session,
    last: &Snapshot,
    sink: Option<&RecordSink>,
    wall: SystemTime,
) -> Snapshot {
    let now_ms = wall.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let region = sink.map(|k| k.aws_region.as_str()).unwrap_or("");
    let (rec, snap) = record(ctx, s, last, region, now_ms);
    if let Some(sink) = sink {
        emit(&rec, &last.lost, sink);
    }
    snap
}

/// Writes the record of a leg voicegw terminates (a meeting participant: the customer leg;
/// the remote directions are empty) and feeds the metrics; `lost` is the cumulative losses
/// of the last record, and the new ones are returned.
pub(crate) fn write_terminated(
    ctx: &CallContext,
    cust: LegQuality,
    lost: &[u64; 4],
    sink: &RecordSink,
    wall: SystemTime,
) -> [u64; 4] {
    let now_ms = wall.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0) as u64;
    let rec = MediaRecord {
        ctx,
        aws_region: &sink.aws_region,
        event_timestamp: now_ms,
        cust,
        rem: LegQuality::default(),
    };
    emit(&rec, lost, sink);
    rec.lost()
}

/// A record to its sink: the metrics, the JSON line.
fn emit(rec: &MediaRecord, last_lost: &[u64; 4], sink: &RecordSink) {
    use std::io::Write as _;
    if let Some((registry, labels)) = &sink.metrics {
        feed_metrics(rec, last_lost, registry, labels);
    }
    let Some(path) = &sink.path else { return };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut line = serde_json::to_vec(rec).unwrap_or_default();
    line.push(b'\n');
    match std::fs::OpenOptions::new().create(true).append(true).open(path) {
        Ok(mut f) => {
            if let Err(e) = f.write_all(&line) {
                tracing::warn!(path = %path.display(), error = %e, "media-quality record not written");
            }
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "media-quality log unavailable")
        }
    }
}

/// Adds a record's per-period counts to the CloudWatch-named metrics and sets the gauges.
fn feed_metrics(
    rec: &MediaRecord,
    last_lost: &[u64; 4],
    registry: &std::sync::Mutex<Registry>,
    l: &Labels,
) {
    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
    let names = [
        [
            names::CUSTOMER_TO_VC_RTP_PACKETS,
            names::CUSTOMER_TO_VC_RTP_BYTES,
            names::CUSTOMER_TO_VC_RTCP_PACKETS,
            names::CUSTOMER_TO_VC_RTCP_BYTES,
            names::CUSTOMER_TO_VC_PACKETS_LOST,
            names::CUSTOMER_TO_VC_JITTER,
        ],
        [
            names::VC_TO_CUSTOMER_RTP_PACKETS,
            names::VC_TO_CUSTOMER_RTP_BYTES,
            names::VC_TO_CUSTOMER_RTCP_PACKETS,
            names::VC_TO_CUSTOMER_RTCP_BYTES,
            names::VC_TO_CUSTOMER_PACKETS_LOST,
            names::VC_TO_CUSTOMER_JITTER,
        ],
        [
            names::REMOTE_TO_VC_RTP_PACKETS,
            names::REMOTE_TO_VC_RTP_BYTES,
            names::REMOTE_TO_VC_RTCP_PACKETS,
            names::REMOTE_TO_VC_RTCP_BYTES,
            names::REMOTE_TO_VC_PACKETS_LOST,
            names::REMOTE_TO_VC_JITTER,
        ],
        [
            names::VC_TO_REMOTE_RTP_PACKETS,
            names::VC_TO_REMOTE_RTP_BYTES,
            names::VC_TO_REMOTE_RTCP_PACKETS,
            names::VC_TO_REMOTE_RTCP_BYTES,
            names::VC_TO_REMOTE_PACKETS_LOST,
            names::VC_TO_REMOTE_JITTER,
        ],
    ];
    let lost_now = rec.lost();
    for (i, ((_, f), [pk, by, cpk, cby, lost, jit])) in
        rec.flows().into_iter().zip(names).enumerate()
    {
        r.add(pk, l, f.counts.rtp_packets as f64);
        r.add(by, l, f.counts.rtp_bytes as f64);
        r.add(cpk, l, f.counts.rtcp_packets as f64);
        r.add(cby, l, f.counts.rtcp_bytes as f64);
        // Loss is cumulative in the record: count what is new since the last one.
        r.add(lost, l, lost_now[i].saturating_sub(last_lost[i]) as f64);
        if let Some(j) = f.jitter_us {
            r.set(jit, l, j as f64);
        }
    }
    for (v, m) in [
        (rec.cust.rtt_us.map(|v| v as f64), names::RTT_VC_CUSTOMER),
        (rec.rem.rtt_us.map(|v| v as f64), names::RTT_VC_REMOTE),
        (rec.cust.mos, names::MOS_VC_CUSTOMER),
        (rec.rem.mos, names::MOS_VC_REMOTE),
    ] {
        if let Some(v) = v {
            r.set(m, l, v);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The instant `t` ms after the origin.
    fn ms(t: f64) -> media::relay::Instant {
        media::relay::Instant::from_origin(std::time::Duration::from_secs_f64(t / 1000.0))
    }
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
            stream: None,
            record_only: false,
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
                    ms(f64::from(i) * 20.0),
                );
            }
        }
        let (rec, snap) = record(&ctx, &s, &Snapshot::default(), "us-east-1", 1_700_000_000_000);
        let rec = serde_json::to_value(&rec).unwrap();
        let keys: Vec<&str> = rec.as_object().unwrap().keys().map(String::as_str).collect();
        let want: Vec<&str> = FIELDS.split(", ").collect();
        assert_eq!(keys, want, "the fields of formats.md §4, in its order");
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
                ms(f64::from(i) * 20.0),
            );
        }
        let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, 7, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0];
        sr.extend_from_slice(&[0; 12]);
        s.on_packet(Side::A, Component::Rtcp, "10.0.0.1:4001".parse().unwrap(), &sr, ms(1000.0));
        let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 9, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 9];
        rr.extend_from_slice(&[0, 0, 0, 16, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x80, 0]);
        s.on_packet(Side::B, Component::Rtcp, "10.0.0.2:6001".parse().unwrap(), &rr, ms(1540.0));
        let (rec3, _) = record(&ctx, &s, &snap, "us-east-1", 1_700_000_060_000);
        let rec3 = serde_json::to_value(&rec3).unwrap();
        assert_eq!(rec3["rtt_btwn_vc_and_rem"], 40_000, "1540 - 1000 - 500 ms");
        assert_eq!(rec3["vc2rem_packets_lost"], 2);
        assert_eq!(rec3["vc2rem_jitter"], 2000, "16 units at 8 kHz");
        assert_eq!(rec3["mos_btwn_vc_and_rem"], 4.39, "G.711, no loss, no jitter, d = 20 + 20 ms");
        assert!(rec3["rtt_btwn_vc_and_cust"].is_null());
        // The next minute counts only new packets; loss stays cumulative.
        let (rec2, _) = record(&ctx, &s, &snap, "us-east-1", 1_700_000_060_000);
        let rec2 = serde_json::to_value(&rec2).unwrap();
        assert_eq!(rec2["cust2vc_rtp_packets"], 0);
        assert_eq!(rec2["cust2vc_packets_lost"], 1);
    }
}
