//! Recording metadata (RFC 7865): the XML a Session Recording Client sends beside the SDP of a
//! recording session, describing the communication session it records, the participants, the
//! media streams and who sends and receives each stream.
//!
//! [`Metadata::parse`] reads what real recording clients send:
//! - RFC 7865's shape (`participant_id`, `session_id`, `stream_id` attributes; the send/recv
//!   associations in `<participantstreamassoc>`), and the earlier draft's that SBCs still send
//!   (`id` and `session` attributes, `<send>`/`<recv>` inside `<participant>`, the namespace
//!   `urn:ietf:params:xml:ns:recording` without `:1`);
//! - any namespace prefix (names are matched by their local part), vendor extension elements
//!   (ignored), entities and character references in text;
//! - what it tolerates is listed in [`Metadata::tolerated`] for the log and the metrics.
//!
//! Hostile documents are bounded: [`MAX_DOCUMENT`] bytes, [`MAX_DEPTH`] levels, [`MAX_ITEMS`]
//! participants, streams and sessions each, [`MAX_TEXT`] bytes per value; beyond them the
//! document is refused with a [`MetadataError`], never a panic or an unbounded structure.
//! A document type declaration is refused (no entity expansion of any kind).
//!
//! [`Metadata::merge`] applies a partial update (`<datamode>partial</datamode>`) to the state
//! kept for a recording session; [`Metadata::to_json`] is the structured form the streaming
//! events carry beside the raw XML.

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use serde_json::{json, Value};

/// The largest metadata document taken.
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// The deepest nesting taken.
pub const MAX_DEPTH: usize = 16;
/// The most participants, streams or sessions in one document (and in a merged state).
pub const MAX_ITEMS: usize = 64;
/// The longest value (an identifier, a name, an AoR, a time) taken.
pub const MAX_TEXT: usize = 1024;

/// Why a document is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("the recording metadata is {0} bytes, more than {MAX_DOCUMENT}")]
    TooLarge(usize),
    #[error("the recording metadata is not UTF-8")]
    NotUtf8,
    #[error("the recording metadata is not well-formed XML: {0}")]
    Xml(String),
    #[error("the recording metadata nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the recording metadata has more than {MAX_ITEMS} {0}")]
    TooMany(&'static str),
    #[error("the recording metadata declares a document type (refused: no entities)")]
    DocType,
    #[error("the recording metadata has no <recording> element")]
    NotRecording,
}

/// Whether a document describes the whole session or changes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataMode {
    #[default]
    Complete,
    Partial,
}

/// A communication session being recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Session {
    pub id: String,
    /// `<sipSessionID>`s (RFC 7989 Session-IDs) of the session.
    pub sip_session_ids: Vec<String>,
    pub start_time: Option<String>,
    pub stop_time: Option<String>,
}

/// A participant of a recorded session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Participant {
    pub id: String,
    /// The `aor` of its `<nameID>` (a SIP or tel URI).
    pub aor: Option<String>,
    /// Its display name (`<nameID><name>`).
    pub name: Option<String>,
    /// Streams (by id) it sends and receives.
    pub send: Vec<String>,
    pub recv: Vec<String>,
}

/// A media stream of a recorded session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    pub id: String,
    pub session: Option<String>,
    /// The SDP `a=label` of the m-line that carries it.
    pub label: Option<String>,
}

/// What a document had that the model takes but the RFC does not say so (logged and counted
/// by the recording server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tolerated {
    /// The draft's namespace (`urn:ietf:params:xml:ns:recording`) or none.
    DraftNamespace,
    /// `id`/`session` attributes instead of `participant_id`/`session_id`/`stream_id`.
    DraftAttributes,
    /// `<send>`/`<recv>` inside `<participant>` instead of `<participantstreamassoc>`.
    SendRecvInParticipant,
    /// Elements the model does not know (vendor extensions), skipped.
    UnknownElements,
    /// An element without the identifier it needs, skipped.
    MissingId,
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    pub mode: DataMode,
    pub sessions: Vec<Session>,
    pub participants: Vec<Participant>,
    pub streams: Vec<Stream>,
    /// What was tolerated, each kind once, in the order first seen.
    pub tolerated: Vec<Tolerated>,
}

