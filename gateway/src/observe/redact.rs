//! Redaction for the application log: phone numbers (and any other run of five or more digits)
//! are masked, keeping the first and last two digits (`+12065550101` → `+12*******01`), so the
//! ordinary log can be shared without exposing who called whom. Credentials are never passed
//! to the application log at all. The SIP message log (`EnableSIPLogs`) keeps full messages,
//! as the service does, except their secrets ([`sip_secrets`]): digest answers in
//! `Authorization`/`Proxy-Authorization` and SRTP keys in `a=crypto` (and SDP `k=` lines).

use std::fmt;

/// Displays its text with digit runs masked.
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(self.0))
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact(self.0))
    }
}

/// `s` with every run of 5 or more ASCII digits masked but its first and last two digits.
pub fn redact(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let run = &s[start..i];
            if run.len() >= 5 {
                out.push_str(&run[..2]);
                out.extend(std::iter::repeat_n('*', run.len() - 4));
                out.push_str(&run[run.len() - 2..]);
            } else {
                out.push_str(run);
            }
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_digit() {
                i += 1;
            }
            out.push_str(&s[start..i]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_and_the_rest_kept() {
        assert_eq!(
            redact("sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local"),
            "sip:+12*******01@abcdef1ghij2klmno3pqr4.voiceconnector.local"
        );
        assert_eq!(
            redact("called number `2065550101` is not E.164"),
            "called number `20******01` is not E.164"
        );
        assert_eq!(redact("127.0.0.1:5060 CSeq 1234"), "127.0.0.1:5060 CSeq 1234");
        assert_eq!(
            format!("{}", Redacted("\"Bob\" <tel:+442079460000>")),
            "\"Bob\" <tel:+44********00>"
        );
        assert_eq!(redact("é+12345"), "é+12*45");
    }
}

/// What replaces a secret.
const REDACTED: &str = "<redacted>";

/// A SIP message's text with its secrets replaced by `<redacted>`: the `response` of digest
/// credentials (`Authorization`, `Proxy-Authorization`; the username, realm and uri stay, so
/// the log still shows who tried), the key of every `a=crypto` line (`inline:<key>|…` and
/// session parameters after it) and SDP `k=` lines. Everything else is unchanged.
pub fn sip_secrets(msg: &str) -> std::borrow::Cow<'_, str> {
    let lower = msg.to_ascii_lowercase();
    if !lower.contains("authorization") && !lower.contains("a=crypto") && !lower.contains("\nk=") {
        return std::borrow::Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len());
    for line in msg.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix("\r\n") {
            Some(b) => (b, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            },
        };
        let name = body.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("authorization")
            || name.eq_ignore_ascii_case("proxy-authorization")
        {
            out.push_str(&redact_param(body, "response"));
        } else if let Some(rest) = body.strip_prefix("a=crypto:") {
            // a=crypto:<tag> <suite> inline:<key>[|lifetime][|mki] [session params]
            let mut parts = rest.splitn(3, ' ');
            let (tag, suite) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            out.push_str(&format!("a=crypto:{tag} {suite} inline:{REDACTED}"));
        } else if body.starts_with("k=") {
            out.push_str(&format!("k={REDACTED}"));
        } else {
            out.push_str(body);
        }
        out.push_str(end);
    }
    std::borrow::Cow::Owned(out)
}

/// `header` with the value of parameter `name` (quoted or not) replaced.
fn redact_param(header: &str, name: &str) -> String {
    let lower = header.to_ascii_lowercase();
    let mut out = String::with_capacity(header.len());
    let mut at = 0;
    let b = header.as_bytes();
    while let Some(i) = lower[at..].find(name).map(|i| i + at) {
        let before_ok = i == 0 || matches!(b[i - 1], b' ' | b',' | b'\t');
        let mut j = i + name.len();
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if !before_ok || j >= b.len() || b[j] != b'=' {
            out.push_str(&header[at..i + name.len()]);
            at = i + name.len();
            continue;
        }
        j += 1;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let end = if b.get(j) == Some(&b'"') {
            header[j + 1..].find('"').map(|k| j + 1 + k + 1).unwrap_or(b.len())
        } else {
            header[j..].find([',', ' ']).map(|k| j + k).unwrap_or(b.len())
        };
        out.push_str(&header[at..i]);
        out.push_str(&format!("{name}=\"{REDACTED}\""));
        at = end;
    }
    out.push_str(&header[at..]);
    out
}

#[cfg(test)]
mod secret_tests {
    use super::sip_secrets;

    #[test]
    fn digest_answers_and_srtp_keys_are_redacted() {
        let msg = "INVITE sip:+12065550101@vc SIP/2.0\r\n\
Proxy-Authorization: Digest username=\"pbx1\", realm=\"vc\", nonce=\"n1\", uri=\"sip:+12065550101@vc\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5\r\n\
authorization: Digest username=\"u\",response=deadbeefdeadbeef,qop=auth\r\n\
Content-Type: application/sdp\r\n\r\n\
v=0\r\nk=clear:hunter2\r\nm=audio 4000 RTP/SAVP 0\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:NhqBK/JjtVJgmOgPyDKpvMTEjvFCQ4eiyVQelF6x|2^20|1:4 KDR=1\r\n";
        let out = sip_secrets(msg);
        for secret in ["0123456789abcdef", "deadbeef", "NhqBK", "hunter2", "KDR=1"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        for kept in [
            "username=\"pbx1\"",
            "uri=\"sip:+12065550101@vc\"",
            "algorithm=MD5",
            "qop=auth",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>",
            "m=audio 4000",
        ] {
            assert!(out.contains(kept), "{kept} missing from {out}");
        }
        assert_eq!(out.lines().count(), msg.lines().count());
        let plain = "OPTIONS sip:a@b SIP/2.0\r\n\r\n";
        assert!(matches!(sip_secrets(plain), std::borrow::Cow::Borrowed(_)));
    }
}
