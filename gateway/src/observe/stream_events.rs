//! Streaming status events (formats.md §8): STARTED and ENDED for each leg's stream, FAILED
//! when a leg cannot be streamed. An observer of the calls of voice connectors that stream
//! (who the call is, its INVITE's headers) and of the relay's stream reports (when each
//! stream started, failed, ended); the events go to the sinks of [`super::event_sinks`].
//!
//! A stream outlives its call (the relay closes it after the call ended; a KVS upload goes on
//! until its last fragment is acknowledged or it gives up), so the facts of an ended call are
//! kept until its `Closed` report (sent once nothing can report on its streams any more), or
//! [`ENDED_GRACE`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connector::config::{ConnectorStreaming, NotificationTarget};
use serde_json::{json, Map, Value};
use sip::b2bua::CallEvent;
use sip::Request;

use super::event_sinks::EventSinks;
use super::facts::{Call, Moment, Observer, Seen};
use crate::cdr::user_part;
use crate::stream::metadata::{self, CallMetadata};
use crate::stream::report::{StreamFacts, StreamReport};

/// How long an ended call's facts wait for its streams' last reports, at least: longer than
/// an upload takes after its call with the default `putmedia_give_up_secs` (60 s). A longer
/// give-up lengthens it ([`StreamEvents::new`]).
pub const ENDED_GRACE: Duration = Duration::from_secs(300);
/// Most calls followed at once (calls up, and ended ones in their grace); beyond it the
/// oldest ended call is forgotten first.
pub const MAX_FOLLOWED: usize = 200_000;

/// Headers never copied into `inviteHeaders`: digest answers are secrets.
const WITHHELD: [&str; 2] = ["authorization", "proxy-authorization"];

/// A call of a voice connector that streams.
struct Followed {
    call: Call,
    targets: Vec<NotificationTarget>,
    /// `inviteHeaders`: the customer leg's INVITE, lower-case names, repeats joined with `,`.
    invite_headers: Map<String, Value>,
    /// `siprecMetadata`: a recording session's as its client sent it, else written at the
    /// first stream's start.
    metadata: Option<String>,
    /// A recording session's metadata as the structured model (`siprecMetadataJson`).
    metadata_json: Option<Value>,
    ended: bool,
}

/// See the module documentation.
pub struct StreamEvents {
    /// Voice connectors that stream, by id.
    streaming: HashMap<String, ConnectorStreaming>,
    account: String,
    calls: HashMap<u64, Followed>,
    /// Ended calls in the order they ended, with the moment they may be forgotten.
    ended: VecDeque<(u64, SystemTime)>,
    grace: Duration,
    sinks: EventSinks,
}

/// `inviteHeaders` of `req` (formats.md §8).
pub fn invite_headers(req: &Request) -> Map<String, Value> {
    let mut m = Map::new();
    for h in req.headers.iter() {
        let name = h.name.as_str().to_ascii_lowercase();
        if WITHHELD.contains(&name.as_str()) {
            continue;
        }
        match m.get_mut(&name) {
            Some(Value::String(v)) => {
                v.push(',');
                v.push_str(&h.value);
            }
            _ => {
                m.insert(name, Value::String(h.value.clone()));
            }
        }
    }
    // The parser keeps the length as the body's, not as a header.
    if !m.contains_key("content-length") {
        m.insert("content-length".into(), Value::String(req.body.len().to_string()));
    }
    m
}

/// `YYYY-MM-DDThh:mm:ssZ` (the envelope's `time`).
pub fn iso_seconds(t: SystemTime) -> String {
    let ms = connector::timefmt::iso8601(t);
    // `…:ss.mmmZ` → `…:ssZ`
    format!("{}Z", &ms[..ms.len().saturating_sub(5)])
}

fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl StreamEvents {
    /// An event that is not a stream's (a meeting's), to the same JSON-lines file and webhook.
    pub fn send_other(&self, event: Value) {
        self.sinks.send(event.to_string(), &[]);
    }

    /// `give_up`: how long an upload may go on failing before its FAILED report.
    pub fn new(
        streaming: HashMap<String, ConnectorStreaming>,
        account: String,
        sinks: EventSinks,
        give_up: Duration,
    ) -> StreamEvents {
        let grace = ENDED_GRACE.max(give_up + Duration::from_secs(120));
        let (calls, ended) = (HashMap::new(), VecDeque::new());
        StreamEvents { streaming, account, calls, ended, grace, sinks }
    }

    /// Takes a reloaded configuration, for calls that start from now.
    pub fn reconfigure(&mut self, streaming: HashMap<String, ConnectorStreaming>, account: String) {
        self.streaming = streaming;
        self.account = account;
    }

    /// Whether call `call` is followed (its voice connector streams).
    pub fn follows(&self, call: u64) -> bool {
        self.calls.contains_key(&call)
    }

    /// A recording session's metadata, as its client sent it and as the model reads it: the
    /// events carry these instead of a document voicegw writes.
    pub fn set_recording_metadata(&mut self, call: u64, xml: Option<String>, json: Option<Value>) {
        if let Some(f) = self.calls.get_mut(&call) {
            if xml.is_some() {
                f.metadata = xml;
            }
            f.metadata_json = json;
        }
    }

    /// New metadata of a recording session (a re-INVITE or UPDATE): the UPDATED event
    /// (formats.md §8), its headers as `updateHeaders`.
    pub fn updated(
        &mut self,
        call: u64,
        request: &Request,
        xml: String,
        json: Option<Value>,
        at: Moment,
    ) {
        let Some(f) = self.calls.get_mut(&call) else { return };
        f.metadata = Some(xml.clone());
        f.metadata_json.clone_from(&json);
        let c = &f.call;
        let mut d = json!({
            "callId": customer_call_id(c),
            "updateHeaders": invite_headers(request),
            "siprecMetadata": xml,
            "streamingStatus": "UPDATED",
            "transactionId": c.transaction_id,
            "version": "0",
            "voiceConnectorId": c.labels.voice_connector_id,
        });
        if let (Some(j), Some(m)) = (json, d.as_object_mut()) {
            insert_after(m, "siprecMetadata", "siprecMetadataJson", j);
        }
        let event = envelope(&self.account, &f.call, d, at);
        self.sinks.send(event.to_string(), &f.targets);
    }

    /// The INVITE whose headers the call's events carry.
    pub fn set_invite(&mut self, call: u64, invite: &Request) {
        if let Some(f) = self.calls.get_mut(&call) {
            f.invite_headers = invite_headers(invite);
        }
    }

    /// One report of the relay's streams.
    pub fn on_report(&mut self, r: &StreamReport, at: Moment) {
        if let StreamReport::Closed { call } = r {
            self.calls.remove(call);
            return;
        }
        let Some(f) = self.calls.get_mut(&r.call()) else { return };
        let detail = match r {
            StreamReport::Started { stream, .. } => {
                let d = started_detail(f, stream, &self.account);
                Some(d)
            }
            StreamReport::Ended { stream, end_ms, current_fragment, .. } => {
                let mut d = started_detail(f, stream, &self.account);
                let end = connector::timefmt::iso8601(at_ms(*end_ms));
                insert_after(&mut d, "startTime", "endTime", Value::String(end));
                d.insert("currentFragmentNumber".into(), Value::String(current_fragment.clone()));
                d["streamingStatus"] = json!("ENDED");
                Some(d)
            }
            StreamReport::Failed { reason, at_ms: t, .. } => {
                let c = &f.call;
                let d = json!({
                    "callId": customer_call_id(c),
                    "direction": c.direction.as_str(),
                    "failTime": connector::timefmt::iso8601(at_ms(*t)),
                    "failureReason": reason,
                    "streamingStatus": "FAILED",
                    "transactionId": c.transaction_id,
                    "version": "0",
                    "voiceConnectorId": c.labels.voice_connector_id,
                });
                d.as_object().cloned()
            }
            StreamReport::Streaming { .. } | StreamReport::Closed { .. } => None,
        };
        if let Some(detail) = detail {
            let event = envelope(&self.account, &f.call, Value::Object(detail), at);
            self.sinks.send(event.to_string(), &f.targets);
        }
    }

    /// Forgets the ended calls whose grace passed.
    pub fn sweep(&mut self, now: SystemTime) {
        while let Some(&(call, until)) = self.ended.front() {
            if until > now && self.calls.len() <= MAX_FOLLOWED {
                break;
            }
            self.ended.pop_front();
            if self.calls.get(&call).is_some_and(|f| f.ended) {
                self.calls.remove(&call);
            }
        }
    }
}

