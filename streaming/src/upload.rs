//! One stream's PutMedia uploads, sans-IO (kvs-putmedia.md §1): which connection to open when,
//! what to write on it, what the acknowledgements mean, when to rotate, and when to give up.
//! The driver owns the HTTP connection (hyper, SigV4); this core owns the decisions.
//!
//! - Fragments from the muxer ([`Upload::push`]) are kept until KVS acknowledges them
//!   (PERSISTED, or RECEIVED when the stream keeps no data), so a new connection starts with the
//!   stream head and re-sends what was not acknowledged. The buffer is bounded
//!   ([`UploadConfig::max_buffered_bytes`]): past it the oldest fragments are dropped and
//!   counted, so a dead endpoint costs memory up to the bound and never stalls the caller.
//! - Acknowledgement `ERROR`s and HTTP failures are sorted by [`crate::ack::error_action`]
//!   and [`http_action`]: retriable ones reconnect after a backoff (doubling from
//!   `backoff_first` to `backoff_max`); a stream that stays down for `give_up_after`, or a
//!   final error, is [`UploadEvent::Failed`].
//! - A connection is rotated before KVS's 45-minute limit (`rotate_after`, 40 min as the KVS
//!   producer library does) at the next fragment boundary: when the next fragment begins (or
//!   at once if nothing waits), the connection's last fragment is closed with the
//!   end-of-fragment tag and the request body ends; when the response ends a new connection
//!   opens at once, starting with the fragment that began ("break before make": KVS allows one
//!   PutMedia connection per stream). The muxer, on its own thread, never hears of it.
//! - A connection that acknowledges nothing for `ack_timeout` while fragments wait is taken as
//!   dead and replaced.

use std::collections::VecDeque;
use std::time::Duration;

use common::Instant;

use crate::ack::{error_action, error_text, Ack, AckError, AckEvent, AckParser, ErrorAction};
use crate::muxer::Chunk;

/// The knobs of one stream's uploads.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    pub rotate_after: Duration,
    pub max_buffered_bytes: usize,
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    pub give_up_after: Duration,
    pub ack_timeout: Duration,
    /// The stream keeps data (retention above zero): fragments are done when PERSISTED, else
    /// when RECEIVED (KVS sends no PERSISTED without retention).
    pub persisted_acks: bool,
}

impl Default for UploadConfig {
    fn default() -> UploadConfig {
        UploadConfig {
            rotate_after: Duration::from_secs(40 * 60),
            max_buffered_bytes: 4 << 20,
            backoff_first: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
            give_up_after: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(30),
            persisted_acks: true,
        }
    }
}

/// What the driver is asked to do, or told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadEvent {
    /// Open a new PutMedia connection, then call [`Upload::connected`] or
    /// [`Upload::connect_failed`].
    Connect,
    /// Drop the open connection without ending it (it failed); [`Upload::closed`] follows.
    Abort { reason: String },
    /// Send the terminating chunk: everything due on this connection was written (the stream
    /// is ending, or rotating).
    EndBody,
    /// KVS acknowledged a fragment (the first one gives the STARTED event its
    /// `startFragmentNumber`).
    Acknowledged { timecode: u64, fragment_number: Option<String>, first: bool },
    /// KVS answered an `ERROR` acknowledgement (counted by code; the upload acts on it).
    ErrorAck { error_id: u32 },
    /// The stream is given up: the FAILED event's reason.
    Failed { reason: String },
    /// Every fragment was acknowledged and the last connection ended.
    Done,
}

/// Counters of one stream's uploads (the streaming metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadStats {
    pub bytes_sent: u64,
    pub fragments: u64,
    /// Acknowledgements by [`AckEvent`] (in the order of [`ACK_EVENTS`]).
    pub acks: [u64; 5],
    pub ack_parse_errors: u64,
    pub connections: u64,
    pub rotations: u64,
    /// Connections dropped for acknowledging nothing for `ack_timeout`.
    pub ack_timeouts: u64,
    pub dropped_fragments: u64,
    pub dropped_bytes: u64,
}

