//! DTMF tones in the audio itself (8 kHz linear PCM), for devices that send neither RFC 4733
//! events nor SIP INFO: Goertzel filters at the eight DTMF frequencies over blocks of 205
//! samples (25.6 ms, the block whose bins fall closest to all eight), with the checks every
//! receiver makes (ITU-T Q.24 in spirit): both tones well above the floor, together most of
//! the block's energy, each at least 6 dB above the other tones of its group, the twist within
//! 8 dB (normal) and 4 dB (reverse). A key is reported once it holds for two blocks (51 ms),
//! and again only after it was released for two blocks: speech and music rarely pass.

use super::Digit;

/// Samples per block.
pub const BLOCK: usize = 205;
const RATE: f32 = 8000.0;
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] =
    [['1', '2', '3', 'A'], ['4', '5', '6', 'B'], ['7', '8', '9', 'C'], ['*', '0', '#', 'D']];
/// The smallest tone amplitude detected (16-bit full scale 32767: about −40 dBFS).
const MIN_AMPLITUDE: f32 = 300.0;
/// The two tones' share of the block's energy.
const MIN_SHARE: f32 = 0.6;
/// 6 dB, 8 dB and 4 dB as power ratios.
const GROUP_MARGIN: f32 = 3.98;
const NORMAL_TWIST: f32 = 6.31;
const REVERSE_TWIST: f32 = 2.51;
/// Blocks a key (or its absence) must hold.
const HOLD: u8 = 2;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    coeffs: [f32; 8],
    block: [f32; BLOCK],
    fill: usize,
    candidate: Option<Digit>,
    held: u8,
    current: Option<Digit>,
}

impl Default for InbandDetector {
    fn default() -> Self {
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS.iter().chain(COLS.iter())) {
            *c = 2.0 * (2.0 * std::f32::consts::PI * f / RATE).cos();
        }
        InbandDetector {
            coeffs,
            block: [0.0; BLOCK],
            fill: 0,
            candidate: None,
            held: 0,
            current: None,
        }
    }
}

impl InbandDetector {
    pub fn new() -> InbandDetector {
        InbandDetector::default()
    }

    /// More audio; `found` is called with each key that starts in it.
    pub fn push(&mut self, samples: &[i16], mut found: impl FnMut(Digit)) {
        for &s in samples {
            self.block[self.fill] = f32::from(s);
            self.fill += 1;
            if self.fill == BLOCK {
                self.fill = 0;
                let key = self.evaluate();
                if key == self.candidate {
                    self.held = self.held.saturating_add(1);
                } else {
                    self.candidate = key;
                    self.held = 1;
                }
                if self.held >= HOLD && self.candidate != self.current {
                    self.current = self.candidate;
                    if let Some(d) = self.current {
                        found(d);
                    }
                }
            }
        }
    }

