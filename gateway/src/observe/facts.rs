//! The one table of calls in progress, kept from the B2BUA's call events, and the interface
//! of everything that follows calls ([`Observer`]: metrics, CDRs, SIP message logs; streaming
//! events next). Each event is applied here once, and every observer is handed it with the call
//! as the table knows it, so no observer keeps its own copy of who the call is.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use metrics::Labels;
use sip::b2bua::{CallEvent, Direction};

/// A moment on both clocks, read once per turn of the driver.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    pub mono: Instant,
    pub wall: SystemTime,
}

/// A call in progress, as every observer sees it.
#[derive(Debug, Clone)]
pub struct Call {
    pub transaction_id: String,
    /// The Call-ID of the inbound (A) leg.
    pub call_id: String,
    /// The Call-ID of the current outbound (B) leg.
    pub b_call_id: String,
    /// Every Call-ID the call has used (both legs, every failover attempt).
    pub call_ids: Vec<String>,
    pub direction: Direction,
    /// The voice connector (and its Region) the call belongs to now; a group failover moves it.
    pub labels: Labels,
    pub from: String,
    pub to: String,
    pub auth_user: Option<String>,
    pub started: Moment,
    pub answered: Option<Moment>,
}

/// What an observer is handed with each event.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The call the event is about, as the table knows it after the event (for `Ended`: as it
    /// was last); `None` for `Rejected` and for calls the table never had.
    pub call: Option<&'a Call>,
    /// The labels the event counts under: the call's, or for a `Rejected` matched to a
    /// voice connector, that one's.
    pub labels: Option<&'a Labels>,
    /// For a `Failover` that moved the call to another voice connector: where it was.
    pub moved_from: Option<&'a Labels>,
    pub at: Moment,
}

/// Something that follows calls.
pub trait Observer {
    fn on_event(&mut self, event: &CallEvent, seen: Seen<'_>);
}

/// The calls in progress, by the B2BUA's call id.
#[derive(Debug, Default)]
pub struct CallTable {
    calls: HashMap<u64, Call>,
    /// Voice connector → its AWS Region.
    regions: HashMap<String, String>,
}

impl CallTable {
    /// A table that labels calls with the Regions of `regions` (voice connector → Region).
    pub fn new(regions: HashMap<String, String>) -> CallTable {
        CallTable { calls: HashMap::new(), regions }
    }

    /// Takes a reloaded configuration's Regions, for calls that start from now.
    pub fn set_regions(&mut self, regions: HashMap<String, String>) {
        self.regions = regions;
    }

    /// The labels of voice connector `vc`.
    pub fn labels_of(&self, vc: &str) -> Labels {
        Labels::new(vc, self.regions.get(vc).map(String::as_str).unwrap_or_default())
    }

