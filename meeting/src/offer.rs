//! A dial-in caller's SDP offer, read, and voicegw's answer: the first audio line with G.711
//! (PCMU or PCMA, in the offer's order of preference) is the participant's audio, with
//! RFC 4733 telephone-events when offered; video and every other line are declined (port 0),
//! so room systems stay in audio. An SRTP audio line (SDES) needs a suite voicegw supports; a
//! key offered on plain RTP/AVP (best-effort SRTP) is taken too.

use std::net::{IpAddr, SocketAddr};

use media::g711::Law;
use media::sdp::{Media, Sdp};
use media::srtp::{MasterKey, Suite};

/// Why an offer cannot join a meeting (488).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the offer is not SDP voicegw can read: {0}")]
    Sdp(String),
    #[error("no audio line offers G.711 (PCMU or PCMA)")]
    NoG711,
    #[error("the audio line has no address")]
    NoAddress,
    #[error("the SRTP audio line offers no crypto suite voicegw supports")]
    NoSupportedSuite,
}

/// The participant's audio, as offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedAudio {
    /// The m-line's index.
    pub index: usize,
    pub law: Law,
    /// The telephone-event payload type, when offered.
    pub dtmf_pt: Option<u8>,
    pub from: SocketAddr,
    /// SDES: the offer's tag, suite and key.
    pub crypto: Option<(String, Suite, MasterKey)>,
    /// The packet time the participant asked for (`a=ptime` 40 or 60), else 20 ms.
    pub ptime_ms: u32,
}

/// An offer, read.
#[derive(Debug, Clone)]
pub struct Offer {
    pub sdp: Sdp,
    pub audio: OfferedAudio,
    /// Video lines declined.
    pub declined_video: usize,
}

fn law_of(m: &Media, sdp: &Sdp) -> Option<Law> {
    let maps = m.rtpmaps();
    m.formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find_map(|pt| {
            let named =
                maps.iter().find(|r| r.payload_type == pt).map(|r| r.encoding.to_ascii_uppercase());
            match (pt, named.as_deref()) {
                (0, None) | (_, Some("PCMU")) => Some(Law::MuLaw),
                (8, None) | (_, Some("PCMA")) => Some(Law::ALaw),
                _ => None,
            }
        })
        .filter(|_| sdp.media_addr(m).is_some() || sdp.connection().is_some())
}

impl Offer {
    pub fn read(body: &[u8]) -> Result<Offer, OfferError> {
        let sdp = Sdp::parse(body).map_err(|e| OfferError::Sdp(e.to_string()))?;
        let mut declined_video = 0;
        let mut audio = None;
        for (index, m) in sdp.media.iter().enumerate() {
            if m.kind.eq_ignore_ascii_case("video") {
                declined_video += 1;
            }
            if audio.is_some() || !m.kind.eq_ignore_ascii_case("audio") || m.port == 0 {
                continue;
            }
            let Some(law) = law_of(m, &sdp) else { continue };
            let ip: IpAddr = sdp.media_addr(m).ok_or(OfferError::NoAddress)?;
            let dtmf_pt = m
                .rtpmaps()
                .iter()
                .find(|r| {
                    r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000
                })
                .map(|r| r.payload_type);
            let savp = m.proto.to_ascii_uppercase().contains("SAVP");
            let crypto = media::negotiate::pick_crypto(m);
            if savp && crypto.is_none() {
                return Err(OfferError::NoSupportedSuite);
            }
            audio = Some(OfferedAudio {
                index,
                law,
                dtmf_pt,
                from: SocketAddr::new(ip, m.port),
                ptime_ms: m.ptime().filter(|p| matches!(p, 40 | 60)).unwrap_or(20),
                // SDES on RTP/AVP is best-effort SRTP (RFC 4568 §3.1.4's "optional" use, as
                // baresip and several room systems offer it): taken, answered on AVP.
                crypto,
            });
        }
        let audio = audio.ok_or(OfferError::NoG711)?;
        Ok(Offer { sdp, audio, declined_video })
    }

