//! New calls: the caller's INVITE, the outbound INVITE and its responses, CANCEL.

use crate::Instant;
use std::collections::{HashMap, VecDeque};

use super::anchor::Anchor;
use super::build::{
    copy_request_content, copy_response_content, new_branch, our_contact, our_via, random_token,
    response_to, uuid_v4,
};
use super::call::{Call, CallState, Leg, Side, CALLEE, CALLER};
use super::core::{App, CallEvent, Cx, Owner, Purpose};
use super::router::{Reject, Router, Target, Verdict};
use crate::dialog::Dialog;
use crate::endpoint::Carries;
use crate::message::{HeaderName, Method, NameAddr, Request, Response, Uri};
use crate::transaction::{ClientKey, ServerKey};
use crate::Peer;

impl<R: Router, M: Anchor, H: Carries<App<R, M>, I>, const I: usize> Cx<'_, R, M, H, I> {
    pub(crate) fn on_invite(&mut self, key: ServerKey, req: Request, peer: Peer, now: Instant) {
        let call_id = req.call_id().unwrap_or_default().to_string();
        let reject = |this: &mut Self, rej: Reject, verdict: Option<&Verdict>| {
            let status = rej.status;
            let mut resp = response_to(&req, status, Some(&random_token(&mut this.ep.rng, 10)));
            if !rej.warning.is_empty() {
                let w: String = rej.warning.chars().filter(|c| *c != '"').collect();
                resp.headers.push(HeaderName::Warning, format!("399 voicegw \"{w}\""));
            }
            if let Some(s) = rej.retry_after {
                resp.headers.push(HeaderName::RetryAfter, s.to_string());
            }
            for c in &rej.challenges {
                resp.headers.push(HeaderName::ProxyAuthenticate, c.clone());
            }
            if status == 420 {
                for r in req.headers.get_all(&HeaderName::Require) {
                    resp.headers.push(HeaderName::Unsupported, r);
                }
            }
            this.respond(&key, &resp, now);
            let transaction_id = uuid_v4(&mut this.ep.rng);
            this.emit(CallEvent::Rejected {
                transaction_id,
                call_id: call_id.clone(),
                status,
                reason: rej.warning,
                cause: rej.cause,
                source: peer,
                voice_connector_id: verdict.and_then(|v| v.voice_connector_id.clone()),
                direction: verdict.and_then(|v| v.direction),
                from: req.headers.get(&HeaderName::From).unwrap_or_default().to_string(),
                to: req.uri.to_string(),
                auth_user: verdict.and_then(|v| v.auth_user.clone()),
            });
        };
        let fail = |status, warning: &str, retry| {
            let mut r = Reject::new(status, warning);
            r.retry_after = retry;
            r
        };
        if self.app.draining {
            return reject(self, fail(503, "shutting down", Some(5)), None);
        }
        if let Some(why) = self.app.refusing {
            return reject(self, fail(503, why, Some(5)), None);
        }
        if req.max_forwards() == Some(0) {
            return reject(self, fail(483, "Max-Forwards reached 0", None), None);
        }
        if req.headers.contains(&HeaderName::Require) {
            return reject(self, fail(420, "unsupported extension required", None), None);
        }
        if req.contact().is_none_or(|c| c.is_err()) {
            return reject(self, fail(400, "INVITE without a valid Contact", None), None);
        }
        if self.app.calls.len() >= self.app.max_calls {
            return reject(self, fail(503, "call capacity reached", Some(1)), None);
        }
        let verdict = self.app.router.route(&req, &peer, now);
        let route = match verdict.result.clone() {
            Ok(r) if !r.targets.is_empty() => r,
            Ok(_) => {
                return reject(self, fail(500, "route without a next hop", None), Some(&verdict))
            }
            Err(rej) => return reject(self, rej, Some(&verdict)),
        };
        self.app.next_call += 1;
        let id = self.app.next_call;
        let a_tag = random_token(&mut self.ep.rng, 12);
        // 100 Trying at once stops the caller's INVITE retransmissions (§17.2.1).
        self.respond(&key, &response_to(&req, 100, None), now);

        let mut targets: VecDeque<Target> = route.targets.iter().cloned().collect();
        let first = targets.pop_front().expect("checked non-empty");
        let b_call_id = format!("{}@voicegw", random_token(&mut self.ep.rng, 20));
        let b_tag = random_token(&mut self.ep.rng, 12);
        let mut b =
            self.build_b_invite(&req, &first, &b_call_id, &b_tag, route.caller_id.as_deref());
        // The customer's leg asserts identities only inside the trust domain.
        let customer = match route.direction {
            super::router::Direction::Outbound => Side::A,
            super::router::Direction::Inbound => Side::B,
        };
        let untrusted = (!route.customer_asserts_identity).then_some(customer);
        copy_request_content(&req, &mut b, untrusted != Some(Side::A));
        let transaction_id = uuid_v4(&mut self.ep.rng);
        let opened = self.app.anchor.open(id, &transaction_id, &route, &req);
        self.collect_output();
        if let Err(rej) = opened {
            return reject(self, rej, Some(&verdict));
        }
        let mut body = std::mem::take(&mut b.body);
        if let Err(rej) = self.media_body(id, Side::A, &b.headers, &mut body) {
            self.app.anchor.close(id);
            return reject(self, rej, Some(&verdict));
        }
        b.body = body;

        let b_key = match self.send_request(
            b.clone(),
            first.peer,
            Owner { call: id, purpose: Purpose::Invite },
            now,
        ) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "could not start the outbound INVITE");
                self.app.anchor.close(id);
                return reject(self, fail(500, "internal error", None), Some(&verdict));
            }
        };
        self.emit(CallEvent::Started {
            call: id,
            transaction_id,
            call_id: call_id.clone(),
            b_call_id: b_call_id.clone(),
            direction: route.direction,
            voice_connector_id: first.voice_connector_id.clone(),
            from: req.headers.get(&HeaderName::From).unwrap_or_default().to_string(),
            to: req.uri.to_string(),
            target: first.peer,
            auth_user: verdict.auth_user.clone(),
        });
        let call_id_a = call_id.clone();
        self.ep.insert_dialog::<App<R, M>, I>((call_id, a_tag.clone()), (id, Side::A));
        self.ep.insert_dialog::<App<R, M>, I>((b_call_id.clone(), b_tag.clone()), (id, Side::B));
        self.app.invites.insert(key.clone(), id);
        self.emit(CallEvent::ResponseSent { call: id, status: 100 });
        self.app.calls.insert(
            id,
            Call {
                state: CallState::Proceeding { provisional: false },
                legs: [
                    Leg { invite: req, peer, call_id: call_id_a, tag: a_tag, dialog: None },
                    Leg {
                        invite: b,
                        peer: first.peer,
                        call_id: b_call_id,
                        tag: b_tag,
                        dialog: None,
                    },
                ],
                inbound: key,
                outbound: b_key,
                callee_ack: None,
                relays: HashMap::new(),
                pending_ack: None,
                own_byes: 0,
                next_targets: targets,
                best_failure: None,
                caller_id: route.caller_id,
                untrusted,
            },
        );
    }

    /// The outbound INVITE towards `target`, without body.
    fn build_b_invite(
        &mut self,
        req: &Request,
        target: &Target,
        b_call_id: &str,
        b_tag: &str,
        caller_id: Option<&str>,
    ) -> Request {
        let local = self.local_addr(target.peer.transport);
        let mut b = Request::new(Method::Invite, target.request_uri.clone());
        b.headers.push(
            HeaderName::Via,
            our_via(target.peer.transport, local, &new_branch(&mut self.ep.rng)),
        );
        let mf = req.max_forwards().unwrap_or(70).min(70).saturating_sub(1);
        b.headers.push(HeaderName::MaxForwards, mf.to_string());
        let a_from = req.from().ok();
        let mut from_uri = a_from
            .as_ref()
            .map(|f| f.uri.clone())
            .unwrap_or_else(|| Uri::sip(None, "invalid", None));
        if let Some(user) = caller_id {
            from_uri.user = Some(user.to_string());
        }
        from_uri.host = super::build::host_of(local);
        from_uri.port = None;
        from_uri.params = Default::default();
        from_uri.headers = None;
        let mut from = NameAddr::new(from_uri);
        from.display = a_from.and_then(|f| f.display);
        from.set_tag(b_tag);
        b.headers.push(HeaderName::From, from.to_string());
        let mut to_uri = target.request_uri.clone();
        to_uri.params = Default::default();
        to_uri.headers = None;
        let mut to = NameAddr::new(to_uri);
        to.display = req.to().ok().and_then(|t| t.display);
        b.headers.push(HeaderName::To, to.to_string());
        b.headers.push(HeaderName::CallId, b_call_id);
        b.headers.push(HeaderName::CSeq, "1 INVITE");
        b.headers.push(HeaderName::Contact, our_contact(target.peer.transport, local));
        b.headers.push(HeaderName::UserAgent, self.ep.cfg.user_agent.clone());
        b
    }

    /// The outbound leg failed with `failure` (a response, or `None` for a timeout or transport
    /// error). Tries the next target when the failure allows it and one is left; returns whether
    /// it did.
    fn try_next_target(&mut self, id: u64, failure: Option<&Response>, now: Instant) -> bool {
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
    fn fail_call(&mut self, id: u64, now: Instant) {
        let Some(call) = self.app.calls.get_mut(&id) else { return };
        let (caller_has_final, cancelled) =
            (call.state.caller_has_final(), matches!(call.state, CallState::Cancelling { .. }));
        self.finish_failed(id, caller_has_final, cancelled, now);
    }

    /// [`Self::fail_call`] for a call whose state was read before voicegw hung up the callee:
    /// the failure goes to the caller unless it `caller_has_final` response, and the call
    /// ends as `cancelled` (487) or with the failure's status.
    fn finish_failed(&mut self, id: u64, caller_has_final: bool, cancelled: bool, now: Instant) {
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
    fn on_b_invite_response(&mut self, id: u64, resp: Response, now: Instant) {
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
    fn ack_and_bye_fork(&mut self, id: u64, resp: &Response, now: Instant) {
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
    fn answer_body(&mut self, id: u64, resp: &Response, out: &mut Response) {
        let mut body = std::mem::take(&mut out.body);
        if let Err(rej) = self.media_body(id, Side::B, &out.headers, &mut body) {
            tracing::warn!(call = id, reason = %rej.warning, "callee's SDP not anchored; relayed as is");
            body = resp.body.clone();
        }
        out.body = body;
    }

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
    fn send_cancel_b(&mut self, id: u64, now: Instant) {
        let Some(call) = self.app.calls.get(&id) else { return };
        if !self.ep.layer.client_pending(&call.outbound) {
            return;
        }
        let inv = &call.legs[CALLEE].invite;
        let mut c = Request::new(Method::Cancel, inv.uri.clone());
        for name in [
            HeaderName::Via,
            HeaderName::MaxForwards,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
        ] {
            if let Some(v) = inv.headers.get(&name) {
                c.headers.push(name, v);
            }
        }
        for r in inv.headers.get_all(&HeaderName::Route) {
            c.headers.push(HeaderName::Route, r);
        }
        let seq = inv.cseq().map(|s| s.seq).unwrap_or(1);
        c.headers.push(HeaderName::CSeq, format!("{seq} CANCEL"));
        let peer = call.legs[CALLEE].peer;
        let _ = self.send_request(c, peer, Owner { call: id, purpose: Purpose::Cancel }, now);
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
