//! RTP and RTCP through one call's relay session: the input is a sequence of packets (a length
//! byte, a side/component/source byte, then the packet), fed at increasing times. Nothing may
//! panic, and the session's own RTCP stays well formed.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use media::relay::{Component, Latching, Session, Side};

fuzz_target!(|data: &[u8]| {
    let addr = |s: &str| s.parse::<SocketAddr>().expect("address");
    let mut s = Session::with_latching([Latching::Strict, Latching::Learn]);
    s.set_peer(Side::A, addr("10.0.0.1:4000"), None, false, vec![(8, 8000), (101, 8000)]);
    s.set_peer(Side::B, addr("10.0.0.2:6000"), Some(addr("10.0.0.2:6001")), true, vec![]);
    let sources = ["10.0.0.1:4000", "10.0.0.1:4001", "10.0.0.2:6000", "10.0.0.9:1"];
    let mut rest = data;
    let mut now = 0.0;
    let mut buf = [0u8; 1600];
    while rest.len() >= 2 {
        let len = usize::from(rest[0]).min(rest.len() - 2);
        let how = rest[1];
        let pkt = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let side = if how & 1 == 0 { Side::A } else { Side::B };
        let component = if how & 2 == 0 { Component::Rtp } else { Component::Rtcp };
        let from = addr(sources[usize::from(how >> 2) % sources.len()]);
        now += f64::from(how >> 4) * 7.0;
        let _ = media::rtp::RtpHeader::parse(pkt);
        let _ = media::rtcp::reports(pkt);
        buf[..pkt.len()].copy_from_slice(pkt);
        let at =
            media::relay::Instant::from_origin(std::time::Duration::from_secs_f64(now / 1000.0));
        let _ = s.on_packet_mut(side, component, from, &mut buf, pkt.len(), at);
        for (_, _, _, p) in s.poll_rtcp(at, (now as u64) << 32) {
            assert!(!media::rtcp::reports(&p).is_empty(), "own RTCP parses");
        }
    }
    let _ = s.last_activity_ms();
    let _ = s.side(Side::A).stats.mean_jitter_ms();
});
