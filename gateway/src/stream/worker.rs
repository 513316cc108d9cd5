//! The streaming worker: a thread beside each relay thread that owns that thread's streamed
//! calls ([`CallStreams`]: jitter buffers, muxers, what goes to the sink). The relay thread
//! only copies each accepted RTP payload of a streamed call into a [`Deferred`] arena and, once
//! per turn, hands the arena over ([`Worker::batch`]); decoding and muxing happen here, on
//! another core when there is one, so they neither delay a packet of the batch nor make the
//! relay's next turn start later (which made its batches, and its latency, grow).
//!
//! While it has streamed calls the worker wakes every [`PERIOD`] and takes what queued (the
//! relay never wakes it: no system call per turn), visits its streams and, once a second, adds
//! what they did to the metrics; with none it sleeps until a call opens. Opens and closes are never dropped; arenas in flight are bounded
//! ([`MAX_IN_FLIGHT`]): past it the relay drops a batch and counts it, and the legs fill
//! the gap with silence. Emptied arenas go back to the relay thread for reuse, so nothing is
//! allocated per turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Instant;
use media::relay::Tap as _;

use super::call::CallStreams;
use super::deferred::Deferred;
use super::StreamCounters;
use crate::driver::clock::Clock;

/// How often the worker takes what queued.
pub const PERIOD: Duration = Duration::from_millis(10);
/// Arenas handed over and not yet taken, at most (about a second of turns).
pub const MAX_IN_FLIGHT: usize = 1024;
/// Streams are visited (gaps released, bytes drained) this often.
const VISIT_EVERY: Duration = Duration::from_millis(50);

enum Work {
    Open { call: u64, streams: Box<CallStreams> },
    Batch(Deferred),
    Close { call: u64, at: Instant },
}

/// A relay thread's end of its streaming worker.
pub struct Worker {
    tx: Sender<Work>,
    spare: Receiver<Deferred>,
    in_flight: Arc<AtomicUsize>,
    /// PCM bytes of the payloads in batches dropped (the worker adds them to the metrics).
    dropped: Arc<AtomicU64>,
}

impl Worker {
    /// Starts the worker thread `name`.
    pub fn start(
        name: String,
        clock: Clock,
        registry: Arc<Mutex<metrics::Registry>>,
    ) -> std::io::Result<Worker> {
        let (tx, rx) = channel();
        let (spare_tx, spare) = channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let shared = (in_flight.clone(), dropped.clone());
        std::thread::Builder::new()
            .name(name)
            .spawn(move || run(clock, &rx, &spare_tx, &shared.0, &shared.1, &registry))?;
        Ok(Worker { tx, spare, in_flight, dropped })
    }

    /// A streamed call begins.
    pub fn open(&self, call: u64, streams: CallStreams) {
        let _ = self.tx.send(Work::Open { call, streams: Box::new(streams) });
    }

    /// Hands the turn's payloads over (when there are any) and leaves an empty arena in
    /// `deferred`.
    pub fn batch(&self, deferred: &mut Deferred) {
        if deferred.is_empty() {
            return;
        }
        if self.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            // The worker is far behind: this turn's audio is lost (the legs fill it).
            self.dropped.fetch_add(deferred.payload_bytes() as u64 * 2, Ordering::Relaxed);
            deferred.clear();
            return;
        }
        let next = self.spare.try_recv().unwrap_or_default();
        let full = std::mem::replace(deferred, next);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Work::Batch(full));
    }

    /// A streamed call's media closed at `at` (after its last batch).
    pub fn close(&self, call: u64, at: Instant) {
        let _ = self.tx.send(Work::Close { call, at });
    }
}

fn run(
    clock: Clock,
    rx: &Receiver<Work>,
    spare: &Sender<Deferred>,
    in_flight: &AtomicUsize,
    dropped: &AtomicU64,
    registry: &Mutex<metrics::Registry>,
) {
    let mut calls: HashMap<u64, Box<CallStreams>> = HashMap::new();
    let mut counters = StreamCounters::default();
    let mut next_visit = clock.now();
    let mut next_report = clock.now() + Duration::from_secs(1);
    loop {
        // With no streamed call, nothing comes but an open: wait for it (no idle wake-ups).
        let mut first = None;
        if calls.is_empty() && counters.is_empty() {
            match rx.recv() {
                Ok(w) => first = Some(w),
                Err(_) => return,
            }
        } else {
            std::thread::sleep(PERIOD);
        }
        loop {
            let work = match first.take() {
                Some(w) => Ok(w),
                None => rx.try_recv(),
            };
            match work {
                Ok(Work::Open { call, streams }) => {
                    calls.insert(call, streams);
                }
                Ok(Work::Batch(mut d)) => {
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    d.drain(|call, side, header, payload, at| {
                        if let Some(st) = calls.get_mut(&call) {
                            st.rtp(side, header, payload, at);
                        }
                    });
                    // The relay thread may be gone (stopping): the arena is then dropped.
                    let _ = spare.send(d);
                }
                Ok(Work::Close { call, at }) => {
                    if let Some(mut st) = calls.remove(&call) {
                        st.finish(at, &mut counters);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let now = clock.now();
        if now >= next_visit {
            next_visit = now + VISIT_EVERY;
            for st in calls.values_mut() {
                st.visit(now, &mut counters);
            }
        }
        if now >= next_report {
            next_report = now + Duration::from_secs(1);
            counters.dropped_bytes += dropped.swap(0, Ordering::Relaxed);
            if !counters.is_empty() {
                let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
                counters.report(&mut r);
            }
        }
    }
}
