//! The gateway's media [`Anchor`]: reserves an RTP/RTCP socket pair per leg from the media port
//! range, rewrites SDP so both legs send media to voicegw, and hands sockets and peer addresses
//! to the relay through [`MediaUpdate`]s, which leave the core in its output queue, in order
//! with the messages.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use bytes::Bytes;
use media::negotiate::{LegKeys, Negotiation, PeerMedia};
use media::srtp::{MasterKey, Suite};
use media::{PortAllocator, PortRange};
use sip::b2bua::{Anchor, Direction, Reject, Route, Side};
use sip::Request;

/// What the relay of a call needs to know about it.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub call: u64,
    pub transaction_id: String,
    pub voice_connector_id: String,
    pub direction: Direction,
    pub from_user: String,
    pub to_user: String,
    /// ISO 3166-1 alpha-2 countries of the E.164 caller and callee (numbering plan).
    pub from_country: Option<String>,
    pub to_country: Option<String>,
    /// Which sources each leg's media is accepted from (`[A, B]`).
    pub latching: [media::relay::Latching; 2],
    /// The call's audio is streamed (its voice connector's `StreamingConfiguration` is on).
    pub stream: Option<Box<StreamSpec>>,
    /// A recording session: both sides only send to voicegw, nothing is forwarded.
    pub record_only: bool,
}

/// What streaming a call's audio needs to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// The caller's Call-ID (the streams' `CallId` tag).
    pub call_id: String,
    pub retention_hours: u32,
    /// A recording session's streams: each side's m-line index and `a=label` (the events'
    /// `sdp.mediaIndex` and `sdp.mediaLabel`); `None` for a call's legs.
    pub sdp: [Option<(usize, String)>; 2],
}

/// Instructions for the driver.
#[derive(Debug)]
pub enum MediaUpdate {
    /// A call's sockets: `[A rtp, A rtcp, B rtp, B rtcp]`.
    Open {
        ctx: CallContext,
        sockets: [UdpSocket; 4],
    },
    /// New SDP from the peer on `side`.
    Peer {
        call: u64,
        side: Side,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
        mux: bool,
        rates: Vec<(u8, u32)>,
    },
    Close {
        call: u64,
    },
    /// A call recorded by a recording server (voicegw its SIPREC client): the sockets its two
    /// streams leave from, `[caller's rtp, rtcp, callee's rtp, rtcp]`.
    ForkOpen {
        call: u64,
        sockets: [UdpSocket; 4],
    },
    /// Where the recording server takes each stream (`None`: declined).
    ForkTo {
        call: u64,
        to: [Option<SocketAddr>; 2],
    },
    /// The recording ended: nothing more is copied, the sockets close.
    ForkClose {
        call: u64,
    },
    /// SRTP of the leg on `side`: the peer's key (inbound) and voicegw's (outbound).
    Srtp {
        call: u64,
        side: Side,
        inbound: Option<(Suite, MasterKey)>,
        outbound: Option<(Suite, MasterKey)>,
    },
}

/// A call's reserved ports and its offer/answer state.
struct Reserved {
    a_port: u16,
    b_port: u16,
    negotiation: Negotiation,
}

fn random_key() -> MasterKey {
    MasterKey { key: rand::random(), salt: rand::random() }
}

/// Media anchoring on one address and port range.
pub struct MediaAnchor {
    /// Voice connectors whose customer leg must use SRTP.
    require_encryption: std::collections::HashSet<String>,
    /// Voice connectors whose customer leg may learn its media source (NAT).
    learn_media_source: std::collections::HashSet<String>,
    /// Voice connectors that stream call audio, by id in lower case.
    streaming: HashMap<String, connector::config::ConnectorStreaming>,
    ip: IpAddr,
    ports: MediaPorts,
    calls: HashMap<u64, Reserved>,
    updates: std::collections::VecDeque<MediaUpdate>,
}

