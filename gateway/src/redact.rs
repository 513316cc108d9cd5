//! Redaction for the application log: phone numbers (and any other run of five or more digits)
//! are masked, keeping the first and last two digits (`+12065550101` → `+12*******01`), so the
//! ordinary log can be shared without exposing who called whom. Credentials are never passed
//! to the application log at all. The SIP message log (`EnableSIPLogs`) keeps full messages,
//! as the service does.

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
                out.extend(std::iter::repeat('*').take(run.len() - 4));
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
