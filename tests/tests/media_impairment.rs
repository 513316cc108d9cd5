//! Deterministic impairment through voicegw: the test is the PBX (SIP over UDP, its own RTP
//! sender with a seeded loss pattern and a fixed ±3 ms send-time jitter), SIPp is the carrier and
//! echoes the RTP back. The media-quality record must report the injected loss exactly on both
//! directions and the injected jitter within tolerance.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{carrier_args, read_until, require, sdp_audio_port, sip_header, Gateway, Sipp};
use serde_json::Value;

const VC: &str = "abcdef1ghij2klmno3pqr4.voiceconnector.local";

/// A tiny seeded generator (xorshift) so the loss pattern is the same on every run.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn injected_loss_and_jitter_are_reported() {
    if !require("sipp") {
        return;
    }
    // Records every second: the call spans several, whose per-period counts must add up.
    let gw = Gateway::start("127.0.0.25", |c| {
        c.replace("record_period_secs = 60", "record_period_secs = 1")
    });
    let ip = gw.ip.clone();
    let mut c_args = carrier_args(&ip);
    c_args.extend(["-mp", "6100", "-rtp_echo", "-m", "1"].map(String::from));
    let cargs: Vec<&str> = c_args.iter().map(String::as_str).collect();
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &cargs);

    let (sip, to, media_port) = harness::raw_pbx_call(&ip, "impairment-1", 7000);
    let rtp = Arc::new(UdpSocket::bind(format!("{ip}:7000")).expect("rtp socket"));
    let gwaddr = format!("{ip}:5060");

    // Echoed packets come back through voicegw: count them.
    let echoed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (rtp, echoed, done) = (rtp.clone(), echoed.clone(), done.clone());
        rtp.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end && !done.load(Ordering::Relaxed) {
                if rtp.recv(&mut buf).is_ok() {
                    echoed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // 300 packets of 20 ms; seeded 5% loss (never the last packet); send times alternate
    // +3/−3 ms around the 20 ms grid, so every transit difference is 6 ms and the RFC 3550
    // jitter converges to 6 ms.
    let target = format!("{ip}:{media_port}");
    let (mut state, mut dropped, mut sent) = (0x9e37_79b9_7f4a_7c15u64, 0u64, 0u64);
    let start = Instant::now();
    for seq in 0..300u16 {
        let lose = seq < 299 && xorshift(&mut state) % 100 < 5;
        let offset_ms: i64 = if seq % 2 == 0 { 3 } else { -3 };
        let at = start + Duration::from_millis((20 * i64::from(seq) + 3 + offset_ms) as u64);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if lose {
            dropped += 1;
            continue;
        }
        let mut p = vec![0x80, 8, (seq >> 8) as u8, seq as u8];
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x0bad_cafeu32.to_be_bytes());
        p.extend_from_slice(&[0xd5; 160]);
        rtp.send_to(&p, &target).expect("send RTP");
        sent += 1;
    }
    assert!(dropped >= 5, "the seed must drop some packets ({dropped})");
    std::thread::sleep(Duration::from_millis(300));
    let bye = format!("BYE sip:voicegw@{ip}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5090;branch=z9hG4bKimp3\r\nFrom: <sip:+12065550100@{ip}>;tag=impairment-1\r\nTo: {to}\r\nCall-ID: impairment-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    sip.send_to(bye.as_bytes(), &gwaddr).expect("send BYE");
    read_until(&sip, "SIP/2.0 200");
    done.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!(callee.successful, 1, "{callee:#?}");

    let records: Vec<Value> = gw.media_records();
    let text = format!("{records:?}");
    assert!(records.len() >= 5, "a record per second over a 6 s call: {}", records.len());
    let sum = |k: &str| records.iter().map(|r| r[k].as_u64().unwrap_or(0)).sum::<u64>();
    let rec = records.last().expect("a record").clone();
    assert_eq!(sum("cust2vc_rtp_packets"), sent, "per-period counts add up: {text}");
    assert_eq!(sum("vc2rem_rtp_packets"), sent);
    assert_eq!(rec["cust2vc_packets_lost"], dropped, "injected loss, caller to voicegw: {rec}");
    // The echo keeps the sequence numbers, so the carrier leg shows the same gaps.
    assert_eq!(rec["rem2vc_packets_lost"], dropped, "{rec}");
    assert_eq!(echoed.load(Ordering::Relaxed), sent, "every packet came back through voicegw");
    let jitter_us = rec["cust2vc_jitter"].as_u64().expect("jitter");
    assert!(
        (4_500..=7_500).contains(&jitter_us),
        "injected ±3 ms (RFC 3550 J → 6 ms), measured {jitter_us} µs"
    );
}

/// Answers an RTCP SR arriving on `sock` with an RR echoing it (LSR, DLSR 0), as a receiver does.
fn rtcp_responder(
    sock: UdpSocket,
    my_ssrc: u32,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u32> {
    sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    std::thread::spawn(move || {
        let (mut buf, mut answered) = ([0u8; 1500], 0u32);
        while !done.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            if n < 28 || buf[1] != 200 {
                continue;
            }
            let mut rr = vec![0x81, 201, 0, 7];
            rr.extend_from_slice(&my_ssrc.to_be_bytes());
            rr.extend_from_slice(&buf[4..8]); // report on the SR's sender
            rr.extend_from_slice(&[0; 12]);
            rr.extend_from_slice(&buf[10..14]); // LSR: middle 32 bits of its NTP time
            rr.extend_from_slice(&[0; 4]); // DLSR 0: answered at once
            let _ = sock.send_to(&rr, from);
            answered += 1;
        }
        answered
    })
}

/// Sends `count` 20 ms G.711 A-law packets with `ssrc` to `to`.
fn rtp_sender(
    sock: Arc<UdpSocket>,
    to: String,
    ssrc: u32,
    count: u16,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        for seq in 0..count {
            let at = start + Duration::from_millis(20 * u64::from(seq));
            if let Some(w) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            let mut p = vec![0x80, 8, (seq >> 8) as u8, seq as u8];
            p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(&[0xd5; 160]);
            let _ = sock.send_to(&p, &to);
        }
    })
}

