use crate::Instant;

use bytes::Bytes;

use super::timers::{earliest, Retransmit};
use super::{ClientAction, TimerConfig};
use crate::message::{HeaderName, Method, Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    Calling,
    Proceeding,
    /// RFC 6026: a 2xx was received; further 2xx are passed to the TU until Timer M.
    Accepted,
    Completed,
    Terminated,
}

/// The INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §8.4).
#[derive(Debug)]
pub struct ClientInvite {
    pub state: ClientInviteState,
    request: Request,
    wire: Bytes,
    ack: Option<Bytes>,
    cfg: TimerConfig,
    reliable: bool,
    timer_a: Option<Retransmit>,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
}

/// What a timer expiry produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientTimerOutcome {
    Nothing,
    Retransmit(Bytes),
    /// Timer B: no final response in time; the TU treats this as a 408.
    Timeout,
}

impl ClientInvite {
    /// Starts the transaction; the caller transmits [`ClientInvite::wire`] once.
    pub fn new(request: Request, reliable: bool, now: Instant, cfg: TimerConfig) -> Self {
        let wire = request.to_bytes();
        ClientInvite {
            state: ClientInviteState::Calling,
            request,
            wire,
            ack: None,
            cfg,
            reliable,
            timer_a: (!reliable).then(|| Retransmit::start(now, cfg.t1)),
            timer_b: Some(now + cfg.timeout()),
            timer_d: None,
            timer_m: None,
        }
    }

    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Handles a response matched to this transaction. Returns the ACK to send for a non-2xx
    /// final response (also on retransmissions) and what to tell the TU.
    pub fn on_response(&mut self, resp: Response, now: Instant) -> (Option<Bytes>, ClientAction) {
        use ClientInviteState::*;
        match (self.state, resp.status) {
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.timer_a = None;
                (None, ClientAction::Deliver(resp))
            }
            (Calling | Proceeding, 200..=299) => {
                self.state = Accepted;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_m = Some(now + self.cfg.timeout());
                (None, ClientAction::Deliver(resp))
            }
            (Calling | Proceeding, _) => {
                self.state = Completed;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_d = Some(now + self.cfg.timer_d(self.reliable));
                let ack = self.build_ack(&resp).to_bytes();
                self.ack = Some(ack.clone());
                (Some(ack), ClientAction::Deliver(resp))
            }
            (Accepted, 200..=299) => (None, ClientAction::Deliver(resp)),
            (Completed, 300..=699) => (self.ack.clone(), ClientAction::Absorb),
            _ => (None, ClientAction::Absorb),
        }
    }

    /// The ACK for a non-2xx final response (§17.1.1.3).
    fn build_ack(&self, resp: &Response) -> Request {
        let mut ack = Request::new(Method::Ack, self.request.uri.clone());
        let h = &self.request.headers;
        if let Some(v) = h.get(&HeaderName::Via) {
            ack.headers.push(HeaderName::Via, v);
        }
        for r in h.get_all(&HeaderName::Route) {
            ack.headers.push(HeaderName::Route, r);
        }
        ack.headers.push(HeaderName::MaxForwards, "70");
        for name in [HeaderName::From] {
            if let Some(v) = h.get(&name) {
                ack.headers.push(name, v);
            }
        }
        if let Some(to) = resp.headers.get(&HeaderName::To) {
            ack.headers.push(HeaderName::To, to);
        }
        if let Some(v) = h.get(&HeaderName::CallId) {
            ack.headers.push(HeaderName::CallId, v);
        }
        let seq = self.request.cseq().map(|c| c.seq).unwrap_or(1);
        ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
        ack
    }

    pub fn deadline(&self) -> Option<Instant> {
        earliest(&[self.timer_a.map(|t| t.at), self.timer_b, self.timer_d, self.timer_m])
    }

    pub fn on_timeout(&mut self, now: Instant) -> ClientTimerOutcome {
        if self.timer_b.is_some_and(|t| now >= t) {
            self.terminate();
            return ClientTimerOutcome::Timeout;
        }
        if self.timer_d.is_some_and(|t| now >= t) || self.timer_m.is_some_and(|t| now >= t) {
            self.terminate();
            return ClientTimerOutcome::Nothing;
        }
        if let Some(a) = self.timer_a.as_mut() {
            if now >= a.at {
                // INVITE retransmissions are not capped by T2 (§17.1.1.2).
                a.backoff(now, None);
                return ClientTimerOutcome::Retransmit(self.wire.clone());
            }
        }
        ClientTimerOutcome::Nothing
    }

    /// Ends the transaction (e.g. transport error).
    pub fn terminate(&mut self) {
        self.state = ClientInviteState::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientInviteState::Terminated
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Message;

    fn invite() -> Request {
        match Message::parse(b"INVITE sip:b@c SIP/2.0\r\nVia: SIP/2.0/UDP gw:5060;branch=z9hG4bKc1\r\nRoute: <sip:p;lr>\r\nFrom: <sip:a@gw>;tag=f\r\nTo: <sip:b@c>\r\nCall-ID: x\r\nCSeq: 5 INVITE\r\n\r\n").unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn resp(code: u16) -> Response {
        let mut r = Response::new(code, "X");
        r.headers.push(HeaderName::To, "<sip:b@c>;tag=t");
        r
    }

    #[test]
    fn timer_a_doubles_without_cap_and_timer_b_fires_at_64_t1() {
        let t0 = Instant::ZERO;
        let cfg = TimerConfig::default();
        let mut tx = ClientInvite::new(invite(), false, t0, cfg);
        let mut sends = Vec::new();
        let mut now;
        loop {
            now = tx.deadline().unwrap();
            match tx.on_timeout(now) {
                ClientTimerOutcome::Retransmit(_) => sends.push(now - t0),
                ClientTimerOutcome::Timeout => break,
                ClientTimerOutcome::Nothing => {}
            }
        }
        let ms: Vec<u128> = sends.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(now - t0, Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_has_no_retransmissions() {
        let t0 = Instant::ZERO;
        let tx = ClientInvite::new(invite(), true, t0, TimerConfig::default());
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
    }

    #[test]
    fn non_2xx_is_acked_and_retransmissions_absorbed() {
        let t0 = Instant::ZERO;
        let mut tx = ClientInvite::new(invite(), false, t0, TimerConfig::default());
        let (ack, act) = tx.on_response(resp(180), t0);
        assert!(ack.is_none() && matches!(act, ClientAction::Deliver(_)));
        let (ack, act) = tx.on_response(resp(486), t0);
        let ack = ack.unwrap();
        assert!(matches!(act, ClientAction::Deliver(_)));
        let Message::Request(a) = Message::parse(&ack).unwrap() else { panic!() };
        assert_eq!(a.method, Method::Ack);
        assert_eq!(a.cseq().unwrap().to_string(), "5 ACK");
        assert_eq!(a.to().unwrap().tag(), Some("t"));
        assert_eq!(a.top_via().unwrap().branch(), Some("z9hG4bKc1"));
        assert_eq!(a.headers.get(&HeaderName::Route), Some("<sip:p;lr>"));
        let (again, act) = tx.on_response(resp(486), t0);
        assert_eq!(again, Some(ack));
        assert_eq!(act, ClientAction::Absorb);
        // Timer D: 32 s on UDP.
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(tx.on_timeout(t0 + Duration::from_secs(32)), ClientTimerOutcome::Nothing);
        assert!(tx.is_terminated());
    }

    #[test]
    fn accepted_state_passes_2xx_retransmissions_up() {
        let t0 = Instant::ZERO;
        let mut tx = ClientInvite::new(invite(), false, t0, TimerConfig::default());
        assert!(matches!(tx.on_response(resp(200), t0).1, ClientAction::Deliver(_)));
        assert_eq!(tx.state, ClientInviteState::Accepted);
        assert!(matches!(tx.on_response(resp(200), t0).1, ClientAction::Deliver(_)));
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
    }
}
