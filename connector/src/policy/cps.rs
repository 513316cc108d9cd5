//! Calls-per-second limit per voice connector (`CpsLimit`): a token bucket holding up to
//! `limit` calls and refilled at `limit` per second, so a burst of `limit` calls passes at once
//! and the long-run rate never exceeds the limit. Calls over it get `503` + `Retry-After` and
//! count in `Throttles` (formats.md §3).

use sip::Instant;

#[derive(Debug, Clone)]
pub struct CpsLimiter {
    limit: f64,
    tokens: f64,
    last: Instant,
}

impl CpsLimiter {
    pub fn new(limit: u32, now: Instant) -> CpsLimiter {
        CpsLimiter { limit: f64::from(limit.max(1)), tokens: f64::from(limit.max(1)), last: now }
    }

    /// Changes the limit (configuration reload), keeping the bucket's state.
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = f64::from(limit.max(1));
        self.tokens = self.tokens.min(self.limit);
    }

    /// Takes one call if the limit allows it.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if now > self.last {
            let dt = (now - self.last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.limit).min(self.limit);
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_limit_passes_then_the_rate_is_held() {
        let t0 = Instant::ZERO;
        let mut l = CpsLimiter::new(5, t0);
        let passed = (0..8).filter(|_| l.try_take(t0)).count();
        assert_eq!(passed, 5);
        // Over 10 s at 100 attempts/s, about 5/s pass.
        let mut ok = 0;
        for i in 1..=1000 {
            ok += usize::from(l.try_take(t0 + Duration::from_millis(10 * i)));
        }
        assert!((49..=51).contains(&ok), "{ok}");
    }
}