/// Both ends are this test (no RTCP of their own but receiver reports): voicegw's own SRs on
/// each leg give the round-trip time of both legs, and with it a MOS for both.
#[test]
fn rtt_and_mos_are_measured_on_both_legs() {
    let gw = Gateway::start("127.0.0.27", |c| c);
    let ip = gw.ip.clone();
    let gwaddr = format!("{ip}:5060");
    let pbx = UdpSocket::bind(format!("{ip}:5090")).expect("pbx sip");
    let carrier = UdpSocket::bind(format!("{ip}:5080")).expect("carrier sip");
    pbx.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    carrier.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let (pbx_rtp, pbx_rtcp) = (
        Arc::new(UdpSocket::bind(format!("{ip}:7200")).expect("rtp")),
        UdpSocket::bind(format!("{ip}:7201")).expect("rtcp"),
    );
    let (car_rtp, car_rtcp) = (
        Arc::new(UdpSocket::bind(format!("{ip}:7300")).expect("rtp")),
        UdpSocket::bind(format!("{ip}:7301")).expect("rtcp"),
    );
    let sdp = |port: u16| {
        format!("v=0\r\no=x 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")
    };
    let offer = sdp(7200);
    pbx.send_to(format!("INVITE sip:+12065550101@{VC} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5090;branch=z9hG4bKrtt1\r\nFrom: <sip:+12065550100@{ip}>;tag=p\r\nTo: <sip:+12065550101@{VC}>\r\nCall-ID: rtt-1\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@{ip}:5090>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}", offer.len()).as_bytes(), &gwaddr).expect("INVITE");
    // The carrier answers what voicegw sends it.
    let inv = read_until(&carrier, "INVITE ");
    let b_port: u16 = sdp_audio_port(&inv);
    let answer = sdp(7300);
    let mut resp = String::from("SIP/2.0 200 OK\r\n");
    for l in inv.lines().take_while(|l| !l.is_empty()) {
        let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => resp += &format!("{l}\r\n"),
            "to" => resp += &format!("{l};tag=c\r\n"),
            _ => {}
        }
    }
    resp += &format!("Contact: <sip:carrier@{ip}:5080>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}", answer.len());
    carrier.send_to(resp.as_bytes(), &gwaddr).expect("200");
    let ok = read_until(&pbx, "SIP/2.0 200");
    let a_port: u16 = sdp_audio_port(&ok);
    let to = sip_header(&ok, "To").to_string();
    pbx.send_to(format!("ACK sip:voicegw@{ip}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5090;branch=z9hG4bKrtt2\r\nFrom: <sip:+12065550100@{ip}>;tag=p\r\nTo: {to}\r\nCall-ID: rtt-1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").as_bytes(), &gwaddr).expect("ACK");
    read_until(&carrier, "ACK ");

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r1 = rtcp_responder(pbx_rtcp, 0xa1, done.clone());
    let r2 = rtcp_responder(car_rtcp, 0xb2, done.clone());
    let s1 = rtp_sender(pbx_rtp, format!("{ip}:{a_port}"), 0xa1, 150);
    let s2 = rtp_sender(car_rtp, format!("{ip}:{b_port}"), 0xb2, 150);
    s1.join().expect("pbx rtp");
    s2.join().expect("carrier rtp");
    pbx.send_to(format!("BYE sip:voicegw@{ip}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5090;branch=z9hG4bKrtt3\r\nFrom: <sip:+12065550100@{ip}>;tag=p\r\nTo: {to}\r\nCall-ID: rtt-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").as_bytes(), &gwaddr).expect("BYE");
    let bye = read_until(&carrier, "BYE ");
    let mut bye_ok = String::from("SIP/2.0 200 OK\r\n");
    for l in bye.lines().take_while(|l| !l.is_empty()) {
        let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        if ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str()) {
            bye_ok += &format!("{l}\r\n");
        }
    }
    bye_ok += "Content-Length: 0\r\n\r\n";
    carrier.send_to(bye_ok.as_bytes(), &gwaddr).expect("200 BYE");
    read_until(&pbx, "SIP/2.0 200");
    done.store(true, Ordering::Relaxed);
    let (n1, n2) = (r1.join().expect("responder"), r2.join().expect("responder"));
    assert!(n1 >= 1 && n2 >= 1, "voicegw sent SRs to both legs ({n1}, {n2})");

    let rec: Value = gw.media_records().pop().expect("a record");
    for leg in ["cust", "rem"] {
        let rtt = rec[format!("rtt_btwn_vc_and_{leg}")]
            .as_u64()
            .unwrap_or_else(|| panic!("RTT of the {leg} leg: {rec}"));
        assert!(rtt < 50_000, "loopback RTT of the {leg} leg: {rtt} µs");
        let mos = rec[format!("mos_btwn_vc_and_{leg}")]
            .as_f64()
            .unwrap_or_else(|| panic!("MOS of the {leg} leg: {rec}"));
        assert!((4.0..=4.4).contains(&mos), "{leg}: {mos}");
    }
    assert_eq!(rec["cust2vc_rtp_packets"], 150);
    assert_eq!(rec["rem2vc_rtp_packets"], 150);
}
