//! The bridge in virtual time: participants send tones; what each hears is measured.

use super::*;

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

/// Participant `k`'s packet `n`: a tone of `freq` at `amp`, A-law.
pub(crate) fn tone_packet(n: u32, freq: f32, amp: f32, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&(n as u16).to_be_bytes());
    p.extend_from_slice(&(n * FRAME as u32).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for i in 0..FRAME {
        let t = (n as usize * FRAME + i) as f32 / 8000.0;
        let v = amp * (2.0 * std::f32::consts::PI * freq * t).sin();
        p.push(Law::ALaw.encode(v as i16));
    }
    p
}

/// Power of `freq` in `samples` (Goertzel), normalised to a tone's amplitude squared.
pub(crate) fn power(samples: &[i16], freq: f32) -> f32 {
    let c = 2.0 * (2.0 * std::f32::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = f32::from(x) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let n = samples.len() as f32;
    (s1 * s1 + s2 * s2 - c * s1 * s2) * 4.0 / (n * n)
}

fn db(a: f32, b: f32) -> f32 {
    10.0 * (a.max(1e-3) / b.max(1e-3)).log10()
}

/// Runs `ms` of the meeting: every participant in `talkers` sends its tone each 20 ms; returns
/// what each participant received, decoded, in order.
fn run(
    b: &mut Bridge,
    talkers: &[(ParticipantId, f32, f32)],
    from_ms: u64,
    ms: u64,
    heard: &mut std::collections::HashMap<ParticipantId, Vec<i16>>,
) {
    let mut t = from_ms;
    while t < from_ms + ms {
        let n = (t / 20) as u32;
        for &(id, freq, amp) in talkers {
            b.rtp(id, &tone_packet(n, freq, amp, id as u32));
        }
        t += 20;
        b.handle_timeout(at(t), &mut |id, packet| {
            let h = RtpHeader::parse(packet).expect("rtp");
            assert_eq!(h.payload_len, FRAME);
            let out = heard.entry(id).or_default();
            out.extend(packet[12..].iter().map(|c| Law::ALaw.decode(*c)));
        });
    }
}

fn meeting(n: u64) -> Bridge {
    let mut b = Bridge::new();
    for id in 1..=n {
        b.join(id, Law::ALaw, 0x1000 + id as u32, 0, 0, at(0));
    }
    b
}

const TONES: [(ParticipantId, f32, f32); 3] =
    [(1, 440.0, 6000.0), (2, 1000.0, 6000.0), (3, 1700.0, 6000.0)];

#[test]
fn each_participant_hears_the_others_and_not_themselves() {
    let mut b = meeting(3);
    let mut heard = Default::default();
    run(&mut b, &TONES, 0, 1000, &mut heard);
    for &(me, my_freq, _) in &TONES {
        let out = &heard[&me];
        assert_eq!(out.len(), 50 * FRAME, "a frame every 20 ms");
        let tail = &out[out.len() - 20 * FRAME..];
        let mine = power(tail, my_freq);
        for &(other, freq, _) in TONES.iter().filter(|t| t.0 != me) {
            let theirs = power(tail, freq);
            assert!(
                db(theirs, mine) > 30.0,
                "{me} hears {other} {:.1} dB above itself",
                db(theirs, mine)
            );
            assert!(theirs.sqrt() > 4000.0, "{me} hears {other} at full level: {}", theirs.sqrt());
        }
    }
    assert_eq!(b.ticks, 50);
}

#[test]
fn a_muted_participant_is_not_heard_and_unmuted_is_again() {
    let mut b = meeting(3);
    let mut heard = Default::default();
    b.set_muted(2, true);
    run(&mut b, &TONES, 0, 600, &mut heard);
    let tail = &heard[&1][heard[&1].len() - 10 * FRAME..];
    assert!(db(power(tail, 1700.0), power(tail, 1000.0)) > 30.0, "2 is muted");
    b.set_muted(2, false);
    let mut heard = Default::default();
    run(&mut b, &TONES, 600, 600, &mut heard);
    let tail = &heard[&1][heard[&1].len() - 10 * FRAME..];
    assert!(power(tail, 1000.0).sqrt() > 4000.0, "2 is heard again");
    b.mute_others(3);
    assert_eq!(
        (b.is_muted(1), b.is_muted(2), b.is_muted(3)),
        (Some(true), Some(true), Some(false))
    );
}

#[test]
fn loud_talkers_together_are_limited_never_wrapped() {
    let mut b = meeting(3);
    let mut heard = Default::default();
    // 1 and 2 at near full scale, in phase: their sum is twice full scale.
    let loud = [(1, 500.0, 30000.0), (2, 500.0, 30000.0)];
    run(&mut b, &loud, 0, 400, &mut heard);
    let out = &heard[&3][heard[&3].len() - 5 * FRAME..];
    let reference: Vec<f32> = (0..out.len())
        .map(|i| {
            let n = (heard[&3].len() - 5 * FRAME + i) as f32;
            (2.0 * std::f32::consts::PI * 500.0 * n / 8000.0).sin()
        })
        .collect();
    // The output follows the sum's sign (no wrap-around turns a peak into a trough).
    let agree = out
        .iter()
        .zip(&reference)
        .filter(|(_, r)| r.abs() > 0.3)
        .all(|(o, r)| (f32::from(*o) > 0.0) == (*r > 0.0) || *o == 0);
    assert!(agree, "limited, not wrapped");
    assert!(out.iter().any(|s| s.unsigned_abs() > 25000), "and still loud");
}

#[test]
fn silence_costs_nothing_and_nobody_hears_noise_from_it() {
    let mut b = meeting(3);
    let mut heard = Default::default();
    // Only 1 talks; 2 and 3 send near-silence.
    let talk = [(1, 440.0, 6000.0), (2, 1000.0, 20.0), (3, 1700.0, 20.0)];
    run(&mut b, &talk, 0, 600, &mut heard);
    let to_1 = &heard[&1][heard[&1].len() - 10 * FRAME..];
    assert!(to_1.iter().all(|s| s.unsigned_abs() <= 16), "the silent ones are not mixed");
    assert_eq!(b.active_speaker(), Some(1));
}

#[test]
fn a_join_fades_in_and_a_leave_fades_out() {
    let mut b = meeting(2);
    let mut heard = Default::default();
    run(&mut b, &TONES[..2], 0, 300, &mut heard);
    // Quiet for a while (what 1 and 2 said has played out), then 3 joins talking: the first
    // frame 1 hears of it rises from silence.
    run(&mut b, &[], 300, 100, &mut heard);
    b.join(3, Law::ALaw, 0x3333, 7, 0, at(400));
    let mut heard = Default::default();
    run(&mut b, &[(3, 1700.0, 8000.0)], 400, 200, &mut heard);
    let to_1 = &heard[&1];
    let first = to_1.iter().position(|s| s.unsigned_abs() > 64).expect("3 is heard");
    let frame_start = first - first % FRAME;
    let start: i32 = to_1[frame_start..frame_start + 20]
        .iter()
        .map(|s| i32::from(s.unsigned_abs()))
        .max()
        .unwrap_or(0);
    assert!(start < 1500, "the first samples are quiet, no click: {start}");
    // 3 leaves: one more frame fading out, then nothing of 3 and nothing sent to 3.
    b.leave(3);
    let mut heard = Default::default();
    run(&mut b, &[(3, 1700.0, 8000.0)], 600, 100, &mut heard);
    assert!(!heard.contains_key(&3), "nothing sent to who left");
    assert_eq!(b.len(), 2);
    let to_1 = &heard[&1];
    assert!(to_1[FRAME..].iter().all(|s| s.unsigned_abs() <= 16), "3 is gone after its fade-out");
    // Everyone leaves: the clock stops.
    b.leave(1);
    b.leave(2);
    b.handle_timeout(at(800), &mut |_, _| {});
    assert!(b.is_empty() && b.poll_timeout().is_none());
}

#[test]
fn packets_of_other_payload_types_and_strangers_are_ignored() {
    let mut b = meeting(1);
    let mut dtmf = tone_packet(0, 440.0, 6000.0, 1);
    dtmf[1] = 101;
    b.rtp(1, &dtmf);
    b.rtp(9, &tone_packet(0, 440.0, 6000.0, 9));
    b.rtp(1, &[0x80, 8]);
    let mut sent = 0;
    b.handle_timeout(at(20), &mut |_, p| {
        sent += 1;
        assert!(p[12..].iter().all(|c| Law::ALaw.decode(*c).unsigned_abs() <= 8));
    });
    assert_eq!(sent, 1);
}
