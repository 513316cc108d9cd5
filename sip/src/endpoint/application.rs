//! What an application on the endpoint implements.

use super::{Carries, Endpoint};
use crate::message::{Request, Response};
use crate::transaction::{ClientKey, ServerKey};
use crate::{Instant, Peer};

/// An application on the SIP endpoint (the B2BUA, a recording server, a meeting UAS): it is
/// handed what the endpoint received for it and answers through the endpoint it is lent.
///
/// The endpoint is the [`Host`](super::Host)'s, which may carry other applications beside
/// this one: `H: Carries<Self, I>` says how this application's owners, dialogs, events and
/// updates are carried in the host's (`I` is its place in the host), so one implementation
/// runs alone ([`Solo`](super::Solo)) or next to others ([`Pair`](super::Pair)).
pub trait Application: Sized {
    /// What each of its client transactions is tagged with (handed back with the response).
    type Owner: Clone + std::fmt::Debug;
    /// What each of its dialogs is to it, in the endpoint's dialog table.
    type Dialog;
    /// The facts it reports (call events).
    type Event;
    /// The media instructions it emits, in order with its messages.
    type Update;

    /// A new request; a server transaction exists under `key` (never for ACK).
    fn on_request<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        request: Request,
        peer: Peer,
        now: Instant,
    );

    /// An ACK that no transaction absorbed (for a 2xx, or in a dialog). Nothing by default.
    fn on_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        _ep: &mut Endpoint<H>,
        _request: Request,
        _peer: Peer,
        _now: Instant,
    ) {
    }

    /// A response to one of its client transactions. Nothing by default (an application
    /// that sends no requests).
    fn on_response<H: Carries<Self, I>, const I: usize>(
        &mut self,
        _ep: &mut Endpoint<H>,
        _key: ClientKey,
        _response: Response,
        _owner: Self::Owner,
        _now: Instant,
    ) {
    }

    /// A response that matches no transaction (a retransmitted 2xx after the transaction
    /// ended, or a 2xx from a second fork). Nothing by default.
    fn on_stray_response<H: Carries<Self, I>, const I: usize>(
        &mut self,
        _ep: &mut Endpoint<H>,
        _response: Response,
        _now: Instant,
    ) {
    }

    /// No final response to a client transaction (Timer B or F, or a transport error).
    /// Nothing by default.
    fn on_client_timeout<H: Carries<Self, I>, const I: usize>(
        &mut self,
        _ep: &mut Endpoint<H>,
        _key: ClientKey,
        _owner: Self::Owner,
        _now: Instant,
    ) {
    }

    /// A final response it sent was never acknowledged (Timer H).
    fn on_no_ack<H: Carries<Self, I>, const I: usize>(
        &mut self,
        ep: &mut Endpoint<H>,
        key: ServerKey,
        now: Instant,
    );

    /// Whether the INVITE server transaction `key` is this application's (a CANCEL or a
    /// missing ACK for it is then handed here).
    fn has_invite(&self, key: &ServerKey) -> bool;

    /// Moves what the application produced outside its handlers (media updates) into the
    /// endpoint's output queue; called before output is taken.
    fn flush<H: Carries<Self, I>, const I: usize>(&mut self, _ep: &mut Endpoint<H>) {}
}
