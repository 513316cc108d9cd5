//! Responses on the outbound leg: provisional and final answers relayed to the caller, the
//! ACK of the callee's 2xx, forked 2xx, unusable 2xx, retransmitted 2xx and missing ACKs.

use crate::Instant;

use super::anchor::Anchor;
use super::build::{
    copy_request_content, copy_response_content, new_branch, our_contact, our_via, response_to,
};
use super::call::{CallState, Side, CALLEE, CALLER};
use super::core::{App, CallEvent, Cx, Owner, Purpose};
use super::router::Router;
use crate::dialog::Dialog;
use crate::endpoint::Carries;
use crate::message::{HeaderName, Method, NameAddr, Request, Response, Uri};
use crate::transaction::{ClientKey, ServerKey};

impl<R: Router, M: Anchor, H: Carries<App<R, M>, I>, const I: usize> Cx<'_, R, M, H, I> {
    pub(crate) fn on_response(
        &mut self,
        key: ClientKey,
        resp: Response,
        owner: Owner,
        now: Instant,
    ) {
        match owner.purpose {
            Purpose::Invite => self.on_b_invite_response(owner.call, resp, now),
            Purpose::Relay | Purpose::Bye => self.on_relay_response(owner.call, key, resp, now),
            Purpose::Cancel | Purpose::Discard => {}
        }
    }

    /// A response on the outbound leg's INVITE.
    pub(crate) fn on_b_invite_response(&mut self, id: u64, resp: Response, now: Instant) {
        let Some(call) = self.app.calls.get_mut(&id) else { return };
        let status = resp.status;
        if status == 100 {
            return;
        }
        if resp.is_provisional() {
            match &mut call.state {
                CallState::Proceeding { provisional } => *provisional = true,
                CallState::Cancelling { cancel_held } if *cancel_held => {
                    *cancel_held = false;
                    self.send_cancel_b(id, now);
                    return;
                }
                _ => return,
            }
            let mut out =
                response_to(&call.legs[CALLER].invite, status, Some(&call.legs[CALLER].tag));
            copy_response_content(&resp, &mut out, call.trusts(Side::B));
            out.headers.push(
                HeaderName::Contact,
                our_contact(
                    call.legs[CALLER].peer.transport,
                    self.ep.local_addr(call.legs[CALLER].peer.transport),
                ),
            );
            let key = call.inbound.clone();
            self.answer_body(id, &resp, &mut out);
            self.respond(&key, &out, now);
            return;
        }
        if resp.is_success() {
            if let Some(d) = &call.legs[CALLEE].dialog {
                let tag = resp.to().ok().and_then(|t| t.tag().map(str::to_string));
                if tag.as_deref() != Some(d.id.remote_tag.as_str()) {
                    // A 2xx from another fork of the INVITE (§13.2.2.4): one call is enough.
                    self.ack_and_bye_fork(id, &resp, now);
                    return;
                }
                // A retransmitted 2xx: re-ACK if we already acknowledged it.
                if let Some(ack) = call.callee_ack.clone() {
                    self.ep.layer.send_raw(call.legs[CALLEE].peer, ack);
                }
                return;
            }
            call.legs[CALLEE].dialog = Dialog::uac(&call.legs[CALLEE].invite, &resp);
            if call.legs[CALLEE].dialog.is_none() {
                tracing::warn!(
                    call = id,
                    "2xx without a usable To tag, Contact or Record-Route from the callee; hanging up"
                );
                let mut d = Dialog::uac(
                    &call.legs[CALLEE].invite,
                    &with_fallback_contact(&resp, call.legs[CALLEE].invite.uri.clone()),
                );
                if let Some(d) = d.as_mut() {
                    d.confirmed = true;
                }
                call.legs[CALLEE].dialog = d;
                // The callee cannot be reached in this dialog: it is acknowledged and hung up
                // (when there is anything to address that with) and the caller gets a 502.
                let usable = call.legs[CALLEE].dialog.is_some();
                let caller_has_final = call.state.caller_has_final();
                let cancelled = matches!(call.state, CallState::Cancelling { .. });
                let mut r = Response::new(502, "Bad Gateway");
                r.headers
                    .push(HeaderName::Warning, "399 voicegw \"unusable 2xx from the next hop\"");
                call.best_failure = Some((r, true));
                if usable {
                    self.ack_b(id, None);
                    self.send_bye(id, Side::B, now);
                }
                self.finish_failed(id, caller_has_final, cancelled, now);
                return;
            }
            if call.state.caller_has_final() {
                // The caller gave up while the callee answered: ACK and BYE the callee.
                self.ack_b(id, None);
                self.send_bye(id, Side::B, now);
                return;
            }
            let local = self.ep.local_addr(call.legs[CALLER].peer.transport);
            let mut out =
                response_to(&call.legs[CALLER].invite, status, Some(&call.legs[CALLER].tag));
            copy_response_content(&resp, &mut out, call.trusts(Side::B));
            out.headers
                .push(HeaderName::Contact, our_contact(call.legs[CALLER].peer.transport, local));
            out.headers.push(HeaderName::Server, self.ep.cfg.user_agent.clone());
            let mut a_dialog = Dialog::uas(&call.legs[CALLER].invite, &call.legs[CALLER].tag);
            if let Some(d) = a_dialog.as_mut() {
                d.confirmed = true;
            }
            call.legs[CALLER].dialog = a_dialog;
            call.state = CallState::Answered { at: now };
            let key = call.inbound.clone();
            self.answer_body(id, &resp, &mut out);
            self.respond(&key, &out, now);
            self.emit(CallEvent::Answered { call: id });
            return;
        }
        // A final failure: try the next hop if the failure allows it, else end the call.
        if !self.try_next_target(id, Some(&resp), now) {
            self.fail_call(id, now);
        }
    }

    /// ACKs and hangs up a second dialog created by a forked INVITE's 2xx.
    pub(crate) fn ack_and_bye_fork(&mut self, id: u64, resp: &Response, now: Instant) {
        let Some(call) = self.app.calls.get(&id) else { return };
        let Some(mut fork) = Dialog::uac(&call.legs[CALLEE].invite, resp) else { return };
        let peer = call.legs[CALLEE].peer;
        let local = self.ep.local_addr(peer.transport);
        let seq = call.legs[CALLEE].invite.cseq().map(|c| c.seq).unwrap_or(1);
        let mut ack = fork.request(Method::Ack, Some(seq));
        ack.headers.push_front(
            HeaderName::Via,
            our_via(peer.transport, local, &new_branch(&mut self.ep.rng)),
        );
        self.ep.layer.send_raw(peer, ack.to_bytes());
        let mut bye = fork.request(Method::Bye, None);
        bye.headers.push_front(
            HeaderName::Via,
            our_via(peer.transport, local, &new_branch(&mut self.ep.rng)),
        );
        tracing::info!(call = id, "second 2xx from a forked INVITE: acknowledged and hung up");
        let _ = self.send_request(bye, peer, Owner { call: id, purpose: Purpose::Discard }, now);
    }

    /// Sends the ACK for the callee's 2xx, with `body` from the caller's ACK if any.
    pub(crate) fn ack_b(&mut self, id: u64, from_a: Option<&Request>) {
        let Some(call) = self.app.calls.get_mut(&id) else { return };
        if call.callee_ack.is_some() {
            return;
        }
        let trusted_a = call.trusts(Side::A);
        let peer = call.legs[CALLEE].peer;
        let Some(d) = call.legs[CALLEE].dialog.as_mut() else { return };
        let seq = call.legs[CALLEE].invite.cseq().map(|c| c.seq).unwrap_or(1);
        let mut ack = d.request(Method::Ack, Some(seq));
        let local = self.ep.local_addr(peer.transport);
        ack.headers.push_front(
            HeaderName::Via,
            our_via(peer.transport, local, &new_branch(&mut self.ep.rng)),
        );
        if let Some(a) = from_a {
            copy_request_content(a, &mut ack, trusted_a);
            // A late offer's answer travels in the caller's ACK.
            let mut body = std::mem::take(&mut ack.body);
            if let Err(rej) = self.media_body(id, Side::A, &ack.headers, &mut body) {
                tracing::warn!(call = id, reason = %rej.warning, "SDP in the caller's ACK not anchored");
                body = a.body.clone();
            }
            ack.body = body;
        }
        let bytes = ack.to_bytes();
        if let Some(call) = self.app.calls.get_mut(&id) {
            call.callee_ack = Some(bytes.clone());
        }
        self.ep.layer.send_raw(peer, bytes);
    }

    /// Rewrites the body of a response from the callee for the caller (SDP answer); on failure
    /// the callee's body goes through unchanged and a warning is logged.
    pub(crate) fn answer_body(&mut self, id: u64, resp: &Response, out: &mut Response) {
        let mut body = std::mem::take(&mut out.body);
        if let Err(rej) = self.media_body(id, Side::B, &out.headers, &mut body) {
            tracing::warn!(call = id, reason = %rej.warning, "callee's SDP not anchored; relayed as is");
            body = resp.body.clone();
        }
        out.body = body;
    }

    pub(crate) fn on_no_ack(&mut self, key: ServerKey, now: Instant) {
        let Some(&id) = self.app.invites.get(&key) else { return };
        let Some(call) = self.app.calls.get(&id) else { return };
        if matches!(call.state, CallState::Answered { .. }) {
            tracing::warn!(call = id, "caller never acknowledged the 2xx; hanging up both legs");
            self.ack_b(id, None);
            self.send_bye(id, Side::B, now);
            self.send_bye(id, Side::A, now);
        }
    }

    /// A response no transaction wanted: re-ACK a 2xx retransmitted by the callee.
    pub(crate) fn on_stray_response(&mut self, resp: Response) {
        if resp.is_success() && resp.cseq().is_ok_and(|c| c.method == Method::Invite) {
            let call_id = resp.call_id().unwrap_or_default().to_string();
            let tag =
                resp.from().ok().and_then(|f| f.tag().map(str::to_string)).unwrap_or_default();
            if let Some((id, Side::B)) = self.ep.dialog::<App<R, M>, I>(&(call_id, tag)).copied() {
                if let Some(call) = self.app.calls.get(&id) {
                    if let Some(ack) = call.callee_ack.clone() {
                        self.ep.layer.send_raw(call.legs[CALLEE].peer, ack);
                        return;
                    }
                }
            }
        }
        self.ep.stats.dropped += 1;
    }
}

/// `resp` made usable as the start of a dialog that voicegw only means to ACK and hang up: a
/// missing or unparseable Contact becomes `target` (the request's), an unparseable
/// Record-Route set is dropped (the BYE goes to the peer the INVITE went to), a missing To
/// tag becomes `none`.
fn with_fallback_contact(resp: &Response, target: Uri) -> Response {
    let mut r = resp.clone();
    if r.contact().is_none_or(|c| c.is_err()) {
        r.headers.set(HeaderName::Contact, NameAddr::new(target).to_string());
    }
    if r.record_route().is_err() {
        r.headers.remove(&HeaderName::RecordRoute);
    }
    if r.to().ok().and_then(|t| t.tag().map(str::to_string)).is_none() {
        if let Ok(mut to) = r.to() {
            to.set_tag("none");
            r.headers.set(HeaderName::To, to.to_string());
        }
    }
    r
}
