//! Meetings' media on the meetings' thread: 20 meetings of 10 participants (200 legs), one
//! 20 ms period per iteration — every leg's RTP packet in (source check, key listener, playout
//! buffer), then every meeting's frame out (the N−1 mixes, encoded, one packet per leg).
//! Throughput is in participant-frames: the time per element × 50 is the CPU a participant
//! costs per second of meeting, and 20 ms over it is the participants one core carries.
//! `3_talking` is a usual meeting (three voices, the rest silence the VAD skips);
//! `all_talking` the worst case; `plain` vs `srtp` the cost of SRTP both ways.

use std::net::SocketAddr;
use std::time::Duration;

use common::Instant;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use media::conference::{Conference, LegSpec};
use media::g711::Law;
use media::srtp::{Context, MasterKey, Suite};

const MEETINGS: u64 = 20;
const SIZE: u64 = 10;
const FRAME: usize = 160;

fn peer(call: u64) -> SocketAddr {
    SocketAddr::from(([127, 0, (call >> 8) as u8, call as u8], 4000))
}

fn key() -> MasterKey {
    MasterKey { key: [3; 16], salt: [4; 14] }
}

/// Packet `n` of participant `call`: a tone when it talks, silence otherwise.
fn packet(call: u64, n: u32, talks: bool) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&(n as u16).to_be_bytes());
    p.extend_from_slice(&(n * FRAME as u32).to_be_bytes());
    p.extend_from_slice(&(call as u32).to_be_bytes());
    let f = 300.0 + 97.0 * (call % 13) as f32;
    for i in 0..FRAME {
        let t = (n as usize * FRAME + i) as f32 / 8000.0;
        let v = if talks { 6000.0 * (2.0 * std::f32::consts::PI * f * t).sin() } else { 0.0 };
        p.push(Law::ALaw.encode(v as i16));
    }
    p
}

fn run(c: &mut Criterion, name: &str, talking: u64, srtp: bool) {
    let mut conf = Conference::new();
    let at = |ms: u64| Instant::from_origin(Duration::from_millis(ms));
    for m in 0..MEETINGS {
        for k in 0..SIZE {
            let call = m * SIZE + k + 1;
            let spec = LegSpec {
                law: Law::ALaw,
                dtmf_pt: Some(101),
                peer: peer(call),
                learn_source: false,
                frames_per_packet: 1,
                srtp: srtp.then(|| (Suite::AesCm128HmacSha1_80, key(), key())),
                ssrc: call as u32,
                seq: 0,
                timestamp: 0,
            };
            conf.open(call, spec, at(0));
            conf.bridge(call, &m.to_string(), at(0));
        }
    }
    // Each period's packets are made (and encrypted, as the devices would) outside the
    // timing: sequence numbers and timestamps go on, so nothing is a replay.
    let mut devices: Vec<Option<Context>> = (0..=MEETINGS * SIZE)
        .map(|_| srtp.then(|| Context::new(Suite::AesCm128HmacSha1_80, &key())))
        .collect();
    let mut packets: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut g = c.benchmark_group("conference");
    g.throughput(Throughput::Elements(MEETINGS * SIZE));
    let mut period = 0u32;
    let mut buf = [0u8; 2048];
    let mut sent = 0u64;
    g.bench_function(format!("{name}/20x10_participants"), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                packets.clear();
                for call in 1..=MEETINGS * SIZE {
                    let mut p = packet(call, period, (call - 1) % SIZE < talking);
                    if let Some(ctx) = devices[call as usize].as_mut() {
                        let len = p.len();
                        p.resize(len + 10, 0);
                        let n = ctx.protect_rtp(&mut p, len).expect("protect");
                        p.truncate(n);
                    }
                    packets.push((call, p));
                }
                let now = at(u64::from(period) * 20);
                let started = std::time::Instant::now();
                for (call, p) in &packets {
                    buf[..p.len()].copy_from_slice(p);
                    conf.rtp(*call, peer(*call), &mut buf, p.len(), now);
                }
                while conf.poll_event().is_some() {}
                period += 1;
                conf.handle_timeout(
                    at(u64::from(period) * 20),
                    &mut |_, to, pkt| {
                        black_box((to, pkt));
                        sent += 1;
                    },
                    &mut |_, _| {},
                );
                spent += started.elapsed();
            }
            spent
        })
    });
    g.finish();
    black_box(sent);
}

fn conference(c: &mut Criterion) {
    run(c, "3_talking/plain", 3, false);
    run(c, "all_talking/plain", SIZE, false);
    run(c, "3_talking/srtp", 3, true);
}

criterion_group!(benches, conference);
criterion_main!(benches);
