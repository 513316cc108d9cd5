//! Call detail records (formats.md §7) after SIPp calls of every outcome: one record per call,
//! field by field against formats.md, with the right `Status`, `StatusMessage`, durations and
//! key layout; CDR metrics; 407 challenges folded into the authenticated call.

use std::collections::HashMap;
use std::time::Duration;

use harness::{
    carrier_args, check_cdr, expect_ok, password, pbx_args, refused_scenario, require, run_sipp,
    strs, tail, Gateway, Sipp, SippResult,
};
use serde_json::Value;

const VC: &str = "abcdef1ghij2klmno3pqr4";
const VC2: &str = "zyxwvu1ghij2klmno3pqr4";

/// `calls` PBX calls of `scenario`, all expected to succeed.
fn pbx(gw: &Gateway, name: &str, scenario: &str, calls: u32, extra: &[&str]) -> SippResult {
    let r = harness::pbx(gw, name, scenario, calls, extra);
    expect_ok(&r, calls as u64, gw);
    r
}

fn carrier(gw: &Gateway, name: &str, scenario: &str, calls: u32) -> Sipp {
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m".to_string(), calls.to_string()]);
    Sipp::spawn(&gw.dir, name, scenario, &strs(&c))
}

fn by_status(cdrs: &[(String, Value)]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for (_, v) in cdrs {
        let k =
            format!("{} {}", v["Status"].as_str().unwrap(), v["StatusMessage"].as_str().unwrap());
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

#[test]
fn every_call_outcome_leaves_exactly_one_record() {
    if !require("sipp") {
        return;
    }
    // A second voice connector with CpsLimit 1 for the throttled calls.
    let gw = Gateway::start("127.0.0.60", |c| {
        let second = c[c.find("[[VoiceConnectors]]").unwrap()..c.find("[[Carriers]]").unwrap()]
            .replace(VC, VC2)
            .replace("CpsLimit = 1000", "CpsLimit = 1")
            .replace("Name = \"loopback-demo\"", "Name = \"throttled\"");
        c.replace("[[Carriers]]", &format!("{second}[[Carriers]]"))
    });
    // 3 answered calls of 2 s.
    let callee = carrier(&gw, "carrier-answer", "carrier_answer.xml", 3);
    pbx(&gw, "answered", "pbx_caller_bye.xml", 3, &["-d", "2000"]);
    callee.wait(Duration::from_secs(10));
    // 2 cancelled while ringing.
    let callee = carrier(&gw, "carrier-cancel", "carrier_cancel.xml", 2);
    pbx(&gw, "cancelled", "pbx_cancel.xml", 2, &[]);
    callee.wait(Duration::from_secs(10));
    // 1 refused 403: destination country outside CallingRegions.
    let s403 = refused_scenario(&gw, 403);
    pbx(&gw, "gb", s403.to_str().unwrap(), 1, &["-s", "+442079460000"]);
    // 2 failed: the carrier refuses with 503 (relayed to the PBX as 500).
    let callee = carrier(&gw, "carrier-503", "carrier_503.xml", 2);
    let s500 = refused_scenario(&gw, 500);
    pbx(&gw, "carrier-refuses", s500.to_str().unwrap(), 2, &[]);
    callee.wait(Duration::from_secs(10));
    // 3 calls within 30 ms on the CpsLimit 1 voice connector: 1 answered, 2 throttled (503).
    let vc2_host = format!("{VC2}.voiceconnector.local");
    let callee = carrier(&gw, "carrier-vc2", "carrier_answer.xml", 1);
    pbx(
        &gw,
        "throttled",
        "pbx_maybe_throttled.xml",
        3,
        &["-key", "vc_host", &vc2_host, "-r", "100"],
    );
    callee.wait(Duration::from_secs(10));
    assert_eq!(gw.metric("voicegw_throttles_total", VC2), 2.0, "{}", gw.metrics());
    // 1 origination call: carrier → voicegw → PBX.
    let pbx_uas =
        Sipp::spawn(&gw.dir, "pbx-uas", "carrier_answer.xml", &["-i", &gw.ip, "-p", "5090"]);
    let args = [
        "127.0.0.60:5060",
        "-sn",
        "uac",
        "-i",
        "127.0.0.60",
        "-p",
        "5080",
        "-s",
        "+12065550100",
        "-m",
        "1",
        "-d",
        "1000",
        "-trace_msg",
        "-timeout",
        "20s",
        "-timeout_error",
    ];
    let r = run_sipp(&gw.dir, "origination", "", &args, Duration::from_secs(25));
    assert_eq!((r.successful, r.exit), (1, Some(0)), "{r:#?}");
    drop(pbx_uas);

    let total = 3 + 2 + 1 + 2 + 1 + 2 + 1;
    let cdrs = gw.cdrs(total, Duration::from_secs(10));
    assert_eq!(cdrs.len(), total, "{:#?}\n{}", cdrs, tail(&gw.log()));
    for (k, v) in &cdrs {
        check_cdr(k, v);
        assert_eq!(v["AwsAccountId"], "000000000000");
        assert_eq!(v["Region"], "us-east-1");
        assert_eq!(v["Streaming"], false);
        assert_eq!(v["SipAuthUser"], "");
    }
    let statuses = by_status(&cdrs);
    let want: HashMap<String, usize> = [
        ("Completed OK", 5),
        ("Failed Request Terminated", 2),
        ("Failed Forbidden", 1),
        ("Failed Service Unavailable", 4),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(statuses, want, "{cdrs:#?}");
    // One TransactionId per record.
    let mut ids: Vec<&str> =
        cdrs.iter().map(|(_, v)| v["TransactionId"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total);

    let term: Vec<&Value> = cdrs
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["Direction"] == "Outbound" && v["VoiceConnectorId"] == VC)
        .collect();
    assert_eq!(term.len(), 8);
    for v in &term {
        // SIPp's Call-IDs: <n>-<pid>@<ip>.
        assert!(v["CallId"].as_str().unwrap().ends_with("@127.0.0.60"), "{v}");
        assert_eq!(v["SourcePhoneNumber"], "+12065550100");
        assert_eq!(v["SourcePhoneNumberName"], "demo number");
        assert_eq!(v["SourceCountry"], "US");
    }
    let answered: Vec<&&Value> = term.iter().filter(|v| v["Status"] == "Completed").collect();
    assert_eq!(answered.len(), 3);
    for v in answered {
        // SIPp paused 2 s between its ACK and its BYE.
        let secs = v["BillableDurationSeconds"].as_u64().unwrap();
        assert!((1..=3).contains(&secs), "billed {secs} s for a 2 s call: {v}");
        assert_eq!(v["DestinationPhoneNumber"], "+12065550101");
        assert_eq!(v["DestinationCountry"], "US");
        assert_eq!(v["UsageType"], "USE1-US-US-outbound-minutes");
        let span = v["EndTimeEpochSeconds"].as_u64().unwrap()
            - v["StartTimeEpochSeconds"].as_u64().unwrap();
        assert!((1..=4).contains(&span), "{v}");
    }
    for v in term.iter().filter(|v| v["Status"] == "Failed") {
        assert_eq!(v["BillableDurationSeconds"], 0, "{v}");
    }
    let gb = term.iter().find(|v| v["StatusMessage"] == "Forbidden").unwrap();
    assert_eq!(gb["DestinationCountry"], "GB");
    assert_eq!(gb["UsageType"], "USE1-US-GB-outbound-minutes");
    let vc2: Vec<_> = cdrs.iter().filter(|(_, v)| v["VoiceConnectorId"] == VC2).collect();
    assert_eq!(vc2.len(), 3, "{vc2:#?}");
    assert_eq!(vc2.iter().filter(|(_, v)| v["StatusMessage"] == "Service Unavailable").count(), 2);
    // Origination: Inbound, the customer leg's Call-ID is the one the PBX saw.
    let inbound: Vec<&Value> =
        cdrs.iter().map(|(_, v)| v).filter(|v| v["Direction"] == "Inbound").collect();
    assert_eq!(inbound.len(), 1, "{cdrs:#?}");
    let o = inbound[0];
    assert_eq!(o["Status"], "Completed");
    assert_eq!(o["DestinationPhoneNumber"], "+12065550100");
    assert_eq!(o["DestinationPhoneNumberName"], "demo number");
    assert_eq!(o["UsageType"], "USE1-US-inbound-minutes");
    assert!(o["CallId"].as_str().unwrap().ends_with("@voicegw"), "{o}");
    let secs = o["BillableDurationSeconds"].as_u64().unwrap();
    assert!(secs <= 2, "{o}");

    // CDR process metrics (delivery is counted once the store has flushed the batch).
    let total = total as f64;
    assert_eq!(gw.process_metric("voicegw_cdrs_written_total"), total);
    assert_eq!(gw.wait_process_metric("voicegw_cdrs_delivered_total", total), total);
    assert_eq!(gw.wait_process_metric("voicegw_cdr_spool_records", 0.0), 0.0);
}

#[test]
fn a_challenge_and_its_authenticated_retry_are_one_call() {
    if !require("sipp") {
        return;
    }
    let pw = password();
    let gw = Gateway::start("127.0.0.61", |c| {
        c.replace("t1_ms = 500", "t1_ms = 100").replace(
            "RequireEncryption = false",
            &format!("RequireEncryption = false\nCredentials = [{{ Username = \"pbx1\", Password = \"{pw}\" }}]"),
        )
    });
    let callee = carrier(&gw, "carrier", "carrier_answer.xml", 2);
    pbx(&gw, "authenticated", "pbx_auth.xml", 2, &["-au", "pbx1", "-ap", &pw]);
    callee.wait(Duration::from_secs(10));
    // A 407 nobody answers: a refused call once 64·T1 (6.4 s here) has passed.
    let s407 = refused_scenario(&gw, 407);
    pbx(&gw, "unanswered-challenge", s407.to_str().unwrap(), 1, &[]);
    let cdrs = gw.cdrs(2, Duration::from_secs(5));
    assert_eq!(cdrs.len(), 2, "the challenge is not recorded before its wait: {cdrs:#?}");
    for (k, v) in &cdrs {
        check_cdr(k, v);
        assert_eq!(
            (v["Status"].as_str(), v["SipAuthUser"].as_str()),
            (Some("Completed"), Some("pbx1"))
        );
    }
    let cdrs = gw.cdrs(3, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 3, "{cdrs:#?}\n{}", tail(&gw.log()));
    let refused: Vec<_> = cdrs.iter().filter(|(_, v)| v["Status"] == "Failed").collect();
    assert_eq!(refused.len(), 1);
    let (k, v) = refused[0];
    check_cdr(k, v);
    assert_eq!(v["StatusMessage"], "Proxy Authentication Required");
    assert_eq!(v["SipAuthUser"], "");
}

/// kill -9 in the middle of 200 calls: after the restart, every call SIPp saw end has exactly
/// one record, the calls the crash cut are recorded as interrupted, and nothing is doubled.
#[test]
fn kill_9_during_a_load_loses_no_record_and_doubles_none() {
    if !require("sipp") {
        return;
    }
    let mut gw = Gateway::start("127.0.0.62", |c| c);
    let base =
        std::fs::read_to_string(harness::root().join("tests/sipp/pbx_caller_bye.xml")).unwrap();
    let logged = base.replace(
        "<recv response=\"200\" crlf=\"true\"/>\n</scenario>",
        "<recv response=\"200\" crlf=\"true\">\n    <action><log message=\"ENDED [call_id]\"/></action>\n  </recv>\n</scenario>",
    );
    assert_ne!(logged, base, "template changed");
    let scen = gw.dir.join("pbx_logged.xml");
    std::fs::write(&scen, logged).unwrap();
    let ended_log = gw.dir.join("ended.log");
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m", "200"].map(String::from));
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &strs(&c));
    let mut args = pbx_args(&gw.ip);
    args.extend(
        ["-m", "200", "-r", "50", "-l", "200", "-d", "1000", "-trace_logs", "-log_file"]
            .map(String::from),
    );
    args.push(ended_log.display().to_string());
    let mut a = strs(&args);
    a.insert(0, scen.to_str().unwrap());
    a.insert(0, "-sf");
    let caller = Sipp::spawn(&gw.dir, "pbx", "", &a);
    std::thread::sleep(Duration::from_millis(2700));
    gw.kill9();
    drop(caller);
    drop(callee);
    let ended: Vec<String> = std::fs::read_to_string(&ended_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENDED ").map(str::to_string))
        .collect();
    assert!(ended.len() >= 20, "too few calls ended before the kill: {}", ended.len());
    gw.restart();
    let started = gw.log().matches("call started").count();
    let cdrs = gw.cdrs(started, Duration::from_secs(15));
    let mut per_call: HashMap<&str, usize> = HashMap::new();
    for (k, v) in &cdrs {
        check_cdr(k, v);
        *per_call.entry(v["CallId"].as_str().unwrap()).or_insert(0) += 1;
    }
    for id in &ended {
        assert_eq!(per_call.get(id.as_str()), Some(&1), "call {id}: records {per_call:?}");
    }
    assert!(per_call.values().all(|&n| n == 1), "a call with two records: {per_call:?}");
    // Every call the first run started has its record: ended ones, and the cut ones.
    assert_eq!(cdrs.len(), started, "{}", tail(&gw.log()));
    let interrupted = cdrs
        .iter()
        .filter(|(_, v)| v["StatusMessage"].as_str().unwrap().starts_with("Interrupted"))
        .count();
    eprintln!(
        "kill -9: {} calls started, {} ended as SIPp saw, {interrupted} interrupted",
        started,
        ended.len()
    );
    // The rest ended in voicegw's eyes just before the kill, too late for SIPp to see it.
    let hidden = cdrs.len() - ended.len() - interrupted;
    assert!(hidden <= 3, "{hidden} records of calls neither ended nor interrupted: {cdrs:#?}");
    assert!(interrupted > 0, "the kill cut no call: {}", tail(&gw.log()));
    assert!(gw.log().contains("recorded as interrupted"), "{}", tail(&gw.log()));
}
