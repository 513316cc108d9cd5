//! RFC 4733 telephone-events (the `telephone-event/8000` payload type): each packet carries an
//! event code, the end bit, a volume and the duration so far. All packets of one event share
//! its RTP timestamp (the event's start); its end packet is commonly sent three times; an event
//! longer than 65535 timestamp units continues in a new segment whose timestamp is where the
//! previous one ended (§2.5.1.3). [`EventReceiver`] reports each event once, at its first
//! packet, whatever is lost, repeated or reordered among the rest.

use super::Digit;

/// One telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub code: u8,
    pub end: bool,
    /// Power level in −dBm0 (0–63).
    pub volume: u8,
    /// In timestamp units since the event began (this segment).
    pub duration: u16,
}

/// Why a payload is not a telephone-event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("a telephone-event payload is at least 4 bytes, got {0}")]
    Short(usize),
}

impl Event {
    /// The first event of an RTP payload (a payload may carry more, RFC 4733 §2.5.1.5 — the
    /// first is the one being played).
    pub fn parse(payload: &[u8]) -> Result<Event, EventError> {
        let [code, flags, d0, d1, ..] = *payload else {
            return Err(EventError::Short(payload.len()));
        };
        Ok(Event {
            code,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }
}

/// How many recent events are remembered to recognise their late or repeated packets.
const REMEMBERED: usize = 8;

/// Recognises each event once (see the module documentation).
#[derive(Debug, Default)]
pub struct EventReceiver {
    /// Recent events: (timestamp, code, where it ends so far, ended).
    recent: Vec<(u32, u8, u32, bool)>,
}

impl EventReceiver {
    pub fn new() -> EventReceiver {
        EventReceiver::default()
    }

    /// One telephone-event packet with RTP timestamp `timestamp`: the key it starts, if it is
    /// a new event that is a key (flash and other events are not reported).
    pub fn packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<Digit> {
        let e = Event::parse(payload).ok()?;
        let reach = timestamp.wrapping_add(u32::from(e.duration));
        if let Some(r) = self.recent.iter_mut().find(|r| r.0 == timestamp && r.1 == e.code) {
            // More of an event already seen (an update, a repeated end, a late packet).
            if reach.wrapping_sub(r.2) as i32 > 0 {
                r.2 = reach;
            }
            r.3 |= e.end;
            return None;
        }
        // A long event's next segment starts where the previous segment of the same code,
        // not ended, reached.
        let continues = self.recent.iter().any(|r| r.1 == e.code && !r.3 && r.2 == timestamp);
        if self.recent.len() == REMEMBERED {
            self.recent.remove(0);
        }
        self.recent.push((timestamp, e.code, reach, e.end));
        if continues {
            return None;
        }
        Digit::from_event(e.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(code: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [code, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    fn keys(r: &mut EventReceiver, packets: &[(u32, [u8; 4])]) -> String {
        packets.iter().filter_map(|(ts, p)| r.packet(*ts, p)).map(|d| d.as_char()).collect()
    }

    #[test]
    fn each_event_is_reported_once_at_its_start_whatever_repeats() {
        let mut r = EventReceiver::new();
        let packets = [
            (1000, payload(1, false, 160)),
            (1000, payload(1, false, 320)),
            (1000, payload(1, true, 480)),
            (1000, payload(1, true, 480)),
            (1000, payload(1, true, 480)),
            // The same key again: a new event, a new timestamp.
            (3000, payload(1, false, 160)),
            (3000, payload(1, true, 320)),
            (5000, payload(11, true, 400)),
        ];
        assert_eq!(keys(&mut r, &packets), "11#");
    }

    #[test]
    fn a_lost_start_still_reports_the_key_and_late_packets_do_not_repeat_it() {
        let mut r = EventReceiver::new();
        // Only end packets arrive, then a late update of the same event.
        let packets = [
            (800, payload(7, true, 800)),
            (800, payload(7, false, 320)),
            (800, payload(7, true, 800)),
        ];
        assert_eq!(keys(&mut r, &packets), "7");
    }

    #[test]
    fn a_long_event_continued_in_a_new_segment_is_one_key() {
        let mut r = EventReceiver::new();
        let packets = [
            (0, payload(5, false, 65000)),
            (0, payload(5, false, 65535)),
            // The next segment starts where the first reached (RFC 4733 §2.5.1.3).
            (65535, payload(5, false, 1000)),
            (65535, payload(5, true, 2000)),
            (70000, payload(5, true, 400)),
        ];
        assert_eq!(keys(&mut r, &packets), "55", "one long 5, then a new 5");
    }

    #[test]
    fn flash_short_payloads_and_timestamps_that_wrap_are_handled() {
        let mut r = EventReceiver::new();
        assert_eq!(r.packet(1, &payload(16, true, 160)), None, "flash is no key");
        assert_eq!(r.packet(2, &[1, 2]), None);
        assert_eq!(Event::parse(&[1, 2]), Err(EventError::Short(2)));
        let ts = u32::MAX - 100;
        assert_eq!(r.packet(ts, &payload(3, false, 160)).map(|d| d.as_char()), Some('3'));
        assert_eq!(r.packet(ts, &payload(3, true, 480)), None);
        let e = Event::parse(&payload(9, true, 1234)).unwrap();
        assert_eq!((e.code, e.end, e.volume, e.duration), (9, true, 10, 1234));
    }
}
