//! Connection floods (SECURITY.md, limits): half-open TLS handshakes count against
//! `max_connections` and the excess is refused; a peer that trickles a message byte by byte is
//! cut off after `message_timeout_secs` however active it looks; garbage floods and OPTIONS
//! floods leave the gateway answering OPTIONS within 100 ms, with bounded memory.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use harness::Gateway;

fn connections(gw: &Gateway) -> f64 {
    gw.process_metric("voicegw_sip_connections")
}

/// The fastest of three OPTIONS round trips (one slow turn of a busy test machine is not the
/// gateway's fault); panics when none is answered.
fn options_rtt(gw: &Gateway, probe: &UdpSocket, n: u32) -> Duration {
    (0..3)
        .filter_map(|k| gw.options_rtt(probe, n * 4 + k))
        .min()
        .unwrap_or_else(|| panic!("OPTIONS {n} not answered: {}", gw.log()))
}

#[test]
fn half_open_tls_and_trickling_peers_cannot_hold_the_gateway() {
    let gw = Gateway::start("127.0.0.101", |c| {
        c.replace("max_connections = 4096", "max_connections = 20")
            .replace("message_timeout_secs = 10", "message_timeout_secs = 2")
    });
    let ip = gw.ip.clone();
    let probe = UdpSocket::bind(format!("{ip}:0")).expect("probe");
    let rss_before = gw.rss_kib();
    // 30 TCP connections to the TLS port that never send a ClientHello.
    let mut half_open = Vec::new();
    for _ in 0..30 {
        if let Ok(s) = TcpStream::connect(format!("{ip}:5061")) {
            half_open.push(s);
        }
    }
    let held = gw.wait_process_metric("voicegw_sip_connections", 20.0);
    assert_eq!(held, 20.0, "handshaking connections are counted and capped: {}", gw.metrics());
    // The ones beyond the limit were closed at once.
    let mut closed = 0;
    for s in &mut half_open {
        s.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
        let mut b = [0u8; 1];
        if matches!(s.read(&mut b), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 10, "the 10 over the limit are refused");
    let rtt = options_rtt(&gw, &probe, 1);
    assert!(rtt < Duration::from_millis(100), "OPTIONS took {rtt:?}");
    // They time out of their handshake (10 s) and free the places.
    drop(half_open);
    let start = Instant::now();
    while connections(&gw) > 0.0 && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(connections(&gw), 0.0);

    // A trickling peer: one byte every 200 ms of an endless header, never idle for long.
    let mut trickle = TcpStream::connect(format!("{ip}:5060")).expect("tcp");
    trickle.set_read_timeout(Some(Duration::from_millis(10))).expect("timeout");
    let start = Instant::now();
    let head = format!("OPTIONS sip:x@{ip} SIP/2.0\r\nX-Slow: ");
    let mut cut = None;
    for (i, b) in head.bytes().chain(std::iter::repeat(b'a')).enumerate().take(100) {
        if trickle.write_all(&[b]).is_err() {
            cut = Some(start.elapsed());
            break;
        }
        let mut r = [0u8; 1];
        if matches!(trickle.read(&mut r), Ok(0)) {
            cut = Some(start.elapsed());
            break;
        }
        if i % 5 == 0 {
            let rtt = options_rtt(&gw, &probe, 100 + i as u32);
            assert!(rtt < Duration::from_millis(100), "OPTIONS took {rtt:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let cut = cut.unwrap_or_else(|| panic!("a trickling peer was never cut off: {}", gw.log()));
    assert!(
        cut >= Duration::from_millis(1800) && cut < Duration::from_secs(5),
        "cut after {cut:?}"
    );
    assert!(gw.log().contains("a message was not complete in time"), "{}", gw.log());

    // A flood of 5000 OPTIONS (transactions linger 32 s): answered or refused with 503, the
    // gateway stays responsive, memory stays bounded.
    let flood = UdpSocket::bind(format!("{ip}:0")).expect("flood socket");
    for i in 0..5000 {
        let m = format!("OPTIONS sip:x@{ip} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKf{i}\r\nFrom: <sip:f@{ip}>;tag=f\r\nTo: <sip:x@{ip}>\r\nCall-ID: flood-{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", flood.local_addr().expect("addr"));
        let _ = flood.send_to(m.as_bytes(), format!("{ip}:5060"));
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(2)); // ~20 000 requests/s
        }
        if i % 1000 == 999 {
            let rtt = options_rtt(&gw, &probe, 10_000 + i);
            assert!(rtt < Duration::from_millis(100), "OPTIONS took {rtt:?}");
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = gw.rss_kib();
    eprintln!("memory: {rss_before} KiB before, {rss_after} KiB after the floods");
    assert!(rss_after < rss_before + 64 * 1024, "{rss_before} KiB -> {rss_after} KiB");
}

/// A valid INVITE to the default voice connector from `ip`, with its Call-ID.
fn invite(ip: &str, call_id: &str, host: &str) -> String {
    format!("INVITE sip:+12065550101@{host} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5090;branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:+12065550100@{ip}>;tag=m\r\nTo: <sip:+12065550101@{host}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@{ip}:5090>\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n")
}

/// 2000 seeded mutations of a valid INVITE (UDP, and TCP in chunks), 1500 INVITEs for voice
/// connectors that do not exist and 600 with 60 KB Call-IDs: the gateway stays responsive,
/// its memory stays where it was, and the junk does not buy disk (records of unmatched calls
/// over 50/s are counted, not written; oversized Call-IDs are refused before any record).
#[test]
fn mutation_and_junk_floods_buy_neither_memory_nor_disk() {
    let gw = Gateway::start("127.0.0.105", |c| c);
    let ip = gw.ip.clone();
    let probe = UdpSocket::bind(format!("{ip}:0")).expect("probe");
    let flood = UdpSocket::bind(format!("{ip}:0")).expect("flood");
    let rss_before = gw.rss_kib();
    let base = invite(&ip, "mutant", "abcdef1ghij2klmno3pqr4.voiceconnector.local").into_bytes();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut tcp = TcpStream::connect(format!("{ip}:5060")).expect("tcp");
    for i in 0..2000u32 {
        let mut m = base.clone();
        for _ in 0..1 + next() % 6 {
            if m.len() < 2 {
                break;
            }
            let at = (next() % m.len() as u64) as usize;
            match next() % 4 {
                0 => m[at] = next() as u8,
                1 => m.insert(at, b"\r\n:;<>\",@ %"[(next() % 11) as usize]),
                2 => {
                    m.remove(at);
                }
                _ => m.truncate(at.max(1)),
            }
        }
        let _ = flood.send_to(&m, format!("{ip}:5060"));
        if i % 4 == 0 && tcp.write_all(&m).is_err() {
            // The mutation broke the framing: the connection was closed, open another.
            tcp = TcpStream::connect(format!("{ip}:5060")).expect("tcp");
        }
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(2));
        }
        if i % 500 == 499 {
            let rtt = options_rtt(&gw, &probe, 20_000 + i);
            assert!(rtt < Duration::from_millis(100), "OPTIONS took {rtt:?}");
        }
    }
    drop(tcp);
    // Junk that would buy disk: unknown voice connectors, and 60 KB Call-IDs.
    for i in 0..1500 {
        let m = invite(&ip, &format!("junk-{i}"), &format!("nosuchvc{i:014}.voiceconnector.local"));
        let _ = flood.send_to(m.as_bytes(), format!("{ip}:5060"));
        if i < 600 {
            let big = invite(
                &ip,
                &format!("{i}-{}", "x".repeat(60_000)),
                "abcdef1ghij2klmno3pqr4.voiceconnector.local",
            );
            let _ = flood.send_to(big.as_bytes(), format!("{ip}:5060"));
        }
        if i % 25 == 24 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let rtt = options_rtt(&gw, &probe, 30_000);
    assert!(rtt < Duration::from_millis(100), "OPTIONS took {rtt:?}");
    let rss_after = gw.rss_kib();
    eprintln!(
        "memory: {rss_before} KiB before, {rss_after} KiB after the mutation and junk floods"
    );
    assert!(rss_after < rss_before + 32 * 1024, "{rss_before} KiB -> {rss_after} KiB");
    // Disk: the oversized Call-IDs left no record at all, the unmatched ones at most the budget.
    std::thread::sleep(Duration::from_secs(2));
    let cdrs = harness::cdrs_in(&gw.dir.join("var/cdrs"), 0, Duration::ZERO);
    let bytes: usize = cdrs.iter().map(|(_, v)| v.to_string().len()).sum();
    assert!(cdrs.iter().all(|(_, v)| v["CallId"].as_str().unwrap_or("").len() <= 256));
    assert!(bytes < 2 << 20, "{} records, {bytes} bytes", cdrs.len());
    let suppressed = gw.wait_process_metric("voicegw_cdrs_suppressed_total", 1.0);
    eprintln!("junk: {} records written ({bytes} bytes), {suppressed} suppressed", cdrs.len());
    // 1500 unmatched calls in a few seconds: more than the 500 burst and 50/s can take.
    assert!(suppressed >= 1.0, "unmatched junk records were not limited: {}", cdrs.len());
}

/// A TCP peer that sends requests but never reads the answers: once the gateway's writes to it
/// block for `write_timeout_secs`, it is disconnected, and its place is free again.
#[test]
fn a_peer_that_never_reads_is_disconnected() {
    let gw = Gateway::start("127.0.0.106", |c| {
        c.replace("write_timeout_secs = 10", "write_timeout_secs = 2")
            .replace("max_connections = 4096", "max_connections = 4")
    });
    let ip = gw.ip.clone();
    let probe = UdpSocket::bind(format!("{ip}:0")).expect("probe");
    let mut lazy = TcpStream::connect(format!("{ip}:5060")).expect("tcp");
    lazy.set_write_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(20) && !gw.log().contains("the peer does not read")
    {
        let mut batch = String::new();
        for _ in 0..200 {
            sent += 1;
            batch += &format!("OPTIONS sip:x@{ip} SIP/2.0\r\nVia: SIP/2.0/TCP {ip}:5999;branch=z9hG4bKlazy{sent}\r\nFrom: <sip:l@{ip}>;tag=l\r\nTo: <sip:x@{ip}>\r\nCall-ID: lazy-{sent}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
        }
        if lazy.write_all(batch.as_bytes()).is_err() && gw.log().contains("the peer does not read")
        {
            break;
        }
    }
    assert!(
        gw.log().contains("connection closed: the peer does not read"),
        "after {sent} requests: {}",
        harness::tail(&gw.log())
    );
    let rtt = options_rtt(&gw, &probe, 40_000);
    assert!(rtt < Duration::from_millis(100), "OPTIONS took {rtt:?}");
    assert_eq!(gw.wait_process_metric("voicegw_sip_connections", 0.0), 0.0, "its place is free");
}
