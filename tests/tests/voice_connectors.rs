//! Voice-connector policy with SIPp on both sides (formats.md §3): each rule's allowed and
//! refused case with its exact status code, origination failover and weights, groups,
//! emergency DNIS rewriting, termination health and configuration reload.

use std::path::PathBuf;
use std::time::Duration;

use harness::{
    carrier_args, expect_ok, http_get, password, pbx, pbx_args, refused_scenario, require,
    run_sipp, strs, tail, Gateway, Sipp, SippResult,
};

const VC: &str = "abcdef1ghij2klmno3pqr4";
const VC2: &str = "zyxwvu1ghij2klmno3pqr4";

#[test]
fn termination_source_and_digest_credentials() {
    if !require("sipp") {
        return;
    }
    let pw = password();
    let gw = Gateway::start("127.0.0.40", |c| {
        c.replace("CidrAllowedList = [\"127.0.0.0/8\"]", "CidrAllowedList = [\"127.0.0.40/32\"]").replace(
            "RequireEncryption = false",
            &format!("RequireEncryption = false\nCredentials = [{{ Username = \"pbx1\", Password = \"{pw}\" }}]"),
        )
    });
    assert!(std::fs::read_to_string(gw.dir.join("voicegw.toml"))
        .unwrap()
        .contains("127.0.0.40/32"));
    // Wrong source: 403, before credentials are asked for.
    let s403 = refused_scenario(&gw, 403);
    let mut args = pbx_args("127.0.0.41");
    args[0] = "127.0.0.40:5060".into();
    args.extend(["-m", "2", "-r", "10", "-timeout", "20s", "-timeout_error"].map(String::from));
    let r = run_sipp(
        &gw.dir,
        "wrong-source",
        s403.to_str().unwrap(),
        &strs(&args),
        Duration::from_secs(25),
    );
    expect_ok(&r, 2, &gw);
    // No credentials: 407.
    let r = pbx(&gw, "no-credentials", refused_scenario(&gw, 407).to_str().unwrap(), 2, &[]);
    expect_ok(&r, 2, &gw);
    // Wrong password: challenged again.
    let r =
        pbx(&gw, "wrong-credentials", "pbx_auth_refused.xml", 2, &["-au", "pbx1", "-ap", "wrong"]);
    expect_ok(&r, 2, &gw);
    // Right password: the call goes through to the carrier (SIPp answers the digest challenge).
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m", "3"].map(String::from));
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &strs(&c));
    let r = pbx(&gw, "right-credentials", "pbx_auth.xml", 3, &["-au", "pbx1", "-ap", &pw]);
    expect_ok(&r, 3, &gw);
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!(callee.successful, 3, "{callee:#?}");
    assert!(gw.log().contains("wrong user name or password"), "{}", tail(&gw.log()));
    // Refusals counted (the 403s); challenges are not failed calls.
    assert_eq!(gw.metric("voicegw_outbound_call_failures_total", VC), 2.0, "{}", gw.metrics());
    assert_eq!(gw.metric("voicegw_outbound_calls_answered_total", VC), 3.0);
    // Per voice connector SIP codes sent: 407 ×9 (2 + 2·2 + 3 challenges) and 403 ×2;
    // 200 ×6 (3 INVITEs, 3 BYEs); 100 and 180 for each of the 3 calls that went through.
    assert_eq!(gw.metric("voicegw_sip_4xx_codes_total", VC), 11.0, "{}", gw.metrics());
    assert_eq!(gw.metric("voicegw_sip_2xx_codes_total", VC), 6.0);
    assert_eq!(gw.metric("voicegw_sip_1xx_codes_total", VC), 6.0);
}

