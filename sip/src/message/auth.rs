//! The Authorization family (RFC 3261 §20.7, §20.27, §20.28, §20.44; RFC 7616 for SHA-256):
//! `Digest` challenges (WWW-/Proxy-Authenticate) and credentials (Authorization,
//! Proxy-Authorization) as an ordered list of `name=value` parameters.

use std::fmt;

use super::ParseError;

/// `<scheme> name=value, name="quoted value", …`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The scheme as written, usually `Digest`.
    pub scheme: String,
    /// Parameters in order; quoted values are stored unquoted (escapes resolved) with a flag.
    pub params: Vec<DigestParam>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestParam {
    pub name: String,
    pub value: String,
    pub quoted: bool,
}

impl Digest {
    pub fn new(scheme: &str) -> Digest {
        Digest { scheme: scheme.to_string(), params: Vec::new() }
    }

    pub fn parse(s: &str) -> Result<Digest, ParseError> {
        let bad = || ParseError::header("Authorization", s);
        let s = s.trim();
        let (scheme, rest) = s.split_once(char::is_whitespace).ok_or_else(bad)?;
        if !super::method::is_token(scheme) {
            return Err(bad());
        }
        let mut params = Vec::new();
        let mut rest = rest.trim_start();
        while !rest.is_empty() {
            let eq = rest.find('=').ok_or_else(bad)?;
            let name = rest[..eq].trim();
            if !super::method::is_token(name) {
                return Err(bad());
            }
            let after = rest[eq + 1..].trim_start();
            let (value, quoted, remaining) = if let Some(q) = after.strip_prefix('"') {
                let mut v = String::new();
                let mut escaped = false;
                let mut end = None;
                for (i, c) in q.char_indices() {
                    if escaped {
                        v.push(c);
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        end = Some(i);
                        break;
                    } else {
                        v.push(c);
                    }
                }
                let end = end.ok_or_else(bad)?;
                (v, true, &q[end + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), false, &after[end..])
            };
            params.push(DigestParam { name: name.to_string(), value, quoted });
            let remaining = remaining.trim_start();
            rest = match remaining.strip_prefix(',') {
                Some(r) => r.trim_start(),
                None if remaining.is_empty() => "",
                None => return Err(bad()),
            };
        }
        Ok(Digest { scheme: scheme.to_string(), params })
    }

    /// A parameter's value (case-insensitive name).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|p| p.name.eq_ignore_ascii_case(name)).map(|p| p.value.as_str())
    }

    /// Appends a parameter; `quoted` for values that RFC 3261 writes quoted (realm, nonce, …).
    pub fn push(&mut self, name: &str, value: &str, quoted: bool) {
        self.params.push(DigestParam { name: name.into(), value: value.into(), quoted });
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        for (i, p) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            if p.quoted {
                write!(f, "{}=\"{}\"", p.name, p.value.replace('\\', "\\\\").replace('"', "\\\""))?;
            } else {
                write!(f, "{}={}", p.name, p.value)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip() {
        let h = r#"Digest username="pbx", realm="voicegw", nonce="abc\"def", uri="sip:+1@vc.local", response="6629fae49393a05397450978507c4ef1", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="0a4f113b""#;
        let d = Digest::parse(h).unwrap();
        assert_eq!(d.scheme, "Digest");
        assert_eq!(d.get("USERNAME"), Some("pbx"));
        assert_eq!(d.get("nonce"), Some("abc\"def"));
        assert_eq!(d.get("qop"), Some("auth"));
        assert_eq!(d.get("nc"), Some("00000001"));
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    }

    #[test]
    fn challenge_built_and_malformed_rejected() {
        let mut c = Digest::new("Digest");
        c.push("realm", "voicegw", true);
        c.push("nonce", "n1", true);
        c.push("algorithm", "MD5", false);
        c.push("qop", "auth", true);
        assert_eq!(
            c.to_string(),
            r#"Digest realm="voicegw", nonce="n1", algorithm=MD5, qop="auth""#
        );
        assert!(Digest::parse("Digest").is_err());
        assert!(Digest::parse(r#"Digest realm="unterminated"#).is_err());
        assert!(Digest::parse("Digest realm").is_err());
        assert!(Digest::parse(r#"Digest a="x" b="y""#).is_err());
    }
}
