//! New calls: the caller's INVITE admitted, routed and anchored, and the outbound INVITE
//! built for a next hop.

use crate::Instant;
use std::collections::{HashMap, VecDeque};

use super::anchor::Anchor;
use super::build::{
    copy_request_content, new_branch, our_contact, our_via, random_token, response_to, uuid_v4,
};
use super::call::{Call, CallState, Leg, Side};
use super::core::{App, CallEvent, Cx, Owner, Purpose};
use super::router::{Reject, Router, Target, Verdict};
use crate::endpoint::Carries;
use crate::message::{HeaderName, Method, NameAddr, Request, Uri};
use crate::transaction::ServerKey;
use crate::Peer;

impl<R: Router, M: Anchor, H: Carries<App<R, M>, I>, const I: usize> Cx<'_, R, M, H, I> {
    /// Why a new INVITE is refused before it is routed, if it is.
    fn refusal(&self, req: &Request) -> Option<Reject> {
        let fail = |status, warning: &str, retry| {
            let mut r = Reject::new(status, warning);
            r.retry_after = retry;
            Some(r)
        };
        if self.app.draining {
            return fail(503, "shutting down", Some(5));
        }
        if let Some(why) = self.app.refusing {
            return fail(503, why, Some(5));
        }
        if req.max_forwards() == Some(0) {
            return fail(483, "Max-Forwards reached 0", None);
        }
        if req.headers.contains(&HeaderName::Require) {
            return fail(420, "unsupported extension required", None);
        }
        if req.contact().is_none_or(|c| c.is_err()) {
            return fail(400, "INVITE without a valid Contact", None);
        }
        if self.app.calls.len() >= self.app.max_calls {
            return fail(503, "call capacity reached", Some(1));
        }
        None
    }

    /// Refuses a new INVITE with `rej` (its `Warning`, `Retry-After`, challenges) and reports
    /// it; `verdict` is the router's, when it got that far.
    fn refuse(
        &mut self,
        key: &ServerKey,
        req: &Request,
        peer: Peer,
        rej: Reject,
        verdict: Option<&Verdict>,
        now: Instant,
    ) {
        let status = rej.status;
        let mut resp = response_to(req, status, Some(&random_token(&mut self.ep.rng, 10)));
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
        self.respond(key, &resp, now);
        let transaction_id = uuid_v4(&mut self.ep.rng);
        self.emit(CallEvent::Rejected {
            transaction_id,
            call_id: req.call_id().unwrap_or_default().to_string(),
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
    }

    /// A new INVITE: admitted, routed, anchored and sent to its first next hop, or refused.
    pub(crate) fn on_invite(&mut self, key: ServerKey, req: Request, peer: Peer, now: Instant) {
        let call_id = req.call_id().unwrap_or_default().to_string();
        let reject = |this: &mut Self, rej: Reject, verdict: Option<&Verdict>| {
            this.refuse(&key, &req, peer, rej, verdict, now)
        };
        if let Some(rej) = self.refusal(&req) {
            return reject(self, rej, None);
        }
        let verdict = self.app.router.route(&req, &peer, now);
        let route = match verdict.result.clone() {
            Ok(r) if !r.targets.is_empty() => r,
            Ok(_) => {
                let rej = Reject::new(500, "route without a next hop");
                return reject(self, rej, Some(&verdict));
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
                return reject(self, Reject::new(500, "internal error"), Some(&verdict));
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
    pub(crate) fn build_b_invite(
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
}