impl MediaAnchor {
    pub fn new(ip: IpAddr, range: PortRange) -> MediaAnchor {
        MediaAnchor {
            require_encryption: Default::default(),
            learn_media_source: Default::default(),
            streaming: HashMap::new(),
            ip,
            ports: MediaPorts::new(ip, range),
            calls: HashMap::new(),
            updates: Default::default(),
        }
    }

    /// Voice connectors with `RequireEncryption`: their customer leg must offer SRTP (else 488).
    pub fn with_required_encryption(
        mut self,
        ids: impl IntoIterator<Item = String>,
    ) -> MediaAnchor {
        self.require_encryption = ids.into_iter().collect();
        self
    }

    /// Replaces the voice connectors that require encryption (configuration reload); calls in
    /// progress keep what they started with.
    pub fn set_required_encryption(&mut self, ids: impl IntoIterator<Item = String>) {
        self.require_encryption = ids.into_iter().collect();
    }

    /// Voice connectors whose customer leg learns its media source (`AllowMediaSourceLearning`);
    /// every other leg accepts media only from its SDP address. Calls in progress keep theirs.
    pub fn set_media_source_learning(&mut self, ids: impl IntoIterator<Item = String>) {
        self.learn_media_source = ids.into_iter().collect();
    }

    /// Voice connectors that stream call audio (`Validated::streaming`); calls in progress
    /// keep what they started with.
    pub fn set_streaming(
        &mut self,
        streaming: HashMap<String, connector::config::ConnectorStreaming>,
    ) {
        self.streaming = streaming;
    }

    /// Updates since the last call (tests; the core takes them through [`Anchor::poll_update`]).
    #[cfg(test)]
    fn take_updates(&mut self) -> Vec<MediaUpdate> {
        self.updates.drain(..).collect()
    }

    /// Media port pairs in use.
    pub fn ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    /// The port range, shared with the recording server's anchor.
    pub fn ports(&self) -> MediaPorts {
        self.ports.clone()
    }

    fn reserve(&mut self) -> Result<(u16, UdpSocket, UdpSocket), Reject> {
        self.ports.reserve()
    }
}

/// The media port range on one address, shared by every anchor of the driver (the B2BUA's
/// and the recording server's): one allocator, so no pair is handed out twice.
#[derive(Clone)]
pub struct MediaPorts {
    ip: IpAddr,
    alloc: std::rc::Rc<std::cell::RefCell<PortAllocator>>,
}

impl MediaPorts {
    pub fn new(ip: IpAddr, range: PortRange) -> MediaPorts {
        MediaPorts {
            ip,
            alloc: std::rc::Rc::new(std::cell::RefCell::new(PortAllocator::new(range))),
        }
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Pairs in use.
    pub fn in_use(&self) -> usize {
        self.alloc.borrow().in_use()
    }

    /// Gives a pair back.
    pub fn release(&self, port: u16) {
        self.alloc.borrow_mut().release(port);
    }

    /// Reserves an even/odd pair whose sockets bind. A pair that does not bind is given back
    /// at once (it cools down, so the next tries go elsewhere): a port held by another program
    /// is skipped, and a failure that is not about the port (no file descriptors left) marks
    /// nothing and refuses only this call.
    pub fn reserve(&self) -> Result<(u16, UdpSocket, UdpSocket), Reject> {
        for _ in 0..64 {
            let port = self.alloc.borrow_mut().allocate().map_err(|_| exhausted())?;
            let pair = UdpSocket::bind(SocketAddr::new(self.ip, port)).and_then(|rtp| {
                UdpSocket::bind(SocketAddr::new(self.ip, port + 1)).map(|rtcp| (rtp, rtcp))
            });
            match pair {
                Ok((rtp, rtcp)) => return Ok((port, rtp, rtcp)),
                Err(e) => {
                    self.release(port);
                    if e.kind() != std::io::ErrorKind::AddrInUse {
                        tracing::warn!(port, error = %e, "media sockets cannot be opened");
                        let mut r = Reject::new(503, "media sockets unavailable");
                        r.retry_after = Some(5);
                        return Err(r);
                    }
                    tracing::debug!(port, "media port pair busy; trying another");
                }
            }
        }
        Err(exhausted())
    }
}

fn exhausted() -> Reject {
    let mut r = Reject::new(503, "media ports exhausted");
    r.retry_after = Some(5);
    r
}

impl Anchor for MediaAnchor {
    type Update = MediaUpdate;