#[test]
fn termination_calling_regions_e164_cps_emergency_and_health() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.42", |c| {
        c.replace("CpsLimit = 1000", "CpsLimit = 5\nDefaultPhoneNumber = \"+12065550177\"")
            .replace(
                "[VoiceConnectors.LoggingConfiguration]",
                "[VoiceConnectors.EmergencyCallingConfiguration]\nDNIS = [{ EmergencyPhoneNumber = \"+12065550911\", TestPhoneNumber = \"+12065550933\", CallingCountry = \"US\" }]\n\n[VoiceConnectors.LoggingConfiguration]",
            )
    });
    // Destination in a country outside CallingRegions (GB): 403 with the reason.
    let r =
        pbx(&gw, "gb", refused_scenario(&gw, 403).to_str().unwrap(), 1, &["-s", "+442079460000"]);
    expect_ok(&r, 1, &gw);
    assert!(
        gw.log().contains("destination country GB is not in CallingRegions"),
        "{}",
        tail(&gw.log())
    );
    // Not E.164: 484.
    let r = pbx(
        &gw,
        "not-e164",
        refused_scenario(&gw, 484).to_str().unwrap(),
        1,
        &["-s", "2065550101"],
    );
    expect_ok(&r, 1, &gw);

    // 911 goes to the carrier as the DNIS number, with the caller ID override.
    std::thread::sleep(Duration::from_millis(1100)); // a fresh CPS second
    let msgs = gw.dir.join("carrier-911-messages.log");
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m", "1", "-trace_msg", "-message_file"].map(String::from));
    c.push(msgs.display().to_string());
    let callee = Sipp::spawn(&gw.dir, "carrier-911", "carrier_answer.xml", &strs(&c));
    let r = pbx(&gw, "dial-911", "pbx_caller_bye.xml", 1, &["-s", "911"]);
    expect_ok(&r, 1, &gw);
    callee.wait(Duration::from_secs(10));
    let seen = std::fs::read_to_string(&msgs).unwrap_or_default();
    assert!(seen.contains("INVITE sip:+12065550911@127.0.0.42:5080 SIP/2.0"), "{seen}");
    assert!(seen.contains("From: \"PBX\" <sip:+12065550177@"), "{seen}");

    // CPS: 30 calls offered at 100/s against CpsLimit 5; the excess gets 503 + Retry-After.
    std::thread::sleep(Duration::from_millis(1100));
    let callee =
        Sipp::spawn(&gw.dir, "carrier-cps", "carrier_answer.xml", &strs(&carrier_args(&gw.ip)));
    let mut args = pbx_args(&gw.ip);
    args.extend(["-m", "30", "-r", "100", "-timeout", "30s", "-timeout_error"].map(String::from));
    let r =
        run_sipp(&gw.dir, "cps", "pbx_maybe_throttled.xml", &strs(&args), Duration::from_secs(35));
    expect_ok(&r, 30, &gw);
    drop(callee);
    let throttles = gw.metric("voicegw_throttles_total", VC);
    let answered = gw.metric("voicegw_outbound_calls_answered_total", VC);
    // 911 + the CPS run: answered + throttled = 31; at 5/s over ~0.3 s, most are throttled.
    assert_eq!(answered + throttles, 31.0, "{}", gw.metrics());
    assert!(throttles >= 15.0 && answered >= 6.0, "throttles {throttles}, answered {answered}");

    // OPTIONS from the PBX: 200, and recorded as the voice connector's termination health.
    let sock = std::net::UdpSocket::bind("127.0.0.42:5099").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let opt = format!("OPTIONS sip:{VC}.voiceconnector.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.42:5099;branch=z9hG4bKopt\r\nFrom: <sip:pbx@127.0.0.42>;tag=o\r\nTo: <sip:{VC}.voiceconnector.local>\r\nCall-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    sock.send_to(opt.as_bytes(), "127.0.0.42:5060").unwrap();
    let r = harness::read_until(&sock, "SIP/2.0 200");
    assert!(r.contains("Allow:"), "{r}");
    let body = http_get("127.0.0.42:9100", &format!("/voice-connectors/{VC}/termination/health"));
    let v: serde_json::Value = serde_json::from_str(body.trim()).expect(&body);
    assert_eq!(v["TerminationHealth"]["Source"], "127.0.0.42", "{body}");
    assert!(v["TerminationHealth"]["Timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
}

#[test]
fn encryption_required_and_disabled_connectors() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.43", |c| {
        c.replace("RequireEncryption = false", "RequireEncryption = true")
            .replace("Port = 5090, Protocol = \"UDP\"", "Port = 5090, Protocol = \"TCP\"")
    });
    let r = pbx(&gw, "udp-encrypted", refused_scenario(&gw, 488).to_str().unwrap(), 1, &[]);
    expect_ok(&r, 1, &gw);
    drop(gw);

    let gw = Gateway::start("127.0.0.44", |c| c.replace("Disabled = false", "Disabled = true"));
    let r = pbx(&gw, "termination-disabled", refused_scenario(&gw, 403).to_str().unwrap(), 1, &[]);
    expect_ok(&r, 1, &gw);
    assert!(gw.log().contains("termination disabled"), "{}", tail(&gw.log()));
    // Origination disabled: the carrier's call to the number is refused 403.
    let mut args = vec![
        "127.0.0.44:5060".to_string(),
        "-sf".into(),
        refused_scenario(&gw, 403).display().to_string(),
    ];
    args.extend(
        [
            "-i",
            "127.0.0.44",
            "-p",
            "5080",
            "-s",
            "+12065550100",
            "-key",
            "vc_host",
            "127.0.0.44",
            "-m",
            "1",
            "-timeout",
            "20s",
            "-timeout_error",
        ]
        .map(String::from),
    );
    let r = run_sipp(&gw.dir, "origination-disabled", "", &strs(&args), Duration::from_secs(25));
    expect_ok(&r, 1, &gw);
    assert!(gw.log().contains("origination disabled"), "{}", tail(&gw.log()));
}

