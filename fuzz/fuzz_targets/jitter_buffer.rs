//! The jitter buffer under any arrival order, loss, repeats, clock steps and SSRC changes:
//! never a panic, never PCM out of timestamp order (each packet's samples identify it, so
//! every 20 ms the output holds is silence or the packet whose place it is), and never more
//! audio than real time allows.
#![no_main]

use std::time::Duration;

use common::Instant;
use libfuzzer_sys::fuzz_target;
use streaming::g711::Law;
use streaming::jitter::{JitterBuffer, Pushed, EARLY_SLACK, MAX_PACKET, RATE};

fuzz_target!(|data: &[u8]| {
    let mut jb = JitterBuffer::new(Law::MuLaw, Duration::from_millis(60));
    let mut out: Vec<i16> = Vec::new();
    let mut now = Duration::ZERO;
    let mut first = None;
    // Each op: packet index (0..120), time step (ms), and a flag byte.
    for op in data.chunks_exact(3) {
        let (k, step, flags) = (u32::from(op[0] % 120), u64::from(op[1]), op[2]);
        now += Duration::from_millis(step);
        let at = Instant::from_origin(now);
        if flags & 0x80 != 0 {
            jb.poll(at, &mut |s| out.extend_from_slice(s));
            continue;
        }
        // Packet k covers [k*160, k*160+160) and holds code word k (distinct, non-zero).
        let payload = [k as u8; 160];
        let pushed = jb.push(at, 7, 5000 + k * 160, &payload, &mut |s| out.extend_from_slice(s));
        if pushed == Pushed::Accepted {
            first.get_or_insert(k);
        }
    }
    jb.finish(&mut |s| out.extend_from_slice(s));
    let Some(base) = first else {
        assert!(out.is_empty());
        return;
    };
    let limit = (now.as_millis() as u64) * RATE / 1000 + EARLY_SLACK + MAX_PACKET as u64;
    assert!(out.len() as u64 <= limit);
    assert_eq!(jb.stats().samples_out, out.len() as u64);
    // One SSRC, timestamps on a 160 grid: unless a packet ran ahead of real time (a resync,
    // which moves the grid), every sample of chunk j is packet base + j's or silence.
    if jb.stats().resyncs > 0 {
        return;
    }
    assert_eq!(out.len() % 160, 0);
    for (j, chunk) in out.chunks(160).enumerate() {
        let k = base as usize + j;
        let want = if k < 120 { Law::MuLaw.decode(k as u8) } else { 0 };
        // Sample by sample: a packet cut by a forced release is part silence, part itself.
        assert!(chunk.iter().all(|&s| s == 0 || s == want), "chunk {j}");
    }
});
