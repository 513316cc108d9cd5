//! In-dialog traffic: ACK, BYE, re-INVITE, UPDATE and other requests relayed between the legs.

use crate::Instant;

use super::anchor::Anchor;
use super::build::{
    copy_request_content, copy_response_content, new_branch, our_contact, our_via, response_to,
};
use super::call::{CallState, PendingAck, Relay, Side, CALLEE, CALLER};
use super::core::{App, Cx, Owner, Purpose};
use super::router::Router;
use crate::endpoint::Carries;
use crate::message::{HeaderName, Method, Request, Response};
use crate::transaction::{ClientKey, ServerKey};
use crate::Peer;

fn is_target_refresh(m: &Method) -> bool {
    matches!(
        m,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

impl<R: Router, M: Anchor, H: Carries<App<R, M>, I>, const I: usize> Cx<'_, R, M, H, I> {
    fn find_dialog(&self, req: &Request) -> Option<(u64, Side)> {
        let call_id = req.call_id().ok()?.to_string();
        let tag = req.to().ok()?.tag()?.to_string();
        self.ep.dialog::<App<R, M>, I>(&(call_id, tag)).copied()
    }

    pub(crate) fn on_in_dialog(&mut self, key: ServerKey, req: Request, _peer: Peer, now: Instant) {
        let Some((id, side)) = self.find_dialog(&req) else {
            self.respond(&key, &response_to(&req, 481, None), now);
            return;
        };
        let Some(call) = self.app.calls.get_mut(&id) else {
            self.respond(&key, &response_to(&req, 481, None), now);
            return;
        };
        if call.dialog_mut(side).is_none() {
            // Early dialog: a BYE from the caller before answer ends the attempt like a CANCEL.
            if side == Side::A
                && req.method == Method::Bye
                && matches!(call.state, CallState::Proceeding { .. })
            {
                self.respond(&key, &response_to(&req, 200, None), now);
                self.cancel_call(id, now);
            } else {
                self.respond(&key, &response_to(&req, 481, None), now);
            }
            return;
        }
        let other = side.other();
        if call.dialog_mut(other).is_none() {
            self.respond(&key, &response_to(&req, 481, None), now);
            return;
        }
        // A BYE from the caller proves it had the 2xx, even if its ACK was lost on the way:
        // the callee's 2xx is acknowledged before the BYE reaches it (a callee still waiting
        // for its ACK takes the BYE as out of order and keeps resending the 2xx).
        if side == Side::A
            && req.method == Method::Bye
            && matches!(call.state, CallState::Answered { .. })
            && call.callee_ack.is_none()
        {
            self.ack_b(id, None);
        }
        let Some(call) = self.app.calls.get_mut(&id) else { return };
        let Some(origin) = call.dialog_mut(side) else { return };
        if !origin.accept_remote_seq(&req) {
            let mut r = response_to(&req, 500, None);
            r.headers.push(HeaderName::Warning, "399 voicegw \"CSeq out of order\"");
            self.respond(&key, &r, now);
            return;
        }
        if is_target_refresh(&req.method) {
            origin.refresh_target(req.contact().and_then(Result::ok));
        }
        if req.method == Method::Invite && call.pending_ack.is_some() {
            self.respond(&key, &response_to(&req, 491, None), now);
            return;
        }
        let peer = call.peer(other);
        let local = self.ep.local_addr(peer.transport);
        let Some(d) = call.dialog_mut(other) else { return };
        let mut out = d.request(req.method.clone(), None);
        out.headers.push_front(
            HeaderName::Via,
            our_via(peer.transport, local, &new_branch(&mut self.ep.rng)),
        );
        if is_target_refresh(&req.method) {
            out.headers.push(HeaderName::Contact, our_contact(peer.transport, local));
        }
        copy_request_content(&req, &mut out, call.trusts(side));
        if req.method == Method::Bye {
            call.state = call.state.terminating();
        }
        let mut body = std::mem::take(&mut out.body);
        if let Err(rej) = self.media_body(id, side, &out.headers, &mut body) {
            let mut r = response_to(&req, rej.status, None);
            r.headers.push(
                HeaderName::Warning,
                format!("399 voicegw \"{}\"", rej.warning.replace('"', "")),
            );
            self.respond(&key, &r, now);
            return;
        }
        out.body = body;
        let purpose = Purpose::Relay;
        match self.send_request(out, peer, Owner { call: id, purpose }, now) {
            Ok(ck) => {
                if let Some(call) = self.app.calls.get_mut(&id) {
                    call.relays.insert(ck, Relay { origin: side, server_key: key, request: req });
                }
            }
            Err(e) => {
                // Never leave the server transaction unanswered.
                tracing::error!(error = %e, "could not relay an in-dialog request");
                self.respond(&key, &response_to(&req, 500, None), now);
            }
        }
    }

    /// A response to a request we relayed (or to our own BYE).
    pub(crate) fn on_relay_response(
        &mut self,
        id: u64,
        key: ClientKey,
        resp: Response,
        now: Instant,
    ) {
        let Some(call) = self.app.calls.get_mut(&id) else { return };
        let final_resp = !resp.is_provisional();
        let Some(relay) =
            (if final_resp { call.relays.remove(&key) } else { None }).or_else(|| {
                call.relays.get(&key).map(|r| Relay {
                    origin: r.origin,
                    server_key: r.server_key.clone(),
                    request: r.request.clone(),
                })
            })
        else {
            // Our own BYE.
            if final_resp && key.method == Method::Bye {
                call.own_byes = call.own_byes.saturating_sub(1);
                if call.own_byes == 0 {
                    let status = if call.state.answered_at().is_some() { 200 } else { 487 };
                    self.end_call(id, status, "BYE", now);
                }
            }
            return;
        };
        let method = relay.request.method.clone();
        let mut out = response_to(&relay.request, resp.status, None);
        copy_response_content(&resp, &mut out, call.trusts(relay.origin.other()));
        if is_target_refresh(&method) && resp.status < 300 {
            let origin_peer = call.peer(relay.origin);
            out.headers.push(
                HeaderName::Contact,
                our_contact(origin_peer.transport, self.ep.local_addr(origin_peer.transport)),
            );
            if let Some(d) = call.dialog_mut(relay.origin.other()) {
                d.refresh_target(resp.contact().and_then(Result::ok));
            }
        }
        if method == Method::Invite && resp.is_success() {
            let other_cseq = key_cseq(&self.ep.layer, &key).unwrap_or(0);
            call.pending_ack = Some(PendingAck {
                origin: relay.origin,
                server_key: relay.server_key.clone(),
                other_cseq,
            });
        }
        let mut body = std::mem::take(&mut out.body);
        if let Err(rej) = self.media_body(id, relay.origin.other(), &out.headers, &mut body) {
            tracing::warn!(call = id, reason = %rej.warning, "SDP in a relayed response not anchored; relayed as is");
            body = resp.body.clone();
        }
        out.body = body;
        self.respond_for(Some(id), &relay.server_key, &out, now);
        if method == Method::Bye && final_resp {
            self.end_call(id, 200, "BYE", now);
        }
    }

    /// An ACK outside any transaction: for our 2xx to the caller, or for a relayed re-INVITE.
    pub(crate) fn on_ack(&mut self, req: Request, _peer: Peer, now: Instant) {
        let Some((id, side)) = self.find_dialog(&req) else { return };
        let Some(call) = self.app.calls.get_mut(&id) else { return };
        let seq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let answered_at = match call.state {
            CallState::Answered { at } if side == Side::A => Some(at),
            _ => None,
        };
        if let Some(at) =
            answered_at.filter(|_| call.legs[CALLER].invite.cseq().is_ok_and(|c| c.seq == seq))
        {
            call.state = CallState::Confirmed { at };
            let key = call.inbound.clone();
            self.ep.layer.ack_received(&key, now);
            self.ack_b(id, Some(&req));
            return;
        }
        let Some(p) = call.pending_ack.take_if(|p| p.origin == side) else { return };
        self.ep.layer.ack_received(&p.server_key, now);
        let peer = call.peer(side.other());
        let local = self.ep.local_addr(peer.transport);
        let Some(d) = call.dialog_mut(side.other()) else { return };
        let mut ack = d.request(Method::Ack, Some(p.other_cseq));
        ack.headers.push_front(
            HeaderName::Via,
            our_via(peer.transport, local, &new_branch(&mut self.ep.rng)),
        );
        copy_request_content(&req, &mut ack, call.trusts(side));
        let mut body = std::mem::take(&mut ack.body);
        if let Err(rej) = self.media_body(id, side, &ack.headers, &mut body) {
            tracing::warn!(call = id, reason = %rej.warning, "SDP in a relayed ACK not anchored");
            body = req.body.clone();
        }
        ack.body = body;
        self.ep.layer.send_raw(peer, ack.to_bytes());
    }

    /// voicegw ends a call itself (media inactivity, operator): BYE to both legs once answered,
    /// 487 to the caller and CANCEL to the callee before. Returns false for an unknown call.
    pub(crate) fn hang_up(&mut self, id: u64, reason: &str, now: Instant) -> bool {
        let Some(call) = self.app.calls.get(&id) else { return false };
        tracing::info!(call = id, reason, "hanging up");
        match call.state {
            CallState::Proceeding { .. } => self.cancel_call(id, now),
            CallState::Answered { .. } | CallState::Confirmed { .. } => {
                self.ack_b(id, None);
                self.send_bye(id, Side::A, now);
                self.send_bye(id, Side::B, now);
            }
            CallState::Cancelling { .. } | CallState::Terminating { .. } => {}
        }
        true
    }

    /// Sends a BYE that [`B2bua::recovery_byes`] made in an earlier run of the process; its
    /// response (or timeout) ends nothing here.
    pub(crate) fn send_recovery_bye(&mut self, peer: Peer, mut bye: Request, now: Instant) {
        let local = self.ep.local_addr(peer.transport);
        bye.headers.push_front(
            HeaderName::Via,
            our_via(peer.transport, local, &new_branch(&mut self.ep.rng)),
        );
        let owner = Owner { call: 0, purpose: Purpose::Discard };
        if let Err(e) = self.send_request(bye, peer, owner, now) {
            tracing::warn!(error = %e, %peer, "recovery BYE not sent");
        }
    }

    /// voicegw hangs up one leg itself.
    pub(crate) fn send_bye(&mut self, id: u64, side: Side, now: Instant) {
        let Some(call) = self.app.calls.get_mut(&id) else { return };
        let peer = call.peer(side);
        let local = self.ep.local_addr(peer.transport);
        let Some(d) = call.dialog_mut(side) else { return };
        let mut bye = d.request(Method::Bye, None);
        bye.headers.push_front(
            HeaderName::Via,
            our_via(peer.transport, local, &new_branch(&mut self.ep.rng)),
        );
        bye.headers.push(HeaderName::parse("Reason"), "SIP;cause=200;text=\"voicegw hung up\"");
        call.state = call.state.terminating();
        call.own_byes += 1;
        let _ = self.send_request(bye, peer, Owner { call: id, purpose: Purpose::Bye }, now);
    }
}

fn key_cseq<O: Clone>(layer: &crate::transaction::Layer<O>, key: &ClientKey) -> Option<u32> {
    layer.client_request(key).and_then(|(r, _)| r.cseq().ok()).map(|c| c.seq)
}

/// The BYEs that would end call `id`'s answered legs (without a Via: one is added when
/// sent), for the gateway to journal, so that a restart after a crash can end both legs of
/// the calls it cut ([`B2bua::send_recovery_bye`]). The CSeq is set 1000 above the
/// dialog's, so in-dialog requests sent after the journal was written do not make the BYE
/// look old. Stream legs are addressed to their remote target (the old connection is gone).
pub(crate) fn recovery_byes<R: Router, M: Anchor>(
    app: &App<R, M>,
    id: u64,
) -> Vec<(Peer, Request)> {
    let Some(call) = app.calls.get(&id) else { return Vec::new() };
    let mut out = Vec::new();
    for (side, dialog) in
        [(Side::A, &call.legs[CALLER].dialog), (Side::B, &call.legs[CALLEE].dialog)]
    {
        let Some(mut d) = dialog.clone() else { continue };
        d.local_seq = d.local_seq.saturating_add(999);
        let mut bye = d.request(Method::Bye, None);
        bye.headers.push(HeaderName::parse("Reason"), "SIP;cause=200;text=\"voicegw restarted\"");
        let peer = call.peer(side);
        let peer = if peer.transport.is_reliable() {
            let uri = &d.remote_target;
            let host = uri.host.trim_start_matches('[').trim_end_matches(']');
            let Ok(ip) = host.parse::<std::net::IpAddr>() else { continue };
            let port = uri.port.unwrap_or(peer.transport.default_port());
            Peer::new(peer.transport, std::net::SocketAddr::new(ip, port))
        } else {
            Peer::new(peer.transport, peer.addr)
        };
        out.push((peer, bye));
    }
    out
}
