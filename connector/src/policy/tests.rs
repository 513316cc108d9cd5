use std::time::Duration;

use md5::{Digest as _, Md5};
use sip::{Message, Transport};

use super::*;
use crate::config::Config;

const VC1: &str = "abcdef1ghij2klmno3pqr4";
const VC2: &str = "zyxwvu1ghij2klmno3pqr4";
const VC3: &str = "qqqqqq1ghij2klmno3pqr4";

fn config() -> String {
    format!(
        r#"
[[VoiceConnectors]]
VoiceConnectorId = "{VC1}"
Credentials = [{{ Username = "pbx1", Password = "fake-password-1" }}]
[VoiceConnectors.Termination]
CpsLimit = 2
CallingRegions = ["US", "CA"]
CidrAllowedList = ["127.0.0.0/8"]
DefaultPhoneNumber = "+12065550111"
[VoiceConnectors.Origination]
Routes = [
  {{ Host = "127.0.0.1", Port = 5090, Protocol = "UDP", Priority = 1, Weight = 1 }},
  {{ Host = "127.0.0.2", Port = 5090, Protocol = "TCP", Priority = 2, Weight = 1 }},
]
[VoiceConnectors.EmergencyCallingConfiguration]
DNIS = [{{ EmergencyPhoneNumber = "+12065550911", TestPhoneNumber = "+12065550933", CallingCountry = "US" }}]

[[VoiceConnectors]]
VoiceConnectorId = "{VC2}"
RequireEncryption = true
[VoiceConnectors.Termination]
CallingRegions = ["US"]
CidrAllowedList = ["127.0.0.0/8"]
[VoiceConnectors.Origination]
Routes = [{{ Host = "127.0.0.3", Port = 5061, Protocol = "TCP" }}]

[[VoiceConnectors]]
VoiceConnectorId = "{VC3}"
[VoiceConnectors.Termination]
Disabled = true
[VoiceConnectors.Origination]
Disabled = true

[[VoiceConnectorGroups]]
VoiceConnectorGroupId = "group-1"
VoiceConnectorItems = [
  {{ VoiceConnectorId = "{VC3}", Priority = 1 }},
  {{ VoiceConnectorId = "{VC1}", Priority = 2 }},
]

[[Carriers]]
Name = "carrier"
SourceCidrs = ["127.0.0.128/25"]
Trunks = [
  {{ Host = "127.0.0.10", Port = 5080, Priority = 1, Weight = 1 }},
  {{ Host = "127.0.0.11", Port = 5080, Priority = 2, Weight = 1 }},
]

[[PhoneNumbers]]
E164PhoneNumber = "+12065550100"
VoiceConnectorId = "{VC1}"
[[PhoneNumbers]]
E164PhoneNumber = "+12065550200"
VoiceConnectorGroupId = "group-1"
[[PhoneNumbers]]
E164PhoneNumber = "+12065550300"
VoiceConnectorId = "{VC2}"
[[PhoneNumbers]]
E164PhoneNumber = "+12065550400"
VoiceConnectorId = "{VC3}"
"#
    )
}

fn router() -> ConfigRouter {
    ConfigRouter::new(&Config::parse(&config(), "test").unwrap(), 1)
}

