//! Call-audio streaming's per-packet work on a relay thread: G.711 RTP through a leg's jitter
//! buffer into its Matroska muxer, drained about once a second as the relay drains it. Many
//! legs are fed in turn (as a relay thread serves its calls), so their buffers compete for the
//! cache as they do under load. Prints the time per packet; compare with `relay` (the
//! forwarding decision alone) in one run.

use std::time::Duration;

use common::Instant;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use streaming::g711::Law;
use streaming::jitter::JitterBuffer;
use streaming::muxer::{Muxer, StreamInfo};

const LEGS: usize = 200;
const PACKETS: u32 = 100;

fn info() -> StreamInfo {
    StreamInfo {
        tags: vec![
            ("TransactionId".into(), "5e8c3c2e-8d5f-4a4e-9a0e-0c1d2e3f4a5b".into()),
            ("VoiceConnectorId".into(), "abcdef1ghij2klmno3pqr4".into()),
            ("CallId".into(), "1-1234@127.0.0.1".into()),
        ],
        track_name: Some("AUDIO_FROM_CALLER".into()),
        segment_uid: [7; 16],
        blocks_per_fragment: 100,
        app: "bench".into(),
    }
}

fn stream_leg(c: &mut Criterion) {
    let payloads: Vec<Vec<u8>> =
        (0..PACKETS).map(|i| (0..160u32).map(|k| ((i * 7 + k) % 256) as u8).collect()).collect();
    let mut g = c.benchmark_group("stream_leg");
    g.throughput(Throughput::Elements(u64::from(PACKETS) * LEGS as u64));
    g.bench_function("g711_20ms/200_legs", |bench| {
        bench.iter_batched(
            || {
                (0..LEGS)
                    .map(|_| {
                        let jitter = JitterBuffer::new(Law::ALaw, Duration::from_millis(60));
                        let mux = Muxer::new(info(), 1_700_000_000_000).expect("muxer");
                        (jitter, mux, Vec::<u8>::with_capacity(1 << 15))
                    })
                    .collect::<Vec<_>>()
            },
            |mut legs| {
                for i in 0..PACKETS {
                    let now = Instant::from_origin(Duration::from_millis(u64::from(i) * 20));
                    for (jitter, mux, drained) in &mut legs {
                        jitter.push(now, 7, i * 160, &payloads[i as usize], &mut |s| mux.pcm(s));
                        if mux.pending() >= 16 * 1024 {
                            drained.clear();
                            mux.take_output(drained);
                        }
                    }
                }
                black_box(legs)
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, stream_leg);
criterion_main!(benches);
