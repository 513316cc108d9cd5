//! The CDR spool: records are appended to segment files and fsync'ed before the call's last
//! messages leave (group commit: one `fdatasync` per driver turn that ended calls), then
//! uploaded from there.
//!
//! Layout under the spool directory: `<seq>.jsonl` segments (20-digit sequence numbers) of
//! JSON lines, and `<seq>.done` holding the byte offset up to which the uploader delivered
//! that segment. Lines are records to upload (`{"key": …, "body": …}`) or the journal of calls
//! in progress (`{"open": …}` when a call starts or is answered): after a crash, every call
//! opened and not closed by its record is recorded as cut. Rotation copies the open calls into
//! the new segment, so the newest segment always holds every call in progress and older ones
//! can be deleted once delivered. A restart always opens a new segment, so a torn
//! tail (power loss) is never appended to; an incomplete last line is never delivered.
//! Checkpoints are not fsync'ed: after a crash a few records may be uploaded again under the
//! same key, which leaves the store with exactly one object per call.
//!
//! A commit that fails (a full or read-only disk) is never reported durable: the segment is
//! truncated back to its last whole line (a partial write must not leave a torn line for the
//! retry to append after), the lines stay buffered, [`Shared::failing`] is set (the
//! `CdrSpoolFailing` gauge and `/health` show it) and the spool thread retries until the
//! disk takes them.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("CDR spool {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.display().to_string(), source }
}

/// One spooled record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    /// The record's JSON text, uploaded as is.
    pub body: String,
    /// The TransactionId of the call the record closes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub closes: String,
}

/// A line of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Line {
    Record(Entry),
    /// A call in progress (its facts so far, JSON), by TransactionId.
    Open {
        open: String,
        facts: serde_json::Value,
    },
}

/// What the writer and the uploader share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Sequence number of the segment being written (older ones are complete).
    pub active: AtomicU64,
    /// Records committed and not yet delivered, and their bytes.
    pub pending_records: AtomicU64,
    pub pending_bytes: AtomicU64,
    /// Wakes the uploader after a commit.
    pub notify: tokio::sync::Notify,
    /// The last commit failed: records wait in memory for the disk.
    pub failing: AtomicBool,
}

/// Takes `n` from a backlog counter, stopping at zero (the writer and the uploader both take
/// from it, and a line a failed write left readable may be delivered before it is cut back).
pub(crate) fn sub_saturating(counter: &AtomicU64, n: u64) {
    let _ =
        counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_sub(n)));
}

/// What a segment file must do for a commit (a trait so tests can make the disk fail).
pub(crate) trait SegmentFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()>;
    fn sync_data(&mut self) -> std::io::Result<()>;
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
}

