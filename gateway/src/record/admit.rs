//! Which voice connector a recording session belongs to: the one whose termination
//! `CidrAllowedList` holds the recording client's address (the SBC or PBX that records is the
//! customer's, as for termination); when several do, the one the Request-URI's host names
//! (`<VoiceConnectorId>.voiceconnector…`), else the first by id. The voice connector must
//! stream (`StreamingConfiguration`): a recording is its streams. Refusals are 403 with the
//! reason. A voice connector that requires encryption takes recording sessions over TLS only
//! (488 otherwise, as for its calls); its streams must be SRTP (the media anchor's check).
//! A voice connector with termination credentials challenges recording clients as it
//! challenges calls (407, digest in the same realm, nonces of the recording server's own).

use std::net::IpAddr;

use connector::config::{Credential, Validated};
use connector::policy::digest::{DigestAuth, Outcome};
use ipnet::IpNet;
use sip::{Instant, Peer, Request};
use siprec::srs::Refusal;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct RecordingAdmission {
    /// By id.
    connectors: Vec<Connector>,
    realm: String,
    auth: DigestAuth,
}

#[derive(Debug, Clone)]
struct Connector {
    /// As configured.
    id: String,
    /// Its termination `CidrAllowedList`.
    cidrs: Vec<IpNet>,
    streams: bool,
    requires_encryption: bool,
    credentials: Vec<Credential>,
}

impl RecordingAdmission {
    /// The admission `v` configures, with a new nonce secret.
    pub fn from_config(v: &Validated) -> RecordingAdmission {
        RecordingAdmission::build(v, rand::random())
    }

    /// The admission for a reloaded configuration: challenges already sent stay answerable
    /// and used nonces stay used.
    pub fn reloaded(&self, v: &Validated) -> RecordingAdmission {
        let mut a = RecordingAdmission::build(v, self.auth.secret());
        a.auth = a.auth.with_used(self.auth.used());
        a
    }

    fn build(v: &Validated, secret: [u8; 32]) -> RecordingAdmission {
        let mut connectors: Vec<Connector> = v
            .config
            .voice_connectors
            .iter()
            .map(|vc| {
                let key = vc.id.to_ascii_lowercase();
                let cidrs = v
                    .networks
                    .connectors
                    .get(&key)
                    .map(|n| n.termination_cidrs.clone())
                    .unwrap_or_default();
                Connector {
                    id: vc.id.clone(),
                    cidrs,
                    streams: v.streaming.contains_key(&key),
                    requires_encryption: vc.require_encryption,
                    credentials: vc.credentials.clone(),
                }
            })
            .collect();
        connectors.sort_by(|a, b| a.id.cmp(&b.id));
        let (realm, auth) = connector::policy::digest_auth(v, secret);
        RecordingAdmission { connectors, realm, auth }
    }

    fn matching(&self, ip: IpAddr) -> impl Iterator<Item = &Connector> {
        self.connectors.iter().filter(move |c| c.cidrs.iter().any(|n| n.contains(&ip)))
    }
}

impl siprec::srs::Admit for RecordingAdmission {
    fn admit(&mut self, invite: &Request, source: &Peer, now: Instant) -> Result<String, Refusal> {
        let ip = source.addr.ip();
        let host = invite.uri.host.to_ascii_lowercase();
        let named = self.matching(ip).find(|c| {
            host.split('.').next().is_some_and(|label| label == c.id.to_ascii_lowercase())
        });
        let Some(c) = named.or_else(|| self.matching(ip).next()) else {
            return Err((403, format!("{ip} is in no voice connector's CidrAllowedList")).into());
        };
        if !c.streams {
            let why = format!("voice connector {} does not stream (StreamingConfiguration)", c.id);
            return Err((403, why).into());
        }
        if c.requires_encryption && source.transport != sip::Transport::Tls {
            let why = format!("voice connector {} requires encryption: use TLS and SRTP", c.id);
            return Err((488, why).into());
        }
        if !c.credentials.is_empty() {
            let id = c.id.clone();
            let credentials = c.credentials.clone();
            if let Outcome::Challenge { stale, why } =
                self.auth.verify(invite, &self.realm, &credentials, now)
            {
                let challenges = self.auth.challenges(&self.realm, now, stale);
                return Err(Refusal { status: 407, reason: why.into(), challenges });
            }
            return Ok(id);
        }
        Ok(c.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siprec::srs::Admit as _;

    fn invite(host: &str) -> Request {
        let s = format!("INVITE sip:rec@{host} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:src@x>;tag=1\r\nTo: <sip:rec@{host}>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n\r\n");
        match sip::Message::parse(s.as_bytes()).expect("INVITE") {
            sip::Message::Request(r) => r,
            sip::Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn the_source_and_the_host_choose_the_voice_connector_which_must_stream() {
        let vc = |id: &str, cidr: &str, streams: bool, requires_encryption: bool| Connector {
            id: id.into(),
            cidrs: vec![cidr.parse().unwrap()],
            streams,
            requires_encryption,
            credentials: Vec::new(),
        };
        let mut a = RecordingAdmission {
            connectors: vec![
                vc("aaaa", "10.0.0.0/8", true, false),
                vc("bbbb", "10.1.0.0/16", true, false),
                vc("cccc", "192.0.2.0/24", false, false),
                vc("dddd", "198.51.100.0/24", true, true),
            ],
            realm: "voicegw.test".into(),
            auth: DigestAuth::new([0; 32], 60),
        };
        let peer = |ip: &str| Peer::new(sip::Transport::Udp, format!("{ip}:5060").parse().unwrap());
        let t = Instant::ZERO;
        assert_eq!(a.admit(&invite("gw"), &peer("10.1.2.3"), t), Ok("aaaa".into()), "the first");
        let refused = |r: Result<String, Refusal>| r.unwrap_err();
        assert_eq!(
            a.admit(&invite("bbbb.voiceconnector.local"), &peer("10.1.2.3"), t),
            Ok("bbbb".into())
        );
        assert_eq!(refused(a.admit(&invite("gw"), &peer("203.0.113.1"), t)).status, 403);
        let e = refused(a.admit(&invite("gw"), &peer("192.0.2.7"), t));
        assert!(e.reason.contains("does not stream"), "{e:?}");
        let e = refused(a.admit(&invite("gw"), &peer("198.51.100.7"), t));
        assert_eq!(e.status, 488, "an encrypted voice connector over UDP: {e:?}");
        let tls = Peer::new(sip::Transport::Tls, "198.51.100.7:5061".parse().unwrap());
        assert_eq!(a.admit(&invite("gw"), &tls, t), Ok("dddd".into()));
    }
}
