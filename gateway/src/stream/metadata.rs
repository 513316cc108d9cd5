//! The recording metadata (RFC 7865, `urn:ietf:params:xml:ns:recording:1`) voicegw writes for
//! an ordinary streamed call, the `siprecMetadata` of its status events: one session (the
//! call, by its Call-ID), its two participants (caller and callee, by address of record) and
//! their two streams (label 1: the caller's audio, label 2: the callee's), with who sends and
//! who receives each. Identifiers are base64 UUIDs as the RFC's examples use.

use base64::Engine as _;

/// What the document describes.
#[derive(Debug, Clone)]
pub struct CallMetadata<'a> {
    pub call_id: &'a str,
    /// The caller's and the callee's addresses of record (`sip:+12065550100@host`).
    pub caller: &'a str,
    pub callee: &'a str,
    /// When the call started (`YYYY-MM-DDThh:mm:ss.mmmZ`).
    pub start_time: &'a str,
    /// Random bytes for the session, the participants and the streams' identifiers.
    pub ids: [[u8; 16]; 5],
}

/// Stream labels of the caller's and the callee's audio.
pub const CALLER_LABEL: &str = "1";
pub const CALLEE_LABEL: &str = "2";

fn id(bytes: [u8; 16]) -> String {
    let mut b = bytes;
    // A version-4 UUID's bits, like a SIPREC client's.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// `s` as XML character data or attribute value (quotes escaped too).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all (a peer's Call-ID may hold anything).
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The document.
pub fn write(m: &CallMetadata<'_>) -> String {
    let [session, caller, callee, from_caller, from_callee] = m.ids.map(id);
    let t = escape(m.start_time);
    let participant = |pid: &str, aor: &str| {
        format!(
            "  <participant participant_id=\"{pid}\">\r\n    <nameID aor=\"{}\"/>\r\n  </participant>\r\n",
            escape(aor)
        )
    };
    let stream = |sid: &str, label: &str| {
        format!(
            "  <stream stream_id=\"{sid}\" session_id=\"{session}\">\r\n    <label>{label}</label>\r\n  </stream>\r\n"
        )
    };
    let assoc = |pid: &str, send: &str, recv: &str| {
        format!(
            "  <participantsessionassoc participant_id=\"{pid}\" session_id=\"{session}\">\r\n    <associate-time>{t}</associate-time>\r\n  </participantsessionassoc>\r\n  <participantstreamassoc participant_id=\"{pid}\">\r\n    <send>{send}</send>\r\n    <recv>{recv}</recv>\r\n  </participantstreamassoc>\r\n"
        )
    };
    let mut x = String::with_capacity(2048);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n");
    x.push_str("<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">\r\n");
    x.push_str("  <datamode>complete</datamode>\r\n");
    x.push_str(&format!(
        "  <session session_id=\"{session}\">\r\n    <sipSessionID>{}</sipSessionID>\r\n    <start-time>{t}</start-time>\r\n  </session>\r\n",
        escape(m.call_id)
    ));
    x.push_str(&participant(&caller, m.caller));
    x.push_str(&participant(&callee, m.callee));
    x.push_str(&stream(&from_caller, CALLER_LABEL));
    x.push_str(&stream(&from_callee, CALLEE_LABEL));
    x.push_str(&format!(
        "  <sessionrecordingassoc session_id=\"{session}\">\r\n    <associate-time>{t}</associate-time>\r\n  </sessionrecordingassoc>\r\n"
    ));
    x.push_str(&assoc(&caller, &from_caller, &from_callee));
    x.push_str(&assoc(&callee, &from_callee, &from_caller));
    x.push_str("</recording>\r\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_session_its_participants_and_streams() {
        let m = CallMetadata {
            call_id: "a<b>&\"c\u{1}",
            caller: "sip:+12065550100@10.0.0.1",
            callee: "sip:+12065550101@carrier.example",
            start_time: "2026-12-02T20:00:00.000Z",
            ids: [[1; 16], [2; 16], [3; 16], [4; 16], [5; 16]],
        };
        let x = write(&m);
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">"));
        assert!(x.contains("<sipSessionID>a&lt;b&gt;&amp;&quot;c\u{fffd}</sipSessionID>"), "{x}");
        assert!(x.contains("<nameID aor=\"sip:+12065550100@10.0.0.1\"/>"));
        assert_eq!(x.matches("<participant ").count(), 2);
        assert_eq!(x.matches("<stream ").count(), 2);
        assert!(x.contains("<label>1</label>") && x.contains("<label>2</label>"));
        // The caller sends stream 1 and receives stream 2.
        let caller = id([2; 16]);
        let (s1, s2) = (id([4; 16]), id([5; 16]));
        assert!(x.contains(&format!(
            "<participantstreamassoc participant_id=\"{caller}\">\r\n    <send>{s1}</send>\r\n    <recv>{s2}</recv>"
        )));
        assert_eq!(id([0xff; 16]).len(), 24);
    }
}
