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

/// Declares the well-known names once: variant, canonical spelling, lower-case spellings
/// (full, then compact if any).
macro_rules! known_headers {
    ($($variant:ident => $canonical:literal [$($lower:literal)|+]),* $(,)?) => {
        impl HeaderName {
            /// Recognises full and compact names, case-insensitively.
            pub fn parse(name: &str) -> HeaderName {
                let mut buf = [0u8; 24];
                if name.len() <= buf.len() {
                    let lower = &mut buf[..name.len()];
                    lower.copy_from_slice(name.as_bytes());
                    lower.make_ascii_lowercase();
                    match &*lower {
                        $($($lower)|+ => return HeaderName::$variant,)*
                        _ => {}
                    }
                }
                HeaderName::Other(name.to_string())
            }

            /// The canonical (long-form) spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $(HeaderName::$variant => $canonical,)*
                    HeaderName::Other(s) => s,
                }
            }
        }
    };
}

known_headers! {
    Via => "Via" [b"via" | b"v"],
    From => "From" [b"from" | b"f"],
    To => "To" [b"to" | b"t"],
    CallId => "Call-ID" [b"call-id" | b"i"],
    CSeq => "CSeq" [b"cseq"],
    Contact => "Contact" [b"contact" | b"m"],
    MaxForwards => "Max-Forwards" [b"max-forwards"],
    Route => "Route" [b"route"],
    RecordRoute => "Record-Route" [b"record-route"],
    ContentType => "Content-Type" [b"content-type" | b"c"],
    ContentLength => "Content-Length" [b"content-length" | b"l"],
    ContentEncoding => "Content-Encoding" [b"content-encoding" | b"e"],
    ContentDisposition => "Content-Disposition" [b"content-disposition"],
    Supported => "Supported" [b"supported" | b"k"],
    Require => "Require" [b"require"],
    ProxyRequire => "Proxy-Require" [b"proxy-require"],
    Unsupported => "Unsupported" [b"unsupported"],
    Allow => "Allow" [b"allow"],
    Accept => "Accept" [b"accept"],
    Authorization => "Authorization" [b"authorization"],
    ProxyAuthorization => "Proxy-Authorization" [b"proxy-authorization"],
    WwwAuthenticate => "WWW-Authenticate" [b"www-authenticate"],
    ProxyAuthenticate => "Proxy-Authenticate" [b"proxy-authenticate"],
    AuthenticationInfo => "Authentication-Info" [b"authentication-info"],
    Expires => "Expires" [b"expires"],
    UserAgent => "User-Agent" [b"user-agent"],
    Server => "Server" [b"server"],
    Warning => "Warning" [b"warning"],
    RetryAfter => "Retry-After" [b"retry-after"],
    Subject => "Subject" [b"subject" | b"s"],
    Event => "Event" [b"event" | b"o"],
    ReferTo => "Refer-To" [b"refer-to" | b"r"],
    ReferredBy => "Referred-By" [b"referred-by" | b"b"],
    SessionExpires => "Session-Expires" [b"session-expires" | b"x"],
    AllowEvents => "Allow-Events" [b"allow-events" | b"u"],
}

impl HeaderName {
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
