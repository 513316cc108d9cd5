//! Call detail records (formats.md §7): one per call — answered, failed, refused — built from
//! the core's call events, appended to a durable spool before the call's last messages leave,
//! and uploaded from the spool to the store (a local directory or S3).
//!
//! - [`connector::cdr_record`]: the record, its key and derived fields.
//! - [`spool`]: the fsync'ed segment log.
//! - [`store`]: local directory and S3.
//! - [`uploader`]: spool → store with retry and backoff.

mod heartbeat;

pub mod spool;
pub mod spool_thread;
pub mod store;
pub mod uploader;

use std::collections::HashMap;

use crate::observe::facts::Call;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use metrics::Registry;
use sip::b2bua::{CallEvent, Direction, RejectCause};

use connector::cdr_record::{self, CallFacts};
use connector::config::Config;
use spool_thread::{Op, SpoolHandle};

/// Most 407 challenges waiting for their authenticated retry at once.
pub const MAX_CHALLENGED: usize = 10_000;

/// Records per second (and burst) for calls nobody authenticated or matched: refusals before a
/// voice connector was found and 407 challenges never answered. Beyond it they are counted
/// (`CdrsSuppressed`), not written: a flood of junk INVITEs must not buy disk.
const JUNK_RECORDS_PER_SEC: f64 = 50.0;
const JUNK_RECORDS_BURST: f64 = 500.0;

/// Turns call events into records and commits them to the spool.
pub struct Recorder {
    account: String,
    number_names: HashMap<String, String>,
    /// Voice connector → its AWS Region.
    regions: HashMap<String, String>,
    calls: HashMap<u64, CallFacts>,
    /// Calls refused with 407, by Call-ID, waiting for their authenticated retry.
    challenged: HashMap<String, (CallFacts, SystemTime)>,
    /// The challenges' (Call-ID, deadline) in the order they were made, which is deadline
    /// order: the due and the oldest are found at the front, not by a scan. Entries whose
    /// challenge was answered or renewed are skipped when they come up.
    challenge_order: std::collections::VecDeque<(String, SystemTime)>,
    /// How long a 407 waits for the authenticated retry (same Call-ID) before it is recorded
    /// as a refused call of its own.
    challenge_wait: Duration,
    last_heartbeat: SystemTime,
    /// This turn's journal and record operations, for the spool thread.
    ops: Vec<Op>,
    /// Whether `ops` closes a call (its messages must wait for the commit).
    closes: bool,
    spool: SpoolHandle,
    shared: Arc<spool::Shared>,
    dir: std::path::PathBuf,
    /// Token bucket for records of unauthenticated or unmatched calls: (tokens, last refill).
    junk_budget: (f64, SystemTime),
    /// Records of such calls not written because the budget was spent.
    suppressed: u64,
    /// BYEs for the legs of calls the previous run left up, to send once SIP is running.
    recovered_byes: Vec<cdr_record::RecoveryBye>,
}

/// The user part of a SIP URI or name-addr (`"Bob" <sip:+1206…@host>;tag=x` → `+1206…`).
pub fn user_part(s: &str) -> String {
    let uri = sip::NameAddr::parse(s).map(|n| n.uri).or_else(|_| sip::Uri::parse(s));
    uri.map(|u| connector::policy::numbering::user_of(&u)).unwrap_or_default()
}

impl Recorder {
    /// A recorder on the spool in `writer`: first records the calls an earlier run left in
    /// progress (returned: how many), then moves the writer to its own thread. A 407 waits
    /// 64·T1 (a transaction's lifetime) for the authenticated retry.
    pub fn start(
        cfg: &Config,
        mut writer: spool::Writer,
        registry: Arc<Mutex<Registry>>,
        now: SystemTime,
    ) -> std::io::Result<(Recorder, usize)> {
        let (cut, recovered_byes) = recover(&mut writer, &registry, now);
        let shared = writer.shared();
        let dir = writer.dir().to_path_buf();
        let spool = SpoolHandle::start(writer, registry)?;
        let mut r = Recorder {
            challenge_wait: Duration::from_millis(64 * cfg.sip.t1_ms),
            last_heartbeat: SystemTime::UNIX_EPOCH,
            account: String::new(),
            number_names: HashMap::new(),
            regions: HashMap::new(),
            calls: HashMap::new(),
            challenged: HashMap::new(),
            challenge_order: std::collections::VecDeque::new(),
            ops: Vec::new(),
            closes: false,
            spool,
            shared,
            dir,
            junk_budget: (JUNK_RECORDS_BURST, now),
            suppressed: 0,
            recovered_byes,
        };
        r.reconfigure(cfg);
        Ok((r, cut))
    }

