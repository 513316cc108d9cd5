//! The order in which next hops are tried: lowest `Priority` first; among equal priorities a
//! weighted random order (each next pick proportional to `Weight` among those left, as SRV
//! records are, RFC 2782), so the first choice splits calls by weight and the rest are failover.

use rand::Rng;

/// One candidate with its priority (lower first) and weight.
#[derive(Debug, Clone)]
pub struct Candidate<T> {
    pub item: T,
    pub priority: u32,
    pub weight: u32,
}

/// `candidates` in the order to try them.
pub fn order<T>(mut candidates: Vec<Candidate<T>>, rng: &mut impl Rng) -> Vec<T> {
    candidates.sort_by_key(|c| c.priority);
    let mut out = Vec::with_capacity(candidates.len());
    while !candidates.is_empty() {
        let p = candidates[0].priority;
        let same = candidates.iter().take_while(|c| c.priority == p).count();
        let mut group: Vec<Candidate<T>> = candidates.drain(..same).collect();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|c| u64::from(c.weight.max(1))).sum();
            let mut n = rng.gen_range(0..total);
            let mut pick = 0;
            for (i, c) in group.iter().enumerate() {
                let w = u64::from(c.weight.max(1));
                if n < w {
                    pick = i;
                    break;
                }
                n -= w;
            }
            out.push(group.remove(pick).item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn c(item: &'static str, priority: u32, weight: u32) -> Candidate<&'static str> {
        Candidate { item, priority, weight }
    }

    #[test]
    fn priorities_in_order_and_every_candidate_once() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..100 {
            let o = order(vec![c("c", 2, 1), c("a", 1, 5), c("d", 2, 9), c("b", 1, 5)], &mut rng);
            assert_eq!(o.len(), 4);
            let mut first: Vec<_> = o[..2].to_vec();
            first.sort();
            assert_eq!(first, ["a", "b"]);
            let mut second: Vec<_> = o[2..].to_vec();
            second.sort();
            assert_eq!(second, ["c", "d"]);
        }
    }

    /// The service's worked example (voice-connector.md §2.2): A p1 w5, B p1 w5, C p2 w1, D p2 w9.
    /// Calls split evenly between A and B; once both fail, 10% go to C first and 90% to D.
    #[test]
    fn weights_split_calls_in_proportion_with_a_seeded_source() {
        let mut rng = SmallRng::seed_from_u64(42);
        let n = 20_000;
        let (mut a, mut d) = (0, 0);
        for _ in 0..n {
            let o = order(vec![c("A", 1, 5), c("B", 1, 5), c("C", 2, 1), c("D", 2, 9)], &mut rng);
            a += usize::from(o[0] == "A");
            d += usize::from(o[2] == "D");
        }
        let (pa, pd) = (a as f64 / n as f64, d as f64 / n as f64);
        assert!((pa - 0.5).abs() < 0.02, "A first in {pa}");
        assert!((pd - 0.9).abs() < 0.02, "D before C in {pd}");
        // The same seed gives the same orders.
        let mut r1 = SmallRng::seed_from_u64(3);
        let mut r2 = SmallRng::seed_from_u64(3);
        for _ in 0..50 {
            let x = order(vec![c("A", 1, 1), c("B", 1, 3), c("C", 1, 7)], &mut r1);
            let y = order(vec![c("A", 1, 1), c("B", 1, 3), c("C", 1, 7)], &mut r2);
            assert_eq!(x, y);
        }
    }
}