/// Local name of an element or attribute (after any `prefix:`).
fn local(name: &[u8]) -> &[u8] {
    name.rsplit(|&b| b == b':').next().unwrap_or(name)
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Where the parser is: the element being read and what it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Open {
    Recording,
    DataMode,
    Session(usize),
    SipSessionId(usize),
    SessionTime {
        session: usize,
        stop: bool,
    },
    Participant(usize),
    NameId(usize),
    Name(usize),
    Aor(usize),
    /// `<send>`/`<recv>` of participant `usize` (inside it, or in an association).
    Direction {
        participant: usize,
        send: bool,
    },
    StreamAssoc(Option<usize>),
    Stream(usize),
    Label(usize),
    /// Anything else (extensions, groups, associations the model does not keep).
    Other,
}

impl Metadata {
    fn note(&mut self, t: Tolerated) {
        if !self.tolerated.contains(&t) {
            self.tolerated.push(t);
        }
    }

    /// Parses a metadata document. See the module documentation.
    pub fn parse(doc: &[u8]) -> Result<Metadata, MetadataError> {
        if doc.len() > MAX_DOCUMENT {
            return Err(MetadataError::TooLarge(doc.len()));
        }
        let text = std::str::from_utf8(doc).map_err(|_| MetadataError::NotUtf8)?;
        let mut reader = Reader::from_str(text);
        let mut m = Metadata::default();
        let mut stack: Vec<Open> = Vec::new();
        let mut seen_recording = false;
        let mut value = String::new();
        loop {
            let event = reader.read_event().map_err(|e| MetadataError::Xml(e.to_string()))?;
            match event {
                Event::Start(e) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(MetadataError::TooDeep);
                    }
                    let open = m.open(&e, stack.last(), &mut seen_recording)?;
                    value.clear();
                    stack.push(open);
                }
                Event::Empty(e) => {
                    let open = m.open(&e, stack.last(), &mut seen_recording)?;
                    value.clear();
                    m.close(&open, "");
                }
                Event::End(_) => {
                    if let Some(open) = stack.pop() {
                        let v = cut(std::mem::take(&mut value).trim().to_string());
                        m.close(&open, &v);
                    }
                }
                Event::Text(t) => {
                    let s = t.decode().map_err(|e| MetadataError::Xml(e.to_string()))?;
                    push_text(&mut value, &s);
                }
                Event::CData(t) => {
                    let s = t.decode().map_err(|e| MetadataError::Xml(e.to_string()))?;
                    push_text(&mut value, &s);
                }
                Event::GeneralRef(r) => {
                    let name = r.decode().map_err(|e| MetadataError::Xml(e.to_string()))?;
                    let entity = format!("&{name};");
                    let s = quick_xml::escape::unescape(&entity)
                        .map_err(|e| MetadataError::Xml(e.to_string()))?;
                    push_text(&mut value, &s);
                }
                Event::DocType(_) => return Err(MetadataError::DocType),
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            }
        }
        if !seen_recording {
            return Err(MetadataError::NotRecording);
        }
        Ok(m)
    }

    /// The element `e` opens, under `parent`.
    fn open(
        &mut self,
        e: &BytesStart<'_>,
        parent: Option<&Open>,
        seen_recording: &mut bool,
    ) -> Result<Open, MetadataError> {
        let name = e.name();
        let name = local(name.as_ref());
        let attr = |wanted: &[&[u8]]| -> Option<(String, bool)> {
            for (i, w) in wanted.iter().enumerate() {
                for a in e.attributes().flatten() {
                    if local(a.key.as_ref()) == *w {
                        let v =
                            a.normalized_value(XmlVersion::Implicit1_0).ok()?.trim().to_string();
                        return Some((cut(v), i > 0));
                    }
                }
            }
            None
        };
        let open = match (parent, name) {
            (None, b"recording") => {
                *seen_recording = true;
                let ns = e.attributes().flatten().find_map(|a| {
                    let k = a.key.as_ref();
                    (k == b"xmlns" || k.starts_with(b"xmlns:"))
                        .then(|| {
                            a.normalized_value(XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
                        })
                        .flatten()
                });
                if ns.as_deref() != Some("urn:ietf:params:xml:ns:recording:1") {
                    self.note(Tolerated::DraftNamespace);
                }
                Open::Recording
            }
            (None, _) => Open::Other,
            // `dataMode` in the draft's examples (Oracle's among them).
            (Some(Open::Recording), n) if n.eq_ignore_ascii_case(b"datamode") => Open::DataMode,
            (Some(Open::Recording), b"session") => match attr(&[b"session_id", b"id"]) {
                Some((id, draft)) => {
                    if draft {
                        self.note(Tolerated::DraftAttributes);
                    }
                    Open::Session(self.session_index(id)?)
                }
                None => {
                    self.note(Tolerated::MissingId);
                    Open::Other
                }
            },
            (Some(Open::Session(s)), b"sipSessionID") => Open::SipSessionId(*s),
            (Some(Open::Session(s)), b"start-time") => {
                Open::SessionTime { session: *s, stop: false }
            }
            (Some(Open::Session(s)), b"stop-time") => Open::SessionTime { session: *s, stop: true },
            (Some(Open::Recording), b"participant") => match attr(&[b"participant_id", b"id"]) {
                Some((id, draft)) => {
                    if draft {
                        self.note(Tolerated::DraftAttributes);
                    }
                    Open::Participant(self.participant_index(id)?)
                }
                None => {
                    self.note(Tolerated::MissingId);
                    Open::Other
                }
            },
            (Some(Open::Participant(p)), b"nameID") => {
                if let Some((aor, _)) = attr(&[b"aor"]) {
                    self.participants[*p].aor = Some(aor);
                }
                Open::NameId(*p)
            }
            (Some(Open::NameId(p)), b"name") => Open::Name(*p),
            // The draft's shape: `<aor>` and `<name>` right in the participant.
            (Some(Open::Participant(p)), b"aor") => {
                self.note(Tolerated::DraftAttributes);
                Open::Aor(*p)
            }
            (Some(Open::Participant(p)), b"name") => Open::Name(*p),
            (Some(Open::Participant(p)), b"send" | b"recv") => {
                self.note(Tolerated::SendRecvInParticipant);
                Open::Direction { participant: *p, send: name == b"send" }
            }
            (Some(Open::Recording), b"participantstreamassoc") => {
                match attr(&[b"participant_id", b"id"]) {
                    Some((id, _)) => Open::StreamAssoc(Some(self.participant_index(id)?)),
                    None => {
                        self.note(Tolerated::MissingId);
                        Open::StreamAssoc(None)
                    }
                }
            }
            (Some(Open::StreamAssoc(Some(p))), b"send" | b"recv") => {
                Open::Direction { participant: *p, send: name == b"send" }
            }
            (Some(Open::Recording), b"stream") => match attr(&[b"stream_id", b"id"]) {
                Some((id, draft)) => {
                    if draft {
                        self.note(Tolerated::DraftAttributes);
                    }
                    let i = self.stream_index(id)?;
                    if let Some((s, _)) = attr(&[b"session_id", b"session"]) {
                        self.streams[i].session = Some(s);
                    }
                    Open::Stream(i)
                }
                None => {
                    self.note(Tolerated::MissingId);
                    Open::Other
                }
            },
            (Some(Open::Stream(s)), b"label") => Open::Label(*s),
            // Known elements the model does not keep.
            (
                Some(Open::Recording),
                b"group" | b"participantsessionassoc" | b"sessionrecordingassoc",
            ) => Open::Other,
            (Some(Open::Other), _) => Open::Other,
            (Some(Open::Session(_) | Open::Participant(_) | Open::Stream(_)), _) => Open::Other,
            _ => {
                self.note(Tolerated::UnknownElements);
                Open::Other
            }
        };
        Ok(open)
    }

    /// The element `open` closed with text `v`.
    fn close(&mut self, open: &Open, v: &str) {
        match *open {
            Open::DataMode => {
                self.mode = if v.eq_ignore_ascii_case("partial") {
                    DataMode::Partial
                } else {
                    DataMode::Complete
                };
            }
            Open::SipSessionId(s) if !v.is_empty() => {
                let ids = &mut self.sessions[s].sip_session_ids;
                if ids.len() < MAX_ITEMS && !ids.iter().any(|x| x == v) {
                    ids.push(v.to_string());
                }
            }
            Open::SessionTime { session, stop } if !v.is_empty() => {
                let s = &mut self.sessions[session];
                *(if stop { &mut s.stop_time } else { &mut s.start_time }) = Some(v.to_string());
            }
            Open::Name(p) if !v.is_empty() => self.participants[p].name = Some(v.to_string()),
            Open::Aor(p) if !v.is_empty() => self.participants[p].aor = Some(v.to_string()),
            Open::Direction { participant, send } if !v.is_empty() => {
                let p = &mut self.participants[participant];
                let list = if send { &mut p.send } else { &mut p.recv };
                if list.len() < MAX_ITEMS && !list.iter().any(|x| x == v) {
                    list.push(v.to_string());
                }
            }
            Open::Label(s) if !v.is_empty() => self.streams[s].label = Some(v.to_string()),
            _ => {}
        }
    }

    fn session_index(&mut self, id: String) -> Result<usize, MetadataError> {
        index_of(&mut self.sessions, id, "sessions")
    }

    fn participant_index(&mut self, id: String) -> Result<usize, MetadataError> {
        index_of(&mut self.participants, id, "participants")
    }

    fn stream_index(&mut self, id: String) -> Result<usize, MetadataError> {
        index_of(&mut self.streams, id, "streams")
    }

    /// Takes a later document: a complete one replaces the state, a partial one updates the
    /// elements it names (their values that it gives) and adds the ones it introduces. The
    /// state stays within [`MAX_ITEMS`] of each kind (further new elements are dropped).
    pub fn merge(&mut self, update: Metadata) {
        if update.mode == DataMode::Complete {
            *self = update;
            return;
        }
        for t in &update.tolerated {
            self.note(*t);
        }
        merge_by_id(&mut self.sessions, update.sessions, |x, s| {
            for id in s.sip_session_ids {
                if !x.sip_session_ids.contains(&id) && x.sip_session_ids.len() < MAX_ITEMS {
                    x.sip_session_ids.push(id);
                }
            }
            x.start_time = s.start_time.or(x.start_time.take());
            x.stop_time = s.stop_time.or(x.stop_time.take());
        });
        merge_by_id(&mut self.participants, update.participants, |x, p| {
            x.aor = p.aor.or(x.aor.take());
            x.name = p.name.or(x.name.take());
            // A participant's directions, when given, are its directions now.
            if !p.send.is_empty() || !p.recv.is_empty() {
                x.send = p.send;
                x.recv = p.recv;
            }
        });
        merge_by_id(&mut self.streams, update.streams, |x, s| {
            x.session = s.session.or(x.session.take());
            x.label = s.label.or(x.label.take());
        });
    }

    /// The stream carried by the m-line labelled `label`.
    pub fn stream_by_label(&self, label: &str) -> Option<&Stream> {
        self.streams.iter().find(|s| s.label.as_deref() == Some(label))
    }

    /// The participants who send stream `id`.
    pub fn senders_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Participant> + 'a {
        self.participants.iter().filter(move |p| p.send.iter().any(|s| s == id))
    }

    /// The structured form (`siprecMetadataJson` in the streaming events): sessions,
    /// participants with what they send and receive, streams with their label and who sends
    /// and receives them.
    pub fn to_json(&self) -> Value {
        let sessions: Vec<Value> = self
            .sessions
            .iter()
            .map(|s| {
                json!({
                    "sessionId": s.id,
                    "sipSessionIds": s.sip_session_ids,
                    "startTime": s.start_time,
                    "stopTime": s.stop_time,
                })
            })
            .collect();
        let participants: Vec<Value> = self
            .participants
            .iter()
            .map(|p| {
                json!({
                    "participantId": p.id,
                    "name": p.name,
                    "aor": p.aor,
                    "send": p.send,
                    "receive": p.recv,
                })
            })
            .collect();
        let streams: Vec<Value> = self
            .streams
            .iter()
            .map(|s| {
                let who = |send: bool| -> Vec<&str> {
                    self.participants
                        .iter()
                        .filter(|p| (if send { &p.send } else { &p.recv }).contains(&s.id))
                        .map(|p| p.id.as_str())
                        .collect()
                };
                json!({
                    "streamId": s.id,
                    "sessionId": s.session,
                    "label": s.label,
                    "senders": who(true),
                    "receivers": who(false),
                })
            })
            .collect();
        json!({
            "dataMode": match self.mode { DataMode::Complete => "complete", DataMode::Partial => "partial" },
            "sessions": sessions,
            "participants": participants,
            "streams": streams,
        })
    }
}

