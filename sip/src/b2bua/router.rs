//! The policy hook: where a new call goes, or why it is refused. The gateway implements it from
//! its configuration; the B2BUA core only relays.

use crate::message::{Request, Uri};
use crate::Instant;
use crate::Peer;

/// Direction of a call relative to the voice connector (formats.md naming).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Termination: customer PBX → voicegw → carrier (the service calls it Outbound).
    Outbound,
    /// Origination: carrier → voicegw → customer PBX (Inbound).
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "Outbound",
            Direction::Inbound => "Inbound",
        }
    }
}

/// One next hop of a call's outbound leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Transport and address of the next hop.
    pub peer: Peer,
    /// Request-URI of the outbound INVITE.
    pub request_uri: Uri,
    /// The voice connector the call belongs to when it goes this way (group failover moves a
    /// call from one voice connector to the next).
    pub voice_connector_id: String,
}

/// Where to send the outbound leg of a call: next hops in the order they are tried. The first
/// is tried at once; on a transport error, no response before Timer B, `408` or any `5xx`
/// the next one is tried (formats.md §3); any other final response ends the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// At least one.
    pub targets: Vec<Target>,
    pub direction: Direction,
    /// Caller ID (user part of the outbound From) replacing the caller's, e.g. termination's
    /// `DefaultPhoneNumber`.
    pub caller_id: Option<String>,
    /// Whether the customer's leg (A on termination, B on origination) is trusted to assert
    /// identities (RFC 3325 trust domain): only then are its `P-Asserted-Identity`,
    /// `P-Preferred-Identity` and `Remote-Party-ID` relayed. The carrier side always is.
    pub customer_asserts_identity: bool,
}

impl Route {
    /// A route with one next hop.
    pub fn single(target: Target, direction: Direction) -> Route {
        Route {
            targets: vec![target],
            direction,
            caller_id: None,
            customer_asserts_identity: false,
        }
    }

    /// The first next hop.
    pub fn first(&self) -> &Target {
        &self.targets[0]
    }
}

/// A refusal with its SIP status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    /// Text for the `Warning` header (and logs).
    pub warning: String,
    /// Seconds for `Retry-After` (503).
    pub retry_after: Option<u32>,
    /// `Proxy-Authenticate` challenges (407), one per algorithm, preferred first.
    pub challenges: Vec<String>,
    /// What kind of refusal it is, for metrics and call records.
    pub cause: RejectCause,
}

/// Why a call was refused, beyond its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RejectCause {
    #[default]
    Other,
    /// Over the voice connector's calls-per-second limit (metric `Throttles`).
    Throttled,
    /// Digest credentials missing or wrong (407).
    Unauthenticated,
}

impl Reject {
    pub fn new(status: u16, warning: impl Into<String>) -> Reject {
        Reject {
            status,
            warning: warning.into(),
            retry_after: None,
            challenges: Vec::new(),
            cause: RejectCause::Other,
        }
    }
}

/// The policy's verdict on a new call, with the voice connector it was judged for (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub result: Result<Route, Reject>,
    /// The voice connector the call was matched to, even when refused (metrics, records).
    pub voice_connector_id: Option<String>,
    pub direction: Option<Direction>,
    /// The digest user name that authenticated the call.
    pub auth_user: Option<String>,
}

/// Decides the outbound leg of new calls. `now` is the core's clock (nonce expiry, rate limits).
pub trait Router {
    fn route(&mut self, invite: &Request, source: &Peer, now: Instant) -> Verdict;

    /// An OPTIONS request from `source` (termination health pings).
    fn options(&mut self, _options: &Request, _source: &Peer, _now: Instant) {}
}
