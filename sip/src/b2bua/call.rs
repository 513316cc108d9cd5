//! Per-call state: the inbound (caller's) leg, the outbound (callee's) leg, where the call
//! stands, and what is in flight between the legs.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::dialog::Dialog;
use crate::message::{Request, Response};
use crate::transaction::{ClientKey, ServerKey};
use crate::{Instant, Peer};

pub use common::Side;

/// Index of the caller's leg (A) in [`Call::legs`].
pub(crate) const CALLER: usize = 0;
/// Index of the callee's leg (B) in [`Call::legs`].
pub(crate) const CALLEE: usize = 1;

/// One leg of a call, as voicegw sees it.
#[derive(Debug)]
pub(crate) struct Leg {
    /// The INVITE of this leg: the caller's (A), or the one voicegw sent (B).
    pub(crate) invite: Request,
    pub(crate) peer: Peer,
    pub(crate) call_id: String,
    /// voicegw's own tag on this leg (To on A, From on B).
    pub(crate) tag: String,
    /// The confirmed dialog, once the leg has one.
    pub(crate) dialog: Option<Dialog>,
}

/// Where a call stands. Each state carries what only it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallState {
    /// The outbound INVITE is out; the caller has no final response yet. `provisional`: the
    /// current outbound INVITE had a provisional response (a CANCEL may be sent, §9.1).
    Proceeding { provisional: bool },
    /// The caller gave up before answer (CANCEL, or BYE on the early dialog) and has its 487;
    /// the outbound INVITE is being cancelled. `cancel_held`: the CANCEL waits for a
    /// provisional response first (§9.1).
    Cancelling { cancel_held: bool },
    /// The callee's 2xx went to the caller `at`; waiting for the caller's ACK.
    Answered { at: Instant },
    /// Both legs confirmed since `at`.
    Confirmed { at: Instant },
    /// A BYE is in flight; `answered_at` if the call had been answered.
    Terminating { answered_at: Option<Instant> },
}

impl CallState {
    /// Whether the caller already had a final response to its INVITE.
    pub(crate) fn caller_has_final(self) -> bool {
        !matches!(self, CallState::Proceeding { .. })
    }

    /// When the call was answered, if it was.
    pub(crate) fn answered_at(self) -> Option<Instant> {
        match self {
            CallState::Answered { at } | CallState::Confirmed { at } => Some(at),
            CallState::Terminating { answered_at } => answered_at,
            CallState::Proceeding { .. } | CallState::Cancelling { .. } => None,
        }
    }

    /// The state once a BYE is on its way.
    pub(crate) fn terminating(self) -> CallState {
        CallState::Terminating { answered_at: self.answered_at() }
    }
}

/// A request relayed from one leg to the other, waiting for its response.
#[derive(Debug)]
pub(crate) struct Relay {
    pub(crate) origin: Side,
    pub(crate) server_key: ServerKey,
    pub(crate) request: Request,
}

/// A re-INVITE relayed and answered 2xx: the origin's ACK must be relayed with this CSeq.
#[derive(Debug)]
pub(crate) struct PendingAck {
    pub(crate) origin: Side,
    pub(crate) server_key: ServerKey,
    pub(crate) other_cseq: u32,
}

#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) state: CallState,
    /// The caller's leg ([`CALLER`]) and the callee's ([`CALLEE`]).
    pub(crate) legs: [Leg; 2],
    /// The server transaction of the caller's INVITE.
    pub(crate) inbound: ServerKey,
    /// The client transaction of the current outbound INVITE (a failover starts a new one).
    pub(crate) outbound: ClientKey,
    /// The ACK sent for the callee's 2xx, resent if the 2xx is retransmitted.
    pub(crate) callee_ack: Option<Bytes>,
    pub(crate) relays: HashMap<ClientKey, Relay>,
    pub(crate) pending_ack: Option<PendingAck>,
    /// BYEs voicegw itself sent and still waits on.
    pub(crate) own_byes: u8,
    /// Next hops left to try if the current one fails (failover).
    pub(crate) next_targets: VecDeque<super::router::Target>,
    /// The best final failure collected from next hops so far (§16.7), and whether voicegw
    /// made it up (a timeout counted as 408).
    pub(crate) best_failure: Option<(Response, bool)>,
    /// Caller ID override for the outbound From.
    pub(crate) caller_id: Option<String>,
    /// The leg whose identity headers are not relayed (the customer's, unless trusted).
    pub(crate) untrusted: Option<Side>,
}

impl Call {
    /// Whether identity headers from `side` may be relayed.
    pub(crate) fn trusts(&self, side: Side) -> bool {
        self.untrusted != Some(side)
    }

    pub(crate) fn leg(&self, side: Side) -> &Leg {
        &self.legs[side.index()]
    }

    pub(crate) fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        self.legs[side.index()].dialog.as_mut()
    }

    pub(crate) fn peer(&self, side: Side) -> Peer {
        self.leg(side).peer
    }
}
