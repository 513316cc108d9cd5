//! Call audio streamed in local mode (the default sink): a voice connector with streaming on,
//! SIPp plays a G.711 A-law capture as the PBX and the carrier SIPp echoes it, so both legs
//! carry the capture's audio. Each leg becomes one Matroska file under `var/kvs/`, which
//! `mkvinfo -v` reads without a warning (track, tags) and from which `ffmpeg` extracts exactly
//! the G.711 decode of what was played.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{require, Gateway};
use streaming::g711::Law;

const VC: &str = "abcdef1ghij2klmno3pqr4";

/// The PCM of every RTP packet in `pcap`, in timestamp order (the decode of what was played).
fn played_pcm(pcap: &Path) -> Vec<i16> {
    let file = std::fs::read(pcap).expect("capture");
    let mut packets: Vec<(u32, Vec<u8>)> = media::capture::udp_datagrams(&file)
        .expect("pcap")
        .iter()
        .filter_map(|d| {
            let h = media::rtp::RtpHeader::parse(d.payload).ok()?;
            (h.payload_type == 8).then(|| {
                (
                    h.timestamp,
                    d.payload[h.payload_offset..h.payload_offset + h.payload_len].to_vec(),
                )
            })
        })
        .collect();
    packets.sort_by_key(|p| p.0);
    packets.dedup_by_key(|p| p.0);
    packets.iter().flat_map(|(_, p)| p.iter().map(|&c| Law::ALaw.decode(c))).collect()
}

fn streams(dir: &Path, want: usize) -> Vec<PathBuf> {
    let start = Instant::now();
    loop {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "mkv"));
        files.sort();
        if files.len() >= want || start.elapsed() > Duration::from_secs(5) {
            return files;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn both_legs_of_a_streamed_call_become_matroska_files_with_the_audio_played() {
    if !require("sipp") || !require("mkvinfo") || !require("ffmpeg") {
        return;
    }
    let gw = Gateway::start("127.0.0.41", |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n")
    });
    let (pcap, packets, _) = harness::g711a_capture(&gw.dir);
    let expected = played_pcm(&pcap);
    assert!(expected.len() >= packets * 160, "{} samples", expected.len());
    harness::echoed_media_call(&gw, &pcap);

    let files = streams(&gw.dir.join("var/kvs"), 2);
    assert_eq!(files.len(), 2, "one stream per leg: {files:?}\n{}", gw.log());
    let cdrs = harness::cdrs_in(&gw.dir.join("var/cdrs"), 1, Duration::from_secs(10));
    let transaction_id = cdrs[0].1["TransactionId"].as_str().expect("TransactionId").to_string();
    assert_eq!(cdrs[0].1["Streaming"], true, "the CDR says the call was streamed: {}", cdrs[0].1);
    let mut tracks = Vec::new();
    for file in &files {
        let name = file.file_stem().and_then(|s| s.to_str()).expect("name");
        let uuid = name.strip_prefix(&format!("ChimeVoiceConnector-{VC}-")).expect(name);
        assert_eq!(uuid.len(), 36, "{name}");
        // The last fragment is closed when the call's media closes: wait for its end tag.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            let bytes = std::fs::read(file).unwrap_or_default();
            if bytes.windows(32).any(|w| w == b"AWS_KINESISVIDEO_END_OF_FRAGMENT") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let info = Command::new("mkvinfo").arg("-v").arg(file).output().expect("mkvinfo");
        assert!(info.status.success(), "{}", String::from_utf8_lossy(&info.stderr));
        let info = String::from_utf8_lossy(&info.stdout).into_owned();
        for want in [
            "Codec ID: A_PCM/INT/LIT".to_string(),
            "Sampling frequency: 8000".into(),
            "Name: TransactionId".into(),
            format!("String: {transaction_id}"),
            format!("String: {VC}"),
            "Name: CallId".into(),
            "Name: AWS_KINESISVIDEO_END_OF_FRAGMENT".into(),
        ] {
            assert!(info.contains(&want), "{name}: mkvinfo lacks {want:?}:\n{info}");
        }
        assert!(!info.contains("Warning") && !info.contains("Error"), "{info}");
        tracks.push(if info.contains("Name: AUDIO_FROM_CALLER") { "caller" } else { "callee" });

        let raw = gw.dir.join(format!("{name}.s16"));
        let out = harness::run_with_limit(
            Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
                .arg(file)
                .args(["-map", "0:a:0", "-f", "s16le", "-c", "copy"])
                .arg(&raw),
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let pcm: Vec<i16> = std::fs::read(&raw)
            .expect("pcm")
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        // Loopback loses nothing: the stream is the capture's audio, byte for byte.
        assert_eq!(pcm.len(), expected.len(), "{name}: samples");
        assert!(pcm == expected, "{name}: the streamed audio differs from what was played");
    }
    tracks.sort_unstable();
    assert_eq!(tracks, ["callee", "caller"]);

    // The streaming metrics: two legs, every byte of both files, nothing filled or dropped.
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).map_or(0, |m| m.len())).sum();
    let start = Instant::now();
    while gw.process_metric("voicegw_stream_bytes_total") < bytes as f64
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(gw.process_metric("voicegw_streams_started_total"), 2.0, "{}", gw.metrics());
    assert_eq!(gw.process_metric("voicegw_stream_bytes_total"), bytes as f64);
    assert_eq!(gw.process_metric("voicegw_streams_failed_total"), 0.0);
    assert_eq!(gw.process_metric("voicegw_stream_dropped_bytes_total"), 0.0);
    assert_eq!(gw.process_metric("voicegw_stream_fill_milliseconds_total"), 0.0);
    let fragments = gw.process_metric("voicegw_stream_fragments_total");
    assert!(fragments >= 4.0, "at least 4 s in 2 s fragments, both legs: {fragments}");
}
