//! Meeting dial-in end to end (issue 14): SIPp places the calls (the SIP side of a room
//! system: INVITE to `<id>@meet.<domain>`, an audio and a video line, SIP INFO keys, BYE);
//! each participant's media is played and heard by the test itself, on the port its SDP
//! names: a tone of its own, keys as RFC 4733 events or in-band tones, and what voicegw sends
//! back decoded, so the test measures (Goertzel) which tones each participant hears.
//!
//! SIPp here has no TLS, so these calls come over UDP with the lab setting
//! `allow_unencrypted`; dial-in over TLS, and the refusal of UDP without that setting, are
//! shown with OpenSSL's client and a raw datagram.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::audio::{alaw, alaw_decode, hears, power, wav_samples};
use harness::meet::{
    dial, dtmf_count, meeting_events, of_type, window, Heard, Participant, Plan, DOMAIN,
};
use harness::{require, Gateway};

const FRAME: usize = 160;

fn meetings(lab: bool) -> impl FnOnce(String) -> String {
    move |c| {
        format!(
            "{c}\n[meet]\nallow_unencrypted = {lab}\nivr_inter_digit_secs = 3\n\n\
             [[Meetings]]\nMeetingId = \"1234567890\"\nName = \"Weekly\"\n\n\
             [[Meetings]]\nMeetingId = \"5555555555\"\nModerated = true\n\
             ModeratorId = \"5555555555123\"\nModeratorPasscode = \"4321\"\n"
        )
    }
}

