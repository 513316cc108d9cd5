//! The IVR's prompt audio, 8 kHz 16-bit, one clip per [`Prompt`]. Each comes from, in order:
//!
//! 1. the cache under the data directory (`<data>/prompts/<name>.wav`, G.711 µ-law, 8 kHz);
//! 2. a speech synthesiser, `espeak-ng`, when installed: the prompt's text spoken, brought to
//!    8 kHz ([`media::resample`]) and written to the cache, so it is made once;
//! 3. the clip shipped in the repository (`assets/prompts/`, made the same way with
//!    `voicegw prompts --out assets/prompts`), so a machine without a synthesiser still speaks.
//!
//! A cache file that does not read is made again; nothing here fails the gateway's start.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use media::g711::Law;
use meeting::ivr::Prompt;

/// The telephony rate.
pub const RATE: u32 = 8000;

/// Why a prompt could not be synthesised.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("espeak-ng could not be run: {0}")]
    Spawn(std::io::Error),
    #[error("espeak-ng failed: {0}")]
    Failed(String),
    #[error("espeak-ng's output is not audio voicegw reads: {0}")]
    Output(#[from] media::wav::WavError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Where a prompt's audio came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Synthesised,
    Shipped,
}

/// Every prompt's audio.
#[derive(Debug, Clone, Default)]
pub struct PromptAudio {
    clips: HashMap<Prompt, Arc<[i16]>>,
}

impl PromptAudio {
    /// The clip of `p` (empty if none could be had).
    pub fn clip(&self, p: Prompt) -> Arc<[i16]> {
        self.clips.get(&p).cloned().unwrap_or_else(|| Arc::from(Vec::new()))
    }
}

/// The shipped clip of `p`.
fn shipped(p: Prompt) -> &'static [u8] {
    match p {
        Prompt::EnterMeetingId => include_bytes!("../../../assets/prompts/enter-meeting-id.wav"),
        Prompt::EnterModeratorPasscode => {
            include_bytes!("../../../assets/prompts/enter-moderator-passcode.wav")
        }
        Prompt::InvalidMeetingId => {
            include_bytes!("../../../assets/prompts/invalid-meeting-id.wav")
        }
        Prompt::InvalidPasscode => include_bytes!("../../../assets/prompts/invalid-passcode.wav"),
        Prompt::Goodbye => include_bytes!("../../../assets/prompts/goodbye.wav"),
        Prompt::WaitingForModerator => {
            include_bytes!("../../../assets/prompts/waiting-for-moderator.wav")
        }
        Prompt::Muted => include_bytes!("../../../assets/prompts/muted.wav"),
        Prompt::Unmuted => include_bytes!("../../../assets/prompts/unmuted.wav"),
        Prompt::Locked => include_bytes!("../../../assets/prompts/locked.wav"),
        Prompt::Unlocked => include_bytes!("../../../assets/prompts/unlocked.wav"),
        Prompt::MeetingFull => include_bytes!("../../../assets/prompts/meeting-full.wav"),
        Prompt::MeetingLockedOut => {
            include_bytes!("../../../assets/prompts/meeting-locked-out.wav")
        }
        Prompt::RecordingStarted => include_bytes!("../../../assets/prompts/recording-started.wav"),
        Prompt::RecordingStopped => include_bytes!("../../../assets/prompts/recording-stopped.wav"),
        Prompt::MeetingEnded => include_bytes!("../../../assets/prompts/meeting-ended.wav"),
    }
}

/// `p` spoken by `espeak-ng` (US English), at 8 kHz.
pub fn synthesise(p: Prompt, scratch: &Path) -> Result<Vec<i16>, PromptError> {
    let out = scratch.join(format!("{}.espeak.wav", p.name()));
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "160", "-w"])
        .arg(&out)
        .arg(p.text())
        .output()
        .map_err(PromptError::Spawn)?;
    if !status.status.success() {
        return Err(PromptError::Failed(String::from_utf8_lossy(&status.stderr).into_owned()));
    }
    let bytes = std::fs::read(&out)
        .map_err(|source| PromptError::Io { path: out.display().to_string(), source })?;
    let _ = std::fs::remove_file(&out);
    let audio = media::wav::read(&bytes)?;
    Ok(media::resample::resample(&audio.samples, audio.rate, RATE))
}

