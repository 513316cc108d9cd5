//! After a known scenario (10 termination attempts: 7 answered, 3 failed), `curl` of the
//! metrics endpoint shows every CloudWatch name of formats.md §6 with the right counts, and
//! `promtool check metrics` accepts the exposition. The same calls leave SIP message logs
//! (formats.md §5) with every message of each call under its TransactionId, rotated by size,
//! while the application log shows no phone number in clear.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use harness::{
    carrier_args, pbx_args, refused_scenario, require, run_sipp, run_with_limit, strs, tail,
    Gateway, Sipp,
};
use serde_json::Value;

const VC: &str = "abcdef1ghij2klmno3pqr4";

/// formats.md §6, name by name.
fn cloudwatch_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "InboundCallAttempts",
        "InboundCallFailures",
        "InboundCallsAnswered",
        "InboundCallsActive",
        "OutboundCallAttempts",
        "OutboundCallFailures",
        "OutboundCallsAnswered",
        "OutboundCallsActive",
        "VoiceConnectorActiveCallCount",
        "Throttles",
        "RTTBetweenVcAndCustomer",
        "RTTBetweenVcAndRemote",
        "MOSBetweenVcAndCustomer",
        "MOSBetweenVcAndRemote",
    ]
    .map(String::from)
    .to_vec();
    v.extend((1..=6).map(|i| format!("Sip{i}xxCodes")));
    for dir in ["CustomerToVc", "VcToCustomer", "RemoteToVc", "VcToRemote"] {
        for s in ["RtpPackets", "RtpBytes", "RtcpPackets", "RtcpBytes", "PacketsLost", "Jitter"] {
            v.push(format!("{dir}{s}"));
        }
    }
    v
}