#[test]
fn three_participants_hear_each_other_and_not_themselves() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.110", meetings(true));
    let stop = Arc::new(AtomicBool::new(false));
    let tones = [600.0f32, 1100.0, 1700.0];
    let parts: Vec<Participant> = tones
        .iter()
        .enumerate()
        .map(|(i, &f)| {
            let plan = Plan { tone: Some((f, 0)), length_ms: 6000, ..Plan::default() };
            let (sip, rtp) = (5100 + i as u16, 42000 + 10 * i as u16);
            dial(&gw, &format!("room{i}"), "127.0.0.110", sip, rtp, "1234567890", &[], plan, &stop)
        })
        .collect();
    let heard: Vec<Heard> = parts.into_iter().map(|p| p.finish(Duration::from_secs(30))).collect();
    for (i, h) in heard.iter().enumerate() {
        // Everyone is in by 2 s; the last second is left out (hang-ups).
        let w = window(h, 2500, 4500);
        assert!(w.len() >= 8000 * 3 / 2, "participant {i} heard {} samples\n{}", w.len(), gw.log());
        for (j, &f) in tones.iter().enumerate() {
            let p = power(&w, f);
            if i == j {
                assert!(p < 1e4, "participant {i} hears itself ({f} Hz: {p:.0})");
            } else {
                assert!(hears(&w, f), "participant {i} does not hear {j} ({f} Hz: {p:.0})");
            }
        }
    }
    let events = meeting_events(&gw, 8);
    assert_eq!(of_type(&events, "PARTICIPANT_JOINED").len(), 3, "{events:#?}");
    assert_eq!(of_type(&events, "PARTICIPANT_LEFT").len(), 3, "{events:#?}");
    assert_eq!(of_type(&events, "MEETING_STARTED").len(), 1, "{events:#?}");
    assert_eq!(of_type(&events, "MEETING_ENDED").len(), 1, "{events:#?}");
    assert!(events.iter().all(|e| e["detail"]["meetingId"] == "1234567890"));
    // A CDR per participant leg.
    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 3, Duration::from_secs(10));
    let cdrs: Vec<&serde_json::Value> = records
        .iter()
        .filter(|(k, _)| k.contains("-CDRs/json/meetings/"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(cdrs.len(), 3, "{records:#?}");
    for c in cdrs {
        assert_eq!(c["Status"], "Completed", "{c}");
    }
    assert_eq!(gw.wait_process_metric("voicegw_meeting_participants_active", 0.0), 0.0);
    assert_eq!(gw.wait_process_metric("voicegw_meetings_active", 0.0), 0.0);
    // A media-quality record per participant at the end of its leg (formats.md §4; the
    // participant is the customer leg, the remote directions are empty).
    let log = gw.dir.join("var/ChimeVoiceConnectorLogs/meetings.jsonl");
    let records = harness::json_lines(&log, 3, Duration::from_secs(10));
    assert_eq!(records.len(), 3, "{records:#?}");
    for r in &records {
        assert_eq!(r.as_object().map(|o| o.len()), Some(37), "{r}");
        assert_eq!(r["voice_connector_id"], "meetings");
        assert!(r["cust2vc_rtp_packets"].as_u64().unwrap_or(0) > 200, "{r}");
        assert!(r["vc2cust_rtp_packets"].as_u64().unwrap_or(0) > 200, "{r}");
        assert_eq!(r["cust2vc_packets_lost"], 0, "{r}");
        assert!(r["mos_btwn_vc_and_cust"].as_f64().is_some_and(|m| m > 4.0), "{r}");
        assert!(r["rtt_btwn_vc_and_rem"].is_null() && r["rem2vc_rtp_packets"] == 0, "{r}");
    }
}

#[test]
fn the_ivr_takes_the_meeting_id_by_rfc4733_by_sip_info_and_in_band_and_star_7_mutes() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.111", meetings(true));
    let stop = Arc::new(AtomicBool::new(false));
    let keys = |from: u64, step: u64| -> Vec<(u64, char)> {
        "1234567890#".chars().enumerate().map(|(i, k)| (from + i as u64 * step, k)).collect()
    };
    let length = 11_000;
    // The first by RFC 4733 events, then *7 at 7 s.
    let mut events = keys(1000, 250);
    events.extend([(7000, '*'), (7250, '7')]);
    let a = Plan { tone: Some((600.0, 4500)), events, length_ms: length, ..Plan::default() };
    // The second by SIP INFO.
    let b = Plan { tone: Some((1100.0, 4500)), length_ms: length, ..Plan::default() };
    // The third by tones in its audio.
    let c = Plan {
        tone: Some((1700.0, 4500)),
        inband: keys(1000, 200),
        length_ms: length,
        ..Plan::default()
    };
    let ip = "127.0.0.111";
    let pa = dial(&gw, "rfc4733", ip, 5100, 42100, "u", &[], a, &stop);
    let pb = dial(&gw, "info", ip, 5101, 42110, "u", &keys(1000, 200), b, &stop);
    let pc = dial(&gw, "inband", ip, 5102, 42120, "", &[], c, &stop);
    let limit = Duration::from_secs(40);
    let (ha, hb, hc) = (pa.finish(limit), pb.finish(limit), pc.finish(limit));
    let log = gw.log();
    let joined = meeting_events(&gw, 3);
    assert_eq!(of_type(&joined, "PARTICIPANT_JOINED").len(), 3, "{joined:#?}\n{log}");
    for kind in ["rfc4733", "sip_info", "inband"] {
        assert!(dtmf_count(&gw, kind) >= 11.0, "{kind}: {}", gw.metrics());
    }
    // The prompt asked for the id before the keys (voicegw's speech, not silence).
    let asked = window(&ha, 0, 900);
    let level =
        asked.iter().map(|s| f64::from(s.unsigned_abs())).sum::<f64>() / asked.len().max(1) as f64;
    assert!(level > 200.0, "the IVR's prompt is heard (mean level {level:.0})");
    // All three in the meeting from about 4 s on: each hears the two others.
    let before = |h: &Heard| window(h, 5000, 6800);
    assert!(hears(&before(&hb), 600.0) && hears(&before(&hb), 1700.0), "B hears A and C");
    assert!(hears(&before(&hc), 600.0) && hears(&before(&hc), 1100.0), "C hears A and B");
    assert!(hears(&before(&ha), 1100.0) && hears(&before(&ha), 1700.0), "A hears B and C");
    // *7: A is muted (and told so); the others no longer hear A, and still hear each other.
    let after = |h: &Heard| window(h, 8500, 10_000);
    assert!(!hears(&after(&hb), 600.0), "A muted: B no longer hears A");
    assert!(!hears(&after(&hc), 600.0), "A muted: C no longer hears A");
    assert!(
        hears(&after(&hb), 1700.0) && hears(&after(&hc), 1100.0),
        "B and C still hear each other"
    );
}

