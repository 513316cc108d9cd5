//! Garbage on every transport is answered 400 or dropped and counted, never a crash; SIGTERM
//! drains (new calls refused with 503, calls in progress finish) and exits.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use harness::{carrier_args, pbx_args, require, run_sipp, Gateway, Sipp};

fn options(ip: &str, branch: &str, transport: &str) -> String {
    format!("OPTIONS sip:{ip} SIP/2.0\r\nVia: SIP/2.0/{transport} {ip}:5999;branch=z9hG4bK{branch}\r\nFrom: <sip:t@{ip}>;tag=1\r\nTo: <sip:{ip}>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
}

fn udp_exchange(sock: &UdpSocket, to: &str, msg: &[u8]) -> Option<String> {
    sock.send_to(msg, to).ok()?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}

#[test]
fn garbage_is_answered_or_dropped_and_counted() {
    let gw = Gateway::start("127.0.0.19", |c| c);
    let ip = gw.ip.clone();
    let target = format!("{ip}:5060");
    let sock = UdpSocket::bind(format!("{ip}:0")).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    // Unparseable but addressable: 400 with a Warning naming the fault.
    let bad = options(&ip, "bad1", "UDP").replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
    let r = udp_exchange(&sock, &target, bad.as_bytes()).expect("a 400");
    assert!(r.starts_with("SIP/2.0 400"), "{r}");
    assert!(r.contains("Warning: 399 voicegw"), "{r}");
    // Binary junk and a truncated body: dropped or answered 400, never a crash.
    for junk in [
        &b"\x00\x01\x02\xff\xfe"[..],
        b"INVITE sip:x SIP/2.0\r\nContent-Length: 9999\r\n\r\nabc",
        &[b'A'; 3000],
    ] {
        sock.send_to(junk, &target).expect("send");
    }
    // The truncated INVITE has a readable request line: answered 400 at its source even
    // without Via, From, To, Call-ID or CSeq; the binary junk gets nothing.
    let mut answers = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        answers.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(
        answers[0].starts_with("SIP/2.0 400") && answers[0].contains("Content-Length"),
        "{answers:?}"
    );
    let r = udp_exchange(&sock, &target, options(&ip, "ok1", "UDP").as_bytes())
        .expect("still alive on UDP");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");

    // TCP: a framing error (oversized Content-Length) closes the connection and is counted.
    let mut tcp = TcpStream::connect(&target).expect("tcp");
    tcp.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    tcp.write_all(b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n").expect("write");
    let mut buf = [0u8; 64];
    assert_eq!(tcp.read(&mut buf).unwrap_or(0), 0, "connection should be closed");
    // A keep-alive ping on a fresh connection is answered with a pong, then OPTIONS works.
    let mut tcp = TcpStream::connect(&target).expect("tcp");
    tcp.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    tcp.write_all(b"\r\n\r\n").expect("ping");
    let n = tcp.read(&mut buf).expect("pong");
    assert_eq!(&buf[..n], b"\r\n");
    tcp.write_all(options(&ip, "ok2", "TCP").as_bytes()).expect("write");
    let mut resp = vec![0u8; 2048];
    let n = tcp.read(&mut resp).expect("200 over TCP");
    assert!(String::from_utf8_lossy(&resp[..n]).starts_with("SIP/2.0 200"));
    // TLS port: a plain-text client fails the handshake; counted, gateway fine.
    let mut tls = TcpStream::connect(format!("{ip}:5061")).expect("tls port");
    tls.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let _ = tls.write_all(options(&ip, "plain", "TLS").as_bytes());
    let _ = tls.read(&mut buf);
    std::thread::sleep(Duration::from_millis(300));

    let m = gw.metrics();
    let value = |name: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    assert!(value("voicegw_sip_bad_requests_total") >= 1.0, "{m}");
    assert!(value("voicegw_sip_dropped_messages_total") >= 2.0, "{m}");
    assert!(value("voicegw_sip_transport_errors_total") >= 2.0, "{m}");
    assert!(value("voicegw_sip_2xx_codes_total") >= 2.0, "{m}");
}

#[test]
fn sigterm_refuses_new_calls_and_lets_calls_finish() {
    if !require("sipp") {
        return;
    }
    let mut gw = Gateway::start("127.0.0.20", |c| {
        c.replace("drain_timeout_secs = 40", "drain_timeout_secs = 20")
    });
    let ip = gw.ip.clone();
    let mut c_args = carrier_args(&ip);
    c_args.extend(["-t".into(), "u1".into(), "-m".into(), "3".into()]);
    let cargs: Vec<&str> = c_args.iter().map(String::as_str).collect();
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &cargs);
    // Three 3-second calls in the background.
    let mut p_args = pbx_args(&ip);
    p_args.extend([
        "-t".into(),
        "u1".into(),
        "-m".into(),
        "3".into(),
        "-r".into(),
        "10".into(),
        "-d".into(),
        "3000".into(),
    ]);
    let dir = gw.dir.clone();
    let caller = std::thread::spawn(move || {
        let args: Vec<&str> = p_args.iter().map(String::as_str).collect();
        run_sipp(&dir, "pbx", "pbx_caller_bye.xml", &args, Duration::from_secs(30))
    });
    std::thread::sleep(Duration::from_millis(1000));
    let _ = std::process::Command::new("kill").arg("-TERM").arg(gw.child.id().to_string()).status();
    std::thread::sleep(Duration::from_millis(200));
    // A new call during the drain: 503 with Retry-After.
    let sock = UdpSocket::bind(format!("{ip}:0")).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let invite = format!("INVITE sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5999;branch=z9hG4bKdrain\r\nFrom: <sip:+12065550100@{ip}>;tag=d\r\nTo: <sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local>\r\nCall-ID: drain-1\r\nCSeq: 1 INVITE\r\nContact: <sip:d@{ip}:5999>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    let r =
        udp_exchange(&sock, &format!("{ip}:5060"), invite.as_bytes()).expect("503 during drain");
    assert!(r.starts_with("SIP/2.0 503"), "{r}");
    assert!(r.contains("Retry-After:"), "{r}");
    let caller = caller.join().expect("caller thread");
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!(
        (caller.successful, caller.failed),
        (3, 0),
        "calls in progress must finish: {caller:#?} {callee:#?}"
    );
    let code = gw.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0), "voicegw should exit 0 once drained: {}", gw.log());
    assert!(gw.log().contains("drained"), "{}", gw.log());
}

