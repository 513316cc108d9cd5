//! SIP message logs (formats.md §5): when a voice connector has `EnableSIPLogs`, every SIP
//! message of its calls, in and out, as a JSON line in
//! `<data dir>/ChimeVoiceConnectorSipMessages/<VoiceConnectorId>.jsonl`
//! (`voice_connector_id, aws_region, event_timestamp, call_id, sip_message`).
//!
//! Messages are matched to calls by their Call-ID: the driver tells [`SipLog`] which Call-IDs
//! (both legs) belong to which call as the core reports calls starting, failing over, ending or
//! being refused; a call's Call-IDs stay known for [`LINGER`] after it ends, for the ACKs and
//! retransmissions that follow. `call_id` is the call's TransactionId (the service's "Voice
//! Connector call ID"). Files are written by a thread of their own and rotate by size; when it
//! falls behind, lines are dropped and counted rather than holding up calls.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sip::b2bua::CallEvent;

use super::facts::{Call, Observer, Seen};

/// How long a call's Call-IDs are still logged after it ends.
pub const LINGER: Duration = Duration::from_secs(32);

/// Lines queued for the writer thread before new ones are dropped.
const QUEUE: usize = 16_384;

#[derive(Debug, Clone)]
struct Owner {
    voice_connector_id: Arc<str>,
    transaction_id: Arc<str>,
    /// `None` while the call is up.
    expires: Option<Instant>,
}

/// Most Call-IDs followed at once (both legs of every call, and refused calls for 32 s).
pub const MAX_OWNERS: usize = 100_000;

/// A message to log, formatted by the writer thread (off the driver's path).
struct Pending {
    voice_connector_id: Arc<str>,
    region: Arc<str>,
    event_timestamp: u64,
    call_id: Arc<str>,
    message: bytes::Bytes,
}

/// Rotation settings.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// A file is rotated when it would grow past this.
    pub max_bytes: u64,
    /// Rotated files kept (`.1` newest).
    pub keep: u32,
}

/// Matches messages to calls and queues their log lines.
pub struct SipLog {
    /// Voice connectors with `EnableSIPLogs`: id → region.
    enabled: HashMap<String, Arc<str>>,
    owners: HashMap<String, Owner>,
    tx: mpsc::SyncSender<Pending>,
    dropped: u64,
    last_sweep: Instant,
}

/// The Call-ID header value of a SIP message (`Call-ID:` or compact `i:`), read in place.
pub fn call_id_of(msg: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(&msg[..msg.len().min(16 * 1024)]).ok().or_else(|| {
        // Non-UTF-8 bytes further on (a body) must not hide the headers.
        let end = msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(msg.len());
        std::str::from_utf8(&msg[..end]).ok()
    })?;
    for line in text.split("\r\n").skip(1) {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i") {
            return Some(value.trim());
        }
    }
    None
}

impl SipLog {
    /// Starts the writer thread for files under `dir` (at monotonic `now`).
    pub fn start(dir: PathBuf, rotation: Rotation, now: Instant) -> std::io::Result<SipLog> {
        let (tx, rx) = mpsc::sync_channel::<Pending>(QUEUE);
        std::thread::Builder::new()
            .name("voicegw-siplog".into())
            .spawn(move || writer(dir, rotation, rx))?;
        Ok(SipLog {
            enabled: HashMap::new(),
            owners: HashMap::new(),
            tx,
            dropped: 0,
            last_sweep: now,
        })
    }

    /// The voice connectors that log SIP messages (id, region); replaces the previous set.
    pub fn configure(&mut self, enabled: impl IntoIterator<Item = (String, String)>) {
        self.enabled = enabled.into_iter().map(|(id, region)| (id, Arc::from(region))).collect();
    }