    /// The BYEs for the legs of calls the previous run left up (once).
    pub fn take_recovered_byes(&mut self) -> Vec<cdr_record::RecoveryBye> {
        std::mem::take(&mut self.recovered_byes)
    }

    /// The call's audio is being streamed since `at` (a leg's first audio reached its
    /// stream): its record says `Streaming: true`, and a streaming detail record goes with it.
    pub fn mark_streamed(&mut self, call: u64, at: SystemTime) {
        if let Some(f) = self.calls.get_mut(&call) {
            if !f.streaming {
                f.streaming = true;
                f.stream_started = Some(at);
                let f = f.clone();
                self.journal(f);
            }
        }
    }

    /// Journals how to end call `call`'s legs (at its answer), if it is still in progress.
    pub fn set_recovery_byes(&mut self, call: u64, byes: Vec<cdr_record::RecoveryBye>) {
        if let Some(f) = self.calls.get_mut(&call) {
            f.recovery_byes = byes;
        }
    }

    /// Takes a reloaded configuration (names, regions, account) for calls that start from now.
    pub fn reconfigure(&mut self, cfg: &Config) {
        self.account = cfg.cdr.aws_account_id.clone();
        self.number_names = cfg
            .phone_numbers
            .iter()
            .filter(|n| !n.name.is_empty())
            .map(|n| (n.e164.clone(), n.name.clone()))
            .collect();
        self.regions =
            cfg.voice_connectors.iter().map(|vc| (vc.id.clone(), vc.aws_region.clone())).collect();
    }

    fn name_of(&self, number: &str) -> String {
        self.number_names.get(number).cloned().unwrap_or_default()
    }

    fn region_of(&self, vc: Option<&str>) -> String {
        vc.and_then(|v| self.regions.get(v))
            .cloned()
            .unwrap_or_else(connector::config::default_region)
    }

    #[allow(clippy::too_many_arguments)]
    fn facts(
        &self,
        transaction_id: &str,
        call_id: &str,
        vc: Option<&str>,
        direction: Direction,
        from: &str,
        to: &str,
        auth_user: Option<&str>,
        now: SystemTime,
    ) -> CallFacts {
        let source = user_part(from);
        let destination = user_part(to);
        CallFacts {
            aws_account_id: self.account.clone(),
            transaction_id: transaction_id.to_string(),
            call_id: call_id.to_string(),
            voice_connector_id: vc.map(str::to_string),
            region: self.region_of(vc),
            direction: direction.as_str().to_string(),
            source_name: self.name_of(&source),
            destination_name: self.name_of(&destination),
            source_number: source,
            destination_number: destination,
            sip_auth_user: auth_user.map(str::to_string),
            started: now,
            answered: None,
            ended: now,
            sip_status: 0,
            sip_reason: String::new(),
            // `Streaming`: set by `mark_streamed` when a leg's audio starts streaming.
            streaming: false,
            stream_started: None,
            interrupted: false,
            recovery_byes: Vec::new(),
        }
    }