/// An event's envelope (formats.md §8) around `detail`.
fn envelope(account: &str, call: &Call, detail: Value, at: Moment) -> Value {
    json!({
        "version": "0",
        "id": common::uuid::uuid_v4(rand::random()),
        "detail-type": "Chime VoiceConnector Streaming Status",
        "source": "aws.chime",
        "account": account,
        "time": iso_seconds(at.wall),
        "region": region_of(call),
        "resources": [],
        "detail": detail,
    })
}

/// The Call-ID the events (and the CDR) name: the customer leg's.
/// The RFC 7865 metadata voicegw writes for call `c` (its streaming events' `siprecMetadata`,
/// the metadata of the recording sessions it sends a recording server).
pub fn call_metadata(c: &Call) -> String {
    let start = connector::timefmt::iso8601(c.started.wall);
    metadata::write(&CallMetadata {
        call_id: customer_call_id(c),
        caller: &aor(&c.from),
        callee: &aor(&c.to),
        start_time: &start,
        ids: rand::random(),
    })
}

fn customer_call_id(c: &Call) -> &str {
    match c.direction {
        sip::b2bua::Direction::Outbound => &c.call_id,
        sip::b2bua::Direction::Inbound => &c.b_call_id,
    }
}

fn region_of(c: &Call) -> String {
    if c.labels.region.is_empty() {
        connector::config::default_region()
    } else {
        c.labels.region.clone()
    }
}

/// A local stream's ARN, shaped like KVS's (`…:stream/<name>/<creation ms>`).
pub fn local_arn(region: &str, account: &str, stream: &StreamFacts) -> String {
    format!("arn:aws:kinesisvideo:{region}:{account}:stream/{}/{}", stream.name, stream.start_ms)
}

fn started_detail(f: &mut Followed, stream: &StreamFacts, account: &str) -> Map<String, Value> {
    let c = &f.call;
    let region = region_of(c);
    let metadata = f.metadata.get_or_insert_with(|| call_metadata(c)).clone();
    let arn = stream.arn.clone().unwrap_or_else(|| local_arn(&region, account, stream));
    let d = json!({
        "callId": customer_call_id(c),
        "direction": c.direction.as_str(),
        "fromNumber": user_part(&c.from),
        "inviteHeaders": f.invite_headers,
        "isCaller": stream.is_caller,
        "mediaType": "audio/L16",
        "siprecMetadata": metadata,
        "startFragmentNumber": stream.start_fragment,
        "startTime": connector::timefmt::iso8601(at_ms(stream.start_ms)),
        "streamArn": arn,
        "toNumber": user_part(&c.to),
        "transactionId": c.transaction_id,
        "voiceConnectorId": c.labels.voice_connector_id,
        "streamingStatus": "STARTED",
        "version": "0",
    });
    let mut d = d.as_object().cloned().unwrap_or_default();
    if let Some((index, label)) = &stream.sdp {
        insert_after(
            &mut d,
            "mediaType",
            "sdp",
            json!({ "mediaIndex": index, "mediaLabel": label }),
        );
    }
    if let Some(j) = &f.metadata_json {
        insert_after(&mut d, "siprecMetadata", "siprecMetadataJson", j.clone());
    }
    d
}