/// Writes `p`'s clip `samples` as `<dir>/<name>.wav` (8 kHz µ-law).
pub fn write(dir: &Path, p: Prompt, samples: &[i16]) -> Result<(), PromptError> {
    let path = dir.join(format!("{}.wav", p.name()));
    std::fs::write(&path, media::wav::write_g711(RATE, samples, Law::MuLaw))
        .map_err(|source| PromptError::Io { path: path.display().to_string(), source })
}

fn read_8k(bytes: &[u8]) -> Option<Vec<i16>> {
    let a = media::wav::read(bytes).ok()?;
    Some(if a.rate == RATE {
        a.samples
    } else {
        media::resample::resample(&a.samples, a.rate, RATE)
    })
}

/// Every prompt's audio, from the cache under `data_dir`, the synthesiser or the shipped
/// clips (see the module documentation); says where each came from.
pub fn load(data_dir: &Path) -> (PromptAudio, Vec<(Prompt, Source)>) {
    let dir = data_dir.join("prompts");
    let _ = std::fs::create_dir_all(&dir);
    let mut audio = PromptAudio::default();
    let mut sources = Vec::new();
    for p in Prompt::ALL {
        let cached = std::fs::read(dir.join(format!("{}.wav", p.name()))).ok();
        let (samples, source) = match cached.as_deref().and_then(read_8k) {
            Some(s) if !s.is_empty() => (s, Source::Cache),
            _ => match synthesise(p, &dir) {
                Ok(s) => {
                    if let Err(e) = write(&dir, p, &s) {
                        tracing::warn!(prompt = p.name(), error = %e, "prompt not cached");
                    }
                    (s, Source::Synthesised)
                }
                Err(e) => {
                    tracing::debug!(prompt = p.name(), error = %e, "no speech synthesiser; the shipped prompt is used");
                    (read_8k(shipped(p)).unwrap_or_default(), Source::Shipped)
                }
            },
        };
        audio.clips.insert(p, Arc::from(samples));
        sources.push((p, source));
    }
    (audio, sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_prompt_is_8_khz_speech_of_a_few_seconds() {
        for p in Prompt::ALL {
            let a = media::wav::read(shipped(p)).expect("a shipped WAV");
            assert_eq!(a.rate, RATE, "{}", p.name());
            let secs = a.samples.len() as f64 / f64::from(RATE);
            assert!((0.5..8.0).contains(&secs), "{}: {secs} s", p.name());
            let loud = a.samples.iter().filter(|s| s.unsigned_abs() > 2000).count();
            assert!(loud > a.samples.len() / 20, "{}: it speaks", p.name());
        }
    }

    #[test]
    fn espeak_ng_speaks_a_prompt_at_8_khz() {
        if Command::new("espeak-ng").arg("--version").output().is_err() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "espeak-ng is required under CI=true (scripts/test installs it)");
            return;
        }
        let s = synthesise(Prompt::Muted, &std::env::temp_dir()).expect("spoken");
        let secs = s.len() as f64 / f64::from(RATE);
        assert!((0.5..3.0).contains(&secs), "{secs} s");
        assert!(s.iter().filter(|x| x.unsigned_abs() > 2000).count() > s.len() / 20, "it speaks");
    }

    #[test]
    fn the_cache_is_used_and_a_broken_cache_file_is_made_again() {
        let dir = std::env::temp_dir().join(format!("voicegw-prompts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("prompts")).expect("dir");
        // One prompt cached (a marker clip), one broken.
        let marker = vec![1234i16; 800];
        write(&dir.join("prompts"), Prompt::Muted, &marker).expect("write");
        std::fs::write(dir.join("prompts/unmuted.wav"), b"junk").expect("write");
        let (audio, sources) = load(&dir);
        let muted = audio.clip(Prompt::Muted);
        assert_eq!(muted.len(), 800);
        assert_eq!(
            sources.iter().find(|(p, _)| *p == Prompt::Muted).map(|x| x.1),
            Some(Source::Cache)
        );
        let unmuted = sources.iter().find(|(p, _)| *p == Prompt::Unmuted).map(|x| x.1);
        assert_ne!(unmuted, Some(Source::Cache), "the broken file was not used");
        assert!(!audio.clip(Prompt::Unmuted).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
