//! Voice-connector policy: which voice connector a new call belongs to, whether it may pass,
//! and where it goes (formats.md §3, voice-connector.md §1–§4, §9).
//!
//! **Termination** (customer PBX → carrier): the Request-URI host is `<VoiceConnectorId>.<sip
//! domain>`. Checks, in order: termination configured and enabled (else 403); with
//! `RequireEncryption`, TLS transport (else 488); source in `CidrAllowedList` when one is set
//! (403); digest credentials when set (407, both checks when both are set); `CpsLimit` (503 +
//! `Retry-After`, `Throttles`); the dialled number — `911`/`933` rewritten to the DNIS numbers,
//! anything else must be E.164 (484) in a country of `CallingRegions` (403). The call goes to
//! the carrier trunks by priority then weight, with failover; `DefaultPhoneNumber` replaces the
//! caller ID.
//!
//! **Origination** (carrier → customer PBX): a request from a carrier's `SourceCidrs`; the
//! called number selects its voice connector, or its group whose members are tried by
//! `Priority`; each voice connector's `Routes` by priority then weight, with failover; TLS
//! towards routes when the voice connector requires encryption.

pub mod cps;
pub mod digest;
pub mod numbering;
pub mod route_order;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use sip::b2bua::{Direction, Reject, RejectCause, Route, Router, Target, Verdict};
use sip::message::Uri;
use sip::{Instant, Peer, Request, Transport};

use self::cps::CpsLimiter;
use self::digest::{DigestAuth, Outcome};
use self::numbering::Emergency;
use self::route_order::{order, Candidate};
use crate::config::{ConnectorNetworks, Credential, Protocol, RouteAddr, Validated};

/// The last OPTIONS ping per voice connector: `TerminationHealth {Timestamp, Source}`.
pub type HealthBook = Arc<Mutex<HashMap<String, TerminationHealth>>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminationHealth {
    /// When the OPTIONS ping came (the wall time is the HTTP layer's to find).
    pub at: Instant,
    pub source: String,
}

impl TerminationHealth {
    /// The body of `GET /voice-connectors/{id}/termination/health`, with the ping's wall time.
    pub fn to_json(&self, at: std::time::SystemTime) -> String {
        let timestamp = crate::timefmt::iso8601(at);
        serde_json::json!({"TerminationHealth": {"Timestamp": timestamp, "Source": self.source}})
            .to_string()
    }
}

#[derive(Debug)]
struct TerminationPolicy {
    disabled: bool,
    cidrs: Vec<IpNet>,
    calling_regions: Vec<String>,
    default_phone_number: Option<String>,
    cps_limit: u32,
}

#[derive(Debug)]
struct Connector {
    id: String,
    require_encryption: bool,
    /// The customer's PBX/SBC is inside the trust domain (RFC 3325): its identity headers are
    /// relayed.
    trust_asserted_identity: bool,
    termination: Option<TerminationPolicy>,
    credentials: Vec<Credential>,
    /// `None`: no origination; `Some((disabled, routes))`.
    origination: Option<(bool, Vec<RouteAddr>)>,
    /// (EmergencyPhoneNumber, TestPhoneNumber) of the first DNIS entry.
    emergency: Option<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
enum Association {
    Connector(String),
    Group(String),
}

/// Routes calls from the configuration.
#[derive(Debug)]
pub struct ConfigRouter {
    domain: String,
    realm: String,
    auth: DigestAuth,
    connectors: HashMap<String, Connector>,
    /// Group id (lower case) → (voice connector id, priority).
    groups: HashMap<String, Vec<(String, u32)>>,
    carrier_sources: Vec<IpNet>,
    carrier_trunks: Vec<(Peer, u32, u32)>,
    numbers: HashMap<String, Association>,
    cps: HashMap<String, CpsLimiter>,
    rng: SmallRng,
    health: HealthBook,
}

fn peer_of(r: &RouteAddr, encrypted: bool) -> Peer {
    // With RequireEncryption, TCP routes mean SIP over TLS (voice-connector.md §2.1).
    let transport = if encrypted { Transport::Tls } else { r.protocol.transport() };
    Peer::new(transport, SocketAddr::new(r.ip, r.port))
}

impl ConfigRouter {
    /// A router for `cfg` with a fresh nonce secret and health book.
    pub fn new(cfg: &Validated, seed: u64) -> ConfigRouter {
        ConfigRouter::build(cfg, seed, rand::random(), HealthBook::default(), HashMap::new())
    }

    /// A router for a reloaded `cfg` that keeps what must outlive a reload: the nonce secret
    /// (outstanding challenges stay answerable), the health book and the CPS buckets.
    pub fn reloaded(&self, cfg: &Validated, seed: u64) -> ConfigRouter {
        let mut r = ConfigRouter::build(
            cfg,
            seed,
            self.auth.secret(),
            self.health.clone(),
            self.cps.clone(),
        );
        r.auth = r.auth.with_used(self.auth.used());
        r
    }

