//! voicegw as a SIPREC recording client (RFC 7866), end to end: a voice connector with
//! `SiprecRecording` sends every call it relays to a recording server as well. Here the
//! recording server is a second voicegw: SIPp plays a PBX calling through the first voicegw to
//! a SIPp carrier that echoes the audio; the second voicegw receives the recording session
//! (two labelled `sendonly` streams, RFC 7865 metadata naming the caller and the callee) and
//! records each stream to a Matroska file whose audio is what the PBX played, byte for byte.
//! A recording server that refuses (503) leaves the call as it would have been.

use std::time::Duration;

use harness::{require, Gateway};

fn streaming(c: String) -> String {
    format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n")
}

fn recorded_by(c: String, host: &str, port: u16) -> String {
    format!("{c}\n[VoiceConnectors.SiprecRecording]\nHost = \"{host}\"\nPort = {port}\nUser = \"recorder\"\n")
}

#[test]
fn a_relayed_call_is_recorded_by_another_voicegw_as_two_labelled_streams() {
    if !require("sipp") || !require("ffmpeg") {
        return;
    }
    let srs = Gateway::start("127.0.0.82", streaming);
    let gw = Gateway::start("127.0.0.81", |c| recorded_by(c, "127.0.0.82", 5060));
    let (pcap, _, _) = harness::g711a_capture(&gw.dir);
    let (expected, _) = harness::played_pcm(&pcap);
    harness::echoed_media_call(&gw, &pcap);

    let events = harness::json_lines(
        &srs.dir.join("var/streaming-events.jsonl"),
        4,
        Duration::from_secs(20),
    );
    assert_eq!(events.len(), 4, "{events:#?}\n{}\n{}", gw.log(), srs.log());
    let mut labels: Vec<String> = Vec::new();
    for e in &events {
        let d = &e["detail"];
        assert_eq!(d["inviteHeaders"]["require"], "siprec", "{d}");
        let label = d["sdp"]["mediaLabel"].as_str().expect("a label").to_string();
        if d["streamingStatus"] == "STARTED" {
            labels.push(label);
        }
        // The metadata voicegw wrote: the call's caller and callee, who sends which stream.
        let m = &d["siprecMetadataJson"];
        let aors: Vec<&str> = m["participants"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["aor"].as_str())
            .collect();
        assert!(aors.iter().any(|a| a.contains("+12065550101")), "the callee: {m}");
        assert_eq!(m["streams"].as_array().map(Vec::len), Some(2), "{m}");
    }
    labels.sort();
    assert_eq!(labels, ["1", "2"]);
    let files = harness::mkv_files(&srs.dir.join("var/kvs"));
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        let pcm = harness::ffmpeg_pcm(f, &f.with_extension("s16"));
        assert!(
            pcm == expected,
            "{}: the recorded stream is the audio the PBX played ({} samples, {} expected)",
            f.display(),
            pcm.len(),
            expected.len()
        );
    }
    // The call itself: completed, as without a recorder.
    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 1, Duration::from_secs(10));
    let cdr = &records.iter().find(|(k, _)| k.contains("-CDRs/")).expect("a CDR").1;
    assert_eq!(cdr["Status"], "Completed", "{cdr}");
    assert_eq!(
        gw.process_metric("voicegw_recording_client_sessions_total"),
        1.0,
        "{}",
        gw.metrics()
    );
    assert_eq!(gw.wait_process_metric("voicegw_recording_client_sessions_active", 0.0), 0.0);
    assert_eq!(srs.wait_process_metric("voicegw_recording_sessions_active", 0.0), 0.0);
}

#[test]
fn a_recording_server_that_refuses_leaves_the_call_unharmed() {
    if !require("sipp") {
        return;
    }
    let ip = "127.0.0.83";
    let gw = Gateway::start(ip, |c| recorded_by(c, ip, 5070));
    // The recording server: SIPp refusing with 503 on 5070.
    let args = ["-i", ip, "-p", "5070", "-mp", "6200", "-m", "1"];
    let srs = harness::Sipp::spawn(&gw.dir, "srs", "carrier_503.xml", &args);
    let (pcap, _, _) = harness::g711a_capture(&gw.dir);
    harness::echoed_media_call(&gw, &pcap);
    let refused = srs.wait(Duration::from_secs(10));
    assert_eq!(refused.successful, 1, "the recording server was asked: {refused:#?}");
    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 1, Duration::from_secs(10));
    let cdr = &records.iter().find(|(k, _)| k.contains("-CDRs/")).expect("a CDR").1;
    assert_eq!(cdr["Status"], "Completed", "{cdr}");
    let failures = "voicegw_recording_client_failures_total{voice_connector_id=\"\",region=\"\",kind=\"503\"} 1";
    let start = std::time::Instant::now();
    while !gw.metrics().contains(failures) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.metrics().contains(failures), "{}", gw.metrics());
    assert!(gw.log().contains("call not recorded"), "{}", gw.log());
}

#[test]
fn a_recording_server_that_is_down_leaves_the_call_unharmed() {
    if !require("sipp") {
        return;
    }
    // Nothing listens on 5071: the INVITE meets ICMP port unreachable, or silence.
    let ip = "127.0.0.84";
    let gw = Gateway::start(ip, |c| recorded_by(c, ip, 5071));
    let (pcap, _, _) = harness::g711a_capture(&gw.dir);
    harness::echoed_media_call(&gw, &pcap);
    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 1, Duration::from_secs(10));
    let cdr = &records.iter().find(|(k, _)| k.contains("-CDRs/")).expect("a CDR").1;
    assert_eq!(cdr["Status"], "Completed", "{cdr}");
    let failures = "voicegw_recording_client_failures_total{voice_connector_id=\"\",region=\"\",kind=\"no_answer\"} 1";
    let start = std::time::Instant::now();
    while !gw.metrics().contains(failures) && start.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(gw.metrics().contains(failures), "{}\n{}", gw.metrics(), gw.log());
    assert_eq!(gw.wait_process_metric("voicegw_recording_client_sessions_active", 0.0), 0.0);
}