    fn poll_update(&mut self) -> Option<MediaUpdate> {
        self.updates.pop_front()
    }

    fn open(
        &mut self,
        call: u64,
        transaction_id: &str,
        route: &Route,
        invite: &Request,
    ) -> Result<(), Reject> {
        let (a_port, a_rtp, a_rtcp) = self.reserve()?;
        let (b_port, b_rtp, b_rtcp) = match self.reserve() {
            Ok(x) => x,
            Err(e) => {
                self.ports.release(a_port);
                return Err(e);
            }
        };
        let customer = match route.direction {
            Direction::Outbound => Side::A,
            Direction::Inbound => Side::B,
        };
        let vc = &route.first().voice_connector_id;
        let require_srtp = self.require_encryption.contains(vc).then_some(customer);
        let mut latching = [media::relay::Latching::Strict; 2];
        if self.learn_media_source.contains(vc) {
            latching[customer.index()] = media::relay::Latching::Learn;
        }
        // The outbound leg uses SRTP when its signalling is protected (SDES keys travel in SDP).
        let b_srtp = route.first().peer.transport == sip::Transport::Tls;
        let keys = [random_key(), random_key()];
        let negotiation = Negotiation::new(self.ip, [a_port, b_port], keys, b_srtp, require_srtp);
        self.calls.insert(call, Reserved { a_port, b_port, negotiation });
        let from_user = invite
            .from()
            .map(|f| connector::policy::numbering::user_of(&f.uri))
            .unwrap_or_default();
        let to_user = connector::policy::numbering::user_of(&invite.uri);
        let country = connector::policy::numbering::country_of_user;
        let ctx = CallContext {
            call,
            transaction_id: transaction_id.to_string(),
            voice_connector_id: route.first().voice_connector_id.clone(),
            direction: route.direction,
            from_country: country(&from_user),
            to_country: country(&to_user),
            from_user,
            to_user,
            latching,
            stream: self.streaming.get(&vc.to_ascii_lowercase()).map(|s| {
                Box::new(StreamSpec {
                    call_id: invite.call_id().unwrap_or_default().to_string(),
                    retention_hours: s.retention_hours,
                    sdp: [None, None],
                })
            }),
            record_only: false,
        };
        self.updates.push_back(MediaUpdate::Open { ctx, sockets: [a_rtp, a_rtcp, b_rtp, b_rtcp] });
        Ok(())
    }

    fn rewrite(
        &mut self,
        call: u64,
        from: Side,
        content_type: &str,
        body: &Bytes,
    ) -> Result<Bytes, Reject> {
        if !content_type.trim().to_ascii_lowercase().starts_with("application/sdp") {
            return Ok(body.clone());
        }
        let Some(res) = self.calls.get_mut(&call) else { return Ok(body.clone()) };
        let r = res.negotiation.rewrite(from, body).map_err(|e| Reject::new(488, e.to_string()))?;
        for (side, keys) in r.keys {
            let LegKeys { inbound, outbound } = keys;
            self.updates.push_back(MediaUpdate::Srtp { call, side, inbound, outbound });
        }
        if let Some(PeerMedia { rtp, rtcp, mux, rates }) = r.peer {
            self.updates.push_back(MediaUpdate::Peer { call, side: from, rtp, rtcp, mux, rates });
        }
        Ok(Bytes::from(r.body))
    }