/// The address of record in a From or a request URI (`"A" <sip:x@h>;tag=1` → `sip:x@h`).
fn aor(s: &str) -> String {
    let uri = sip::NameAddr::parse(s).map(|n| n.uri).or_else(|_| sip::Uri::parse(s));
    uri.map(|u| u.to_string()).unwrap_or_else(|_| s.to_string())
}

/// Inserts `key` right after `after` (the documents' field order).
fn insert_after(m: &mut Map<String, Value>, after: &str, key: &str, v: Value) {
    let mut out = Map::new();
    for (k, val) in std::mem::take(m) {
        let here = k == after;
        out.insert(k, val);
        if here {
            out.insert(key.to_string(), v.clone());
        }
    }
    if !out.contains_key(key) {
        out.insert(key.to_string(), v);
    }
    *m = out;
}

impl Observer for StreamEvents {
    fn on_event(&mut self, event: &CallEvent, seen: Seen<'_>) {
        match event {
            CallEvent::Started { call, voice_connector_id, .. } => {
                let (Some(c), Some(s)) = (seen.call, self.streaming.get(voice_connector_id)) else {
                    return;
                };
                let f = Followed {
                    call: c.clone(),
                    targets: s.targets.clone(),
                    invite_headers: Map::new(),
                    metadata: None,
                    metadata_json: None,
                    ended: false,
                };
                self.calls.insert(*call, f);
            }
            CallEvent::Failover { call, .. } | CallEvent::Answered { call } => {
                if let (Some(f), Some(c)) = (self.calls.get_mut(call), seen.call) {
                    f.call = c.clone();
                }
            }
            CallEvent::Ended { call, .. } => {
                if let Some(f) = self.calls.get_mut(call) {
                    f.ended = true;
                    self.ended.push_back((*call, seen.at.wall + self.grace));
                }
            }
            CallEvent::Rejected { .. } | CallEvent::ResponseSent { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_headers_are_lower_case_joined_and_withhold_digest_answers() {
        let invite = "INVITE sip:+12065550101@gw SIP/2.0\r\nVia: SIP/2.0/UDP a:5060;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b:5060;branch=z9hG4bK2\r\nFrom: \"A\" <sip:+12065550100@a>;tag=1\r\nTo: <sip:+12065550101@gw>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nProxy-Authorization: Digest username=\"u\", response=\"0123456789abcdef0123456789abcdef\"\r\nX-Custom: v\r\nContent-Length: 4\r\n\r\nv=0\n";
        let sip::Message::Request(req) = sip::Message::parse(invite.as_bytes()).expect("INVITE")
        else {
            panic!("not a request")
        };
        let h = invite_headers(&req);
        assert_eq!(
            h["via"],
            "SIP/2.0/UDP a:5060;branch=z9hG4bK1,SIP/2.0/UDP b:5060;branch=z9hG4bK2"
        );
        assert_eq!(
            (&h["call-id"], &h["cseq"], &h["x-custom"]),
            (&json!("c1"), &json!("1 INVITE"), &json!("v"))
        );
        assert_eq!(h["content-length"], "4");
        assert!(!h.contains_key("proxy-authorization") && !h.contains_key("authorization"));
        assert!(!Value::Object(h).to_string().contains("0123456789abcdef"), "no digest answer");
    }

    #[test]
    fn times_and_field_order() {
        let t = UNIX_EPOCH + Duration::from_millis(1_569_600_482_702);
        assert_eq!(iso_seconds(t), "2019-09-27T16:08:02Z");
        assert_eq!(connector::timefmt::iso8601(t), "2019-09-27T16:08:02.702Z");
        let mut m = Map::new();
        for k in ["a", "startTime", "b"] {
            m.insert(k.into(), json!(1));
        }
        insert_after(&mut m, "startTime", "endTime", json!(2));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "startTime", "endTime", "b"]);
    }
}