#[test]
fn a_moderated_meeting_holds_participants_until_the_moderators_passcode() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.112", meetings(true));
    let stop = Arc::new(AtomicBool::new(false));
    let ip = "127.0.0.112";
    let p = Plan { tone: Some((600.0, 0)), length_ms: 9000, ..Plan::default() };
    let pp = dial(&gw, "participant", ip, 5100, 42200, "5555555555", &[], p, &stop);
    std::thread::sleep(Duration::from_secs(3));
    // The moderator's 13-digit id, then the passcode by SIP INFO.
    let m = Plan { tone: Some((1100.0, 0)), length_ms: 6000, ..Plan::default() };
    let passcode: Vec<(u64, char)> =
        "4321#".chars().enumerate().map(|(i, k)| (800 + i as u64 * 200, k)).collect();
    let pm = dial(&gw, "moderator", ip, 5101, 42210, "5555555555123", &passcode, m, &stop);
    let (hp, hm) = (pp.finish(Duration::from_secs(30)), pm.finish(Duration::from_secs(30)));
    let events = meeting_events(&gw, 3);
    let waiting = of_type(&events, "PARTICIPANT_WAITING");
    assert_eq!(waiting.len(), 1, "{events:#?}");
    let joined = of_type(&events, "PARTICIPANT_JOINED");
    assert_eq!(joined.len(), 2, "{events:#?}");
    assert_eq!(joined.iter().filter(|e| e["detail"]["moderator"] == true).count(), 1);
    // Before the moderator: the participant hears no one (the wait prompt, then silence).
    assert!(!hears(&window(&hp, 0, 2500), 1100.0));
    // After: both hear each other (the moderator joined about 4.5 s into the participant's call).
    assert!(hears(&window(&hp, 6000, 8000), 1100.0), "the participant hears the moderator");
    assert!(hears(&window(&hm, 3000, 5000), 600.0), "the moderator hears the participant");
}

#[test]
fn dial_in_is_tls_only_unless_a_lab_allows_otherwise() {
    if !require("openssl") {
        return;
    }
    let gw = Gateway::start("127.0.0.113", meetings(false));
    let invite = |transport: &str, local: &str, call_id: &str| {
        format!(
            "INVITE sip:1234567890@{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {local};branch=z9hG4bK-{call_id}\r\n\
             From: <sip:room@{local}>;tag=r1\r\nTo: <sip:1234567890@{DOMAIN}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:room@{local};transport={t}>\r\n\
             Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            t = transport.to_ascii_lowercase(),
            len = SDP.len(),
            sdp = SDP,
        )
    };
    // Over UDP: 403, with the reason.
    let udp = UdpSocket::bind("127.0.0.113:0").expect("udp");
    let local = udp.local_addr().expect("addr").to_string();
    udp.send_to(invite("UDP", &local, "meet-udp").as_bytes(), "127.0.0.113:5060").expect("send");
    udp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut buf = [0u8; 4096];
    let mut status = String::new();
    while let Ok(n) = udp.recv(&mut buf) {
        status = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string();
        if !status.contains(" 100 ") {
            break;
        }
    }
    assert!(status.starts_with("SIP/2.0 403"), "{status}");
    // Over TLS: answered, video declined.
    let mut tls = harness::TlsClient::connect("127.0.0.113:5061", &[]);
    tls.send(&invite("TLS", "127.0.0.113:40999", "meet-tls"));
    let ok = tls.expect_full("SIP/2.0 200", Duration::from_secs(10));
    assert!(ok.contains("m=video 0 "), "{ok}");
    assert!(ok.contains("a=rtpmap:8 PCMA/8000"), "{ok}");
    assert!(gw.log().contains("meeting dial-in refused"), "{}", gw.log());
}

const SDP: &str =
    "v=0\r\no=room 1 1 IN IP4 127.0.0.113\r\ns=-\r\nc=IN IP4 127.0.0.113\r\nt=0 0\r\n\
m=audio 42300 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
m=video 42302 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

