//! Meeting load generator: dials MEETINGS meetings of SIZE participants into voicegw's meet
//! domain (plain SIP over UDP, the lab setting `allow_unencrypted`), then sends every
//! participant's G.711 RTP (three talkers per meeting with a tone, the others silence, as a
//! meeting is) for SECONDS, reads everything voicegw sends back, and prints one JSON line:
//! participants joined, packets sent/received (loss), the bridge's added delay measured by a
//! probe (an impulse from one participant of the first meeting, once a second, timed to its
//! arrival at another), and — given voicegw's PID — its CPU per participant-second and
//! resident memory per participant.
//!
//! ```text
//! meet_load GW_IP LOCAL_IP MEETINGS SIZE SECONDS [GW_PID]
//! ```
//!
//! Meeting ids are `7000000000` + n (configure them). Bounded: at most 100 meetings of at most
//! 50, 120 s; everything on the given loopback addresses; one thread, non-blocking sockets.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use media::g711::Law;
use voicegw_benches::{percentile, proc_usage};

const DOMAIN: &str = "meet.voiceconnector.local";
const FRAME: usize = 160;
/// A-law silence.
const SILENCE: u8 = 0xd5;

struct Participant {
    media: UdpSocket,
    /// voicegw's port for it, from the 200 OK.
    to: Option<SocketAddr>,
    to_tag: Option<String>,
    talker: bool,
    seq: u16,
}

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=load 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    )
}

