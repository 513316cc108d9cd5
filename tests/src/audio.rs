//! Audio helpers for the end-to-end tests: G.711 A-law written out from ITU-T G.711 (apart
//! from voicegw's own), WAV reading, and the Goertzel power of a tone.

use std::path::Path;

/// The G.711 A-law encoder.
pub fn alaw(v: i16) -> u8 {
    // The G.711 A-law encoder of ITU-T G.711 (as in media::g711, written out for the test).
    let mask: u8 = if v >= 0 { 0xd5 } else { 0x55 };
    let mut a = if v >= 0 { i32::from(v) } else { -i32::from(v) - 1 };
    if a > 0x7fff {
        a = 0x7fff;
    }
    let seg = [0xffi32, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff, 0x3fff, 0x7fff]
        .iter()
        .position(|&end| a <= end)
        .unwrap_or(7) as i32;
    let aval = if seg < 2 { (a >> 4) & 0x0f } else { (a >> (seg + 3)) & 0x0f };
    ((seg << 4) as u8 | aval as u8) ^ mask
}

/// The G.711 A-law decoder.
pub fn alaw_decode(a: u8) -> i16 {
    let a = a ^ 0x55;
    let seg = (a & 0x70) >> 4;
    let mut t = i32::from(a & 0x0f) << 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        s => (t + 0x108) << (s - 1),
    };
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// Power of `freq` in `samples` (Goertzel), as a tone's amplitude squared.
pub fn power(samples: &[i16], freq: f32) -> f64 {
    let c = 2.0 * (2.0 * std::f64::consts::PI * f64::from(freq) / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let n = samples.len().max(1) as f64;
    (s1 * s1 + s2 * s2 - c * s1 * s2) * 4.0 / (n * n)
}

/// Whether a tone of `freq` at the level the tests send (amplitude 8000, a power of about
/// 6e7 after G.711 and a bridge) is in `samples`; one not there measures next to nothing.
pub fn hears(samples: &[i16], freq: f32) -> bool {
    power(samples, freq) > 1e6
}

/// A WAV file's samples: 8 kHz G.711 µ-law (format 7) or 16-bit PCM (format 1), first channel.
pub fn wav_samples(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut at = 12;
    let (mut format, mut channels) = (0u16, 1usize);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("len")) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            format = u16::from_le_bytes([body[0], body[1]]);
            channels = usize::from(u16::from_le_bytes([body[2], body[3]])).max(1);
        }
        if id == b"data" {
            return match format {
                7 => body.iter().step_by(channels).map(|&c| mulaw_decode(c)).collect(),
                1 => body
                    .chunks_exact(2 * channels)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
                f => panic!("{}: WAV format {f}", path.display()),
            };
        }
        at += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display())
}

/// The G.711 µ-law decoder.
pub fn mulaw_decode(c: u8) -> i16 {
    let u = !c;
    let magnitude = ((i16::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        0x84 - magnitude
    } else {
        magnitude - 0x84
    }
}

/// Writes `samples` as an 8 kHz 16-bit mono WAV.
pub fn write_wav(path: &Path, samples: &[i16]) {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// `seconds` of a tone of `freq` at amplitude `amp`, 8 kHz.
pub fn tone(freq: f32, amp: f32, seconds: f32) -> Vec<i16> {
    (0..(seconds * 8000.0) as usize)
        .map(|i| (amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 8000.0).sin()) as i16)
        .collect()
}
