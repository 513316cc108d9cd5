//! DTMF in SIP INFO bodies, as phones and room systems send it:
//! `application/dtmf-relay` (`Signal=5` and `Duration=160` lines, Cisco's and most PBXs'; some
//! send `Signal=10`/`11` for `*`/`#`) and `application/dtmf` (the key alone, or its event
//! code). Bodies are small: anything longer than [`MAX_BODY`] is not DTMF.

use super::Digit;

/// The longest body read.
pub const MAX_BODY: usize = 256;

/// Whether `content_type` is a DTMF body type this module reads.
pub fn is_dtmf(content_type: &str) -> bool {
    let t = content_type.split(';').next().unwrap_or("").trim();
    t.eq_ignore_ascii_case("application/dtmf-relay") || t.eq_ignore_ascii_case("application/dtmf")
}

/// The key an INFO body of `content_type` carries, if it is DTMF.
pub fn digit(content_type: &str, body: &[u8]) -> Option<Digit> {
    if body.len() > MAX_BODY || !is_dtmf(content_type) {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let t = content_type.split(';').next().unwrap_or("").trim();
    let value = if t.eq_ignore_ascii_case("application/dtmf-relay") {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else {
        text.trim()
    };
    key(value)
}

/// `5`, `*`, `#`, `A`, or an event code `0`–`15`.
fn key(value: &str) -> Option<Digit> {
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Digit::from_char(c),
        _ => value.parse::<u8>().ok().and_then(Digit::from_event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ct: &str, body: &str) -> Option<char> {
        digit(ct, body.as_bytes()).map(Digit::as_char)
    }

    #[test]
    fn dtmf_relay_and_dtmf_bodies_as_devices_send_them() {
        assert_eq!(d("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(d("Application/DTMF-Relay", "signal= #\nduration=100"), Some('#'));
        assert_eq!(d("application/dtmf-relay", "Signal=11\r\nDuration=250\r\n"), Some('#'));
        assert_eq!(d("application/dtmf-relay", "Signal=10\r\n"), Some('*'));
        assert_eq!(d("application/dtmf", "7"), Some('7'));
        assert_eq!(d("application/dtmf;foo=bar", " *\r\n"), Some('*'));
        assert_eq!(d("application/dtmf", "15"), Some('D'));
    }

    #[test]
    fn anything_else_is_not_a_key() {
        assert_eq!(d("application/dtmf-relay", "Duration=160"), None, "no Signal");
        assert_eq!(d("application/dtmf-relay", "Signal=16"), None, "flash");
        assert_eq!(d("application/dtmf-relay", "Signal=55"), None);
        assert_eq!(d("application/dtmf", "x"), None);
        assert_eq!(d("application/sdp", "5"), None);
        assert_eq!(d("application/dtmf", &"5".repeat(300)), None, "too long");
        assert_eq!(digit("application/dtmf", &[0xff, 0xfe]), None, "not UTF-8");
        assert!(is_dtmf("application/dtmf-relay; charset=x") && !is_dtmf("text/plain"));
    }
}
