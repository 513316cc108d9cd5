//! PutMedia's acknowledgement stream (kvs-putmedia.md §1.5): flat JSON objects such as
//! `{"EventType":"PERSISTED","FragmentTimecode":12345,"FragmentNumber":"9134…"}`, which a proxy
//! may deliver merged, split anywhere, or with whitespace between them. [`AckParser`] finds each
//! object by its braces (strings and escapes respected), bounded at 1024 bytes as the KVS
//! producer library bounds them, and reads it; anything else in the stream is reported, never
//! a panic or an unbounded buffer. [`error_action`] is the producer library's table of which
//! `ErrorId`s a new connection can cure.

use serde::Deserialize;

/// The longest acknowledgement taken (the KVS producer library's `MAX_ACK_FRAGMENT_LEN`).
pub const MAX_ACK_LEN: usize = 1024;
/// The longest fragment number taken (KVS: up to 128 decimal digits).
pub const MAX_FRAGMENT_NUMBER_LEN: usize = 128;

/// What an acknowledgement says happened to a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckEvent {
    /// Its first byte arrived.
    Buffering,
    /// All of it arrived.
    Received,
    /// It is stored (only with a retention above zero).
    Persisted,
    /// It failed: see [`Ack::error_id`].
    Error,
    /// The connection is alive but no data came.
    Idle,
}

impl AckEvent {
    fn parse(s: &str) -> Option<AckEvent> {
        Some(match s {
            "BUFFERING" => AckEvent::Buffering,
            "RECEIVED" => AckEvent::Received,
            "PERSISTED" => AckEvent::Persisted,
            "ERROR" => AckEvent::Error,
            "IDLE" => AckEvent::Idle,
            _ => return None,
        })
    }

    /// The wire name (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            AckEvent::Buffering => "BUFFERING",
            AckEvent::Received => "RECEIVED",
            AckEvent::Persisted => "PERSISTED",
            AckEvent::Error => "ERROR",
            AckEvent::Idle => "IDLE",
        }
    }
}

/// One acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub event: AckEvent,
    /// The fragment's Cluster timecode (ms), absent on IDLE.
    pub fragment_timecode: Option<u64>,
    /// KVS's fragment number: decimal digits, kept as a string (it is a 158-bit number).
    pub fragment_number: Option<String>,
    pub error_id: Option<u32>,
    /// `ErrorCode`, which some KVS versions send beside `ErrorId`.
    pub error_code: Option<String>,
}

/// What in the acknowledgement stream was not an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("an acknowledgement was longer than {MAX_ACK_LEN} bytes")]
    TooLong,
    #[error("an acknowledgement is not valid JSON: {0}")]
    Json(String),
    #[error("unknown acknowledgement EventType {0:?}")]
    UnknownEvent(String),
    #[error("an acknowledgement's FragmentNumber is not 1 to 128 decimal digits")]
    FragmentNumber,
    #[error("{0} bytes between acknowledgements that are not part of one")]
    Garbage(usize),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "EventType")]
    event_type: String,
    #[serde(rename = "FragmentTimecode")]
    fragment_timecode: Option<u64>,
    #[serde(rename = "FragmentNumber")]
    fragment_number: Option<String>,
    #[serde(rename = "ErrorId")]
    error_id: Option<u32>,
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
}

fn read(object: &[u8]) -> Result<Ack, AckError> {
    let raw: Raw = serde_json::from_slice(object).map_err(|e| AckError::Json(e.to_string()))?;
    let event = AckEvent::parse(&raw.event_type)
        .ok_or_else(|| AckError::UnknownEvent(raw.event_type.chars().take(32).collect()))?;
    if let Some(n) = &raw.fragment_number {
        if n.is_empty()
            || n.len() > MAX_FRAGMENT_NUMBER_LEN
            || !n.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(AckError::FragmentNumber);
        }
    }
    let error_code = raw.error_code.map(|c| c.chars().take(64).collect());
    Ok(Ack {
        event,
        fragment_timecode: raw.fragment_timecode,
        fragment_number: raw.fragment_number,
        error_id: raw.error_id,
        error_code,
    })
}

