use crate::message::{Method, Request, Response};
use crate::ParseError;

/// Matches responses to client transactions (§17.1.3): top-Via branch plus CSeq method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub branch: String,
    pub method: Method,
}

impl ClientKey {
    pub fn of_request(req: &Request) -> Result<ClientKey, ParseError> {
        let via = req.top_via()?;
        let branch = via.branch().ok_or(ParseError::header("Via", "no branch"))?.to_string();
        Ok(ClientKey { branch, method: req.method.clone() })
    }

    pub fn of_response(resp: &Response) -> Result<ClientKey, ParseError> {
        let via = resp.top_via()?;
        let branch = via.branch().ok_or(ParseError::header("Via", "no branch"))?.to_string();
        Ok(ClientKey { branch, method: resp.cseq()?.method })
    }
}

/// Matches requests to server transactions (§17.2.3). With an RFC 3261 branch: branch, sent-by
/// and method (ACK matches its INVITE). Otherwise the RFC 2543 rule: Request-URI, tags,
/// Call-ID, CSeq and top Via.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerKey {
    Rfc3261 { branch: String, sent_by: String, method: Method },
    Rfc2543 { fields: String, method: Method },
}

impl ServerKey {
    pub fn of_request(req: &Request) -> Result<ServerKey, ParseError> {
        let via = req.top_via()?;
        let method = match req.method {
            Method::Ack => Method::Invite,
            ref m => m.clone(),
        };
        if via.is_rfc3261() {
            return Ok(ServerKey::Rfc3261 {
                branch: via.branch().unwrap_or_default().to_string(),
                sent_by: via.sent_by(),
                method,
            });
        }
        // An ACK for a non-2xx carries the To tag of our response; INVITE has none, so the
        // To tag is left out and the INVITE's own key is recovered for the ACK.
        let fields = format!(
            "{}|{}|{}|{}|{}",
            req.uri,
            req.from()?.tag().unwrap_or_default(),
            req.call_id()?,
            req.cseq()?.seq,
            via,
        );
        Ok(ServerKey::Rfc2543 { fields, method })
    }

    /// The key of the INVITE transaction a CANCEL refers to (§9.2).
    pub fn invite_of_cancel(cancel: &Request) -> Result<ServerKey, ParseError> {
        Ok(match ServerKey::of_request(cancel)? {
            ServerKey::Rfc3261 { branch, sent_by, .. } => {
                ServerKey::Rfc3261 { branch, sent_by, method: Method::Invite }
            }
            ServerKey::Rfc2543 { fields, .. } => {
                ServerKey::Rfc2543 { fields, method: Method::Invite }
            }
        })
    }
}
