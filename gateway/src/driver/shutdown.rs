//! Signals, draining on SIGTERM/SIGINT, and refusing calls while their records cannot be
//! written.

use std::time::{Duration, Instant};

use super::Core;

/// A Unix signal stream (`None` if it could not be installed: it then never fires).
pub type Signal = Option<tokio::signal::unix::Signal>;

pub fn signal(kind: tokio::signal::unix::SignalKind) -> Signal {
    tokio::signal::unix::signal(kind).ok()
}

/// Waits for `s`.
pub async fn recv_signal(s: &mut Signal) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// A drain in progress: new calls are refused; the process exits when no call or
/// transaction is left, or at the deadline.
#[derive(Debug, Default)]
pub struct Drain {
    deadline: Option<Instant>,
}

/// What a drain says after a turn.
#[derive(Debug, PartialEq, Eq)]
pub enum DrainState {
    Running,
    Drained,
    TimedOut,
}

impl Drain {
    /// Starts draining (once) for `why`, allowing `limit` for calls to end.
    pub fn start(&mut self, core: &mut Core, now: Instant, limit: Duration, why: &str) {
        if self.deadline.is_none() {
            tracing::info!(
                signal = why,
                calls = core.active_calls(),
                "draining: new calls are refused, calls in progress go on"
            );
            core.drain();
            self.deadline = Some(now + limit);
        }
    }

    /// When the driver must wake up to check the deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn state(&self, core: &Core, now: Instant) -> DrainState {
        let Some(d) = self.deadline else { return DrainState::Running };
        if core.is_idle() {
            tracing::info!("drained: no calls or transactions left");
            DrainState::Drained
        } else if now >= d {
            tracing::warn!(
                calls = core.active_calls(),
                "drain timeout reached; exiting with calls in progress"
            );
            DrainState::TimedOut
        } else {
            DrainState::Running
        }
    }
}

/// Whether new calls are refused because their records could not be written.
pub struct Admission {
    /// `[cdr] refuse_calls_while_spool_fails`.
    pub refuse_unrecorded: bool,
    refusing: bool,
}

impl Admission {
    pub fn new(refuse_unrecorded: bool) -> Admission {
        Admission { refuse_unrecorded, refusing: false }
    }

    /// Brought up to date before each batch of inbound messages (the spool's state changes on
    /// its own thread).
    pub fn update(&mut self, core: &mut Core, spool_failing: bool) {
        let refuse = self.refuse_unrecorded && spool_failing;
        if refuse == self.refusing {
            return;
        }
        self.refusing = refuse;
        if refuse {
            tracing::error!("the CDR spool cannot write: new calls are refused (503) until it can");
        } else {
            tracing::warn!("the CDR spool writes again: new calls are accepted");
        }
        core.refuse_new_calls(refuse.then_some("call records cannot be written"));
    }
}
