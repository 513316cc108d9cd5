//! The forwarding decision of one call's media, sans-IO: packets arrive on one side (A: the
//! inbound leg, B: the outbound leg), are counted and measured, and go out of the other side to
//! the peer's address.
//!
//! **Which sources are accepted** (modelled on rtpengine's `strict-source` and endpoint
//! learning): with [`Latching::Strict`], the default, a side accepts packets only from the
//! address its SDP announced (RTP from the `m=` address; RTCP from the `a=rtcp`/port + 1
//! address or the RTP address), so a third party that sends to a freshly allocated port first
//! neither receives the call's audio nor displaces the real peer. With [`Latching::Learn`]
//! (peers behind NAT, whose packets come from another address than their SDP says), a new
//! source is learnt only after [`LEARN_PACKETS`] consecutive packets from it and only while the
//! current source has been silent for [`HANDOVER_SILENCE_MS`]: a stranger cannot take over a
//! leg whose peer is sending. The SDP address is always accepted. Every other packet is dropped,
//! counted in `dropped_wrong_source` and remembered in `last_rejected_source`; it does not count
//! as activity (see [`Session::last_activity_ms`]).
//!
//! No allocation or copy per packet: [`Session::on_packet`] reads the header in place and
//! returns where the same bytes go.

use std::net::SocketAddr;

pub use common::Instant;

use crate::rtp::{is_comfort_noise, is_rtcp, RtpHeader};
use crate::stats::{Arrival, ReceiveStats};

pub use common::Side;
pub use timers::{SessionEvent, Timing, TICK};

mod timers;

/// `now` in milliseconds since the origin: the unit of the statistics' arithmetic.
pub(crate) fn ms_of(now: Instant) -> f64 {
    now.since_origin().as_secs_f64() * 1000.0
}

/// RTP or RTCP socket of a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    Rtp,
    Rtcp,
}

/// Where a received packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// Send from this side's socket…
    pub side: Side,
    pub component: Component,
    /// …to this address.
    pub to: SocketAddr,
}

/// Which sources a side accepts (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latching {
    /// Only the address the peer's SDP announced.
    #[default]
    Strict,
    /// The SDP address, or a source learnt after consistent packets while the current one is
    /// silent (NAT).
    Learn,
}

/// Consecutive packets from one new source before [`Latching::Learn`] switches to it.
pub const LEARN_PACKETS: u32 = 5;

/// How long the current source must have been silent before [`Latching::Learn`] switches.
pub const HANDOVER_SILENCE_MS: f64 = 2000.0;

/// Counters of one direction of one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub rtp_packets: u64,
    pub rtp_bytes: u64,
    pub rtcp_packets: u64,
    pub rtcp_bytes: u64,
}

/// The peer of one side.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// From SDP: where the peer said it receives RTP.
    pub sdp_rtp: Option<SocketAddr>,
    /// From SDP (`a=rtcp`, or RTP port + 1, or the RTP address with `a=rtcp-mux`).
    pub sdp_rtcp: Option<SocketAddr>,
    /// A source learnt from the peer's packets ([`Latching::Learn`]), else the SDP address
    /// once it sent.
    pub latched_rtp: Option<SocketAddr>,
    pub latched_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
}

/// Source acceptance of one component of one side.
#[derive(Debug, Clone, Copy, Default)]
struct SourceGate {
    /// When the accepted source last sent.
    last_accepted_ms: Option<f64>,
    /// A source that is not the current one: its consecutive packets.
    candidate: Option<(SocketAddr, u32)>,
}

impl Peer {
    fn dest(&self, c: Component) -> Option<SocketAddr> {
        match c {
            Component::Rtp => self.latched_rtp.or(self.sdp_rtp),
            Component::Rtcp if self.rtcp_mux => self.latched_rtp.or(self.sdp_rtp),
            Component::Rtcp => self.latched_rtcp.or(self.sdp_rtcp),
        }
    }
}