    fn build(
        validated: &Validated,
        seed: u64,
        secret: [u8; 32],
        health: HealthBook,
        mut cps: HashMap<String, CpsLimiter>,
    ) -> ConfigRouter {
        let cfg = &validated.config;
        let networks = &validated.networks;
        let no_networks = ConnectorNetworks::default();
        let connectors: HashMap<String, Connector> = cfg
            .voice_connectors
            .iter()
            .map(|vc| {
                let own =
                    networks.connectors.get(&vc.id.to_ascii_lowercase()).unwrap_or(&no_networks);
                let c = Connector {
                    id: vc.id.clone(),
                    require_encryption: vc.require_encryption,
                    trust_asserted_identity: vc.trust_asserted_identity,
                    termination: vc.termination.as_ref().map(|t| TerminationPolicy {
                        disabled: t.disabled,
                        cidrs: own.termination_cidrs.clone(),
                        calling_regions: t.calling_regions.clone(),
                        default_phone_number: t.default_phone_number.clone(),
                        cps_limit: t.cps_limit,
                    }),
                    credentials: vc.credentials.clone(),
                    origination: vc
                        .origination
                        .as_ref()
                        .map(|o| (o.disabled, own.origination_routes.clone())),
                    emergency: vc.emergency.as_ref().and_then(|e| {
                        e.dnis.first().map(|d| {
                            (d.emergency_phone_number.clone(), d.test_phone_number.clone())
                        })
                    }),
                };
                (vc.id.to_ascii_lowercase(), c)
            })
            .collect();
        // Buckets of voice connectors that are still there keep their state under the new limit.
        cps.retain(|id, bucket| match connectors.get(id).and_then(|c| c.termination.as_ref()) {
            Some(t) => {
                bucket.set_limit(t.cps_limit);
                true
            }
            None => false,
        });
        let (realm, auth) = digest_auth(validated, secret);
        ConfigRouter {
            domain: cfg.sip.domain.to_ascii_lowercase(),
            realm,
            auth,
            groups: cfg
                .groups
                .iter()
                .map(|g| {
                    let items = g
                        .items
                        .iter()
                        .map(|i| (i.voice_connector_id.to_ascii_lowercase(), i.priority))
                        .collect();
                    (g.id.to_ascii_lowercase(), items)
                })
                .collect(),
            connectors,
            carrier_sources: networks.carrier_sources.clone(),
            carrier_trunks: networks
                .carrier_trunks
                .iter()
                .map(|t| (peer_of(t, t.protocol == Protocol::Tls), t.priority, t.weight))
                .collect(),
            numbers: cfg
                .phone_numbers
                .iter()
                .filter_map(|p| {
                    let a = match (&p.voice_connector_id, &p.voice_connector_group_id) {
                        (Some(v), _) => Association::Connector(v.to_ascii_lowercase()),
                        (None, Some(g)) => Association::Group(g.to_ascii_lowercase()),
                        (None, None) => return None,
                    };
                    Some((p.e164.clone(), a))
                })
                .collect(),
            cps,
            rng: SmallRng::seed_from_u64(seed),
            health,
        }
    }

    /// The termination health records, shared with the HTTP listener.
    pub fn health(&self) -> HealthBook {
        self.health.clone()
    }

    /// The voice connector id named by an outbound host name `<id>.<domain>`.
    fn connector_id_for_host(&self, host: &str) -> Option<String> {
        let host = host.to_ascii_lowercase();
        let id = host.strip_suffix(&self.domain)?.strip_suffix('.')?;
        Some(id.to_string())
    }

    fn termination(
        &mut self,
        vc_key: &str,
        invite: &Request,
        source: &Peer,
        now: Instant,
    ) -> Verdict {
        let mut auth_user = None;
        let result = self.check_termination(vc_key, invite, source, now, &mut auth_user);
        Verdict {
            result,
            voice_connector_id: self.connectors.get(vc_key).map(|c| c.id.clone()),
            direction: Some(Direction::Outbound),
            auth_user,
        }
    }

