//! The recording server's media: a recording session's streams get their ports from the media
//! range the B2BUA uses ([`MediaPorts`]: one allocator), and the relay opens a record-only
//! session for them: side A is the first stream, side B the second (a single mixed stream
//! uses A alone), each accepted only from the address its m-line announced, measured, and
//! streamed like a call's legs with its m-line index and label. An SRTP stream (SDES,
//! RFC 4568) is decrypted with the client's key and answered with a key of voicegw's own (for
//! the RTCP it sends back); a voice connector that requires encryption refuses plain streams
//! with 488, as it refuses a plain call.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use connector::config::ConnectorStreaming;
use media::srtp::MasterKey;
use sip::b2bua::{Direction, Side};
use siprec::offer::Offer;
use siprec::srs::Opened;

use crate::relay::anchor::{CallContext, MediaPorts, MediaUpdate, StreamSpec};

/// See the module documentation.
pub struct RecordingMedia {
    ports: MediaPorts,
    /// Voice connectors that stream, by id in lower case (from the configuration).
    streaming: HashMap<String, ConnectorStreaming>,
    /// Voice connectors whose recording sessions must use SRTP, in lower case.
    require_encryption: HashSet<String>,
    /// Each session's two ports (both sides are bound, as for a call), its voice connector
    /// (lower case) and voicegw's key per SRTP stream.
    sessions: HashMap<u64, Bound>,
    updates: VecDeque<MediaUpdate>,
}

struct Bound {
    ports: [u16; 2],
    voice_connector: String,
    keys: Vec<Option<MasterKey>>,
}

impl RecordingMedia {
    pub fn new(ports: MediaPorts, streaming: HashMap<String, ConnectorStreaming>) -> Self {
        RecordingMedia {
            ports,
            streaming,
            require_encryption: HashSet::new(),
            sessions: HashMap::new(),
            updates: VecDeque::new(),
        }
    }

    /// Voice connectors with `RequireEncryption` (startup and reload): their recording
    /// sessions must offer SRTP on every stream (else 488). Sessions in progress keep theirs.
    pub fn set_required_encryption(&mut self, ids: impl IntoIterator<Item = String>) {
        self.require_encryption = ids.into_iter().map(|id| id.to_ascii_lowercase()).collect();
    }

    /// The refusal of an offer with a plain stream for a voice connector that requires
    /// encryption.
    fn check_encryption(&self, voice_connector: &str, offer: &Offer) -> Result<(), (u16, String)> {
        if self.require_encryption.contains(voice_connector)
            && offer.streams.iter().any(|s| !s.srtp)
        {
            return Err((488, "the voice connector requires encryption: offer SRTP".into()));
        }
        Ok(())
    }

