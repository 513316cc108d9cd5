//! Media hot path: RTP packets per second through header parsing, statistics and the forwarding
//! decision of one call (`media::relay::Session::on_packet`), per core.

use std::net::SocketAddr;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use media::relay::{Component, Instant, Session, Side};

fn packets(n: u16) -> Vec<Vec<u8>> {
    (0..n)
        .map(|seq| {
            let ts = u32::from(seq) * 160;
            let mut p = vec![0x80, 8, (seq >> 8) as u8, seq as u8];
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            p.extend_from_slice(&[0xd5; 160]);
            p
        })
        .collect()
}

fn relay(c: &mut Criterion) {
    let a: SocketAddr = "10.0.0.1:4000".parse().expect("addr");
    let b: SocketAddr = "10.0.0.2:6000".parse().expect("addr");
    let pkts = packets(1000);
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(pkts.len() as u64));
    g.bench_function("on_packet/g711_20ms", |bench| {
        bench.iter_batched(
            || {
                let mut s = Session::new();
                s.set_peer(Side::A, a, None, false, vec![]);
                s.set_peer(Side::B, b, None, false, vec![]);
                s
            },
            |mut s| {
                for (i, p) in pkts.iter().enumerate() {
                    black_box(s.on_packet(
                        Side::A,
                        Component::Rtp,
                        a,
                        p,
                        Instant::from_origin(Duration::from_millis(i as u64 * 20)),
                    ));
                }
                s
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
