//! The streaming core against independent readers: ffmpeg's G.711 decoders for every code
//! word, and `mkvinfo -v` / `ffmpeg` for the Matroska stream a call leg becomes (formats.md
//! §9: "mkvinfo and ffmpeg must read them and ffmpeg must return the decoded audio byte for
//! byte"), with loss, reordering and duplicates on the way in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Instant;
use streaming::g711::Law;
use streaming::jitter::JitterBuffer;
use streaming::muxer::{Muxer, StreamInfo};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("voicegw-mkv-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = harness::run_with_limit(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn le_samples(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

#[test]
fn g711_tables_equal_ffmpegs_decoders_for_every_code_word() {
    if !harness::require("ffmpeg") {
        return;
    }
    let dir = scratch("g711");
    let codes: Vec<u8> = (0..=255u8).collect();
    for (law, format) in [(Law::MuLaw, "mulaw"), (Law::ALaw, "alaw")] {
        let input = dir.join(format!("{format}.raw"));
        let output = dir.join(format!("{format}.s16"));
        std::fs::write(&input, &codes).expect("write");
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", format, "-ar", "8000"])
            .args(["-ac", "1", "-i"])
            .arg(&input)
            .args(["-f", "s16le", "-acodec", "pcm_s16le"])
            .arg(&output));
        let theirs = le_samples(&std::fs::read(&output).expect("read"));
        let ours: Vec<i16> = codes.iter().map(|&c| law.decode(c)).collect();
        assert_eq!(ours, theirs, "{format}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// 6 s of a 20 ms G.711 stream (a sweep of code words, so every packet differs) through the
/// jitter buffer and the muxer, written as the local-mode file would be.
struct Leg {
    mkv: Vec<u8>,
    /// The PCM the stream must hold: each packet's decode at its place, silence for the lost.
    expected: Vec<i16>,
    filled: u64,
}

fn stream_leg(law: Law, lose: &[u32], swap: &[u32], repeat: &[u32]) -> Leg {
    let packets = 300u32;
    let payload = |k: u32| -> Vec<u8> { (0..160u32).map(|i| ((k * 7 + i) % 256) as u8).collect() };
    let mut jb = JitterBuffer::new(law, Duration::from_millis(60));
    let info = StreamInfo {
        tags: vec![
            ("TransactionId".into(), "5d5f8b4e-6f6c-4c61-9a34-0e8d1c7e2a11".into()),
            ("VoiceConnectorId".into(), "abcdef1ghij2klmno3pqr4".into()),
            ("CallId".into(), "call-1@pbx.example".into()),
        ],
        track_name: Some("AUDIO_FROM_CALLER".into()),
        segment_uid: *b"voicegw-test-uid",
        blocks_per_fragment: 100,
        app: "voicegw test".into(),
    };
    let mut mux = Muxer::new(info, 1_764_000_000_000).expect("muxer");
    let mut order: Vec<u32> = (0..packets).collect();
    for &k in swap {
        order.swap(k as usize, k as usize + 1);
    }
    for (i, &k) in order.iter().enumerate() {
        if lose.contains(&k) {
            continue;
        }
        let now = Instant::from_origin(Duration::from_millis(i as u64 * 20));
        let p = payload(k);
        jb.push(now, 0x1234, 9000 + k * 160, &p, &mut |s| mux.pcm(s));
        if repeat.contains(&k) {
            jb.push(now, 0x1234, 9000 + k * 160, &p, &mut |s| mux.pcm(s));
        }
    }
    jb.finish(&mut |s| mux.pcm(s));
    mux.finish();
    let mut mkv = Vec::new();
    mux.write_header(&mut mkv);
    mux.take_output(&mut mkv);
    let expected = (0..packets)
        .flat_map(|k| {
            if lose.contains(&k) {
                vec![0; 160]
            } else {
                payload(k).iter().map(|&c| law.decode(c)).collect()
            }
        })
        .collect();
    Leg { mkv, expected, filled: jb.stats().filled_samples }
}

fn mkvinfo(path: &Path) -> String {
    let out = run(Command::new("mkvinfo").arg("-v").arg(path));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn mkvinfo_and_ffmpeg_read_a_streamed_leg_and_get_its_audio_byte_for_byte() {
    if !harness::require("mkvinfo") || !harness::require("ffmpeg") {
        return;
    }
    let dir = scratch("leg");
    let cases = [
        ("clean", Law::MuLaw, &[][..], &[][..], &[][..]),
        ("impaired", Law::ALaw, &[10, 11, 57, 200, 298][..], &[3, 20, 21, 150][..], &[5, 90][..]),
    ];
    for (name, law, lose, swap, repeat) in cases {
        let leg = stream_leg(law, lose, swap, repeat);
        let file = dir.join(format!("{name}.mkv"));
        std::fs::write(&file, &leg.mkv).expect("write mkv");

        let info = mkvinfo(&file);
        for want in [
            "Codec ID: A_PCM/INT/LIT",
            "Sampling frequency: 8000",
            "Channels: 1",
            "Bit depth: 16",
            "Name: AUDIO_FROM_CALLER",
            "Name: TransactionId",
            "String: 5d5f8b4e-6f6c-4c61-9a34-0e8d1c7e2a11",
            "Name: VoiceConnectorId",
            "Name: CallId",
            "Name: AWS_KINESISVIDEO_END_OF_FRAGMENT",
            "Timestamp scale: 1000000",
        ] {
            assert!(info.contains(want), "{name}: mkvinfo lacks {want:?}:\n{info}");
        }
        for bad in ["Warning", "Error", "error", "unknown element"] {
            assert!(!info.contains(bad), "{name}: mkvinfo says {bad:?}:\n{info}");
        }
        assert_eq!(
            info.lines().filter(|l| *l == "|+ Cluster").count(),
            3,
            "{name}: 6 s in 2 s fragments"
        );
        assert_eq!(info.matches("Simple block: key, track number 1").count(), 300);
        assert_eq!(info.matches("Name: TransactionId").count(), 3, "tags before each fragment");

        let pcm = harness::ffmpeg_pcm(&file, &dir.join(format!("{name}.s16")));
        assert_eq!(pcm.len(), leg.expected.len(), "{name}: samples");
        assert!(pcm == leg.expected, "{name}: ffmpeg's PCM differs from the G.711 decode");
        assert_eq!(leg.filled, lose.len() as u64 * 160, "{name}: only the lost packets filled");

        // The absolute timecodes: ffprobe reads the first at the stream's start.
        let probe = run(Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=start_time,codec_name,sample_rate"])
            .args(["-of", "default=nw=1"])
            .arg(&file));
        let probe = String::from_utf8_lossy(&probe.stdout);
        for want in ["codec_name=pcm_s16le", "sample_rate=8000", "start_time=1764000000.000000"] {
            assert!(probe.contains(want), "{name}: ffprobe lacks {want}: {probe}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
