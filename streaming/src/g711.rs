//! G.711 (ITU-T G.711) µ-law and A-law to 16-bit linear PCM, by table. The tables are built at
//! compile time from the standard's expansion rules; `tests/` checks them against ffmpeg's
//! `pcm_mulaw`/`pcm_alaw` decoders for all 256 code words.

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
    fn payload_types_map_to_laws() {
        assert_eq!(Law::from_payload_type(0), Some(Law::MuLaw));
        assert_eq!(Law::from_payload_type(8), Some(Law::ALaw));
        assert_eq!(Law::from_payload_type(18), None);
    }
}
