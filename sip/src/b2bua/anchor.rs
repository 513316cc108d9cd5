//! The media hook: a B2BUA that anchors media rewrites every SDP body it relays so both legs send
//! their media to voicegw. The core calls an [`Anchor`] at call start and end and for every body;
//! the gateway implements it with port allocation and the relay.

use bytes::Bytes;

use super::call::Side;
use super::router::{Reject, Route};
use crate::message::Request;

/// Media anchoring for calls.
pub trait Anchor {
    /// A new call is routed: reserve what its media needs (`503` when nothing is left).
    /// `transaction_id` is the call's TransactionId.
    fn open(
        &mut self,
        call: u64,
        transaction_id: &str,
        route: &Route,
        invite: &Request,
    ) -> Result<(), Reject>;
    /// A body of `content_type` came from the leg on `from`; returns the body to send to the
    /// other leg. SDP is rewritten; an offer that cannot be relayed is refused (`488`).
    fn rewrite(
        &mut self,
        call: u64,
        from: Side,
        content_type: &str,
        body: &Bytes,
    ) -> Result<Bytes, Reject>;
    /// The call ended: release its media.
    fn close(&mut self, call: u64);
}

/// No anchoring: bodies pass through unchanged (signalling-only deployments and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAnchor;

impl Anchor for NoAnchor {
    fn open(&mut self, _: u64, _: &str, _: &Route, _: &Request) -> Result<(), Reject> {
        Ok(())
    }

    fn rewrite(
        &mut self,
        _call: u64,
        _from: Side,
        _content_type: &str,
        body: &Bytes,
    ) -> Result<Bytes, Reject> {
        Ok(body.clone())
    }

    fn close(&mut self, _call: u64) {}
}