impl SegmentFile for File {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(self, buf)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        File::sync_data(self)
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// Appends `buf` to a segment of `size` whole bytes and, with `sync`, makes it durable. On any
/// failure the segment is cut back to `size`, so a retry starts on a line boundary.
pub(crate) fn append_whole(
    file: &mut impl SegmentFile,
    size: u64,
    buf: &[u8],
    sync: bool,
) -> std::io::Result<()> {
    let result = file.write_all(buf).and_then(|_| if sync { file.sync_data() } else { Ok(()) });
    if let Err(e) = result {
        if let Err(t) = file.truncate(size) {
            // Nothing was appended after all when the disk refuses every write.
            return Err(std::io::Error::new(e.kind(), format!("{e} (and cutting back: {t})")));
        }
        return Err(e);
    }
    Ok(())
}

/// Segments rotate at this size.
const SEGMENT_BYTES: u64 = 8 << 20;

/// Disk space reserved for each segment when it is created (its rotation size and a margin):
/// records then commit into space already allocated, so a disk that fills up (with other
/// files, or our own CDR store) does not stop the spool.
const SEGMENT_RESERVE: i64 = (SEGMENT_BYTES + (1 << 20)) as i64;

/// Reserves [`SEGMENT_RESERVE`] bytes for `file` without changing its size; false when the
/// file system cannot (full, or no `fallocate`): commits then take space as they go.
fn reserve_space(file: &File, path: &Path) -> bool {
    reserve_space_quietly(file).map_err(|e| {
        tracing::warn!(path = %path.display(), error = %e, "CDR spool segment: disk space not reserved");
    }).is_ok()
}

/// [`reserve_space`] after a failed write (the failure is what gets logged).
fn reserve_space_quietly(file: &File) -> nix::Result<()> {
    use nix::fcntl::{fallocate, FallocateFlags};
    fallocate(file, FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, SEGMENT_RESERVE)
}

/// Appends records and commits them durably.
pub struct Writer {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    size: u64,
    buf: Vec<u8>,
    buffered: u64,
    shared: Arc<Shared>,
    /// Calls in progress: TransactionId → their latest journal line (carried into each new
    /// segment).
    open: std::collections::HashMap<String, Vec<u8>>,
    /// Calls an earlier run left open (it stopped before their record): TransactionId → facts.
    left_open: Vec<(String, serde_json::Value)>,
    /// A failed write could not be cut back: the segment may end in part of a line, so the
    /// next commit starts a new segment rather than append after it.
    torn: bool,
}

pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.jsonl"))
}

pub(crate) fn checkpoint_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.done"))
}

