//! Dialog state (RFC 3261 §12): identifiers, sequence numbers, remote target and route set.

use crate::message::{HeaderName, NameAddr, Request, Response, Uri};
use crate::Method;

/// Identifies a dialog from this side's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

/// One side's view of a dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    /// Our URI (From when we send requests).
    pub local: NameAddr,
    /// The peer's URI (To when we send requests).
    pub remote: NameAddr,
    /// Where in-dialog requests go: the peer's Contact.
    pub remote_target: Uri,
    /// Route set, in the order requests must carry it.
    pub route_set: Vec<NameAddr>,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    pub confirmed: bool,
}

impl Dialog {
    /// A dialog created as UAS by an INVITE we answer with `local_tag` (§12.1.1).
    pub fn uas(req: &Request, local_tag: &str) -> Option<Dialog> {
        let from = req.from().ok()?;
        let mut to = req.to().ok()?;
        to.set_tag(local_tag);
        let remote_target = req.contact()?.ok()?.uri;
        Some(Dialog {
            id: DialogId {
                call_id: req.call_id().ok()?.to_string(),
                local_tag: local_tag.to_string(),
                remote_tag: from.tag().unwrap_or_default().to_string(),
            },
            route_set: req.record_route().ok()?,
            local: to,
            remote: from,
            remote_target,
            local_seq: 0,
            remote_seq: Some(req.cseq().ok()?.seq),
            confirmed: false,
        })
    }

    /// A dialog created as UAC from the request we sent and a 1xx/2xx with a To tag (§12.1.2).
    pub fn uac(req: &Request, resp: &Response) -> Option<Dialog> {
        let to = resp.to().ok()?;
        let remote_tag = to.tag()?.to_string();
        let from = req.from().ok()?;
        let remote_target = resp.contact()?.ok()?.uri;
        let mut route_set = resp.record_route().ok()?;
        route_set.reverse();
        Some(Dialog {
            id: DialogId {
                call_id: req.call_id().ok()?.to_string(),
                local_tag: from.tag().unwrap_or_default().to_string(),
                remote_tag,
            },
            local: from,
            remote: to,
            remote_target,
            route_set,
            local_seq: req.cseq().ok()?.seq,
            remote_seq: None,
            confirmed: resp.is_success(),
        })
    }

    /// Refreshes the remote target from a target-refresh request or its response (§12.2).
    pub fn refresh_target(&mut self, contact: Option<NameAddr>) {
        if let Some(c) = contact {
            self.remote_target = c.uri;
        }
    }

    /// Builds an in-dialog request (§12.2.1.1). ACK reuses the INVITE's CSeq number (`ack_of`);
    /// other methods take the next local sequence number. The caller adds Via and Contact.
    pub fn request(&mut self, method: Method, ack_of: Option<u32>) -> Request {
        let seq = match (&method, ack_of) {
            (Method::Ack, Some(n)) => n,
            _ => {
                self.local_seq += 1;
                self.local_seq
            }
        };
        let (uri, routes) = self.target_and_routes();
        let mut r = Request::new(method.clone(), uri);
        for route in routes {
            r.headers.push(HeaderName::Route, route.to_string());
        }
        r.headers.push(HeaderName::MaxForwards, "70");
        r.headers.push(HeaderName::From, self.local.to_string());
        r.headers.push(HeaderName::To, self.remote.to_string());
        r.headers.push(HeaderName::CallId, self.id.call_id.clone());
        r.headers.push(HeaderName::CSeq, format!("{seq} {method}"));
        r
    }

    /// Request-URI and Route headers per §12.2.1.1 (loose and strict routing).
    fn target_and_routes(&self) -> (Uri, Vec<NameAddr>) {
        match self.route_set.first() {
            None => (self.remote_target.clone(), Vec::new()),
            Some(first) if first.uri.params.contains("lr") => {
                (self.remote_target.clone(), self.route_set.clone())
            }
            Some(first) => {
                let mut routes: Vec<NameAddr> = self.route_set[1..].to_vec();
                routes.push(NameAddr::new(self.remote_target.clone()));
                (first.uri.clone(), routes)
            }
        }
    }

    /// Checks an incoming in-dialog request's CSeq (§12.2.2): true if in order (or an ACK/CANCEL).
    pub fn accept_remote_seq(&mut self, req: &Request) -> bool {
        let Ok(cseq) = req.cseq() else { return false };
        if matches!(req.method, Method::Ack | Method::Cancel) {
            return true;
        }
        match self.remote_seq {
            Some(prev) if cseq.seq <= prev => false,
            _ => {
                self.remote_seq = Some(cseq.seq);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn req(s: &str) -> Request {
        match Message::parse(s.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("expected a request"),
        }
    }

    #[test]
    fn uas_dialog_and_in_dialog_request() {
        let invite = req("INVITE sip:b@gw SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@a>;tag=at\r\nTo: <sip:b@gw>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:a@10.0.0.1:5062>\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\n\r\n");
        let mut d = Dialog::uas(&invite, "bt").unwrap();
        assert_eq!(d.id.remote_tag, "at");
        assert_eq!(d.remote_seq, Some(7));
        let bye = d.request(Method::Bye, None);
        assert_eq!(bye.uri.to_string(), "sip:a@10.0.0.1:5062");
        assert_eq!(
            bye.headers.get_all(&HeaderName::Route).collect::<Vec<_>>(),
            vec!["<sip:p1;lr>", "<sip:p2;lr>"]
        );
        assert_eq!(bye.to().unwrap().tag(), Some("at"));
        assert_eq!(bye.from().unwrap().tag(), Some("bt"));
        assert_eq!(bye.cseq().unwrap().seq, 1);
        let old = req("BYE sip:b@gw SIP/2.0\r\nCSeq: 7 BYE\r\n\r\n");
        assert!(!d.accept_remote_seq(&old));
        let new = req("BYE sip:b@gw SIP/2.0\r\nCSeq: 8 BYE\r\n\r\n");
        assert!(d.accept_remote_seq(&new));
    }

    #[test]
    fn strict_route_puts_first_route_in_request_uri() {
        let invite = req("INVITE sip:b@gw SIP/2.0\r\nFrom: <sip:a@a>;tag=at\r\nTo: <sip:b@gw>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@10.0.0.1>\r\nRecord-Route: <sip:strict@p1>\r\n\r\n");
        let mut d = Dialog::uas(&invite, "bt").unwrap();
        let bye = d.request(Method::Bye, None);
        assert_eq!(bye.uri.to_string(), "sip:strict@p1");
        assert_eq!(bye.headers.get(&HeaderName::Route), Some("<sip:a@10.0.0.1>"));
    }
}
