//! A session's own timers: the relay's driver asks [`Session::poll_timeout`] when the session
//! next needs it, calls [`Session::handle_timeout`] then, and takes what it decided from
//! [`Session::poll_event`] — SRs voicegw sends on a stream's behalf, a media-quality record
//! that is due, and media silence on both legs. Nothing here reads a clock.

use std::net::SocketAddr;
use std::time::Duration;

use super::{ms_of, Component, Instant, Session, Side};

/// How often a started session looks at its own SRs and at silence.
pub const TICK: Duration = Duration::from_secs(1);

/// A session's timing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A media-quality record is due this often (formats.md §4: every minute).
    pub record_period: Duration,
    /// Media silence on both legs for this long is reported; `None`: never.
    pub inactivity: Option<Duration>,
    /// The wall clock at [`Instant::ZERO`] in NTP format (seconds since 1900 in the high 32
    /// bits), for the SRs voicegw sends: their NTP times advance with the monotonic clock.
    pub ntp_at_origin: u64,
}

/// What a session decided on a timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Send `packet` from `side`'s `component` socket to `to` (an SR voicegw sends itself).
    Transmit { side: Side, component: Component, to: SocketAddr, packet: Vec<u8> },
    /// A record period ended: the figures since the last record are due.
    RecordDue,
    /// No accepted packet either way for `silent_for` (reported once per silent period).
    Silent { silent_for: Duration },
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Timers {
    timing: Timing,
    next_tick: Instant,
    next_record: Instant,
    /// Activity as of the last silence report (or the start).
    active_since: Instant,
}

/// `t` in NTP format, given the NTP time at the origin.
fn ntp_of(ntp_at_origin: u64, t: Instant) -> u64 {
    let d = t.since_origin();
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ntp_at_origin.wrapping_add((d.as_secs() << 32).wrapping_add(frac))
}

impl Session {
    /// A session whose sides accept sources per `latching` (`[A, B]`), started at `now` with
    /// its timers.
    pub fn start(latching: [super::Latching; 2], timing: Timing, now: Instant) -> Session {
        let mut s = Session::with_latching(latching);
        s.timers = Some(Timers {
            timing,
            next_tick: now + TICK,
            next_record: now + timing.record_period,
            active_since: now,
        });
        s
    }

