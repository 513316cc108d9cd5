//! Delivers spooled CDRs to the store: oldest segment first, a few uploads in flight, each
//! retried with exponential backoff until the store takes it. The spool is the only source:
//! what a previous run left is delivered the same way. Delivered segments are deleted once the
//! writer has moved past them.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use metrics::{names, Labels, Registry};

use super::spool::{self, Entry, Shared};
use super::store::Store;

/// Uploads in flight at once.
const IN_FLIGHT: usize = 8;
/// Records read per pass before the checkpoint is advanced.
const BATCH: usize = 512;
/// Pause after a delivered batch.
const PACE: Duration = Duration::from_millis(50);
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The uploader's settings.
pub struct Uploader {
    pub dir: PathBuf,
    pub store: Store,
    pub shared: Arc<Shared>,
    pub registry: Arc<Mutex<Registry>>,
}

impl Uploader {
    /// Runs until the process ends.
    pub async fn run(self) {
        tracing::info!(store = %self.store.describe(), spool = %self.dir.display(), "CDR uploader started");
        loop {
            let progressed = match self.pass().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "CDR spool unreadable; retrying");
                    false
                }
            };
            if progressed {
                // Under load, let records gather: a batch costs one store flush and checkpoint
                // however many it holds.
                tokio::time::sleep(PACE).await;
            } else {
                let _ = tokio::time::timeout(Duration::from_secs(1), self.shared.notify.notified())
                    .await;
            }
        }
    }

    /// Delivers one batch; returns whether anything was delivered or cleaned up.
    async fn pass(&self) -> Result<bool, spool::SpoolError> {
        let active = self.shared.active.load(Ordering::Acquire);
        for seq in spool::segments(&self.dir)? {
            let path = spool::segment_path(&self.dir, seq);
            let done = spool::checkpoint(&self.dir, seq) as usize;
            // Only what is past the checkpoint is read, and parsed up to a batch.
            let data = match read_from(&path, done as u64) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(spool::SpoolError::Io { path: path.display().to_string(), source })
                }
            };
            let lines: Vec<_> =
                spool::records(&data, BATCH).into_iter().map(|(e, end)| (e, end + done)).collect();
            if lines.is_empty() {
                if seq < active {
                    // Complete and delivered: the writer is past it.
                    if data.last().is_some_and(|&b| b != b'\n') {
                        tracing::warn!(segment = %path.display(), "CDR spool segment ends in an incomplete record (torn write); dropped");
                    }
                    self.sub_bytes(data.len());
                    let _ = std::fs::remove_file(&path);
                    let _ = std::fs::remove_file(spool::checkpoint_path(&self.dir, seq));
                    return Ok(true);
                }
                continue;
            }
            let end = lines.last().map_or(done, |l| l.1);
            let entries: Vec<Entry> = lines
                .into_iter()
                .filter_map(|(e, at)| match e {
                    Ok(e) => Some(e),
                    Err(why) => {
                        tracing::error!(segment = %path.display(), offset = at, error = %why, "unreadable CDR spool line skipped");
                        None
                    }
                })
                .collect();
            let n = entries.len() as u64;
            futures_util::stream::iter(entries)
                .map(|e| self.deliver(e))
                .buffer_unordered(IN_FLIGHT)
                .collect::<Vec<()>>()
                .await;
            // The store must hold the batch durably before the spool may forget it.
            let mut wait = BACKOFF_FIRST;
            while let Err(e) = self.store.flush().await {
                tracing::warn!(error = %e, "CDR store not flushed; the batch stays in the spool");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(BACKOFF_MAX);
            }
            write_checkpoint(&self.dir, seq, end);
            spool::sub_saturating(&self.shared.pending_records, n as u64);
            self.sub_bytes(end - done);
            {
                // The backlog gauges change with the counter, under the same lock.
                let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                let l = Labels::default();
                r.add(names::CDRS_DELIVERED, &l, n as f64);
                let records = self.shared.pending_records.load(Ordering::Relaxed);
                r.set(names::CDR_SPOOL_RECORDS, &l, records as f64);
                let bytes = self.shared.pending_bytes.load(Ordering::Relaxed);
                r.set(names::CDR_SPOOL_BYTES, &l, bytes as f64);
            }
            return Ok(true);
        }
        Ok(false)
    }

    fn sub_bytes(&self, n: usize) {
        spool::sub_saturating(&self.shared.pending_bytes, n as u64);
    }

    /// Puts one record, retrying until the store takes it.
    async fn deliver(&self, e: Entry) {
        let mut wait = BACKOFF_FIRST;
        let mut failures = 0u32;
        loop {
            match self.store.put(&e.key, &e.body).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(key = %e.key, failures, "CDR delivered after retries");
                    }
                    return;
                }
                Err(err) => {
                    failures += 1;
                    self.registry
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .inc(names::CDR_UPLOAD_FAILURES, &Labels::default());
                    if failures == 1 || failures.is_multiple_of(10) {
                        tracing::warn!(key = %e.key, failures, retry_in_ms = wait.as_millis() as u64, error = %err, "CDR upload failed; kept in the spool");
                    }
                    let jitter = Duration::from_millis(
                        rand::random::<u64>() % (wait.as_millis() as u64 / 4 + 1),
                    );
                    tokio::time::sleep(wait + jitter).await;
                    wait = (wait * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// The bytes of `path` from `offset` on.
fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read as _, Seek as _};
    let mut f = std::fs::File::open(path)?;
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// Records how far segment `seq` is delivered: 20 digits written in place (no rename, which
/// on ext4 forces a data flush). Not fsync'ed, and a torn or lost checkpoint reads as 0: either
/// way records are only uploaded again, under the same keys.
fn write_checkpoint(dir: &Path, seq: u64, offset: usize) {
    use std::os::unix::fs::FileExt as _;
    let path = spool::checkpoint_path(dir, seq);
    let text = format!("{offset:020}");
    let ok = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .and_then(|f| f.write_all_at(text.as_bytes(), 0));
    if ok.is_err() {
        tracing::warn!(path = %path.display(), "cannot record CDR spool progress; records may be uploaded again");
    }
}