fn request(
    method: &str,
    meeting: &str,
    i: usize,
    local: SocketAddr,
    to_tag: Option<&str>,
    body: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let cseq = if method == "BYE" { 2 } else { 1 };
    let ctype =
        if body.is_empty() { String::new() } else { "Content-Type: application/sdp\r\n".into() };
    format!(
        "{method} sip:{meeting}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-load-{method}-{i}\r\n\
         From: <sip:load{i}@{local}>;tag=load{i}\r\nTo: <sip:{meeting}@{DOMAIN}>{to_tag}\r\n\
         Call-ID: meet-load-{i}\r\nCSeq: {cseq} {method}\r\nContact: <sip:load{i}@{local}>\r\n\
         Max-Forwards: 70\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// From a response: (status, Call-ID number, To tag, media port).
fn read_response(text: &str) -> Option<(u16, usize, Option<String>, Option<u16>)> {
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let mut call = None;
    let mut tag = None;
    let mut port = None;
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("Call-ID: meet-load-") {
            call = v.trim().parse().ok();
        }
        if l.starts_with("To:") {
            tag = l.split(";tag=").nth(1).map(|t| t.trim().to_string());
        }
        if let Some(v) = l.strip_prefix("m=audio ") {
            port = v.split_whitespace().next().and_then(|p| p.parse().ok());
        }
    }
    Some((status, call?, tag, port))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: meet_load GW_IP LOCAL_IP MEETINGS SIZE SECONDS [GW_PID]");
        std::process::exit(2);
    }
    let gw_ip = &args[1];
    let local_ip = &args[2];
    let meetings: usize = args[3].parse::<usize>().expect("MEETINGS").min(100);
    let size: usize = args[4].parse::<usize>().expect("SIZE").clamp(2, 50);
    let seconds: u64 = args[5].parse::<u64>().expect("SECONDS").min(120);
    let pid: Option<u32> = args.get(6).and_then(|p| p.parse().ok());
    let gw: SocketAddr = format!("{gw_ip}:5060").parse().expect("gateway address");
    let sip = UdpSocket::bind(format!("{local_ip}:0")).expect("SIP socket");
    sip.set_nonblocking(true).expect("nonblocking");
    let local = sip.local_addr().expect("address");
    let rss_before = pid.map(|p| proc_usage(p).1).unwrap_or(0);

    let n = meetings * size;
    let mut parts: Vec<Participant> = (0..n)
        .map(|i| {
            let media = UdpSocket::bind(format!("{local_ip}:0")).expect("media socket");
            media.set_nonblocking(true).expect("nonblocking");
            Participant { media, to: None, to_tag: None, talker: i % size < 3, seq: 0 }
        })
        .collect();
    let meeting_of = |i: usize| format!("{}", 7_000_000_000u64 + (i / size) as u64);
    // Dial at 100 per second; read answers as they come.
    let mut buf = [0u8; 4096];
    let dial_start = Instant::now();
    let mut sent_invites = 0;
    while parts.iter().any(|p| p.to.is_none()) && dial_start.elapsed() < Duration::from_secs(30) {
        let due = (dial_start.elapsed().as_millis() as usize / 10).min(n);
        while sent_invites < due {
            let i = sent_invites;
            let port = parts[i].media.local_addr().expect("addr").port();
            let msg = request("INVITE", &meeting_of(i), i, local, None, &sdp(local_ip, port));
            let _ = sip.send_to(msg.as_bytes(), gw);
            sent_invites += 1;
        }
        while let Ok((len, _)) = sip.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            let Some((status, i, tag, port)) = read_response(&text) else { continue };
            if status != 200 || i >= n || parts[i].to.is_some() {
                continue;
            }
            parts[i].to = port.map(|p| SocketAddr::new(gw.ip(), p));
            parts[i].to_tag = tag.clone();
            let ack = request("ACK", &meeting_of(i), i, local, tag.as_deref(), "");
            let _ = sip.send_to(ack.as_bytes(), gw);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let joined = parts.iter().filter(|p| p.to.is_some()).count();

    // Media: a frame per participant every 20 ms. The probe: participant 0 of meeting 0 sends
    // an impulse (a loud frame) once a second; participant 1 times its arrival.
    let tone: Vec<u8> = (0..FRAME)
        .map(|k| {
            let v = 6000.0 * (2.0 * std::f64::consts::PI * 440.0 * k as f64 / 8000.0).sin();
            alaw(v as i16)
        })
        .collect();
    let impulse: Vec<u8> =
        (0..FRAME).map(|k| alaw(if k % 2 == 0 { 20000 } else { -20000 })).collect();
    let mut packet = vec![0u8; 12 + FRAME];
    let (mut sent, mut received) = (0u64, 0u64);
    let mut delays: Vec<u32> = Vec::new();
    let mut impulse_at: Option<Instant> = None;
    let start = Instant::now();
    let warmup = Duration::from_secs(2);
    let mut cpu_from: Option<(Instant, u64)> = None;
    let mut rss_during = 0;
    let mut tick = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) + warmup {
        if cpu_from.is_none() && start.elapsed() >= warmup {
            cpu_from = pid.map(|p| (Instant::now(), proc_usage(p).0));
        }
        for (i, p) in parts.iter_mut().enumerate() {
            let Some(to) = p.to else { continue };
            packet[0] = 0x80;
            packet[1] = 8;
            packet[2..4].copy_from_slice(&p.seq.to_be_bytes());
            packet[4..8].copy_from_slice(&((u32::from(p.seq)) * FRAME as u32).to_be_bytes());
            packet[8..12].copy_from_slice(&(i as u32).to_be_bytes());
            let probe = i == 0 && tick % 50 == 25;
            if probe {
                packet[12..].copy_from_slice(&impulse);
                impulse_at = Some(Instant::now());
            } else if p.talker && i != 0 {
                packet[12..].copy_from_slice(&tone);
            } else {
                packet[12..].fill(SILENCE);
            }
            p.seq = p.seq.wrapping_add(1);
            if p.media.send_to(&packet, to).is_ok() && cpu_from.is_some() {
                sent += 1;
            }
        }
        tick += 1;
        let due = start + Duration::from_millis(tick * 20);
        // Read until the next frame is due.
        loop {
            let mut any = false;
            for (i, p) in parts.iter().enumerate() {
                while let Ok(len) = p.media.recv(&mut buf) {
                    any = true;
                    if cpu_from.is_some() {
                        received += 1;
                    }
                    if i == 1 && len > 12 {
                        let loud =
                            buf[12..len].iter().filter(|b| alaw_decode(**b).abs() > 15000).count();
                        if loud > FRAME / 2 {
                            if let Some(t) = impulse_at.take() {
                                delays.push(t.elapsed().as_micros() as u32);
                            }
                        }
                    }
                }
            }
            if Instant::now() >= due {
                break;
            }
            if !any {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    }
    let cpu = match (pid, cpu_from) {
        (Some(p), Some((t0, c0))) => {
            let (c1, rss) = proc_usage(p);
            rss_during = rss;
            let ticks_per_s = 100.0;
            Some((c1.saturating_sub(c0)) as f64 / ticks_per_s / t0.elapsed().as_secs_f64())
        }
        _ => None,
    };
    for (i, p) in parts.iter().enumerate() {
        if p.to.is_some() {
            let bye = request("BYE", &meeting_of(i), i, local, p.to_tag.as_deref(), "");
            let _ = sip.send_to(bye.as_bytes(), gw);
        }
    }
    delays.sort_unstable();
    let participant_seconds = joined as f64;
    let cpu_json = cpu.map_or("null".to_string(), |c| format!("{:.3}", c));
    let per_participant_us = cpu
        .map_or("null".to_string(), |c| format!("{:.1}", c * 1e6 / participant_seconds.max(1.0)));
    let rss_per = if pid.is_some() && joined > 0 {
        format!("{:.1}", rss_during.saturating_sub(rss_before) as f64 / joined as f64)
    } else {
        "null".into()
    };
    // Every participant is sent a frame every 20 ms, whatever it sends.
    let measured = cpu_from.map_or(seconds as f64, |(t0, _)| t0.elapsed().as_secs_f64());
    let expected = (joined as f64 * 50.0 * measured).max(1.0);
    println!(
        "{{\"meetings\":{meetings},\"size\":{size},\"participants\":{joined},\"sent\":{sent},\
         \"received\":{received},\"received_of_expected\":{:.4},\"probe_delay_ms_p50\":{:.1},\
         \"probe_delay_ms_max\":{:.1},\"probes\":{},\"cpu_cores\":{cpu_json},\
         \"cpu_us_per_participant_second\":{per_participant_us},\"rss_kib_per_participant\":{rss_per}}}",
        received as f64 / expected,
        f64::from(percentile(&delays, 0.5)) / 1000.0,
        f64::from(percentile(&delays, 1.0)) / 1000.0,
        delays.len(),
    );
}

fn alaw(v: i16) -> u8 {
    Law::ALaw.encode(v)
}

fn alaw_decode(a: u8) -> i16 {
    Law::ALaw.decode(a)
}