/// Sequence numbers of the segments in `dir`, oldest first.
pub(crate) fn segments(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name.strip_suffix(".jsonl").and_then(|s| s.parse::<u64>().ok()) {
            out.push(seq);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The delivered offset of segment `seq` (0 when none was recorded).
pub(crate) fn checkpoint(dir: &Path, seq: u64) -> u64 {
    std::fs::read_to_string(checkpoint_path(dir, seq))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The complete lines of `data`, parsed, with the offset just past each one. A line that does
/// not parse is reported as `Err` (it is skipped, never retried).
pub(crate) fn complete_lines(data: &[u8]) -> Vec<(Result<Line, String>, usize)> {
    lines(data).collect()
}

fn lines(data: &[u8]) -> impl Iterator<Item = (Result<Line, String>, usize)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || loop {
        let n = data[start..].iter().position(|&b| b == b'\n')?;
        let line = &data[start..start + n];
        let end = start + n + 1;
        start = end;
        if !line.is_empty() {
            return Some((serde_json::from_slice::<Line>(line).map_err(|e| e.to_string()), end));
        }
    })
}

/// Up to `max` records of `data` (journal lines skipped without parsing; unreadable lines
/// reported), with the offset past each line.
pub(crate) fn records(data: &[u8], max: usize) -> Vec<(Result<Entry, String>, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while out.len() < max {
        let Some(n) = data[start..].iter().position(|&b| b == b'\n') else { break };
        let line = &data[start..start + n];
        let end = start + n + 1;
        start = end;
        if line.is_empty() || line.starts_with(b"{\"open\":") {
            continue;
        }
        out.push((serde_json::from_slice::<Entry>(line).map_err(|e| e.to_string()), end));
    }
    out
}

impl Writer {
    /// Opens the spool in `dir` (created if missing) on a new segment, and counts what earlier
    /// runs left undelivered.
    pub fn open(dir: &Path) -> Result<Writer, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let existing = segments(dir)?;
        let shared = Arc::new(Shared::default());
        let mut open: Vec<(String, serde_json::Value)> = Vec::new();
        for &seq in &existing {
            let done = checkpoint(dir, seq) as usize;
            let data = std::fs::read(segment_path(dir, seq)).unwrap_or_default();
            for (line, end) in complete_lines(&data) {
                match line {
                    Ok(Line::Record(e)) => {
                        if end > done {
                            shared.pending_records.fetch_add(1, Ordering::Relaxed);
                        }
                        open.retain(|(id, _)| *id != e.closes);
                    }
                    Ok(Line::Open { open: id, facts }) => {
                        open.retain(|(o, _)| *o != id);
                        open.push((id, facts));
                    }
                    Err(_) => {}
                }
            }
            let left = data.len().saturating_sub(done) as u64;
            shared.pending_bytes.fetch_add(left, Ordering::Relaxed);
        }
        let seq = existing.last().map_or(1, |s| s + 1);
        let path = segment_path(dir, seq);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        reserve_space(&file, &path);
        sync_dir(dir)?;
        shared.active.store(seq, Ordering::Release);
        Ok(Writer {
            dir: dir.to_path_buf(),
            file,
            path,
            size: 0,
            buf: Vec::with_capacity(64 << 10),
            buffered: 0,
            shared,
            open: std::collections::HashMap::new(),
            left_open: open,
            torn: false,
        })
    }

    /// The calls an earlier run left in progress (TransactionId, facts), once.
    pub fn take_left_open(&mut self) -> Vec<(String, serde_json::Value)> {
        std::mem::take(&mut self.left_open)
    }

    /// Journals a call in progress (at its start, and again when its facts change).
    pub fn journal_open(&mut self, transaction_id: &str, facts: &impl Serialize) {
        // The line of `Line::Open`, written directly (no intermediate JSON value).
        let mut bytes = Vec::with_capacity(768);
        bytes.extend_from_slice(b"{\"open\":");
        let _ = serde_json::to_writer(&mut bytes, transaction_id);
        bytes.extend_from_slice(b",\"facts\":");
        if serde_json::to_writer(&mut bytes, facts).is_err() {
            tracing::error!(transaction_id, "call facts not serializable; not journaled");
            return;
        }
        bytes.extend_from_slice(b"}\n");
        self.buf.extend_from_slice(&bytes);
        self.open.insert(transaction_id.to_string(), bytes);
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a record to the next commit; it closes the call `closes` (a TransactionId).
    pub fn append(&mut self, key: &str, body: &str, closes: &str) {
        let entry =
            Entry { key: key.to_string(), body: body.to_string(), closes: closes.to_string() };
        // Serializing strings cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, &entry);
        self.buf.push(b'\n');
        self.buffered += 1;
        self.open.remove(closes);
    }

    /// Whether records or journal lines wait for a commit.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes the appended lines and fsyncs them; returns how many records were committed. On
    /// error the lines stay buffered for the next commit.
    pub fn commit(&mut self) -> Result<u64, SpoolError> {
        if self.buf.is_empty() {
            return Ok(0);
        }
        if self.torn {
            if let Err(e) = self.rotate() {
                self.set_failing(true);
                return Err(e);
            }
            self.torn = false;
        }
        // Every commit is flushed, journal lines too: a disk that fails drops what its page
        // cache held (delayed allocation keeps unflushed appends there for up to 30 s), and
        // calls in progress would then leave no trace. Nobody waits for a journal-only
        // commit, and the thread groups turns into one flush.
        //
        // Counted before the write: the uploader may read and deliver the lines as soon as they
        // are in the file, and a count added after its subtraction would stay for ever.
        let (n, bytes) = (self.buffered, self.buf.len() as u64);
        self.shared.pending_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.shared.pending_records.fetch_add(n, Ordering::Relaxed);
        if let Err(e) = append_whole(&mut self.file, self.size, &self.buf, true) {
            sub_saturating(&self.shared.pending_bytes, bytes);
            sub_saturating(&self.shared.pending_records, n);
            self.after_failed_write();
            self.set_failing(true);
            return Err(io(&self.path)(e));
        }
        self.set_failing(false);
        self.size += bytes;
        self.buf.clear();
        self.buffered = 0;
        // The lines are committed whatever rotation does: a segment that cannot be replaced
        // (a full disk) is written on past its size.
        if self.size >= SEGMENT_BYTES {
            if let Err(e) = self.rotate() {
                tracing::warn!(error = %e, "CDR spool segment not rotated; writing on");
            }
        }
        self.shared.notify.notify_one();
        Ok(n)
    }

    /// Checks that an idle spool could still commit (a data disk that turned read-only is
    /// noticed before a call needs it, so new calls can be refused in time): an empty line,
    /// which readers skip, is written to the segment (into its reserved space, so a full disk
    /// does not count). Nothing is done while lines wait for a commit: the commit tells.
    pub fn probe(&mut self) -> Result<(), SpoolError> {
        if self.has_pending() || self.torn {
            return Ok(());
        }
        self.shared.pending_bytes.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = append_whole(&mut self.file, self.size, b"\n", false) {
            sub_saturating(&self.shared.pending_bytes, 1);
            self.after_failed_write();
            self.set_failing(true);
            return Err(io(&self.path)(e));
        }
        self.size += 1;
        self.set_failing(false);
        Ok(())
    }

    /// After a write that failed: the segment is whole again or marked torn, and its space
    /// reserved again if there is room (cutting it back freed the reserve).
    fn after_failed_write(&mut self) {
        if self.file.metadata().map_or(true, |m| m.len() != self.size) {
            self.torn = true;
        }
        let _ = reserve_space_quietly(&self.file);
    }

    /// True while the spool cannot write: its last commit or probe failed ([`Shared::failing`];
    /// a probe runs only with nothing left to commit, so the last attempt tells).
    pub fn failing(&self) -> bool {
        self.shared.failing.load(Ordering::Relaxed)
    }

    fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::Relaxed);
    }

    fn rotate(&mut self) -> Result<(), SpoolError> {
        let seq = self.shared.active.load(Ordering::Acquire) + 1;
        let path = segment_path(&self.dir, seq);
        let mut file =
            OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        if !reserve_space(&file, &path) {
            // No room for a new segment: drop it and keep the current one.
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(io(&path)(std::io::Error::from_raw_os_error(28)));
        }
        // The calls in progress move to the new segment, so the old one can go once delivered.
        let carried: Vec<u8> = self.open.values().flatten().copied().collect();
        let bytes = carried.len() as u64;
        // Counted before the uploader can see them (see `commit`).
        self.shared.pending_bytes.fetch_add(bytes, Ordering::Relaxed);
        let written = file.write_all(&carried).and_then(|_| file.sync_data()).map_err(io(&path));
        if let Err(e) = written.and_then(|_| sync_dir(&self.dir)) {
            sub_saturating(&self.shared.pending_bytes, bytes);
            return Err(e);
        }
        self.file = file;
        self.path = path;
        self.size = bytes;
        self.shared.active.store(seq, Ordering::Release);
        Ok(())
    }
}