    pub fn get(&self, call: u64) -> Option<&Call> {
        self.calls.get(&call)
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Applies `event` and hands it to every observer, in order.
    pub fn apply(&mut self, event: &CallEvent, at: Moment, observers: &mut [&mut dyn Observer]) {
        let mut moved_from = None;
        // An ended call is handed over as it was last; a refusal has no call, only the labels
        // of the voice connector it was matched to.
        let mut ended = None;
        let mut refused = None;
        let id = match event {
            CallEvent::Started {
                call,
                transaction_id,
                call_id,
                b_call_id,
                direction,
                voice_connector_id,
                from,
                to,
                auth_user,
                ..
            } => {
                let c = Call {
                    transaction_id: transaction_id.clone(),
                    call_id: call_id.clone(),
                    b_call_id: b_call_id.clone(),
                    call_ids: vec![call_id.clone(), b_call_id.clone()],
                    direction: *direction,
                    labels: self.labels_of(voice_connector_id),
                    from: from.clone(),
                    to: to.clone(),
                    auth_user: auth_user.clone(),
                    started: at,
                    answered: None,
                };
                self.calls.insert(*call, c);
                Some(*call)
            }
            CallEvent::Failover { call, voice_connector_id, b_call_id, .. } => {
                let labels = self.labels_of(voice_connector_id);
                if let Some(c) = self.calls.get_mut(call) {
                    c.b_call_id = b_call_id.clone();
                    c.call_ids.push(b_call_id.clone());
                    if c.labels != labels {
                        moved_from = Some(std::mem::replace(&mut c.labels, labels));
                    }
                }
                Some(*call)
            }
            CallEvent::Answered { call } => {
                if let Some(c) = self.calls.get_mut(call) {
                    c.answered.get_or_insert(at);
                }
                Some(*call)
            }
            CallEvent::ResponseSent { call, .. } => Some(*call),
            CallEvent::Ended { call, .. } => {
                ended = self.calls.remove(call);
                None
            }
            CallEvent::Rejected { voice_connector_id, .. } => {
                refused = voice_connector_id.as_deref().map(|vc| self.labels_of(vc));
                None
            }
        };
        let call = ended.as_ref().or_else(|| id.and_then(|id| self.calls.get(&id)));
        let labels = call.map(|c| &c.labels).or(refused.as_ref());
        let seen = Seen { call, labels, moved_from: moved_from.as_ref(), at };
        for o in observers.iter_mut() {
            o.on_event(event, seen);
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests may read the clock
mod tests {
    use super::*;
    use sip::{Peer, Transport};

    /// Records what it was handed.
    #[derive(Default)]
    struct Log(Vec<(String, Option<String>, Option<String>)>);

    impl Observer for Log {
        fn on_event(&mut self, event: &CallEvent, seen: Seen<'_>) {
            let kind = format!("{event:?}").split([' ', '{']).next().unwrap().to_string();
            self.0.push((
                kind,
                seen.call.map(|c| c.labels.voice_connector_id.clone()),
                seen.moved_from.map(|l| l.voice_connector_id.clone()),
            ));
        }
    }

    fn at() -> Moment {
        Moment { mono: Instant::now(), wall: SystemTime::UNIX_EPOCH }
    }

    #[test]
    fn each_observer_sees_the_call_as_the_table_knows_it() {
        let regions =
            [("vc1".to_string(), "us-east-1".to_string()), ("vc2".into(), "us-west-2".into())];
        let mut t = CallTable::new(regions.into_iter().collect());
        let (mut a, mut b) = (Log::default(), Log::default());
        let peer = Peer::new(Transport::Udp, "127.0.0.1:5080".parse().unwrap());
        let started = CallEvent::Started {
            call: 7,
            transaction_id: "tx".into(),
            call_id: "a-leg".into(),
            b_call_id: "b-leg".into(),
            direction: Direction::Outbound,
            voice_connector_id: "vc1".into(),
            from: "<sip:+12065550100@pbx>".into(),
            to: "sip:+12065550101@vc".into(),
            target: peer,
            auth_user: None,
        };
        let failover = CallEvent::Failover {
            call: 7,
            status: Some(503),
            target: peer,
            voice_connector_id: "vc2".into(),
            b_call_id: "b-leg-2".into(),
        };
        for ev in [started, failover, CallEvent::Answered { call: 7 }] {
            t.apply(&ev, at(), &mut [&mut a, &mut b]);
        }
        let c = t.get(7).unwrap();
        assert_eq!(c.labels, Labels::new("vc2", "us-west-2"));
        assert_eq!(c.call_ids, ["a-leg", "b-leg", "b-leg-2"]);
        assert!(c.answered.is_some());
        t.apply(
            &CallEvent::Ended { call: 7, status: 200, reason: "BYE".into() },
            at(),
            &mut [&mut a, &mut b],
        );
        assert!(t.is_empty());
        let vc = |s: &str| Some(s.to_string());
        let want = vec![
            ("Started".to_string(), vc("vc1"), None),
            ("Failover".into(), vc("vc2"), vc("vc1")),
            ("Answered".into(), vc("vc2"), None),
            ("Ended".into(), vc("vc2"), None),
        ];
        assert_eq!(a.0, want);
        assert_eq!(b.0, want, "every observer is handed every event");
    }
}
