use super::*;

const HOLD: Duration = Duration::from_millis(60);

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

/// Packet `k` of a 20 ms stream: 160 samples of one code word that tells packets apart.
fn payload(k: u32) -> [u8; 160] {
    [(k % 251) as u8; 160]
}

/// What packet `k` decodes to.
fn decoded(k: u32) -> Vec<i16> {
    vec![Law::MuLaw.decode((k % 251) as u8); 160]
}

struct Run {
    jb: JitterBuffer,
    out: Vec<i16>,
}

impl Run {
    fn new() -> Run {
        Run { jb: JitterBuffer::new(Law::MuLaw, HOLD), out: Vec::new() }
    }

    fn push(&mut self, now_ms: u64, ssrc: u32, ts: u32, k: u32) -> Pushed {
        let out = &mut self.out;
        self.jb.push(at(now_ms), ssrc, ts, &payload(k), &mut |s| out.extend_from_slice(s))
    }

    fn poll(&mut self, now_ms: u64) {
        let out = &mut self.out;
        self.jb.poll(at(now_ms), &mut |s| out.extend_from_slice(s));
    }

    fn finish(&mut self) {
        let out = &mut self.out;
        self.jb.finish(&mut |s| out.extend_from_slice(s));
    }
}

#[test]
fn in_order_packets_come_out_at_once_decoded() {
    let mut r = Run::new();
    for k in 0..50u32 {
        assert_eq!(r.push(u64::from(k) * 20, 7, 1000 + k * 160, k), Pushed::Accepted);
        assert_eq!(r.out.len(), (k as usize + 1) * 160, "no delay while nothing is missing");
    }
    let want: Vec<i16> = (0..50).flat_map(decoded).collect();
    assert_eq!(r.out, want);
    assert_eq!(r.jb.poll_timeout(), None);
    let s = r.jb.stats();
    assert_eq!((s.packets, s.late, s.filled_samples, s.samples_out), (50, 0, 0, 8000));
}

#[test]
fn reordered_packets_are_put_back_in_order_within_the_hold() {
    let mut r = Run::new();
    let order = [0u32, 1, 3, 2, 4, 6, 5, 7, 9, 8];
    for (i, &k) in order.iter().enumerate() {
        r.push(i as u64 * 20, 7, k * 160, k);
    }
    let want: Vec<i16> = (0..10).flat_map(decoded).collect();
    assert_eq!(r.out, want);
    assert_eq!(r.jb.stats().filled_samples, 0);
}

#[test]
fn a_lost_packet_becomes_counted_silence_after_the_hold_and_arriving_later_is_late() {
    let mut r = Run::new();
    for k in [0u32, 1, 3, 4] {
        r.push(u64::from(k) * 20, 7, k * 160, k);
    }
    assert_eq!(r.out.len(), 320, "packet 2 is awaited");
    assert_eq!(r.jb.poll_timeout(), Some(at(60) + HOLD), "the gap was seen with packet 3");
    r.poll(100);
    assert_eq!(r.out.len(), 320, "still within the hold");
    r.poll(120);
    assert_eq!(r.out.len(), 800, "the gap is filled and what follows released");
    assert_eq!(&r.out[320..480], &[0i16; 160][..]);
    assert_eq!(r.push(130, 7, 2 * 160, 2), Pushed::Late);
    assert_eq!(r.out.len(), 800);
    let s = r.jb.stats();
    assert_eq!((s.filled_samples, s.late), (160, 1));
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let mut r = Run::new();
    r.push(0, 7, 0, 0);
    r.push(20, 7, 320, 2);
    assert_eq!(r.push(25, 7, 320, 2), Pushed::Duplicate);
    r.push(30, 7, 160, 1);
    assert_eq!(r.out, (0..3).flat_map(decoded).collect::<Vec<_>>());
    assert_eq!(r.jb.stats().duplicates, 1);
}

#[test]
fn timestamps_wrap_around_without_a_seam() {
    let mut r = Run::new();
    let first = u32::MAX - 3 * 160 + 1;
    for k in 0..8u32 {
        r.push(u64::from(k) * 20, 7, first.wrapping_add(k * 160), k);
    }
    assert_eq!(r.out, (0..8).flat_map(decoded).collect::<Vec<_>>());
    assert_eq!(r.jb.stats().resyncs, 0);
}

#[test]
fn silence_suppression_gaps_are_filled_as_long_as_they_lasted() {
    // 1 s of no packets (VAD), the timestamps jumping by that second.
    let mut r = Run::new();
    r.push(0, 7, 0, 0);
    r.push(1020, 7, 160 + 8000, 1);
    r.poll(1100);
    assert_eq!(r.out.len(), 160 + 8000 + 160);
    assert_eq!(r.jb.stats().filled_samples, 8000);
}

