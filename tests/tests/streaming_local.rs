//! Call audio streamed in local mode (the default sink): a voice connector with streaming on,
//! SIPp plays a G.711 A-law capture as the PBX and the carrier SIPp echoes it, so both legs
//! carry the capture's audio. Each leg becomes one Matroska file under `var/kvs/`, which
//! `mkvinfo -v` reads without a warning (track, tags) and from which `ffmpeg` extracts exactly
//! the G.711 decode of what was played. The call also has a streaming detail record beside its
//! CDR, and one STARTED and one ENDED status event per stream, in the JSON-lines file and POSTed
//! to a webhook (whose first answer is an error, so the retry is exercised).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{is_iso_ms, require, Gateway};

const VC: &str = "abcdef1ghij2klmno3pqr4";

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

/// A webhook on `addr`: answers its first POST with 503 and the others with 200, keeping
/// their bodies; stops after `limit`.
fn webhook(addr: &str, limit: Duration) -> Arc<Mutex<(u32, Vec<String>)>> {
    let seen = Arc::new(Mutex::new((0u32, Vec::new())));
    let listener = std::net::TcpListener::bind(addr).expect("webhook port");
    listener.set_nonblocking(true).expect("nonblocking");
    let s = seen.clone();
    std::thread::spawn(move || {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            let Ok((mut c, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let _ = c.set_nonblocking(false);
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            let body = loop {
                let Ok(n) = c.read(&mut buf) else { break None };
                if n == 0 {
                    break None;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).into_owned();
                let Some(head_end) = text.find("\r\n\r\n") else { continue };
                let len = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0usize);
                if req.len() >= head_end + 4 + len {
                    assert!(text.starts_with("POST /events HTTP/1.1\r\n"), "{text}");
                    break Some(text[head_end + 4..head_end + 4 + len].to_string());
                }
            };
            let mut g = s.lock().unwrap();
            g.0 += 1;
            let status = if g.0 == 1 { "503 Service Unavailable" } else { "200 OK" };
            if g.0 > 1 {
                g.1.extend(body);
            }
            let _ =
                write!(c, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    seen
}

fn event_lines(file: &Path, want: usize) -> Vec<serde_json::Value> {
    harness::json_lines(file, want, Duration::from_secs(10))
}

/// Checks the streaming status events of the call against formats.md §8.
fn check_events(
    events: &[serde_json::Value],
    cdr: &serde_json::Value,
    stream_names: &[String],
    fragments_per_leg: &[(String, u64)],
) {
    let starts: Vec<_> =
        events.iter().filter(|e| e["detail"]["streamingStatus"] == "STARTED").collect();
    let ends: Vec<_> =
        events.iter().filter(|e| e["detail"]["streamingStatus"] == "ENDED").collect();
    assert_eq!((starts.len(), ends.len(), events.len()), (2, 2, 4), "{events:#?}");
    let mut ids = std::collections::HashSet::new();
    for e in events {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "version",
                "id",
                "detail-type",
                "source",
                "account",
                "time",
                "region",
                "resources",
                "detail"
            ]
        );
        assert_eq!(e["version"], "0");
        assert_eq!(e["detail-type"], "Chime VoiceConnector Streaming Status");
        assert_eq!(e["source"], "aws.chime");
        assert_eq!(e["account"], cdr["AwsAccountId"]);
        assert_eq!(e["region"], cdr["Region"]);
        assert_eq!(e["resources"], serde_json::json!([]));
        let time = e["time"].as_str().unwrap();
        assert!(time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
        assert!(ids.insert(e["id"].as_str().unwrap().to_string()), "ids are unique");
        assert_eq!(e["id"].as_str().unwrap().len(), 36);
        let d = &e["detail"];
        assert_eq!(d["callId"], cdr["CallId"]);
        assert_eq!(d["transactionId"], cdr["TransactionId"]);
        assert_eq!(d["voiceConnectorId"], VC);
        assert_eq!(d["direction"], cdr["Direction"]);
        assert_eq!(d["fromNumber"], cdr["SourcePhoneNumber"]);
        assert_eq!(d["toNumber"], cdr["DestinationPhoneNumber"]);
        assert_eq!(d["mediaType"], "audio/L16");
        assert_eq!(d["version"], "0");
        assert!(d["isCaller"].is_boolean());
        assert!(is_iso_ms(d["startTime"].as_str().unwrap()), "{d}");
        assert_eq!(d["startFragmentNumber"], "1");
        let h = d["inviteHeaders"].as_object().expect("inviteHeaders");
        assert_eq!(h["call-id"], cdr["CallId"]);
        assert_eq!(h["cseq"], "1 INVITE");
        for name in ["via", "from", "to", "contact", "content-type", "content-length"] {
            assert!(h.contains_key(name), "inviteHeaders lack {name}: {h:?}");
        }
        assert!(h.keys().all(|k| k.chars().all(|c| !c.is_ascii_uppercase())), "{h:?}");
        let arn = d["streamArn"].as_str().unwrap();
        let name = stream_names
            .iter()
            .find(|n| arn.contains(&format!(":stream/{n}/")))
            .unwrap_or_else(|| panic!("{arn} names none of {stream_names:?}"));
        assert!(
            arn.starts_with(&format!(
                "arn:aws:kinesisvideo:{}:{}:stream/",
                cdr["Region"].as_str().unwrap(),
                cdr["AwsAccountId"].as_str().unwrap()
            )),
            "{arn}"
        );
        let x = d["siprecMetadata"].as_str().unwrap();
        let out = Command::new("python3")
            .args(["-c", "import sys, xml.etree.ElementTree as E; r = E.fromstring(sys.stdin.buffer.read()); ns = '{urn:ietf:params:xml:ns:recording:1}'; print(r.tag, len(r.findall(ns + 'participant')), len(r.findall(ns + 'stream')), r.find(ns + 'session').find(ns + 'sipSessionID').text)"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(x.as_bytes())?;
                c.wait_with_output()
            })
            .expect("python3");
        assert!(out.status.success(), "siprecMetadata is not XML: {x}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!(
                "{{urn:ietf:params:xml:ns:recording:1}}recording 2 2 {}",
                cdr["CallId"].as_str().unwrap()
            )
        );
        if d["streamingStatus"] == "ENDED" {
            assert!(is_iso_ms(d["endTime"].as_str().unwrap()), "{d}");
            assert!(d["endTime"].as_str() >= d["startTime"].as_str());
            let want = fragments_per_leg.iter().find(|(n, _)| n == name).unwrap().1;
            assert_eq!(d["currentFragmentNumber"], want.to_string(), "{d}");
        } else {
            assert!(d.get("endTime").is_none() && d.get("currentFragmentNumber").is_none());
        }
    }
    for list in [&starts, &ends] {
        let mut callers: Vec<bool> =
            list.iter().map(|e| e["detail"]["isCaller"].as_bool().unwrap()).collect();
        callers.sort_unstable();
        assert_eq!(callers, [false, true], "one stream per leg");
    }
}

#[test]
fn both_legs_of_a_streamed_call_become_matroska_files_with_the_audio_played() {
    if !require("sipp") || !require("mkvinfo") || !require("ffmpeg") {
        return;
    }
    let hook = webhook("127.0.0.41:18089", Duration::from_secs(120));
    let gw = Gateway::start("127.0.0.41", |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n\n[streaming]\nwebhook_url = \"http://127.0.0.41:18089/events\"\n")
    });
    let (pcap, packets, _) = harness::g711a_capture(&gw.dir);
    let (expected, filled) = harness::played_pcm(&pcap);
    assert_eq!(filled, 0, "the capture has no gap");
    assert!(expected.len() >= packets * 160, "{} samples", expected.len());
    harness::echoed_media_call(&gw, &pcap);

    let files = streams(&gw.dir.join("var/kvs"), 2);
    assert_eq!(files.len(), 2, "one stream per leg: {files:?}\n{}", gw.log());
    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 2, Duration::from_secs(10));
    assert_eq!(records.len(), 2, "a CDR and an SDR: {records:?}");
    let find = |prefix: &str| {
        records
            .iter()
            .find(|(k, _)| k.starts_with(prefix))
            .unwrap_or_else(|| panic!("no record under {prefix}: {records:?}"))
    };
    let (cdr_key, cdr) = find("Amazon-Chime-Voice-Connector-CDRs/json/");
    let (sdr_key, sdr) = find("Amazon-Chime-Voice-Connector-SDRs/json/");
    let transaction_id = cdr["TransactionId"].as_str().expect("TransactionId").to_string();
    assert_eq!(cdr["Streaming"], true, "the CDR says the call was streamed: {cdr}");
    // The SDR: formats.md §7's fields in the service's order, the CDR's key beside it.
    assert_eq!(
        sdr_key.strip_prefix("Amazon-Chime-Voice-Connector-SDRs"),
        cdr_key.strip_prefix("Amazon-Chime-Voice-Connector-CDRs")
    );
    let keys: Vec<&str> = sdr.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "SchemaVersion",
            "AwsAccountId",
            "TransactionId",
            "CallId",
            "VoiceConnectorId",
            "StartTimeEpochSeconds",
            "EndTimeEpochSeconds",
            "Status",
            "StatusMessage",
            "ServiceCode",
            "UsageType",
            "BillableDurationSeconds",
            "Region"
        ]
    );
    assert_eq!(sdr["SchemaVersion"], "1.0");
    for k in ["AwsAccountId", "TransactionId", "CallId", "VoiceConnectorId", "Region"] {
        assert_eq!(sdr[k], cdr[k], "{k}");
    }
    assert_eq!(
        (&sdr["Status"], &sdr["StatusMessage"]),
        (&"Completed".into(), &"Streaming succeeded".into())
    );
    assert_eq!(sdr["ServiceCode"], "AmazonChime");
    assert_eq!(sdr["UsageType"], "USE1-VC-kinesis-audio-streaming");
    let (start, end) = (
        sdr["StartTimeEpochSeconds"].as_u64().unwrap(),
        sdr["EndTimeEpochSeconds"].as_u64().unwrap(),
    );
    assert!(
        start >= cdr["StartTimeEpochSeconds"].as_u64().unwrap()
            && end == cdr["EndTimeEpochSeconds"].as_u64().unwrap()
    );
    let billable = sdr["BillableDurationSeconds"].as_u64().unwrap();
    assert!((4..=12).contains(&billable) && billable.abs_diff(end - start) <= 1, "{sdr}");
    let mut tracks = Vec::new();
    let mut names = Vec::new();
    let mut fragments_per_leg = Vec::new();
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
        names.push(name.to_string());
        fragments_per_leg
            .push((name.to_string(), info.lines().filter(|l| *l == "|+ Cluster").count() as u64));

        let pcm = harness::ffmpeg_pcm(file, &gw.dir.join(format!("{name}.s16")));
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
    let per_leg: u64 = fragments_per_leg.iter().map(|(_, n)| n).sum();
    assert_eq!(per_leg as f64, fragments, "{fragments_per_leg:?}");

    // The status events: in the file, and the same four through the webhook.
    let events = event_lines(&gw.dir.join("var/streaming-events.jsonl"), 4);
    check_events(&events, cdr, &names, &fragments_per_leg);
    let start = Instant::now();
    while hook.lock().unwrap().1.len() < 4 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (requests, posted) = hook.lock().unwrap().clone();
    let posted: Vec<serde_json::Value> =
        posted.iter().map(|b| serde_json::from_str(b).expect("webhook body")).collect();
    assert_eq!(requests, 5, "four events, one retried after the 503");
    let mut a: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    let mut b: Vec<String> = posted.iter().map(|e| e.to_string()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the webhook got the file's events");
    assert_eq!(gw.process_metric("voicegw_stream_events_sent_total"), 8.0, "{}", gw.metrics());
    // Never counted: absent (-1) from the exposition.
    assert!(gw.process_metric("voicegw_stream_events_failed_total") <= 0.0);
    assert!(gw.process_metric("voicegw_stream_events_dropped_total") <= 0.0);
    assert_eq!(gw.process_metric("voicegw_streams_active"), 0.0);
}

