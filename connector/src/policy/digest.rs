//! Termination digest authentication (RFC 3261 §22.3 with RFC 7616/8760 SHA-256): `407 Proxy
//! Authentication Required` with one challenge per configured algorithm, `qop="auth"`;
//! nonces carry their issue time and an HMAC-SHA256 tag, so they need no table to be checked
//! and expire by themselves (a correct answer to an expired nonce gets a new challenge with
//! `stale=true`).
//!
//! Replays are refused: the digest `uri` must be the request's Request-URI (a captured answer
//! cannot start a call to another number) or name voicegw itself without a user (SIPp puts
//! `sip:<gateway address>` there; such an answer is still bound to its nonce), and each nonce accepts each nonce count once, in
//! increasing order (RFC 7616 §3.4; an answer without `qop` has no count and is accepted once).
//! The table of used nonces holds only nonces that authenticated a request, lives as long as a
//! nonce, and is capped at [`MAX_USED_NONCES`]. Unknown users and wrong passwords get the
//! same answer after the same work, and a nonce is checked before the user is looked up, so a
//! 407 tells nothing about which user names exist.

use std::collections::HashMap;

use hmac::{Hmac, Mac};

use md5::Md5;
use sha2::{Digest as _, Sha256};
use sip::message::{Digest, HeaderName, Request};
use sip::Instant;

use crate::config::Credential;