fn curl_metrics(gw: &Gateway) -> String {
    let out = run_with_limit(
        Command::new("curl").args(["-sS", "--fail", &format!("http://{}:9100/metrics", gw.ip)]),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 exposition")
}

/// The sample of `name` for the voice connector (or the process, `vc` empty).
fn sample(text: &str, name: &str, vc: &str) -> f64 {
    let region = if vc.is_empty() { "" } else { "us-east-1" };
    let key = format!("{name}{{voice_connector_id=\"{vc}\",region=\"{region}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no sample {key}in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Every line of the voice connector's SIP message log, oldest first (rotated files too).
fn sip_log_lines(gw: &Gateway) -> Vec<Value> {
    let base = gw.dir.join(format!("var/ChimeVoiceConnectorSipMessages/{VC}.jsonl"));
    let mut files: Vec<std::path::PathBuf> = (1..=50)
        .rev()
        .map(|k| std::path::PathBuf::from(format!("{}.{k}", base.display())))
        .filter(|p| p.exists())
        .collect();
    files.push(base);
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn known_scenario_metrics_promtool_and_sip_message_logs() {
    if !(require("sipp") && require("curl") && require("promtool")) {
        return;
    }
    let gw = Gateway::start("127.0.0.64", |c| {
        c.replace(
            "dir = \"./var\"",
            "dir = \"./var\"\nsip_log_max_bytes = 16384\nsip_log_keep = 40",
        )
        .replace("[metrics]", "[metrics]\nemf_file = \"emf.jsonl\"\nemf_period_secs = 1")
    });
    // 7 answered.
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m", "7"].map(String::from));
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &strs(&c));
    let mut args = pbx_args(&gw.ip);
    args.extend(["-m", "7", "-r", "20", "-timeout", "30s", "-timeout_error"].map(String::from));
    let r =
        run_sipp(&gw.dir, "answered", "pbx_caller_bye.xml", &strs(&args), Duration::from_secs(35));
    assert_eq!((r.successful, r.failed), (7, 0), "{r:#?}\n{}", tail(&gw.log()));
    callee.wait(Duration::from_secs(10));
    // 3 failed: the carrier refuses (503, relayed as 500).
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m", "3"].map(String::from));
    let callee = Sipp::spawn(&gw.dir, "carrier-503", "carrier_503.xml", &strs(&c));
    let s500 = refused_scenario(&gw, 500);
    let mut args = pbx_args(&gw.ip);
    args.extend(["-m", "3", "-r", "20", "-timeout", "30s", "-timeout_error"].map(String::from));
    let r =
        run_sipp(&gw.dir, "failed", s500.to_str().unwrap(), &strs(&args), Duration::from_secs(35));
    assert_eq!((r.successful, r.failed), (3, 0), "{r:#?}\n{}", tail(&gw.log()));
    callee.wait(Duration::from_secs(10));

    let text = curl_metrics(&gw);
    for name in cloudwatch_names() {
        let help = format!("(CloudWatch: {name})");
        let line = text.lines().find(|l| l.starts_with("# HELP ") && l.ends_with(&help));
        let line = line.unwrap_or_else(|| panic!("{name} missing from\n{text}"));
        let prom = line.split_whitespace().nth(2).unwrap();
        sample(&text, prom, VC);
    }
    assert_eq!(sample(&text, "voicegw_outbound_call_attempts_total", VC), 10.0);
    assert_eq!(sample(&text, "voicegw_outbound_calls_answered_total", VC), 7.0);
    assert_eq!(sample(&text, "voicegw_outbound_call_failures_total", VC), 3.0);
    assert_eq!(sample(&text, "voicegw_outbound_calls_active", VC), 0.0);
    assert_eq!(sample(&text, "voicegw_voice_connector_active_calls", VC), 0.0);
    assert_eq!(sample(&text, "voicegw_inbound_call_attempts_total", VC), 0.0);
    assert_eq!(sample(&text, "voicegw_throttles_total", VC), 0.0);
    // Sent on the calls' legs: 100 ×10 and 180 ×7; 200 ×14 (7 INVITEs, 7 BYEs); 500 ×3.
    assert_eq!(sample(&text, "voicegw_sip_1xx_codes_total", VC), 17.0);
    assert_eq!(sample(&text, "voicegw_sip_2xx_codes_total", VC), 14.0);
    assert_eq!(sample(&text, "voicegw_sip_5xx_codes_total", VC), 3.0);
    assert_eq!(sample(&text, "voicegw_sip_4xx_codes_total", VC), 0.0);
    // Process metrics and the call setup histogram.
    assert_eq!(sample(&text, "voicegw_active_calls", ""), 0.0);
    assert_eq!(sample(&text, "voicegw_media_ports_in_use", ""), 0.0);
    assert_eq!(sample(&text, "voicegw_sip_tls_connections", ""), 0.0);
    assert_eq!(sample(&text, "voicegw_call_setup_seconds_count", ""), 7.0);
    assert_eq!(sample(&text, "voicegw_cdrs_written_total", ""), 10.0);
    assert!(text.contains("# TYPE voicegw_media_relay_latency_seconds histogram"), "{text}");

    // promtool reads the exposition as Prometheus would.
    let file = gw.dir.join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let out = run_with_limit(
        Command::new("sh").arg("-c").arg(format!("promtool check metrics < {}", file.display())),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // EMF lines once a period: the counters' increases add up to the totals.
    std::thread::sleep(Duration::from_millis(1500));
    let emf = std::fs::read_to_string(gw.dir.join("var/emf.jsonl")).unwrap_or_default();
    let (mut attempts, mut answered, mut lines_vc) = (0.0, 0.0, 0);
    for l in emf.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        let aws = &v["_aws"]["CloudWatchMetrics"][0];
        if v["VoiceConnectorId"] == VC {
            lines_vc += 1;
            assert_eq!(aws["Namespace"], "AWS/ChimeVoiceConnector");
            assert_eq!(aws["Dimensions"], serde_json::json!([["VoiceConnectorId", "Region"]]));
            assert_eq!(v["Region"], "us-east-1");
            attempts += v["OutboundCallAttempts"].as_f64().unwrap();
            answered += v["OutboundCallsAnswered"].as_f64().unwrap();
        }
    }
    assert!(lines_vc >= 2, "{emf}");
    assert_eq!((attempts, answered), (10.0, 7.0), "{emf}");

    // SIP message logs: each call's messages under its TransactionId.
    let cdrs = gw.cdrs(10, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 10);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut lines = sip_log_lines(&gw);
    // 7 answered calls of 13 messages, 3 refused of 7 (INVITE, 100, INVITE, 503, ACK, 500, ACK).
    while lines.len() < 7 * 13 + 3 * 7 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        lines = sip_log_lines(&gw);
    }
    let mut per_call: HashMap<String, Vec<String>> = HashMap::new();
    for l in &lines {
        let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["voice_connector_id", "aws_region", "event_timestamp", "call_id", "sip_message"]
        );
        assert_eq!(
            (l["voice_connector_id"].as_str(), l["aws_region"].as_str()),
            (Some(VC), Some("us-east-1"))
        );
        assert!(l["event_timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        let msg = l["sip_message"].as_str().unwrap();
        assert!(msg.contains("\r\nCall-ID: ") || msg.contains("\r\ni: "), "{msg}");
        per_call
            .entry(l["call_id"].as_str().unwrap().to_string())
            .or_default()
            .push(msg.to_string());
    }
    assert_eq!(per_call.len(), 10, "one TransactionId per call: {:?}", per_call.keys());
    for (_, v) in &cdrs {
        let tx = v["TransactionId"].as_str().unwrap();
        let msgs = per_call.get(tx).unwrap_or_else(|| panic!("no SIP log for {tx}"));
        let starts: Vec<&str> = msgs.iter().map(|m| m.split("\r\n").next().unwrap()).collect();
        let count = |p: &str| starts.iter().filter(|s| s.starts_with(p) || s.contains(p)).count();
        // Both legs, in and out: the caller's INVITE and voicegw's to the carrier.
        assert_eq!(count("INVITE sip:"), 2, "{starts:#?}");
        // Every message of the call is logged, retransmissions too: on a busy machine a late
        // ACK makes voicegw send its final response again, so responses may appear twice.
        if v["Status"] == "Completed" {
            assert!(msgs.len() >= 13, "{starts:#?}");
            assert_eq!(count("BYE sip:"), 2, "{starts:#?}");
            assert!(count("SIP/2.0 200 OK") >= 4, "{starts:#?}");
        } else {
            assert_eq!(count("SIP/2.0 503"), 1, "{starts:#?}");
            assert!(count("SIP/2.0 500") >= 1, "{starts:#?}");
            assert_eq!(count("ACK sip:"), 2, "{starts:#?}");
        }
    }
    let rotated = gw.dir.join(format!("var/ChimeVoiceConnectorSipMessages/{VC}.jsonl.1"));
    assert!(rotated.exists(), "16 KiB files rotated");
    for f in std::fs::read_dir(gw.dir.join("var/ChimeVoiceConnectorSipMessages")).unwrap() {
        let f = f.unwrap();
        assert!(f.metadata().unwrap().len() <= 16384 + 4096, "{:?} too big", f.path());
    }
    // The application log keeps numbers masked.
    let log = gw.log();
    assert!(log.contains("call started"), "{}", tail(&log));
    assert!(!log.contains("+12065550101") && !log.contains("+12065550100"), "{}", tail(&log));
    assert!(log.contains("+12*******01"), "{}", tail(&log));
}