/// SIPp's built-in UAC as the carrier calling +12065550100 `calls` times at `rate`/s.
fn carrier_uac_args(ip: &str, calls: u32, rate: u32) -> Vec<String> {
    let mut a: Vec<String> =
        [&format!("{ip}:5060"), "-sn", "uac", "-i", ip, "-p", "5080"].map(String::from).to_vec();
    a.extend(
        ["-s", "+12065550100", "-l", "500", "-timeout", "60s", "-timeout_error"].map(String::from),
    );
    a.extend(["-m".into(), calls.to_string(), "-r".into(), rate.to_string()]);
    a
}

/// The carrier calls +12065550100 `calls` times and the result is awaited.
fn carrier_calls(gw: &Gateway, name: &str, calls: u32, rate: u32) -> SippResult {
    let args = carrier_uac_args(&gw.ip, calls, rate);
    run_sipp(&gw.dir, name, "", &strs(&args), Duration::from_secs(65))
}

fn uas(gw: &Gateway, name: &str, port: u16) -> Sipp {
    Sipp::spawn(&gw.dir, name, "carrier_answer.xml", &["-i", &gw.ip, "-p", &port.to_string()])
}

#[test]
fn origination_fails_over_from_a_dead_route_and_a_503_to_a_live_one() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.45", |c| {
        c.replace(
            "  { Host = \"127.0.0.45\", Port = 5090, Protocol = \"UDP\", Priority = 1, Weight = 1 },",
            "  { Host = \"127.0.0.45\", Port = 5095, Protocol = \"UDP\", Priority = 1, Weight = 1 },\n  { Host = \"127.0.0.45\", Port = 5096, Protocol = \"UDP\", Priority = 2, Weight = 1 },\n  { Host = \"127.0.0.45\", Port = 5090, Protocol = \"UDP\", Priority = 3, Weight = 1 },",
        )
    });
    // 5095: nobody listens. 5096: answers 503. 5090: the PBX answers.
    let refuser =
        Sipp::spawn(&gw.dir, "route-503", "carrier_503.xml", &["-i", "127.0.0.45", "-p", "5096"]);
    let pbx = uas(&gw, "route-live", 5090);
    let started = std::time::Instant::now();
    let r = carrier_calls(&gw, "carrier", 3, 10);
    assert_eq!((r.successful, r.failed), (3, 0), "{r:#?}\n{}", tail(&gw.log()));
    // ICMP port unreachable fails the dead route at once (Timer B would take 32 s).
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(gw.log().contains("ICMP: Connection refused"), "{}", tail(&gw.log()));
    drop(pbx);
    drop(refuser);
    let log = gw.log();
    // Each call: no listener on the first route, then 503, then answered.
    assert_eq!(log.matches("next hop failed").count(), 6, "{}", tail(&log));
    assert!(
        log.contains("failed_status=Some(503)") && log.contains("failed_status=None"),
        "{}",
        tail(&log)
    );
    assert_eq!(gw.metric("voicegw_inbound_calls_answered_total", VC), 3.0);
}