    /// The termination rules in order (module docs); `auth_user` is set once digest passes.
    fn check_termination(
        &mut self,
        vc_key: &str,
        invite: &Request,
        source: &Peer,
        now: Instant,
        auth_user: &mut Option<String>,
    ) -> Result<Route, Reject> {
        let refuse = |status, w: String| Err(Reject::new(status, w));
        let Some(vc) = self.connectors.get(vc_key) else {
            return refuse(404, format!("no voice connector {vc_key}"));
        };
        let Some(term) = vc.termination.as_ref() else {
            return refuse(403, format!("voice connector {} has no termination", vc.id));
        };
        if term.disabled {
            return refuse(403, format!("termination disabled on voice connector {}", vc.id));
        }
        if vc.require_encryption && source.transport != Transport::Tls {
            return refuse(
                488,
                format!("voice connector {} requires encryption: use TLS and SRTP", vc.id),
            );
        }
        if !term.cidrs.is_empty() && !term.cidrs.iter().any(|n| n.contains(&source.addr.ip())) {
            return refuse(403, format!("source {} not in CidrAllowedList", source.addr.ip()));
        }
        if !vc.credentials.is_empty() {
            match self.auth.verify(invite, &self.realm, &vc.credentials, now) {
                Outcome::Authenticated(user) => *auth_user = Some(user),
                Outcome::Challenge { stale, why } => {
                    let mut r = Reject::new(407, why);
                    r.challenges = self.auth.challenges(&self.realm, now, stale);
                    r.cause = RejectCause::Unauthenticated;
                    return Err(r);
                }
            }
        }
        let dialled = called_number(&invite.uri).unwrap_or_default();
        let number = match (numbering::emergency(&dialled), &vc.emergency) {
            (Some(_), None) => {
                return refuse(
                    403,
                    format!("emergency calling is not configured on voice connector {}", vc.id),
                )
            }
            (Some(Emergency::Call), Some((e, _))) => e.clone(),
            (Some(Emergency::Test), Some((_, Some(t)))) => t.clone(),
            (Some(Emergency::Test), Some((_, None))) => {
                return refuse(
                    404,
                    format!("no TestPhoneNumber on voice connector {} for {dialled}", vc.id),
                )
            }
            (None, _) if !crate::config::is_e164(&dialled) => {
                return refuse(
                    484,
                    format!("called number `{dialled}` is not E.164 (+ and country code)"),
                )
            }
            (None, _) => match numbering::country_of(&dialled) {
                Some(c) if term.calling_regions.contains(&c) => dialled,
                Some(c) => {
                    return refuse(403, format!("destination country {c} is not in CallingRegions"))
                }
                None => {
                    return refuse(
                        404,
                        format!("{dialled} is not a number of any country's numbering plan"),
                    )
                }
            },
        };
        let (limit, caller_id, id) =
            (term.cps_limit, term.default_phone_number.clone(), vc.id.clone());
        let bucket =
            self.cps.entry(vc_key.to_string()).or_insert_with(|| CpsLimiter::new(limit, now));
        if !bucket.try_take(now) {
            let mut r = Reject::new(503, format!("over CpsLimit {limit} of voice connector {id}"));
            r.retry_after = Some(1);
            r.cause = RejectCause::Throttled;
            return Err(r);
        }
        let trunks = self
            .carrier_trunks
            .iter()
            .map(|&(item, priority, weight)| Candidate { item, priority, weight })
            .collect();
        let targets: Vec<Target> = order(trunks, &mut self.rng)
            .into_iter()
            .map(|peer| Target {
                request_uri: request_uri(&number, &peer),
                peer,
                voice_connector_id: id.clone(),
            })
            .collect();
        if targets.is_empty() {
            return refuse(503, "no carrier trunk configured".into());
        }
        Ok(Route {
            targets,
            direction: Direction::Outbound,
            caller_id,
            customer_asserts_identity: vc.trust_asserted_identity,
        })
    }

    fn origination(&mut self, number: &str) -> Verdict {
        let result = self.check_origination(number);
        let voice_connector_id = match &result {
            Ok(route) => Some(route.first().voice_connector_id.clone()),
            // The number's voice connector (a group's first member) when it is known.
            Err(_) => match self.numbers.get(number) {
                Some(Association::Connector(id)) => self.connectors.get(id).map(|c| c.id.clone()),
                Some(Association::Group(g)) => self
                    .groups
                    .get(g)
                    .and_then(|items| items.iter().min_by_key(|(_, p)| *p))
                    .and_then(|(id, _)| self.connectors.get(id))
                    .map(|c| c.id.clone()),
                None => None,
            },
        };
        Verdict { result, voice_connector_id, direction: Some(Direction::Inbound), auth_user: None }
    }

