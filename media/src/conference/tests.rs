//! The conference in virtual time: legs send tones and keys; what each leg is sent is read
//! back as a device would (decrypted, decoded).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;
use crate::bridge::tests::{power, tone_packet};

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), port)
}

fn spec(last: u8, srtp: Option<(Suite, MasterKey, MasterKey)>) -> LegSpec {
    LegSpec {
        law: Law::ALaw,
        dtmf_pt: Some(101),
        peer: addr(last, 4000),
        learn_source: false,
        frames_per_packet: 1,
        srtp,
        ssrc: 0x1000 + u32::from(last),
        seq: 100,
        timestamp: 5000,
    }
}

/// What each leg was sent: (to, RTP header fields, decoded audio), per call.
type Heard = HashMap<CallId, Vec<(SocketAddr, u16, u32, u32, Vec<i16>)>>;

fn collect(heard: &mut Heard) -> impl FnMut(CallId, SocketAddr, &[u8]) + '_ {
    move |call, to, packet| {
        let h = RtpHeader::parse(packet).expect("rtp");
        let audio: Vec<i16> = packet[h.payload_offset..h.payload_offset + h.payload_len]
            .iter()
            .map(|c| Law::ALaw.decode(*c))
            .collect();
        heard.entry(call).or_default().push((to, h.sequence, h.timestamp, h.ssrc, audio));
    }
}

fn audio_of(heard: &Heard, call: CallId) -> Vec<i16> {
    heard.get(&call).map(|v| v.iter().flat_map(|p| p.4.clone()).collect()).unwrap_or_default()
}

