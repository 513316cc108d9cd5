//! A failing next hop: the call moves to the next one (a new outbound leg, invisible to the
//! caller) or ends with the best failure collected (RFC 3261 §16.7).

use crate::Instant;

use super::anchor::Anchor;
use super::build::{copy_request_content, copy_response_content, random_token, response_to};
use super::call::{CallState, Side, CALLEE, CALLER};
use super::core::{App, CallEvent, Cx, Owner, Purpose};
use super::router::Router;
use crate::endpoint::Carries;
use crate::message::{HeaderName, Response};
use crate::transaction::ClientKey;

impl<R: Router, M: Anchor, H: Carries<App<R, M>, I>, const I: usize> Cx<'_, R, M, H, I> {
    /// The outbound leg failed with `failure` (a response, or `None` for a timeout or transport
    /// error). Tries the next target when the failure allows it and one is left; returns whether
    /// it did.
    pub(crate) fn try_next_target(
        &mut self,
        id: u64,
        failure: Option<&Response>,
        now: Instant,
    ) -> bool {
        let Some(call) = self.app.calls.get_mut(&id) else { return false };
        // §16.7: a timeout counts as a 408 (§16.9: a transport error, reported the same way,
        // as a 503); a response actually received wins over a made-up one of the same class.
        let collected = match failure {
            Some(r) => (r.clone(), false),
            None => {
                let mut r = Response::new(408, "Request Timeout");
                r.headers.push(HeaderName::Warning, "399 voicegw \"no answer from the next hop\"");
                (r, true)
            }
        };
        if better_failure(&collected, call.best_failure.as_ref()) {
            call.best_failure = Some(collected);
        }
        let retriable = failure.is_none_or(|r| r.status == 408 || (500..600).contains(&r.status));
        if !retriable || call.state.caller_has_final() {
            return false;
        }
        let Some(next) = call.next_targets.pop_front() else { return false };
        let old = (call.legs[CALLEE].call_id.clone(), call.legs[CALLEE].tag.clone());
        let body = call.legs[CALLEE].invite.body.clone();
        let a_invite = call.legs[CALLER].invite.clone();
        let caller_id = call.caller_id.clone();
        let trusted_a = call.trusts(Side::A);
        let b_call_id = format!("{}@voicegw", random_token(&mut self.ep.rng, 20));
        let b_tag = random_token(&mut self.ep.rng, 12);
        let mut b = self.build_b_invite(&a_invite, &next, &b_call_id, &b_tag, caller_id.as_deref());
        copy_request_content(&a_invite, &mut b, trusted_a);
        // The body was anchored for the first hop; the same offer goes to the next.
        b.body = body;
        let key = match self.send_request(
            b.clone(),
            next.peer,
            Owner { call: id, purpose: Purpose::Invite },
            now,
        ) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(call = id, error = %e, "could not start the failover INVITE");
                return false;
            }
        };
        self.ep.remove_dialog(&old);
        self.ep.insert_dialog::<App<R, M>, I>((b_call_id.clone(), b_tag.clone()), (id, Side::B));
        let Some(call) = self.app.calls.get_mut(&id) else { return false };
        call.legs[CALLEE].invite = b;
        call.outbound = key;
        call.legs[CALLEE].peer = next.peer;
        call.legs[CALLEE].call_id = b_call_id.clone();
        call.legs[CALLEE].tag = b_tag;
        call.state = CallState::Proceeding { provisional: false };
        self.emit(CallEvent::Failover {
            b_call_id,
            call: id,
            status: failure.map(|r| r.status),
            target: next.peer,
            voice_connector_id: next.voice_connector_id,
        });
        true
    }

    /// Ends a call whose outbound leg failed for good: the best failure collected (RFC 3261
    /// §16.7, a 503 relayed as 500) goes to the caller, `480` if none was collected.
    pub(crate) fn fail_call(&mut self, id: u64, now: Instant) {
        let Some(call) = self.app.calls.get_mut(&id) else { return };
        let (caller_has_final, cancelled) =
            (call.state.caller_has_final(), matches!(call.state, CallState::Cancelling { .. }));
        self.finish_failed(id, caller_has_final, cancelled, now);
    }

    /// [`Self::fail_call`] for a call whose state was read before voicegw hung up the callee:
    /// the failure goes to the caller unless it `caller_has_final` response, and the call
    /// ends as `cancelled` (487) or with the failure's status.
    pub(crate) fn finish_failed(
        &mut self,
        id: u64,
        caller_has_final: bool,
        cancelled: bool,
        now: Instant,
    ) {
        let Some(call) = self.app.calls.get_mut(&id) else { return };
        let (status, reason) = match &call.best_failure {
            Some((r, _)) => (r.status, r.reason.clone()),
            None => (480, "Temporarily Unavailable".to_string()),
        };
        if !caller_has_final {
            let relayed = if status == 503 { 500 } else { status };
            let mut out =
                response_to(&call.legs[CALLER].invite, relayed, Some(&call.legs[CALLER].tag));
            match &call.best_failure {
                Some((r, _)) => copy_response_content(r, &mut out, call.trusts(Side::B)),
                None => {
                    out.headers.push(HeaderName::Warning, "399 voicegw \"no next hop answered\"")
                }
            }
            if relayed != status {
                out.reason = "Server Internal Error".into();
            }
            let key = call.inbound.clone();
            self.respond(&key, &out, now);
        }
        if cancelled {
            self.end_call(id, 487, "Request Terminated", now);
        } else {
            self.end_call(id, status, &reason, now);
        }
    }

    pub(crate) fn on_client_timeout(&mut self, key: ClientKey, owner: Owner, now: Instant) {
        match owner.purpose {
            Purpose::Invite => {
                // Only the current outbound INVITE of a call still being set up counts (an older
                // one may time out late; an answered call is not undone).
                if self.app.calls.get(&owner.call).is_none_or(|c| {
                    c.outbound != key
                        || !matches!(
                            c.state,
                            CallState::Proceeding { .. } | CallState::Cancelling { .. }
                        )
                        || c.legs[CALLEE].dialog.is_some()
                }) {
                    return;
                }
                if !self.try_next_target(owner.call, None, now) {
                    self.fail_call(owner.call, now);
                }
            }
            Purpose::Relay | Purpose::Bye => {
                self.on_relay_response(owner.call, key, Response::new(408, "Request Timeout"), now)
            }
            Purpose::Cancel | Purpose::Discard => {}
        }
    }
}

/// Whether `r` is a better final failure to relay than `best` (RFC 3261 §16.7 step 6: a 6xx
/// first, else the lowest class, the first of a class kept).
/// Each failure comes with whether voicegw made it up (a timeout).
fn better_failure(r: &(Response, bool), best: Option<&(Response, bool)>) -> bool {
    let Some(b) = best else { return true };
    let rank = |(r, made_up): &(Response, bool)| {
        (if r.status >= 600 { 0 } else { r.status / 100 }, *made_up)
    };
    rank(r) < rank(b)
}
