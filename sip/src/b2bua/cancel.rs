//! CANCEL: the caller gives up before answer; the outbound INVITE is cancelled once it may
//! be (§9.1).

use crate::Instant;

use super::anchor::Anchor;
use super::build::response_to;
use super::call::{CallState, CALLEE, CALLER};
use super::core::{App, Cx, Owner, Purpose};
use super::router::Router;
use crate::endpoint::Carries;
use crate::message::Request;
use crate::transaction::ServerKey;

impl<R: Router, M: Anchor, H: Carries<App<R, M>, I>, const I: usize> Cx<'_, R, M, H, I> {
    pub(crate) fn on_cancel(&mut self, key: ServerKey, req: Request, now: Instant) {
        let invite_key = match ServerKey::invite_of_cancel(&req) {
            Ok(k) => k,
            Err(_) => return,
        };
        let Some(&id) = self.app.invites.get(&invite_key) else {
            self.respond(&key, &response_to(&req, 481, None), now);
            return;
        };
        self.respond(&key, &response_to(&req, 200, None), now);
        self.cancel_call(id, now);
    }

    /// The caller gave up before answer: 487 to the caller, CANCEL to the callee.
    pub(crate) fn cancel_call(&mut self, id: u64, now: Instant) {
        let Some(call) = self.app.calls.get_mut(&id) else { return };
        let CallState::Proceeding { provisional } = call.state else { return };
        // §9.1: a CANCEL must wait for a provisional response.
        call.state = CallState::Cancelling { cancel_held: !provisional };
        let resp = response_to(&call.legs[CALLER].invite, 487, Some(&call.legs[CALLER].tag));
        let key = call.inbound.clone();
        self.respond(&key, &resp, now);
        if provisional {
            self.send_cancel_b(id, now);
        }
    }

    /// CANCEL for the outbound INVITE (§9.1): same Request-URI, Call-ID, From, To, top Via, CSeq
    /// number, and Route.
    pub(crate) fn send_cancel_b(&mut self, id: u64, now: Instant) {
        let Some(call) = self.app.calls.get(&id) else { return };
        if !self.ep.layer.client_pending(&call.outbound) {
            return;
        }
        let c = crate::endpoint::cancel_of(&call.legs[CALLEE].invite);
        let peer = call.legs[CALLEE].peer;
        let _ = self.send_request(c, peer, Owner { call: id, purpose: Purpose::Cancel }, now);
    }
}
