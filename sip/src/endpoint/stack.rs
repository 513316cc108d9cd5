//! An endpoint with its application: what a driver holds.

use super::{Endpoint, EndpointConfig, Host, Output};
use crate::{Instant, Peer};

/// An [`Endpoint`] and the applications on top of it (its [`Host`]).
pub struct Stack<A: Host> {
    pub(crate) ep: Endpoint<A>,
    pub(crate) app: A,
}

impl<A: Host> Stack<A> {
    /// An endpoint configured by `cfg` with `app` on top.
    pub fn of(cfg: EndpointConfig, app: A) -> Stack<A> {
        Stack { ep: Endpoint::new(cfg), app }
    }

    pub fn endpoint(&self) -> &Endpoint<A> {
        &self.ep
    }

    pub fn app(&self) -> &A {
        &self.app
    }

    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// Both halves at once, for an application's operations that need its endpoint.
    pub fn split(&mut self) -> (&mut Endpoint<A>, &mut A) {
        (&mut self.ep, &mut self.app)
    }

    /// Handles one datagram or framed stream message from `peer`.
    pub fn handle_bytes(&mut self, bytes: &[u8], peer: Peer, now: Instant) {
        self.ep.handle_bytes(&mut self.app, bytes, peer, now);
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(&mut self.app, now);
    }

    /// The driver could not reach `peer` (connection refused, TLS failure…).
    pub fn transport_error(&mut self, peer: Peer, now: Instant) {
        self.ep.transport_error(&mut self.app, peer, now);
    }

    pub fn poll_output(&mut self) -> Option<Output<A::Event, A::Update>> {
        self.app.flush(&mut self.ep);
        self.ep.poll_output()
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.ep.poll_timeout()
    }
}