    /// Whether any voice connector logs SIP messages.
    pub fn active(&self) -> bool {
        !self.enabled.is_empty()
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Logs `call_id`'s messages under `vc` (if it logs SIP) and `transaction_id`. The table
    /// is capped at [`MAX_OWNERS`]: when full, lingering entries go first; Call-IDs of refused
    /// calls (keyed by what a peer sent) are not added to a table still full of live calls.
    fn own(
        &mut self,
        call_id: &str,
        vc: &str,
        transaction_id: &Arc<str>,
        expires: Option<Instant>,
    ) {
        if self.enabled.contains_key(vc) {
            if self.owners.len() >= MAX_OWNERS && !self.owners.contains_key(call_id) {
                // A refused call waits for the once-a-second sweep to make room; a live call
                // (rare: the table holds every call's legs) makes it now.
                if expires.is_some() {
                    self.dropped += 1;
                    return;
                }
                self.owners.retain(|_, o| o.expires.is_none());
            }
            let owner = Owner {
                voice_connector_id: Arc::from(vc),
                transaction_id: transaction_id.clone(),
                expires,
            };
            self.owners.insert(call_id.to_string(), owner);
        }
    }

    /// Follows a call event (at monotonic `now`): which Call-IDs belong to which voice
    /// connector's call; `call` is the call as the call table knows it.
    pub fn follow(&mut self, ev: &CallEvent, call: Option<&Call>, now: Instant) {
        if !self.active() {
            return;
        }
        match (ev, call) {
            (CallEvent::Started { .. } | CallEvent::Failover { .. }, Some(c)) => {
                // A failover adds a Call-ID and may move the call to the next voice connector
                // of a group.
                let tx: Arc<str> = Arc::from(c.transaction_id.as_str());
                for id in &c.call_ids {
                    self.own(id, &c.labels.voice_connector_id, &tx, None);
                }
            }
            (CallEvent::Ended { .. }, Some(c)) => {
                for id in &c.call_ids {
                    if let Some(o) = self.owners.get_mut(id) {
                        o.expires = Some(now + LINGER);
                    }
                }
            }
            // Keeps an owner the same Call-ID already has (a 407 before the real call).
            (
                CallEvent::Rejected {
                    transaction_id, call_id, voice_connector_id: Some(vc), ..
                },
                _,
            ) if self.owners.get(call_id).is_none_or(|o| o.expires.is_some()) => {
                self.own(call_id, vc, &Arc::from(transaction_id.as_str()), Some(now + LINGER));
            }
            _ => {}
        }
    }

    /// Logs `msg` if its Call-ID belongs to a call of a voice connector that logs SIP. Only the
    /// Call-ID is read here; the writer thread formats the line.
    pub fn message(&mut self, msg: &bytes::Bytes, wall: SystemTime) {
        if !self.active() {
            return;
        }
        let Some(owner) = call_id_of(msg).and_then(|id| self.owners.get(id)) else { return };
        let Some(region) = self.enabled.get(&*owner.voice_connector_id) else { return };
        let pending = Pending {
            voice_connector_id: owner.voice_connector_id.clone(),
            region: region.clone(),
            event_timestamp: wall.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
            call_id: owner.transaction_id.clone(),
            message: msg.clone(),
        };
        if self.tx.try_send(pending).is_err() {
            self.dropped += 1;
        }
    }

    /// Forgets Call-IDs whose linger is over (at most once a second).
    pub fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.last_sweep) < Duration::from_secs(1) {
            return;
        }
        self.last_sweep = now;
        self.owners.retain(|_, o| o.expires.is_none_or(|e| e > now));
    }
}

/// The formats.md §5 line of a message.
fn line_of(p: &Pending) -> Vec<u8> {
    let line = serde_json::json!({
        "voice_connector_id": &*p.voice_connector_id,
        "aws_region": &*p.region,
        "event_timestamp": p.event_timestamp,
        "call_id": &*p.call_id,
        "sip_message": crate::observe::redact::sip_secrets(&String::from_utf8_lossy(&p.message)),
    });
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The writer thread: appends lines to per-voice-connector files, rotating by size.
fn writer(dir: PathBuf, rotation: Rotation, rx: mpsc::Receiver<Pending>) {
    let mut files: HashMap<String, (std::io::BufWriter<std::fs::File>, u64)> = HashMap::new();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(dir = %dir.display(), error = %e, "SIP message logs cannot be written");
    }
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(p) = next.take() {
            append(&dir, rotation, &mut files, &p.voice_connector_id, &line_of(&p));
            next = rx.try_recv().ok();
        }
        for (w, _) in files.values_mut() {
            let _ = w.flush();
        }
    }
}

fn append(
    dir: &Path,
    rotation: Rotation,
    files: &mut HashMap<String, (std::io::BufWriter<std::fs::File>, u64)>,
    vc: &str,
    line: &[u8],
) {
    let path = dir.join(format!("{vc}.jsonl"));
    if let Some((_, size)) = files.get(vc) {
        if *size > 0 && *size + line.len() as u64 > rotation.max_bytes {
            if let Some((mut w, _)) = files.remove(vc) {
                let _ = w.flush();
            }
            rotate(&path, rotation.keep);
        }
    }
    if !files.contains_key(vc) {
        match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => {
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                files.insert(vc.to_string(), (std::io::BufWriter::new(f), size));
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "SIP message log not writable");
                return;
            }
        }
    }
    if let Some((w, size)) = files.get_mut(vc) {
        if w.write_all(line).is_ok() {
            *size += line.len() as u64;
        }
    }
}

/// `x.jsonl` → `x.jsonl.1`, `.1` → `.2`, …; the oldest beyond `keep` is removed.
fn rotate(path: &Path, keep: u32) {
    let name = |k: u32| PathBuf::from(format!("{}.{k}", path.display()));
    let _ = std::fs::remove_file(name(keep.max(1)));
    for k in (1..keep.max(1)).rev() {
        let _ = std::fs::rename(name(k), name(k + 1));
    }
    let _ = std::fs::rename(path, name(1));
}

