//! A back-to-back user agent core (sans-IO).
//!
//! Each call has an inbound leg (A, where voicegw is the UAS) and an outbound leg (B, where it is
//! the UAC), each with its own Call-ID, tags, CSeq space and transactions. The core relays
//! provisional and final responses, ACK, BYE from either side, CANCEL before answer, re-INVITE,
//! UPDATE and other in-dialog requests; answers OPTIONS itself; refuses what it does not
//! support. Routing decisions come from a [`Router`].
//!
//! Drive it like the transaction layer: feed [`B2bua::handle_bytes`] and
//! [`B2bua::handle_timeout`], then drain [`B2bua::poll_output`] and wait until
//! [`B2bua::poll_timeout`].

mod anchor;
mod answer;
mod build;
mod call;
mod cancel;
mod core;
mod failover;
mod in_dialog;
mod invite;
mod router;

pub use anchor::{Anchor, NoAnchor};
pub use build::bad_request_for;
pub use call::Side;
pub use core::{App, B2bua, CallEvent, CoreConfig, CoreStats, HostsB2bua, Output};
pub use router::{Direction, Reject, RejectCause, Route, Router, Target, Verdict};

#[cfg(test)]
mod tests;