    /// Follows one call event (wall clock `now`); `known` is the call as the call table knows
    /// it (who the call is comes from there, not from a copy kept here).
    pub fn follow(&mut self, ev: &CallEvent, known: Option<&Call>, now: SystemTime) {
        match (ev, known) {
            (CallEvent::Started { call, .. }, Some(c)) => {
                self.challenged.remove(&c.call_id);
                // The customer leg: the caller on termination, the callee on origination.
                let customer = match c.direction {
                    Direction::Outbound => &c.call_id,
                    Direction::Inbound => &c.b_call_id,
                };
                let f = self.facts(
                    &c.transaction_id,
                    customer,
                    Some(&c.labels.voice_connector_id),
                    c.direction,
                    &c.from,
                    &c.to,
                    c.auth_user.as_deref(),
                    now,
                );
                self.journal(f.clone());
                self.calls.insert(*call, f);
            }
            (CallEvent::Failover { call, .. }, Some(c)) => {
                if let Some(f) = self.calls.get_mut(call) {
                    if c.direction == Direction::Inbound {
                        f.call_id = c.b_call_id.clone();
                    }
                    f.voice_connector_id = Some(c.labels.voice_connector_id.clone());
                    f.region = c.labels.region.clone();
                    let f = f.clone();
                    self.journal(f);
                }
            }
            (CallEvent::Started { .. } | CallEvent::Failover { .. }, None) => {}
            (CallEvent::Answered { call }, _) => {
                if let Some(f) = self.calls.get_mut(call) {
                    f.answered = Some(now);
                    let f = f.clone();
                    self.journal(f);
                }
            }
            (CallEvent::Ended { call, status, reason }, _) => {
                if let Some(mut f) = self.calls.remove(call) {
                    f.ended = now;
                    f.sip_status = *status;
                    f.sip_reason = if reason == "BYE" || reason.is_empty() {
                        cdr_record::reason_phrase(*status).to_string()
                    } else {
                        reason.clone()
                    };
                    self.append(f);
                }
            }
            (
                CallEvent::Rejected {
                    transaction_id,
                    call_id,
                    status,
                    cause,
                    voice_connector_id,
                    direction,
                    from,
                    to,
                    auth_user,
                    ..
                },
                _,
            ) => {
                let mut f = self.facts(
                    transaction_id,
                    call_id,
                    voice_connector_id.as_deref(),
                    direction.unwrap_or(Direction::Outbound),
                    from,
                    to,
                    auth_user.as_deref(),
                    now,
                );
                f.sip_status = *status;
                f.sip_reason = cdr_record::reason_phrase(*status).to_string();
                if *cause == RejectCause::Unauthenticated {
                    // Recorded only if no authenticated retry follows. The table is keyed by
                    // what a peer sent: when full, the oldest challenge is recorded at once.
                    if self.challenged.len() >= MAX_CHALLENGED
                        && !self.challenged.contains_key(call_id)
                    {
                        if let Some(old) = self.pop_challenge(None) {
                            self.append_junk(old, now);
                        }
                    }
                    let deadline = now + self.challenge_wait;
                    self.challenged.insert(call_id.clone(), (f, deadline));
                    self.challenge_order.push_back((call_id.clone(), deadline));
                    if self.challenge_order.len() > 2 * MAX_CHALLENGED {
                        // Mostly answered challenges: keep only the live entries.
                        let live = &self.challenged;
                        self.challenge_order
                            .retain(|(id, d)| live.get(id).is_some_and(|(_, dl)| dl == d));
                    }
                } else {
                    self.challenged.remove(call_id);
                    if voice_connector_id.is_none() {
                        self.append_junk(f, now);
                    } else {
                        self.append(f);
                    }
                }
            }
            (CallEvent::ResponseSent { .. }, _) => {}
        }
    }

    /// Records the 407 challenges that were never answered by `now`, and once a second
    /// notes that the process is alive (the end time of calls a crash interrupts).
    pub fn tick(&mut self, now: SystemTime) {
        if now.duration_since(self.last_heartbeat).map_or(true, |d| d >= Duration::from_secs(1)) {
            self.last_heartbeat = now;
            heartbeat::write(&self.dir, now);
        }
        while let Some(f) = self.pop_challenge(Some(now)) {
            self.append_junk(f, now);
        }
    }

    /// Takes the oldest challenge still waiting (only if due by `due_by`, when given).
    fn pop_challenge(&mut self, due_by: Option<SystemTime>) -> Option<CallFacts> {
        while let Some((id, deadline)) = self.challenge_order.front() {
            if due_by.is_some_and(|t| *deadline > t) {
                return None;
            }
            let live = self.challenged.get(id).is_some_and(|(_, d)| d == deadline);
            let (id, _) = self.challenge_order.pop_front()?;
            if live {
                return self.challenged.remove(&id).map(|(f, _)| f);
            }
        }
        None
    }

    /// Records every challenge still waiting (the process is stopping).
    pub fn flush_challenges(&mut self) {
        self.challenge_order.clear();
        for (_, (f, _)) in std::mem::take(&mut self.challenged) {
            self.append(f);
        }
    }

