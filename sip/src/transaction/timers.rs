use std::time::Duration;

use crate::Instant;

/// RFC 3261 timer base values (§17.1.1.1, Table 4). T1 is the RTT estimate, T2 the maximum
/// retransmit interval for non-INVITE requests and INVITE responses, T4 the time a message
/// may remain in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: Timers B, F, H, J, L, M.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: at least 32 s on unreliable transports, 0 on reliable ones.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.timeout())
        }
    }

    /// T4 on unreliable transports, 0 on reliable ones (Timers I and K).
    pub fn t4_or_zero(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }
}

/// A retransmission timer: fires at `at`, then the interval doubles (capped when `cap` is set).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retransmit {
    pub(crate) at: Instant,
    pub(crate) interval: Duration,
}

impl Retransmit {
    pub(crate) fn start(now: Instant, interval: Duration) -> Self {
        Retransmit { at: now + interval, interval }
    }

    pub(crate) fn backoff(&mut self, now: Instant, cap: Option<Duration>) {
        self.interval *= 2;
        if let Some(cap) = cap {
            self.interval = self.interval.min(cap);
        }
        self.at = now + self.interval;
    }
}

/// The earliest of optional deadlines.
pub(crate) fn earliest(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().min().copied()
}