    /// The key the current block holds, if any.
    fn evaluate(&self) -> Option<Digit> {
        // A tone's power in its bin is at most the block's energy: a block quieter than one
        // tone at the floor holds no key, and costs no filter (silent participants).
        let energy: f32 = self.block.iter().map(|x| x * x).sum();
        let floor = BLOCK as f32 * MIN_AMPLITUDE * MIN_AMPLITUDE / 2.0;
        if energy < floor {
            return None;
        }
        let mut power = [0.0f32; 8];
        for (p, &c) in power.iter_mut().zip(&self.coeffs) {
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for &x in &self.block {
                let s0 = x + c * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            // Scaled to the energy of a tone in the block: a tone of amplitude a gives about
            // BLOCK·a²/2, as its share of the sum of squares does.
            *p = (s1 * s1 + s2 * s2 - c * s1 * s2) * 2.0 / BLOCK as f32;
        }
        let (rows, cols) = power.split_at(4);
        let best = |g: &[f32]| {
            let (i, &p) = g
                .iter()
                .enumerate()
                .fold((0, &0.0f32), |b, (i, p)| if p > b.1 { (i, p) } else { b });
            let others_ok = g.iter().enumerate().all(|(j, &q)| j == i || p >= q * GROUP_MARGIN);
            (i, p, others_ok)
        };
        let (r, rp, r_ok) = best(rows);
        let (c, cp, c_ok) = best(cols);
        let detected = r_ok
            && c_ok
            && rp >= floor
            && cp >= floor
            && rp + cp >= MIN_SHARE * energy
            && rp <= cp * NORMAL_TWIST
            && cp <= rp * REVERSE_TWIST;
        detected.then(|| Digit::from_char(KEYS[r][c])).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of a tone pair (or silence when `freqs` is empty) at `amp` each, after `noise`.
    fn tone(out: &mut Vec<i16>, freqs: &[(f32, f32)], ms: usize, noise: f32, seed: &mut u32) {
        let start = out.len();
        for n in 0..ms * 8 {
            let t = (start + n) as f32 / RATE;
            let mut v: f32 =
                freqs.iter().map(|(f, a)| a * (2.0 * std::f32::consts::PI * f * t).sin()).sum();
            *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v += noise * (((*seed >> 16) & 0x7fff) as f32 / 16384.0 - 1.0);
            out.push(v.clamp(-32768.0, 32767.0) as i16);
        }
    }

    fn key_freqs(k: char) -> [(f32, f32); 2] {
        for (r, row) in KEYS.iter().enumerate() {
            if let Some(c) = row.iter().position(|x| *x == k) {
                return [(ROWS[r], 6000.0), (COLS[c], 6000.0)];
            }
        }
        panic!("{k}")
    }

    fn detect(samples: &[i16]) -> String {
        let mut d = InbandDetector::new();
        let mut out = String::new();
        // Fed in 20 ms packets, as RTP brings them.
        for chunk in samples.chunks(160) {
            d.push(chunk, |k| out.push(k.as_char()));
        }
        out
    }

    #[test]
    fn every_key_is_detected_once_through_noise() {
        let mut seed = 7;
        let mut s = Vec::new();
        for k in "1234567890*#ABCD".chars() {
            tone(&mut s, &key_freqs(k), 70, 300.0, &mut seed);
            tone(&mut s, &[], 60, 300.0, &mut seed);
        }
        assert_eq!(detect(&s), "1234567890*#ABCD");
    }

    #[test]
    fn a_key_held_long_is_one_key_and_a_repeat_after_a_pause_is_another() {
        let mut seed = 1;
        let mut s = Vec::new();
        tone(&mut s, &key_freqs('5'), 900, 0.0, &mut seed);
        tone(&mut s, &[], 80, 0.0, &mut seed);
        tone(&mut s, &key_freqs('5'), 80, 0.0, &mut seed);
        assert_eq!(detect(&s), "55");
    }

    #[test]
    fn what_is_not_a_key_is_not_reported() {
        let mut seed = 3;
        let mut s = Vec::new();
        // One tone alone, a chord outside the DTMF grid, a too-short key, a key too quiet,
        // twist beyond 8 dB, loud noise over a key.
        tone(&mut s, &[(1000.0, 8000.0)], 200, 0.0, &mut seed);
        tone(&mut s, &[(440.0, 6000.0), (1100.0, 6000.0)], 200, 0.0, &mut seed);
        tone(&mut s, &key_freqs('1'), 30, 0.0, &mut seed);
        tone(&mut s, &[], 100, 0.0, &mut seed);
        tone(&mut s, &[(697.0, 100.0), (1209.0, 100.0)], 200, 0.0, &mut seed);
        tone(&mut s, &[(697.0, 12000.0), (1209.0, 1500.0)], 200, 0.0, &mut seed);
        tone(&mut s, &[(697.0, 1000.0), (1209.0, 1000.0)], 200, 9000.0, &mut seed);
        assert_eq!(detect(&s), "");
    }

    #[test]
    fn speech_like_sound_with_many_harmonics_is_not_a_key() {
        let mut seed = 9;
        let mut s = Vec::new();
        // A 150 Hz voice with harmonics up to 3 kHz, its pitch gliding.
        for step in 0..50 {
            let f0 = 120.0 + step as f32 * 2.0;
            let harmonics: Vec<(f32, f32)> =
                (1..20).map(|h| (f0 * h as f32, 4000.0 / h as f32)).collect();
            tone(&mut s, &harmonics, 20, 200.0, &mut seed);
        }
        assert_eq!(detect(&s), "");
    }
}