#[test]
fn group_fails_over_to_its_second_voice_connector() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.46", |c| {
        let second = format!(
            "[[VoiceConnectors]]\nVoiceConnectorId = \"{VC2}\"\n[VoiceConnectors.Origination]\nRoutes = [{{ Host = \"127.0.0.46\", Port = 5090, Protocol = \"UDP\" }}]\n\n[[VoiceConnectorGroups]]\nVoiceConnectorGroupId = \"group-1\"\nName = \"two regions\"\nVoiceConnectorItems = [{{ VoiceConnectorId = \"{VC}\", Priority = 1 }}, {{ VoiceConnectorId = \"{VC2}\", Priority = 2 }}]\n\n[[Carriers]]"
        );
        c.replace(
            "Port = 5090, Protocol = \"UDP\", Priority = 1",
            "Port = 5096, Protocol = \"UDP\", Priority = 1",
        )
        .replace("[[Carriers]]", &second)
        .replace(
            "CallingName = \"voicegw demo\"\nVoiceConnectorId = \"abcdef1ghij2klmno3pqr4\"",
            "CallingName = \"voicegw demo\"\nVoiceConnectorGroupId = \"group-1\"",
        )
    });
    let refuser =
        Sipp::spawn(&gw.dir, "vc1-503", "carrier_503.xml", &["-i", "127.0.0.46", "-p", "5096"]);
    let pbx = uas(&gw, "vc2-pbx", 5090);
    let r = carrier_calls(&gw, "carrier", 4, 10);
    assert_eq!((r.successful, r.failed), (4, 0), "{r:#?}\n{}", tail(&gw.log()));
    drop(pbx);
    drop(refuser);
    assert_eq!(gw.metric("voicegw_inbound_calls_answered_total", VC2), 4.0, "{}", gw.metrics());
    assert_eq!(gw.metric("voicegw_inbound_calls_answered_total", VC), 0.0);
    assert!(gw.log().contains(&format!("voice_connector_id=\"{VC2}\"")), "{}", tail(&gw.log()));
}

#[test]
fn equal_priority_routes_split_calls_by_weight() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.47", |c| {
        c.replace(
            "  { Host = \"127.0.0.47\", Port = 5090, Protocol = \"UDP\", Priority = 1, Weight = 1 },",
            "  { Host = \"127.0.0.47\", Port = 5090, Protocol = \"UDP\", Priority = 1, Weight = 3 },\n  { Host = \"127.0.0.47\", Port = 5091, Protocol = \"UDP\", Priority = 1, Weight = 1 },",
        )
    });
    let a = uas(&gw, "route-w3", 5090);
    let b = uas(&gw, "route-w1", 5091);
    let r = carrier_calls(&gw, "carrier", 2000, 200);
    assert_eq!((r.successful, r.failed), (2000, 0), "{r:#?}\n{}", tail(&gw.log()));
    drop((a, b));
    // Where each call went first, from voicegw's log (SIPp's UAS statistics lag a second).
    let log = gw.log();
    let started: Vec<&str> = log.lines().filter(|l| l.contains("call started")).collect();
    let to_a = started.iter().filter(|l| l.contains("next_hop=UDP:127.0.0.47:5090")).count();
    let to_b = started.iter().filter(|l| l.contains("next_hop=UDP:127.0.0.47:5091")).count();
    assert_eq!((to_a + to_b, started.len()), (2000, 2000), "{}", tail(&log));
    assert!(!log.contains("next hop failed"), "every first hop answered");
    let share = to_a as f64 / 2000.0;
    assert!(
        (share - 0.75).abs() <= 0.05,
        "weight 3 route took {share} of the calls (expected 0.75 ± 0.05)"
    );
}

