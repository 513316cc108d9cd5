//! Routing from the configuration: which voice connector a call belongs to and where it goes.
//!
//! Termination: the Request-URI host is `<VoiceConnectorId>.<domain>`; the source must be in the
//! voice connector's `CidrAllowedList`; the call goes to a carrier trunk. Origination: a request
//! from a carrier's `SourceCidrs` is routed by the called E.164 number to its voice connector's
//! origination route. Full policy (credentials, CPS, calling regions, failover) comes later.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sip::b2bua::{Direction, Reject, Route, Router};
use sip::message::Uri;
use sip::{Peer, Request};

use crate::config::{Config, OriginationRoute};

#[derive(Debug, Clone)]
struct Target {
    peer: Peer,
    priority: u32,
    weight: u32,
}

#[derive(Debug, Clone)]
struct Connector {
    id: String,
    termination_cidrs: Vec<IpNet>,
    termination_enabled: Option<bool>,
    origination: Vec<Target>,
    origination_enabled: Option<bool>,
}

/// Routes calls from the configuration.
#[derive(Debug)]
pub struct ConfigRouter {
    domain: String,
    connectors: HashMap<String, Connector>,
    carrier_sources: Vec<IpNet>,
    carrier_trunks: Vec<Target>,
    numbers: HashMap<String, String>,
    rng: SmallRng,
}

fn target(r: &OriginationRoute) -> Option<Target> {
    let ip: IpAddr = r.host.parse().ok()?;
    Some(Target {
        peer: Peer::new(r.protocol.transport(), SocketAddr::new(ip, r.port)),
        priority: r.priority,
        weight: r.weight,
    })
}