    /// SRTP updates for each SRTP stream of `offer`: the client's key inbound, voicegw's
    /// (kept from `keys`, the previous answer's, where there is one, else new) outbound; a
    /// stream that was SRTP and is now plain loses its keys. Returns voicegw's keys.
    fn keys(
        &mut self,
        session: u64,
        offer: &Offer,
        keys: &[Option<MasterKey>],
    ) -> Vec<Option<MasterKey>> {
        let mut ours = Vec::new();
        for (i, (side, s)) in [Side::A, Side::B].into_iter().zip(&offer.streams).enumerate() {
            let own = s.crypto.as_ref().map(|_| {
                keys.get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| MasterKey { key: rand::random(), salt: rand::random() })
            });
            let (inbound, outbound) = match (&s.crypto, &own) {
                (Some((_, suite, theirs)), Some(own)) => {
                    (Some((*suite, theirs.clone())), Some((*suite, own.clone())))
                }
                _ => (None, None),
            };
            // Plain streams need no update, unless they were SRTP before this offer.
            if inbound.is_some() || keys.get(i).is_some_and(Option::is_some) {
                self.updates.push_back(MediaUpdate::Srtp {
                    call: session,
                    side,
                    inbound,
                    outbound,
                });
            }
            ours.push(own);
        }
        ours
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
    ) -> Result<Opened, (u16, String)> {
        let voice_connector = voice_connector_id.to_ascii_lowercase();
        self.check_encryption(&voice_connector, offer)?;
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
        let stream = self.streaming.get(&voice_connector).map(|s| {
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
        let keys = self.keys(session, offer, &[]);
        self.peers(session, offer);
        let bound = Bound { ports: [a_port, b_port], voice_connector, keys: keys.clone() };
        self.sessions.insert(session, bound);
        let ports = [a_port, b_port].into_iter().take(offer.streams.len()).collect();
        Ok(Opened { local: self.ports.ip(), ports, keys })
    }

    fn update(
        &mut self,
        session: u64,
        offer: &Offer,
    ) -> Result<Vec<Option<MasterKey>>, (u16, String)> {
        let Some(bound) = self.sessions.get(&session) else { return Ok(Vec::new()) };
        self.check_encryption(&bound.voice_connector, offer)?;
        let old = bound.keys.clone();
        let keys = self.keys(session, offer, &old);
        self.peers(session, offer);
        if let Some(bound) = self.sessions.get_mut(&session) {
            bound.keys.clone_from(&keys);
        }
        Ok(keys)
    }

    fn close(&mut self, session: u64) {
        if let Some(bound) = self.sessions.remove(&session) {
            for p in bound.ports {
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
        let opened = m.open(5, "VC1", "tx", "call@src", &offer).expect("open");
        assert_eq!(
            (opened.local.to_string().as_str(), opened.ports.len(), ports.in_use()),
            ("127.0.0.1", 2, 2)
        );
        assert_eq!(opened.keys, [None, None], "plain RTP");
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

    #[test]
    fn srtp_streams_get_keys_and_an_encrypted_voice_connector_refuses_plain_ones() {
        let range = media::PortRange::new(31200, 31300).expect("range");
        let mut m = RecordingMedia::new(
            MediaPorts::new("127.0.0.1".parse().unwrap(), range),
            HashMap::new(),
        );
        m.set_required_encryption(["VC1".to_string()]);
        let plain = "v=0\r\no=src 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\n";
        let offer = Offer::read("application/sdp", plain.as_bytes()).expect("offer");
        assert_eq!(m.open(1, "vc1", "tx", "c", &offer).unwrap_err().0, 488);
        assert!(m.open(1, "vc2", "tx", "c", &offer).is_ok(), "another voice connector");
        let _: Vec<MediaUpdate> = std::iter::from_fn(|| m.poll_update()).collect();

        let key = "inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS";
        let srtp = format!("v=0\r\no=src 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 40000 RTP/SAVP 8\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 {key}\r\n");
        let offer = Offer::read("application/sdp", srtp.as_bytes()).expect("offer");
        let opened = m.open(2, "VC1", "tx", "c", &offer).expect("SRTP is accepted");
        let ours = opened.keys[0].clone().expect("voicegw's key");
        let updates: Vec<MediaUpdate> = std::iter::from_fn(|| m.poll_update()).collect();
        let srtp_updates: Vec<_> =
            updates.iter().filter(|u| matches!(u, MediaUpdate::Srtp { .. })).collect();
        assert_eq!(srtp_updates.len(), 1, "{updates:?}");
        let MediaUpdate::Srtp { side, inbound, outbound, .. } = srtp_updates[0] else { panic!() };
        assert_eq!(*side, Side::A);
        let (suite, theirs) = inbound.clone().expect("the client's key decrypts");
        assert_eq!(
            (suite, theirs.to_inline()),
            (media::srtp::Suite::AesCm128HmacSha1_32, key.into())
        );
        assert_eq!(outbound.clone().map(|(_, k)| k), Some(ours.clone()));
        assert_ne!(ours.to_inline(), key);
        // A re-offer keeps voicegw's key; one that drops SRTP is refused and changes nothing.
        assert_eq!(m.update(2, &offer).expect("re-offer"), [Some(ours)]);
        let plain = Offer::read("application/sdp", plain.as_bytes()).expect("offer");
        assert_eq!(m.update(2, &plain).unwrap_err().0, 488);
    }
}
