//! SDP offer/answer through an anchor (RFC 3264) with SDES key negotiation (RFC 4568), sans-IO.
//!
//! A [`Negotiation`] is one call's media as both legs see it: voicegw's RTP port on each leg and
//! each leg's SRTP state. [`Negotiation::rewrite`] takes the SDP one leg sent and returns the
//! SDP for the other leg — voicegw's address and port on that side, one audio stream (others
//! declined with port 0, RFC 3264 §6), ICE lines and the sender's keys removed, the profile and
//! `a=crypto` of the receiving leg — together with what the relay must learn from it: where the
//! sender receives media, and which legs' keys changed.
//!
//! SRTP is decided per leg: a leg uses it when its SDP says `RTP/SAVP` (the outbound leg: when
//! the caller of [`Negotiation::new`] says so, i.e. its signalling is protected). An offer under
//! SAVP is answered under the tag and suite it offered (RFC 4568 §7.1) with voicegw's own key for
//! that leg; an offer voicegw makes to an SRTP leg uses the sender's suite, or
//! AES_CM_128_HMAC_SHA1_80, under tag 1. A body that is refused changes nothing.

use std::net::{IpAddr, SocketAddr};

use common::Side;
use thiserror::Error;

use crate::sdp::{Media, Sdp, SdpError};
use crate::srtp::{MasterKey, Suite};

/// Why an SDP body is refused (the signalling answers 488 Not Acceptable Here).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NegotiationError {
    #[error("unreadable SDP: {0}")]
    Unreadable(#[from] SdpError),
    #[error("no audio stream to relay")]
    NoAudio,
    #[error("encryption required: offer RTP/SAVP with a=crypto")]
    EncryptionRequired,
    #[error("no supported SRTP crypto suite (AES_CM_128_HMAC_SHA1_80/_32)")]
    NoSupportedSuite,
    #[error("no connection address for audio")]
    NoConnectionAddress,
}

/// SRTP keys of one leg: the peer's (decrypts what it sends) and voicegw's (encrypts what voicegw
/// sends it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegKeys {
    pub inbound: Option<(Suite, MasterKey)>,
    pub outbound: Option<(Suite, MasterKey)>,
}

/// Where the sender of an SDP body receives media, as the body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMedia {
    pub rtp: SocketAddr,
    /// From `a=rtcp` (RFC 3605), if present.
    pub rtcp: Option<SocketAddr>,
    /// `a=rtcp-mux` (RFC 5761).
    pub mux: bool,
    /// (payload type, clock rate) of every `a=rtpmap`.
    pub rates: Vec<(u8, u32)>,
}

/// What one rewritten body means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The SDP for the other leg.
    pub body: String,
    /// Legs whose keys changed, in leg order, with their keys now.
    pub keys: Vec<(Side, LegKeys)>,
    /// Where the sender receives (`None` when it put its audio on hold with port 0).
    pub peer: Option<PeerMedia>,
}

/// SRTP state of one leg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LegCrypto {
    /// The leg uses SRTP.
    srtp: bool,
    keys: LegKeys,
    /// The tag voicegw's key is offered or answered under.
    tag: Option<String>,
}

/// One call's offer/answer state. See the module docs.
#[derive(Debug, Clone)]
pub struct Negotiation {
    ip: IpAddr,
    /// voicegw's RTP port on each leg (RTCP is the next one).
    ports: [u16; 2],
    crypto: [LegCrypto; 2],
    /// voicegw's master key per leg, stable for the call.
    own_keys: [MasterKey; 2],
    /// The leg that must use SRTP (`RequireEncryption`), if one must.
    require_srtp: Option<Side>,
}

impl Negotiation {
    /// A call anchored on `ip`, with voicegw's RTP port `ports[leg]` on each leg and its own
    /// key `own_keys[leg]`; the B leg uses SRTP from the start when `b_srtp`.
    pub fn new(
        ip: IpAddr,
        ports: [u16; 2],
        own_keys: [MasterKey; 2],
        b_srtp: bool,
        require_srtp: Option<Side>,
    ) -> Negotiation {
        let mut crypto: [LegCrypto; 2] = Default::default();
        crypto[Side::B.index()].srtp = b_srtp;
        Negotiation { ip, ports, crypto, own_keys, require_srtp }
    }

