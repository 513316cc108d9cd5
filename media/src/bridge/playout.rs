//! One participant's playout buffer: decoded samples placed by RTP timestamp in a ring of
//! [`RING`] samples, played [`DEPTH`] frames behind the first packet. Reordered packets fall
//! into place; what never came plays as silence; a packet too late is dropped; a packet too
//! far ahead (a sender whose clock runs fast, a new stream) re-anchors the buffer rather than
//! let it drift. Any packet length (any ptime) is taken.

use super::FRAME;
use crate::g711::Law;

/// Frames of delay before playing.
pub const DEPTH: usize = 2;
/// Samples kept: 8 frames (160 ms).
pub const RING: usize = 8 * FRAME;

#[derive(Debug, Clone)]
pub struct Playout {
    buf: Box<[i16; RING]>,
    /// Ring index and RTP timestamp of the next sample to play; `None` before the first packet.
    head: usize,
    play_ts: Option<u32>,
    ssrc: u32,
    /// Packets dropped as too late, and re-anchorings.
    pub late: u64,
    pub reanchored: u64,
}

impl Default for Playout {
    fn default() -> Self {
        Playout {
            buf: Box::new([0; RING]),
            head: 0,
            play_ts: None,
            ssrc: 0,
            late: 0,
            reanchored: 0,
        }
    }
}

impl Playout {
    pub fn new() -> Playout {
        Playout::default()
    }

    /// Plays from `ts` after [`DEPTH`] frames; returns `ts`'s offset from the playout point.
    fn anchor(&mut self, ts: u32) -> i32 {
        self.buf.fill(0);
        self.head = 0;
        self.play_ts = Some(ts.wrapping_sub((DEPTH * FRAME) as u32));
        (DEPTH * FRAME) as i32
    }

    /// A packet's payload (`law` code words) of stream `ssrc` starting at timestamp `ts`.
    pub fn push(&mut self, ssrc: u32, ts: u32, payload: &[u8], law: Law) {
        let mut offset = match self.play_ts {
            Some(p) if ssrc == self.ssrc => ts.wrapping_sub(p) as i32,
            started => {
                // The first packet, or a new stream from the same participant (a re-INVITE,
                // a transfer).
                self.reanchored += u64::from(started.is_some());
                self.ssrc = ssrc;
                self.anchor(ts)
            }
        };
        if offset < -(RING as i32) || i64::from(offset) + payload.len() as i64 > RING as i64 {
            // Far behind or ahead of the playout point: the sender's timeline moved.
            self.reanchored += 1;
            offset = self.anchor(ts);
        }
        if offset < 0 {
            self.late += 1;
            return;
        }
        for (k, code) in payload.iter().enumerate().take(RING) {
            let i = (self.head + offset as usize + k) % RING;
            self.buf[i] = law.decode(*code);
        }
    }

    /// The next frame (silence where nothing came), into `frame`.
    pub fn pop(&mut self, frame: &mut [i16; FRAME]) {
        let Some(ts) = self.play_ts else {
            frame.fill(0);
            return;
        };
        for (k, out) in frame.iter_mut().enumerate() {
            let i = (self.head + k) % RING;
            *out = self.buf[i];
            self.buf[i] = 0;
        }
        self.head = (self.head + FRAME) % RING;
        self.play_ts = Some(ts.wrapping_add(FRAME as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(v: u8) -> [u8; FRAME] {
        [v; FRAME]
    }

    fn pops(p: &mut Playout, n: usize) -> Vec<i16> {
        let mut f = [0i16; FRAME];
        (0..n)
            .map(|_| {
                p.pop(&mut f);
                assert!(f.iter().all(|s| *s == f[0]), "one value per frame in these tests");
                f[0]
            })
            .collect()
    }

    #[test]
    fn frames_play_in_timestamp_order_after_the_depth_and_gaps_are_silence() {
        let law = Law::ALaw;
        let v = |c: u8| law.decode(c);
        let mut p = Playout::new();
        p.push(1, 1000, &packet(0x10), law);
        p.push(1, 1320, &packet(0x30), law); // reordered: the frame at 1160 comes later
        p.push(1, 1160, &packet(0x20), law);
        p.push(1, 1640, &packet(0x50), law); // 1480 lost
        assert_eq!(
            pops(&mut p, 7),
            [0, 0, v(0x10), v(0x20), v(0x30), 0, v(0x50)],
            "two frames of depth, then in order, the lost one silent"
        );
        // Too late: its time has passed.
        p.push(1, 1480, &packet(0x40), law);
        assert_eq!(p.late, 1);
    }

    #[test]
    fn a_sender_far_ahead_or_a_new_stream_reanchors() {
        let law = Law::MuLaw;
        let mut p = Playout::new();
        p.push(1, 0, &packet(0x11), law);
        p.push(1, 1_000_000, &packet(0x22), law);
        assert_eq!(p.reanchored, 1);
        assert_eq!(pops(&mut p, 3)[2], law.decode(0x22));
        p.push(2, 5, &packet(0x33), law);
        assert_eq!(p.reanchored, 2);
        assert_eq!(pops(&mut p, 3)[2], law.decode(0x33));
    }

    #[test]
    fn any_packet_length_is_placed_by_sample() {
        let law = Law::ALaw;
        let mut p = Playout::new();
        // 30 ms packets (240 samples) fill frames across their boundaries.
        p.push(1, 0, &[0x10; 240], law);
        p.push(1, 240, &[0x10; 240], law);
        let played = pops(&mut p, 5);
        assert_eq!(played[2..], [law.decode(0x10); 3]);
        // A giant payload is cut at the ring.
        p.push(1, 800, &[0x10; 5000], law);
    }
}
