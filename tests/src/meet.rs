//! Meeting participants for the end-to-end tests: the SIP side played by SIPp (a dial-in with
//! an audio and a video line, SIP INFO keys, BYE), the media by the test itself on the port
//! the SDP names (a tone, a recording, RFC 4733 or in-band keys; what voicegw sends back,
//! decoded, with when each packet came).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audio::{alaw, alaw_decode};
use crate::{Gateway, Sipp};

/// The meet domain of the embedded configuration.
pub const DOMAIN: &str = "meet.voiceconnector.local";
const FRAME: usize = 160;

// ---- A participant's media, played and heard by the test ----

/// What a participant's media does, in milliseconds from voicegw's first packet to it.
#[derive(Clone, Default)]
pub struct Plan {
    /// Its voice: a tone (Hz) from this time on.
    pub tone: Option<(f32, u64)>,
    /// Keys sent as RFC 4733 events (payload type 101): each key at its time.
    pub events: Vec<(u64, char)>,
    /// Keys sent as in-band tones in the audio.
    pub inband: Vec<(u64, char)>,
    /// A recording played from this time on (instead of the tone).
    pub speech: Option<(Arc<Vec<i16>>, u64)>,
    /// How long it runs.
    pub length_ms: u64,
}

/// What a participant heard: (ms since voicegw's first packet, decoded audio) per packet.
pub type Heard = Vec<(u64, Vec<i16>)>;

/// What a participant's media did: what it heard (and when each packet came), and when it
/// sent the first sample of its recording.
#[derive(Default)]
pub struct Leg {
    pub heard: Heard,
    pub arrivals: Vec<Instant>,
    pub speech_sent: Option<Instant>,
}

pub fn dtmf_pair(key: char) -> (f32, f32) {
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let keys = ["123A", "456B", "789C", "*0#D"];
    for (r, k) in keys.iter().enumerate() {
        if let Some(c) = k.find(key) {
            return (rows[r], cols[c]);
        }
    }
    panic!("not a key: {key}")
}

pub fn event_code(key: char) -> u8 {
    match key {
        '0'..='9' => key as u8 - b'0',
        '*' => 10,
        '#' => 11,
        _ => panic!("not a key: {key}"),
    }
}

/// Runs a participant's media on `sock` per `plan` until `stop` or the plan's end.
pub fn media(sock: UdpSocket, plan: Plan, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Leg> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(5))).expect("timeout");
        let mut buf = [0u8; 2048];
        let mut leg = Leg::default();
        // voicegw speaks first (its prompts or silence): its address and the clock start then.
        let waited = Instant::now();
        let gw: SocketAddr = loop {
            if let Ok((_, from)) = sock.recv_from(&mut buf) {
                break from;
            }
            if waited.elapsed() > Duration::from_secs(15) || stop.load(Ordering::Relaxed) {
                return leg;
            }
        };
        let start = Instant::now();
        let (ssrc, mut seq, ts) = (rand_u32(), 0u16, rand_u32());
        let mut n: u64 = 0;
        let mut phase = 0.0f64;
        let mut key_phase = (0.0f64, 0.0f64);
        while !stop.load(Ordering::Relaxed) && n * 20 < plan.length_ms {
            let ms = n * 20;
            // RFC 4733: each key lasts 100 ms (5 packets), its end sent three times.
            let event = plan.events.iter().find(|(at, _)| ms >= *at && ms < at + 160);
            let mut p = vec![0x80u8, 8];
            if let Some(&(at, key)) = event {
                let into = ms - at;
                let end = into >= 100;
                let duration = ((into.min(100) + 20) * 8) as u16;
                p[1] = 101;
                p.extend_from_slice(&seq.to_be_bytes());
                p.extend_from_slice(&((at * 8) as u32).wrapping_add(ts).to_be_bytes());
                p.extend_from_slice(&ssrc.to_be_bytes());
                p.extend_from_slice(&[event_code(key), if end { 0x8a } else { 0x0a }]);
                p.extend_from_slice(&duration.to_be_bytes());
                let _ = sock.send_to(&p, gw);
                seq = seq.wrapping_add(1);
            } else {
                p.extend_from_slice(&seq.to_be_bytes());
                p.extend_from_slice(&ts.wrapping_add((ms * 8) as u32).to_be_bytes());
                p.extend_from_slice(&ssrc.to_be_bytes());
                let key = plan.inband.iter().find(|(at, _)| ms >= *at && ms < at + 100);
                let speech = plan.speech.as_ref().filter(|(_, from)| ms >= *from);
                if let Some((clip, from)) = speech {
                    if ms == *from {
                        leg.speech_sent = Some(Instant::now());
                    }
                    let at = ((ms - from) as usize) * 8;
                    for i in 0..FRAME {
                        p.push(alaw(clip.get(at + i).copied().unwrap_or(0)));
                    }
                }
                for _ in 0..FRAME * usize::from(speech.is_none()) {
                    let mut v = 0.0f64;
                    if let Some(&(_, k)) = key {
                        let (lo, hi) = dtmf_pair(k);
                        key_phase.0 += 2.0 * std::f64::consts::PI * f64::from(lo) / 8000.0;
                        key_phase.1 += 2.0 * std::f64::consts::PI * f64::from(hi) / 8000.0;
                        v += 6000.0 * (key_phase.0.sin() + key_phase.1.sin());
                    } else if let Some((f, _)) = plan.tone.filter(|(_, from)| ms >= *from) {
                        phase += 2.0 * std::f64::consts::PI * f64::from(f) / 8000.0;
                        v += 8000.0 * phase.sin();
                    }
                    p.push(alaw(v as i16));
                }
                let _ = sock.send_to(&p, gw);
                seq = seq.wrapping_add(1);
            }
            n += 1;
            // Read what came, until the next frame is due.
            let due = start + Duration::from_millis(n * 20);
            loop {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                sock.set_read_timeout(Some(due - now)).expect("timeout");
                match sock.recv_from(&mut buf) {
                    Ok((len, _)) if len > 12 && buf[1] & 0x7f == 8 => {
                        let at = start.elapsed().as_millis() as u64;
                        leg.heard
                            .push((at, buf[12..len].iter().map(|b| alaw_decode(*b)).collect()));
                        leg.arrivals.push(Instant::now());
                    }
                    _ => {}
                }
            }
        }
        leg
    })
}

