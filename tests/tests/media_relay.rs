//! Media through voicegw: SIPp plays a G.711 A-law capture as the PBX, the carrier SIPp echoes it
//! (`-rtp_echo`); voicegw anchors both legs (SDP rewritten to its own sockets), relays every
//! packet both ways and writes the media-quality record of formats.md §4 at call end.

use std::time::{Duration, Instant};

use harness::{carrier_args, pbx_args, require, run_sipp, Gateway, Sipp};
use serde_json::Value;

const FIELDS: &str = "voice_connector_id, event_timestamp, call_id, from_sip_user, from_country, to_sip_user, to_country, endpoint_id, aws_region, cust2vc_rtp_packets, cust2vc_rtp_bytes, cust2vc_rtcp_packets, cust2vc_rtcp_bytes, cust2vc_packets_lost, cust2vc_jitter, vc2cust_rtp_packets, vc2cust_rtp_bytes, vc2cust_rtcp_packets, vc2cust_rtcp_bytes, vc2cust_packets_lost, vc2cust_jitter, rtt_btwn_vc_and_cust, mos_btwn_vc_and_cust, rem2vc_rtp_packets, rem2vc_rtp_bytes, rem2vc_rtcp_packets, rem2vc_rtcp_bytes, rem2vc_packets_lost, rem2vc_jitter, vc2rem_rtp_packets, vc2rem_rtp_bytes, vc2rem_rtcp_packets, vc2rem_rtcp_bytes, vc2rem_packets_lost, vc2rem_jitter, rtt_btwn_vc_and_rem, mos_btwn_vc_and_rem";

#[test]
fn rtp_is_relayed_both_ways_and_recorded() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.24", |c| c);
    let (pcap, packets, size) = harness::g711a_capture(&gw.dir);
    harness::echoed_media_call(&gw, &pcap);

    // The record is written when the relay closes, right after the BYE.
    let path = gw.dir.join("var/ChimeVoiceConnectorLogs/abcdef1ghij2klmno3pqr4.jsonl");
    let start = Instant::now();
    let mut text = String::new();
    while start.elapsed() < Duration::from_secs(5) {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one record (a call shorter than a minute): {text}\n{}", gw.log());
    let rec: Value = serde_json::from_str(lines[0]).expect("JSON record");
    let keys: Vec<&str> = rec.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, FIELDS.split(", ").collect::<Vec<_>>(), "fields and order of formats.md §4");
    // Every packet of the capture, both ways (the callee echoes them).
    for k in
        ["cust2vc_rtp_packets", "vc2rem_rtp_packets", "rem2vc_rtp_packets", "vc2cust_rtp_packets"]
    {
        assert_eq!(rec[k], packets, "{k}: {rec}");
    }
    assert_eq!(rec["cust2vc_rtp_bytes"], packets * size);
    assert_eq!(rec["cust2vc_packets_lost"], 0);
    assert_eq!(rec["rem2vc_packets_lost"], 0);
    let jitter = rec["cust2vc_jitter"].as_u64().expect("jitter measured");
    assert!(jitter < 20_000, "jitter on loopback should be small: {jitter} µs");
    // SIPp sends no RTCP: the RTT is unknown (null), but the MOS is computed from the loss and
    // jitter voicegw measured itself, with the delay estimated as 2·jitter + ptime.
    assert!(rec["rtt_btwn_vc_and_cust"].is_null(), "unknown RTT is null: {rec}");
    for k in ["mos_btwn_vc_and_cust", "mos_btwn_vc_and_rem"] {
        let mos = rec[k].as_f64().unwrap_or_else(|| panic!("{k} without RTCP: {rec}"));
        assert!((4.0..=4.4).contains(&mos), "{k}: no loss on loopback, {mos}");
    }
    assert_eq!(rec["voice_connector_id"], "abcdef1ghij2klmno3pqr4");
    assert_eq!(
        (rec["from_sip_user"].as_str(), rec["to_sip_user"].as_str()),
        (Some("+12065550100"), Some("+12065550101"))
    );
    assert_eq!(rec["call_id"].as_str().map(str::len), Some(36), "TransactionId is a UUID");
    // Countries from the numbering plan (both numbers are +1 206, Seattle).
    assert_eq!(
        (rec["from_country"].as_str(), rec["to_country"].as_str()),
        (Some("US"), Some("US")),
        "{rec}"
    );
    assert!(gw.log().contains("media relay ended"), "{}", gw.log());
    // The same counts reach the CloudWatch-named metrics (formats.md §6).
    let m = gw.metrics();
    let labels = "{voice_connector_id=\"abcdef1ghij2klmno3pqr4\",region=\"us-east-1\"}";
    for name in ["customer_to_vc", "vc_to_remote", "remote_to_vc", "vc_to_customer"] {
        let line = format!("voicegw_{name}_rtp_packets_total{labels} {packets}");
        assert!(m.contains(&line), "{line} missing from:\n{m}");
    }
    assert!(m.contains(&format!("voicegw_customer_to_vc_packets_lost_total{labels} 0")), "{m}");
    assert!(m.contains(&format!("voicegw_customer_to_vc_jitter{labels} {jitter}")), "{m}");
    assert!(
        m.contains("# HELP voicegw_rtt_between_vc_and_customer"),
        "declared even before a value: {m}"
    );
    assert!(
        m.contains("voicegw_media_ports_in_use{voice_connector_id=\"\",region=\"\"} 0"),
        "ports released: {m}"
    );
}

#[test]
fn silent_answered_calls_are_hung_up_on_both_legs() {
    if !require("sipp") {
        return;
    }
    // Neither SIPp sends media; after 2 s of silence voicegw sends BYE to both, which both
    // scenarios expect (the PBX as "callee hangs up", the carrier as "caller hangs up").
    let gw = Gateway::start("127.0.0.26", |c| {
        c.replace("inactivity_timeout_secs = 300", "inactivity_timeout_secs = 2")
    });
    let ip = gw.ip.clone();
    let mut c_args = carrier_args(&ip);
    c_args.extend(["-m", "1"].map(String::from));
    let cargs: Vec<&str> = c_args.iter().map(String::as_str).collect();
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &cargs);
    let mut p_args = pbx_args(&ip);
    p_args.extend(["-m", "1"].map(String::from));
    let pargs: Vec<&str> = p_args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let caller = run_sipp(&gw.dir, "pbx", "pbx_callee_bye.xml", &pargs, Duration::from_secs(20));
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!(
        (caller.successful, callee.successful),
        (1, 1),
        "{caller:#?}\n{callee:#?}\n{}",
        gw.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "hung up after about 2 s, took {:?}",
        started.elapsed()
    );
    assert!(gw.log().contains("media inactivity"), "{}", gw.log());
}
