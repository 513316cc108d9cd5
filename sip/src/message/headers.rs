use std::fmt;

/// A header name. Well-known names (and their compact forms, RFC 3261 §7.3.3) are recognised
/// case-insensitively; others keep their spelling and compare case-insensitively.
#[derive(Debug, Clone)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    Route,
    RecordRoute,
    ContentType,
    ContentLength,
    ContentEncoding,
    ContentDisposition,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    Allow,
    Accept,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    AuthenticationInfo,
    Expires,
    UserAgent,
    Server,
    Warning,
    RetryAfter,
    Subject,
    Event,
    ReferTo,
    ReferredBy,
    SessionExpires,
    AllowEvents,
    Other(String),
}

/// (name, canonical spelling, compact form)
const KNOWN: &[(HeaderName, &str, Option<&str>)] = &[
    (HeaderName::Via, "Via", Some("v")),
    (HeaderName::From, "From", Some("f")),
    (HeaderName::To, "To", Some("t")),
    (HeaderName::CallId, "Call-ID", Some("i")),
    (HeaderName::CSeq, "CSeq", None),
    (HeaderName::Contact, "Contact", Some("m")),
    (HeaderName::MaxForwards, "Max-Forwards", None),
    (HeaderName::Route, "Route", None),
    (HeaderName::RecordRoute, "Record-Route", None),
    (HeaderName::ContentType, "Content-Type", Some("c")),
    (HeaderName::ContentLength, "Content-Length", Some("l")),
    (HeaderName::ContentEncoding, "Content-Encoding", Some("e")),
    (HeaderName::ContentDisposition, "Content-Disposition", None),
    (HeaderName::Supported, "Supported", Some("k")),
    (HeaderName::Require, "Require", None),
    (HeaderName::ProxyRequire, "Proxy-Require", None),
    (HeaderName::Unsupported, "Unsupported", None),
    (HeaderName::Allow, "Allow", None),
    (HeaderName::Accept, "Accept", None),
    (HeaderName::Authorization, "Authorization", None),
    (HeaderName::ProxyAuthorization, "Proxy-Authorization", None),
    (HeaderName::WwwAuthenticate, "WWW-Authenticate", None),
    (HeaderName::ProxyAuthenticate, "Proxy-Authenticate", None),
    (HeaderName::AuthenticationInfo, "Authentication-Info", None),
    (HeaderName::Expires, "Expires", None),
    (HeaderName::UserAgent, "User-Agent", None),
    (HeaderName::Server, "Server", None),
    (HeaderName::Warning, "Warning", None),
    (HeaderName::RetryAfter, "Retry-After", None),
    (HeaderName::Subject, "Subject", Some("s")),
    (HeaderName::Event, "Event", Some("o")),
    (HeaderName::ReferTo, "Refer-To", Some("r")),
    (HeaderName::ReferredBy, "Referred-By", Some("b")),
    (HeaderName::SessionExpires, "Session-Expires", Some("x")),
    (HeaderName::AllowEvents, "Allow-Events", Some("u")),
];

impl HeaderName {
    /// Recognises full and compact names, case-insensitively.
    pub fn parse(name: &str) -> HeaderName {
        for (h, full, compact) in KNOWN {
            if full.eq_ignore_ascii_case(name)
                || compact.is_some_and(|c| c.eq_ignore_ascii_case(name))
            {
                return h.clone();
            }
        }
        HeaderName::Other(name.to_string())
    }

    /// The canonical (long-form) spelling.
    pub fn as_str(&self) -> &str {
        if let HeaderName::Other(s) = self {
            return s;
        }
        KNOWN
            .iter()
            .find(|(h, _, _)| std::mem::discriminant(h) == std::mem::discriminant(self))
            .map(|(_, full, _)| *full)
            .unwrap_or("")
    }

    /// Whether the header's grammar is a comma-separated list that may be split into one
    /// value per header line (RFC 3261 §7.3.1). Authorization-family headers and others whose
    /// values contain commas are not.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::AllowEvents
        )
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}
impl Eq for HeaderName {}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header line (one value for list headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: String,
}

/// The headers of a message, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0.iter().find(|h| &h.name == name).map(|h| h.value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |h| &h.name == name).map(|h| h.value.as_str())
    }

    /// True when any list value of `name` equals `token` (case-insensitive), e.g. `Require: 100rel`.
    pub fn has_token(&self, name: &HeaderName, token: &str) -> bool {
        self.get_all(name).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn contains(&self, name: &HeaderName) -> bool {
        self.0.iter().any(|h| &h.name == name)
    }

    /// Appends a header line.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header { name, value: value.into() });
    }

    /// Inserts a header line first (e.g. a new topmost Via).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.insert(0, Header { name, value: value.into() });
    }

    /// Replaces every value of `name` with one value, keeping the position of the first.
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(i) => {
                self.0[i].value = value;
                let mut seen = 0usize;
                self.0.retain(|h| {
                    if h.name == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.0.push(Header { name, value }),
        }
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }

    /// Removes the first value of `name` and returns it.
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<String> {
        let i = self.0.iter().position(|h| &h.name == name)?;
        Some(self.0.remove(i).value)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits a header value at commas that are not inside quotes or angle brackets.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    super::params::split_unquoted(value, ',', true)
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("CALL-id"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("l").as_str(), "Content-Length");
        assert_eq!(HeaderName::parse("X-Foo"), HeaderName::parse("x-foo"));
        assert_eq!(HeaderName::parse("X-Foo").as_str(), "X-Foo");
    }

    #[test]
    fn list_split_respects_quotes_and_brackets() {
        let v = split_list(r#""Doe, John" <sip:a@b;x=1,2>, <sip:c@d> ,sip:e@f"#);
        assert_eq!(v, vec![r#""Doe, John" <sip:a@b;x=1,2>"#, "<sip:c@d>", "sip:e@f"]);
    }

    #[test]
    fn set_replaces_all_values() {
        let mut h = Headers::new();
        h.push(HeaderName::Via, "a");
        h.push(HeaderName::To, "t");
        h.push(HeaderName::Via, "b");
        h.set(HeaderName::Via, "c");
        assert_eq!(h.get_all(&HeaderName::Via).collect::<Vec<_>>(), vec!["c"]);
        assert_eq!(h.len(), 2);
    }
}
