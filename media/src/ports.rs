use std::collections::{HashSet, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// Hands out RTP ports (even; RTCP is the next odd port) at random among the free pairs, so the
/// next call's ports cannot be guessed from the last one's (a third party that guesses them
/// could send to a fresh port before the real peer does). A released port cools down: it is
/// handed out again only after as many later releases as a quarter of the pairs (at most
/// 4096), or when nothing else is free, so late packets of an old call do not land in a new
/// one.
#[derive(Debug)]
pub struct PortAllocator {
    first: u16,
    pairs: usize,
    /// Pairs allocated.
    used: HashSet<u16>,
    /// Pairs released recently, oldest first.
    cooling: VecDeque<u16>,
    /// `used` and `cooling` together: the pairs not to hand out.
    blocked: HashSet<u16>,
    cooling_cap: usize,
    rng: StdRng,
}

impl PortAllocator {
    /// An allocator seeded from the operating system's random source.
    pub fn new(range: PortRange) -> Self {
        Self::with_rng(range, StdRng::from_entropy())
    }

    /// An allocator with a fixed seed (tests).
    pub fn seeded(range: PortRange, seed: u64) -> Self {
        Self::with_rng(range, StdRng::seed_from_u64(seed))
    }

    fn with_rng(range: PortRange, rng: StdRng) -> Self {
        let pairs = range.pairs();
        PortAllocator {
            first: range.min + (range.min % 2),
            pairs,
            used: HashSet::new(),
            cooling: VecDeque::new(),
            blocked: HashSet::new(),
            cooling_cap: (pairs / 4).min(4096),
            rng,
        }
    }

    pub fn allocate(&mut self) -> Result<u16, PortError> {
        if self.blocked.len() >= self.pairs {
            // Everything is in use or cooling: reuse the pair released longest ago.
            let oldest = self.cooling.pop_front().ok_or(PortError::Exhausted)?;
            self.blocked.remove(&oldest);
        }
        let start = self.rng.gen_range(0..self.pairs);
        for i in 0..self.pairs {
            let idx = (start + i) % self.pairs;
            // idx < pairs ≤ 32 768, so the port stays within the range.
            let port = self.first + 2 * idx as u16;
            if self.blocked.insert(port) {
                self.used.insert(port);
                return Ok(port);
            }
        }
        Err(PortError::Exhausted)
    }

    /// Gives a pair back (after its call, or when its sockets could not be bound). Releasing a
    /// pair that is not allocated does nothing.
    pub fn release(&mut self, rtp_port: u16) {
        if !self.used.remove(&rtp_port) {
            return;
        }
        self.cooling.push_back(rtp_port);
        while self.cooling.len() > self.cooling_cap {
            if let Some(old) = self.cooling.pop_front() {
                self.blocked.remove(&old);
            }
        }
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
    fn allocation_is_random_cools_down_and_exhausts() {
        let mut a = PortAllocator::seeded(PortRange::new(10_000, 10_005).unwrap(), 1);
        let mut got: Vec<u16> = (0..3).map(|_| a.allocate().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![10_000, 10_002, 10_004]);
        assert_eq!(a.allocate(), Err(PortError::Exhausted));
        a.release(10_002);
        a.release(10_002); // twice: no effect
        assert_eq!(a.allocate(), Ok(10_002), "the only free pair, even while cooling");
        assert_eq!(a.in_use(), 3);
    }

    #[test]
    fn released_pairs_are_not_reused_at_once_and_order_is_unpredictable() {
        let range = PortRange::new(10_000, 10_999).unwrap(); // 500 pairs, 125 cooling
        let mut a = PortAllocator::seeded(range, 7);
        let first: Vec<u16> = (0..50).map(|_| a.allocate().unwrap()).collect();
        // Not handed out in order: consecutive allocations are not 2 apart.
        let sequential = first.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(sequential < 5, "{sequential} sequential of 49");
        for p in &first {
            a.release(*p);
        }
        let next: Vec<u16> = (0..50).map(|_| a.allocate().unwrap()).collect();
        assert!(next.iter().all(|p| !first.contains(p)), "a cooling pair was reused");
        assert_eq!(a.in_use(), 50);
        // Different seeds give different sequences.
        let mut b = PortAllocator::seeded(range, 8);
        let other: Vec<u16> = (0..50).map(|_| b.allocate().unwrap()).collect();
        assert_ne!(first, other);
    }
}
