//! Media from foreign sources during a call (SECURITY.md, "who may send media"): a third party
//! that sends RTP and RTCP to the call's freshly allocated ports before and while the real PBX
//! sends neither receives the call's audio nor displaces the PBX, is counted and logged, and
//! cannot keep a silent call up past the inactivity limit. The test is the PBX and the
//! attacker (raw UDP); SIPp is the carrier and echoes the RTP back.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use harness::{carrier_args, require, sip_header, Gateway, Sipp};

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 8, (seq >> 8) as u8, seq as u8];
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xd5; 160]);
    p
}

/// Packets waiting on `sock` within `wait`.
fn drain(sock: &UdpSocket, wait: Duration) -> u64 {
    sock.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
    let (mut n, mut buf, end) = (0, [0u8; 2048], Instant::now() + wait);
    while Instant::now() < end {
        if sock.recv(&mut buf).is_ok() {
            n += 1;
        }
    }
    n
}

#[test]
fn foreign_rtp_neither_hijacks_nor_keeps_a_call_up() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.100", |c| {
        c.replace("inactivity_timeout_secs = 300", "inactivity_timeout_secs = 2")
    });
    let ip = gw.ip.clone();
    let mut c_args = carrier_args(&ip);
    c_args.extend(["-mp", "6100", "-rtp_echo", "-m", "1"].map(String::from));
    let cargs: Vec<&str> = c_args.iter().map(String::as_str).collect();
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &cargs);

    let pbx_rtp = UdpSocket::bind(format!("{ip}:7000")).expect("rtp socket");
    // The attacker is on the PBX's own host, a port away: only the port tells them apart.
    let attacker = UdpSocket::bind(format!("{ip}:7010")).expect("attacker socket");
    let (sip, _to, port) = harness::raw_pbx_call(&ip, "hostile-media-1", 7000);
    let gwaddr = format!("{ip}:5060");

    // The attacker sends first, to the RTP and the RTCP port the PBX was given.
    let (rtp_to, rtcp_to) = (format!("{ip}:{port}"), format!("{ip}:{}", port + 1));
    for seq in 0..20u16 {
        attacker.send_to(&rtp(seq, 0xbad), &rtp_to).expect("attacker RTP");
        let rr = [
            0x81, 201, 0, 7, 0, 0, 0x0b, 0xad, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0,
        ];
        attacker.send_to(&rr, &rtcp_to).expect("attacker RTCP");
    }
    // Then the PBX talks, interleaved with more attacker packets.
    for seq in 0..50u16 {
        pbx_rtp.send_to(&rtp(seq, 0x600d), &rtp_to).expect("PBX RTP");
        attacker.send_to(&rtp(100 + seq, 0xbad), &rtp_to).expect("attacker RTP");
        std::thread::sleep(Duration::from_millis(20));
    }
    let echoed = drain(&pbx_rtp, Duration::from_millis(500));
    let stolen = drain(&attacker, Duration::from_millis(10));
    assert_eq!(stolen, 0, "the attacker received the call's audio");
    assert_eq!(echoed, 50, "the PBX gets every echo of its own packets, and only those");

    // The PBX falls silent; the attacker keeps sending. The call still ends on inactivity.
    let silent_since = Instant::now();
    let mut bye = None;
    let mut seq = 1000u16;
    let mut buf = [0u8; 8192];
    sip.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
    while silent_since.elapsed() < Duration::from_secs(10) && bye.is_none() {
        attacker.send_to(&rtp(seq, 0xbad), &rtp_to).expect("attacker RTP");
        seq = seq.wrapping_add(1);
        if let Ok(n) = sip.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            if m.starts_with("BYE ") {
                bye = Some(m);
            }
        }
    }
    let bye = bye.unwrap_or_else(|| panic!("no BYE while a stranger sends: {}", gw.log()));
    assert!(silent_since.elapsed() < Duration::from_secs(6), "{:?}", silent_since.elapsed());
    let via = sip_header(&bye, "Via");
    let ok_bye = format!("SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n", sip_header(&bye, "From"), sip_header(&bye, "To"), sip_header(&bye, "Call-ID"), sip_header(&bye, "CSeq"));
    sip.send_to(ok_bye.as_bytes(), &gwaddr).expect("200 to BYE");
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!(callee.successful, 1, "{callee:#?}");

    let log = gw.log();
    assert!(log.contains("media from an unexpected source dropped"), "{log}");
    assert!(log.contains("127.0.0.100:7010"), "the rejected source is named: {log}");
    // The media threads add to the metric once a second.
    let start = Instant::now();
    let mut rejected = gw.process_metric("voicegw_media_packets_from_rejected_sources_total");
    while rejected < 90.0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        rejected = gw.process_metric("voicegw_media_packets_from_rejected_sources_total");
    }
    assert!(rejected >= 90.0, "rejected packets counted: {rejected}");
}