#[test]
fn idle_connections_are_closed_and_the_connection_limit_holds() {
    let gw = Gateway::start("127.0.0.23", |c| {
        c.replace("idle_connection_secs = 300", "idle_connection_secs = 1")
            .replace("max_connections = 4096", "max_connections = 3")
    });
    let target = format!("{}:5060", gw.ip);
    let mut buf = [0u8; 16];
    // Three connections are accepted and served; a fourth is closed at once.
    let mut held: Vec<TcpStream> =
        (0..3).map(|_| TcpStream::connect(&target).expect("tcp")).collect();
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
        s.write_all(b"\r\n\r\n").expect("ping");
        assert_eq!(s.read(&mut buf).expect("pong"), 2);
    }
    let mut fourth = TcpStream::connect(&target).expect("tcp accept");
    fourth.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let _ = fourth.write_all(b"\r\n\r\n");
    assert_eq!(fourth.read(&mut buf).unwrap_or(0), 0, "the fourth connection should be refused");
    // After 1 s without traffic the held connections are closed by the gateway.
    std::thread::sleep(Duration::from_millis(1500));
    for s in &mut held {
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "idle connection should be closed");
    }
    // And new connections are accepted again.
    let mut again = TcpStream::connect(&target).expect("tcp");
    again.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    again.write_all(b"\r\n\r\n").expect("ping");
    assert_eq!(again.read(&mut buf).expect("pong"), 2);
}
