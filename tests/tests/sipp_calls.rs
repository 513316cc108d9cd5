//! Calls through voicegw with SIPp playing both the PBX (caller) and the carrier (callee).

use std::time::Duration;

use harness::{carrier_args, pbx_args, require, run_sipp, strs, tail, Gateway, Sipp, SippResult};

/// Runs `calls` calls at `rate`/s of the PBX scenario against the carrier scenario.
/// `transport` is SIPp's `-t` for both sides, or `pbx/carrier` (e.g. `t1/u1`) for each.
#[allow(clippy::too_many_arguments)]
fn run_pair(
    gw: &Gateway,
    pbx: &str,
    carrier: &str,
    calls: u32,
    rate: u32,
    transport: &str,
    extra_pbx: &[&str],
    limit: Duration,
) -> SippResult {
    let ip = gw.ip.clone();
    let m = calls.to_string();
    let r = rate.to_string();
    let (pbx_t, carrier_t) = transport.split_once('/').unwrap_or((transport, transport));
    let mut c_args = carrier_args(&ip);
    c_args.extend(["-t".into(), carrier_t.into(), "-m".into(), m.clone()]);
    let callee = Sipp::spawn(&gw.dir, "carrier", carrier, &strs(&c_args));
    let mut p_args = pbx_args(&ip);
    p_args.extend([
        "-t".into(),
        pbx_t.into(),
        "-m".into(),
        m.clone(),
        "-r".into(),
        r,
        "-l".into(),
        "1000".into(),
    ]);
    p_args.extend(["-timeout".into(), format!("{}s", limit.as_secs()), "-timeout_error".into()]);
    let mut args = strs(&p_args);
    args.extend_from_slice(extra_pbx);
    let caller = run_sipp(&gw.dir, "pbx", pbx, &args, limit + Duration::from_secs(5));
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!(
        (caller.successful, caller.failed),
        (calls as u64, 0),
        "PBX side: {caller:#?}\ncarrier side: {callee:#?}\nvoicegw log tail: {}",
        tail(&gw.log())
    );
    assert_eq!(caller.exit, Some(0), "{caller:#?}");
    assert_eq!((callee.successful, callee.failed), (calls as u64, 0), "carrier side: {callee:#?}");
    caller
}

#[test]
fn udp_500_calls_at_50_per_second() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.11", |c| c);
    run_pair(
        &gw,
        "pbx_caller_bye.xml",
        "carrier_answer.xml",
        500,
        50,
        "u1",
        &["-d", "200"],
        Duration::from_secs(60),
    );
    let m = gw.metrics();
    assert!(m.contains("voicegw_outbound_call_attempts_total{voice_connector_id=\"abcdef1ghij2klmno3pqr4\",region=\"us-east-1\"} 500"), "{m}");
    assert!(m.contains("voicegw_outbound_calls_answered_total{voice_connector_id=\"abcdef1ghij2klmno3pqr4\",region=\"us-east-1\"} 500"), "{m}");
    assert!(m.contains("voicegw_outbound_calls_active{voice_connector_id=\"abcdef1ghij2klmno3pqr4\",region=\"us-east-1\"} 0"), "{m}");
}

#[test]
fn tcp_500_calls_at_50_per_second() {
    if !require("sipp") {
        return;
    }
    // Carrier trunk over TCP as well: both legs on TCP.
    let gw = Gateway::start("127.0.0.12", |c| {
        c.replace("Port = 5080, Protocol = \"UDP\"", "Port = 5080, Protocol = \"TCP\"")
    });
    run_pair(
        &gw,
        "pbx_caller_bye.xml",
        "carrier_answer.xml",
        500,
        50,
        "t1",
        &["-d", "200"],
        Duration::from_secs(60),
    );
}