#[test]
fn sighup_reload_applies_to_new_calls_and_keeps_calls_in_progress() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.48", |c| c);
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m", "1"].map(String::from));
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &strs(&c));
    // A call that lasts 3 s, started before the reload.
    let mut args = pbx_args(&gw.ip);
    args.extend(["-m", "1", "-d", "3000", "-timeout", "30s", "-timeout_error"].map(String::from));
    let long = Sipp::spawn(&gw.dir, "long-call", "pbx_caller_bye.xml", &strs(&args));
    std::thread::sleep(Duration::from_millis(1000));
    let path = gw.dir.join("voicegw.toml");
    let cfg = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        cfg.replace(
            "CpsLimit = 1000\nCallingRegions = [\"US\"]",
            "CpsLimit = 1000\nCallingRegions = [\"CA\"]",
        ),
    )
    .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(gw.log().contains("configuration reloaded"), "{}", tail(&gw.log()));
    // New calls to the US are refused now; the call in progress finishes normally.
    let r =
        pbx(&gw, "after-reload", refused_scenario(&gw, 403).to_str().unwrap(), 1, &["-p", "5092"]);
    expect_ok(&r, 1, &gw);
    let long = long.wait(Duration::from_secs(10));
    assert_eq!((long.successful, long.failed), (1, 0), "{long:#?}");
    assert_eq!(callee.wait(Duration::from_secs(5)).successful, 1);
    // A broken file is refused and the running configuration stays.
    std::fs::write(&path, "this is not toml").unwrap();
    std::process::Command::new("kill").args(["-HUP", &gw.child.id().to_string()]).status().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(gw.log().contains("configuration not reloaded"), "{}", tail(&gw.log()));
    let r = pbx(
        &gw,
        "after-bad-reload",
        refused_scenario(&gw, 403).to_str().unwrap(),
        1,
        &["-p", "5092"],
    );
    expect_ok(&r, 1, &gw);
}

/// A response to a request read by [`harness::TlsClient::expect`]: its Vias, From, To (with
/// `to_tag`), Call-ID and CSeq, then `extra` lines and `body`.
fn response_to(req: &[String], status: &str, to_tag: &str, extra: &str, body: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for l in req {
        let name = l.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" => out += &format!("{l}\r\n"),
            "to" | "t" if l.contains("tag=") => out += &format!("{l}\r\n"),
            "to" | "t" => out += &format!("{l};tag={to_tag}\r\n"),
            _ => {}
        }
    }
    out + extra + &format!("Content-Length: {}\r\n\r\n{body}", body.len())
}

/// Runs `openssl` with `args`; it must succeed.
fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `openssl req` with a new P-256 key written to `key`: `how` is `-x509 -subj …` for a
/// self-signed certificate or `-new -subj …` for a signing request, written to `out`.
fn new_key_and_cert(how: &[&str], key: &std::path::Path, out: &std::path::Path) {
    let (key, out) = (key.display().to_string(), out.display().to_string());
    let mut args = vec!["req", "-days", "1", "-nodes", "-newkey", "ec"];
    args.extend(["-pkeyopt", "ec_paramgen_curve:prime256v1"]);
    args.extend_from_slice(how);
    args.extend(["-keyout", &key, "-out", &out]);
    openssl(&args);
}