#[test]
fn a_new_ssrc_continues_after_what_was_buffered() {
    let mut r = Run::new();
    for k in 0..3u32 {
        r.push(u64::from(k) * 20, 7, k * 160, k);
    }
    for k in 3..6u32 {
        r.push(u64::from(k) * 20, 9, 4_000_000 + k * 160, k);
    }
    assert_eq!(r.out, (0..6).flat_map(decoded).collect::<Vec<_>>());
    assert_eq!(r.jb.stats().resyncs, 1);
}

#[test]
fn a_hostile_timestamp_jump_neither_fills_hours_nor_runs_ahead_of_real_time() {
    let mut r = Run::new();
    r.push(0, 7, 0, 0);
    // Three days ahead, 20 ms later: a resync, not three days of silence.
    let ahead = 3 * 86_400 * 8000;
    assert_eq!(r.push(20, 7, ahead, 1), Pushed::Accepted);
    r.push(40, 7, ahead + 160, 2);
    r.finish();
    assert!(r.out.len() <= 160 * 3 + 160, "{} samples", r.out.len());
    assert_eq!(r.jb.stats().resyncs, 1);
    // New SSRCs on every packet, all at once: the stream stops at real time plus the slack.
    let mut r = Run::new();
    let mut early = 0;
    for k in 0..1000u32 {
        if r.push(0, k, k * 977, k) == Pushed::Early {
            early += 1;
        }
    }
    r.finish();
    let limit = (EARLY_SLACK + MAX_PACKET as u64) as usize;
    assert!(r.out.len() <= limit, "{} samples at t=0", r.out.len());
    assert!(early > 900, "{early}");
}

#[test]
fn a_sender_that_restarts_its_timestamps_is_followed_after_a_run_of_late_packets() {
    let mut r = Run::new();
    for k in 0..200u32 {
        r.push(u64::from(k) * 20, 7, 1_000_000 + k * 160, k);
    }
    // Same SSRC, timestamps from 0 again.
    let mut late = 0;
    for k in 200..240u32 {
        if r.push(u64::from(k) * 20, 7, (k - 200) * 160, k) == Pushed::Late {
            late += 1;
        }
    }
    assert_eq!(late, RESYNC_AFTER_FAR_LATE - 1);
    assert_eq!(r.jb.stats().resyncs, 1);
    let tail: Vec<i16> = (215..240).flat_map(decoded).collect();
    assert!(r.out.ends_with(&tail));
}

#[test]
fn a_packet_far_ahead_within_real_time_forces_the_ring_forward() {
    // 3 s of arrival time with the first 2.5 s of packets lost: the ring (2 s) moves on.
    let mut r = Run::new();
    r.push(0, 7, 0, 0);
    r.push(3000, 7, 160 * 125, 125);
    r.finish();
    assert_eq!(r.out.len(), 160 * 126);
    assert_eq!(r.jb.stats().filled_samples, 160 * 124);
}

#[test]
fn oversized_and_empty_payloads_are_refused() {
    let mut jb = JitterBuffer::new(Law::ALaw, HOLD);
    let mut sink = |_: &[i16]| panic!("nothing to release");
    assert_eq!(jb.push(at(0), 1, 0, &[], &mut sink), Pushed::Refused);
    assert_eq!(jb.push(at(0), 1, 0, &[0xD5; MAX_PACKET + 1], &mut sink), Pushed::Refused);
    assert_eq!(jb.stats().refused, 2);
}

/// Random arrival orders (a window of 8 packets shuffled, some lost, some repeated, clock
/// jumps): the output is always the packets in timestamp order, silence where one was
/// missing when its turn came, and never more samples than the timeline holds.
#[test]
fn random_arrival_orders_always_come_out_in_timestamp_order() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _round in 0..200 {
        let n = 60u32;
        let mut order: Vec<u32> = (0..n).collect();
        for w in order.chunks_mut(8) {
            for i in (1..w.len()).rev() {
                w.swap(i, (rnd() % (i as u64 + 1)) as usize);
            }
        }
        let mut r = Run::new();
        let mut now = 0u64;
        let mut placed = vec![false; n as usize];
        let mut base = None;
        for &k in &order {
            now += rnd() % 40;
            if rnd() % 10 == 0 {
                continue; // lost
            }
            let before = r.out.len();
            let pushed = r.push(now, 7, k * 160, k);
            if pushed == Pushed::Accepted {
                placed[k as usize] = true;
                // The first packet to arrive starts the timeline; earlier ones are late.
                base.get_or_insert(k);
            }
            assert!(r.out.len() >= before);
            if rnd() % 7 == 0 {
                r.push(now, 7, k * 160, k); // a repeat never adds anything out of order
            }
        }
        r.finish();
        // Every released packet sits at its own place; everything else is silence.
        assert_eq!(r.out.len() % 160, 0);
        let base = base.expect("one packet arrived") as usize;
        for (j, chunk) in r.out.chunks(160).enumerate() {
            let k = base + j;
            let want = if placed[k] { decoded(k as u32) } else { vec![0; 160] };
            assert_eq!(chunk, &want[..], "packet {k}");
        }
    }
}
