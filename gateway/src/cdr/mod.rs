//! Call detail records (formats.md §7): one per call — answered, failed, refused — built from
//! the core's call events, appended to a durable spool before the call's last messages leave,
//! and uploaded from the spool to the store (a local directory or S3).
//!
//! - [`record`]: the record, its key and derived fields.
//! - [`spool`]: the fsync'ed segment log.
//! - [`store`]: local directory and S3.
//! - [`uploader`]: spool → store with retry and backoff.

mod heartbeat;
pub mod record;
pub mod spool;
pub mod store;
pub mod uploader;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use metrics::{names, Labels, Registry};
use sip::b2bua::{CallEvent, Direction, RejectCause};

use crate::config::Config;
use record::{CallDetailRecord, CallFacts};

#[derive(Debug, Clone, Default)]
struct VcInfo {
    region: String,
}

/// Turns call events into records and commits them to the spool.
pub struct Recorder {
    account: String,
    number_names: HashMap<String, String>,
    vcs: HashMap<String, VcInfo>,
    calls: HashMap<u64, CallFacts>,
    /// Calls refused with 407, by Call-ID, waiting for their authenticated retry.
    challenged: HashMap<String, (CallFacts, SystemTime)>,
    /// How long a 407 waits for the authenticated retry (same Call-ID) before it is recorded
    /// as a refused call of its own.
    challenge_wait: Duration,
    last_heartbeat: SystemTime,
    writer: spool::Writer,
    registry: Arc<Mutex<Registry>>,
}

