//! The last moment the process was known alive: a file in the spool directory rewritten once
//! a second with the wall clock in milliseconds. After a crash, the calls it cut end there.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FILE: &str = "alive";

/// Notes `now` (best effort: a lost heartbeat only moves an interrupted call's end time).
pub(super) fn write(dir: &Path, now: SystemTime) {
    let ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let tmp = dir.join(".alive.tmp");
    if std::fs::write(&tmp, ms.to_string())
        .and_then(|_| std::fs::rename(&tmp, dir.join(FILE)))
        .is_err()
    {
        tracing::debug!(dir = %dir.display(), "heartbeat not written");
    }
}

/// The last heartbeat, if any.
pub(super) fn read(dir: &Path) -> Option<SystemTime> {
    let ms: u64 = std::fs::read_to_string(dir.join(FILE)).ok()?.trim().parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_to_the_millisecond() {
        let dir = std::env::temp_dir().join(format!("voicegw-alive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read(&dir), None);
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        write(&dir, t);
        assert_eq!(read(&dir), Some(t));
    }
}