/// Per side: the peer, what we received from it, what we sent to it.
#[derive(Debug, Clone, Default)]
pub struct SideState {
    pub peer: Peer,
    pub received: Counters,
    pub sent: Counters,
    pub stats: ReceiveStats,
    /// SSRC the receive statistics follow (a new SSRC restarts them).
    pub ssrc: Option<u32>,
    pub ssrc_changes: u32,
    /// Which sources this side accepts.
    pub latching: Latching,
    gates: [SourceGate; 2],
    /// Packets dropped: from a source this side does not accept, or no destination yet.
    pub dropped_wrong_source: u64,
    /// The last source whose packets were dropped, for the log.
    pub last_rejected_source: Option<SocketAddr>,
    pub dropped_no_destination: u64,
    pub malformed: u64,
    /// Clock rate per payload type, from SDP.
    pub clock_rates: Vec<(u8, u32)>,
    /// SRs forwarded to this side's peer: (sender SSRC, NTP middle 32 bits, when), newest last.
    sr_sent: Vec<(u32, u32, f64)>,
    /// Round-trip time between voicegw and this side's peer (ms), from the peer's reports on
    /// SRs we forwarded to it (RFC 3550 §6.4.1); the latest measurement.
    pub rtt_ms: Option<f64>,
    /// What this side's peer reports about the stream we send it: cumulative lost and
    /// interarrival jitter (timestamp units).
    pub far_end_report: Option<(i32, u32)>,
    /// The latest RTP packet received from this side's peer: (timestamp, arrival ms), to
    /// extrapolate the RTP time of SRs voicegw sends on the stream's behalf.
    last_rtp: Option<(u32, f64)>,
    /// When voicegw last sent an SR of its own to this side's peer.
    last_own_sr_ms: Option<f64>,
    /// SRTP from this side's peer (its SDES key) and to it (voicegw's key for this leg).
    srtp_in: Option<crate::srtp::Context>,
    srtp_out: Option<crate::srtp::Context>,
    /// SRTP/SRTCP packets that failed authentication or replay checks.
    pub srtp_failures: u64,
}

/// How many forwarded SRs each side remembers for RTT matching.
const SR_MEMORY: usize = 8;

/// voicegw sends an SR on a stream's behalf at this interval when its sender sends none.
pub const OWN_SR_INTERVAL_MS: f64 = 5000.0;

/// CNAME in the SDES of the SRs voicegw sends.
const CNAME: &[u8] = b"voicegw";

impl SideState {
    /// Whether a packet on `component` from `from` is accepted (module docs), updating the
    /// latch.
    fn accept_source(&mut self, component: Component, from: SocketAddr, now_ms: f64) -> bool {
        let peer = &mut self.peer;
        let (sdp, alt, latched, gate) = match component {
            Component::Rtp => (peer.sdp_rtp, None, &mut peer.latched_rtp, &mut self.gates[0]),
            // RTCP may also come from the RTP address the SDP announced (rtcp-mux, or peers
            // that send both from one socket).
            Component::Rtcp => {
                (peer.sdp_rtcp, peer.sdp_rtp, &mut peer.latched_rtcp, &mut self.gates[1])
            }
        };
        let announced = Some(from) == sdp || Some(from) == alt;
        let accepted = if *latched == Some(from) {
            true
        } else if announced {
            *latched = Some(from);
            true
        } else if self.latching == Latching::Learn {
            let n = match gate.candidate {
                Some((a, n)) if a == from => n + 1,
                _ => 1,
            };
            gate.candidate = Some((from, n));
            let silent = gate.last_accepted_ms.is_none_or(|t| now_ms - t >= HANDOVER_SILENCE_MS);
            if n >= LEARN_PACKETS && silent {
                *latched = Some(from);
                true
            } else {
                false
            }
        } else {
            false
        };
        if accepted {
            gate.candidate = None;
            gate.last_accepted_ms = Some(now_ms);
        }
        accepted
    }

    /// The stream received from this side, for an SR on its behalf: (SSRC, latest RTP
    /// timestamp and arrival, clock rate).
    fn clone_for_sr(&self) -> Option<(u32, (u32, f64), u32)> {
        Some((self.ssrc?, self.last_rtp?, self.stats.clock_rate().unwrap_or(8000)))
    }
}

/// A consumer of the RTP a session accepts (see [`Session::on_packet_tapped`]).
pub trait Tap {
    /// One accepted RTP packet from `side`: its parsed header and the whole packet.
    fn rtp(&mut self, side: Side, header: &RtpHeader, packet: &[u8], now: Instant);
}

/// No tap.
impl Tap for () {
    #[inline]
    fn rtp(&mut self, _: Side, _: &RtpHeader, _: &[u8], _: Instant) {}
}

/// One call's media relay.
#[derive(Debug, Clone, Default)]
pub struct Session {
    sides: [SideState; 2],
    /// Record periods, silence and own SRs, once started ([`Session::start`]).
    timers: Option<timers::Timers>,
    events: std::collections::VecDeque<SessionEvent>,
    /// Nothing is forwarded: both sides only send to voicegw (a recording session's two
    /// streams). Packets are still latched, measured and tapped.
    record_only: bool,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    /// A session whose sides accept sources per `latching` (`[A, B]`).
    pub fn with_latching(latching: [Latching; 2]) -> Session {
        let mut s = Session::default();
        s.sides[0].latching = latching[0];
        s.sides[1].latching = latching[1];
        s
    }

    /// Makes the session receive only ([`Session::is_record_only`]): what each side sends is
    /// latched, measured and shown to the tap, and forwarded nowhere.
    pub fn set_record_only(&mut self, on: bool) {
        self.record_only = on;
    }

    pub fn is_record_only(&self) -> bool {
        self.record_only
    }

