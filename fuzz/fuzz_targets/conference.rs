//! Meeting legs fed by hostile devices: any datagram from any address on any leg (plain or
//! SRTP), legs opened, bridged into meetings, muted, sent prompts and closed in any order, and
//! time that jumps. Never a panic; every packet sent goes to its leg's SDP address and is one
//! RTP header and one 20 ms frame (plus the SRTP tag); the clocks stop once every leg closed.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use media::bridge::FRAME;
use media::conference::{Conference, LegSpec};
use media::g711::Law;
use media::srtp::{MasterKey, Suite};
use sip::Instant;

fn peer(id: u64) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, id as u8 + 1], 4000))
}

fuzz_target!(|data: &[u8]| {
    let mut c = Conference::new();
    let mut now = Instant::ZERO;
    let mut rest = data;
    let clip: Arc<[i16]> = (0..500).map(|i| (i * 97 % 2000) as i16).collect();
    let mut buf = [0u8; 2048];
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let id = u64::from(op >> 5);
        match op & 7 {
            0 => {
                let srtp = (op & 8 != 0).then(|| {
                    let k = MasterKey { key: [op; 16], salt: [op; 14] };
                    (Suite::AesCm128HmacSha1_80, k.clone(), k)
                });
                let law = if op & 16 != 0 { Law::ALaw } else { Law::MuLaw };
                let spec = LegSpec {
                    law,
                    dtmf_pt: Some(101),
                    peer: peer(id),
                    learn_source: op & 32 != 0,
                    frames_per_packet: 1 + op % 3,
                    srtp,
                    ssrc: u32::from(op),
                    seq: u16::MAX - 2,
                    timestamp: u32::MAX - 200,
                };
                c.open(id, spec, now);
            }
            1 => {
                c.close(id);
            }
            2 if op & 16 != 0 => c.record(if op & 8 != 0 { "a" } else { "b" }, op & 4 != 0, 9),
            2 => c.bridge(id, if op & 8 != 0 { "a" } else { "b" }, now),
            3 => c.set_muted(id, op & 8 != 0),
            4 => {
                if op & 8 != 0 {
                    c.play(id, clip.clone());
                } else {
                    c.stop_prompts(id);
                }
            }
            5 => {
                let Some((&ms, tail)) = rest.split_first() else { break };
                rest = tail;
                now = now + Duration::from_millis(u64::from(ms) * 4);
                c.handle_timeout(now, &mut |call, to, p| {
                    // Its SDP address, or one it learnt (an address the fuzzer sent from).
                    assert!(to == peer(call) || to == peer(call + 1), "{to}");
                    let audio = p.len() - 12 - if p.len() % FRAME == 12 { 0 } else { 10 };
                    assert!(audio % FRAME == 0 && (1..=3).contains(&(audio / FRAME)), "{}", p.len());
                }, &mut |m, p| {
                    assert!(m == "a" || m == "b");
                    assert_eq!(p.len(), 12 + FRAME);
                });
            }
            _ => {
                let Some((&len, tail)) = rest.split_first() else { break };
                let n = (len as usize).min(tail.len());
                let (packet, tail) = tail.split_at(n);
                rest = tail;
                buf[..n].copy_from_slice(packet);
                let from = if op & 8 != 0 { peer(id) } else { peer(id + 1) };
                c.rtp(id, from, &mut buf, n, now);
            }
        }
        while c.poll_event().is_some() {}
    }
    for id in 0..8 {
        c.close(id);
    }
    now = now + Duration::from_secs(1);
    c.handle_timeout(now, &mut |_, _, _| {}, &mut |_, _| {});
    assert!(c.is_empty() && c.poll_timeout().is_none(), "the clocks stop once every leg closed");
});
