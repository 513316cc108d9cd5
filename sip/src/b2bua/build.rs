//! What the B2BUA copies from one leg to the other (headers, bodies, option tags); the
//! messages it makes itself come from [`crate::endpoint::build`].

pub use crate::endpoint::build::bad_request_for;
pub(crate) use crate::endpoint::build::{
    host_of, new_branch, our_contact, our_via, random_token, response_to, uuid_v4,
};
use crate::message::{HeaderName, Request, Response};

/// Headers copied from one leg to the other on requests (besides the body headers).
const RELAYED_REQUEST_HEADERS: &[&str] = &[
    "Supported",
    "Allow",
    "Accept",
    "Content-Disposition",
    "Content-Encoding",
    "Subject",
    "Reason",
    "Session-Expires",
    "Min-SE",
    "Event",
    "Subscription-State",
    "Refer-To",
    "Referred-By",
    "Privacy",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Remote-Party-ID",
    "Diversion",
    "History-Info",
    "Info-Package",
    "Recv-Info",
];

/// Headers copied from one leg to the other on responses.
const RELAYED_RESPONSE_HEADERS: &[&str] = &[
    "Supported",
    "Allow",
    "Accept",
    "Content-Disposition",
    "Content-Encoding",
    "Reason",
    "Warning",
    "Retry-After",
    "Unsupported",
    "Require",
    "Session-Expires",
    "Min-SE",
    "P-Asserted-Identity",
    "Remote-Party-ID",
    "P-Early-Media",
];

/// Option tags voicegw does not relay: reliable provisional responses (RFC 3262) would need
/// PRACK handling on each leg, so neither leg is told the other supports them.
const UNRELAYED_OPTION_TAGS: &[&str] = &["100rel"];

/// Headers that assert who a party is (RFC 3325, draft-ietf-sip-privacy-04): relayed only from
/// a leg inside the trust domain.
const IDENTITY_HEADERS: &[&str] =
    &["P-Asserted-Identity", "P-Preferred-Identity", "Remote-Party-ID"];

/// Copies the relayable headers and the body of `from` into `headers`/`body` of a request;
/// identity headers only when `from` came from a `trusted` leg.
pub(crate) fn copy_request_content(from: &Request, to: &mut Request, trusted: bool) {
    copy_headers(&from.headers, &mut to.headers, RELAYED_REQUEST_HEADERS, trusted);
    copy_body(&from.headers, &from.body, &mut to.headers, &mut to.body);
}

/// Copies the relayable headers, reason phrase and body of a response (identity headers only
/// from a `trusted` leg).
pub(crate) fn copy_response_content(from: &Response, to: &mut Response, trusted: bool) {
    to.reason = from.reason.clone();
    copy_headers(&from.headers, &mut to.headers, RELAYED_RESPONSE_HEADERS, trusted);
    copy_body(&from.headers, &from.body, &mut to.headers, &mut to.body);
}

fn copy_headers(
    from: &crate::message::Headers,
    to: &mut crate::message::Headers,
    names: &[&str],
    trusted: bool,
) {
    for name in names {
        if !trusted && IDENTITY_HEADERS.iter().any(|i| i.eq_ignore_ascii_case(name)) {
            continue;
        }
        let name = HeaderName::parse(name);
        for v in from.get_all(&name) {
            if matches!(name, HeaderName::Supported | HeaderName::Require) {
                let kept: Vec<&str> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|t| {
                        !t.is_empty()
                            && !UNRELAYED_OPTION_TAGS.iter().any(|u| u.eq_ignore_ascii_case(t))
                    })
                    .collect();
                if !kept.is_empty() {
                    to.push(name.clone(), kept.join(", "));
                }
                continue;
            }
            to.push(name.clone(), v);
        }
    }
}

fn copy_body(
    from_headers: &crate::message::Headers,
    body: &bytes::Bytes,
    to_headers: &mut crate::message::Headers,
    to_body: &mut bytes::Bytes,
) {
    if body.is_empty() {
        return;
    }
    if let Some(ct) = from_headers.get(&HeaderName::ContentType) {
        to_headers.set(HeaderName::ContentType, ct);
    }
    *to_body = body.clone();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Method, Uri};

    #[test]
    fn supported_100rel_is_not_relayed() {
        let mut a = Request::new(Method::Invite, Uri::parse("sip:a@b").unwrap());
        a.headers.push(HeaderName::Supported, "100rel");
        a.headers.push(HeaderName::Supported, "timer, 100rel, replaces");
        a.headers.push(HeaderName::parse("X-Private"), "not relayed");
        let mut b = Request::new(Method::Invite, Uri::parse("sip:c@d").unwrap());
        copy_request_content(&a, &mut b, true);
        assert_eq!(
            b.headers.get_all(&HeaderName::Supported).collect::<Vec<_>>(),
            vec!["timer, replaces"]
        );
        assert!(!b.headers.contains(&HeaderName::parse("X-Private")));
    }
}
