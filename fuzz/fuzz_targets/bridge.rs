//! The meeting bridge fed by hostile participants: any RTP (any payload type, length, SSRC,
//! sequence and timestamp jumps), joins, leaves and mutes in any order, and time that jumps.
//! Never a panic; every frame sent is one RTP header and one 20 ms G.711 frame; the clock
//! stops once everyone left.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use media::bridge::{Bridge, FRAME};
use media::g711::Law;
use sip::Instant;

fuzz_target!(|data: &[u8]| {
    let mut b = Bridge::new();
    let mut now = Instant::ZERO;
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let id = u64::from(op >> 5);
        match op & 7 {
            0 => {
                let law = if op & 8 != 0 { Law::ALaw } else { Law::MuLaw };
                b.join(id, law, u32::from(op), u16::from(op), u32::from(op) << 8, now);
            }
            1 => b.leave(id),
            2 => b.set_muted(id, op & 8 != 0),
            3 => b.mute_others(id),
            4 => {
                let Some((&ms, tail)) = rest.split_first() else { break };
                rest = tail;
                now = now + Duration::from_millis(u64::from(ms) * 4);
                b.handle_timeout(now, &mut |_, p| assert_eq!(p.len(), 12 + FRAME));
            }
            _ => {
                let Some((&len, tail)) = rest.split_first() else { break };
                let n = (len as usize).min(tail.len());
                let (packet, tail) = tail.split_at(n);
                rest = tail;
                b.rtp(id, packet);
            }
        }
    }
    for id in 0..8 {
        b.leave(id);
    }
    now = now + Duration::from_secs(1);
    b.handle_timeout(now, &mut |_, _| {});
    assert!(b.is_empty() && b.poll_timeout().is_none(), "the clock stops once everyone left");
});
