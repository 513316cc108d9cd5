//! Media load generator: sets up N calls on voicegw (over SIP, playing both the PBX and the
//! carrier) or on rtpengine (over its ng control protocol), then sends G.711-sized RTP both ways
//! on every call (50 packets/s each way) for a bounded time, and prints one JSON line: packets
//! sent/received, loss, one-way latency through the relay (p50/p99), and — given the server's
//! PID — its CPU time per relayed packet and resident memory per call.
//!
//! ```text
//! media_load voicegw|rtpengine|direct|recording SERVER_IP CALLS SECONDS [SERVER_PID] [NG_PORT]
//! ```
//!
//! `recording` sets up CALLS SIPREC recording sessions on voicegw instead (a multipart INVITE
//! with two labelled `sendonly` streams, as an SBC records a call) and sends both streams;
//! nothing comes back, so its CPU is per packet *sent* (recorded).
//!
//! `direct` sends the same traffic endpoint to endpoint with no relay: its latency is the load
//! generator's own (a burst of 2·CALLS packets every 20 ms, or with `MEDIA_LOAD_SPREAD=1` the
//! streams spread over the 20 ms as independent calls are), to subtract from the relays'.
//!
//! Bounded: at most 2000 calls and 120 s; all traffic is on the given loopback address.

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use voicegw_benches::{percentile, proc_usage};

struct Leg {
    sock: StdUdp,
    /// Where this endpoint sends its RTP (the relay's port facing it).
    dst: SocketAddr,
}

fn sdp(ip: &str, port: u16) -> String {
    format!("v=0\r\no=load 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")
}

