use std::collections::BTreeSet;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortError {
    #[error("media port range {0}-{1} is empty or inverted")]
    Inverted(u16, u16),
    #[error("media port range {0}-{1} holds no even/odd RTP/RTCP pair")]
    NoPair(u16, u16),
    #[error("media port range starts below 1024 ({0})")]
    Privileged(u16),
    #[error("no free media port pair")]
    Exhausted,
}

/// An inclusive UDP port range for media, validated to hold at least one RTP (even) / RTCP
/// (odd) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

impl PortRange {
    pub fn new(min: u16, max: u16) -> Result<PortRange, PortError> {
        if min > max {
            return Err(PortError::Inverted(min, max));
        }
        if min < 1024 {
            return Err(PortError::Privileged(min));
        }
        let first_even = min + (min % 2);
        if first_even >= max {
            return Err(PortError::NoPair(min, max));
        }
        Ok(PortRange { min, max })
    }

    /// Number of RTP/RTCP pairs.
    pub fn pairs(&self) -> usize {
        let first_even = self.min + (self.min % 2);
        (self.max - first_even).div_ceil(2) as usize
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange { min: 10_000, max: 60_000 }
    }
}

/// Hands out RTP ports (even; RTCP is the next odd port) round-robin, so a port just released
/// is not reused at once (late packets of the old call would land in the new one).
#[derive(Debug)]
pub struct PortAllocator {
    range: PortRange,
    next: u16,
    used: BTreeSet<u16>,
}

impl PortAllocator {
    pub fn new(range: PortRange) -> Self {
        let first = range.min + (range.min % 2);
        PortAllocator { range, next: first, used: BTreeSet::new() }
    }

    pub fn allocate(&mut self) -> Result<u16, PortError> {
        let pairs = self.range.pairs();
        for _ in 0..pairs {
            let port = self.next;
            self.next = if port + 3 > self.range.max {
                self.range.min + (self.range.min % 2)
            } else {
                port + 2
            };
            if self.used.insert(port) {
                return Ok(port);
            }
        }
        Err(PortError::Exhausted)
    }

    pub fn release(&mut self, rtp_port: u16) {
        self.used.remove(&rtp_port);
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(PortRange::new(20, 10), Err(PortError::Inverted(20, 10)));
        assert_eq!(PortRange::new(80, 90), Err(PortError::Privileged(80)));
        assert_eq!(PortRange::new(10_001, 10_002), Err(PortError::NoPair(10_001, 10_002)));
        assert_eq!(PortRange::new(10_000, 60_000).unwrap().pairs(), 25_000);
        assert_eq!(PortRange::new(10_001, 10_005).unwrap().pairs(), 2);
    }

    #[test]
    fn allocation_round_robin_and_exhaustion() {
        let mut a = PortAllocator::new(PortRange::new(10_000, 10_005).unwrap());
        assert_eq!(a.allocate(), Ok(10_000));
        assert_eq!(a.allocate(), Ok(10_002));
        assert_eq!(a.allocate(), Ok(10_004));
        assert_eq!(a.allocate(), Err(PortError::Exhausted));
        a.release(10_002);
        assert_eq!(a.allocate(), Ok(10_002));
        assert_eq!(a.in_use(), 3);
    }
}