#[test]
fn cancel_before_answer() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.13", |c| c);
    run_pair(
        &gw,
        "pbx_cancel.xml",
        "carrier_cancel.xml",
        20,
        10,
        "u1",
        &[],
        Duration::from_secs(30),
    );
    let m = gw.metrics();
    assert!(m.contains("voicegw_outbound_call_failures_total{voice_connector_id=\"abcdef1ghij2klmno3pqr4\",region=\"us-east-1\"} 20"), "{m}");
}

#[test]
fn callee_hangs_up() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.14", |c| c);
    run_pair(
        &gw,
        "pbx_callee_bye.xml",
        "carrier_bye.xml",
        20,
        10,
        "u1",
        &[],
        Duration::from_secs(30),
    );
}

#[test]
fn caller_hangs_up_over_tcp_callee_over_udp() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.15", |c| c);
    // PBX on TCP, carrier on UDP: the B2BUA bridges transports.
    run_pair(
        &gw,
        "pbx_caller_bye.xml",
        "carrier_answer.xml",
        20,
        10,
        "t1/u1",
        &["-d", "100"],
        Duration::from_secs(30),
    );
}

#[test]
fn lost_200_ok_is_retransmitted() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.16", |c| c);
    let msg_file = gw.dir.join("pbx-messages.log");
    let msg_arg = msg_file.display().to_string();
    run_pair(
        &gw,
        "pbx_lost_200.xml",
        "carrier_answer.xml",
        10,
        5,
        "u1",
        &["-d", "100", "-trace_msg", "-message_file", &msg_arg],
        Duration::from_secs(30),
    );
    // SIPp's message trace lists every datagram it received, retransmissions included.
    let trace = std::fs::read_to_string(&msg_file).unwrap_or_default();
    let oks = trace
        .split("message received")
        .filter(|m| m.contains("SIP/2.0 200 OK") && m.contains("CSeq: 1 INVITE"))
        .count();
    assert!(oks >= 30, "voicegw should send each call's 200 three times (first + T1 + 2*T1) before the late ACK; SIPp saw {oks} for 10 calls");
}

#[test]
fn origination_from_the_carrier_reaches_the_pbx() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.21", |c| c);
    let ip = gw.ip.clone();
    // SIPp's built-in scenarios: the PBX answers on 5090, the carrier calls +12065550100.
    let pbx = Sipp::spawn(
        &gw.dir,
        "pbx-uas",
        "carrier_answer.xml",
        &["-i", &ip, "-p", "5090", "-m", "20"],
    );
    let carrier = run_sipp(
        &gw.dir,
        "carrier-uac",
        "",
        &[
            &format!("{ip}:5060"),
            "-sn",
            "uac",
            "-i",
            &ip,
            "-p",
            "5080",
            "-s",
            "+12065550100",
            "-m",
            "20",
            "-r",
            "10",
            "-timeout",
            "30s",
            "-timeout_error",
        ],
        Duration::from_secs(35),
    );
    let pbx = pbx.wait(Duration::from_secs(10));
    assert_eq!(
        (carrier.successful, carrier.failed, pbx.successful),
        (20, 0, 20),
        "{carrier:#?}\n{pbx:#?}"
    );
    let m = gw.metrics();
    assert!(m.contains("voicegw_inbound_calls_answered_total{voice_connector_id=\"abcdef1ghij2klmno3pqr4\",region=\"us-east-1\"} 20"), "{m}");
    // A number that is not associated: 404 (SIPp counts the call as failed).
    let unknown = run_sipp(
        &gw.dir,
        "carrier-404",
        "",
        &[
            &format!("{ip}:5060"),
            "-sn",
            "uac",
            "-i",
            &ip,
            "-p",
            "5080",
            "-s",
            "+12065550199",
            "-m",
            "1",
            "-timeout",
            "10s",
        ],
        Duration::from_secs(15),
    );
    assert_eq!(unknown.failed, 1, "{unknown:#?}");
    assert!(unknown.errors.contains("SIP/2.0 404"), "{unknown:#?}");
}