    /// Records of unauthenticated or unmatched calls not written (budget spent).
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Appends the record of a call nobody authenticated or matched, within the budget.
    fn append_junk(&mut self, f: CallFacts, now: SystemTime) {
        let (tokens, last) = self.junk_budget;
        let elapsed = now.duration_since(last).unwrap_or_default().as_secs_f64();
        let tokens = (tokens + elapsed * JUNK_RECORDS_PER_SEC).min(JUNK_RECORDS_BURST);
        if tokens >= 1.0 {
            self.junk_budget = (tokens - 1.0, now);
            self.append(f);
        } else {
            self.junk_budget = (tokens, now);
            if self.suppressed.is_multiple_of(1000) {
                tracing::warn!(
                    suppressed = self.suppressed + 1,
                    "records of unauthenticated or unmatched calls over {JUNK_RECORDS_PER_SEC}/s not written"
                );
            }
            self.suppressed += 1;
        }
    }

    fn append(&mut self, f: CallFacts) {
        self.ops.push(Op::Close(Box::new(f)));
        self.closes = true;
    }

    /// Journals a call in progress, so a crash still leaves its record.
    fn journal(&mut self, f: CallFacts) {
        self.ops.push(Op::Open(Box::new(f)));
    }

    /// Hands this turn's operations to the spool thread. Returns the sequence number the
    /// turn's messages must wait for ([`Recorder::durable`]) when it ended calls; journal
    /// lines alone hold nothing back. A failed commit is logged, counted and retried with the
    /// next one; calls go on either way.
    pub fn commit(&mut self) -> Option<u64> {
        if self.ops.is_empty() {
            return None;
        }
        let closes = std::mem::take(&mut self.closes);
        let seq = self.spool.send(std::mem::take(&mut self.ops))?;
        // While the disk fails, waiting for the spool would only delay every call's last
        // messages: they go at once, and the records follow when the disk recovers.
        let failing = self.shared.failing.load(std::sync::atomic::Ordering::Relaxed);
        (closes && !failing).then_some(seq)
    }

    /// True while the spool cannot write what it is handed (it keeps retrying).
    pub fn failing(&self) -> bool {
        self.shared.failing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The sequence number committed so far.
    pub fn durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.spool.durable()
    }

    /// Waits until the spool thread has committed everything handed to it (at most `limit`).
    pub async fn flush(&self, limit: Duration) {
        self.spool.flush(limit).await;
    }

    /// Waits up to `limit` for the uploader to deliver what is spooled (at exit, so a local
    /// store is complete when the process ends; what is left goes out after the next start).
    pub async fn wait_delivered(&self, limit: Duration) {
        let shared = &self.shared;
        let delivered = async {
            while shared.pending_records.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(limit, delivered).await;
    }

    /// Records in the spool not yet delivered, and the spool's undelivered bytes.
    pub fn spool_backlog(&self) -> (u64, u64) {
        let s = &self.shared;
        (
            s.pending_records.load(std::sync::atomic::Ordering::Relaxed),
            s.pending_bytes.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Records every call still in progress as interrupted at `now` (the process exits with
    /// calls up, after the drain timeout); returns how many.
    pub fn interrupt_all(&mut self, now: SystemTime) -> usize {
        let n = self.calls.len();
        for (_, mut f) in std::mem::take(&mut self.calls) {
            f.ended = now;
            f.interrupted = true;
            self.append(f);
        }
        n
    }
}

/// Records the calls an earlier run left in progress (it crashed or was killed): each ends at
/// that run's last heartbeat, marked interrupted; committed before any new call.
fn recover(
    writer: &mut spool::Writer,
    registry: &Mutex<Registry>,
    now: SystemTime,
) -> (usize, Vec<cdr_record::RecoveryBye>) {
    let left = writer.take_left_open();
    if left.is_empty() {
        return (0, Vec::new());
    }
    let last_alive = heartbeat::read(writer.dir()).unwrap_or(now);
    let mut n = 0;
    let mut byes = Vec::new();
    for (id, v) in left {
        match serde_json::from_value::<CallFacts>(v) {
            Ok(mut f) => {
                f.ended = last_alive.max(f.started).max(f.answered.unwrap_or(f.started));
                f.interrupted = true;
                byes.append(&mut f.recovery_byes);
                spool_thread::apply(writer, Op::Close(Box::new(f)));
                n += 1;
            }
            Err(e) => {
                tracing::error!(transaction_id = %id, error = %e, "journaled call unreadable; no CDR for it")
            }
        }
    }
    spool_thread::commit(writer, registry, false);
    (n, byes)
}
impl crate::observe::facts::Observer for Recorder {
    fn on_event(&mut self, event: &CallEvent, seen: crate::observe::facts::Seen<'_>) {
        self.follow(event, seen.call, seen.at.wall);
    }
}