    /// When either side last sent a packet from a source it is accepted from (ms, the clock of
    /// `on_packet`): what media inactivity is measured against. Packets from strangers do not
    /// keep a dead call up.
    pub fn last_activity_ms(&self) -> Option<f64> {
        self.sides
            .iter()
            .flat_map(|s| s.gates.iter().filter_map(|g| g.last_accepted_ms))
            .reduce(f64::max)
    }

    /// SRs voicegw sends itself, so every leg's RTT is known even when the endpoints send no
    /// SRs of their own: on each leg, for the stream it forwards there, an SR with that stream's
    /// SSRC (the peer's receiver reports then echo it in LSR), unless the stream's sender sent
    /// one within the interval. `ntp` is the wallclock in NTP format. Returns (side, component,
    /// destination, packet) to send; call about once a second.
    pub fn poll_rtcp(
        &mut self,
        now: Instant,
        ntp: u64,
    ) -> Vec<(Side, Component, SocketAddr, Vec<u8>)> {
        let now_ms = ms_of(now);
        let mut out = Vec::new();
        if self.record_only {
            // voicegw sends no stream to either side: it has nothing to report as a sender.
            return out;
        }
        for side in [Side::A, Side::B] {
            let from = self.sides[side.other().index()].clone_for_sr();
            let st = &mut self.sides[side.index()];
            let Some((ssrc, (ts, at), rate)) = from else { continue };
            let Some(dest) = st.peer.dest(Component::Rtcp) else { continue };
            let recent_theirs =
                st.sr_sent.iter().rev().find(|(s, _, _)| *s == ssrc).map(|(_, _, t)| *t);
            let recent =
                recent_theirs.into_iter().chain(st.last_own_sr_ms).fold(f64::MIN, f64::max);
            if now_ms - recent < OWN_SR_INTERVAL_MS {
                continue;
            }
            let rtp_ts =
                ts.wrapping_add(((now_ms - at).max(0.0) * f64::from(rate) / 1000.0) as u32);
            let mut p = Vec::with_capacity(28 + 20);
            p.extend_from_slice(&[0x80, 200, 0, 6]);
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(&ntp.to_be_bytes());
            p.extend_from_slice(&rtp_ts.to_be_bytes());
            p.extend_from_slice(&(st.sent.rtp_packets as u32).to_be_bytes());
            p.extend_from_slice(
                &((st.sent.rtp_bytes.saturating_sub(12 * st.sent.rtp_packets)) as u32)
                    .to_be_bytes(),
            );
            // SDES with the CNAME (RFC 3550 §6.1: every compound packet carries one).
            let sdes_len_words = (4 + 2 + CNAME.len() + 1).div_ceil(4);
            p.extend_from_slice(&[0x81, 202, 0, sdes_len_words as u8]);
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(&[1, CNAME.len() as u8]);
            p.extend_from_slice(CNAME);
            while (p.len() - 28) % 4 != 0 || p.len() - 28 < 4 + 4 * sdes_len_words {
                p.push(0);
            }
            let middle = ((ntp >> 16) & 0xffff_ffff) as u32;
            if st.sr_sent.len() == SR_MEMORY {
                st.sr_sent.remove(0);
            }
            st.sr_sent.push((ssrc, middle, now_ms));
            st.last_own_sr_ms = Some(now_ms);
            st.sent.rtcp_packets += 1;
            st.sent.rtcp_bytes += p.len() as u64;
            let component = if st.peer.rtcp_mux { Component::Rtp } else { Component::Rtcp };
            if let Some(ctx) = st.srtp_out.as_mut() {
                let len = p.len();
                p.resize(len + 14, 0);
                match ctx.protect_rtcp(&mut p, len) {
                    Ok(n) => p.truncate(n),
                    Err(_) => continue,
                }
            }
            out.push((side, component, dest, p));
        }
        out
    }

    /// Reads the reports of an RTCP packet from `side`'s peer (about to be forwarded to the
    /// other side): its reports on SRs we forwarded to it give the RTT of this side's leg and
    /// its view of the stream we send it; its own SRs are remembered on the other side.
    fn observe_rtcp(&mut self, side: Side, data: &[u8], now_ms: f64) {
        let other_ssrc = self.sides[side.other().index()].ssrc;
        for r in crate::rtcp::reports(data) {
            let st = &mut self.sides[side.index()];
            for b in &r.blocks {
                if let Some(&(_, _, at)) =
                    st.sr_sent.iter().rev().find(|(ssrc, ntp, _)| *ssrc == b.ssrc && *ntp == b.lsr)
                {
                    if let Some(rtt) = crate::rtcp::rtt_ms(b, at, now_ms) {
                        st.rtt_ms = Some(rtt);
                    }
                }
                if Some(b.ssrc) == other_ssrc {
                    st.far_end_report = Some((b.cumulative_lost, b.jitter));
                }
            }
            if let Some(ntp) = r.ntp_middle {
                let out = &mut self.sides[side.other().index()];
                if out.sr_sent.len() == SR_MEMORY {
                    out.sr_sent.remove(0);
                }
                out.sr_sent.push((r.sender_ssrc, ntp, now_ms));
            }
        }
    }

