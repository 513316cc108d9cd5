//! G.711 (ITU-T G.711) µ-law and A-law: code words to 16-bit linear PCM by table (built at
//! compile time from the standard's expansion rules; `tests/` checks them against ffmpeg's
//! `pcm_mulaw`/`pcm_alaw` decoders for all 256 code words), and linear PCM back to code words
//! by the standard's segment rules (the meeting bridge re-encodes what it mixes).

/// The two G.711 companding laws (RTP payload types 0 and 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// PCMU, payload type 0.
    MuLaw,
    /// PCMA, payload type 8.
    ALaw,
}

impl Law {
    /// The law of a static RTP payload type, if it is G.711.
    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::MuLaw),
            8 => Some(Law::ALaw),
            _ => None,
        }
    }

    /// The linear value of one code word.
    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::MuLaw => MULAW[code as usize],
            Law::ALaw => ALAW[code as usize],
        }
    }

    /// The code word of a linear value (the nearest the law can express).
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::MuLaw => mulaw_encode(sample),
            Law::ALaw => alaw_encode(sample),
        }
    }

    /// Its static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Law::MuLaw => 0,
            Law::ALaw => 8,
        }
    }
}

/// The segment (0–7) of a biased magnitude: the position of its highest bit above bit 7.
#[inline]
fn segment(v: i32) -> u8 {
    // Bits above bit 7, capped at 7 (one instruction instead of a loop: the bridge encodes
    // every sample it sends).
    let above = (v >> 8).max(0) as u32;
    ((32 - above.leading_zeros()) as u8).min(7)
}

fn mulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    let magnitude = s.abs().min(CLIP) + BIAS;
    let exponent = segment(magnitude);
    let mantissa = ((magnitude >> (exponent + 3)) & 0x0F) as u8;
    !(sign | (exponent << 4) | mantissa)
}

fn alaw_encode(sample: i16) -> u8 {
    let s = i32::from(sample);
    let (sign, magnitude) = if s >= 0 { (0x80u8, s) } else { (0, (-s).min(32767)) };
    let code = if magnitude < 256 {
        (magnitude >> 4) as u8
    } else {
        let seg = segment(magnitude);
        (seg << 4) | ((magnitude >> (seg + 3)) & 0x0F) as u8
    };
    (sign | code) ^ 0x55
}

const fn mulaw(code: u8) -> i16 {
    let u = !code;
    let mantissa = (u & 0x0F) as i16;
    let exponent = (u & 0x70) >> 4;
    let magnitude = ((mantissa << 3) + 0x84) << exponent;
    if u & 0x80 != 0 {
        0x84 - magnitude
    } else {
        magnitude - 0x84
    }
}

const fn alaw(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mantissa = ((a & 0x0F) as i16) << 4;
    let segment = (a & 0x70) >> 4;
    let magnitude = match segment {
        0 => mantissa + 8,
        1 => mantissa + 0x108,
        s => (mantissa + 0x108) << (s - 1),
    };
    if a & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

const fn table(law: Law) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match law {
            Law::MuLaw => mulaw(i as u8),
            Law::ALaw => alaw(i as u8),
        };
        i += 1;
    }
    t
}

static MULAW: [i16; 256] = table(Law::MuLaw);
static ALAW: [i16; 256] = table(Law::ALaw);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_words_expand_as_the_standard_says() {
        // µ-law: 0xFF and 0x7F are the two zeros, 0x00 / 0x80 the extremes.
        assert_eq!(Law::MuLaw.decode(0xFF), 0);
        assert_eq!(Law::MuLaw.decode(0x7F), 0);
        assert_eq!(Law::MuLaw.decode(0x00), -32124);
        assert_eq!(Law::MuLaw.decode(0x80), 32124);
        // A-law: 0xD5 / 0x55 are the smallest magnitudes, 0xAA / 0x2A the extremes.
        assert_eq!(Law::ALaw.decode(0xD5), 8);
        assert_eq!(Law::ALaw.decode(0x55), -8);
        assert_eq!(Law::ALaw.decode(0xAA), 32256);
        assert_eq!(Law::ALaw.decode(0x2A), -32256);
    }

    #[test]
    fn both_laws_are_odd_symmetric_and_monotonic_per_half() {
        for law in [Law::MuLaw, Law::ALaw] {
            let mut values: Vec<i16> = (0..=255u8).map(|c| law.decode(c)).collect();
            values.sort_unstable();
            values.dedup();
            // µ-law has two zeros (255 distinct values), A-law none (256).
            assert!(values.len() >= 255, "{law:?}");
            for c in 0..128u8 {
                assert_eq!(law.decode(c), -law.decode(c | 0x80), "{law:?} {c:#x}");
            }
        }
    }

    #[test]
    fn every_code_word_encodes_back_to_itself() {
        for law in [Law::MuLaw, Law::ALaw] {
            for c in 0..=255u8 {
                if law == Law::MuLaw && c == 0x7F {
                    continue; // the second zero: 0 encodes as 0xFF
                }
                assert_eq!(law.encode(law.decode(c)), c, "{law:?} {c:#04x}");
            }
        }
    }

    #[test]
    fn encoding_picks_the_nearest_level_and_clips() {
        for law in [Law::MuLaw, Law::ALaw] {
            for s in (i16::MIN..=i16::MAX).step_by(7) {
                let back = i32::from(law.decode(law.encode(s)));
                // Within the law's step at that level (at most 1/16 of the magnitude, or the
                // smallest steps near zero), and the sign kept.
                let tolerance =
                    (i32::from(s).abs() / 16).max(16) + 1024 * i32::from(s.unsigned_abs() > 32000);
                assert!((back - i32::from(s)).abs() <= tolerance, "{law:?} {s} -> {back}");
                assert!(
                    back == 0 || (back > 0) == (s > 0) || s.abs() < 16,
                    "{law:?} {s} -> {back}"
                );
            }
        }
        assert_eq!(Law::MuLaw.encode(0), 0xFF);
        assert_eq!(Law::ALaw.encode(0), 0xD5);
        assert_eq!(Law::ALaw.payload_type(), 8);
    }

    #[test]
    fn the_segment_is_the_highest_bit_above_bit_7_for_every_magnitude() {
        for v in 0..=0x8000 + 0x84 {
            let (mut s, mut x) = (0u8, v >> 8);
            while x > 0 && s < 7 {
                x >>= 1;
                s += 1;
            }
            assert_eq!(segment(v), s, "{v}");
        }
    }

    #[test]
    fn payload_types_map_to_laws() {
        assert_eq!(Law::from_payload_type(0), Some(Law::MuLaw));
        assert_eq!(Law::from_payload_type(8), Some(Law::ALaw));
        assert_eq!(Law::from_payload_type(18), None);
    }
}