#[test]
fn speech_through_a_two_party_meeting_arrives_intact_and_soon() {
    if !require("sipp") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let speech = Arc::new(wav_samples(&root.join("assets/prompts/enter-meeting-id.wav")));
    assert!(speech.len() > 8000, "a second of speech at least");
    let gw = Gateway::start("127.0.0.114", meetings(true));
    let stop = Arc::new(AtomicBool::new(false));
    let ip = "127.0.0.114";
    let length = 2000 + (speech.len() as u64) / 8 + 1500;
    let talker =
        Plan { speech: Some((speech.clone(), 2000)), length_ms: length, ..Plan::default() };
    let listener = Plan { length_ms: length, ..Plan::default() };
    let pt = dial(&gw, "talker", ip, 5100, 42400, "1234567890", &[], talker, &stop);
    let pl = dial(&gw, "listener", ip, 5101, 42410, "1234567890", &[], listener, &stop);
    let limit = Duration::from_secs(40);
    let (t, l) = (pt.finish_leg(limit), pl.finish_leg(limit));
    let sent_at = t.speech_sent.expect("the talker spoke");
    // The listener's audio as one signal, each sample with the arrival of its packet.
    let heard: Vec<i16> = l.heard.iter().flat_map(|(_, s)| s.clone()).collect();
    let arrival: Vec<Instant> = l
        .heard
        .iter()
        .zip(&l.arrivals)
        .flat_map(|((_, s), a)| std::iter::repeat_n(*a, s.len()))
        .collect();
    // Where the speech starts in what was heard: the lag of the best match of its first
    // second (cross-correlation), then the error over the whole clip at that lag.
    let probe = &speech[..8000];
    let energy: f64 = probe.iter().map(|&x| f64::from(x).powi(2)).sum();
    let (lag, score) = (0..heard.len().saturating_sub(speech.len()))
        .map(|lag| {
            let dot: f64 =
                probe.iter().zip(&heard[lag..]).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            (lag, dot / energy)
        })
        .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best });
    assert!(score > 0.9, "the speech is found in what the listener heard (score {score:.2})");
    // What the talker sent is the speech through its A-law encoder: with one voice the bridge's
    // mix is that voice, so the listener should get it back sample for sample.
    let sent: Vec<i16> = speech.iter().map(|&x| alaw_decode(alaw(x))).collect();
    let got = &heard[lag..lag + sent.len()];
    let (signal, noise) = sent.iter().zip(got).fold((0.0f64, 0.0f64), |(s, n), (&a, &b)| {
        (s + f64::from(a).powi(2), n + (f64::from(a) - f64::from(b)).powi(2))
    });
    let snr = 10.0 * (signal / noise.max(1.0)).log10();
    let frames = sent.len() / FRAME;
    let exact = (0..frames)
        .filter(|f| sent[f * FRAME..(f + 1) * FRAME] == got[f * FRAME..(f + 1) * FRAME])
        .count();
    let delay = arrival[lag].saturating_duration_since(sent_at);
    println!(
        "two-party meeting: {exact} of {frames} frames sample for sample, SNR {snr:.1} dB against \
         what the talker sent; end-to-end delay {} ms (the packet with the speech's first \
         sample, sent to its arrival)",
        delay.as_millis()
    );
    // A frame lost to a stalled machine is silence for 20 ms, not a shift: nearly all frames
    // must still be exact.
    assert!(exact * 10 >= frames * 9, "{exact} of {frames} frames intact (SNR {snr:.1} dB)");
    // Playout depth (40 ms) plus up to a period (20 ms) waiting for the bridge's clock; a busy
    // machine adds its scheduling.
    assert!(delay < Duration::from_millis(500), "delay {delay:?}");
    assert!(delay >= Duration::from_millis(20), "delay {delay:?}: too short to be real");
}

#[test]
fn sighup_adds_a_meeting_for_new_dial_ins_and_calls_in_progress_stay() {
    if !require("sipp") {
        return;
    }
    let gw = Gateway::start("127.0.0.117", meetings(true));
    let stop = Arc::new(AtomicBool::new(false));
    let ip = "127.0.0.117";
    let long = Plan { tone: Some((600.0, 0)), length_ms: 9000, ..Plan::default() };
    let pa = dial(&gw, "in-progress", ip, 5100, 42800, "1234567890", &[], long, &stop);
    // Not configured yet: the IVR answers and asks for an id, nobody joins 2222222222.
    let short = Plan { length_ms: 2000, ..Plan::default() };
    let before = dial(&gw, "before", ip, 5101, 42810, "2222222222", &[], short.clone(), &stop);
    before.finish(Duration::from_secs(20));
    let path = gw.dir.join("voicegw.toml");
    let cfg = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, format!("{cfg}\n[[Meetings]]\nMeetingId = \"2222222222\"\n"))
        .expect("config");
    let status =
        std::process::Command::new("kill").args(["-HUP", &gw.child.id().to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()));
    let start = std::time::Instant::now();
    while !gw.log().contains("configuration reloaded") && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.log().contains("configuration reloaded"), "{}", gw.log());
    let after = dial(&gw, "after", ip, 5102, 42820, "2222222222", &[], short, &stop);
    after.finish(Duration::from_secs(20));
    let heard = pa.finish(Duration::from_secs(30));
    assert!(!heard.is_empty(), "the call in progress went on");
    let events = meeting_events(&gw, 4);
    let joined: Vec<&str> = of_type(&events, "PARTICIPANT_JOINED")
        .iter()
        .filter_map(|e| e["detail"]["meetingId"].as_str())
        .collect();
    assert_eq!(joined, ["1234567890", "2222222222"], "{events:#?}");
}