/// The incremental parser of one connection's acknowledgement stream.
#[derive(Debug, Default)]
pub struct AckParser {
    buf: Vec<u8>,
    depth: u32,
    in_string: bool,
    escape: bool,
    too_long: bool,
    garbage: usize,
}

impl AckParser {
    pub fn new() -> AckParser {
        AckParser { buf: Vec::with_capacity(256), ..AckParser::default() }
    }

    /// Takes the next bytes of the response body; hands each complete acknowledgement (or
    /// what was wrong with it) to `out`, in order.
    pub fn feed(&mut self, bytes: &[u8], out: &mut impl FnMut(Result<Ack, AckError>)) {
        for &b in bytes {
            if self.depth == 0 {
                match b {
                    b'{' => {
                        self.flush_garbage(out);
                        self.depth = 1;
                        self.buf.clear();
                        self.buf.push(b);
                        self.too_long = false;
                    }
                    b' ' | b'\t' | b'\r' | b'\n' | b',' => {}
                    _ => self.garbage += 1,
                }
                continue;
            }
            if !self.too_long {
                if self.buf.len() >= MAX_ACK_LEN {
                    self.too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.push(b);
                }
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        out(if self.too_long { Err(AckError::TooLong) } else { read(&self.buf) });
                        self.buf.clear();
                    }
                }
                _ => {}
            }
        }
    }

    /// The stream ended: reports an acknowledgement cut off or trailing garbage.
    pub fn finish(&mut self, out: &mut impl FnMut(Result<Ack, AckError>)) {
        if self.depth > 0 {
            out(Err(if self.too_long {
                AckError::TooLong
            } else {
                AckError::Json("the stream ended inside an acknowledgement".into())
            }));
        }
        self.flush_garbage(out);
        *self = AckParser::new();
    }

    fn flush_garbage(&mut self, out: &mut impl FnMut(Result<Ack, AckError>)) {
        if self.garbage > 0 {
            out(Err(AckError::Garbage(self.garbage)));
            self.garbage = 0;
        }
    }
}

/// What to do about an `ErrorId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// A new PutMedia connection can cure it (the KVS producer library restarts the stream).
    Reconnect,
    /// It will not get better: give up on the stream.
    GiveUp,
}

/// The KVS producer library's table of retriable errors (`IS_RETRIABLE_ERROR`); other 4xxx are
/// final; an unknown 5xxx is taken as a service fault worth a retry.
pub fn error_action(error_id: u32) -> ErrorAction {
    match error_id {
        4000 | 4001 | 4002 | 4003 | 4004 | 4006 | 4009 | 4011 | 5000..=5999 => {
            ErrorAction::Reconnect
        }
        _ => ErrorAction::GiveUp,
    }
}

