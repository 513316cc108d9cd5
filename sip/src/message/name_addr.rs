use std::fmt;

use super::{Params, ParseError, Uri};

/// `["display"] <uri> *(;param)` or `uri *(;param)` — From, To, Contact, Route, Record-Route
/// (RFC 3261 §20.10). In the form without angle brackets, parameters after the URI are header
/// parameters (§20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr { display: None, uri, params: Params::default() }
    }

    pub fn parse(s: &str) -> Result<NameAddr, ParseError> {
        let s = s.trim();
        let bad = || ParseError::header("name-addr", s);
        let (display, rest) = if let Some(q) = s.strip_prefix('"') {
            let end = closing_quote(q).ok_or_else(bad)?;
            (Some(q[..end].to_string()), q[end + 1..].trim_start())
        } else if let Some(i) = s.find('<') {
            let d = s[..i].trim();
            (if d.is_empty() { None } else { Some(d.to_string()) }, &s[i..])
        } else {
            (None, s)
        };
        if let Some(r) = rest.strip_prefix('<') {
            let end = r.find('>').ok_or_else(bad)?;
            let uri = Uri::parse(&r[..end])?;
            let params = Params::parse(&r[end + 1..]);
            return Ok(NameAddr { display, uri, params });
        }
        if display.is_some() {
            return Err(bad());
        }
        let (u, p) = match rest.find(';') {
            Some(i) => (&rest[..i], Params::parse(&rest[i..])),
            None => (rest, Params::default()),
        };
        Ok(NameAddr { display: None, uri: Uri::parse(u)?, params: p })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    pub fn set_tag(&mut self, tag: &str) {
        self.params.set("tag", Some(tag));
    }
}

fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some(i);
        }
    }
    None
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            // Display names are kept as received (escapes included) and always printed quoted.
            write!(f, "\"{d}\" ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let a = NameAddr::parse(r#""Alice \"A\"" <sip:alice@a.example;transport=tcp>;tag=123"#)
            .unwrap();
        assert_eq!(a.display.as_deref(), Some(r#"Alice \"A\""#));
        assert_eq!(a.uri.transport_param(), Some("tcp"));
        assert_eq!(a.tag(), Some("123"));
        assert_eq!(NameAddr::parse(&a.to_string()).unwrap(), a);

        let b = NameAddr::parse("sip:bob@b.example;tag=9").unwrap();
        assert_eq!(b.tag(), Some("9"));
        assert!(b.uri.params.is_empty());
        assert_eq!(NameAddr::parse(&b.to_string()).unwrap(), b);

        let c = NameAddr::parse("Bob <sip:bob@b.example>").unwrap();
        assert_eq!(c.display.as_deref(), Some("Bob"));
        assert_eq!(NameAddr::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn malformed() {
        assert!(NameAddr::parse("<sip:a@b").is_err());
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_err());
    }
}
