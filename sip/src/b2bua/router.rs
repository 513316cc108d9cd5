//! The policy hook: where a new call goes, or why it is refused. The gateway implements it from
//! its configuration; the B2BUA core only relays.

use crate::message::{Request, Uri};
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

/// Where to send the outbound leg of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Transport and address of the next hop.
    pub target: Peer,
    /// Request-URI of the outbound INVITE.
    pub request_uri: Uri,
    pub direction: Direction,
    pub voice_connector_id: String,
}

/// A refusal with its SIP status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    /// Text for the `Warning` header (and logs).
    pub warning: String,
    /// Seconds for `Retry-After` (503).
    pub retry_after: Option<u32>,
}

impl Reject {
    pub fn new(status: u16, warning: impl Into<String>) -> Reject {
        Reject { status, warning: warning.into(), retry_after: None }
    }
}

/// Decides the outbound leg of new calls.
pub trait Router {
    fn route(&mut self, invite: &Request, source: &Peer) -> Result<Route, Reject>;
}
