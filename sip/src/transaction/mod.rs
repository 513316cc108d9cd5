//! The four RFC 3261 §17 transaction state machines, their matching rules (§17.1.3, §17.2.3)
//! and a [`Layer`] that owns them.
//!
//! Sans-IO: every call takes `now`; retransmissions come out of [`Layer::poll_transmit`] and
//! timer expiries are driven by [`Layer::handle_timeout`] at [`Layer::poll_timeout`].
//!
//! One deliberate simplification of RFC 6026: in the Accepted state the INVITE server
//! transaction itself retransmits the 2xx (T1 doubling up to T2) until the TU reports the ACK,
//! and reports [`TxEvent::NoAck`] after 64·T1, so the B2BUA can hang up a leg whose ACK never came.

mod client_invite;
mod client_non_invite;
mod key;
mod layer;
mod server_invite;
mod server_non_invite;
mod timers;

pub use client_invite::ClientInvite;
pub use client_non_invite::ClientNonInvite;
pub use key::{ClientKey, ServerKey};
pub use layer::{Incoming, Layer, TxEvent};
pub use server_invite::ServerInvite;
pub use server_non_invite::ServerNonInvite;
pub use timers::TimerConfig;

use crate::message::Response;

/// What a client transaction tells its TU about a response it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAction {
    /// Pass the response up.
    Deliver(Response),
    /// A retransmission the transaction absorbed.
    Absorb,
}
