//! SRTP through voicegw on a voice connector with `RequireEncryption`: the test is a PBX sending
//! SRTP (SDES, AES_CM_128_HMAC_SHA1_80), SIPp is a plain-RTP carrier echoing the media. voicegw
//! decrypts towards the carrier and encrypts the echo back with the key it put in its answer.
//! Signalling is SIP over TLS with OpenSSL's `s_client` as the PBX's TLS stack. Over UDP, and
//! with a plain offer over TLS, the call is refused with 488.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use harness::{
    carrier_args, msg_header, read_until, require, sdp_audio_port, Gateway, Sipp, TlsClient,
};
use media::srtp::{Context, MasterKey, Suite};

const VC: &str = "abcdef1ghij2klmno3pqr4.voiceconnector.local";
const KEY: &str = "inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS";

/// An INVITE over `transport` (`UDP` or `TLS`); lines end in `\r\n`.
fn invite(ip: &str, transport: &str, call: &str, sdp: &str) -> String {
    let param = if transport == "TLS" { ";transport=tls" } else { "" };
    format!("INVITE sip:+12065550101@{VC}{param} SIP/2.0\r\nVia: SIP/2.0/{transport} {ip}:5090;branch=z9hG4bK{call}\r\nFrom: <sip:+12065550100@{ip}>;tag={call}\r\nTo: <sip:+12065550101@{VC}>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@{ip}:5090{param}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len())
}

#[test]
fn srtp_customer_leg_plain_carrier_leg() {
    if !require("sipp") || !require("openssl") {
        return;
    }
    let gw = Gateway::start("127.0.0.28", |c| {
        c.replace("RequireEncryption = false", "RequireEncryption = true")
            .replace("Port = 5090, Protocol = \"UDP\"", "Port = 5090, Protocol = \"TCP\"")
    });
    let ip = gw.ip.clone();
    let gwaddr = format!("{ip}:5060");
    let sip = UdpSocket::bind(format!("{ip}:5090")).expect("sip");
    sip.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let sdp = format!("v=0\r\no=p 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 7400 RTP/SAVP 8\r\na=rtpmap:8 PCMA/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}\r\n");

    // SIP over UDP on an encrypted voice connector: 488, even with an SRTP offer.
    sip.send_to(invite(&ip, "UDP", "udp1", &sdp).as_bytes(), &gwaddr).expect("send");
    let r = read_until(&sip, "SIP/2.0 488");
    assert!(r.contains("requires encryption"), "{r}");

    // A plain offer over TLS: 488.
    let mut tls = TlsClient::connect(&format!("{ip}:5061"), &[]);
    let plain = format!(
        "v=0\r\no=p 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 7400 RTP/AVP 8\r\n"
    );
    tls.send(&invite(&ip, "TLS", "plain1", &plain));
    let r = tls.expect("SIP/2.0 488", Duration::from_secs(5));
    assert!(msg_header(&r, "Warning").contains("encryption required"), "{r:?}");

    let mut c_args = carrier_args(&ip);
    c_args.extend(["-mp", "6100", "-rtp_echo", "-m", "1"].map(String::from));
    let cargs: Vec<&str> = c_args.iter().map(String::as_str).collect();
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &cargs);
    tls.send(&invite(&ip, "TLS", "srtp1", &sdp));
    let ok = tls.expect_full("SIP/2.0 200", Duration::from_secs(10));
    let port: u16 = sdp_audio_port(&ok);
    assert!(ok.contains(&format!("m=audio {port} RTP/SAVP")), "{ok}");
    let crypto = ok
        .lines()
        .find_map(|l| l.strip_prefix("a=crypto:1 AES_CM_128_HMAC_SHA1_80 "))
        .expect("voicegw's key in the answer")
        .trim()
        .to_string();
    assert_ne!(crypto, KEY, "voicegw uses its own key towards the PBX");
    let to = ok.lines().find_map(|l| l.strip_prefix("To: ")).expect("To").trim().to_string();
    tls.send(&format!("ACK sip:voicegw@{ip}:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {ip}:5090;branch=z9hG4bKsa\r\nFrom: <sip:+12065550100@{ip}>;tag=srtp1\r\nTo: {to}\r\nCall-ID: srtp1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"));

    let rtp = UdpSocket::bind(format!("{ip}:7400")).expect("rtp");
    rtp.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let mut tx =
        Context::new(Suite::AesCm128HmacSha1_80, &MasterKey::from_inline(KEY).expect("key"));
    let mut rx = Context::new(
        Suite::AesCm128HmacSha1_80,
        &MasterKey::from_inline(&crypto).expect("voicegw key"),
    );
    let (mut sent, mut back_ok) = (0, 0);
    for seq in 0..100u16 {
        let mut p = vec![0x80, 8, (seq >> 8) as u8, seq as u8];
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x5151_5151u32.to_be_bytes());
        p.extend_from_slice(&[(seq % 251) as u8; 160]);
        let plain = p.clone();
        p.resize(plain.len() + 10, 0);
        let n = tx.protect_rtp(&mut p, plain.len()).expect("protect");
        rtp.send_to(&p[..n], format!("{ip}:{port}")).expect("send");
        sent += 1;
        // The echo comes back through voicegw, encrypted with its key.
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_millis(100);
        while Instant::now() < deadline {
            if let Ok(k) = rtp.recv(&mut buf) {
                let m = rx.unprotect_rtp(&mut buf[..k]).expect("voicegw's SRTP authenticates");
                assert_eq!(
                    &buf[12..m],
                    &plain[12..],
                    "payload survives decrypt, plain carrier leg, encrypt"
                );
                back_ok += 1;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(back_ok, sent, "every echoed packet came back as valid SRTP");
    tls.send(&format!("BYE sip:voicegw@{ip}:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {ip}:5090;branch=z9hG4bKsb\r\nFrom: <sip:+12065550100@{ip}>;tag=srtp1\r\nTo: {to}\r\nCall-ID: srtp1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"));
    tls.expect("SIP/2.0 200", Duration::from_secs(5));
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!(callee.successful, 1, "{callee:#?}");
}
