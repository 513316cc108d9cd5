//! The media hook: a B2BUA that anchors media rewrites every SDP body it relays so both legs send
//! their media to voicegw. The core calls an [`Anchor`] at call start and end and for every body;
//! the gateway implements it with port allocation and the relay. What the relay must be told
//! (the anchor's updates) leaves the core through its output queue, in order with the
//! messages: an update comes out before the message whose SDP it belongs to.

use bytes::Bytes;

use super::call::Side;
use super::router::{Reject, Route};
use crate::message::Request;

/// Media anchoring for calls.
pub trait Anchor {
    /// What the media side must be told (a call's addresses, keys, its end).
    type Update;
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
    /// The next update the calls above produced, oldest first.
    fn poll_update(&mut self) -> Option<Self::Update>;
}

/// No anchoring: bodies pass through unchanged (signalling-only deployments and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAnchor;

impl Anchor for NoAnchor {
    /// Nothing to tell: no media is relayed.
    type Update = std::convert::Infallible;

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

    fn poll_update(&mut self) -> Option<Self::Update> {
        None
    }
}