/// What an `ErrorId` means (the PutMedia API reference's wording, shortened).
pub fn error_text(error_id: u32) -> &'static str {
    match error_id {
        4000 => "error reading the data stream",
        4001 => "fragment larger than the maximum",
        4002 => "fragment longer than the maximum duration",
        4003 => "connection open longer than allowed",
        4004 => "fragment timecode lower than the previous one",
        4005 => "more than one track in the MKV",
        4006 => "not valid MKV",
        4007 => "invalid producer timestamp",
        4008 => "the stream no longer exists",
        4009 => "fragment metadata limit reached",
        4010 => "a frame's track number is not in the MKV header",
        4011 => "a fragment has no frame for a declared track",
        4012 => "more tracks than allowed",
        4500 => "KMS key access denied",
        4501 => "KMS key disabled",
        4502 => "KMS key validation error",
        4503 => "KMS key unavailable",
        4504 => "KMS key invalid usage",
        4505 => "KMS key in an invalid state",
        4506 => "KMS key not found",
        4507 => "the stream was deleted",
        5000 => "internal service error",
        5001 => "failed to persist the fragment",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Result<Ack, AckError>> {
        let mut p = AckParser::new();
        let mut got = Vec::new();
        for c in chunks {
            p.feed(c, &mut |a| got.push(a));
        }
        p.finish(&mut |a| got.push(a));
        got
    }

    const PERSISTED: &str = r#"{"EventType":"PERSISTED","FragmentTimecode":1726677688724,"FragmentNumber":"91343852333181432392682062607743920146470000001"}"#;

    #[test]
    fn merged_and_split_acknowledgements_are_each_read_once() {
        let stream = format!(
            "{{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":1726677688724}}\r\n{PERSISTED}{{\"EventType\":\"IDLE\"}}\n"
        );
        // Whole, and cut at every byte.
        for cut in 0..stream.len() {
            let (a, b) = stream.as_bytes().split_at(cut);
            let got = parse_all(&[a, b]);
            assert_eq!(got.len(), 3, "cut at {cut}: {got:?}");
            let events: Vec<AckEvent> =
                got.iter().map(|a| a.as_ref().expect("ack").event).collect();
            assert_eq!(events, [AckEvent::Buffering, AckEvent::Persisted, AckEvent::Idle]);
        }
        let got = parse_all(&[PERSISTED.as_bytes()]);
        let ack = got[0].as_ref().expect("ack");
        assert_eq!(ack.fragment_timecode, Some(1726677688724));
        assert_eq!(
            ack.fragment_number.as_deref(),
            Some("91343852333181432392682062607743920146470000001")
        );
    }

    #[test]
    fn braces_inside_strings_do_not_end_an_acknowledgement() {
        let got = parse_all(&[
            br#"{"EventType":"ERROR","FragmentTimecode":5,"ErrorId":4004,"ErrorCode":"x}{\"y"}"#,
        ]);
        let ack = got[0].as_ref().expect("ack");
        assert_eq!((ack.event, ack.error_id), (AckEvent::Error, Some(4004)));
        assert_eq!(ack.error_code.as_deref(), Some("x}{\"y"));
    }

    #[test]
    fn what_is_not_an_acknowledgement_is_reported_and_skipped() {
        let long = format!("{{\"EventType\":\"IDLE\",\"x\":\"{}\"}}", "a".repeat(2000));
        let got = parse_all(&[
            b"HTTP junk ",
            long.as_bytes(),
            br#"{"EventType":"LOST"}"#,
            br#"{"EventType":"RECEIVED","FragmentNumber":"12a"}"#,
            br#"{"EventType":5}"#,
            PERSISTED.as_bytes(),
            br#"{"EventType":"IDL"#,
        ]);
        assert_eq!(got[0], Err(AckError::Garbage(8)), "whitespace is not counted");
        assert_eq!(got[1], Err(AckError::TooLong));
        assert_eq!(got[2], Err(AckError::UnknownEvent("LOST".into())));
        assert_eq!(got[3], Err(AckError::FragmentNumber));
        assert!(matches!(got[4], Err(AckError::Json(_))));
        assert_eq!(got[5].as_ref().map(|a| a.event), Ok(AckEvent::Persisted));
        assert!(matches!(got[6], Err(AckError::Json(_))), "cut off at the end");
        assert_eq!(got.len(), 7);
    }

    #[test]
    fn error_ids_are_retried_as_the_kvs_producer_retries_them() {
        for id in [4000, 4001, 4002, 4003, 4004, 4006, 4009, 4011, 5000, 5001] {
            assert_eq!(error_action(id), ErrorAction::Reconnect, "{id}");
        }
        for id in [4005, 4007, 4008, 4010, 4012, 4500, 4506, 4507, 4999] {
            assert_eq!(error_action(id), ErrorAction::GiveUp, "{id}");
        }
        assert_eq!(error_text(4008), "the stream no longer exists");
    }
}
