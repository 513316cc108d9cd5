//! `voicegw analyze FILE`: the media statistics code run over a capture. SIP/SDP found in UDP
//! datagrams gives the clock rates of dynamic payload types; RTP is recognised by its header
//! (version 2, not RTCP) on any UDP flow. One JSON object per stream (SSRC from one source to
//! one destination).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use media::capture::{udp_datagrams, CaptureError};
use media::emodel;
use media::rtcp;
use media::rtp::{is_comfort_noise, is_rtcp, static_clock_rate, RtpHeader};
use media::sdp::Sdp;
use media::stats::{Arrival, ReceiveStats};
use serde::Serialize;

/// The JSON object printed per stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamReport {
    pub ssrc: String,
    pub src: String,
    pub dst: String,
    /// Payload types seen, in order of first appearance.
    pub payload_types: Vec<u8>,
    /// Encoding of the first payload type, from SDP or the static table.
    pub codec: Option<String>,
    pub packets: u64,
    pub expected: u64,
    pub lost: i64,
    pub mean_jitter_ms: Option<f64>,
    pub max_jitter_ms: Option<f64>,
    /// Packetization time in ms (most common timestamp step between consecutive packets).
    pub ptime_ms: Option<f64>,
    /// E-model MOS (G.711 and G.729 only) from loss and jitter; the capture has no RTT for the
    /// stream unless RTCP reports give one (`mos_basis` says which).
    pub mos: Option<f64>,
    pub mos_basis: Option<&'static str>,
    /// Round-trip times (ms) from the RTCP receiver reports about this stream, measured at the
    /// capture point (RFC 3550 §6.4.1: arrival − LSR − DLSR), in capture order.
    pub rtt_ms: Vec<f64>,
    pub first_time_s: f64,
    pub last_time_s: f64,
}

#[derive(Default)]
struct Stream {
    codec: Option<String>,
    first_rate: Option<u32>,
    stats: ReceiveStats,
    pts: Vec<u8>,
    first_ns: u64,
    last_ns: u64,
    last_seq: Option<u16>,
    last_ts: u32,
    steps: HashMap<u32, u32>,
}

/// What one SDP said about one receiving address, from the time it was seen.
struct SdpEntry {
    at_ns: u64,
    /// False for non-RTP media (e.g. `udptl` for T.38): datagrams there are not RTP.
    rtp: bool,
    /// (encoding, clock rate) per payload type.
    pts: HashMap<u8, (String, u32)>,
}

/// SDP entries per receiving address, in capture order.
type SdpMaps = HashMap<SocketAddr, Vec<SdpEntry>>;

