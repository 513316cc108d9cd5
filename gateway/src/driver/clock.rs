//! The gateway's clock, the one place that reads time: the sans-IO cores are handed time from
//! here (`sip::Instant`, the time since the process started), what they record in it is turned
//! into wall time here, and the IO parts (the driver, transports, writers) read the monotonic
//! and the wall clock through it. Clippy's `disallowed-methods` (gateway/clippy.toml) refuses
//! a clock read anywhere else in the gateway.
#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The monotonic clock the cores' `sip::Instant`s count from.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// Starts the clock (once, at start-up: every part of the process shares it).
    pub fn start() -> Clock {
        Clock { origin: Instant::now() }
    }

    /// Now on the monotonic clock.
    pub fn monotonic(self) -> Instant {
        Instant::now()
    }

    /// Now on tokio's clock (connection deadlines).
    pub fn tokio_now(self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    /// Now on the wall clock.
    pub fn wall(self) -> SystemTime {
        SystemTime::now()
    }

    /// Now on both clocks.
    pub fn moment(self) -> crate::observe::facts::Moment {
        crate::observe::facts::Moment { mono: Instant::now(), wall: SystemTime::now() }
    }

    /// Now, as the cores count time.
    pub fn now(self) -> sip::Instant {
        sip::Instant::from_origin(self.origin.elapsed())
    }

    /// The monotonic instant of `t`, for timers.
    pub fn to_std(self, t: sip::Instant) -> Instant {
        self.origin + t.since_origin()
    }

    /// The wall clock at the origin in NTP format (seconds since 1900 in the high 32 bits):
    /// what NTP times that advance with the monotonic clock are counted from.
    pub fn ntp_at_origin(self) -> u64 {
        let since_1970 = self.wall_of(sip::Instant::ZERO).duration_since(UNIX_EPOCH);
        let d = since_1970.unwrap_or_default();
        let secs = d.as_secs() + 2_208_988_800;
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        (secs << 32) | frac
    }

    /// The wall time at which `t` was (now on the wall clock, less how long ago `t` was).
    pub fn wall_of(self, t: sip::Instant) -> SystemTime {
        let ago = self.now().since_origin().saturating_sub(t.since_origin());
        SystemTime::now().checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wall_time_of_an_earlier_instant_is_that_long_ago() {
        let c = Clock::start();
        let t = c.now();
        std::thread::sleep(Duration::from_millis(20));
        let ago = SystemTime::now().duration_since(c.wall_of(t)).unwrap();
        assert!(ago >= Duration::from_millis(20) && ago < Duration::from_secs(5), "{ago:?}");
        assert_eq!(c.to_std(t).duration_since(c.origin), t.since_origin());
    }
}
