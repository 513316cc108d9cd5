//! The local sink (`streaming.sink = "local"`, the default): one Matroska file per stream,
//! `<streaming dir>/<stream name>.mkv`, written by a thread of its own so that a slow disk
//! never stalls a relay thread. The queue to it is bounded; what does not fit is dropped and
//! counted (the file then lacks those bytes: the log says which stream).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Writes queued before the relay threads drop instead of waiting.
const QUEUE: usize = 8192;

/// A piece of a stream for the sink.
#[derive(Debug)]
pub enum Write {
    Bytes { name: String, bytes: Vec<u8> },
    End { name: String },
}

/// The relay threads' end of the local sink.
#[derive(Clone)]
pub struct LocalSink {
    tx: SyncSender<Write>,
    dropped: Arc<AtomicU64>,
}

impl LocalSink {
    /// Starts the writer thread for `dir` (created if missing).
    pub fn start(dir: PathBuf) -> std::io::Result<LocalSink> {
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("voicegw-streams".into())
            .spawn(move || write_loop(&dir, rx))?;
        Ok(LocalSink { tx, dropped: Arc::new(AtomicU64::new(0)) })
    }

    /// Queues a write; never blocks. Returns the bytes dropped (the writer was behind).
    pub fn send(&self, w: Write) -> u64 {
        match self.tx.try_send(w) {
            Ok(()) => 0,
            Err(TrySendError::Full(Write::Bytes { name, bytes })) => {
                let n = self.dropped.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                if n == 0 {
                    tracing::warn!(stream = %name, "the stream writer is behind: audio dropped");
                }
                bytes.len() as u64
            }
            Err(_) => 0,
        }
    }

    /// Bytes dropped because the writer was behind.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_loop(dir: &std::path::Path, rx: Receiver<Write>) {
    let mut files: HashMap<String, File> = HashMap::new();
    while let Ok(w) = rx.recv() {
        match w {
            Write::Bytes { name, bytes } => {
                if !files.contains_key(&name) {
                    let path = dir.join(format!("{name}.mkv"));
                    match File::options().create(true).append(true).open(&path) {
                        Ok(f) => {
                            files.insert(name.clone(), f);
                        }
                        Err(e) => {
                            tracing::error!(path = %path.display(), error = %e, "stream file cannot be opened");
                            continue;
                        }
                    }
                }
                if let Some(f) = files.get_mut(&name) {
                    if let Err(e) = f.write_all(&bytes) {
                        tracing::error!(stream = %name, error = %e, "stream file write failed");
                        files.remove(&name);
                    }
                }
            }
            Write::End { name } => {
                if let Some(f) = files.remove(&name) {
                    let _ = f.sync_data();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    #[allow(clippy::disallowed_methods)] // waits for the writer thread in real time
    fn each_stream_is_one_file_written_in_order_and_closed_at_its_end() {
        let dir = std::env::temp_dir().join(format!("voicegw-local-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sink = LocalSink::start(dir.clone()).expect("sink");
        for (name, bytes) in
            [("a", b"head-".to_vec()), ("b", b"other".to_vec()), ("a", b"tail".to_vec())]
        {
            assert_eq!(sink.send(Write::Bytes { name: name.into(), bytes }), 0);
        }
        assert_eq!(sink.send(Write::End { name: "a".into() }), 0);
        let path = dir.join("a.mkv");
        let start = std::time::Instant::now();
        while std::fs::read(&path).unwrap_or_default() != b"head-tail"
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(std::fs::read(&path).expect("a"), b"head-tail");
        assert_eq!(std::fs::read(dir.join("b.mkv")).expect("b"), b"other");
        assert_eq!(sink.dropped_bytes(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