/// The latest SDP about either end of a datagram at time `t`.
fn sdp_for(maps: &SdpMaps, src: SocketAddr, dst: SocketAddr, t: u64) -> Option<&SdpEntry> {
    let latest = |a: SocketAddr| maps.get(&a).and_then(|v| v.iter().rev().find(|e| e.at_ns <= t));
    match (latest(dst), latest(src)) {
        (Some(a), Some(b)) => Some(if b.at_ns > a.at_ns { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn sdp_bodies(payload: &[u8]) -> Vec<Vec<u8>> {
    let Ok(msg) = sip::Message::parse(payload) else { return vec![] };
    let ct = msg.headers().get(&sip::HeaderName::ContentType).unwrap_or("").to_ascii_lowercase();
    if ct.starts_with("application/sdp") {
        return vec![msg.body().to_vec()];
    }
    if ct.starts_with("multipart/") {
        let ct_raw = msg.headers().get(&sip::HeaderName::ContentType).unwrap_or("");
        if let Ok(parts) = sip::message::multipart::parse(ct_raw, msg.body()) {
            return parts
                .into_iter()
                .filter(|p| {
                    p.content_type()
                        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/sdp"))
                })
                .map(|p| p.body.to_vec())
                .collect();
        }
    }
    vec![]
}

fn learn_sdp(maps: &mut SdpMaps, body: &[u8], at_ns: u64) {
    let Ok(sdp) = Sdp::parse(body) else { return };
    for m in &sdp.media {
        let Some(addr) = sdp.media_addr(m) else { continue };
        if m.port == 0 {
            continue;
        }
        let pts =
            m.rtpmaps().into_iter().map(|r| (r.payload_type, (r.encoding, r.clock_rate))).collect();
        let rtp = m.proto.to_ascii_uppercase().contains("RTP");
        maps.entry(SocketAddr::new(addr, m.port)).or_default().push(SdpEntry { at_ns, rtp, pts });
    }
}

fn static_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        8 => "PCMA",
        9 => "G722",
        13 => "CN",
        18 => "G729",
        _ => return None,
    })
}

/// Analyses a capture file's bytes.
pub fn analyze(file: &[u8]) -> Result<Vec<StreamReport>, CaptureError> {
    let datagrams = udp_datagrams(file)?;
    let mut maps: SdpMaps = HashMap::new();
    for d in &datagrams {
        if d.payload.first().is_some_and(|b| b.is_ascii_alphabetic()) {
            for body in sdp_bodies(d.payload) {
                learn_sdp(&mut maps, &body, d.time_ns);
            }
        }
    }
    let start_ns = datagrams.first().map(|d| d.time_ns).unwrap_or(0);
    let mut streams: BTreeMap<(SocketAddr, SocketAddr, u32), Stream> = BTreeMap::new();
    // When each SR was seen (by the middle 32 bits of its NTP time), and the RTTs found.
    // Keyed by the conversation (the unordered address pair), the SR sender and its NTP time:
    // a report refers to an SR sent to its own sender on the same flow.
    type Conv = (SocketAddr, SocketAddr);
    let conv = |a: SocketAddr, b: SocketAddr| -> Conv {
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    };
    let mut sr_seen: HashMap<(Conv, u32, u32), f64> = HashMap::new();
    // First sighting of each SR anywhere in the capture: when its sender sent it, as seen from
    // here (a relay in the capture forwards the same SR again later, on another flow).
    let mut sr_first: HashMap<(u32, u32), f64> = HashMap::new();
    let mut rtts: HashMap<(u32, std::net::IpAddr), Vec<f64>> = HashMap::new();
    for d in &datagrams {
        if is_rtcp(d.payload) {
            let t = (d.time_ns - start_ns) as f64 / 1e6;
            for r in rtcp::reports(d.payload) {
                for b in &r.blocks {
                    // The block reports on the SR sender's stream: match its SR by (SSRC, LSR).
                    let on_flow = sr_seen.contains_key(&(conv(d.src, d.dst), b.ssrc, b.lsr));
                    let sent = sr_first.get(&(b.ssrc, b.lsr)).filter(|_| on_flow);
                    if let Some(rtt) = sent.and_then(|sent| rtcp::rtt_ms(b, *sent, t)) {
                        rtts.entry((b.ssrc, d.src.ip())).or_default().push(round3(rtt));
                    }
                }
                if let Some(n) = r.ntp_middle {
                    // The first sighting: a capture point may see the same SR again further on.
                    sr_seen.entry((conv(d.src, d.dst), r.sender_ssrc, n)).or_insert(t);
                    sr_first.entry((r.sender_ssrc, n)).or_insert(t);
                }
            }
            continue;
        }
        let Ok(h) = RtpHeader::parse(d.payload) else { continue };
        let sdp = sdp_for(&maps, d.src, d.dst, d.time_ns);
        // Where SDP moved the flow to non-RTP media (T.38 over UDPTL), only datagrams that carry
        // the SSRC of an RTP stream already seen on the flow are still RTP: endpoints often keep
        // sending audio until the switch completes.
        if sdp.is_some_and(|e| !e.rtp) && !streams.contains_key(&(d.src, d.dst, h.ssrc)) {
            continue;
        }
        let mapped = sdp.and_then(|e| e.pts.get(&h.payload_type));
        let is_event = mapped.is_some_and(|(e, _)| e.eq_ignore_ascii_case("telephone-event"));
        let clock_rate = if is_event {
            None
        } else if h.payload_type < 96 {
            static_clock_rate(h.payload_type).or(mapped.map(|m| m.1))
        } else {
            mapped.map(|m| m.1)
        };
        let s = streams.entry((d.src, d.dst, h.ssrc)).or_default();
        if s.stats.packets == 0 {
            s.first_ns = d.time_ns;
            s.codec = mapped
                .map(|m| m.0.clone())
                .or_else(|| static_name(h.payload_type).map(str::to_string));
            s.first_rate = clock_rate;
        }
        s.last_ns = d.time_ns;
        if !s.pts.contains(&h.payload_type) {
            s.pts.push(h.payload_type);
        }
        if let Some(prev) = s.last_seq {
            if h.sequence == prev.wrapping_add(1) {
                *s.steps.entry(h.timestamp.wrapping_sub(s.last_ts)).or_default() += 1;
            }
        }
        s.last_seq = Some(h.sequence);
        s.last_ts = h.timestamp;
        s.stats.on_packet(&Arrival {
            sequence: h.sequence,
            timestamp: h.timestamp,
            payload_type: h.payload_type,
            marker: h.marker,
            payload_len: h.payload_len,
            at_ms: (d.time_ns - start_ns) as f64 / 1e6,
            clock_rate,
            comfort_noise: is_comfort_noise(h.payload_type),
        });
    }
    let mut out = Vec::new();
    for ((src, dst, ssrc), s) in streams {
        let codec = s.codec.clone();
        let ptime_ms = s.first_rate.and_then(|r| {
            let (step, _) = s.steps.iter().filter(|(k, _)| **k > 0).max_by_key(|(_, n)| **n)?;
            Some(f64::from(*step) * 1000.0 / f64::from(r))
        });
        let ie = match codec.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("PCMU" | "PCMA") => Some(emodel::G711_PLC),
            Some("G729") => Some(emodel::G729A_VAD),
            _ => None,
        };
        let expected = s.stats.expected();
        let loss_pct = if expected > 0 {
            (s.stats.lost().max(0) as f64) * 100.0 / expected as f64
        } else {
            0.0
        };
        let rtt_ms = rtts.remove(&(ssrc, dst.ip())).unwrap_or_default();
        let mean_rtt =
            (!rtt_ms.is_empty()).then(|| rtt_ms.iter().sum::<f64>() / rtt_ms.len() as f64);
        let mos = match (ie, s.stats.mean_jitter_ms(), ptime_ms) {
            (Some(codec), Some(j), Some(pt)) if s.stats.packets >= 50 => {
                Some(emodel::reported_mos(mean_rtt.unwrap_or(0.0), j, pt, loss_pct, codec, 1.0))
            }
            _ => None,
        };
        out.push(StreamReport {
            ssrc: format!("0x{ssrc:08X}"),
            src: src.to_string(),
            dst: dst.to_string(),
            payload_types: s.pts.clone(),
            codec,
            packets: s.stats.packets,
            expected,
            lost: s.stats.lost(),
            mean_jitter_ms: s.stats.mean_jitter_ms().map(round3),
            max_jitter_ms: s.stats.max_jitter_ms().map(round3),
            ptime_ms,
            mos_basis: mos.map(|_| {
                if mean_rtt.is_some() {
                    "loss, mean jitter and mean RTCP round-trip time (delay = RTT/2 + 2*jitter + ptime)"
                } else {
                    "loss and mean jitter; no RTCP round-trip time in the capture (delay = 2*jitter + ptime)"
                }
            }),
            rtt_ms,
            mos,
            first_time_s: (s.first_ns - start_ns) as f64 / 1e9,
            last_time_s: (s.last_ns - start_ns) as f64 / 1e9,
        });
    }
    Ok(out)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
