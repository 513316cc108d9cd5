//! WAV files (prompt audio from a synthesiser or the repository): never a panic; what reads
//! is bounded, converts to 8 kHz, and written back as G.711 reads again the same length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::g711::Law;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = media::wav::read(data) else { return };
    assert!(a.samples.len() <= media::wav::MAX_SAMPLES);
    let short = &a.samples[..a.samples.len().min(4000)];
    let x = media::resample::resample(short, a.rate, 8000);
    let file = media::wav::write_g711(8000, &x, Law::MuLaw);
    assert_eq!(media::wav::read(&file).expect("our own file reads").samples.len(), x.len());
});