/// Sessions, participants and streams: elements known by their id.
trait Identified: Default {
    fn id(&self) -> &str;
    fn with_id(id: String) -> Self;
}

macro_rules! identified {
    ($($t:ty),*) => {$(
        impl Identified for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn with_id(id: String) -> Self {
                Self { id, ..Self::default() }
            }
        }
    )*};
}
identified!(Session, Participant, Stream);

/// Where element `id` is in `list`, added if new (within [`MAX_ITEMS`]).
fn index_of<T: Identified>(
    list: &mut Vec<T>,
    id: String,
    what: &'static str,
) -> Result<usize, MetadataError> {
    if let Some(i) = list.iter().position(|x| x.id() == id) {
        return Ok(i);
    }
    if list.len() >= MAX_ITEMS {
        return Err(MetadataError::TooMany(what));
    }
    list.push(T::with_id(id));
    Ok(list.len() - 1)
}

/// Applies `update`'s elements to `state`: `merge` for those it has, added (within
/// [`MAX_ITEMS`]) for the new ones.
fn merge_by_id<T: Identified>(
    state: &mut Vec<T>,
    update: Vec<T>,
    mut merge: impl FnMut(&mut T, T),
) {
    for u in update {
        match state.iter().position(|x| x.id() == u.id()) {
            Some(i) => merge(&mut state[i], u),
            None if state.len() < MAX_ITEMS => state.push(u),
            None => {}
        }
    }
}

/// Appends `s` to a value being read, within [`MAX_TEXT`] (what is beyond is dropped).
fn push_text(value: &mut String, s: &str) {
    let room = (MAX_TEXT + 1).saturating_sub(value.len());
    if room == 0 {
        return;
    }
    let mut end = s.len().min(room);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    value.push_str(&s[..end]);
}

#[cfg(test)]
mod tests;
