//! The CDR write-ahead: the messages of a turn that ended calls leave only once the spool
//! thread has those calls' records on disk, so a crash never loses the record of a call the
//! peers saw end. Messages of later turns queue behind held ones (order is kept). A spool that
//! does not answer (a hung disk, a dead thread) must not stop calls: a batch that waited
//! longer than the limit leaves anyway.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::Peer;

/// Messages to send, in order.
pub type Batch = Vec<(Peer, Bytes)>;

/// Batches held for their records: (commit sequence number, held since, messages).
#[derive(Debug)]
pub struct WriteAhead {
    held: VecDeque<(u64, Instant, Batch)>,
    limit: Duration,
}

impl WriteAhead {
    /// Holds batches at most `limit` for their commit.
    pub fn new(limit: Duration) -> WriteAhead {
        WriteAhead { held: VecDeque::new(), limit }
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Takes this turn's messages from `outgoing` when they must wait: the turn's records are
    /// being committed as `commit`, or earlier messages are still held. Left in `outgoing`,
    /// they may go at once.
    pub fn hold(&mut self, commit: Option<u64>, now: Instant, outgoing: &mut Batch) {
        match commit {
            Some(seq) => self.held.push_back((seq, now, std::mem::take(outgoing))),
            None => {
                if let Some((_, _, last)) = self.held.back_mut() {
                    last.append(outgoing);
                }
            }
        }
    }

    /// The oldest batch that may go now: its records are durable (`committed` is the spool's
    /// last commit) or it waited past the limit (then `true`: sent without its records).
    pub fn release(&mut self, committed: u64, now: Instant) -> Option<(Batch, bool)> {
        let (seq, since, _) = self.held.front()?;
        let overdue = now.saturating_duration_since(*since) > self.limit;
        if *seq > committed && !overdue {
            return None;
        }
        let late = *seq > committed;
        self.held.pop_front().map(|(_, _, b)| (b, late))
    }

    /// Everything still held, oldest first (at exit, after the last flush).
    pub fn take_all(&mut self) -> impl Iterator<Item = Batch> + '_ {
        self.held.drain(..).map(|(_, _, b)| b)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests may read the clock
mod tests {
    use super::*;

    fn msg(n: u8) -> (Peer, Bytes) {
        let peer = Peer::new(sip::Transport::Udp, "127.0.0.1:5080".parse().unwrap());
        (peer, Bytes::from(vec![n]))
    }

    fn ids(b: &Batch) -> Vec<u8> {
        b.iter().map(|(_, m)| m[0]).collect()
    }

    #[test]
    fn a_turn_that_ends_calls_waits_for_its_commit_and_later_turns_queue_behind_it() {
        let t = Instant::now();
        let mut w = WriteAhead::new(Duration::from_secs(2));
        // Nothing held: a turn without records goes at once.
        let mut out = vec![msg(1)];
        w.hold(None, t, &mut out);
        assert_eq!(ids(&out), [1]);
        out.clear();
        // A turn that closed calls (commit 5) is held, and the next turn behind it.
        out.push(msg(2));
        w.hold(Some(5), t, &mut out);
        assert!(out.is_empty());
        out.push(msg(3));
        w.hold(None, t, &mut out);
        assert!(out.is_empty(), "order is kept: later messages wait too");
        assert!(w.release(4, t).is_none(), "commit 5 is not durable yet");
        let (b, late) = w.release(5, t).unwrap();
        assert_eq!((ids(&b), late), (vec![2, 3], false));
        assert!(w.is_empty());
    }

    #[test]
    fn a_spool_that_does_not_answer_does_not_stop_calls() {
        let t = Instant::now();
        let mut w = WriteAhead::new(Duration::from_secs(2));
        let mut out = vec![msg(1)];
        w.hold(Some(1), t, &mut out);
        let mut out = vec![msg(2)];
        w.hold(Some(2), t + Duration::from_secs(1), &mut out);
        assert!(w.release(0, t + Duration::from_secs(2)).is_none());
        let (b, late) = w.release(0, t + Duration::from_millis(2001)).unwrap();
        assert_eq!((ids(&b), late), (vec![1], true), "overdue: sent without its record");
        assert!(w.release(0, t + Duration::from_millis(2001)).is_none(), "the next is not overdue");
        assert_eq!(w.take_all().map(|b| ids(&b)).collect::<Vec<_>>(), [vec![2]]);
    }
}