    /// voicegw's RTP port on `side`.
    pub fn port(&self, side: Side) -> u16 {
        self.ports[side.index()]
    }

    /// The SDP `body` that the leg on `from` sent, rewritten for the other leg. On an error
    /// nothing changes.
    pub fn rewrite(&mut self, from: Side, body: &[u8]) -> Result<Rewritten, NegotiationError> {
        let mut sdp = Sdp::parse(body)?;
        let ai = (sdp.media.iter().position(|m| m.kind.eq_ignore_ascii_case("audio")))
            .ok_or(NegotiationError::NoAudio)?;
        let (fi, ti) = (from.index(), from.other().index());
        let savp = sdp.media[ai].proto.to_ascii_uppercase().contains("SAVP");
        let held = sdp.media[ai].port == 0;
        if self.require_srtp == Some(from) && !savp && !held {
            return Err(NegotiationError::EncryptionRequired);
        }
        let chosen = match savp {
            true => Some(pick_crypto(&sdp.media[ai]).ok_or(NegotiationError::NoSupportedSuite)?),
            false => None,
        };
        let peer = match held {
            true => None,
            false => Some(peer_media(&sdp, &sdp.media[ai])?),
        };

        // Accepted: the keys.
        let before = self.crypto.clone();
        let leg = &mut self.crypto[fi];
        leg.srtp = savp;
        leg.keys.inbound = chosen.as_ref().map(|(_, suite, key)| (*suite, key.clone()));
        if let Some((tag, suite, _)) = &chosen {
            if leg.tag.is_none() {
                leg.tag = Some(tag.clone());
                leg.keys.outbound = Some((*suite, self.own_keys[fi].clone()));
            }
        }
        let target = &mut self.crypto[ti];
        if target.srtp && target.keys.outbound.is_none() {
            let suite = chosen.as_ref().map_or(Suite::AesCm128HmacSha1_80, |c| c.1);
            target.keys.outbound = Some((suite, self.own_keys[ti].clone()));
            target.tag.get_or_insert_with(|| "1".to_string());
        }
        let keys = [Side::A, Side::B]
            .into_iter()
            .filter(|s| self.crypto[s.index()].keys != before[s.index()].keys)
            .map(|s| (s, self.crypto[s.index()].keys.clone()))
            .collect();

        // The body for the other leg: it sends to voicegw's socket on its side.
        let port = self.ports[ti];
        let target = &self.crypto[ti];
        let conn = format!("IN {} {}", if self.ip.is_ipv4() { "IP4" } else { "IP6" }, self.ip);
        for (t, v) in sdp.session.iter_mut() {
            if *t == 'c' {
                v.clone_from(&conn);
            }
        }
        for (i, m) in sdp.media.iter_mut().enumerate() {
            if i != ai {
                m.port = 0;
                continue;
            }
            if m.port != 0 {
                m.port = port;
            }
            m.lines.retain(|(t, v)| {
                !(*t == 'a'
                    && (v.starts_with("candidate")
                        || v.starts_with("ice-")
                        || v.starts_with("end-of-candidates")
                        || v.starts_with("crypto:")))
            });
            match (&target.keys.outbound, target.srtp) {
                (Some((suite, key)), true) => {
                    m.proto = "RTP/SAVP".into();
                    let tag = target.tag.as_deref().unwrap_or("1");
                    m.lines
                        .push(('a', format!("crypto:{tag} {} {}", suite.name(), key.to_inline())));
                }
                _ => m.proto = "RTP/AVP".into(),
            }
            for (t, v) in m.lines.iter_mut() {
                if *t == 'c' {
                    v.clone_from(&conn);
                } else if *t == 'a' && v.starts_with("rtcp:") {
                    *v = format!("rtcp:{}", port + 1);
                }
            }
        }
        if !sdp.session.iter().any(|(t, _)| *t == 'c')
            && !sdp.media[ai].lines.iter().any(|(t, _)| *t == 'c')
        {
            sdp.media[ai].lines.insert(0, ('c', conn));
        }
        Ok(Rewritten { body: sdp.to_text(), keys, peer })
    }
}

