//! A full call over TLS on 5061 with OpenSSL's `s_client` as the caller's TLS stack (not ours)
//! and SIPp as the carrier; plus an OPTIONS ping and the refusal of TLS 1.1.

use std::process::{Command, Stdio};
use std::time::Duration;

use harness::{
    carrier_args, msg_header as header, require, run_with_limit, Gateway, Sipp, TlsClient,
};

#[test]
fn full_call_over_tls_with_openssl_as_the_caller() {
    if !require("openssl") || !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.17", |c| c);
    let ip = gw.ip.clone();
    let mut c_args = carrier_args(&ip);
    c_args.extend(["-t".into(), "u1".into(), "-m".into(), "1".into()]);
    let args: Vec<&str> = c_args.iter().map(String::as_str).collect();
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &args);

    let mut c = TlsClient::connect(&format!("{ip}:5061"), &[]);
    let vc = "abcdef1ghij2klmno3pqr4.voiceconnector.local";
    c.send(&format!("OPTIONS sip:{vc};transport=tls SIP/2.0\nVia: SIP/2.0/TLS {ip}:5999;branch=z9hG4bKopt1\nFrom: <sip:pbx@{ip}>;tag=o1\nTo: <sip:{vc}>\nCall-ID: tls-options-1\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n"));
    let ok = c.expect("SIP/2.0 200", Duration::from_secs(10));
    assert!(header(&ok, "Allow").contains("INVITE"), "{ok:?}");

    let sdp = format!("v=0\no=pbx 1 1 IN IP4 {ip}\ns=-\nc=IN IP4 {ip}\nt=0 0\nm=audio 40000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n");
    c.send(&format!("INVITE sip:+12065550101@{vc};transport=tls SIP/2.0\nVia: SIP/2.0/TLS {ip}:5999;branch=z9hG4bKtls1\nFrom: \"PBX\" <sip:+12065550100@{ip}>;tag=t1\nTo: <sip:+12065550101@{vc}>\nCall-ID: tls-call-1\nCSeq: 1 INVITE\nContact: <sip:pbx@{ip}:5999;transport=tls>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: {}\n\n{sdp}", sdp.replace('\n', "\r\n").len()));
    c.expect("SIP/2.0 100", Duration::from_secs(5));
    c.expect("SIP/2.0 180", Duration::from_secs(5));
    let ok = c.expect("SIP/2.0 200", Duration::from_secs(5));
    let to = header(&ok, "To").to_string();
    assert!(to.contains("tag="), "{ok:?}");
    c.send(&format!("ACK sip:voicegw@{ip}:5061;transport=tls SIP/2.0\nVia: SIP/2.0/TLS {ip}:5999;branch=z9hG4bKtls2\nFrom: \"PBX\" <sip:+12065550100@{ip}>;tag=t1\nTo: {to}\nCall-ID: tls-call-1\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n"));
    std::thread::sleep(Duration::from_millis(300));
    c.send(&format!("BYE sip:voicegw@{ip}:5061;transport=tls SIP/2.0\nVia: SIP/2.0/TLS {ip}:5999;branch=z9hG4bKtls3\nFrom: \"PBX\" <sip:+12065550100@{ip}>;tag=t1\nTo: {to}\nCall-ID: tls-call-1\nCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n"));
    let bye_ok = c.expect("SIP/2.0 200", Duration::from_secs(5));
    assert_eq!(header(&bye_ok, "CSeq"), "2 BYE");
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!((callee.successful, callee.failed), (1, 0), "{callee:#?}\n{}", gw.log());
    assert!(gw.log().contains("call ended"), "{}", gw.log());
}

#[test]
fn tls_1_1_is_refused() {
    if !require("openssl") {
        return;
    }
    let gw = Gateway::start("127.0.0.18", |c| c);
    let out = run_with_limit(
        Command::new("openssl")
            .args(["s_client", "-connect", &format!("{}:5061", gw.ip), "-tls1_1"])
            .stdin(Stdio::null()),
        Duration::from_secs(10),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "TLS 1.1 handshake should fail: {text}");
    let ok = run_with_limit(
        Command::new("openssl")
            .args(["s_client", "-connect", &format!("{}:5061", gw.ip), "-tls1_2"])
            .stdin(Stdio::null()),
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("Protocol  : TLSv1.2") || text.contains("TLSv1.2"),
        "TLS 1.2 should work: {text}"
    );
}