fn media_port(sdp: &str) -> Option<u16> {
    sdp.lines().find_map(|l| {
        l.trim_start()
            .strip_prefix("m=audio ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
    })
}

fn bencode_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(format!("{}:", s.len()).as_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// One ng request: `cookie d<k><v>…e`; returns the `sdp` of the reply.
fn ng(sock: &StdUdp, server: SocketAddr, cookie: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut msg = format!("{cookie} ").into_bytes();
    msg.push(b'd');
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in sorted {
        bencode_str(&mut msg, k);
        bencode_str(&mut msg, v);
    }
    msg.push(b'e');
    sock.send_to(&msg, server).ok()?;
    let mut buf = vec![0u8; 8192];
    let n = sock.recv(&mut buf).ok()?;
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    let i = reply.find("3:sdp")? + 5;
    let rest = &reply[i..];
    let colon = rest.find(':')?;
    let len: usize = rest[..colon].parse().ok()?;
    Some(rest[colon + 1..colon + 1 + len].to_string())
}

/// No relay: each leg sends straight to the other, to measure the generator's own latency.
fn setup_direct(ip: &str, calls: usize) -> Vec<(Leg, Leg)> {
    (0..calls)
        .map(|_| {
            let a = StdUdp::bind(format!("{ip}:0")).expect("a");
            let b = StdUdp::bind(format!("{ip}:0")).expect("b");
            let (aa, ba) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
            (Leg { sock: a, dst: ba }, Leg { sock: b, dst: aa })
        })
        .collect()
}

fn setup_rtpengine(ip: &str, ng_port: u16, calls: usize) -> Vec<(Leg, Leg)> {
    let server: SocketAddr = format!("{ip}:{ng_port}").parse().expect("ng address");
    let ctl = StdUdp::bind(format!("{ip}:0")).expect("ng socket");
    ctl.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    (0..calls)
        .map(|i| {
            let a = StdUdp::bind(format!("{ip}:0")).expect("a");
            let b = StdUdp::bind(format!("{ip}:0")).expect("b");
            let (ap, bp) = (a.local_addr().expect("a").port(), b.local_addr().expect("b").port());
            let call = format!("load-{i}");
            let offer = ng(
                &ctl,
                server,
                &format!("o{i}"),
                &[
                    ("command", "offer"),
                    ("call-id", &call),
                    ("from-tag", "a"),
                    ("sdp", &sdp(ip, ap)),
                ],
            )
            .expect("offer");
            let answer = ng(
                &ctl,
                server,
                &format!("a{i}"),
                &[
                    ("command", "answer"),
                    ("call-id", &call),
                    ("from-tag", "a"),
                    ("to-tag", "b"),
                    ("sdp", &sdp(ip, bp)),
                ],
            )
            .expect("answer");
            let b_dst =
                SocketAddr::new(ip.parse().expect("ip"), media_port(&offer).expect("offer port"));
            let a_dst =
                SocketAddr::new(ip.parse().expect("ip"), media_port(&answer).expect("answer port"));
            (Leg { sock: a, dst: a_dst }, Leg { sock: b, dst: b_dst })
        })
        .collect()
}

fn recv_msg(sock: &StdUdp, start: &str) -> String {
    let mut buf = vec![0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            if m.starts_with(start) {
                return m;
            }
        }
    }
    panic!("no {start} from voicegw within 5 s");
}

fn setup_voicegw(ip: &str, calls: usize) -> Vec<(Leg, Leg)> {
    let gw = format!("{ip}:5060");
    let pbx = StdUdp::bind(format!("{ip}:5090")).expect("pbx socket");
    let carrier = StdUdp::bind(format!("{ip}:5080")).expect("carrier socket");
    for s in [&pbx, &carrier] {
        s.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    }
    let vc = "abcdef1ghij2klmno3pqr4.voiceconnector.local";
    (0..calls)
        .map(|i| {
            let a = StdUdp::bind(format!("{ip}:0")).expect("a");
            let b = StdUdp::bind(format!("{ip}:0")).expect("b");
            let (ap, bp) = (a.local_addr().expect("a").port(), b.local_addr().expect("b").port());
            let body = sdp(ip, ap);
            let inv = format!("INVITE sip:+12065550101@{vc} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5090;branch=z9hG4bKload{i}\r\nFrom: <sip:+12065550100@{ip}>;tag=l{i}\r\nTo: <sip:+12065550101@{vc}>\r\nCall-ID: load-{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@{ip}:5090>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            pbx.send_to(inv.as_bytes(), &gw).expect("INVITE");
            let b_inv = recv_msg(&carrier, "INVITE ");
            let b_dst = SocketAddr::new(ip.parse().expect("ip"), media_port(&b_inv).expect("port in INVITE"));
            let ans = sdp(ip, bp);
            let mut ok = String::from("SIP/2.0 200 OK\r\n");
            for l in b_inv.lines().take_while(|l| !l.is_empty()) {
                let n = l.split(':').next().unwrap_or("").to_ascii_lowercase();
                if ["via", "from", "call-id", "cseq"].contains(&n.as_str()) {
                    ok += &format!("{l}\r\n");
                } else if n == "to" {
                    ok += &format!("{l};tag=c{i}\r\n");
                }
            }
            ok += &format!("Contact: <sip:carrier@{ip}:5080>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{ans}", ans.len());
            carrier.send_to(ok.as_bytes(), &gw).expect("200");
            let a_ok = recv_msg(&pbx, "SIP/2.0 200");
            let a_dst = SocketAddr::new(ip.parse().expect("ip"), media_port(&a_ok).expect("port in 200"));
            let to = a_ok.lines().find_map(|l| l.strip_prefix("To: ")).expect("To").trim().to_string();
            let ack = format!("ACK sip:voicegw@{ip}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5090;branch=z9hG4bKloadack{i}\r\nFrom: <sip:+12065550100@{ip}>;tag=l{i}\r\nTo: {to}\r\nCall-ID: load-{i}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
            pbx.send_to(ack.as_bytes(), &gw).expect("ACK");
            (Leg { sock: a, dst: a_dst }, Leg { sock: b, dst: b_dst })
        })
        .collect()
}

/// CALLS recording sessions: the first leg of each pair sends stream 1, the second stream 2.
fn setup_recording(ip: &str, calls: usize) -> Vec<(Leg, Leg)> {
    let gw = format!("{ip}:5060");
    let src = StdUdp::bind(format!("{ip}:5091")).expect("src socket");
    src.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let vc = "abcdef1ghij2klmno3pqr4.voiceconnector.local";
    let meta = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><recording xmlns=\"urn:ietf:params:xml:ns:recording:1\"><datamode>complete</datamode><stream stream_id=\"czE=\" session_id=\"c2Vzcw==\"><label>1</label></stream><stream stream_id=\"czI=\" session_id=\"c2Vzcw==\"><label>2</label></stream></recording>";
    (0..calls)
        .map(|i| {
            let a = StdUdp::bind(format!("{ip}:0")).expect("a");
            let b = StdUdp::bind(format!("{ip}:0")).expect("b");
            let (ap, bp) = (a.local_addr().expect("a").port(), b.local_addr().expect("b").port());
            let sdp = format!("v=0\r\no=src 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {ap} RTP/AVP 8\r\na=label:1\r\na=sendonly\r\nm=audio {bp} RTP/AVP 8\r\na=label:2\r\na=sendonly\r\n");
            let body = format!("--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{meta}\r\n--b--\r\n");
            let inv = format!("INVITE sip:recorder@{vc} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5091;branch=z9hG4bKrec{i}\r\nFrom: <sip:src@{ip}>;tag=r{i}\r\nTo: <sip:recorder@{vc}>\r\nCall-ID: rec-{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:src@{ip}:5091>;+sip.src\r\nRequire: siprec\r\nMax-Forwards: 70\r\nContent-Type: multipart/mixed;boundary=b\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            src.send_to(inv.as_bytes(), &gw).expect("INVITE");
            let ok = recv_msg(&src, "SIP/2.0 200");
            let ports: Vec<u16> = ok
                .lines()
                .filter_map(|l| l.strip_prefix("m=audio "))
                .filter_map(|r| r.split_whitespace().next()?.parse().ok())
                .collect();
            assert_eq!(ports.len(), 2, "two streams answered: {ok}");
            let to = ok.lines().find_map(|l| l.strip_prefix("To: ")).expect("To").trim().to_string();
            let ack = format!("ACK sip:voicegw@{ip}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5091;branch=z9hG4bKrecack{i}\r\nFrom: <sip:src@{ip}>;tag=r{i}\r\nTo: {to}\r\nCall-ID: rec-{i}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
            src.send_to(ack.as_bytes(), &gw).expect("ACK");
            let ip_addr: std::net::IpAddr = ip.parse().expect("ip");
            (
                Leg { sock: a, dst: SocketAddr::new(ip_addr, ports[0]) },
                Leg { sock: b, dst: SocketAddr::new(ip_addr, ports[1]) },
            )
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!(
            "usage: media_load voicegw|rtpengine|direct|recording SERVER_IP CALLS SECONDS [SERVER_PID] [NG_PORT]"
        );
        std::process::exit(2);
    }
    let (target, ip) = (args[1].clone(), args[2].clone());
    let calls: usize = args[3].parse::<usize>().expect("calls").min(2000);
    let secs: u64 = args[4].parse::<u64>().expect("seconds").min(120);
    let pid: Option<u32> = args.get(5).and_then(|p| p.parse().ok());
    let ng_port: u16 = args.get(6).and_then(|p| p.parse().ok()).unwrap_or(2223);
    let idle = pid.map(proc_usage);
    let legs = match target.as_str() {
        "rtpengine" => setup_rtpengine(&ip, ng_port, calls),
        "direct" => setup_direct(&ip, calls),
        "recording" => setup_recording(&ip, calls),
        _ => setup_voicegw(&ip, calls),
    };
    std::thread::sleep(Duration::from_millis(300));
    let loaded = pid.map(proc_usage);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let result = rt.block_on(async move {
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mut socks = Vec::new();
        for (a, b) in legs {
            for leg in [a, b] {
                leg.sock.set_nonblocking(true).expect("nonblocking");
                socks.push((
                    Arc::new(UdpSocket::from_std(leg.sock).expect("tokio socket")),
                    leg.dst,
                ));
            }
        }
        let mut receivers = Vec::new();
        for (s, _) in &socks {
            let (s, stop) = (s.clone(), stop.clone());
            receivers.push(tokio::spawn(async move {
                let (mut buf, mut lat, mut n) = ([0u8; 512], Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Ok(k)) =
                        tokio::time::timeout(Duration::from_millis(100), s.recv(&mut buf)).await
                    {
                        // RTP from the load itself (PT 8): RTCP the relay sends is not counted.
                        if k >= 20 && buf[1] == 8 {
                            let sent = u64::from_be_bytes(buf[12..20].try_into().unwrap_or([0; 8]));
                            let now = start.elapsed().as_nanos() as u64;
                            lat.push((now.saturating_sub(sent) / 1000) as u32);
                            n += 1;
                        }
                    }
                }
                (n, lat)
            }));
        }
        let cpu0 = pid.map(proc_usage);
        // MEDIA_LOAD_SPREAD=1: each stream sends at its own phase of the 20 ms period (a
        // millisecond tick, one twentieth of the streams each), as independent calls do, instead
        // of every stream in one burst.
        let spread = std::env::var("MEDIA_LOAD_SPREAD").is_ok_and(|v| v == "1");
        let slots: u32 = if spread { 20 } else { 1 };
        let mut tick = tokio::time::interval(Duration::from_millis(20 / u64::from(slots)));
        let mut sent = 0u64;
        let packets = (secs * 50) as u16;
        for step in 0..u32::from(packets) * slots {
            tick.tick().await;
            let (seq, slot) = ((step / slots) as u16, step % slots);
            for (i, (s, dst)) in socks.iter().enumerate() {
                if i as u32 % slots != slot {
                    continue;
                }
                let mut p = [0u8; 172];
                p[0] = 0x80;
                p[1] = 8;
                p[2..4].copy_from_slice(&seq.to_be_bytes());
                p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                p[8..12].copy_from_slice(&(i as u32).to_be_bytes());
                p[12..20].copy_from_slice(&(start.elapsed().as_nanos() as u64).to_be_bytes());
                if s.send_to(&p, dst).await.is_ok() {
                    sent += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cpu1 = pid.map(proc_usage);
        stop.store(true, Ordering::Relaxed);
        let (mut received, mut lat) = (0u64, Vec::new());
        for r in receivers {
            if let Ok((n, l)) = r.await {
                received += n;
                lat.extend(l);
            }
        }
        (sent, received, lat, cpu0, cpu1)
    });
    let (sent, received, mut lat, cpu0, cpu1) = result;
    lat.sort_unstable();
    let hz = 100.0;
    // Recorded packets are sent, not relayed back.
    let handled = if target == "recording" { sent } else { received };
    let cpu_us_per_packet = match (cpu0, cpu1) {
        (Some(a), Some(b)) if handled > 0 => Some((b.0 - a.0) as f64 / hz * 1e6 / handled as f64),
        _ => None,
    };
    let rss_kib_per_call = match (idle, loaded) {
        (Some(i), Some(l)) if calls > 0 => Some(l.1.saturating_sub(i.1) as f64 / calls as f64),
        _ => None,
    };
    println!(
        "{{\"target\":\"{target}\",\"calls\":{calls},\"seconds\":{secs},\"sent\":{sent},\"received\":{received},\"loss_pct\":{:.4},\"latency_p50_us\":{},\"latency_p99_us\":{},\"cpu_us_per_packet\":{},\"rss_kib_per_call\":{}}}",
        if sent > 0 && target != "recording" {
            (sent.saturating_sub(received)) as f64 * 100.0 / sent as f64
        } else {
            0.0
        },
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        cpu_us_per_packet.map(|v| format!("{v:.2}")).unwrap_or_else(|| "null".into()),
        rss_kib_per_call.map(|v| format!("{v:.1}")).unwrap_or_else(|| "null".into()),
    );
}