pub fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    t.subsec_nanos() ^ 0x5a5a_1234
}

/// What was heard between `from` and `to` ms, as one signal.
pub fn window(h: &Heard, from: u64, to: u64) -> Vec<i16> {
    h.iter().filter(|(at, _)| *at >= from && *at < to).flat_map(|(_, s)| s.clone()).collect()
}

// ---- The SIP side: SIPp ----

/// A SIPp dial-in: INVITE `user@meet…` offering A-law with telephone-events on `rtp_port`
/// (and a video line, declined), then SIP INFO `info` keys, then BYE after `hold_ms`.
pub fn dialin_scenario(user: &str, rtp_port: u16, info: &[(u64, char)], hold_ms: u64) -> String {
    let mut s = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="meeting dial-in">
  <send retrans="500">
    <![CDATA[
      INVITE sip:{user}@{DOMAIN} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Room" <sip:room@[local_ip]:[local_port]>;tag=[pid]room[call_number]
      To: <sip:{user}@{DOMAIN}>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:room@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=room 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio {rtp_port} RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      m=video {video} RTP/AVP 96
      a=rtpmap:96 H264/90000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200">
    <action>
      <ereg regexp="m=video 0 " search_in="body" check_it="true" assign_to="declined"/>
    </action>
  </recv>
  <Reference variables="declined"/>
  <send>
    <![CDATA[
      ACK sip:{user}@{DOMAIN} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Room" <sip:room@[local_ip]:[local_port]>;tag=[pid]room[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"#,
        video = rtp_port + 2,
    );
    let mut at = 0;
    for (i, &(when, key)) in info.iter().enumerate() {
        s += &format!("  <pause milliseconds=\"{}\"/>\n", when - at);
        at = when;
        let body = format!("Signal={key}\r\nDuration=160\r\n");
        s += &format!(
            r#"  <send retrans="500">
    <![CDATA[
      INFO sip:{user}@{DOMAIN} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Room" <sip:room@[local_ip]:[local_port]>;tag=[pid]room[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      {body}
    ]]>
  </send>
  <recv response="200"/>
"#,
            cseq = i + 2,
            body = body.trim_end(),
        );
    }
    s += &format!(
        r#"  <pause milliseconds="{}"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:{user}@{DOMAIN} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Room" <sip:room@[local_ip]:[local_port]>;tag=[pid]room[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {} BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#,
        hold_ms.saturating_sub(at),
        info.len() + 2,
    );
    s
}

/// One participant: its SIPp and its media.
pub struct Participant {
    pub sipp: Sipp,
    pub media: std::thread::JoinHandle<Leg>,
}

/// Dials `user` from SIPp on `ip`, port `sip_port`; the media on `ip`:`rtp_port` per `plan`.
#[allow(clippy::too_many_arguments)]
pub fn dial(
    gw: &Gateway,
    name: &str,
    ip: &str,
    sip_port: u16,
    rtp_port: u16,
    user: &str,
    info: &[(u64, char)],
    plan: Plan,
    stop: &Arc<AtomicBool>,
) -> Participant {
    let sock = UdpSocket::bind((ip, rtp_port)).expect("media socket");
    let media = media(sock, plan.clone(), stop.clone());
    let scenario = gw.dir.join(format!("{name}.xml"));
    // The INFO keys count from the 200 OK, about when voicegw's media starts.
    std::fs::write(&scenario, dialin_scenario(user, rtp_port, info, plan.length_ms))
        .expect("scenario");
    let remote = format!("{}:5060", gw.ip);
    let port = sip_port.to_string();
    let scenario = scenario.display().to_string();
    let args = [remote.as_str(), "-i", ip, "-p", port.as_str(), "-m", "1"];
    let sipp = Sipp::spawn(&gw.dir, name, &scenario, &args);
    Participant { sipp, media }
}

impl Participant {
    pub fn finish(self, limit: Duration) -> Heard {
        self.finish_leg(limit).heard
    }

    pub fn finish_leg(self, limit: Duration) -> Leg {
        let r = self.sipp.wait(limit);
        assert_eq!((r.successful, r.failed), (1, 0), "{r:#?}");
        self.media.join().expect("media thread")
    }
}

pub fn meeting_events(gw: &Gateway, want: usize) -> Vec<serde_json::Value> {
    let file = gw.dir.join("var/streaming-events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<serde_json::Value> = crate::json_lines(&file, 0, Duration::ZERO)
            .into_iter()
            .filter(|e| e["source"] == "voicegw.meetings")
            .collect();
        if events.len() >= want || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn of_type<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["detail"]["meetingEventType"] == kind).collect()
}

pub fn dtmf_count(gw: &Gateway, kind: &str) -> f64 {
    let key = format!(
        "voicegw_meeting_dtmf_total{{voice_connector_id=\"\",region=\"\",kind=\"{kind}\"}} "
    );
    gw.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
