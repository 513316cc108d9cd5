use std::fmt;

use super::{Params, ParseError};

/// A URI scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other(String),
}

/// A SIP/SIPS URI (RFC 3261 §19.1); other schemes (`tel:`, `urn:`, …) keep their text in
/// `host` with no user, port or parameters split out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host name, IPv4 address or bracketed IPv6 reference (`[::1]`).
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
    /// The `?headers` part, without the `?`.
    pub headers: Option<String>,
}

impl Uri {
    /// A `sip:` URI.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_string),
            password: None,
            host: host.to_string(),
            port,
            params: Params::default(),
            headers: None,
        }
    }

    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        let s = s.trim();
        let bad = || ParseError::Uri(s.chars().take(80).collect());
        let (scheme, rest) = s.split_once(':').ok_or_else(bad)?;
        if scheme.is_empty()
            || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(bad());
        }
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme.to_string())
        };
        if !matches!(scheme, Scheme::Sip | Scheme::Sips) {
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                return Err(bad());
            }
            return Ok(Uri {
                scheme,
                user: None,
                password: None,
                host: rest.to_string(),
                port: None,
                params: Params::default(),
                headers: None,
            });
        }
        let (rest, headers) = match rest.split_once('?') {
            Some((r, h)) => (r, Some(h.to_string())),
            None => (rest, None),
        };
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(ui.to_string()), None),
            },
            None => (None, None),
        };
        let (hostport, params) = match hostpart.find(';') {
            Some(i) => (&hostpart[..i], Params::parse(&hostpart[i..])),
            None => (hostpart, Params::default()),
        };
        let (host, port) = split_host_port(hostport).ok_or_else(bad)?;
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
            return Err(bad());
        }
        Ok(Uri { scheme, user, password, host: host.to_string(), port, params, headers })
    }

    /// The transport named by `;transport=`, if any.
    pub fn transport_param(&self) -> Option<&str> {
        self.params.value("transport")
    }

    /// The host without IPv6 brackets, for address parsing.
    pub fn host_unbracketed(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// Splits `host[:port]`, with IPv6 references in brackets.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim();
    if s.starts_with('[') {
        let end = s.find(']')?;
        let host = &s[..=end];
        let rest = &s[end + 1..];
        if rest.is_empty() {
            return Some((host, None));
        }
        let port = rest.strip_prefix(':')?.parse().ok()?;
        return Some((host, Some(port)));
    }
    match s.rsplit_once(':') {
        // A bare IPv6 address without brackets (seen in the wild in Via): keep it whole.
        Some((h, _)) if h.contains(':') => Some((s, None)),
        Some((h, p)) => Some((h, Some(p.trim().parse().ok()?))),
        None => Some((s, None)),
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheme::Sip => f.write_str("sip"),
            Scheme::Sips => f.write_str("sips"),
            Scheme::Tel => f.write_str("tel"),
            Scheme::Other(s) => f.write_str(s),
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u =
            Uri::parse("sip:+12065550100;npdi@abc.voiceconnector.local:5080;transport=tcp;lr?X=1")
                .unwrap();
        assert_eq!(u.user.as_deref(), Some("+12065550100;npdi"));
        assert_eq!(u.host, "abc.voiceconnector.local");
        assert_eq!(u.port, Some(5080));
        assert_eq!(u.transport_param(), Some("tcp"));
        assert!(u.params.contains("lr"));
        assert_eq!(u.headers.as_deref(), Some("X=1"));
        assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn ipv6_and_other_schemes() {
        let u = Uri::parse("sips:alice:pw@[2001:db8::1]:5061").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.host_unbracketed(), "2001:db8::1");
        assert_eq!(u.port, Some(5061));
        let t = Uri::parse("tel:+12065550100;phone-context=x").unwrap();
        assert_eq!(t.to_string(), "tel:+12065550100;phone-context=x");
    }

    #[test]
    fn rejects_garbage() {
        assert!(Uri::parse("nocolon").is_err());
        assert!(Uri::parse("sip:").is_err());
        assert!(Uri::parse("sip:a@b:notaport").is_err());
        assert!(Uri::parse("sip:a b").is_err());
    }
}
