//! WAV files (RIFF/WAVE), for prompt audio: 16-bit linear PCM, or 8-bit G.711 µ-law/A-law,
//! mono or stereo (mixed down), any sample rate. Files come from a synthesiser or the
//! repository, so they are read defensively: chunk sizes are checked against the file, the
//! audio is bounded by [`MAX_SAMPLES`], and anything else is a [`WavError`].

use crate::g711::Law;

/// The longest audio read: 10 minutes at 48 kHz.
pub const MAX_SAMPLES: usize = 48_000 * 600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("a chunk runs past the end of the file")]
    Truncated,
    #[error("no `fmt ` chunk before the `data` chunk")]
    NoFormat,
    #[error("no `data` chunk")]
    NoData,
    #[error("unsupported format {format}, {bits} bits, {channels} channels")]
    Unsupported { format: u16, bits: u16, channels: u16 },
    #[error("more than {MAX_SAMPLES} samples")]
    TooLong,
}

/// Audio read from a WAV file: its sample rate and its samples, mono.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    pub rate: u32,
    pub samples: Vec<i16>,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([*b.get(i)?, *b.get(i + 1)?, *b.get(i + 2)?, *b.get(i + 3)?]))
}

/// Reads `file`.
pub fn read(file: &[u8]) -> Result<Audio, WavError> {
    if file.get(0..4) != Some(b"RIFF") || file.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let mut at = 12usize;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= file.len() {
        let id = &file[at..at + 4];
        let size = u32_at(file, at + 4).ok_or(WavError::Truncated)? as usize;
        let body_start = at + 8;
        // Synthesisers that stream write a placeholder size for `data`: take what is there.
        let body_end = match body_start.checked_add(size) {
            Some(end) if end <= file.len() => end,
            _ if id == b"data" => file.len(),
            _ => return Err(WavError::Truncated),
        };
        let body = &file[body_start..body_end];
        match id {
            b"fmt " => {
                let format = u16_at(body, 0).ok_or(WavError::Truncated)?;
                let channels = u16_at(body, 2).ok_or(WavError::Truncated)?;
                let rate = u32_at(body, 4).ok_or(WavError::Truncated)?;
                let bits = u16_at(body, 14).ok_or(WavError::Truncated)?;
                fmt = Some((format, channels, rate, bits));
            }
            b"data" => {
                let (format, channels, rate, bits) = fmt.ok_or(WavError::NoFormat)?;
                let unsupported = || WavError::Unsupported { format, bits, channels };
                if !(1..=2).contains(&channels) || !(1000..=192_000).contains(&rate) {
                    return Err(unsupported());
                }
                let frame = usize::from(channels) * usize::from(bits / 8).max(1);
                if body.len() / frame > MAX_SAMPLES {
                    return Err(WavError::TooLong);
                }
                let sample = |chunk: &[u8]| -> Option<i16> {
                    match (format, bits) {
                        (1, 16) => Some(i16::from_le_bytes([chunk[0], chunk[1]])),
                        (7, 8) => Some(Law::MuLaw.decode(chunk[0])),
                        (6, 8) => Some(Law::ALaw.decode(chunk[0])),
                        _ => None,
                    }
                };
                let width = usize::from(bits / 8).max(1);
                let mut samples = Vec::with_capacity(body.len() / frame);
                for f in body.chunks_exact(frame) {
                    let mut sum = 0i32;
                    for c in f.chunks_exact(width) {
                        sum += i32::from(sample(c).ok_or_else(unsupported)?);
                    }
                    samples.push((sum / i32::from(channels)) as i16);
                }
                return Ok(Audio { rate, samples });
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at = body_end + (size & 1);
    }
    Err(WavError::NoData)
}

/// `samples` at `rate` as a WAV file of 8-bit G.711 in `law` (mono).
pub fn write_g711(rate: u32, samples: &[i16], law: Law) -> Vec<u8> {
    let format: u16 = if law == Law::MuLaw { 7 } else { 6 };
    let data = samples.len() as u32;
    let mut out = Vec::with_capacity(46 + samples.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(38 + data + (data & 1)).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&18u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    out.extend(samples.iter().map(|s| law.encode(*s)));
    if data & 1 == 1 {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm16(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
        let data = (samples.len() * 2) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        out.extend_from_slice(&(2 * channels).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"LIST\x04\x00\x00\x00abcd");
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data.to_le_bytes());
        for s in samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    #[test]
    fn pcm_and_g711_files_read_back() {
        let a = read(&pcm16(22050, 1, &[1, -2, 300])).expect("pcm");
        assert_eq!((a.rate, a.samples), (22050, vec![1, -2, 300]));
        let stereo = read(&pcm16(8000, 2, &[100, 300, -100, -300])).expect("stereo");
        assert_eq!(stereo.samples, [200, -200], "mixed down");
        for law in [Law::MuLaw, Law::ALaw] {
            let samples: Vec<i16> = (0..=255u8).map(|c| law.decode(c)).collect();
            let file = write_g711(8000, &samples, law);
            assert_eq!(read(&file).expect("g711").samples, samples, "{law:?}");
        }
    }

    #[test]
    fn broken_files_are_errors() {
        assert_eq!(read(b"RIFX0000WAVE"), Err(WavError::NotWave));
        let mut f = pcm16(8000, 1, &[1, 2, 3]);
        f.truncate(30);
        assert_eq!(read(&f), Err(WavError::Truncated));
        let mut f = pcm16(8000, 1, &[1]);
        f[20] = 3; // IEEE float
        assert!(matches!(read(&f), Err(WavError::Unsupported { format: 3, .. })));
        assert_eq!(read(b"RIFF\x04\x00\x00\x00WAVE"), Err(WavError::NoData));
        // A streamed file's `data` size placeholder: what is there is read.
        let mut f = pcm16(8000, 1, &[5, 6]);
        let n = f.len();
        f[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read(&f).expect("streamed").samples, [5, 6]);
    }
}