/// The user part of a SIP URI or name-addr (`"Bob" <sip:+1206…@host>;tag=x` → `+1206…`).
pub fn user_part(s: &str) -> String {
    let uri = sip::NameAddr::parse(s).map(|n| n.uri).or_else(|_| sip::Uri::parse(s));
    uri.ok()
        .and_then(|u| u.user)
        .map(|u| u.split(';').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

impl Recorder {
    /// A recorder writing to `writer`; a 407 waits 64·T1 (a transaction's lifetime) for the
    /// authenticated retry.
    pub fn new(cfg: &Config, writer: spool::Writer, registry: Arc<Mutex<Registry>>) -> Recorder {
        let mut r = Recorder {
            challenge_wait: Duration::from_millis(64 * cfg.sip.t1_ms),
            last_heartbeat: SystemTime::UNIX_EPOCH,
            account: String::new(),
            number_names: HashMap::new(),
            vcs: HashMap::new(),
            calls: HashMap::new(),
            challenged: HashMap::new(),
            writer,
            registry,
        };
        r.reconfigure(cfg);
        r
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
        self.vcs = cfg
            .voice_connectors
            .iter()
            .map(|vc| (vc.id.clone(), VcInfo { region: vc.aws_region.clone() }))
            .collect();
    }

    fn name_of(&self, number: &str) -> String {
        self.number_names.get(number).cloned().unwrap_or_default()
    }

    fn region_of(&self, vc: Option<&str>) -> String {
        vc.and_then(|v| self.vcs.get(v))
            .map(|i| i.region.clone())
            .unwrap_or_else(crate::config::default_region)
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
            // `Streaming` says whether the call's audio went to Kinesis Video Streams; voicegw
            // does not stream yet, so no call did.
            streaming: false,
            interrupted: false,
        }
    }

    /// Follows one call event (wall clock `now`).
    pub fn on_event(&mut self, ev: &CallEvent, now: SystemTime) {
        match ev {
            CallEvent::Started {
                call,
                transaction_id,
                call_id,
                b_call_id,
                direction,
                voice_connector_id,
                from,
                to,
                auth_user,
                ..
            } => {
                self.challenged.remove(call_id);
                // The customer leg: the caller on termination, the callee on origination.
                let customer = match direction {
                    Direction::Outbound => call_id,
                    Direction::Inbound => b_call_id,
                };
                let f = self.facts(
                    transaction_id,
                    customer,
                    Some(voice_connector_id),
                    *direction,
                    from,
                    to,
                    auth_user.as_deref(),
                    now,
                );
                self.journal(&f);
                self.calls.insert(*call, f);
            }
            CallEvent::Failover { call, voice_connector_id, b_call_id, .. } => {
                let region = self.region_of(Some(voice_connector_id));
                if let Some(f) = self.calls.get_mut(call) {
                    if f.direction == Direction::Inbound.as_str() {
                        f.call_id = b_call_id.clone();
                    }
                    f.voice_connector_id = Some(voice_connector_id.clone());
                    f.region = region;
                    let f = f.clone();
                    self.journal(&f);
                }
            }
            CallEvent::Answered { call } => {
                if let Some(f) = self.calls.get_mut(call) {
                    f.answered = Some(now);
                    let f = f.clone();
                    self.journal(&f);
                }
            }
            CallEvent::Ended { call, status, reason } => {
                if let Some(mut f) = self.calls.remove(call) {
                    f.ended = now;
                    f.sip_status = *status;
                    f.sip_reason = if reason == "BYE" || reason.is_empty() {
                        record::reason_phrase(*status).to_string()
                    } else {
                        reason.clone()
                    };
                    self.append(&f);
                }
            }
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
            } => {
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
                f.sip_reason = record::reason_phrase(*status).to_string();
                if *cause == RejectCause::Unauthenticated {
                    // Recorded only if no authenticated retry follows.
                    self.challenged.insert(call_id.clone(), (f, now + self.challenge_wait));
                } else {
                    self.challenged.remove(call_id);
                    self.append(&f);
                }
            }
            CallEvent::ResponseSent { .. } => {}
        }
    }

    /// Records the 407 challenges that were never answered by `now`, and once a second
    /// notes that the process is alive (the end time of calls a crash interrupts).
    pub fn tick(&mut self, now: SystemTime) {
        if now.duration_since(self.last_heartbeat).map_or(true, |d| d >= Duration::from_secs(1)) {
            self.last_heartbeat = now;
            heartbeat::write(self.writer.dir(), now);
        }
        let due: Vec<String> = self
            .challenged
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some((f, _)) = self.challenged.remove(&k) {
                self.append(&f);
            }
        }
    }

    /// Records every challenge still waiting (the process is stopping).
    pub fn flush_challenges(&mut self) {
        for (_, (f, _)) in std::mem::take(&mut self.challenged) {
            self.append(&f);
        }
    }

    fn append(&mut self, f: &CallFacts) {
        let rec = CallDetailRecord::from_facts(f);
        let key = record::key(f.voice_connector_id.as_deref(), f.started, &f.transaction_id);
        match serde_json::to_string(&rec) {
            Ok(body) => self.writer.append(&key, &body, &f.transaction_id),
            Err(e) => tracing::error!(error = %e, "CDR not serializable"),
        }
    }

    /// Journals a call in progress, so a crash still leaves its record.
    fn journal(&mut self, f: &CallFacts) {
        match serde_json::to_value(f) {
            Ok(v) => self.writer.journal_open(&f.transaction_id, v),
            Err(e) => tracing::error!(error = %e, "call facts not serializable"),
        }
    }

    /// Records the calls an earlier run left in progress (it crashed or was killed): each ends
    /// at that run's last heartbeat, marked interrupted. Committed before any new call.
    pub fn recover(&mut self, now: SystemTime) -> usize {
        let left = self.writer.take_left_open();
        if left.is_empty() {
            return 0;
        }
        let last_alive = heartbeat::read(self.writer.dir()).unwrap_or(now);
        let mut n = 0;
        for (id, v) in left {
            match serde_json::from_value::<CallFacts>(v) {
                Ok(mut f) => {
                    f.ended = last_alive.max(f.started).max(f.answered.unwrap_or(f.started));
                    f.interrupted = true;
                    self.append(&f);
                    n += 1;
                }
                Err(e) => {
                    tracing::error!(transaction_id = %id, error = %e, "journaled call unreadable; no CDR for it")
                }
            }
        }
        self.commit();
        n
    }

    /// Whether records wait to be committed.
    pub fn has_pending(&self) -> bool {
        self.writer.has_pending()
    }

    /// Commits appended records to the spool (one fsync). A failure is logged and counted; the
    /// records stay buffered and the next commit tries again. Calls go on either way.
    pub fn commit(&mut self) {
        if !self.writer.has_pending() {
            return;
        }
        let result = self.writer.commit();
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(n) => r.add(names::CDRS_WRITTEN, &Labels::default(), n as f64),
            Err(e) => {
                r.inc(names::CDR_SPOOL_ERRORS, &Labels::default());
                tracing::error!(error = %e, "CDRs not committed to the spool; retrying at the next turn");
            }
        }
    }

    /// Waits up to `limit` for the uploader to deliver what is spooled (at exit, so a local
    /// store is complete when the process ends; what is left goes out after the next start).
    pub async fn wait_delivered(&self, limit: Duration) {
        let shared = self.writer.shared();
        let until = tokio::time::Instant::now() + limit;
        while shared.pending_records.load(std::sync::atomic::Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Records in the spool not yet delivered, and the spool's undelivered bytes.
    pub fn spool_backlog(&self) -> (u64, u64) {
        let s = self.writer.shared();
        (
            s.pending_records.load(std::sync::atomic::Ordering::Relaxed),
            s.pending_bytes.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Records every call still in progress as interrupted at `now` (the process exits with
    /// calls up, after the drain timeout); returns how many.
    pub fn interrupt_all(&mut self, now: SystemTime) -> usize {
        let calls = std::mem::take(&mut self.calls);
        for (_, mut f) in calls.iter().map(|(k, f)| (k, f.clone())) {
            f.ended = now;
            f.interrupted = true;
            self.append(&f);
        }
        calls.len()
    }
}