impl Observer for SipLog {
    fn on_event(&mut self, event: &CallEvent, seen: Seen<'_>) {
        self.follow(event, seen.call, seen.at.mono);
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests may read the clock
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_read_in_place() {
        let m = b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP a\r\ni: abc@host\r\n\r\n";
        assert_eq!(call_id_of(m), Some("abc@host"));
        let m = b"SIP/2.0 200 OK\r\nCALL-ID:  x-1 \r\nContent-Length: 0\r\n\r\n";
        assert_eq!(call_id_of(m), Some("x-1"));
        assert_eq!(call_id_of(b"SIP/2.0 200 OK\r\n\r\nCall-ID: body\r\n"), None);
        let mut m = b"BYE sip:x SIP/2.0\r\nCall-ID: z\r\n\r\n".to_vec();
        m.extend_from_slice(&[0xff, 0xfe]);
        assert_eq!(call_id_of(&m), Some("z"));
    }

    #[test]
    fn files_rotate_by_size_and_keep_a_few() {
        let dir = std::env::temp_dir().join(format!("voicegw-siplog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rot = Rotation { max_bytes: 100, keep: 2 };
        let mut files = HashMap::new();
        for i in 0..10 {
            append(&dir, rot, &mut files, "vc", format!("{i:039}\n").as_bytes());
        }
        drop(files);
        let base = dir.join("vc.jsonl");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&base).lines().count(), 2);
        assert_eq!(read(&PathBuf::from(format!("{}.1", base.display()))).lines().count(), 2);
        assert!(PathBuf::from(format!("{}.2", base.display())).exists());
        assert!(!PathBuf::from(format!("{}.3", base.display())).exists());
        assert!(read(&base).contains("000000009"));
    }

    #[test]
    fn messages_of_a_logging_voice_connector_are_matched_by_call_id() {
        let dir = std::env::temp_dir().join(format!("voicegw-siplog-m-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rotation = Rotation { max_bytes: 1 << 20, keep: 1 };
        let mut log = SipLog::start(dir.clone(), rotation, Instant::now()).unwrap();
        log.configure([("vc1".to_string(), "us-east-1".to_string())]);
        let t = Instant::now();
        let started = |call_id: &str, vc: &str| CallEvent::Started {
            call: 1,
            transaction_id: "tx-1".into(),
            call_id: call_id.into(),
            b_call_id: format!("b-{call_id}"),
            direction: sip::b2bua::Direction::Outbound,
            voice_connector_id: vc.into(),
            from: String::new(),
            to: String::new(),
            target: sip::Peer::new(sip::Transport::Udp, "127.0.0.1:5080".parse().unwrap()),
            auth_user: None,
        };
        let mut table = crate::observe::facts::CallTable::new(
            [("vc1".to_string(), "us-east-1".to_string())].into_iter().collect(),
        );
        let at = crate::observe::facts::Moment { mono: t, wall: SystemTime::now() };
        table.apply(&started("a1", "vc1"), at, &mut [&mut log]);
        log.message(
            &bytes::Bytes::from_static(b"INVITE sip:x SIP/2.0\r\nCall-ID: a1\r\n\r\n"),
            SystemTime::now(),
        );
        log.message(
            &bytes::Bytes::from_static(b"INVITE sip:x SIP/2.0\r\nCall-ID: b-a1\r\n\r\n"),
            SystemTime::now(),
        );
        log.message(
            &bytes::Bytes::from_static(b"INVITE sip:x SIP/2.0\r\nCall-ID: other\r\n\r\n"),
            SystemTime::now(),
        );
        let ended = CallEvent::Ended { call: 1, status: 200, reason: "BYE".into() };
        table.apply(&ended, at, &mut [&mut log]);
        log.message(
            &bytes::Bytes::from_static(b"ACK sip:x SIP/2.0\r\nCall-ID: a1\r\n\r\n"),
            SystemTime::now(),
        );
        log.sweep(t + LINGER + Duration::from_secs(2));
        log.message(
            &bytes::Bytes::from_static(b"ACK sip:x SIP/2.0\r\nCall-ID: a1\r\n\r\n"),
            SystemTime::now(),
        );
        drop(log);
        let path = dir.join("vc1.jsonl");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut text = String::new();
        while Instant::now() < deadline && text.lines().count() < 3 {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            std::thread::sleep(Duration::from_millis(20));
        }
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        let keys: Vec<&str> = lines[0].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["voice_connector_id", "aws_region", "event_timestamp", "call_id", "sip_message"]
        );
        assert_eq!(lines[0]["call_id"], "tx-1");
        assert_eq!(lines[2]["sip_message"], "ACK sip:x SIP/2.0\r\nCall-ID: a1\r\n\r\n");
        assert!(lines[0]["event_timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }
}
