//! The spool's own thread: the driver hands it each turn's calls to journal and to record,
//! and it builds the records, writes them and fsyncs, many turns per `fdatasync` when they
//! queue up (group commit). The driver holds back the messages of a turn that ended calls
//! until [`SpoolHandle::durable`] reaches that turn's sequence number, so a record is still on
//! disk before the response that ends its call leaves, without the driver waiting on the disk.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use metrics::{names, Labels, Registry};

use super::spool::Writer;
use connector::cdr_record::{self, CallDetailRecord, CallFacts, StreamingDetailRecord};

/// What one driver turn asks of the spool.
#[derive(Debug)]
pub enum Op {
    /// A call in progress (started, answered or moved): journal it.
    Open(Box<CallFacts>),
    /// A call that ended: its record (and its streaming record if its audio was streamed),
    /// which also closes it in the journal.
    Close(Box<CallFacts>),
}

struct Batch {
    seq: u64,
    ops: Vec<Op>,
}

/// The driver's end of the spool thread.
pub struct SpoolHandle {
    tx: mpsc::Sender<Batch>,
    durable: tokio::sync::watch::Receiver<u64>,
    next: u64,
}

/// Appends `op` to the writer's next commit.
pub(super) fn apply(writer: &mut Writer, op: Op) {
    match op {
        Op::Open(f) => writer.journal_open(&f.transaction_id, &*f),
        Op::Close(f) => {
            let rec = CallDetailRecord::from_facts(&f);
            let key =
                cdr_record::key(f.voice_connector_id.as_deref(), f.started, &f.transaction_id);
            // The streaming detail record first: the CDR's line closes the call in the journal.
            if let Some(sdr) = StreamingDetailRecord::from_facts(&f) {
                match serde_json::to_string(&sdr) {
                    Ok(body) => writer.append(&StreamingDetailRecord::key(&f), &body, ""),
                    Err(e) => tracing::error!(error = %e, "SDR not serializable"),
                }
            }
            match serde_json::to_string(&rec) {
                Ok(body) => writer.append(&key, &body, &f.transaction_id),
                Err(e) => tracing::error!(error = %e, "CDR not serializable"),
            }
        }
    }
}

/// Commits what `writer` holds (or, with nothing to commit and `probe`, checks that it could)
/// and counts the outcome; true when nothing is left pending.
pub(super) fn commit(writer: &mut Writer, registry: &Mutex<Registry>, probe: bool) -> bool {
    let was_failing = writer.failing();
    let result = if writer.has_pending() {
        writer.commit().map(Some)
    } else if probe {
        writer.probe().map(|()| None)
    } else {
        return true;
    };
    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(Some(n)) = result {
        r.add(names::CDRS_WRITTEN, &Labels::default(), n as f64);
    }
    r.set(names::CDR_SPOOL_FAILING, &Labels::default(), if writer.failing() { 1.0 } else { 0.0 });
    match result {
        Ok(_) => {
            if was_failing {
                tracing::warn!(
                    "CDR spool writable again; the records held in memory are committed"
                );
            }
            true
        }
        Err(e) => {
            r.inc(names::CDR_SPOOL_ERRORS, &Labels::default());
            if !was_failing {
                tracing::error!(error = %e, "the CDR spool cannot write; records are held in memory and retried every {} ms", RETRY.as_millis());
            }
            false
        }
    }
}

/// How often a failed commit is retried when nothing new arrives.
const RETRY: std::time::Duration = std::time::Duration::from_millis(500);

impl SpoolHandle {
    /// Moves `writer` to a thread of its own.
    pub fn start(
        mut writer: Writer,
        registry: Arc<Mutex<Registry>>,
    ) -> std::io::Result<SpoolHandle> {
        let (tx, rx) = mpsc::channel::<Batch>();
        let (durable_tx, durable) = tokio::sync::watch::channel(0u64);
        std::thread::Builder::new().name("voicegw-spool".into()).spawn(move || {
            // The highest turn handed over, and the highest reported durable.
            let (mut seq, mut durable) = (0u64, 0u64);
            loop {
                let first = match rx.recv_timeout(RETRY) {
                    Ok(b) => Some(b),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                // Idle for a retry period: check that the disk still takes writes.
                let idle = first.is_none();
                if let Some(first) = first {
                    seq = first.seq;
                    for op in first.ops {
                        apply(&mut writer, op);
                    }
                }
                // Everything queued meanwhile goes into the same fsync.
                while let Ok(b) = rx.try_recv() {
                    seq = b.seq;
                    for op in b.ops {
                        apply(&mut writer, op);
                    }
                }
                // Only a commit that succeeded makes a turn durable. While the disk fails, the
                // driver stops waiting for the spool (`Shared::failing`), so calls go on, and
                // the records stay in memory until a retry gets them to disk.
                if commit(&mut writer, &registry, idle) && seq > durable {
                    durable = seq;
                    let _ = durable_tx.send(seq);
                }
            }
            commit(&mut writer, &registry, false);
        })?;
        Ok(SpoolHandle { tx, durable, next: 0 })
    }

    /// Hands a turn's operations over; returns their sequence number (for [`Self::durable`]),
    /// or `None` when the thread is gone (nothing will be committed: nothing to wait for).
    pub fn send(&mut self, ops: Vec<Op>) -> Option<u64> {
        self.next += 1;
        if self.tx.send(Batch { seq: self.next, ops }).is_err() {
            tracing::error!("CDR spool thread gone; records of this turn are lost");
            return None;
        }
        Some(self.next)
    }

    /// The highest sequence number committed so far, to watch for changes.
    pub fn durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.durable.clone()
    }

    /// Waits until everything handed over is committed (at exit), at most `limit`.
    pub async fn flush(&self, limit: std::time::Duration) {
        let mut d = self.durable.clone();
        let want = self.next;
        let _ = tokio::time::timeout(limit, d.wait_for(|s| *s >= want)).await;
    }
}
