//! DTMF digits as phones and room systems send them, each read sans-IO:
//!
//! - [`telephone_event`]: RFC 4733 telephone-events in RTP (an event's packets share its start
//!   timestamp; the end packet is sent three times; long events continue in new segments).
//! - [`info`]: SIP INFO bodies, `application/dtmf-relay` (`Signal=5`) and `application/dtmf`.
//! - [`inband`]: tones in the audio itself (Goertzel filters on 8 kHz PCM), for devices that
//!   send neither.
//!
//! Each reports a digit once, when it starts, as a [`Digit`].

pub mod inband;
pub mod info;
pub mod telephone_event;

/// A DTMF key: `0`–`9`, `*`, `#`, `A`–`D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(char);

impl Digit {
    /// The key for `c` (case-insensitive for `A`–`D`), if it is one.
    pub fn from_char(c: char) -> Option<Digit> {
        let c = c.to_ascii_uppercase();
        matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(Digit(c))
    }

    /// The key of RFC 4733 event code `code` (0–9, 10 `*`, 11 `#`, 12–15 `A`–`D`).
    pub fn from_event(code: u8) -> Option<Digit> {
        match code {
            0..=9 => Some(Digit((b'0' + code) as char)),
            10 => Some(Digit('*')),
            11 => Some(Digit('#')),
            12..=15 => Some(Digit((b'A' + code - 12) as char)),
            _ => None,
        }
    }

    /// Its RFC 4733 event code.
    pub fn event(self) -> u8 {
        match self.0 {
            '*' => 10,
            '#' => 11,
            c @ '0'..='9' => c as u8 - b'0',
            c => c as u8 - b'A' + 12,
        }
    }

    pub fn as_char(self) -> char {
        self.0
    }
}

impl std::fmt::Display for Digit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_event_codes_map_both_ways() {
        for (code, c) in "0123456789*#ABCD".chars().enumerate() {
            let d = Digit::from_event(code as u8).expect("a key");
            assert_eq!((d.as_char(), d.event()), (c, code as u8));
            assert_eq!(Digit::from_char(c.to_ascii_lowercase()), Some(d));
        }
        assert_eq!(Digit::from_event(16), None, "flash is not a key");
        assert_eq!(Digit::from_char('E'), None);
    }
}
