//! The recording client's media (voicegw forking its calls to a SIPREC recording server): each
//! recorded call gets two port pairs from the media range the B2BUA uses ([`MediaPorts`]),
//! bound at once; the relay thread that owns the call sends copies of its RTP out of them
//! once the recording server answered ([`crate::relay::fork`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::relay::anchor::{MediaPorts, MediaUpdate};

/// See the module documentation.
pub struct ForkMedia {
    ports: MediaPorts,
    /// Each recorded call's two ports.
    calls: HashMap<u64, [u16; 2]>,
    updates: VecDeque<MediaUpdate>,
}

impl ForkMedia {
    pub fn new(ports: MediaPorts) -> ForkMedia {
        ForkMedia { ports, calls: HashMap::new(), updates: VecDeque::new() }
    }

    /// Calls being recorded.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }
}

impl siprec::client::ForkAnchor for ForkMedia {
    type Update = MediaUpdate;

    fn open(&mut self, call: u64) -> Result<(IpAddr, [u16; 2]), String> {
        if self.calls.contains_key(&call) {
            return Err("the call is recorded already".into());
        }
        let (a, a_rtp, a_rtcp) = self.ports.reserve().map_err(|r| r.warning)?;
        let (b, b_rtp, b_rtcp) = match self.ports.reserve() {
            Ok(x) => x,
            Err(r) => {
                self.ports.release(a);
                return Err(r.warning);
            }
        };
        self.calls.insert(call, [a, b]);
        self.updates
            .push_back(MediaUpdate::ForkOpen { call, sockets: [a_rtp, a_rtcp, b_rtp, b_rtcp] });
        Ok((self.ports.ip(), [a, b]))
    }

    fn answered(&mut self, call: u64, to: [Option<SocketAddr>; 2]) {
        if self.calls.contains_key(&call) {
            self.updates.push_back(MediaUpdate::ForkTo { call, to });
        }
    }

    fn close(&mut self, call: u64) {
        if let Some(ports) = self.calls.remove(&call) {
            for p in ports {
                self.ports.release(p);
            }
            self.updates.push_back(MediaUpdate::ForkClose { call });
        }
    }

    fn poll_update(&mut self) -> Option<MediaUpdate> {
        self.updates.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siprec::client::ForkAnchor as _;

    #[test]
    fn a_recorded_call_binds_two_ports_from_the_shared_range_and_gives_them_back() {
        let range = media::PortRange::new(31400, 31500).expect("range");
        let ports = MediaPorts::new("127.0.0.1".parse().unwrap(), range);
        let mut f = ForkMedia::new(ports.clone());
        let (ip, p) = f.open(9).expect("open");
        assert_eq!((ip.to_string().as_str(), ports.in_use()), ("127.0.0.1", 2));
        assert_ne!(p[0], p[1]);
        assert!(f.open(9).is_err(), "one recording per call");
        let to = [Some("127.0.0.2:4000".parse().unwrap()), None];
        f.answered(9, to);
        let updates: Vec<MediaUpdate> = std::iter::from_fn(|| f.poll_update()).collect();
        assert!(matches!(&updates[0], MediaUpdate::ForkOpen { call: 9, .. }), "{updates:?}");
        assert!(matches!(&updates[1], MediaUpdate::ForkTo { call: 9, to: t } if *t == to));
        f.close(9);
        assert!(matches!(f.poll_update(), Some(MediaUpdate::ForkClose { call: 9 })));
        assert_eq!((ports.in_use(), f.calls()), (0, 0));
    }
}
