//! The recording server's media: a recording session's streams get their ports from the media
//! range the B2BUA uses ([`MediaPorts`]: one allocator), and the relay opens a record-only
//! session for them: side A is the first stream, side B the second (a single mixed stream
//! uses A alone), each accepted only from the address its m-line announced, measured, and
//! streamed like a call's legs with its m-line index and label.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use connector::config::ConnectorStreaming;
use sip::b2bua::{Direction, Side};
use siprec::offer::Offer;

use crate::relay::anchor::{CallContext, MediaPorts, MediaUpdate, StreamSpec};

/// See the module documentation.
pub struct RecordingMedia {
    ports: MediaPorts,
    /// Voice connectors that stream, by id in lower case (from the configuration).
    streaming: HashMap<String, ConnectorStreaming>,
    /// Each session's two ports (both sides are bound, as for a call).
    sessions: HashMap<u64, [u16; 2]>,
    updates: VecDeque<MediaUpdate>,
}

impl RecordingMedia {
    pub fn new(ports: MediaPorts, streaming: HashMap<String, ConnectorStreaming>) -> Self {
        RecordingMedia { ports, streaming, sessions: HashMap::new(), updates: VecDeque::new() }
    }

    /// Voice connectors that stream (configuration reload); sessions in progress keep theirs.
    pub fn set_streaming(&mut self, streaming: HashMap<String, ConnectorStreaming>) {
        self.streaming = streaming;
    }

    /// Recording sessions with media.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Peer updates for each stream of `offer` (its address, RTCP on the next port).
    fn peers(&mut self, session: u64, offer: &Offer) {
        for (side, s) in [Side::A, Side::B].into_iter().zip(&offer.streams) {
            let Some(rtp) = s.from else { continue };
            let rtcp = SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1));
            self.updates.push_back(MediaUpdate::Peer {
                call: session,
                side,
                rtp,
                rtcp: Some(rtcp),
                mux: false,
                rates: vec![(s.payload_type, 8000)],
            });
        }
    }
}

impl siprec::srs::RecordingAnchor for RecordingMedia {
    type Update = MediaUpdate;

    fn open(
        &mut self,
        session: u64,
        voice_connector_id: &str,
        transaction_id: &str,
        call_id: &str,
        offer: &Offer,
    ) -> Result<(IpAddr, Vec<u16>), (u16, String)> {
        let refused = |r: sip::b2bua::Reject| (r.status, r.warning);
        let (a_port, a_rtp, a_rtcp) = self.ports.reserve().map_err(refused)?;
        let (b_port, b_rtp, b_rtcp) = match self.ports.reserve() {
            Ok(x) => x,
            Err(e) => {
                self.ports.release(a_port);
                return Err(refused(e));
            }
        };
        let label = |i: usize| offer.streams.get(i).map(|s| (s.index, s.label.clone()));
        let stream = self.streaming.get(&voice_connector_id.to_ascii_lowercase()).map(|s| {
            Box::new(StreamSpec {
                call_id: call_id.to_string(),
                retention_hours: s.retention_hours,
                sdp: [label(0), label(1)],
            })
        });
        let ctx = CallContext {
            call: session,
            transaction_id: transaction_id.to_string(),
            voice_connector_id: voice_connector_id.to_string(),
            direction: Direction::Outbound,
            from_user: String::new(),
            to_user: String::new(),
            from_country: None,
            to_country: None,
            latching: Default::default(),
            stream,
            record_only: true,
        };
        self.updates.push_back(MediaUpdate::Open { ctx, sockets: [a_rtp, a_rtcp, b_rtp, b_rtcp] });
        self.peers(session, offer);
        self.sessions.insert(session, [a_port, b_port]);
        let ports = [a_port, b_port].into_iter().take(offer.streams.len()).collect();
        Ok((self.ports.ip(), ports))
    }

    fn update(&mut self, session: u64, offer: &Offer) {
        if self.sessions.contains_key(&session) {
            self.peers(session, offer);
        }
    }

    fn close(&mut self, session: u64) {
        if let Some(ports) = self.sessions.remove(&session) {
            for p in ports {
                self.ports.release(p);
            }
            self.updates.push_back(MediaUpdate::Close { call: session });
        }
    }

    fn poll_update(&mut self) -> Option<MediaUpdate> {
        self.updates.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siprec::srs::RecordingAnchor as _;

    #[test]
    fn a_session_binds_from_the_shared_range_opens_a_record_only_relay_and_gives_back() {
        let range = media::PortRange::new(31000, 31100).expect("range");
        let ports = MediaPorts::new("127.0.0.1".parse().unwrap(), range);
        let mut streaming = HashMap::new();
        streaming.insert(
            "vc1".to_string(),
            ConnectorStreaming { retention_hours: 0, targets: vec![], media_insights_arn: None },
        );
        let mut m = RecordingMedia::new(ports.clone(), streaming);
        let sdp = "v=0\r\no=src 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=label:7\r\na=sendonly\r\nm=audio 40002 RTP/AVP 8\r\na=label:8\r\na=sendonly\r\n";
        let offer = Offer::read("application/sdp", sdp.as_bytes()).expect("offer");
        let (ip, p) = m.open(5, "VC1", "tx", "call@src", &offer).expect("open");
        assert_eq!((ip.to_string().as_str(), p.len(), ports.in_use()), ("127.0.0.1", 2, 2));
        let updates: Vec<MediaUpdate> = std::iter::from_fn(|| m.poll_update()).collect();
        let MediaUpdate::Open { ctx, .. } = &updates[0] else { panic!("{updates:?}") };
        assert!(ctx.record_only);
        let spec = ctx.stream.as_ref().expect("streamed");
        assert_eq!(spec.sdp, [Some((0, "7".into())), Some((1, "8".into()))]);
        assert!(
            matches!(&updates[1], MediaUpdate::Peer { side: Side::A, rtp, .. } if rtp.port() == 40000)
        );
        assert!(
            matches!(&updates[2], MediaUpdate::Peer { side: Side::B, rtp, .. } if rtp.port() == 40002)
        );
        m.close(5);
        assert!(matches!(m.poll_update(), Some(MediaUpdate::Close { call: 5 })));
        assert_eq!(ports.in_use(), 0, "given back to the shared range");
    }
}