/// The order of [`UploadStats::acks`].
pub const ACK_EVENTS: [AckEvent; 5] =
    [AckEvent::Buffering, AckEvent::Received, AckEvent::Persisted, AckEvent::Error, AckEvent::Idle];

/// What to do about an HTTP status and `x-amz-ErrorType` that PutMedia answered instead of 200.
pub fn http_action(status: u16, error_type: &str) -> ErrorAction {
    match (status, error_type) {
        (400, "ClientLimitExceededException" | "ConnectionLimitExceededException") => {
            ErrorAction::Reconnect
        }
        (408 | 429, _) | (500..=599, _) => ErrorAction::Reconnect,
        _ => ErrorAction::GiveUp,
    }
}

#[derive(Debug)]
struct Fragment {
    timecode: u64,
    /// Its place in the stream (fragments are numbered as they are pushed).
    seq: u64,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    /// No connection; `retry_at` says when the next opens.
    Down { retry_at: Option<Instant> },
    /// Asked for; waiting for `connected`.
    Connecting,
    /// Writing. `handed` is how far the queue was handed to the driver: fragment index and
    /// byte offset in it.
    Open { opened_at: Instant, head_sent: bool, handed: (usize, usize), last_ack: Instant },
    /// The body was ended (rotation, end of stream or abort); waiting for `closed`.
    Closing { rotate: bool, since: Instant },
}

/// See the module documentation.
pub struct Upload {
    cfg: UploadConfig,
    head: Vec<u8>,
    queue: VecDeque<Fragment>,
    queued: usize,
    conn: Conn,
    /// A rotation is due: the body ends at the next fragment boundary.
    rotating: bool,
    /// The first fragment that goes on the next connection (it began while rotating).
    rotate_at: Option<u64>,
    next_seq: u64,
    attempt: u32,
    /// Since when the stream has had no working connection.
    failing_since: Option<Instant>,
    acks: AckParser,
    first_number: Option<String>,
    last_number: Option<String>,
    ending: bool,
    failed: bool,
    events: VecDeque<UploadEvent>,
    stats: UploadStats,
}

impl Upload {
    /// Uploads of a stream whose every connection begins with `head` (`Muxer::write_header`).
    pub fn new(cfg: UploadConfig, head: Vec<u8>) -> Upload {
        Upload {
            cfg,
            head,
            queue: VecDeque::new(),
            queued: 0,
            conn: Conn::Connecting,
            rotating: false,
            rotate_at: None,
            next_seq: 0,
            attempt: 0,
            failing_since: None,
            acks: AckParser::new(),
            first_number: None,
            last_number: None,
            ending: false,
            failed: false,
            events: VecDeque::from([UploadEvent::Connect]),
            stats: UploadStats::default(),
        }
    }

    pub fn stats(&self) -> UploadStats {
        self.stats
    }

    /// The fragment number of the first acknowledged fragment.
    pub fn first_fragment_number(&self) -> Option<&str> {
        self.first_number.as_deref()
    }

    /// The fragment number of the last acknowledged fragment (the ENDED event's
    /// `currentFragmentNumber`).
    pub fn last_fragment_number(&self) -> Option<&str> {
        self.last_number.as_deref()
    }

    /// Whether [`Upload::poll_transmit`] has something to write (or a body to end).
    pub fn wants_transmit(&self) -> bool {
        let Conn::Open { head_sent, handed, .. } = self.conn else { return false };
        !head_sent
            || self.queue.get(handed.0).is_some_and(|f| handed.1 < f.bytes.len())
            || handed.0 + 1 < self.queue.len()
            || (self.ending && self.all_handed())
            || (self.rotating && self.queue.is_empty())
    }

    /// Bytes waiting for an acknowledgement.
    pub fn buffered(&self) -> usize {
        self.queued
    }

    pub fn poll_event(&mut self) -> Option<UploadEvent> {
        self.events.pop_front()
    }