impl ConfigRouter {
    pub fn new(cfg: &Config, seed: u64) -> ConfigRouter {
        let connectors = cfg
            .voice_connectors
            .iter()
            .map(|vc| {
                let c = Connector {
                    id: vc.id.clone(),
                    termination_cidrs: vc
                        .termination
                        .iter()
                        .flat_map(|t| t.cidr_allowed_list.iter().filter_map(|c| c.parse().ok()))
                        .collect(),
                    termination_enabled: vc.termination.as_ref().map(|t| !t.disabled),
                    origination: vc
                        .origination
                        .iter()
                        .flat_map(|o| o.routes.iter().filter_map(target))
                        .collect(),
                    origination_enabled: vc.origination.as_ref().map(|o| !o.disabled),
                };
                (vc.id.to_ascii_lowercase(), c)
            })
            .collect();
        ConfigRouter {
            domain: cfg.sip.domain.to_ascii_lowercase(),
            connectors,
            carrier_sources: cfg
                .carriers
                .iter()
                .flat_map(|c| c.source_cidrs.iter().filter_map(|s| s.parse().ok()))
                .collect(),
            carrier_trunks: cfg
                .carriers
                .iter()
                .flat_map(|c| c.trunks.iter().filter_map(target))
                .collect(),
            numbers: cfg
                .phone_numbers
                .iter()
                .map(|p| (p.e164.clone(), p.voice_connector_id.to_ascii_lowercase()))
                .collect(),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Lowest priority value first; weighted random among equals.
    fn pick(&mut self, targets: &[Target]) -> Option<Target> {
        let best = targets.iter().map(|t| t.priority).min()?;
        let group: Vec<&Target> = targets.iter().filter(|t| t.priority == best).collect();
        let total: u32 = group.iter().map(|t| t.weight).sum();
        let mut n = self.rng.gen_range(0..total.max(1));
        for t in &group {
            if n < t.weight {
                return Some((*t).clone());
            }
            n -= t.weight;
        }
        group.first().map(|t| (*t).clone())
    }

    /// The voice connector whose outbound host name is `host`.
    fn connector_for_host(&self, host: &str) -> Option<&Connector> {
        let host = host.to_ascii_lowercase();
        let id = host.strip_suffix(&self.domain)?.strip_suffix('.')?;
        self.connectors.get(id)
    }
}

/// The dialled number from a Request-URI user part: `+` and digits, user parameters dropped.
fn called_number(uri: &Uri) -> Option<String> {
    let user = uri.user.as_deref()?.split(';').next()?;
    let digits: String = user.chars().filter(|c| !matches!(c, '-' | '.' | '(' | ')')).collect();
    Some(digits)
}

fn request_uri(number: &str, target: &Peer) -> Uri {
    let mut u = Uri::sip(Some(number), &target.addr.ip().to_string(), Some(target.addr.port()));
    if target.addr.is_ipv6() {
        u.host = format!("[{}]", target.addr.ip());
    }
    if target.transport != sip::Transport::Udp {
        u.params.set("transport", Some(&target.transport.as_str().to_ascii_lowercase()));
    }
    u
}

impl Router for ConfigRouter {
    fn route(&mut self, invite: &Request, source: &Peer) -> Result<Route, Reject> {
        let number = called_number(&invite.uri)
            .ok_or_else(|| Reject::new(404, "no user part in the Request-URI"))?;
        if let Some(vc) = self.connector_for_host(&invite.uri.host).cloned() {
            match vc.termination_enabled {
                None => {
                    return Err(Reject::new(
                        403,
                        format!("voice connector {} has no termination", vc.id),
                    ))
                }
                Some(false) => {
                    return Err(Reject::new(
                        403,
                        format!("termination disabled on voice connector {}", vc.id),
                    ))
                }
                Some(true) => {}
            }
            if !vc.termination_cidrs.iter().any(|n| n.contains(&source.addr.ip())) {
                return Err(Reject::new(
                    403,
                    format!("source {} not in CidrAllowedList", source.addr.ip()),
                ));
            }
            if !crate::config::is_e164(&number) {
                return Err(Reject::new(484, format!("called number {number} is not E.164")));
            }
            let trunks = self.carrier_trunks.clone();
            let t = self
                .pick(&trunks)
                .ok_or_else(|| Reject::new(503, "no carrier trunk configured"))?;
            return Ok(Route {
                request_uri: request_uri(&number, &t.peer),
                target: t.peer,
                direction: Direction::Outbound,
                voice_connector_id: vc.id.clone(),
            });
        }
        if !self.carrier_sources.iter().any(|n| n.contains(&source.addr.ip())) {
            return Err(Reject::new(
                403,
                format!(
                    "{} is neither a voice connector host name nor from a carrier",
                    invite.uri.host
                ),
            ));
        }
        let vc_id = self.numbers.get(&number).cloned().ok_or_else(|| {
            Reject::new(404, format!("{number} is not associated with a voice connector"))
        })?;
        let vc = self
            .connectors
            .get(&vc_id)
            .cloned()
            .ok_or_else(|| Reject::new(404, "voice connector not found"))?;
        match vc.origination_enabled {
            None => {
                return Err(Reject::new(
                    403,
                    format!("voice connector {} has no origination", vc.id),
                ))
            }
            Some(false) => {
                return Err(Reject::new(
                    403,
                    format!("origination disabled on voice connector {}", vc.id),
                ))
            }
            Some(true) => {}
        }
        let t =
            self.pick(&vc.origination).ok_or_else(|| Reject::new(480, "no origination route"))?;
        Ok(Route {
            request_uri: request_uri(&number, &t.peer),
            target: t.peer,
            direction: Direction::Inbound,
            voice_connector_id: vc.id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, EMBEDDED_DEFAULT};
    use sip::{Message, Transport};

    fn router() -> ConfigRouter {
        ConfigRouter::new(&Config::parse(EMBEDDED_DEFAULT, "x").unwrap().config, 1)
    }

    fn invite(uri: &str) -> Request {
        let s = format!("INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <{uri}>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n\r\n");
        match Message::parse(s.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn src(ip: &str) -> Peer {
        Peer::new(Transport::Udp, SocketAddr::new(ip.parse().unwrap(), 5090))
    }

    #[test]
    fn termination_goes_to_the_carrier() {
        let r = router()
            .route(
                &invite("sip:+12065550101@ABCDEF1GHIJ2KLMNO3PQR4.voiceconnector.local"),
                &src("127.0.0.1"),
            )
            .unwrap();
        assert_eq!(r.direction, Direction::Outbound);
        assert_eq!(r.target.addr, "127.0.0.1:5080".parse().unwrap());
        assert_eq!(r.request_uri.to_string(), "sip:+12065550101@127.0.0.1:5080");
        assert_eq!(r.voice_connector_id, "abcdef1ghij2klmno3pqr4");
    }

    #[test]
    fn termination_refusals() {
        let e = router()
            .route(
                &invite("sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local"),
                &src("10.1.2.3"),
            )
            .unwrap_err();
        assert_eq!(e.status, 403);
        let e = router()
            .route(
                &invite("sip:2065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local"),
                &src("127.0.0.1"),
            )
            .unwrap_err();
        assert_eq!(e.status, 484);
    }

    #[test]
    fn origination_by_called_number() {
        let r = router().route(&invite("sip:+12065550100@127.0.0.1"), &src("127.0.0.2")).unwrap();
        assert_eq!(r.direction, Direction::Inbound);
        assert_eq!(r.target.addr, "127.0.0.1:5090".parse().unwrap());
        let e =
            router().route(&invite("sip:+12065550199@127.0.0.1"), &src("127.0.0.2")).unwrap_err();
        assert_eq!(e.status, 404);
        let e =
            router().route(&invite("sip:+12065550100@127.0.0.1"), &src("192.0.2.1")).unwrap_err();
        assert_eq!(e.status, 403);
    }
}
