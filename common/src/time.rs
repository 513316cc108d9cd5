//! Time as the sans-IO core sees it: a point on the driver's clock, given as the time since an
//! origin the driver picks. The core only compares these and adds durations to them; it never
//! reads a clock, so tests can start anywhere (usually [`Instant::ZERO`]) and jump ahead.

use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time, as the duration since the driver's origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(Duration::ZERO);

    pub fn from_origin(since: Duration) -> Instant {
        Instant(since)
    }

    pub fn since_origin(self) -> Duration {
        self.0
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0 + d)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        self.0 += d;
    }
}

/// The time between two instants (zero if `other` is later).
impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, other: Instant) -> Duration {
        self.0.saturating_sub(other.0)
    }
}
