//! Sample-rate conversion for prompt audio (a synthesiser's 22.05 kHz to the 8 kHz of
//! telephony): a windowed-sinc interpolator (Blackman window, [`HALF_TAPS`] taps each side)
//! whose low-pass sits at 90% of the lower Nyquist frequency, so nothing above 4 kHz folds
//! back into the speech band. Offline work (prompts are converted once), not the hot path.

/// Taps on each side of an output sample.
pub const HALF_TAPS: usize = 32;

/// `input` at `from` Hz, converted to `to` Hz.
pub fn resample(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || input.is_empty() || from == 0 || to == 0 {
        return input.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    // The cut-off as a fraction of the input rate.
    let cutoff = 0.45 * ratio.min(1.0);
    let n_out = (input.len() as f64 * ratio).floor() as usize;
    let w = HALF_TAPS as f64;
    let mut out = Vec::with_capacity(n_out);
    for n in 0..n_out {
        let t = n as f64 / ratio;
        let centre = t.floor() as isize;
        let mut acc = 0.0f64;
        for k in (centre - HALF_TAPS as isize + 1)..=(centre + HALF_TAPS as isize) {
            let Some(&x) = usize::try_from(k).ok().and_then(|k| input.get(k)) else { continue };
            let d = t - k as f64;
            if d.abs() >= w {
                continue;
            }
            let arg = 2.0 * cutoff * d;
            let sinc = if arg.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
            };
            let p = std::f64::consts::PI * (d / w + 1.0);
            let window = 0.42 - 0.5 * p.cos() + 0.08 * (2.0 * p).cos();
            acc += f64::from(x) * 2.0 * cutoff * sinc * window;
        }
        out.push(acc.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<i16> {
        (0..(f64::from(rate) * secs) as usize)
            .map(|n| {
                (amp * (2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    /// The amplitude of `freq` in `x` (at `rate`), by Goertzel over the middle half.
    fn amplitude(x: &[i16], freq: f64, rate: u32) -> f64 {
        let x = &x[x.len() / 4..x.len() * 3 / 4];
        let c = 2.0 * (2.0 * std::f64::consts::PI * freq / f64::from(rate)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s0 = f64::from(v) + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let n = x.len() as f64;
        (s1 * s1 + s2 * s2 - c * s1 * s2).sqrt() * 2.0 / n
    }

    #[test]
    fn speech_band_tones_keep_their_level_and_what_is_above_4_khz_is_gone() {
        let x = resample(&tone(1000.0, 22050, 1.0, 10000.0), 22050, 8000);
        assert_eq!(x.len(), 8000);
        let a = amplitude(&x, 1000.0, 8000);
        assert!((a - 10000.0).abs() < 500.0, "1 kHz kept: {a}");
        // 6 kHz would fold to 2 kHz at 8 kHz without the low-pass.
        let y = resample(&tone(6000.0, 22050, 1.0, 10000.0), 22050, 8000);
        let alias = amplitude(&y, 2000.0, 8000);
        assert!(alias < 100.0, "6 kHz does not alias to 2 kHz: {alias}");
        // Upsampling keeps the tone too.
        let z = resample(&tone(440.0, 8000, 1.0, 8000.0), 8000, 16000);
        assert!((amplitude(&z, 440.0, 16000) - 8000.0).abs() < 400.0);
        assert_eq!(resample(&[1, 2, 3], 8000, 8000), [1, 2, 3]);
        assert!(resample(&[], 22050, 8000).is_empty());
    }
}