    /// voicegw's answer: the audio line on `local`:`port` with the chosen law (and
    /// telephone-events), `sendrecv`, voicegw's `key` for SRTP; every other line declined.
    pub fn answer(&self, local: SocketAddr, key: Option<&MasterKey>, version: u64) -> Sdp {
        let family = if local.is_ipv4() { "IP4" } else { "IP6" };
        let ip = local.ip();
        let session = vec![
            ('v', "0".to_string()),
            ('o', format!("voicegw {version} {version} IN {family} {ip}")),
            ('s', "voicegw meeting".to_string()),
            ('c', format!("IN {family} {ip}")),
            ('t', "0 0".to_string()),
        ];
        let a = &self.audio;
        let media = self
            .sdp
            .media
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if i != a.index {
                    return Media {
                        kind: m.kind.clone(),
                        port: 0,
                        proto: m.proto.clone(),
                        formats: m.formats.iter().take(1).cloned().collect(),
                        lines: Vec::new(),
                    };
                }
                let pt = a.law.payload_type();
                let name = if a.law == Law::MuLaw { "PCMU" } else { "PCMA" };
                let mut formats = vec![pt.to_string()];
                let mut lines = vec![('a', format!("rtpmap:{pt} {name}/8000"))];
                if let Some(d) = a.dtmf_pt {
                    formats.push(d.to_string());
                    lines.push(('a', format!("rtpmap:{d} telephone-event/8000")));
                    lines.push(('a', format!("fmtp:{d} 0-16")));
                }
                if let (Some((tag, suite, _)), Some(key)) = (&a.crypto, key) {
                    lines.push(('a', format!("crypto:{tag} {} {}", suite.name(), key.to_inline())));
                }
                lines.push(('a', format!("ptime:{}", a.ptime_ms)));
                lines.push(('a', "sendrecv".to_string()));
                Media {
                    kind: m.kind.clone(),
                    port: local.port(),
                    proto: m.proto.clone(),
                    formats,
                    lines,
                }
            })
            .collect();
        Sdp { session, media }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: &str = "v=0\r\no=room 1 1 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 192.0.2.30\r\nt=0 0\r\nm=audio 5000 RTP/AVP 9 0 8 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\nm=video 5002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=application 5004 RTP/AVP 100\r\n";

    #[test]
    fn a_room_systems_offer_gets_g711_and_its_video_declined() {
        let o = Offer::read(ROOM.as_bytes()).expect("offer");
        assert_eq!(o.audio.law, Law::MuLaw, "the first G.711 in the offer's order");
        assert_eq!((o.audio.dtmf_pt, o.audio.from.port(), o.declined_video), (Some(101), 5000, 1));
        let a = o.answer("198.51.100.1:20000".parse().unwrap(), None, 1).to_text();
        assert!(a.contains("m=audio 20000 RTP/AVP 0 101\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"), "{a}");
        assert!(a.contains("m=video 0 RTP/AVP 96\r\n") && a.contains("m=application 0 "), "{a}");
        assert!(Sdp::parse(a.as_bytes()).is_ok());
    }

    #[test]
    fn offers_without_g711_or_a_usable_key_are_refused() {
        let g722 = ROOM.replace("RTP/AVP 9 0 8 101", "RTP/AVP 9 101");
        assert_eq!(Offer::read(g722.as_bytes()).unwrap_err(), OfferError::NoG711);
        let savp = ROOM.replace("m=audio 5000 RTP/AVP", "m=audio 5000 RTP/SAVP");
        assert_eq!(Offer::read(savp.as_bytes()).unwrap_err(), OfferError::NoSupportedSuite);
        let keyed = savp.replace(
            "a=fmtp:101 0-15\r\n",
            "a=fmtp:101 0-15\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
        );
        let o = Offer::read(keyed.as_bytes()).expect("SRTP");
        let ours = MasterKey { key: [1; 16], salt: [2; 14] };
        let a = o.answer("198.51.100.1:20000".parse().unwrap(), Some(&ours), 1).to_text();
        assert!(
            a.contains(&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 {}", ours.to_inline())),
            "{a}"
        );
        // The packet time asked for: 40 and 60 ms are kept, anything else is 20.
        for (asked, kept) in [("40", 40), ("60", 60), ("30", 20)] {
            let o = Offer::read(
                ROOM.replace(
                    "a=fmtp:101 0-15\r\n",
                    &format!("a=fmtp:101 0-15\r\na=ptime:{asked}\r\n"),
                )
                .as_bytes(),
            )
            .expect("offer");
            assert_eq!(o.audio.ptime_ms, kept);
            let a = o.answer("198.51.100.1:20000".parse().unwrap(), None, 1).to_text();
            assert!(a.contains(&format!("a=ptime:{kept}\r\n")), "{a}");
        }
        // Best-effort SRTP: a key on RTP/AVP is used, the answer stays on AVP with voicegw's.
        let best_effort = keyed.replace("RTP/SAVP", "RTP/AVP");
        let o = Offer::read(best_effort.as_bytes()).expect("best-effort SRTP");
        assert!(o.audio.crypto.is_some());
        let a = o.answer("198.51.100.1:20000".parse().unwrap(), Some(&ours), 1).to_text();
        assert!(a.contains("m=audio 20000 RTP/AVP ") && a.contains("a=crypto:1 "), "{a}");
        assert!(matches!(Offer::read(b"junk"), Err(OfferError::Sdp(_))));
    }
}