#[test]
fn bridged_legs_hear_each_other_not_themselves_and_keep_one_stream_each() {
    let mut c = Conference::new();
    c.open(1, spec(1, None), at(0));
    c.open(2, spec(2, None), at(0));
    c.open(3, spec(3, None), at(0));
    let mut heard = Heard::new();
    // 100 ms before the meeting: silence, on the legs' own streams.
    for t in (20..=100).step_by(20) {
        c.handle_timeout(at(t), &mut collect(&mut heard), &mut |_, _| {});
    }
    for call in [1, 2, 3] {
        c.bridge(call, "1234567890", at(100));
    }
    let tones = [(1u64, 600.0f32), (2, 1100.0), (3, 1700.0)];
    for n in 0..100u32 {
        let t = 100 + u64::from(n) * 20;
        for &(call, f) in &tones {
            let mut p = tone_packet(n, f, 8000.0, call as u32);
            let len = p.len();
            c.rtp(call, addr(call as u8, 4000), &mut p, len, at(t));
        }
        c.handle_timeout(at(t + 20), &mut collect(&mut heard), &mut |_, _| {});
    }
    for &(call, own) in &tones {
        let packets = &heard[&call];
        assert!(packets.iter().all(|p| p.0 == addr(call as u8, 4000)), "sent to its SDP address");
        // One stream: the same SSRC, sequence numbers and timestamps without a gap.
        for w in packets.windows(2) {
            assert_eq!(w[0].3, w[1].3);
            assert_eq!(w[1].1, w[0].1.wrapping_add(1), "sequence continues into the bridge");
            assert_eq!(w[1].2, w[0].2.wrapping_add(FRAME as u32));
        }
        let audio = audio_of(&heard, call);
        let tail = &audio[audio.len() - 8000..];
        for &(other, f) in &tones {
            let p = power(tail, f);
            if other == call {
                assert!(p < 1e4, "leg {call} hears itself: {p}");
            } else {
                assert!(p > 1e6, "leg {call} does not hear leg {other}: {p}");
            }
        }
        assert!(power(tail, own) * 100.0 < power(tail, tones[(call as usize) % 3].1));
    }
    assert_eq!(c.meetings(), 1);
    let r = c.close(1).expect("a report");
    assert_eq!((r.packets_in, r.lost, r.dropped_wrong_source), (100, 0, 0));
    c.close(2);
    c.close(3);
    c.handle_timeout(at(5000), &mut |_, _, _| {}, &mut |_, _| {});
    assert_eq!(c.meetings(), 0, "the bridge goes with its last participant");
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn a_leg_outside_a_meeting_hears_its_prompts_then_silence_and_a_prompt_mixes_into_the_bridge() {
    let mut c = Conference::new();
    c.open(1, spec(1, None), at(0));
    let clip: Arc<[i16]> = (0..800).map(|i| if i % 2 == 0 { 4000 } else { -4000 }).collect();
    c.play(1, clip.clone());
    let mut heard = Heard::new();
    for t in (20..=200).step_by(20) {
        c.handle_timeout(at(t), &mut collect(&mut heard), &mut |_, _| {});
    }
    let audio = audio_of(&heard, 1);
    assert_eq!(audio.len(), 10 * FRAME);
    assert!(audio[..800].iter().all(|s| s.abs() > 3000), "the prompt");
    assert!(audio[800..].iter().all(|s| s.abs() < 16), "then silence");
    // In the meeting, alone: the prompt is mixed into the (silent) mix.
    c.bridge(1, "m", at(200));
    c.play(1, clip);
    heard.clear();
    for t in (220..=400).step_by(20) {
        c.handle_timeout(at(t), &mut collect(&mut heard), &mut |_, _| {});
    }
    let audio = audio_of(&heard, 1);
    assert!(audio[..800].iter().all(|s| s.abs() > 3000), "the prompt in the meeting");
    c.stop_prompts(1);
}

#[test]
fn packets_from_elsewhere_are_dropped_and_keys_are_heard() {
    let mut c = Conference::new();
    c.open(1, spec(1, None), at(0));
    let mut p = tone_packet(0, 600.0, 8000.0, 1);
    let len = p.len();
    c.rtp(1, addr(9, 4000), &mut p, len, at(0));
    c.rtp(99, addr(1, 4000), &mut p, len, at(0));
    // RFC 4733: key 5, three packets of one event (the end bit on the last), then key #.
    for (seq, (event, end)) in [(5u8, false), (5, false), (5, true), (11, false)].iter().enumerate()
    {
        let ts: u32 = if *event == 5 { 800 } else { 2400 };
        let mut pkt = vec![0x80, 101, 0, seq as u8, 0, 0, (ts >> 8) as u8, ts as u8, 0, 0, 0, 1];
        pkt.extend_from_slice(&[*event, if *end { 0x8a } else { 0x0a }, 0, 160]);
        let n = pkt.len();
        c.rtp(1, addr(1, 4002), &mut pkt, n, at(20 * seq as u64));
    }
    let keys: Vec<char> = std::iter::from_fn(|| c.poll_event())
        .map(|ConferenceEvent::Key { digit, source, .. }| {
            assert_eq!(source, KeySource::Rfc4733);
            digit.as_char()
        })
        .collect();
    assert_eq!(keys, ['5', '#'], "once per key, from any port of the SDP's address");
    let r = c.close(1).expect("report");
    assert_eq!((r.dropped_wrong_source, r.packets_in), (1, 4));
}

#[test]
fn an_srtp_leg_is_decrypted_in_and_encrypted_out() {
    let suite = Suite::AesCm128HmacSha1_80;
    let theirs = MasterKey { key: [7; 16], salt: [8; 14] };
    let ours = MasterKey { key: [9; 16], salt: [10; 14] };
    let mut c = Conference::new();
    c.open(1, spec(1, Some((suite, theirs.clone(), ours.clone()))), at(0));
    c.open(2, spec(2, None), at(0));
    c.bridge(1, "m", at(0));
    c.bridge(2, "m", at(0));
    let mut device = Context::new(suite, &theirs);
    let mut heard = Heard::new();
    let mut to_device = Vec::new();
    for n in 0..50u32 {
        let mut p = tone_packet(n, 900.0, 8000.0, 1);
        let len = p.len();
        p.resize(len + 16, 0);
        let len = device.protect_rtp(&mut p, len).expect("protect");
        c.rtp(1, addr(1, 4000), &mut p, len, at(u64::from(n) * 20));
        c.handle_timeout(
            at(u64::from(n) * 20 + 20),
            &mut |call, to, pkt: &[u8]| {
                if call == 1 {
                    to_device.push(pkt.to_vec());
                } else {
                    collect(&mut heard)(call, to, pkt)
                }
            },
            &mut |_, _| {},
        );
    }
    let audio = audio_of(&heard, 2);
    assert!(power(&audio[audio.len() - 4000..], 900.0) > 1e6, "the SRTP leg is heard");
    let mut device_in = Context::new(suite, &ours);
    for mut p in to_device {
        device_in.unprotect_rtp(&mut p).expect("voicegw's SRTP, with the key it answered");
    }
    assert_eq!(c.close(1).expect("report").srtp_failures, 0);
}

#[test]
fn a_plain_leg_learns_its_source_once_when_allowed_and_an_srtp_leg_follows_what_authenticates() {
    let mut c = Conference::new();
    let mut learning = spec(1, None);
    learning.learn_source = true;
    c.open(1, learning, at(0));
    c.open(2, spec(2, None), at(0));
    let nat = addr(50, 6000);
    for call in [1u64, 2] {
        let mut p = tone_packet(0, 600.0, 8000.0, call as u32);
        let len = p.len();
        c.rtp(call, nat, &mut p, len, at(0));
    }
    // A second source after the first: a plain leg does not move again.
    let mut p = tone_packet(1, 600.0, 8000.0, 1);
    let len = p.len();
    c.rtp(1, addr(60, 6000), &mut p, len, at(20));
    let mut heard = Heard::new();
    c.handle_timeout(at(20), &mut collect(&mut heard), &mut |_, _| {});
    assert_eq!(heard[&1][0].0, nat, "the learning leg sends to where its media came from");
    assert_eq!(heard[&2][0].0, addr(2, 4000), "the other keeps its SDP address");
    let r1 = c.close(1).expect("report");
    assert_eq!((r1.latched, r1.dropped_wrong_source, r1.packets_in), (1, 1, 1));
    assert_eq!(c.close(2).expect("report").dropped_wrong_source, 1);

    // SRTP: a forged packet from elsewhere moves nothing; the key holder's packets do.
    let suite = Suite::AesCm128HmacSha1_80;
    let theirs = MasterKey { key: [7; 16], salt: [8; 14] };
    let ours = MasterKey { key: [9; 16], salt: [10; 14] };
    c.open(3, spec(3, Some((suite, theirs.clone(), ours))), at(0));
    let mut forged = tone_packet(0, 600.0, 8000.0, 3);
    forged.extend_from_slice(&[0; 10]);
    let len = forged.len();
    c.rtp(3, addr(66, 7000), &mut forged, len, at(0));
    let mut device = Context::new(suite, &theirs);
    let mut p = tone_packet(1, 600.0, 8000.0, 3);
    let len = p.len();
    p.resize(len + 16, 0);
    let len = device.protect_rtp(&mut p, len).expect("protect");
    c.rtp(3, nat, &mut p, len, at(20));
    heard.clear();
    c.handle_timeout(at(40), &mut collect(&mut heard), &mut |_, _| {});
    let r3 = c.close(3).expect("report");
    assert_eq!((r3.srtp_failures, r3.latched, r3.packets_in), (1, 1, 1));
}

#[test]
fn a_recorded_meeting_gives_its_full_mix_as_one_mulaw_stream_until_stopped() {
    let mut c = Conference::new();
    c.open(1, spec(1, None), at(0));
    c.open(2, spec(2, None), at(0));
    c.bridge(1, "m", at(0));
    c.bridge(2, "m", at(0));
    c.record("m", true, 77);
    let mut recorded: Vec<(String, RtpHeader, Vec<i16>)> = Vec::new();
    for n in 0..50u32 {
        for (call, f) in [(1u64, 600.0f32), (2, 1100.0)] {
            let mut p = tone_packet(n, f, 8000.0, call as u32);
            let len = p.len();
            c.rtp(call, addr(call as u8, 4000), &mut p, len, at(u64::from(n) * 20));
        }
        if n == 40 {
            c.record("m", false, 0);
        }
        c.handle_timeout(at(u64::from(n) * 20 + 20), &mut |_, _, _| {}, &mut |m, pkt| {
            let h = RtpHeader::parse(pkt).expect("rtp");
            let audio = pkt[12..].iter().map(|b| Law::MuLaw.decode(*b)).collect();
            recorded.push((m.to_string(), h, audio));
        });
    }
    assert_eq!(recorded.len(), 40, "a frame per period while on");
    assert!(recorded.iter().all(|(m, h, _)| m == "m" && h.ssrc == 77 && h.payload_type == 0));
    for w in recorded.windows(2) {
        assert_eq!(w[1].1.sequence, w[0].1.sequence.wrapping_add(1));
    }
    let audio: Vec<i16> = recorded[20..].iter().flat_map(|r| r.2.clone()).collect();
    assert!(power(&audio, 600.0) > 1e6 && power(&audio, 1100.0) > 1e6, "everyone is in it");
}

#[test]
fn a_leg_that_asked_for_40_ms_gets_one_packet_of_two_frames_every_40_ms() {
    let mut c = Conference::new();
    let mut slow = spec(1, None);
    slow.frames_per_packet = 2;
    c.open(1, slow, at(0));
    c.open(2, spec(2, None), at(0));
    let mut heard = Heard::new();
    for t in (20..=100).step_by(20) {
        c.handle_timeout(at(t), &mut collect(&mut heard), &mut |_, _| {});
    }
    c.bridge(1, "m", at(100));
    c.bridge(2, "m", at(100));
    for n in 0..50u32 {
        let mut p = tone_packet(n, 600.0, 8000.0, 2);
        let len = p.len();
        c.rtp(2, addr(2, 4000), &mut p, len, at(100 + u64::from(n) * 20));
        c.handle_timeout(at(120 + u64::from(n) * 20), &mut collect(&mut heard), &mut |_, _| {});
    }
    let packets = &heard[&1];
    assert_eq!(packets.len(), 27, "55 frames, two per packet");
    assert!(packets.iter().all(|p| p.4.len() == 2 * FRAME));
    for w in packets.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1), "one sequence number per packet");
        assert_eq!(w[1].2, w[0].2.wrapping_add(2 * FRAME as u32), "40 ms of timestamp apart");
    }
    assert_eq!(heard[&2].len(), 55, "the other leg keeps its 20 ms");
    let audio = audio_of(&heard, 1);
    assert!(power(&audio[audio.len() - 4000..], 600.0) > 1e6, "and hears the meeting");
}