/// A leg whose codec is not G.711 is not streamed: a FAILED event with the reason (formats.md
/// §8's fields), no STARTED, no stream file, no SDR, and the call itself goes on.
#[test]
fn a_leg_with_another_codec_gives_a_failed_event_and_the_call_goes_on() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.42", |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n")
    });
    let pcap = gw.dir.join("g729-like.pcap");
    let net = harness::pcap_gen::Network {
        seed: 3,
        packets: 100,
        max_delay_ms: 0.0,
        loss_permille: 0,
        duplicate_permille: 0,
    };
    // Payload type 18 (G.729) as the PBX's RTP.
    assert_eq!(harness::pcap_gen::write_rtp_stream_as(&pcap, net, 18), 100);
    harness::echoed_media_call(&gw, &pcap);
    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 1, Duration::from_secs(10));
    assert_eq!(records.len(), 1, "a CDR and no SDR: {records:?}");
    let cdr = &records[0].1;
    assert_eq!((&cdr["Status"], &cdr["Streaming"]), (&"Completed".into(), &false.into()), "{cdr}");
    let events = event_lines(&gw.dir.join("var/streaming-events.jsonl"), 2);
    assert_eq!(events.len(), 2, "one FAILED per leg: {events:#?}");
    for e in &events {
        let d = e["detail"].as_object().expect("detail");
        let keys: Vec<&str> = d.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "callId",
                "direction",
                "failTime",
                "failureReason",
                "streamingStatus",
                "transactionId",
                "version",
                "voiceConnectorId"
            ]
        );
        assert_eq!(d["streamingStatus"], "FAILED");
        assert_eq!(d["callId"], cdr["CallId"]);
        assert_eq!(d["transactionId"], cdr["TransactionId"]);
        assert_eq!(d["direction"], "Outbound");
        assert!(is_iso_ms(d["failTime"].as_str().unwrap()), "{e}");
        let reason = d["failureReason"].as_str().unwrap();
        assert!(reason.contains("payload type 18") && reason.contains("G.711"), "{reason}");
    }
    assert!(streams(&gw.dir.join("var/kvs"), 1).is_empty(), "no stream file");
    assert_eq!(gw.wait_process_metric("voicegw_streams_failed_total", 2.0), 2.0);
    assert!(gw.process_metric("voicegw_streams_started_total") <= 0.0);
}