    pub fn side(&self, s: Side) -> &SideState {
        &self.sides[s.index()]
    }

    pub fn side_mut(&mut self, s: Side) -> &mut SideState {
        &mut self.sides[s.index()]
    }

    /// New SDP from the peer of `side` (offer or answer): its addresses, and the latch is reset
    /// so the peer may move (re-INVITE).
    pub fn set_peer(
        &mut self,
        side: Side,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
        rtcp_mux: bool,
        clock_rates: Vec<(u8, u32)>,
    ) {
        let st = self.side_mut(side);
        st.peer = Peer {
            sdp_rtp: Some(rtp),
            sdp_rtcp: Some(
                rtcp.unwrap_or_else(|| SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1))),
            ),
            latched_rtp: None,
            latched_rtcp: None,
            rtcp_mux,
        };
        st.clock_rates = clock_rates;
        st.gates = Default::default();
    }

    /// SRTP on `side`'s leg: the peer's key (what it sends with) and voicegw's key (what it
    /// sends to the peer with); `None` for plain RTP. Keeps the contexts across re-INVITEs
    /// that repeat the same keys.
    pub fn set_srtp(
        &mut self,
        side: Side,
        inbound: Option<crate::srtp::Context>,
        outbound: Option<crate::srtp::Context>,
    ) {
        let st = self.side_mut(side);
        st.srtp_in = inbound;
        st.srtp_out = outbound;
    }

    /// Like [`Session::on_packet`], for legs that may use SRTP: the packet in `buf[..len]` is
    /// decrypted in place when it came over SRTP, and encrypted in place (tag appended; `buf`
    /// needs 14 spare bytes) when it leaves over SRTP. Returns where it goes and its new length.
    pub fn on_packet_mut(
        &mut self,
        side: Side,
        component: Component,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now: Instant,
    ) -> Option<(Forward, usize)> {
        self.on_packet_tapped(side, component, from, buf, len, now, &mut ())
    }

    /// [`Session::on_packet_mut`], showing `tap` every RTP packet the leg's latching accepted,
    /// in plain text (after SRTP), whether or not it is forwarded: the second media consumer
    /// (call audio streaming) sees exactly what the relay took from that leg.
    #[allow(clippy::too_many_arguments)]
    pub fn on_packet_tapped(
        &mut self,
        side: Side,
        component: Component,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now: Instant,
        tap: &mut impl Tap,
    ) -> Option<(Forward, usize)> {
        let is_rtcp = component == Component::Rtcp || crate::rtp::is_rtcp(&buf[..len]);
        let len = match self.sides[side.index()].srtp_in.as_mut() {
            None => len,
            Some(ctx) => {
                let r = if is_rtcp {
                    ctx.unprotect_rtcp(&mut buf[..len])
                } else {
                    ctx.unprotect_rtp(&mut buf[..len])
                };
                match r {
                    Ok(n) => n,
                    Err(_) => {
                        self.sides[side.index()].srtp_failures += 1;
                        return None;
                    }
                }
            }
        };
        let f = self.receive(side, component, from, &buf[..len], now, tap)?;
        let len = match self.sides[f.side.index()].srtp_out.as_mut() {
            None => len,
            Some(ctx) => {
                let r =
                    if is_rtcp { ctx.protect_rtcp(buf, len) } else { ctx.protect_rtp(buf, len) };
                r.ok()?
            }
        };
        Some((f, len))
    }

    /// A packet arrived on `side`'s `component` socket from `from` at `now_ms`.
    pub fn on_packet(
        &mut self,
        side: Side,
        component: Component,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Option<Forward> {
        self.receive(side, component, from, data, now, &mut ())
    }

    fn receive(
        &mut self,
        side: Side,
        component: Component,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
        tap: &mut impl Tap,
    ) -> Option<Forward> {
        let now_ms = ms_of(now);
        let st = &mut self.sides[side.index()];
        // rtcp-mux: RTCP on the RTP socket is recognised by its packet type (RFC 5761 §4).
        let component =
            if component == Component::Rtp && is_rtcp(data) { Component::Rtcp } else { component };
        if !st.accept_source(component, from, now_ms) {
            st.dropped_wrong_source += 1;
            st.last_rejected_source = Some(from);
            return None;
        }
        match component {
            Component::Rtp => {
                let Ok(h) = RtpHeader::parse(data) else {
                    st.malformed += 1;
                    return None;
                };
                st.received.rtp_packets += 1;
                st.received.rtp_bytes += data.len() as u64;
                if st.ssrc != Some(h.ssrc) {
                    if st.ssrc.is_some() {
                        st.ssrc_changes += 1;
                        st.stats = ReceiveStats::new();
                    }
                    st.ssrc = Some(h.ssrc);
                }
                st.last_rtp = Some((h.timestamp, now_ms));
                let clock_rate = st
                    .clock_rates
                    .iter()
                    .find(|(pt, _)| *pt == h.payload_type)
                    .map(|(_, r)| *r)
                    .or_else(|| crate::rtp::static_clock_rate(h.payload_type));
                st.stats.on_packet(&Arrival {
                    sequence: h.sequence,
                    timestamp: h.timestamp,
                    payload_type: h.payload_type,
                    marker: h.marker,
                    payload_len: h.payload_len,
                    at_ms: now_ms,
                    clock_rate,
                    comfort_noise: is_comfort_noise(h.payload_type),
                });
                tap.rtp(side, &h, data, now);
            }
            Component::Rtcp => {
                st.received.rtcp_packets += 1;
                st.received.rtcp_bytes += data.len() as u64;
            }
        }
        let out = side.other();
        if component == Component::Rtcp {
            self.observe_rtcp(side, data, now_ms);
        }
        if self.record_only {
            return None;
        }
        let ost = &mut self.sides[out.index()];
        let Some(to) = ost.peer.dest(component) else {
            ost.dropped_no_destination += 1;
            return None;
        };
        let out_component = if ost.peer.rtcp_mux { Component::Rtp } else { component };
        match component {
            Component::Rtp => {
                ost.sent.rtp_packets += 1;
                ost.sent.rtp_bytes += data.len() as u64;
            }
            Component::Rtcp => {
                ost.sent.rtcp_packets += 1;
                ost.sent.rtcp_bytes += data.len() as u64;
            }
        }
        Some(Forward { side: out, component: out_component, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instant `t` ms after the origin.
    pub(super) fn ms(t: f64) -> Instant {
        Instant::from_origin(std::time::Duration::from_secs_f64(t / 1000.0))
    }

    pub(super) fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut p = vec![
            0x80,
            0,
            (seq >> 8) as u8,
            seq as u8,
            0,
            0,
            ((u32::from(seq) * 160) >> 8) as u8,
            (u32::from(seq) * 160) as u8,
        ];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xff; 160]);
        p
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwards_both_ways_and_latches() {
        let mut s = Session::with_latching([Latching::Strict, Latching::Learn]);
        s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![]);
        s.set_peer(Side::B, addr("10.0.0.2:6000"), None, false, vec![]);
        let f = s
            .on_packet(Side::A, Component::Rtp, addr("10.0.0.1:4000"), &rtp(1, 7), ms(0.0))
            .unwrap();
        assert_eq!(
            f,
            Forward { side: Side::B, component: Component::Rtp, to: addr("10.0.0.2:6000") }
        );
        // B (allowed to learn) answers from another port than its SDP said (NAT): learnt after
        // LEARN_PACKETS consecutive packets, and A's packets follow it there.
        for seq in 1..LEARN_PACKETS as u16 {
            assert!(s
                .on_packet(Side::B, Component::Rtp, addr("10.0.0.2:6010"), &rtp(seq, 9), ms(0.0))
                .is_none());
        }
        let f = s
            .on_packet(Side::B, Component::Rtp, addr("10.0.0.2:6010"), &rtp(5, 9), ms(0.0))
            .unwrap();
        assert_eq!(f.to, addr("10.0.0.1:4000"));
        let f = s
            .on_packet(Side::A, Component::Rtp, addr("10.0.0.1:4000"), &rtp(2, 7), ms(20.0))
            .unwrap();
        assert_eq!(f.to, addr("10.0.0.2:6010"), "once B's source is learnt, B is sent to there");
        // A stranger on A's port (strict) is dropped, counted and remembered.
        assert!(s
            .on_packet(Side::A, Component::Rtp, addr("192.0.2.9:1"), &rtp(3, 7), ms(40.0))
            .is_none());
        assert_eq!(s.side(Side::A).dropped_wrong_source, 1);
        assert_eq!(s.side(Side::A).last_rejected_source, Some(addr("192.0.2.9:1")));
        assert_eq!(s.side(Side::A).received.rtp_packets, 2);
        assert_eq!(s.side(Side::B).sent.rtp_packets, 2);
        assert_eq!(s.side(Side::A).stats.packets, 2);
    }

    /// A recording session's two streams (record only): both are latched, measured and tapped,
    /// neither is forwarded (the other side's address is the recording client's other stream).
    #[test]
    fn a_record_only_session_forwards_nothing_and_still_measures_and_taps() {
        #[derive(Default)]
        struct Count(u32);
        impl Tap for Count {
            fn rtp(&mut self, _: Side, _: &RtpHeader, _: &[u8], _: Instant) {
                self.0 += 1;
            }
        }
        let mut s = Session::new();
        s.set_record_only(true);
        assert!(s.is_record_only());
        s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![]);
        s.set_peer(Side::B, addr("10.0.0.1:4002"), None, false, vec![]);
        let mut tap = Count::default();
        let mut buf = [0u8; 2048];
        for (side, from) in [(Side::A, "10.0.0.1:4000"), (Side::B, "10.0.0.1:4002")] {
            let p = rtp(1, 7);
            buf[..p.len()].copy_from_slice(&p);
            let f = s.on_packet_tapped(
                side,
                Component::Rtp,
                addr(from),
                &mut buf,
                p.len(),
                ms(0.0),
                &mut tap,
            );
            assert_eq!(f, None, "nothing forwarded");
        }
        let p = rtp(2, 7);
        buf[..p.len()].copy_from_slice(&p);
        assert_eq!(
            s.on_packet_tapped(
                Side::A,
                Component::Rtp,
                addr("192.0.2.9:1"),
                &mut buf,
                p.len(),
                ms(20.0),
                &mut tap
            ),
            None
        );
        assert_eq!(tap.0, 2, "both streams tapped, the stranger not");
        assert_eq!(
            (s.side(Side::A).received.rtp_packets, s.side(Side::B).sent.rtp_packets),
            (1, 0)
        );
        assert_eq!(s.side(Side::A).dropped_wrong_source, 1);
    }

    /// The tap sees what the leg's latching accepted (plain RTP, forwarded or not) and nothing
    /// else: not strangers, not RTCP.
    #[test]
    fn the_tap_sees_only_accepted_rtp() {
        #[derive(Default)]
        struct Seen(Vec<(Side, u16, usize)>);
        impl Tap for Seen {
            fn rtp(&mut self, side: Side, h: &RtpHeader, packet: &[u8], _: Instant) {
                self.0.push((side, h.sequence, packet.len()));
            }
        }
        let mut s = Session::new();
        s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![]);
        let mut seen = Seen::default();
        let mut buf = [0u8; 2048];
        let mut feed = |s: &mut Session, seen: &mut Seen, side, from, p: &[u8]| {
            buf[..p.len()].copy_from_slice(p);
            s.on_packet_tapped(side, Component::Rtp, addr(from), &mut buf, p.len(), ms(0.0), seen)
        };
        // B has no address yet: A's packet is not forwarded, but the tap still sees it.
        assert!(feed(&mut s, &mut seen, Side::A, "10.0.0.1:4000", &rtp(1, 7)).is_none());
        feed(&mut s, &mut seen, Side::A, "10.0.0.66:4000", &rtp(2, 7)); // a stranger
        let rtcp = [
            0x80, 200, 0, 6, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        feed(&mut s, &mut seen, Side::A, "10.0.0.1:4000", &rtcp);
        assert_eq!(seen.0, [(Side::A, 1, 172)]);
    }

    /// A third party that sends to a fresh port before the real peer neither gets the call's
    /// audio nor displaces the peer, on RTP or RTCP, and does not count as media activity.
    #[test]
    fn strict_sides_accept_only_the_sdp_address() {
        let mut s = Session::new();
        s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![]);
        s.set_peer(Side::B, addr("10.0.0.2:6000"), None, false, vec![]);
        let attacker = addr("10.0.0.66:4000");
        for seq in 0..50 {
            assert!(s
                .on_packet(Side::A, Component::Rtp, attacker, &rtp(seq, 1), ms(0.0))
                .is_none());
            assert!(s
                .on_packet(Side::A, Component::Rtcp, attacker, &rtp(seq, 1), ms(0.0))
                .is_none());
        }
        assert_eq!(s.last_activity_ms(), None, "strangers' packets are not activity");
        // B's media goes to A's SDP address, not to the attacker.
        let f = s
            .on_packet(Side::B, Component::Rtp, addr("10.0.0.2:6000"), &rtp(1, 9), ms(10.0))
            .unwrap();
        assert_eq!(f.to, addr("10.0.0.1:4000"));
        // The real peer is accepted.
        assert!(s
            .on_packet(Side::A, Component::Rtp, addr("10.0.0.1:4000"), &rtp(1, 7), ms(20.0))
            .is_some());
        assert_eq!(s.side(Side::A).dropped_wrong_source, 100);
        assert_eq!(s.last_activity_ms(), Some(20.0));
        // A NAT'd source on a strict side is never learnt.
        for seq in 0..20 {
            assert!(s
                .on_packet(Side::B, Component::Rtp, addr("10.0.0.2:6010"), &rtp(seq, 9), ms(5000.0))
                .is_none());
        }
    }

    #[test]
    fn learning_needs_consistent_packets_and_a_silent_source() {
        let mut s = Session::with_latching([Latching::Learn, Latching::Learn]);
        s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![]);
        s.set_peer(Side::B, addr("10.0.0.2:6000"), None, false, vec![]);
        // Alternating strangers never reach LEARN_PACKETS consecutive packets.
        for seq in 0..40u16 {
            let from = if seq % 2 == 0 { addr("10.0.0.66:1") } else { addr("10.0.0.67:1") };
            assert!(s.on_packet(Side::A, Component::Rtp, from, &rtp(seq, 1), ms(0.0)).is_none());
        }
        // The peer sends from its NAT address: learnt.
        let nat = addr("198.51.100.1:30000");
        let mut t = 0.0;
        for seq in 0..LEARN_PACKETS as u16 {
            s.on_packet(Side::A, Component::Rtp, nat, &rtp(seq, 7), ms(t));
            t += 20.0;
        }
        assert_eq!(s.side(Side::A).peer.latched_rtp, Some(nat));
        // While the peer keeps sending, a stranger's burst is refused however long it is.
        for seq in 0..100u16 {
            assert!(s
                .on_packet(Side::A, Component::Rtp, addr("10.0.0.66:1"), &rtp(seq, 1), ms(t))
                .is_none());
            if seq % 10 == 0 {
                s.on_packet(Side::A, Component::Rtp, nat, &rtp(100 + seq, 7), ms(t));
                t += 20.0;
            }
        }
        assert_eq!(s.side(Side::A).peer.latched_rtp, Some(nat));
        // After the peer fell silent for HANDOVER_SILENCE_MS, a new address (it moved) is learnt.
        t += HANDOVER_SILENCE_MS;
        let moved = addr("198.51.100.1:30002");
        for seq in 0..LEARN_PACKETS as u16 {
            s.on_packet(Side::A, Component::Rtp, moved, &rtp(300 + seq, 7), ms(t));
        }
        assert_eq!(s.side(Side::A).peer.latched_rtp, Some(moved));
    }

    #[test]
    fn rtcp_and_rtcp_mux() {
        let mut s = Session::new();
        s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![]);
        s.set_peer(Side::B, addr("10.0.0.2:6000"), None, true, vec![]);
        let rr = [
            0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0,
        ];
        let f = s.on_packet(Side::A, Component::Rtcp, addr("10.0.0.1:4001"), &rr, ms(0.0)).unwrap();
        assert_eq!(
            f,
            Forward { side: Side::B, component: Component::Rtp, to: addr("10.0.0.2:6000") }
        );
        // RTCP muxed on B's RTP port goes to A's RTCP port (SDP RTP port + 1).
        let f = s.on_packet(Side::B, Component::Rtp, addr("10.0.0.2:6000"), &rr, ms(0.0)).unwrap();
        assert_eq!(
            f,
            Forward { side: Side::A, component: Component::Rtcp, to: addr("10.0.0.1:4001") }
        );
        assert_eq!(s.side(Side::B).received.rtcp_packets, 1);
        assert_eq!(s.side(Side::A).received.rtp_packets, 0);
    }

    #[test]
    fn rtt_per_leg_from_reports_on_forwarded_srs() {
        let mut s = Session::new();
        s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![]);
        s.set_peer(Side::B, addr("10.0.0.2:6000"), None, false, vec![]);
        // A sends RTP (SSRC 7) and an SR; voicegw forwards both to B at t = 1000 ms.
        s.on_packet(Side::A, Component::Rtp, addr("10.0.0.1:4000"), &rtp(1, 7), ms(990.0));
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&7u32.to_be_bytes());
        sr.extend_from_slice(&0x0001_1234u32.to_be_bytes());
        sr.extend_from_slice(&0x5678_0000u32.to_be_bytes());
        sr.extend_from_slice(&[0; 12]);
        assert!(s
            .on_packet(Side::A, Component::Rtcp, addr("10.0.0.1:4001"), &sr, ms(1000.0))
            .is_some());
        // B reports on SSRC 7 with LSR = 0x1234_5678 and DLSR 0.5 s, arriving at t = 1540 ms:
        // RTT between voicegw and B = 1540 − 1000 − 500 = 40 ms.
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&9u32.to_be_bytes());
        rr.extend_from_slice(&7u32.to_be_bytes());
        rr.extend_from_slice(&[0, 0, 0, 3]);
        rr.extend_from_slice(&1u32.to_be_bytes());
        rr.extend_from_slice(&80u32.to_be_bytes());
        rr.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        rr.extend_from_slice(&0x0000_8000u32.to_be_bytes());
        s.on_packet(Side::B, Component::Rtcp, addr("10.0.0.2:6001"), &rr, ms(1540.0));
        assert_eq!(s.side(Side::B).rtt_ms, Some(40.0));
        assert_eq!(s.side(Side::B).far_end_report, Some((3, 80)));
        assert_eq!(s.side(Side::A).rtt_ms, None);
    }

    #[test]
    fn own_srs_give_rtt_when_endpoints_send_none() {
        let mut s = Session::new();
        s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![]);
        s.set_peer(Side::B, addr("10.0.0.2:6000"), None, false, vec![]);
        for i in 0..10u16 {
            s.on_packet(
                Side::A,
                Component::Rtp,
                addr("10.0.0.1:4000"),
                &rtp(i, 7),
                ms(f64::from(i) * 20.0),
            );
        }
        // Nothing from B yet: an SR only towards B, on behalf of SSRC 7.
        let ntp = (0x0000_1234u64 << 32) | 0x5678_0000;
        let out = s.poll_rtcp(ms(10_000.0), ntp);
        assert_eq!(out.len(), 1);
        let (side, comp, to, pkt) = &out[0];
        assert_eq!((*side, *comp, *to), (Side::B, Component::Rtcp, addr("10.0.0.2:6001")));
        let r = crate::rtcp::reports(pkt);
        assert_eq!((r[0].sender_ssrc, r[0].ntp_middle), (7, Some(0x1234_5678)));
        assert_eq!(pkt.len() % 4, 0);
        assert!(s.poll_rtcp(ms(12_000.0), ntp).is_empty(), "not again within the interval");
        // B's RR on SSRC 7 echoing our SR: the B leg's RTT.
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&9u32.to_be_bytes());
        rr.extend_from_slice(&7u32.to_be_bytes());
        rr.extend_from_slice(&[0; 12]);
        rr.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        rr.extend_from_slice(&0x0000_0000u32.to_be_bytes());
        s.on_packet(Side::B, Component::Rtcp, addr("10.0.0.2:6001"), &rr, ms(10_030.0));
        assert_eq!(s.side(Side::B).rtt_ms, Some(30.0));
    }

    #[test]
    fn srtp_on_one_leg_plain_rtp_on_the_other() {
        use crate::srtp::{Context, MasterKey, Suite};
        let peer_key =
            MasterKey::from_inline("inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS").unwrap();
        let our_key =
            MasterKey::from_inline("inline:NhqBK/JjtVJgmOgPyDKpvMTEjvFCQ4eiyVQelF6x").unwrap();
        let suite = Suite::AesCm128HmacSha1_80;
        let mut s = Session::new();
        s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![]);
        s.set_peer(Side::B, addr("10.0.0.2:6000"), None, false, vec![]);
        s.set_srtp(
            Side::A,
            Some(Context::new(suite, &peer_key)),
            Some(Context::new(suite, &our_key)),
        );
        // The customer (A) sends SRTP with its key; the carrier (B) gets plain RTP.
        let mut customer = Context::new(suite, &peer_key);
        let plain = rtp(1, 7);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 24, 0);
        let n = customer.protect_rtp(&mut buf, plain.len()).unwrap();
        let (f, m) = s
            .on_packet_mut(Side::A, Component::Rtp, addr("10.0.0.1:4000"), &mut buf, n, ms(0.0))
            .unwrap();
        assert_eq!((f.side, &buf[..m]), (Side::B, &plain[..]));
        // The carrier's plain RTP reaches the customer encrypted with voicegw's key.
        let back = rtp(1, 9);
        let mut buf = back.clone();
        buf.resize(back.len() + 24, 0);
        let (f, m) = s
            .on_packet_mut(
                Side::B,
                Component::Rtp,
                addr("10.0.0.2:6000"),
                &mut buf,
                back.len(),
                ms(0.0),
            )
            .unwrap();
        assert_eq!(f.side, Side::A);
        let mut customer_rx = Context::new(suite, &our_key);
        let mut wire = buf[..m].to_vec();
        let k = customer_rx.unprotect_rtp(&mut wire).unwrap();
        assert_eq!(&wire[..k], &back[..]);
        // A forged packet on the SRTP leg is dropped and counted.
        let mut forged = rtp(2, 7);
        forged.extend_from_slice(&[0; 10]);
        let len = forged.len();
        assert!(s
            .on_packet_mut(
                Side::A,
                Component::Rtp,
                addr("10.0.0.1:4000"),
                &mut forged,
                len,
                ms(20.0)
            )
            .is_none());
        assert_eq!(s.side(Side::A).srtp_failures, 1);
    }

    #[test]
    fn no_destination_and_malformed_are_counted() {
        let mut s = Session::new();
        s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![]);
        assert!(s
            .on_packet(Side::A, Component::Rtp, addr("10.0.0.1:4000"), &rtp(1, 7), ms(0.0))
            .is_none());
        assert_eq!(s.side(Side::B).dropped_no_destination, 1);
        assert!(s
            .on_packet(Side::A, Component::Rtp, addr("10.0.0.1:4000"), &[0x80, 1, 2], ms(0.0))
            .is_none());
        assert_eq!(s.side(Side::A).malformed, 1);
    }
}