    /// The number's voice connector (or its group's members by Priority) and each one's routes
    /// in order; `403` when none has origination enabled.
    fn check_origination(&mut self, number: &str) -> Result<Route, Reject> {
        let members: Vec<String> = match self.numbers.get(number) {
            None => {
                return Err(Reject::new(
                    404,
                    format!("{number} is not associated with a voice connector"),
                ))
            }
            Some(Association::Connector(id)) => vec![id.clone()],
            Some(Association::Group(g)) => {
                let items = self.groups.get(g).cloned().unwrap_or_default();
                let c = items
                    .into_iter()
                    .map(|(item, priority)| Candidate { item, priority, weight: 1 })
                    .collect();
                order(c, &mut self.rng)
            }
        };
        let mut targets = Vec::new();
        let mut why = String::new();
        for vc in members.iter().filter_map(|key| self.connectors.get(key)) {
            let routes = match &vc.origination {
                None => {
                    why = format!("voice connector {} has no origination", vc.id);
                    continue;
                }
                Some((true, _)) => {
                    why = format!("origination disabled on voice connector {}", vc.id);
                    continue;
                }
                Some((false, routes)) => routes,
            };
            let c = routes
                .iter()
                .map(|r| {
                    let tls = vc.require_encryption || r.protocol == Protocol::Tls;
                    Candidate { item: peer_of(r, tls), priority: r.priority, weight: r.weight }
                })
                .collect();
            for peer in order(c, &mut self.rng) {
                targets.push(Target {
                    request_uri: request_uri(number, &peer),
                    peer,
                    voice_connector_id: vc.id.clone(),
                });
            }
        }
        if targets.is_empty() {
            return Err(Reject::new(403, why));
        }
        // The PBX of the first voice connector tried answers for the customer.
        let trusted = targets
            .first()
            .and_then(|t| self.connectors.get(&t.voice_connector_id.to_ascii_lowercase()))
            .is_some_and(|c| c.trust_asserted_identity);
        Ok(Route {
            targets,
            direction: Direction::Inbound,
            caller_id: None,
            customer_asserts_identity: trusted,
        })
    }
}

/// The dialled number from a Request-URI user part: visual separators and user parameters
/// dropped.
fn called_number(uri: &Uri) -> Option<String> {
    let user = uri.user.as_deref()?.split(';').next()?;
    Some(user.chars().filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' ')).collect())
}

fn request_uri(number: &str, target: &Peer) -> Uri {
    let mut u = Uri::sip(Some(number), &target.addr.ip().to_string(), Some(target.addr.port()));
    if target.addr.is_ipv6() {
        u.host = format!("[{}]", target.addr.ip());
    }
    if target.transport != Transport::Udp {
        u.params.set("transport", Some(&target.transport.as_str().to_ascii_lowercase()));
    }
    u
}

impl Router for ConfigRouter {
    fn route(&mut self, invite: &Request, source: &Peer, now: Instant) -> Verdict {
        if let Some(key) = self.connector_id_for_host(&invite.uri.host) {
            return self.termination(&key, invite, source, now);
        }
        if !self.carrier_sources.iter().any(|n| n.contains(&source.addr.ip())) {
            return Verdict {
                result: Err(Reject::new(
                    403,
                    format!(
                        "{} is neither a voice connector host name nor from a carrier",
                        invite.uri.host
                    ),
                )),
                voice_connector_id: None,
                direction: None,
                auth_user: None,
            };
        }
        let number = called_number(&invite.uri).unwrap_or_default();
        self.origination(&number)
    }

    fn options(&mut self, options: &Request, source: &Peer, now: Instant) {
        let ids: Vec<String> = match self.connector_id_for_host(&options.uri.host) {
            Some(key) => self.connectors.get(&key).map(|c| c.id.clone()).into_iter().collect(),
            None => self
                .connectors
                .values()
                .filter(|c| {
                    c.termination
                        .as_ref()
                        .is_some_and(|t| t.cidrs.iter().any(|n| n.contains(&source.addr.ip())))
                })
                .map(|c| c.id.clone())
                .collect(),
        };
        if ids.is_empty() {
            return;
        }
        let record = TerminationHealth { at: now, source: source.addr.ip().to_string() };
        let mut book = self.health.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            book.insert(id, record.clone());
        }
    }
}

/// The digest realm and the nonce maker/checker `validated` configures (`[sip]`
/// `digest_realm`, `digest_nonce_secs`, `digest_algorithms`, the listening addresses as
/// voicegw's own hosts), with nonce secret `secret`. Termination and the recording server each
/// have one.
pub fn digest_auth(validated: &Validated, secret: [u8; 32]) -> (String, DigestAuth) {
    let cfg = &validated.config;
    let realm = if cfg.sip.digest_realm.is_empty() {
        cfg.sip.domain.clone()
    } else {
        cfg.sip.digest_realm.clone()
    };
    let mut auth = DigestAuth::new(secret, cfg.sip.digest_nonce_secs);
    let listen = [validated.listen_udp, validated.listen_tcp, validated.listen_tls];
    auth.set_own_hosts(
        listen
            .into_iter()
            .flatten()
            // Listening on every address: any of this host's addresses may be named.
            .map(|a| if a.ip().is_unspecified() { "*".into() } else { a.ip().to_string() })
            .chain([cfg.sip.domain.clone()]),
    );
    auth.set_algorithms(
        cfg.sip.digest_algorithms.iter().filter_map(|a| digest::Algorithm::from_name(a)).collect(),
    );
    (realm, auth)
}

#[cfg(test)]
mod tests;
