//! SIP parse and print throughput (messages per second per core).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sip::Message;
use voicegw_benches::{INVITE, OK};

fn parse_print(c: &mut Criterion) {
    let mut g = c.benchmark_group("sip");
    for (name, msg) in [("invite", INVITE), ("200_ok", OK)] {
        let bytes = msg.as_bytes();
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| Message::parse(black_box(bytes)).ok())
        });
        let parsed = Message::parse(bytes).expect("sample parses");
        g.bench_function(format!("print/{name}"), |b| b.iter(|| black_box(&parsed).to_bytes()));
        g.bench_function(format!("parse+typed+print/{name}"), |b| {
            b.iter(|| {
                let m = Message::parse(black_box(bytes)).expect("parses");
                if let Message::Request(r) = &m {
                    let _ = (r.top_via(), r.from(), r.to(), r.cseq(), r.call_id());
                }
                m.to_bytes()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse_print);
criterion_main!(benches);