    /// Whether an event waits for [`Upload::poll_event`].
    pub fn has_event(&self) -> bool {
        !self.events.is_empty()
    }

    /// Takes the muxer's next chunk.
    pub fn push(&mut self, now: Instant, chunk: Chunk<'_>) {
        if self.failed {
            return;
        }
        match (chunk.fragment, self.queue.back_mut()) {
            (None, Some(last)) => last.bytes.extend_from_slice(chunk.bytes),
            (fragment, _) => {
                self.stats.fragments += u64::from(fragment.is_some());
                let timecode = fragment.unwrap_or(0);
                let seq = self.next_seq;
                self.next_seq += 1;
                if self.rotating && self.rotate_at.is_none() && fragment.is_some() {
                    // The fragments before this one are whole: the connection ends with them.
                    self.rotate_at = Some(seq);
                }
                self.queue.push_back(Fragment { timecode, seq, bytes: chunk.bytes.to_vec() });
            }
        }
        self.queued += chunk.bytes.len();
        while self.queued > self.cfg.max_buffered_bytes && self.queue.len() > 1 {
            self.drop_front(now);
            self.stats.dropped_fragments += 1;
        }
    }

    fn drop_front(&mut self, now: Instant) {
        let Some(f) = self.queue.pop_front() else { return };
        self.queued -= f.bytes.len();
        self.stats.dropped_bytes += f.bytes.len() as u64;
        let mut cut = false;
        if let Conn::Open { handed, .. } = &mut self.conn {
            if handed.0 > 0 {
                handed.0 -= 1;
            } else {
                // The front fragment was being written: if part of it never will be, the
                // connection's MKV is cut mid-fragment, so the connection goes too.
                cut = handed.1 < f.bytes.len();
                *handed = (0, 0);
            }
        }
        if cut {
            self.abort(now, "the upload buffer overflowed mid-fragment".into());
        }
    }

