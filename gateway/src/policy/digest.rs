//! Termination digest authentication (RFC 3261 §22.3 with RFC 7616/8760 SHA-256): `407 Proxy
//! Authentication Required` with one challenge per configured algorithm, `qop="auth"`;
//! nonces carry their issue time and a keyed hash, so they need no table and expire by
//! themselves (a correct answer to an expired nonce gets a new challenge with `stale=true`).

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

/// Nonce maker and checker. The secret lives across configuration reloads so nonces stay good.
#[derive(Debug, Clone)]
pub struct DigestAuth {
    secret: [u8; 32],
    lifetime_ms: u64,
    algorithms: Vec<Algorithm>,
}

impl DigestAuth {
    /// Offers SHA-256 then MD5; see [`DigestAuth::set_algorithms`].
    pub fn new(secret: [u8; 32], lifetime_secs: u64) -> DigestAuth {
        DigestAuth {
            secret,
            lifetime_ms: lifetime_secs.saturating_mul(1000),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
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

    fn nonce_at(&self, issued_ms: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(issued_ms.to_be_bytes());
        format!("{issued_ms:x}.{}", &hex(&h.finalize())[..32])
    }

    /// Whether `nonce` is ours, and whether it is still fresh at `now`.
    fn check_nonce(&self, nonce: &str, now: Instant) -> Option<bool> {
        let (ts, _) = nonce.split_once('.')?;
        let issued = u64::from_str_radix(ts, 16).ok()?;
        if !constant_time_eq(self.nonce_at(issued).as_bytes(), nonce.as_bytes()) {
            return None;
        }
        let now_ms = now.since_origin().as_millis() as u64;
        Some(now_ms >= issued && now_ms - issued <= self.lifetime_ms)
    }

    /// `Proxy-Authenticate` values for `realm`, one per algorithm in the configured order
    /// (RFC 8760 §2.4).
    pub fn challenges(&self, realm: &str, now: Instant, stale: bool) -> Vec<String> {
        let nonce = self.nonce_at(now.since_origin().as_millis() as u64);
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

    /// Checks the request's `Proxy-Authorization` headers against `credentials`.
    pub fn verify(
        &self,
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
            let Some(cred) = credentials.iter().find(|c| c.username == user) else {
                outcome = Outcome::Challenge { stale: false, why: "wrong user name or password" };
                continue;
            };
            let Some(fresh) = self.check_nonce(nonce, now) else {
                outcome = Outcome::Challenge { stale: false, why: "unknown nonce" };
                continue;
            };
            let ha1 = alg.hash(&format!("{user}:{realm}:{}", cred.password));
            let ha2 = alg.hash(&format!("{}:{uri}", req.method.as_str()));
            let expected = match d.get("qop") {
                Some(q) if q.eq_ignore_ascii_case("auth") => {
                    let (Some(nc), Some(cnonce)) = (d.get("nc"), d.get("cnonce")) else {
                        outcome = Outcome::Challenge {
                            stale: false,
                            why: "qop=auth without nc or cnonce",
                        };
                        continue;
                    };
                    alg.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
                }
                Some(_) => {
                    outcome = Outcome::Challenge { stale: false, why: "unsupported qop" };
                    continue;
                }
                None => alg.hash(&format!("{ha1}:{nonce}:{ha2}")),
            };
            if !constant_time_eq(expected.as_bytes(), response.to_ascii_lowercase().as_bytes()) {
                outcome = Outcome::Challenge { stale: false, why: "wrong user name or password" };
                continue;
            }
            if !fresh {
                return Outcome::Challenge { stale: true, why: "nonce expired" };
            }
            return Outcome::Authenticated(user.to_string());
        }
        outcome
    }
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
        let auth = DigestAuth::new([7; 32], 300);
        let t0 = Instant::ZERO + Duration::from_secs(10);
        assert!(matches!(
            auth.verify(&invite(None), REALM, &creds(), t0),
            Outcome::Challenge { stale: false, .. }
        ));
        let ch = auth.challenges(REALM, t0, false);
        assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));
        assert!(ch
            .iter()
            .all(|c| c.contains("qop=\"auth\"") && c.contains(&format!("realm=\"{REALM}\""))));
        for (i, alg) in [Algorithm::Sha256, Algorithm::Md5].into_iter().enumerate() {
            let ok = answer(&ch[i], "pbx1", "not-a-real-secret", alg);
            let t = t0 + Duration::from_secs(5);
            assert_eq!(
                auth.verify(&invite(Some(ok.clone())), REALM, &creds(), t),
                Outcome::Authenticated("pbx1".into())
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
}
