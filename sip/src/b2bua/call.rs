//! Per-call state: the inbound (A) leg, the outbound (B) leg and what is in flight between them.

use std::collections::HashMap;

use bytes::Bytes;

use crate::dialog::Dialog;
use crate::message::Request;
use crate::transaction::{ClientKey, ServerKey};
use crate::Peer;

pub use common::Side;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallState {
    /// INVITE relayed, no final response yet.
    Proceeding,
    /// CANCELled by the caller (or BYE on an early dialog); waiting for the B leg to finish.
    Cancelling,
    /// 2xx relayed to A, waiting for A's ACK.
    Answered,
    /// Both legs confirmed.
    Confirmed,
    /// A BYE is in flight.
    Terminating,
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
    /// The caller's INVITE, for building responses to it.
    pub(crate) a_invite: Request,
    pub(crate) a_invite_key: ServerKey,
    pub(crate) a_peer: Peer,
    pub(crate) a_tag: String,
    pub(crate) a_dialog: Option<Dialog>,
    /// Whether a final response was sent on A's INVITE.
    pub(crate) a_final_sent: bool,
    pub(crate) b_invite: Request,
    pub(crate) b_invite_key: ClientKey,
    pub(crate) b_peer: Peer,
    pub(crate) b_call_id: String,
    pub(crate) b_tag: String,
    pub(crate) b_dialog: Option<Dialog>,
    pub(crate) b_provisional: bool,
    pub(crate) cancel_pending: bool,
    /// The ACK sent for B's 2xx, resent if the 2xx is retransmitted.
    pub(crate) b_ack: Option<Bytes>,
    pub(crate) relays: HashMap<ClientKey, Relay>,
    pub(crate) pending_ack: Option<PendingAck>,
    pub(crate) answered_at: Option<crate::Instant>,
    /// BYEs voicegw itself sent and still waits on.
    pub(crate) own_byes: u8,
    /// Next hops left to try if the current one fails (failover).
    pub(crate) next_targets: std::collections::VecDeque<super::router::Target>,
    /// The best final failure collected from next hops so far (§16.7), and whether voicegw
    /// made it up (a timeout counted as 408).
    pub(crate) best_failure: Option<(crate::message::Response, bool)>,
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

    pub(crate) fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::A => self.a_dialog.as_mut(),
            Side::B => self.b_dialog.as_mut(),
        }
    }

    pub(crate) fn peer(&self, side: Side) -> Peer {
        match side {
            Side::A => self.a_peer,
            Side::B => self.b_peer,
        }
    }
}