    fn close(&mut self, call: u64) {
        if let Some(r) = self.calls.remove(&call) {
            self.ports.release(r.a_port);
            self.ports.release(r.b_port);
            self.updates.push_back(MediaUpdate::Close { call });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::sdp::Sdp;
    use sip::{Message, Peer, Transport};

    fn invite() -> Request {
        let s = "INVITE sip:+12065550101@vc SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:+12065550100@pbx>;tag=1\r\nTo: <sip:+12065550101@vc>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n\r\n";
        match Message::parse(s.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn route() -> Route {
        Route::single(
            sip::b2bua::Target {
                peer: Peer::new(Transport::Udp, "127.0.0.1:5080".parse().unwrap()),
                request_uri: sip::Uri::parse("sip:+12065550101@127.0.0.1:5080").unwrap(),
                voice_connector_id: "abcdef1ghij2klmno3pqr4".into(),
            },
            Direction::Outbound,
        )
    }

    #[test]
    fn rewrites_offer_and_answer_to_our_sockets() {
        let mut a =
            MediaAnchor::new("127.0.0.1".parse().unwrap(), PortRange::new(41_000, 41_099).unwrap());
        a.open(7, "6f1a3c2e-1111-4a2b-9c3d-0123456789ab", &route(), &invite()).unwrap();
        let updates = a.take_updates();
        let MediaUpdate::Open { ctx, sockets } = &updates[0] else { panic!("expected Open") };
        assert_eq!(
            (ctx.from_user.as_str(), ctx.to_user.as_str()),
            ("+12065550100", "+12065550101")
        );
        assert_eq!(ctx.transaction_id.len(), 36);
        let a_port = sockets[0].local_addr().unwrap().port();
        let b_port = sockets[2].local_addr().unwrap().port();
        assert_eq!(sockets[1].local_addr().unwrap().port(), a_port + 1);
        let offer = Bytes::from_static(b"v=0\r\no=x 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:4001\r\na=candidate:1 1 UDP 1 10.0.0.1 4000 typ host\r\nm=video 5000 RTP/AVP 96\r\n");
        let out = a.rewrite(7, Side::A, "application/sdp", &offer).unwrap();
        let s = Sdp::parse(&out).unwrap();
        assert_eq!(s.connection(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(s.media[0].port, b_port, "the callee sends to our B-side socket");
        assert_eq!(s.media[0].attributes("rtcp").next(), Some((b_port + 1).to_string().as_str()));
        assert_eq!(s.media[0].attributes("candidate").count(), 0);
        assert_eq!(s.media[1].port, 0, "video is declined");
        let MediaUpdate::Peer { side, rtp, rtcp, rates, .. } = &a.take_updates()[0] else {
            panic!("expected Peer")
        };
        assert_eq!(
            (*side, *rtp, *rtcp),
            (Side::A, "10.0.0.1:4000".parse().unwrap(), Some("10.0.0.1:4001".parse().unwrap()))
        );
        assert_eq!(rates, &vec![(101, 8000)]);
        let answer = Bytes::from_static(b"v=0\r\no=y 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n");
        let out = a.rewrite(7, Side::B, "application/sdp", &answer).unwrap();
        assert_eq!(
            Sdp::parse(&out).unwrap().media[0].port,
            a_port,
            "the caller sends to our A-side socket"
        );
        assert!(
            matches!(a.rewrite(7, Side::A, "application/sdp", &Bytes::from_static(b"v=0\r\ns=-\r\nm=video 1 RTP/AVP 96\r\n")), Err(r) if r.status == 488)
        );
        assert!(
            matches!(a.rewrite(7, Side::A, "application/sdp", &Bytes::from_static(b"garbage")), Err(r) if r.status == 488)
        );
        assert_eq!(a.ports_in_use(), 2);
        a.close(7);
        assert_eq!(a.ports_in_use(), 0);
        assert!(matches!(a.take_updates().last(), Some(MediaUpdate::Close { call: 7 })));
    }

    #[test]
    fn srtp_customer_leg_with_plain_carrier_leg() {
        let mut a =
            MediaAnchor::new("127.0.0.1".parse().unwrap(), PortRange::new(41_300, 41_399).unwrap())
                .with_required_encryption(["abcdef1ghij2klmno3pqr4".to_string()]);
        a.open(3, "6f1a3c2e-1111-4a2b-9c3d-0123456789ab", &route(), &invite()).unwrap();
        a.take_updates();
        let plain = Bytes::from_static(
            b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        );
        let e = a.rewrite(3, Side::A, "application/sdp", &plain).unwrap_err();
        assert_eq!(e.status, 488, "{e:?}");
        let unsupported = Bytes::from_static(b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 F8_128_HMAC_SHA1_80 inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS\r\n");
        assert_eq!(a.rewrite(3, Side::A, "application/sdp", &unsupported).unwrap_err().status, 488);
        let offer = Bytes::from_static(b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS\r\n");
        let to_carrier =
            Sdp::parse(&a.rewrite(3, Side::A, "application/sdp", &offer).unwrap()).unwrap();
        assert_eq!(to_carrier.media[0].proto, "RTP/AVP", "the UDP carrier leg stays plain RTP");
        assert_eq!(to_carrier.media[0].attributes("crypto").count(), 0);
        let srtp: Vec<_> = a
            .take_updates()
            .into_iter()
            .filter(|u| matches!(u, MediaUpdate::Srtp { .. }))
            .collect();
        let MediaUpdate::Srtp { side, inbound, outbound, .. } = &srtp[0] else { panic!() };
        assert_eq!(*side, Side::A);
        assert_eq!(
            inbound.as_ref().map(|(s, k)| (*s, k.to_inline())),
            Some((
                Suite::AesCm128HmacSha1_32,
                "inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS".into()
            ))
        );
        let ours = outbound.as_ref().unwrap().1.to_inline();
        let answer = Bytes::from_static(
            b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n",
        );
        let to_customer =
            Sdp::parse(&a.rewrite(3, Side::B, "application/sdp", &answer).unwrap()).unwrap();
        assert_eq!(to_customer.media[0].proto, "RTP/SAVP");
        assert_eq!(
            to_customer.media[0].attributes("crypto").next(),
            Some(format!("2 AES_CM_128_HMAC_SHA1_32 {ours}").as_str()),
            "answered under the customer's tag and suite with voicegw's own key"
        );
    }

    #[test]
    fn exhaustion_is_503() {
        let mut a =
            MediaAnchor::new("127.0.0.1".parse().unwrap(), PortRange::new(41_200, 41_203).unwrap());
        a.open(1, "6f1a3c2e-1111-4a2b-9c3d-0123456789ab", &route(), &invite()).unwrap();
        let e = a.open(2, "6f1a3c2e-1111-4a2b-9c3d-0123456789ab", &route(), &invite()).unwrap_err();
        assert_eq!((e.status, e.retry_after), (503, Some(5)));
    }

    #[test]
    fn a_pair_that_did_not_bind_is_not_kept() {
        // Two pairs; another program holds the RTP port of one: a call (two pairs) is refused.
        let range = PortRange::new(41_400, 41_403).unwrap();
        let mut a = MediaAnchor::new("127.0.0.1".parse().unwrap(), range);
        let blocker = UdpSocket::bind("127.0.0.1:41400").unwrap();
        let e = a.open(1, "6f1a3c2e-1111-4a2b-9c3d-0123456789ab", &route(), &invite()).unwrap_err();
        assert_eq!(e.status, 503);
        assert_eq!(a.ports_in_use(), 0, "nothing stays marked used after a failed bind");
        // Once the port is free again, calls get it.
        drop(blocker);
        a.open(2, "6f1a3c2e-1111-4a2b-9c3d-0123456789ab", &route(), &invite()).unwrap();
        assert_eq!(a.ports_in_use(), 2);
    }
}
