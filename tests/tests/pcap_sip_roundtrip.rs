//! Every SIP message in the reference captures (`../shared/pcaps`) parses, prints, and re-parses
//! to an equal message. tshark extracts the messages (it reassembles TCP, WebSocket, IP
//! fragments and tunnels); the number extracted per capture is checked against MANIFEST.md.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use harness::{require, root, run_with_limit, shared};
use serde_json::Value;
use sip::Message;

/// "SIP msgs" per capture from MANIFEST.md's summary table.
fn manifest_counts() -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(shared().join("pcaps/MANIFEST.md"))
        .expect("shared/pcaps/MANIFEST.md");
    text.lines()
        .filter(|l| l.starts_with("| ") && (l.contains(".pcap ") || l.contains(".pcapng ")))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            let n = match *cols.get(7)? {
                "-" => 0,
                v => v.parse().ok()?,
            };
            Some((cols[1].to_string(), n))
        })
        .collect()
}

/// Decode-as options MANIFEST.md lists for captures on non-standard ports.
fn decode_as(file: &str) -> Vec<&'static str> {
    match file {
        "heplify-sip-tcp6060-segmented.pcap" => vec!["-d", "tcp.port==6060,sip"],
        _ => vec![],
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect()
}

/// Collects the raw bytes of every `sip_raw` entry (one per SIP message).
fn collect_raw(v: &Value, out: &mut Vec<Vec<u8>>) {
    match v {
        Value::Array(a) if a.first().is_some_and(Value::is_string) => {
            if let Some(h) = a[0].as_str() {
                out.push(hex(h));
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_raw(x, out)),
        _ => {}
    }
}

fn find_sip_raw(v: &Value, out: &mut Vec<Vec<u8>>) {
    if let Value::Object(m) = v {
        for (k, x) in m {
            if k == "sip_raw" {
                collect_raw(x, out);
            } else {
                find_sip_raw(x, out);
            }
        }
    }
}

fn extract(file: &str) -> Vec<Vec<u8>> {
    extract_from(&shared().join("pcaps").join(file), file)
}

fn extract_from(path: &std::path::Path, file: &str) -> Vec<Vec<u8>> {
    let out = run_with_limit(
        Command::new("tshark").args(["-n", "-r"]).arg(path).args(decode_as(file)).args([
            "-Y",
            "sip",
            "-T",
            "json",
            "-x",
            "--no-duplicate-keys",
        ]),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "tshark failed on {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]));
    let mut msgs = Vec::new();
    if let Value::Array(packets) = v {
        for p in &packets {
            find_sip_raw(p, &mut msgs);
        }
    }
    msgs
}

#[test]
fn every_sip_message_in_the_reference_captures_round_trips() {
    if harness::shared_corpus().is_none() {
        return;
    }
    if !require("tshark") {
        return;
    }
    let counts = manifest_counts();
    assert!(counts.len() >= 40, "MANIFEST.md summary table not found or changed: {counts:?}");
    let mut total = 0;
    let mut failures = Vec::new();
    for (file, expected) in &counts {
        if *expected == 0 {
            continue;
        }
        let msgs = extract(file);
        assert_eq!(
            msgs.len(),
            *expected,
            "{file}: tshark extracted {} SIP messages, MANIFEST.md lists {expected}",
            msgs.len()
        );
        total += msgs.len();
        failures.extend(round_trip(file, &msgs));
    }
    assert!(
        failures.is_empty(),
        "{} of {total} messages failed:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
    assert!(total > 700, "only {total} SIP messages extracted");
    eprintln!("{total} SIP messages round-tripped");
}

/// Round-trips every message of one capture; returns the failures.
fn round_trip(file: &str, msgs: &[Vec<u8>]) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, raw) in msgs.iter().enumerate() {
        let parsed = match Message::parse(raw) {
            Ok(m) => m,
            Err(e) => {
                let head = String::from_utf8_lossy(&raw[..raw.len().min(300)]).to_string();
                failures.push(format!("{file} #{i}: {e}\n{head}"));
                continue;
            }
        };
        let printed = parsed.to_bytes();
        match Message::parse(&printed) {
            Ok(again) if again == parsed => {}
            Ok(_) => failures.push(format!(
                "{file} #{i}: re-parse differs\n{}",
                String::from_utf8_lossy(&printed)
            )),
            Err(e) => failures.push(format!("{file} #{i}: printed form does not parse: {e}")),
        }
    }
    failures
}

#[test]
fn our_own_fixtures_round_trip() {
    if !require("tshark") {
        return;
    }
    let path = root().join("pcap-fixtures/voicegw-udp-termination-call.pcap");
    let msgs = extract_from(&path, "voicegw-udp-termination-call.pcap");
    assert_eq!(msgs.len(), 13, "the fixture holds one call: 13 SIP messages");
    let failures = round_trip("voicegw-udp-termination-call.pcap", &msgs);
    assert!(failures.is_empty(), "{failures:?}");
    // voicegw's own messages (From host 127.0.0.40, our Via branch cookie) are in it.
    let ours = msgs.iter().filter(|m| String::from_utf8_lossy(m).contains("@voicegw")).count();
    assert!(ours >= 6, "expected the carrier leg (voicegw Call-ID) in the capture, found {ours}");
}
