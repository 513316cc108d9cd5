//! SRTP against real traffic: rtpproxy's SRTP test captures (`../shared/pcaps/rtpproxy-srtp-*`)
//! with the SDES keys its test suite uses (`_refs/rtpproxy/alice_to_bob.args`). Every packet must
//! authenticate and decrypt, and the decrypted streams must match rtpproxy's own analysis.

use harness::shared;
use media::capture::udp_datagrams;
use media::srtp::{Context, MasterKey, Suite};
use media::stats::{Arrival, ReceiveStats};

fn keys() -> Vec<(String, String)> {
    let args = std::fs::read_to_string(shared().join("pcaps/_refs/rtpproxy/alice_to_bob.args"))
        .expect("args");
    // --alice-crypto=SUITE:KEY -A path --bob-crypto=SUITE:KEY -B path
    args.split_whitespace()
        .filter_map(|a| {
            a.strip_prefix("--alice-crypto=")
                .map(|k| ("alice", k))
                .or_else(|| a.strip_prefix("--bob-crypto=").map(|k| ("bob", k)))
        })
        .map(|(who, k)| (who.to_string(), k.to_string()))
        .collect()
}

#[test]
fn rtpproxy_srtp_captures_decrypt_and_authenticate() {
    if harness::shared_corpus().is_none() {
        return;
    }
    let keys = keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    // rtpproxy's expected analysis (alice_to_bob.output): packets and highest/lowest sequence.
    let expected = [("alice", 1556u64, 0x2A1A_D144u32), ("bob", 1564, 0xC2F6_A014)];
    for (who, packets, ssrc) in expected {
        let (_, spec) = keys.iter().find(|(w, _)| w == who).expect("key");
        let (suite, key) = spec.split_once(':').expect("SUITE:KEY");
        let mut ctx = Context::new(
            Suite::parse(suite).expect("suite"),
            &MasterKey::from_inline(key).expect("key"),
        );
        let file = std::fs::read(shared().join(format!("pcaps/rtpproxy-srtp-{who}.pcap")))
            .expect("capture");
        let mut stats = ReceiveStats::new();
        let mut n = 0u64;
        for d in udp_datagrams(&file).expect("pcap") {
            let mut buf = d.payload.to_vec();
            let len =
                ctx.unprotect_rtp(&mut buf).unwrap_or_else(|e| panic!("{who} packet {n}: {e}"));
            let h = media::rtp::RtpHeader::parse(&buf[..len]).expect("RTP after decryption");
            assert_eq!(h.ssrc, ssrc);
            stats.on_packet(&Arrival {
                sequence: h.sequence,
                timestamp: h.timestamp,
                payload_type: h.payload_type,
                marker: h.marker,
                payload_len: h.payload_len,
                at_ms: d.time_ns as f64 / 1e6,
                clock_rate: Some(8000),
                comfort_noise: false,
            });
            n += 1;
        }
        assert_eq!((n, stats.packets, stats.lost()), (packets, packets, 0), "{who}");
    }
}