fn invite(uri: &str, auth: Option<&str>) -> Request {
    let mut s = format!("INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:+12065550100@127.0.0.1>;tag=1\r\nTo: <{uri}>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n");
    if let Some(a) = auth {
        s += &format!("Proxy-Authorization: {a}\r\n");
    }
    s += "\r\n";
    match Message::parse(s.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn src(ip: &str, transport: Transport) -> Peer {
    Peer::new(transport, SocketAddr::new(ip.parse().unwrap(), 5090))
}

fn term_uri(number: &str, vc: &str) -> String {
    format!("sip:{number}@{vc}.voiceconnector.local")
}

fn md5(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// An MD5 answer to the MD5 challenge of a 407.
fn answer(rej: &Reject, uri: &str, user: &str, pass: &str) -> String {
    let ch = rej.challenges.iter().find(|c| c.contains("algorithm=MD5")).unwrap();
    let d = sip::message::Digest::parse(ch).unwrap();
    let (realm, nonce) = (d.get("realm").unwrap(), d.get("nonce").unwrap());
    let ha1 = md5(&format!("{user}:{realm}:{pass}"));
    let ha2 = md5(&format!("INVITE:{uri}"));
    let resp = md5(&format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
    format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"abc\"")
}

/// Runs a termination call through the challenge with the right password.
fn authenticated(r: &mut ConfigRouter, number: &str, t: Instant) -> Verdict {
    let uri = term_uri(number, VC1);
    let first = r.route(&invite(&uri, None), &src("127.0.0.1", Transport::Udp), t);
    let rej = first.result.unwrap_err();
    assert_eq!(rej.status, 407);
    let auth = answer(&rej, &uri, "pbx1", "fake-password-1");
    r.route(&invite(&uri, Some(&auth)), &src("127.0.0.1", Transport::Udp), t)
}

fn status(v: &Verdict) -> u16 {
    match &v.result {
        Ok(_) => 200,
        Err(r) => r.status,
    }
}

#[test]
fn termination_with_credentials_goes_to_carriers_in_priority_order() {
    let mut r = router();
    let v = authenticated(&mut r, "+12065550101", Instant::ZERO);
    assert_eq!(v.auth_user.as_deref(), Some("pbx1"));
    assert_eq!(v.voice_connector_id.as_deref(), Some(VC1));
    let route = v.result.unwrap();
    let hops: Vec<String> = route.targets.iter().map(|t| t.request_uri.to_string()).collect();
    assert_eq!(hops, ["sip:+12065550101@127.0.0.10:5080", "sip:+12065550101@127.0.0.11:5080"]);
    assert_eq!(route.caller_id.as_deref(), Some("+12065550111"));
    assert_eq!(route.direction, Direction::Outbound);
}

#[test]
fn termination_refusals_have_their_status_codes() {
    let t = Instant::ZERO;
    let mut r = router();
    // Wrong source (before credentials are even asked for).
    let v =
        r.route(&invite(&term_uri("+12065550101", VC1), None), &src("10.0.0.1", Transport::Udp), t);
    assert_eq!(status(&v), 403);
    // Wrong password: challenged again.
    let uri = term_uri("+12065550101", VC1);
    let rej =
        r.route(&invite(&uri, None), &src("127.0.0.1", Transport::Udp), t).result.unwrap_err();
    let bad = answer(&rej, &uri, "pbx1", "wrong");
    let v = r.route(&invite(&uri, Some(&bad)), &src("127.0.0.1", Transport::Udp), t);
    let rej = v.result.unwrap_err();
    assert_eq!((rej.status, rej.cause), (407, RejectCause::Unauthenticated));
    assert_eq!(rej.challenges.len(), 2);
    // Country outside CallingRegions (GB), allowed country (CA), not E.164, unknown country.
    let v = authenticated(&mut r, "+442079460000", t);
    let rej = v.result.unwrap_err();
    assert_eq!(rej.status, 403);
    assert!(rej.warning.contains("GB"), "{}", rej.warning);
    let mut r = router();
    assert_eq!(status(&authenticated(&mut r, "+15145550100", t)), 200);
    assert_eq!(status(&authenticated(&mut r, "2065550101", t + Duration::from_secs(5))), 484);
    // Encryption required over UDP: 488; over TLS it passes.
    let v = r.route(
        &invite(&term_uri("+12065550101", VC2), None),
        &src("127.0.0.1", Transport::Udp),
        t,
    );
    assert_eq!(status(&v), 488);
    let v = r.route(
        &invite(&term_uri("+12065550101", VC2), None),
        &src("127.0.0.1", Transport::Tls),
        t,
    );
    assert_eq!(status(&v), 200);
    // Disabled termination; unknown voice connector.
    let v = r.route(
        &invite(&term_uri("+12065550101", VC3), None),
        &src("127.0.0.1", Transport::Udp),
        t,
    );
    assert_eq!(status(&v), 403);
    let v = r.route(
        &invite(&term_uri("+12065550101", "nosuchvc00000000000000"), None),
        &src("127.0.0.1", Transport::Udp),
        t,
    );
    assert_eq!(status(&v), 404);
}

#[test]
fn cps_limit_throttles_with_503_and_retry_after() {
    let t = Instant::ZERO;
    let mut r = router();
    assert_eq!(status(&authenticated(&mut r, "+12065550101", t)), 200);
    assert_eq!(status(&authenticated(&mut r, "+12065550102", t)), 200);
    let rej = authenticated(&mut r, "+12065550103", t).result.unwrap_err();
    assert_eq!((rej.status, rej.retry_after, rej.cause), (503, Some(1), RejectCause::Throttled));
    // Half a second later one more call fits (2 per second).
    assert_eq!(status(&authenticated(&mut r, "+12065550104", t + Duration::from_millis(500))), 200);
    // A reload keeps the bucket: no fresh burst.
    let mut r2 = r.reloaded(&Config::parse(&config(), "test").unwrap(), 2);
    let rej =
        authenticated(&mut r2, "+12065550105", t + Duration::from_millis(500)).result.unwrap_err();
    assert_eq!(rej.status, 503);
}

#[test]
fn emergency_numbers_are_rewritten_to_the_dnis() {
    let t = Instant::ZERO;
    let mut r = router();
    let route = authenticated(&mut r, "911", t).result.unwrap();
    assert_eq!(route.first().request_uri.user.as_deref(), Some("+12065550911"));
    let route = authenticated(&mut r, "933", t).result.unwrap();
    assert_eq!(route.first().request_uri.user.as_deref(), Some("+12065550933"));
    // No emergency configuration on VC2: refused, not sent to the carrier as "911".
    let v = r.route(&invite(&term_uri("911", VC2), None), &src("127.0.0.1", Transport::Tls), t);
    assert_eq!(status(&v), 403);
}

#[test]
fn origination_by_number_group_and_encryption() {
    let t = Instant::ZERO;
    let mut r = router();
    let carrier = src("127.0.0.200", Transport::Udp);
    let v = r.route(&invite("sip:+12065550100@127.0.0.1", None), &carrier, t);
    let route = v.result.unwrap();
    let hops: Vec<Peer> = route.targets.iter().map(|t| t.peer).collect();
    assert_eq!(
        hops,
        [
            Peer::new(Transport::Udp, "127.0.0.1:5090".parse().unwrap()),
            Peer::new(Transport::Tcp, "127.0.0.2:5090".parse().unwrap()),
        ]
    );
    // The group's first member (VC3) has origination disabled: its second member takes it.
    let v = r.route(&invite("sip:+12065550200@127.0.0.1", None), &carrier, t);
    assert_eq!(v.voice_connector_id.as_deref(), Some(VC1));
    let route = v.result.unwrap();
    assert!(route.targets.iter().all(|t| t.voice_connector_id == VC1));
    // Encryption required: TCP routes are reached over TLS.
    let route = r.route(&invite("sip:+12065550300@127.0.0.1", None), &carrier, t).result.unwrap();
    assert_eq!(route.first().peer.transport, Transport::Tls);
    assert_eq!(
        route.first().request_uri.to_string(),
        "sip:+12065550300@127.0.0.3:5061;transport=tls"
    );
    // Disabled origination; unassociated number; a source that is no carrier.
    assert_eq!(status(&r.route(&invite("sip:+12065550400@127.0.0.1", None), &carrier, t)), 403);
    assert_eq!(status(&r.route(&invite("sip:+12065550999@127.0.0.1", None), &carrier, t)), 404);
    assert_eq!(
        status(&r.route(
            &invite("sip:+12065550100@127.0.0.1", None),
            &src("127.0.0.5", Transport::Udp),
            t
        )),
        403
    );
}

#[test]
fn options_pings_are_recorded_as_termination_health() {
    let mut r = router();
    let opt = |uri: &str| {
        let s = format!("OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.7;branch=z9hG4bK1\r\nFrom: <sip:p@127.0.0.7>;tag=1\r\nTo: <{uri}>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\n\r\n");
        match Message::parse(s.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    };
    r.options(
        &opt(&format!("sip:{VC2}.voiceconnector.local")),
        &src("127.0.0.7", Transport::Udp),
        Instant::ZERO,
    );
    let book = r.health();
    let h = book.lock().unwrap().get(VC2).cloned().unwrap();
    assert_eq!(h.source, "127.0.0.7");
    assert_eq!(h.at, Instant::ZERO);
    assert!(!book.lock().unwrap().contains_key(VC1));
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
    let json: serde_json::Value = serde_json::from_str(&h.to_json(at)).unwrap();
    assert_eq!(json["TerminationHealth"]["Source"], "127.0.0.7");
    assert_eq!(json["TerminationHealth"]["Timestamp"], "2023-11-14T22:13:20.123Z");
}