/// The digest algorithms offered, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Md5,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    /// `MD5` or `SHA-256` (configuration names).
    pub fn from_name(s: &str) -> Option<Algorithm> {
        Algorithm::parse(Some(s))
    }

    fn parse(s: Option<&str>) -> Option<Algorithm> {
        match s {
            None => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            Some(_) => None,
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated as this user.
    Authenticated(String),
    /// Challenge again; `stale` when only the nonce had expired. `why` is for the Warning.
    Challenge { stale: bool, why: &'static str },
}

/// Most nonces remembered as used at once (see the module docs).
pub const MAX_USED_NONCES: usize = 65_536;

/// What replaces the password of a user that does not exist, so the work is the same.
const NO_SUCH_USER: &str = "\u{0}no such user\u{0}";

/// Nonces that authenticated a request: nonce → (issue time ms, highest nonce count used).
#[derive(Debug, Clone, Default)]
pub struct UsedNonces(HashMap<String, (u64, u32)>);

/// Nonce maker and checker. The secret and the used nonces live across configuration reloads
/// so nonces stay good and replays stay refused.
#[derive(Debug, Clone)]
pub struct DigestAuth {
    secret: [u8; 32],
    lifetime_ms: u64,
    algorithms: Vec<Algorithm>,
    used: UsedNonces,
    /// Challenges issued: part of each nonce, so two challenges in one millisecond differ.
    issued: u64,
    /// Host names and addresses of voicegw itself (lower case), for user-less digest uris.
    own_hosts: Vec<String>,
}

impl DigestAuth {
    /// Offers SHA-256 then MD5; see [`DigestAuth::set_algorithms`].
    pub fn new(secret: [u8; 32], lifetime_secs: u64) -> DigestAuth {
        DigestAuth {
            secret,
            lifetime_ms: lifetime_secs.saturating_mul(1000),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            used: UsedNonces::default(),
            issued: 0,
            own_hosts: Vec::new(),
        }
    }

    /// voicegw's own host names and addresses: a digest `uri` without a user naming one of
    /// them is accepted for any Request-URI (`*`: any host, when listening on every address).
    pub fn set_own_hosts(&mut self, hosts: impl IntoIterator<Item = String>) {
        self.own_hosts = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
    }

    /// Carries the used-nonce table over from the router a reload replaces.
    pub fn with_used(mut self, used: UsedNonces) -> DigestAuth {
        self.used = used;
        self
    }

    /// The used-nonce table, for the router built by a configuration reload.
    pub fn used(&self) -> UsedNonces {
        self.used.clone()
    }

    /// Records that `nonce` (issued at `issued_ms`) authenticated a request with count `nc`;
    /// false when that count (or a higher one) was used already.
    fn note_use(&mut self, nonce: &str, issued_ms: u64, nc: u32, now_ms: u64) -> bool {
        let table = &mut self.used.0;
        if let Some((_, highest)) = table.get_mut(nonce) {
            if nc <= *highest {
                return false;
            }
            *highest = nc;
            return true;
        }
        if table.len() >= MAX_USED_NONCES {
            let lifetime = self.lifetime_ms;
            table.retain(|_, (issued, _)| now_ms.saturating_sub(*issued) <= lifetime);
            if table.len() >= MAX_USED_NONCES {
                // Still full of live nonces: forget the oldest (its holder gets a new challenge).
                if let Some(oldest) =
                    table.iter().min_by_key(|(_, (issued, _))| *issued).map(|(k, _)| k.clone())
                {
                    table.remove(&oldest);
                }
            }
        }
        table.insert(nonce.to_string(), (issued_ms, nc));
        true
    }

    /// The algorithms challenged, in order (answers with any supported one are accepted).
    pub fn set_algorithms(&mut self, algorithms: Vec<Algorithm>) {
        if !algorithms.is_empty() {
            self.algorithms = algorithms;
        }
    }

    /// The nonce secret, for the router built by a configuration reload.
    pub fn secret(&self) -> [u8; 32] {
        self.secret
    }

    /// `<issue time ms>.<challenge number>.<HMAC-SHA256 of both, 128 bits>`, in hex.
    fn nonce_at(&self, issued_ms: u64, number: u64) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC takes a key of any length");
        mac.update(&issued_ms.to_be_bytes());
        mac.update(&number.to_be_bytes());
        format!("{issued_ms:x}.{number:x}.{}", &hex(&mac.finalize().into_bytes())[..32])
    }

    /// Whether `nonce` is ours (then its issue time), and whether it is still fresh at `now`.
    fn check_nonce(&self, nonce: &str, now: Instant) -> Option<(u64, bool)> {
        let mut parts = nonce.splitn(3, '.');
        let (ts, number) = (parts.next()?, parts.next()?);
        if ts.len() > 16 || number.len() > 16 {
            return None;
        }
        let issued = u64::from_str_radix(ts, 16).ok()?;
        let number = u64::from_str_radix(number, 16).ok()?;
        if !constant_time_eq(self.nonce_at(issued, number).as_bytes(), nonce.as_bytes()) {
            return None;
        }
        let now_ms = now.since_origin().as_millis() as u64;
        Some((issued, now_ms >= issued && now_ms - issued <= self.lifetime_ms))
    }

    /// `Proxy-Authenticate` values for `realm`, one per algorithm in the configured order
    /// (RFC 8760 §2.4).
    pub fn challenges(&mut self, realm: &str, now: Instant, stale: bool) -> Vec<String> {
        self.issued = self.issued.wrapping_add(1);
        let nonce = self.nonce_at(now.since_origin().as_millis() as u64, self.issued);
        self.algorithms
            .iter()
            .map(|a| {
                let mut c = format!(
                    "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    a.name()
                );
                if stale {
                    c.push_str(", stale=true");
                }
                c
            })
            .collect()
    }

    /// Checks the request's `Proxy-Authorization` headers against `credentials`, recording the
    /// nonce count of an accepted answer.
    pub fn verify(
        &mut self,
        req: &Request,
        realm: &str,
        credentials: &[Credential],
        now: Instant,
    ) -> Outcome {
        let mut outcome = Outcome::Challenge { stale: false, why: "credentials required" };
        for value in req.headers.get_all(&HeaderName::ProxyAuthorization) {
            let Ok(d) = Digest::parse(value) else {
                outcome = Outcome::Challenge { stale: false, why: "malformed Proxy-Authorization" };
                continue;
            };
            if !d.scheme.eq_ignore_ascii_case("Digest") || d.get("realm") != Some(realm) {
                continue;
            }
            let (Some(user), Some(nonce), Some(uri), Some(response)) =
                (d.get("username"), d.get("nonce"), d.get("uri"), d.get("response"))
            else {
                outcome = Outcome::Challenge { stale: false, why: "incomplete credentials" };
                continue;
            };
            let Some(alg) = Algorithm::parse(d.get("algorithm")) else {
                outcome = Outcome::Challenge { stale: false, why: "unsupported digest algorithm" };
                continue;
            };
            // The nonce first: its answer must not depend on whether the user exists.
            let Some((issued, fresh)) = self.check_nonce(nonce, now) else {
                outcome = Outcome::Challenge { stale: false, why: "unknown nonce" };
                continue;
            };
            if !uri_is_request_uri(uri, &req.uri, &self.own_hosts) {
                outcome =
                    Outcome::Challenge { stale: false, why: "digest uri is not the Request-URI" };
                continue;
            }
            // An unknown user costs the same hashing as a known one.
            let password = credentials
                .iter()
                .find(|c| c.username == user)
                .map(|c| c.password.as_str())
                .unwrap_or(NO_SUCH_USER);
            let ha1 = alg.hash(&format!("{user}:{realm}:{password}"));
            let ha2 = alg.hash(&format!("{}:{uri}", req.method.as_str()));
            let (nc, expected) = match d.get("qop") {
                Some(q) if q.eq_ignore_ascii_case("auth") => {
                    let (Some(nc), Some(cnonce)) = (d.get("nc"), d.get("cnonce")) else {
                        outcome = Outcome::Challenge {
                            stale: false,
                            why: "qop=auth without nc or cnonce",
                        };
                        continue;
                    };
                    let count = if nc.len() == 8 { u32::from_str_radix(nc, 16).ok() } else { None };
                    let Some(count) = count.filter(|c| *c > 0) else {
                        outcome = Outcome::Challenge { stale: false, why: "malformed nonce count" };
                        continue;
                    };
                    (count, alg.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")))
                }
                Some(_) => {
                    outcome = Outcome::Challenge { stale: false, why: "unsupported qop" };
                    continue;
                }
                None => (0, alg.hash(&format!("{ha1}:{nonce}:{ha2}"))),
            };
            let known = credentials.iter().any(|c| c.username == user);
            let matches =
                constant_time_eq(expected.as_bytes(), response.to_ascii_lowercase().as_bytes());
            if !(known && matches) {
                outcome = Outcome::Challenge { stale: false, why: "wrong user name or password" };
                continue;
            }
            if !fresh {
                return Outcome::Challenge { stale: true, why: "nonce expired" };
            }
            let now_ms = now.since_origin().as_millis() as u64;
            if !self.note_use(nonce, issued, nc, now_ms) {
                // A replayed answer: the real client gets a fresh nonce without asking its user.
                return Outcome::Challenge { stale: true, why: "nonce count already used" };
            }
            return Outcome::Authenticated(user.to_string());
        }
        outcome
    }
}

/// Whether the digest `uri` names the request's Request-URI (RFC 3261 §22.4, RFC 7616 §3.4.6):
/// the same text, the same URI once parsed, or a URI without a user part whose host is the
/// Request-URI's or one of voicegw's own.
fn uri_is_request_uri(uri: &str, request_uri: &sip::Uri, own_hosts: &[String]) -> bool {
    if uri == request_uri.to_string() {
        return true;
    }
    let Ok(u) = sip::Uri::parse(uri) else { return false };
    if &u == request_uri {
        return true;
    }
    let host = u.host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    u.user.is_none()
        && (host.eq_ignore_ascii_case(&request_uri.host)
            || own_hosts.iter().any(|h| *h == host || h == "*"))
}

fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip::Message;
    use std::time::Duration;

    const REALM: &str = "voiceconnector.local";

    fn creds() -> Vec<Credential> {
        vec![Credential { username: "pbx1".into(), password: "not-a-real-secret".into() }]
    }

    fn invite(auth: Option<String>) -> Request {
        let mut s = "INVITE sip:+12065550101@vc.voiceconnector.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: 1\r\nCSeq: 2 INVITE\r\n".to_string();
        if let Some(a) = auth {
            s += &format!("Proxy-Authorization: {a}\r\n");
        }
        s += "\r\n";
        match Message::parse(s.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn param<'a>(challenge: &'a str, name: &str) -> &'a str {
        let d = Digest::parse(challenge).unwrap();
        let v = d.get(name).unwrap().to_string();
        let i = challenge.find(&v).unwrap();
        &challenge[i..i + v.len()]
    }

    /// A client's answer computed independently (RFC 7616 §3.4.1 formulas).
    fn answer(challenge: &str, user: &str, pass: &str, alg: Algorithm) -> String {
        let nonce = param(challenge, "nonce");
        let uri = "sip:+12065550101@vc.voiceconnector.local";
        let (nc, cnonce) = ("00000001", "0a4f113b");
        let ha1 = alg.hash(&format!("{user}:{REALM}:{pass}"));
        let ha2 = alg.hash(&format!("INVITE:{uri}"));
        let resp = alg.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        format!("Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"{cnonce}\"", alg.name())
    }

    #[test]
    fn md5_matches_rfc_2617_example() {
        // RFC 2617 §3.5: Mufasa / Circle Of Life.
        let ha1 = Algorithm::Md5.hash("Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = Algorithm::Md5.hash("GET:/dir/index.html");
        let r = Algorithm::Md5.hash(&format!(
            "{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}"
        ));
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn sha256_matches_rfc_7616_example() {
        // RFC 7616 §3.9.1: Mufasa / Circle of Life, SHA-256.
        let ha1 = Algorithm::Sha256.hash("Mufasa:http-auth@example.org:Circle of Life");
        let ha2 = Algorithm::Sha256.hash("GET:/dir/index.html");
        let r = Algorithm::Sha256.hash(&format!("{ha1}:7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v:00000001:f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:{ha2}"));
        assert_eq!(r, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    }

    #[test]
    fn challenge_then_right_wrong_and_stale_answers() {
        let mut auth = DigestAuth::new([7; 32], 300);
        let t0 = Instant::ZERO + Duration::from_secs(10);
        assert!(matches!(
            auth.verify(&invite(None), REALM, &creds(), t0),
            Outcome::Challenge { stale: false, .. }
        ));
        let mut ch = auth.challenges(REALM, t0, false);
        assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));
        assert_ne!(
            param(&ch[0], "nonce"),
            param(&auth.challenges(REALM, t0, false)[0], "nonce"),
            "two challenges in one millisecond have different nonces"
        );
        assert!(ch
            .iter()
            .all(|c| c.contains("qop=\"auth\"") && c.contains(&format!("realm=\"{REALM}\""))));
        for (i, alg) in [Algorithm::Sha256, Algorithm::Md5].into_iter().enumerate() {
            if i > 0 {
                ch = auth.challenges(REALM, t0, false); // a new call, a new challenge
            }
            let ok = answer(&ch[i], "pbx1", "not-a-real-secret", alg);
            let t = t0 + Duration::from_secs(5);
            assert_eq!(
                auth.verify(&invite(Some(ok.clone())), REALM, &creds(), t),
                Outcome::Authenticated("pbx1".into())
            );
            // The same answer again (a captured Proxy-Authorization replayed): refused.
            assert_eq!(
                auth.verify(&invite(Some(ok.clone())), REALM, &creds(), t),
                Outcome::Challenge { stale: true, why: "nonce count already used" }
            );
            // The same answer after the nonce expired: stale.
            let late = t0 + Duration::from_secs(301);
            assert_eq!(
                auth.verify(&invite(Some(ok)), REALM, &creds(), late),
                Outcome::Challenge { stale: true, why: "nonce expired" }
            );
            let bad = answer(&ch[i], "pbx1", "wrong", alg);
            assert!(matches!(
                auth.verify(&invite(Some(bad)), REALM, &creds(), t),
                Outcome::Challenge { stale: false, .. }
            ));
            let who = answer(&ch[i], "nobody", "not-a-real-secret", alg);
            assert!(matches!(
                auth.verify(&invite(Some(who)), REALM, &creds(), t),
                Outcome::Challenge { stale: false, .. }
            ));
        }
        // A nonce from another secret (another gateway, or forged) is refused.
        let other = DigestAuth::new([8; 32], 300).challenges(REALM, t0, false);
        let forged = answer(&other[1], "pbx1", "not-a-real-secret", Algorithm::Md5);
        assert_eq!(
            auth.verify(&invite(Some(forged)), REALM, &creds(), t0),
            Outcome::Challenge { stale: false, why: "unknown nonce" }
        );
    }

    fn answer_with(challenge: &str, uri: &str, nc: &str, user: &str) -> String {
        let nonce = param(challenge, "nonce");
        let alg = Algorithm::Md5;
        let ha1 = alg.hash(&format!("{user}:{REALM}:not-a-real-secret"));
        let ha2 = alg.hash(&format!("INVITE:{uri}"));
        let resp = alg.hash(&format!("{ha1}:{nonce}:{nc}:c1:auth:{ha2}"));
        format!("Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"c1\"")
    }

    #[test]
    fn replays_to_other_numbers_and_old_counts_are_refused() {
        let mut auth = DigestAuth::new([7; 32], 300);
        let t = Instant::ZERO + Duration::from_secs(10);
        let ch = auth.challenges(REALM, t, false);
        let uri = "sip:+12065550101@vc.voiceconnector.local";
        // An answer computed for another Request-URI (another number) does not start this call.
        let other =
            answer_with(&ch[1], "sip:+12065550199@vc.voiceconnector.local", "00000001", "pbx1");
        assert_eq!(
            auth.verify(&invite(Some(other)), REALM, &creds(), t),
            Outcome::Challenge { stale: false, why: "digest uri is not the Request-URI" }
        );
        // Counts must increase per nonce: 1 and 2 pass, 2 again and 1 again do not.
        for (nc, ok) in [
            ("00000001", true),
            ("00000002", true),
            ("00000002", false),
            ("00000001", false),
            ("00000005", true),
        ] {
            let got = auth.verify(
                &invite(Some(answer_with(&ch[1], uri, nc, "pbx1"))),
                REALM,
                &creds(),
                t,
            );
            assert_eq!(matches!(got, Outcome::Authenticated(_)), ok, "nc {nc}: {got:?}");
        }
        // A user-less uri naming voicegw itself (what SIPp sends) is accepted; another host not.
        auth.set_own_hosts(["127.0.0.1".to_string()]);
        let ours = answer_with(&ch[1], "sip:127.0.0.1:5060", "00000006", "pbx1");
        assert!(matches!(
            auth.verify(&invite(Some(ours)), REALM, &creds(), t),
            Outcome::Authenticated(_)
        ));
        let theirs = answer_with(&ch[1], "sip:192.0.2.1:5060", "00000007", "pbx1");
        assert!(matches!(
            auth.verify(&invite(Some(theirs)), REALM, &creds(), t),
            Outcome::Challenge { .. }
        ));
        // A reloaded router keeps what was used.
        let mut reloaded = DigestAuth::new(auth.secret(), 300).with_used(auth.used());
        let again = answer_with(&ch[1], uri, "00000006", "pbx1");
        assert!(matches!(
            reloaded.verify(&invite(Some(again)), REALM, &creds(), t),
            Outcome::Challenge { .. }
        ));
    }

    #[test]
    fn unknown_users_and_wrong_passwords_look_the_same() {
        let mut auth = DigestAuth::new([7; 32], 300);
        let t = Instant::ZERO + Duration::from_secs(10);
        let ch = auth.challenges(REALM, t, false);
        let uri = "sip:+12065550101@vc.voiceconnector.local";
        let nobody = auth.verify(
            &invite(Some(answer_with(&ch[1], uri, "00000001", "nobody"))),
            REALM,
            &creds(),
            t,
        );
        let wrong = auth.verify(
            &invite(Some(answer(&ch[1], "pbx1", "wrong", Algorithm::Md5))),
            REALM,
            &creds(),
            t,
        );
        assert_eq!(nobody, wrong);
        // With a nonce that is not ours, the user name makes no difference either.
        let fake =
            "Digest realm=\"voiceconnector.local\", nonce=\"1.00\", algorithm=MD5, qop=\"auth\"";
        let a = auth.verify(
            &invite(Some(answer_with(fake, uri, "00000001", "nobody"))),
            REALM,
            &creds(),
            t,
        );
        let b = auth.verify(
            &invite(Some(answer_with(fake, uri, "00000001", "pbx1"))),
            REALM,
            &creds(),
            t,
        );
        assert_eq!(a, b);
    }
}
