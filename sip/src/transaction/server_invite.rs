use crate::Instant;

use bytes::Bytes;

use super::timers::{earliest, Retransmit};
use super::TimerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    Proceeding,
    /// A 2xx was sent: retransmitted until the ACK (see the module note on RFC 6026).
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

/// What the server transaction asks of the layer after an input.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerOutcome {
    Nothing,
    /// (Re)send these bytes to the peer.
    Transmit(Bytes),
    /// Timer H or L: the ACK never came.
    NoAck,
}

/// The INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §8.7).
#[derive(Debug)]
pub struct ServerInvite {
    pub state: ServerInviteState,
    cfg: TimerConfig,
    reliable: bool,
    last_response: Option<Bytes>,
    last_status: u16,
    /// Timer G (non-2xx) or the 2xx retransmission timer.
    retransmit: Option<Retransmit>,
    /// Timer H (Completed) or Timer L (Accepted).
    give_up: Option<Instant>,
    timer_i: Option<Instant>,
}

impl ServerInvite {
    pub fn new(reliable: bool, cfg: TimerConfig) -> Self {
        ServerInvite {
            state: ServerInviteState::Proceeding,
            cfg,
            reliable,
            last_response: None,
            last_status: 0,
            retransmit: None,
            give_up: None,
            timer_i: None,
        }
    }

    /// The TU sends a response. Returns the bytes to transmit, or `None` if the state forbids it.
    pub fn send_response(&mut self, status: u16, wire: Bytes, now: Instant) -> Option<Bytes> {
        if self.state != ServerInviteState::Proceeding {
            return None;
        }
        self.last_response = Some(wire.clone());
        self.last_status = status;
        match status {
            100..=199 => {}
            200..=299 => {
                self.state = ServerInviteState::Accepted;
                self.retransmit = (!self.reliable).then(|| Retransmit::start(now, self.cfg.t1));
                self.give_up = Some(now + self.cfg.timeout());
            }
            _ => {
                self.state = ServerInviteState::Completed;
                self.retransmit = (!self.reliable).then(|| Retransmit::start(now, self.cfg.t1));
                self.give_up = Some(now + self.cfg.timeout());
            }
        }
        Some(wire)
    }

    /// The INVITE was retransmitted by the peer.
    pub fn on_request_retransmission(&mut self) -> ServerOutcome {
        match (self.state, &self.last_response) {
            (
                ServerInviteState::Proceeding
                | ServerInviteState::Completed
                | ServerInviteState::Accepted,
                Some(r),
            ) => ServerOutcome::Transmit(r.clone()),
            _ => ServerOutcome::Nothing,
        }
    }

    /// An ACK matched this transaction (non-2xx), or the TU saw the ACK for our 2xx.
    pub fn on_ack(&mut self, now: Instant) {
        match self.state {
            ServerInviteState::Completed => {
                self.state = ServerInviteState::Confirmed;
                self.retransmit = None;
                self.give_up = None;
                self.timer_i = Some(now + self.cfg.t4_or_zero(self.reliable));
            }
            ServerInviteState::Accepted => {
                // Stay until Timer L absorbs retransmitted ACKs; stop sending the 2xx.
                self.retransmit = None;
                self.state = ServerInviteState::Confirmed;
                self.give_up = None;
                self.timer_i = Some(now + self.cfg.t4_or_zero(self.reliable));
            }
            _ => {}
        }
    }

    pub fn last_status(&self) -> u16 {
        self.last_status
    }

    pub fn deadline(&self) -> Option<Instant> {
        earliest(&[self.retransmit.map(|t| t.at), self.give_up, self.timer_i])
    }

    pub fn on_timeout(&mut self, now: Instant) -> ServerOutcome {
        if self.timer_i.is_some_and(|t| now >= t) {
            self.terminate();
            return ServerOutcome::Nothing;
        }
        if self.give_up.is_some_and(|t| now >= t) {
            self.terminate();
            return ServerOutcome::NoAck;
        }
        if let Some(g) = self.retransmit.as_mut() {
            if now >= g.at {
                g.backoff(now, Some(self.cfg.t2));
                if let Some(r) = &self.last_response {
                    return ServerOutcome::Transmit(r.clone());
                }
            }
        }
        ServerOutcome::Nothing
    }

    pub fn terminate(&mut self) {
        self.state = ServerInviteState::Terminated;
        self.retransmit = None;
        self.give_up = None;
        self.timer_i = None;
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn non_2xx_retransmitted_by_timer_g_until_timer_h() {
        let t0 = Instant::ZERO;
        let mut tx = ServerInvite::new(false, TimerConfig::default());
        assert!(tx.send_response(100, Bytes::from_static(b"100"), t0).is_some());
        assert_eq!(
            tx.on_request_retransmission(),
            ServerOutcome::Transmit(Bytes::from_static(b"100"))
        );
        tx.send_response(486, Bytes::from_static(b"486"), t0);
        let mut sends = Vec::new();
        loop {
            let now = tx.deadline().unwrap();
            match tx.on_timeout(now) {
                ServerOutcome::Transmit(_) => sends.push((now - t0).as_millis()),
                ServerOutcome::NoAck => {
                    assert_eq!(now - t0, Duration::from_secs(32));
                    break;
                }
                ServerOutcome::Nothing => {}
            }
        }
        assert_eq!(&sends[..5], &[500, 1500, 3500, 7500, 11500]);
    }

    #[test]
    fn ack_confirms_then_timer_i_terminates() {
        let t0 = Instant::ZERO;
        let mut tx = ServerInvite::new(false, TimerConfig::default());
        tx.send_response(404, Bytes::from_static(b"404"), t0);
        tx.on_ack(t0 + Duration::from_millis(10));
        assert_eq!(tx.state, ServerInviteState::Confirmed);
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_millis(5010)));
        assert_eq!(tx.on_timeout(t0 + Duration::from_millis(5010)), ServerOutcome::Nothing);
        assert!(tx.is_terminated());
    }

    #[test]
    fn two_hundred_retransmitted_until_ack() {
        let t0 = Instant::ZERO;
        let mut tx = ServerInvite::new(false, TimerConfig::default());
        tx.send_response(200, Bytes::from_static(b"200"), t0);
        let at = tx.deadline().unwrap();
        assert_eq!(at - t0, Duration::from_millis(500));
        assert_eq!(tx.on_timeout(at), ServerOutcome::Transmit(Bytes::from_static(b"200")));
        tx.on_ack(at);
        assert_eq!(tx.on_request_retransmission(), ServerOutcome::Nothing);
        // No more 2xx retransmissions once ACKed.
        let next = tx.deadline().unwrap();
        assert_eq!(next - at, Duration::from_secs(5));
        // TCP: no retransmission timer, only Timer L.
        let mut tcp = ServerInvite::new(true, TimerConfig::default());
        tcp.send_response(200, Bytes::from_static(b"200"), t0);
        assert_eq!(tcp.deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(tcp.on_timeout(t0 + Duration::from_secs(32)), ServerOutcome::NoAck);
    }
}
