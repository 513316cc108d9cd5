use std::fmt;

use super::uri::split_host_port;
use super::{Params, ParseError};
use crate::Transport;

/// The RFC 3261 branch magic cookie.
pub(crate) const BRANCH_COOKIE: &str = "z9hG4bK";

/// One Via value: `SIP/2.0/UDP host[:port];params` (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, …).
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn new(transport: Transport, host: &str, port: u16, branch: &str) -> Via {
        let mut params = Params::default();
        params.set("branch", Some(branch));
        Via { transport: transport.as_str().into(), host: host.into(), port: Some(port), params }
    }

    pub fn parse(s: &str) -> Result<Via, ParseError> {
        let bad = || ParseError::header("Via", s);
        let s = s.trim();
        // sent-protocol: "SIP / 2.0 / UDP" with optional whitespace around the slashes.
        let mut parts = s.splitn(3, '/');
        let name = parts.next().ok_or_else(bad)?.trim();
        let version = parts.next().ok_or_else(bad)?.trim();
        let rest = parts.next().ok_or_else(bad)?.trim_start();
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(bad());
        }
        let t_end = rest.find(char::is_whitespace).ok_or_else(bad)?;
        let transport = rest[..t_end].to_string();
        let rest = rest[t_end..].trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (&rest[..i], Params::parse(&rest[i..])),
            None => (rest, Params::default()),
        };
        // Drop a trailing comment "(...)" some stacks add.
        let sent_by = sent_by.split('(').next().unwrap_or("").trim();
        let (host, port) = split_host_port(sent_by).ok_or_else(bad)?;
        if host.is_empty() || transport.is_empty() {
            return Err(bad());
        }
        Ok(Via { transport, host: host.to_string(), port, params })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// True when the branch carries the RFC 3261 magic cookie.
    pub fn is_rfc3261(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(BRANCH_COOKIE))
    }

    /// `host[:port]`, the sent-by value used in transaction matching.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host.to_ascii_lowercase(), p),
            None => self.host.to_ascii_lowercase(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let v = Via::parse("SIP / 2.0 / UDP 10.0.0.1:5060 ;branch=z9hG4bK776;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.sent_by(), "10.0.0.1:5060");
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert!(v.is_rfc3261());
        assert_eq!(Via::parse(&v.to_string()).unwrap(), v);
        let v6 = Via::parse("SIP/2.0/TCP [2001:db8::9]:5070;branch=abc").unwrap();
        assert_eq!(v6.host, "[2001:db8::9]");
        assert!(!v6.is_rfc3261());
    }

    #[test]
    fn malformed() {
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("HTTP/1.1/TCP a").is_err());
        assert!(Via::parse("garbage").is_err());
    }
}
