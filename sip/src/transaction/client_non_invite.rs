use crate::Instant;

use bytes::Bytes;

use super::client_invite::ClientTimerOutcome;
use super::timers::{earliest, Retransmit};
use super::{ClientAction, TimerConfig};
use crate::message::{Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// The non-INVITE client transaction (RFC 3261 §17.1.2).
#[derive(Debug)]
pub struct ClientNonInvite {
    pub state: ClientNonInviteState,
    request: Request,
    wire: Bytes,
    cfg: TimerConfig,
    reliable: bool,
    timer_e: Option<Retransmit>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
}

impl ClientNonInvite {
    pub fn new(request: Request, reliable: bool, now: Instant, cfg: TimerConfig) -> Self {
        let wire = request.to_bytes();
        ClientNonInvite {
            state: ClientNonInviteState::Trying,
            request,
            wire,
            cfg,
            reliable,
            timer_e: (!reliable).then(|| Retransmit::start(now, cfg.t1)),
            timer_f: Some(now + cfg.timeout()),
            timer_k: None,
        }
    }

    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    pub fn on_response(&mut self, resp: Response, now: Instant) -> ClientAction {
        use ClientNonInviteState::*;
        match (self.state, resp.status) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                ClientAction::Deliver(resp)
            }
            (Trying | Proceeding, _) => {
                self.state = Completed;
                self.timer_e = None;
                self.timer_f = None;
                self.timer_k = Some(now + self.cfg.t4_or_zero(self.reliable));
                ClientAction::Deliver(resp)
            }
            _ => ClientAction::Absorb,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        earliest(&[self.timer_e.map(|t| t.at), self.timer_f, self.timer_k])
    }

    pub fn on_timeout(&mut self, now: Instant) -> ClientTimerOutcome {
        if self.timer_f.is_some_and(|t| now >= t) {
            self.terminate();
            return ClientTimerOutcome::Timeout;
        }
        if self.timer_k.is_some_and(|t| now >= t) {
            self.terminate();
            return ClientTimerOutcome::Nothing;
        }
        let proceeding = self.state == ClientNonInviteState::Proceeding;
        let t2 = self.cfg.t2;
        if let Some(e) = self.timer_e.as_mut() {
            if now >= e.at {
                // In Proceeding the interval is T2 (§17.1.2.2); in Trying it doubles up to T2.
                if proceeding {
                    e.interval = t2;
                    e.at = now + t2;
                } else {
                    e.backoff(now, Some(t2));
                }
                return ClientTimerOutcome::Retransmit(self.wire.clone());
            }
        }
        ClientTimerOutcome::Nothing
    }

    pub fn terminate(&mut self) {
        self.state = ClientNonInviteState::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::message::{Method, Uri};

    fn bye() -> Request {
        Request::new(Method::Bye, Uri::parse("sip:a@b").unwrap())
    }

    #[test]
    fn timer_e_caps_at_t2_and_timer_f_times_out() {
        let t0 = Instant::ZERO;
        let mut tx = ClientNonInvite::new(bye(), false, t0, TimerConfig::default());
        let mut sends = Vec::new();
        loop {
            let now = tx.deadline().unwrap();
            match tx.on_timeout(now) {
                ClientTimerOutcome::Retransmit(_) => sends.push((now - t0).as_millis()),
                ClientTimerOutcome::Timeout => {
                    assert_eq!(now - t0, Duration::from_secs(32));
                    break;
                }
                ClientTimerOutcome::Nothing => {}
            }
        }
        assert_eq!(&sends[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
        assert!(tx.is_terminated());
    }

    #[test]
    fn final_response_then_timer_k() {
        let t0 = Instant::ZERO;
        let mut tx = ClientNonInvite::new(bye(), false, t0, TimerConfig::default());
        assert!(matches!(tx.on_response(Response::new(200, "OK"), t0), ClientAction::Deliver(_)));
        assert_eq!(tx.on_response(Response::new(200, "OK"), t0), ClientAction::Absorb);
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(5)));
        tx.on_timeout(t0 + Duration::from_secs(5));
        assert!(tx.is_terminated());
        let mut tcp = ClientNonInvite::new(bye(), true, t0, TimerConfig::default());
        tcp.on_response(Response::new(200, "OK"), t0);
        assert_eq!(tcp.deadline(), Some(t0));
    }
}
