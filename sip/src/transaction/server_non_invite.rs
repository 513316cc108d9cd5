use crate::Instant;

use bytes::Bytes;

use super::server_invite::ServerOutcome;
use super::TimerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// The non-INVITE server transaction (RFC 3261 §17.2.2).
#[derive(Debug)]
pub struct ServerNonInvite {
    pub state: ServerNonInviteState,
    cfg: TimerConfig,
    reliable: bool,
    last_response: Option<Bytes>,
    timer_j: Option<Instant>,
}

impl ServerNonInvite {
    pub fn new(reliable: bool, cfg: TimerConfig) -> Self {
        ServerNonInvite {
            state: ServerNonInviteState::Trying,
            cfg,
            reliable,
            last_response: None,
            timer_j: None,
        }
    }

    pub fn send_response(&mut self, status: u16, wire: Bytes, now: Instant) -> Option<Bytes> {
        match self.state {
            ServerNonInviteState::Trying | ServerNonInviteState::Proceeding => {}
            _ => return None,
        }
        self.last_response = Some(wire.clone());
        if status < 200 {
            self.state = ServerNonInviteState::Proceeding;
        } else {
            self.state = ServerNonInviteState::Completed;
            let j = if self.reliable { std::time::Duration::ZERO } else { self.cfg.timeout() };
            self.timer_j = Some(now + j);
        }
        Some(wire)
    }

    pub fn on_request_retransmission(&mut self) -> ServerOutcome {
        match (self.state, &self.last_response) {
            (ServerNonInviteState::Proceeding | ServerNonInviteState::Completed, Some(r)) => {
                ServerOutcome::Transmit(r.clone())
            }
            _ => ServerOutcome::Nothing,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.timer_j
    }

    pub fn on_timeout(&mut self, now: Instant) -> ServerOutcome {
        if self.timer_j.is_some_and(|t| now >= t) {
            self.terminate();
        }
        ServerOutcome::Nothing
    }

    pub fn terminate(&mut self) {
        self.state = ServerNonInviteState::Terminated;
        self.timer_j = None;
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerNonInviteState::Terminated
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn absorbs_retransmissions_and_timer_j() {
        let t0 = Instant::ZERO;
        let mut tx = ServerNonInvite::new(false, TimerConfig::default());
        assert_eq!(tx.on_request_retransmission(), ServerOutcome::Nothing);
        tx.send_response(200, Bytes::from_static(b"200"), t0);
        assert_eq!(
            tx.on_request_retransmission(),
            ServerOutcome::Transmit(Bytes::from_static(b"200"))
        );
        assert!(tx.send_response(500, Bytes::from_static(b"500"), t0).is_none());
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
        tx.on_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }
}