#[test]
fn origination_reaches_an_encrypted_pbx_over_tls_with_srtp() {
    if !require("sipp") || !require("openssl") {
        return;
    }
    let ip = "127.0.0.49";
    let dir = std::env::temp_dir().join(format!("voicegw-pbx-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A test CA and the PBX's certificate signed by it (webpki does not take a self-signed
    // end-entity certificate as its own trust anchor).
    let (ca_cert, ca_key) = (dir.join("ca-cert.pem"), dir.join("ca-key.pem"));
    let (cert, key, csr) = (dir.join("pbx-cert.pem"), dir.join("pbx-key.pem"), dir.join("pbx.csr"));
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n")).unwrap();
    let p = |x: &PathBuf| x.display().to_string();
    new_key_and_cert(&["-x509", "-subj", "/CN=voicegw test CA"], &ca_key, &ca_cert);
    new_key_and_cert(&["-new", "-subj", "/CN=test-pbx"], &key, &csr);
    openssl(&[
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca_cert),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    let ca = ca_cert.display().to_string();
    let gw = Gateway::start(ip, |c| {
        c.replace("RequireEncryption = false", "RequireEncryption = true")
            .replace("Port = 5090, Protocol = \"UDP\"", "Port = 5091, Protocol = \"TCP\"")
            .replace(
                "drain_timeout_secs = 40",
                &format!("drain_timeout_secs = 40\ntls_ca_file = \"{ca}\""),
            )
    });
    let mut pbx = harness::TlsClient::server(&format!("{ip}:5091"), &cert, &key);
    std::thread::sleep(Duration::from_millis(300));
    let mut args = carrier_uac_args(ip, 1, 10);
    args.extend(["-d", "500"].map(String::from));
    let carrier = Sipp::spawn(&gw.dir, "carrier", "", &strs(&args));
    let invite = pbx.expect_full("INVITE sip:+12065550100@", Duration::from_secs(10));
    assert!(
        invite.contains("INVITE sip:+12065550100@127.0.0.49:5091;transport=tls SIP/2.0"),
        "{invite}"
    );
    assert!(invite.contains("Via: SIP/2.0/TLS"), "{invite}");
    assert!(
        invite.contains("RTP/SAVP") && invite.contains("a=crypto:"),
        "SRTP towards the encrypted PBX: {invite}"
    );
    let head: Vec<String> =
        invite.split("\r\n\r\n").next().unwrap().lines().map(String::from).collect();
    let sdp = format!("v=0\r\no=pbx 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 7600 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS\r\n");
    let contact =
        format!("Contact: <sip:pbx@{ip}:5091;transport=tls>\r\nContent-Type: application/sdp\r\n");
    pbx.send(&response_to(&head, "200 OK", "pbx1", &contact, &sdp));
    pbx.expect("ACK sip:pbx@", Duration::from_secs(5));
    let bye = pbx.expect("BYE sip:pbx@", Duration::from_secs(10));
    pbx.send(&response_to(&bye, "200 OK", "pbx1", "", ""));
    let carrier = carrier.wait(Duration::from_secs(10));
    assert_eq!((carrier.successful, carrier.failed), (1, 0), "{carrier:#?}\n{}", tail(&gw.log()));
    assert_eq!(gw.metric("voicegw_inbound_calls_answered_total", VC), 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn origination_tls_to_an_untrusted_certificate_fails_over() {
    if !require("sipp") || !require("openssl") {
        return;
    }
    // The PBX on 5091 presents a certificate voicegw does not trust (no tls_ca_file: system
    // roots): the handshake fails, which is a transport error, and the call fails over to the
    // second route.
    let ip = "127.0.0.50";
    let dir = std::env::temp_dir().join(format!("voicegw-pbx-untrusted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    new_key_and_cert(&["-x509", "-subj", "/CN=untrusted"], &key, &cert);
    let gw = Gateway::start(ip, |c| {
        c.replace(
            &format!("  {{ Host = \"{ip}\", Port = 5090, Protocol = \"UDP\", Priority = 1, Weight = 1 }},"),
            &format!("  {{ Host = \"{ip}\", Port = 5091, Protocol = \"TLS\", Priority = 1, Weight = 1 }},\n  {{ Host = \"{ip}\", Port = 5090, Protocol = \"UDP\", Priority = 2, Weight = 1 }},"),
        )
    });
    let _untrusted = harness::TlsClient::server(&format!("{ip}:5091"), &cert, &key);
    let pbx = uas(&gw, "pbx-udp", 5090);
    std::thread::sleep(Duration::from_millis(300));
    let r = carrier_calls(&gw, "carrier", 1, 1);
    assert_eq!((r.successful, r.failed), (1, 0), "{r:#?}\n{}", tail(&gw.log()));
    drop(pbx);
    let log = gw.log();
    assert!(log.contains("TLS handshake"), "{}", tail(&log));
    assert!(log.contains("next hop failed"), "{}", tail(&log));
    let _ = std::fs::remove_dir_all(&dir);
}