    /// Appends to `out` what the open connection should carry next (the head first, then every
    /// fragment byte not yet handed; when rotating, up to the fragment that goes on the next
    /// connection, then the end-of-fragment tag). Returns whether anything was added.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let rotate_at = self.rotate_at;
        let Conn::Open { head_sent, handed, .. } = &mut self.conn else { return false };
        let before = out.len();
        if !*head_sent {
            out.extend_from_slice(&self.head);
            *head_sent = true;
        }
        let mut boundary = false;
        while let Some(f) = self.queue.get(handed.0) {
            if rotate_at.is_some_and(|r| f.seq >= r) {
                boundary = true;
                break;
            }
            out.extend_from_slice(&f.bytes[handed.1..]);
            if handed.0 + 1 < self.queue.len() {
                *handed = (handed.0 + 1, 0);
            } else {
                handed.1 = f.bytes.len();
                break;
            }
        }
        if boundary {
            // The connection's last fragment is whole: it ends with the end-of-fragment tag.
            crate::mkv::write_tag(out, crate::mkv::END_OF_FRAGMENT, "");
        }
        let added = out.len() - before;
        self.stats.bytes_sent += added as u64;
        if boundary || (self.rotating && self.queue.is_empty()) {
            self.end_body(now, true);
        } else if self.ending && self.all_handed() {
            self.end_body(now, false);
        }
        added > 0
    }

    /// Whether every byte queued was handed to the open connection.
    fn all_handed(&self) -> bool {
        match self.conn {
            Conn::Open { handed, .. } => {
                self.queue.is_empty()
                    || (handed.0 + 1 == self.queue.len()
                        && handed.1 == self.queue[handed.0].bytes.len())
            }
            _ => false,
        }
    }

    /// The stream ends: once every fragment is written the body is ended, and once they are
    /// acknowledged (or the stream fails) [`UploadEvent::Done`] follows.
    pub fn finish(&mut self, now: Instant) {
        self.ending = true;
        if self.all_handed() {
            self.end_body(now, false);
        } else if matches!(self.conn, Conn::Down { .. }) && self.queue.is_empty() {
            self.done();
        }
    }

    fn end_body(&mut self, now: Instant, rotate: bool) {
        if matches!(self.conn, Conn::Open { .. }) {
            self.conn = Conn::Closing { rotate, since: now };
            self.rotating = false;
            self.rotate_at = None;
            self.stats.rotations += u64::from(rotate);
            self.events.push_back(UploadEvent::EndBody);
        }
    }

    fn done(&mut self) {
        if let Conn::Down { retry_at } = &mut self.conn {
            *retry_at = None;
        }
        if !self.failed {
            self.failed = true; // nothing more is taken
            self.events.push_back(UploadEvent::Done);
        }
    }

    fn abort(&mut self, now: Instant, reason: String) {
        if matches!(self.conn, Conn::Open { .. } | Conn::Connecting) {
            self.conn = Conn::Closing { rotate: false, since: now };
            self.rotating = false;
            self.rotate_at = None;
            self.events.push_back(UploadEvent::Abort { reason });
        }
    }

    fn fail(&mut self, now: Instant, reason: String) {
        if self.failed {
            return;
        }
        self.abort(now, reason.clone());
        self.failed = true;
        self.stats.dropped_fragments += self.queue.len() as u64;
        self.stats.dropped_bytes += self.queued as u64;
        self.queue.clear();
        self.queued = 0;
        self.events.push_back(UploadEvent::Failed { reason });
    }

    /// The connection asked for is open and answered 200.
    pub fn connected(&mut self, now: Instant) {
        if self.failed || self.conn != Conn::Connecting {
            return;
        }
        self.stats.connections += 1;
        self.acks = AckParser::new();
        self.conn = Conn::Open { opened_at: now, head_sent: false, handed: (0, 0), last_ack: now };
        if self.ending && self.queue.is_empty() {
            self.end_body(now, false);
        }
    }

    /// The connection asked for could not be opened: `status` is the HTTP status PutMedia
    /// answered with (and its `x-amz-ErrorType`), or `None` for a network or TLS failure.
    pub fn connect_failed(&mut self, now: Instant, status: Option<(u16, &str)>, reason: &str) {
        let action = status.map_or(ErrorAction::Reconnect, |(s, t)| http_action(s, t));
        if action == ErrorAction::GiveUp {
            self.conn = Conn::Down { retry_at: None };
            self.fail(now, format!("PutMedia refused: {reason}"));
            return;
        }
        self.conn = Conn::Closing { rotate: false, since: now };
        self.closed(now, reason);
    }

    /// Bytes of the response body (the acknowledgement stream).
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) {
        let mut got: Vec<Result<Ack, AckError>> = Vec::new();
        self.acks.feed(bytes, &mut |a| got.push(a));
        for a in got {
            match a {
                Ok(ack) => self.on_ack(now, ack),
                Err(_) => self.stats.ack_parse_errors += 1,
            }
        }
    }

    fn on_ack(&mut self, now: Instant, ack: Ack) {
        let i = ACK_EVENTS.iter().position(|e| *e == ack.event).unwrap_or(0);
        self.stats.acks[i] += 1;
        if let Conn::Open { last_ack, .. } = &mut self.conn {
            *last_ack = now;
        }
        let done = match ack.event {
            AckEvent::Persisted => true,
            AckEvent::Received => !self.cfg.persisted_acks,
            AckEvent::Error => {
                let id = ack.error_id.unwrap_or(0);
                self.events.push_back(UploadEvent::ErrorAck { error_id: id });
                let what = format!("KVS error {id}: {}", error_text(id));
                match error_action(id) {
                    ErrorAction::Reconnect => self.abort(now, what),
                    ErrorAction::GiveUp => self.fail(now, what),
                }
                false
            }
            AckEvent::Buffering | AckEvent::Idle => false,
        };
        let Some(timecode) = ack.fragment_timecode.filter(|_| done) else { return };
        // Every fragment up to this one is done (KVS acknowledges in order).
        while self.queue.front().is_some_and(|f| f.timecode <= timecode) {
            if let Some(f) = self.queue.pop_front() {
                self.queued -= f.bytes.len();
            }
            if let Conn::Open { handed, .. } = &mut self.conn {
                if handed.0 > 0 {
                    handed.0 -= 1;
                } else {
                    *handed = (0, 0);
                }
            }
        }
        let first = self.first_number.is_none() && ack.fragment_number.is_some();
        if first {
            self.first_number.clone_from(&ack.fragment_number);
        }
        if ack.fragment_number.is_some() {
            self.last_number.clone_from(&ack.fragment_number);
        }
        self.attempt = 0;
        self.failing_since = None;
        self.events.push_back(UploadEvent::Acknowledged {
            timecode,
            fragment_number: ack.fragment_number,
            first,
        });
    }

    /// The connection ended (the response finished, or it broke).
    pub fn closed(&mut self, now: Instant, reason: &str) {
        let mut acks: Vec<Result<Ack, AckError>> = Vec::new();
        self.acks.finish(&mut |a| acks.push(a));
        self.stats.ack_parse_errors += acks.iter().filter(|a| a.is_err()).count() as u64;
        let rotate = matches!(self.conn, Conn::Closing { rotate: true, .. });
        if self.failed {
            self.conn = Conn::Down { retry_at: None };
            return;
        }
        if self.ending && self.queue.is_empty() {
            self.conn = Conn::Down { retry_at: None };
            self.done();
            return;
        }
        if rotate {
            self.conn = Conn::Connecting;
            self.events.push_back(UploadEvent::Connect);
            return;
        }
        let since = *self.failing_since.get_or_insert(now);
        if now - since >= self.cfg.give_up_after {
            self.conn = Conn::Down { retry_at: None };
            let secs = self.cfg.give_up_after.as_secs();
            self.fail(now, format!("PutMedia has not worked for {secs} s: {reason}"));
            return;
        }
        let backoff = self.cfg.backoff_first.saturating_mul(1 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        self.conn = Conn::Down { retry_at: Some(now + backoff.min(self.cfg.backoff_max)) };
    }

    /// When [`Upload::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.conn {
            Conn::Down { retry_at } => retry_at.filter(|_| !self.failed),
            Conn::Open { opened_at, last_ack, .. } => {
                let rotate = (!self.rotating).then(|| opened_at + self.cfg.rotate_after);
                let silent = (!self.queue.is_empty()).then(|| last_ack + self.cfg.ack_timeout);
                match (rotate, silent) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            // A response that does not end after its body did is given `ack_timeout`.
            Conn::Closing { since, .. } => Some(since + self.cfg.ack_timeout),
            Conn::Connecting => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.conn {
            Conn::Down { retry_at: Some(at) } if now >= at && !self.failed => {
                self.conn = Conn::Connecting;
                self.events.push_back(UploadEvent::Connect);
            }
            Conn::Open { opened_at, last_ack, .. } => {
                // Both may be due at once: a silent connection goes, rotating or not.
                if !self.queue.is_empty() && now >= last_ack + self.cfg.ack_timeout {
                    let secs = self.cfg.ack_timeout.as_secs();
                    self.stats.ack_timeouts += 1;
                    self.abort(now, format!("no acknowledgement for {secs} s"));
                } else if !self.rotating && now >= opened_at + self.cfg.rotate_after {
                    self.rotating = true;
                    if self.queue.is_empty() {
                        // Everything was acknowledged, so whole: nothing to wait for.
                        self.end_body(now, true);
                    }
                }
            }
            Conn::Closing { rotate, since } if now >= since + self.cfg.ack_timeout => {
                // The driver drops the connection and reports it closed.
                self.stats.ack_timeouts += 1;
                self.conn = Conn::Closing { rotate, since: now };
                let secs = self.cfg.ack_timeout.as_secs();
                let reason = format!("the response did not end {secs} s after the body did");
                self.events.push_back(UploadEvent::Abort { reason });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