    /// When the session next needs [`Session::handle_timeout`] (`None`: never, not started).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.map(|t| t.next_tick.min(t.next_record))
    }

    /// Runs what is due at `now`; its results wait in [`Session::poll_event`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(mut t) = self.timers else { return };
        if now >= t.next_tick {
            let ntp = ntp_of(t.timing.ntp_at_origin, now);
            for (side, component, to, packet) in self.poll_rtcp(now, ntp) {
                self.events.push_back(SessionEvent::Transmit { side, component, to, packet });
            }
            if let Some(limit) = t.timing.inactivity {
                // Only packets from accepted sources count: a stranger cannot keep a dead
                // call up.
                let last = self.last_activity_ms().unwrap_or(0.0).max(ms_of(t.active_since));
                let silent_for = Duration::from_secs_f64(((ms_of(now) - last) / 1000.0).max(0.0));
                if silent_for >= limit {
                    t.active_since = now;
                    self.events.push_back(SessionEvent::Silent { silent_for });
                }
            }
            t.next_tick = now + TICK;
        }
        if now >= t.next_record {
            self.events.push_back(SessionEvent::RecordDue);
            // The next period starts now: a late turn does not make the next one short.
            t.next_record = now + t.timing.record_period;
        }
        self.timers = Some(t);
    }

    /// The next thing the session decided, in order.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ms, rtp};
    use super::super::Latching;
    use super::*;

    fn timing(inactivity: Option<u64>) -> Timing {
        Timing {
            record_period: Duration::from_secs(60),
            inactivity: inactivity.map(Duration::from_secs),
            ntp_at_origin: 0xE000_0000_0000_0000,
        }
    }

    fn drain(s: &mut Session) -> Vec<SessionEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// Jumps from timeout to timeout until `end`, returning every event with its time.
    fn run_until(s: &mut Session, end: Instant) -> Vec<(Instant, SessionEvent)> {
        let mut out = Vec::new();
        while let Some(t) = s.poll_timeout().filter(|t| *t <= end) {
            s.handle_timeout(t);
            out.extend(drain(s).into_iter().map(|e| (t, e)));
        }
        out
    }

    #[test]
    fn records_are_due_every_period() {
        let mut s = Session::start([Latching::Strict; 2], timing(None), ms(500.0));
        assert_eq!(s.poll_timeout(), Some(ms(1500.0)));
        let due: Vec<Instant> = run_until(&mut s, ms(185_000.0))
            .into_iter()
            .filter(|(_, e)| *e == SessionEvent::RecordDue)
            .map(|(t, _)| t)
            .collect();
        assert_eq!(due, vec![ms(60_500.0), ms(120_500.0), ms(180_500.0)]);
        assert!(Session::new().poll_timeout().is_none(), "a session without timers never asks");
    }

    #[test]
    fn silence_is_reported_once_per_silent_period_and_activity_resets_it() {
        let mut s = Session::start([Latching::Strict; 2], timing(Some(10)), Instant::ZERO);
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        s.set_peer(Side::A, a, None, false, vec![]);
        s.set_peer(Side::B, "10.0.0.2:6000".parse().unwrap(), None, false, vec![]);
        let silent = |events: Vec<(Instant, SessionEvent)>| -> Vec<Instant> {
            let f = |(t, e): (Instant, SessionEvent)| {
                matches!(e, SessionEvent::Silent { .. }).then_some(t)
            };
            events.into_iter().filter_map(f).collect()
        };
        assert_eq!(silent(run_until(&mut s, ms(25_000.0))), vec![ms(10_000.0), ms(20_000.0)]);
        // A packet from the peer at 25 s: the next report is 10 s after it.
        s.on_packet(Side::A, Component::Rtp, a, &rtp(1, 7), ms(25_000.0)).unwrap();
        assert_eq!(silent(run_until(&mut s, ms(36_000.0))), vec![ms(35_000.0)]);
        // A stranger's packets are not activity.
        let stranger: SocketAddr = "10.9.9.9:4000".parse().unwrap();
        assert!(s.on_packet(Side::A, Component::Rtp, stranger, &rtp(2, 7), ms(40_000.0)).is_none());
        assert_eq!(silent(run_until(&mut s, ms(46_000.0))), vec![ms(45_000.0)]);
    }

    #[test]
    fn own_srs_carry_ntp_time_that_follows_the_session_clock() {
        let mut s = Session::start([Latching::Strict; 2], timing(None), Instant::ZERO);
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        s.set_peer(Side::A, a, None, false, vec![]);
        s.set_peer(Side::B, "10.0.0.2:6000".parse().unwrap(), None, false, vec![]);
        for seq in 1..=50u16 {
            s.on_packet(Side::A, Component::Rtp, a, &rtp(seq, 7), ms(f64::from(seq) * 20.0));
        }
        let srs: Vec<(Instant, Side, SocketAddr, Vec<u8>)> = run_until(&mut s, ms(3_000.0))
            .into_iter()
            .filter_map(|(t, e)| match e {
                SessionEvent::Transmit { side, to, packet, .. } => Some((t, side, to, packet)),
                _ => None,
            })
            .collect();
        // One SR towards B for A's stream, at the first tick; none towards A (B sent nothing).
        assert_eq!(srs.len(), 1, "{srs:?}");
        let (t, side, to, p) = &srs[0];
        assert_eq!((*t, *side, *to), (ms(1000.0), Side::B, "10.0.0.2:6001".parse().unwrap()));
        assert_eq!(p[1], 200, "an SR");
        let ntp = u64::from_be_bytes(p[8..16].try_into().unwrap());
        assert_eq!(ntp, 0xE000_0000_0000_0000 + (1 << 32), "origin + 1 s");
    }
}