/// Makes a new file's directory entry durable.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("voicegw-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn commits_are_read_back_and_restarts_open_a_new_segment() {
        let dir = tmp("restart");
        let mut w = Writer::open(&dir).unwrap();
        w.journal_open("t1", &serde_json::json!({"n": 1}));
        w.journal_open("t2", &serde_json::json!({"n": 2}));
        w.journal_open("t3", &serde_json::json!({"n": 3}));
        w.append("k/1", "{\"a\":1}", "t1");
        w.journal_open("t2", &serde_json::json!({"n": 22}));
        w.append("k/2", "{\"a\":\"x\\ny\"}", "t3");
        assert!(w.has_pending());
        assert_eq!(w.commit().unwrap(), 2);
        assert_eq!(w.commit().unwrap(), 0);
        drop(w);
        let mut w = Writer::open(&dir).unwrap();
        assert_eq!(segments(&dir).unwrap(), vec![1, 2]);
        assert_eq!(w.shared().pending_records.load(Ordering::Relaxed), 2);
        // t2 was left in progress, with its latest facts.
        assert_eq!(w.take_left_open(), vec![("t2".to_string(), serde_json::json!({"n": 22}))]);
        let data = std::fs::read(segment_path(&dir, 1)).unwrap();
        let lines = records(&data, usize::MAX);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].0.as_ref().unwrap().body, "{\"a\":\"x\\ny\"}");
        assert_eq!(lines[1].1, data.len());
    }

    #[test]
    fn probes_of_an_idle_spool_leave_lines_readers_skip() {
        let dir = tmp("probe");
        let mut w = Writer::open(&dir).unwrap();
        w.probe().unwrap();
        w.append("k/1", "{}", "t1");
        // Lines wait for a commit: the probe leaves them to it.
        w.probe().unwrap();
        assert_eq!(w.commit().unwrap(), 1);
        w.probe().unwrap();
        assert!(!w.failing());
        let data = std::fs::read(segment_path(&dir, 1)).unwrap();
        assert!(data.starts_with(b"\n{") && data.ends_with(b"}\n\n"), "{data:?}");
        let lines = records(&data, usize::MAX);
        assert_eq!(lines.len(), 1);
        assert_eq!(complete_lines(&data).len(), 1);
        assert_eq!(lines[0].0.as_ref().unwrap().key, "k/1");
    }

    #[test]
    fn rotation_carries_the_calls_in_progress() {
        let dir = tmp("rotate");
        let mut w = Writer::open(&dir).unwrap();
        w.journal_open("live", &serde_json::json!({"n": 1}));
        w.journal_open("done", &serde_json::json!({"n": 2}));
        w.append("k/done", "{}", "done");
        w.commit().unwrap();
        w.rotate().unwrap();
        assert_eq!(segments(&dir).unwrap(), vec![1, 2]);
        std::fs::remove_file(segment_path(&dir, 1)).unwrap();
        drop(w);
        let mut w = Writer::open(&dir).unwrap();
        assert_eq!(w.take_left_open(), vec![("live".to_string(), serde_json::json!({"n": 1}))]);
    }

    /// A disk that takes part of a write and then fails (full), then recovers.
    struct FlakyDisk {
        data: Vec<u8>,
        room: usize,
        synced: usize,
    }

    impl SegmentFile for FlakyDisk {
        fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
            let take = buf.len().min(self.room);
            self.data.extend_from_slice(&buf[..take]);
            self.room -= take;
            if take < buf.len() {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            Ok(())
        }
        fn sync_data(&mut self) -> std::io::Result<()> {
            self.synced = self.data.len();
            Ok(())
        }
        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            self.data.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_is_cut_back_so_the_retry_leaves_whole_lines() {
        let mut disk = FlakyDisk { data: Vec::new(), room: 50, synced: 0 };
        let first = b"{\"key\":\"a\",\"body\":\"1\"}\n".to_vec();
        append_whole(&mut disk, 0, &first, true).unwrap();
        let size = disk.data.len() as u64;
        // The disk fills in the middle of the next two records.
        let next = b"{\"key\":\"b\",\"body\":\"2\"}\n{\"key\":\"c\",\"body\":\"3\"}\n".to_vec();
        assert!(append_whole(&mut disk, size, &next, true).is_err());
        assert_eq!(disk.data.len() as u64, size, "the torn part is cut off");
        // Space again: the retry appends whole lines, and every record reads back.
        disk.room = 1 << 20;
        append_whole(&mut disk, size, &next, true).unwrap();
        let lines = complete_lines(&disk.data);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|(l, _)| l.is_ok()), "{lines:?}");
        assert_eq!(disk.synced, disk.data.len());
    }

    #[test]
    fn torn_and_corrupt_lines_are_not_delivered() {
        let e = Entry { key: "k".into(), body: "{}".into(), closes: "t".into() };
        let good = serde_json::to_string(&e).unwrap();
        let data = format!(
            "{good}\nnot json\n{good}\n{{\"open\":\"t\",\"facts\":{{}}}}\n{{\"key\":\"torn"
        );
        let lines = records(data.as_bytes(), usize::MAX);
        assert_eq!(records(data.as_bytes(), 1).len(), 1);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].0.is_ok() && lines[1].0.is_err() && lines[2].0.is_ok());
        assert!(lines[2].1 < data.len());
    }
}