/// Loss and reordering on the way in (a capture that loses 3% of its packets, repeats some and
/// delays each by up to 45 ms, played as written): each leg's file is still read by `mkvinfo`
/// without a warning, and `ffmpeg` returns the decode of every packet sent, in timestamp
/// order, with silence exactly where packets never came — the silence the fill metric counts.
#[test]
fn loss_and_reordering_are_put_back_in_order_and_the_gaps_filled_and_counted() {
    if !require("sipp") || !require("mkvinfo") || !require("ffmpeg") {
        return;
    }
    let gw = Gateway::start("127.0.0.73", |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n\n[streaming]\njitter_hold_ms = 200\n")
    });
    let pcap = gw.dir.join("lossy.pcap");
    let net = harness::pcap_gen::Network {
        seed: 29,
        packets: 300,
        max_delay_ms: 45.0,
        loss_permille: 30,
        duplicate_permille: 10,
    };
    harness::pcap_gen::write_rtp_stream(&pcap, net);
    let (expected, filled) = harness::played_pcm(&pcap);
    assert!(filled >= 160, "the capture loses packets");
    harness::echoed_media_call(&gw, &pcap);
    let files = streams(&gw.dir.join("var/kvs"), 2);
    assert_eq!(files.len(), 2, "{files:?}\n{}", gw.log());
    // Both legs are closed once both ENDED events are written.
    let events = event_lines(&gw.dir.join("var/streaming-events.jsonl"), 4);
    assert_eq!(events.len(), 4, "{events:#?}");
    for file in &files {
        let info = Command::new("mkvinfo").arg("-v").arg(file).output().expect("mkvinfo");
        let info = String::from_utf8_lossy(&info.stdout).into_owned();
        assert!(info.contains("A_PCM/INT/LIT") && !info.contains("Warning"), "{info}");
        let pcm = harness::ffmpeg_pcm(file, &file.with_extension("s16"));
        assert_eq!(pcm.len(), expected.len(), "{}: samples", file.display());
        assert!(pcm == expected, "{}: not the audio sent, in order, gaps silent", file.display());
    }
    let fill =
        gw.wait_process_metric("voicegw_stream_fill_milliseconds_total", (2 * filled / 8) as f64);
    assert_eq!(fill, (2 * filled / 8) as f64, "the fill is what was lost, per leg");
}