/// The first `a=crypto` line with a suite voicegw supports: (tag, suite, key).
pub fn pick_crypto(m: &Media) -> Option<(String, Suite, MasterKey)> {
    m.attributes("crypto").find_map(|v| {
        let mut it = v.split_whitespace();
        let tag = it.next()?.to_string();
        let suite = Suite::parse(it.next()?).ok()?;
        let key = MasterKey::from_inline(it.next()?).ok()?;
        Some((tag, suite, key))
    })
}

/// Where the sender of `m` receives.
fn peer_media(sdp: &Sdp, m: &Media) -> Result<PeerMedia, NegotiationError> {
    let ip = sdp.media_addr(m).ok_or(NegotiationError::NoConnectionAddress)?;
    let rtcp = m.attributes("rtcp").next().and_then(|v| {
        let mut it = v.split_whitespace();
        let port: u16 = it.next()?.parse().ok()?;
        let addr = it.nth(2).and_then(|a| a.parse().ok()).unwrap_or(ip);
        Some(SocketAddr::new(addr, port))
    });
    Ok(PeerMedia {
        rtp: SocketAddr::new(ip, m.port),
        rtcp,
        mux: m.attributes("rtcp-mux").next().is_some(),
        rates: m.rtpmaps().into_iter().map(|r| (r.payload_type, r.clock_rate)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    const KEY_B: &str = "inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";
    const PEER_KEY: &str = "inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS";

    fn negotiation(b_srtp: bool, require: Option<Side>) -> Negotiation {
        let keys = [MasterKey::from_inline(KEY_A).unwrap(), MasterKey::from_inline(KEY_B).unwrap()];
        Negotiation::new(IpAddr::from([192, 0, 2, 1]), [40_000, 40_002], keys, b_srtp, require)
    }

    #[test]
    fn offer_and_answer_point_both_legs_at_voicegw() {
        let mut n = negotiation(false, None);
        let offer = b"v=0\r\no=x 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:4001\r\na=candidate:1 1 UDP 1 10.0.0.1 4000 typ host\r\nm=video 5000 RTP/AVP 96\r\n";
        let r = n.rewrite(Side::A, offer).unwrap();
        let s = Sdp::parse(r.body.as_bytes()).unwrap();
        assert_eq!(s.connection(), Some(IpAddr::from([192, 0, 2, 1])));
        assert_eq!(s.media[0].port, 40_002, "the callee sends to voicegw's B-side socket");
        assert_eq!(s.media[0].attributes("rtcp").next(), Some("40003"));
        assert_eq!(s.media[0].attributes("candidate").count(), 0);
        assert_eq!(s.media[1].port, 0, "video is declined");
        let peer = r.peer.unwrap();
        assert_eq!(peer.rtp, "10.0.0.1:4000".parse().unwrap());
        assert_eq!(peer.rtcp, Some("10.0.0.1:4001".parse().unwrap()));
        assert_eq!((peer.mux, peer.rates), (false, vec![(101, 8000)]));
        assert!(r.keys.is_empty(), "plain RTP on both legs");
        let answer =
            b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtcp-mux\r\n";
        let r = n.rewrite(Side::B, answer).unwrap();
        assert_eq!(Sdp::parse(r.body.as_bytes()).unwrap().media[0].port, 40_000);
        assert!(r.peer.unwrap().mux);
    }

    #[test]
    fn refused_bodies_change_nothing() {
        let mut n = negotiation(false, Some(Side::A));
        let before = n.crypto.clone();
        let cases: [(&[u8], NegotiationError); 4] = [
            (b"v=0\r\ns=-\r\nm=video 1 RTP/AVP 96\r\n", NegotiationError::NoAudio),
            (
                b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
                NegotiationError::EncryptionRequired,
            ),
            (
                b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 F8_128_HMAC_SHA1_80 inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS\r\n",
                NegotiationError::NoSupportedSuite,
            ),
            (
                b"v=0\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS\r\n",
                NegotiationError::NoConnectionAddress,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(n.rewrite(Side::A, body).unwrap_err(), want);
            assert_eq!(n.crypto, before);
        }
        assert!(matches!(n.rewrite(Side::A, b"garbage"), Err(NegotiationError::Unreadable(_))));
        // The carrier leg (B) may stay plain.
        let plain = b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
        assert!(n.rewrite(Side::B, plain).is_ok());
    }

    #[test]
    fn an_srtp_offer_is_answered_under_its_tag_and_suite() {
        let mut n = negotiation(false, Some(Side::A));
        let offer = format!("v=0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 {PEER_KEY}\r\n");
        let r = n.rewrite(Side::A, offer.as_bytes()).unwrap();
        let to_carrier = Sdp::parse(r.body.as_bytes()).unwrap();
        assert_eq!(to_carrier.media[0].proto, "RTP/AVP", "the plain carrier leg stays RTP");
        assert_eq!(to_carrier.media[0].attributes("crypto").count(), 0);
        let [(side, keys)] = &r.keys[..] else { panic!("{:?}", r.keys) };
        assert_eq!(*side, Side::A);
        let inbound = keys.inbound.as_ref().map(|(s, k)| (*s, k.to_inline()));
        assert_eq!(inbound, Some((Suite::AesCm128HmacSha1_32, PEER_KEY.into())));
        let outbound = keys.outbound.as_ref().map(|(s, k)| (*s, k.to_inline()));
        assert_eq!(outbound, Some((Suite::AesCm128HmacSha1_32, KEY_A.into())));
        let answer = b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
        let r = n.rewrite(Side::B, answer).unwrap();
        let to_customer = Sdp::parse(r.body.as_bytes()).unwrap();
        assert_eq!(to_customer.media[0].proto, "RTP/SAVP");
        let crypto = to_customer.media[0].attributes("crypto").next();
        assert_eq!(crypto, Some(format!("2 AES_CM_128_HMAC_SHA1_32 {KEY_A}").as_str()));
        assert!(r.keys.is_empty(), "nothing changed on either leg");
    }

    #[test]
    fn an_srtp_outbound_leg_is_offered_voicegw_key_under_tag_1() {
        let mut n = negotiation(true, None);
        let offer = b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let r = n.rewrite(Side::A, offer).unwrap();
        let to_b = Sdp::parse(r.body.as_bytes()).unwrap();
        assert_eq!(to_b.media[0].proto, "RTP/SAVP");
        let crypto = to_b.media[0].attributes("crypto").next();
        assert_eq!(crypto, Some(format!("1 AES_CM_128_HMAC_SHA1_80 {KEY_B}").as_str()));
        assert_eq!(r.keys.len(), 1);
        assert_eq!(r.keys[0].0, Side::B);
        // The answer brings B's key; A (plain) gets plain RTP back.
        let answer = format!("v=0\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 6000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {PEER_KEY}\r\n");
        let r = n.rewrite(Side::B, answer.as_bytes()).unwrap();
        assert_eq!(Sdp::parse(r.body.as_bytes()).unwrap().media[0].proto, "RTP/AVP");
        let keys = &r.keys[0].1;
        assert_eq!(keys.inbound.as_ref().map(|(_, k)| k.to_inline()), Some(PEER_KEY.into()));
    }

    #[test]
    fn hold_with_port_zero_keeps_the_port_and_names_no_peer() {
        let mut n = negotiation(false, None);
        let hold = b"v=0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
        let r = n.rewrite(Side::A, hold).unwrap();
        assert_eq!(r.peer, None);
        assert_eq!(Sdp::parse(r.body.as_bytes()).unwrap().media[0].port, 0);
    }
}
