//! Call metrics: attempts, answers, failures, active calls, throttles, SIP response classes
//! and setup time per voice connector, counted from call events, plus the call log lines.

use std::sync::{Arc, Mutex};

use metrics::{names, Labels, Registry};
use sip::b2bua::{CallEvent, Direction, RejectCause};

use super::facts::{Observer, Seen};
use super::redact::Redacted;

/// Counts call events into the registry and logs each call's life.
pub struct CallMetrics {
    registry: Arc<Mutex<Registry>>,
}

impl CallMetrics {
    pub fn new(registry: Arc<Mutex<Registry>>) -> CallMetrics {
        CallMetrics { registry }
    }
}

fn active_of(direction: Direction) -> names::Metric {
    match direction {
        Direction::Outbound => names::OUTBOUND_CALLS_ACTIVE,
        Direction::Inbound => names::INBOUND_CALLS_ACTIVE,
    }
}

/// `Sip1xxCodes` … `Sip6xxCodes` for a status.
pub fn sip_class_metric(status: u16) -> names::Metric {
    match status / 100 {
        1 => names::SIP_1XX,
        2 => names::SIP_2XX,
        3 => names::SIP_3XX,
        4 => names::SIP_4XX,
        5 => names::SIP_5XX,
        _ => names::SIP_6XX,
    }
}

impl Observer for CallMetrics {
    fn on_event(&mut self, ev: &CallEvent, seen: Seen<'_>) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let no_labels = Labels::default();
        let labels = seen.labels.unwrap_or(&no_labels);
        match ev {
            CallEvent::Started {
                call, call_id, direction, voice_connector_id, to, target, ..
            } => {
                let attempts = match direction {
                    Direction::Outbound => names::OUTBOUND_CALL_ATTEMPTS,
                    Direction::Inbound => names::INBOUND_CALL_ATTEMPTS,
                };
                r.inc(attempts, labels);
                r.add(active_of(*direction), labels, 1.0);
                r.add(names::VOICE_CONNECTOR_ACTIVE_CALL_COUNT, labels, 1.0);
                tracing::info!(call, %call_id, direction = direction.as_str(), voice_connector_id, to = %Redacted(to), next_hop = %target, "call started");
            }
            CallEvent::Answered { call } => {
                if let Some(c) = seen.call {
                    let m = match c.direction {
                        Direction::Outbound => names::OUTBOUND_CALLS_ANSWERED,
                        Direction::Inbound => names::INBOUND_CALLS_ANSWERED,
                    };
                    r.inc(m, &c.labels);
                    let setup = seen.at.mono.saturating_duration_since(c.started.mono);
                    r.observe(names::CALL_SETUP_SECONDS, &no_labels, setup.as_secs_f64());
                }
                tracing::info!(call, "call answered");
            }
            CallEvent::Ended { call, status, reason } => {
                if let Some(c) = seen.call {
                    r.add(active_of(c.direction), &c.labels, -1.0);
                    r.add(names::VOICE_CONNECTOR_ACTIVE_CALL_COUNT, &c.labels, -1.0);
                    let failures = match c.direction {
                        Direction::Outbound => names::OUTBOUND_CALL_FAILURES,
                        Direction::Inbound => names::INBOUND_CALL_FAILURES,
                    };
                    if c.answered.is_none() && *status >= 300 {
                        r.inc(failures, &c.labels);
                    }
                }
                tracing::info!(call, status, %reason, "call ended");
            }
            CallEvent::Failover { call, status, target, voice_connector_id, .. } => {
                // A group failover: the call now belongs to the next voice connector.
                if let (Some(c), Some(from)) = (seen.call, seen.moved_from) {
                    r.add(active_of(c.direction), from, -1.0);
                    r.add(names::VOICE_CONNECTOR_ACTIVE_CALL_COUNT, from, -1.0);
                    r.add(active_of(c.direction), &c.labels, 1.0);
                    r.add(names::VOICE_CONNECTOR_ACTIVE_CALL_COUNT, &c.labels, 1.0);
                }
                tracing::warn!(call, failed_status = ?status, next_hop = %target, voice_connector_id, "next hop failed; trying the next one");
            }
            CallEvent::Rejected {
                call_id,
                status,
                reason,
                cause,
                source,
                voice_connector_id,
                direction,
                ..
            } => {
                // A 407 challenge is the first half of an authenticated call, not a failed call.
                if let (Some(labels), Some(dir)) = (seen.labels, direction) {
                    r.inc(sip_class_metric(*status), labels);
                    if *cause != RejectCause::Unauthenticated {
                        let (attempts, failures) = match dir {
                            Direction::Outbound => {
                                (names::OUTBOUND_CALL_ATTEMPTS, names::OUTBOUND_CALL_FAILURES)
                            }
                            Direction::Inbound => {
                                (names::INBOUND_CALL_ATTEMPTS, names::INBOUND_CALL_FAILURES)
                            }
                        };
                        r.inc(attempts, labels);
                        r.inc(failures, labels);
                        if *cause == RejectCause::Throttled {
                            r.inc(names::THROTTLES, labels);
                        }
                    }
                }
                tracing::info!(%call_id, status, reason = %Redacted(reason), %source, voice_connector_id = voice_connector_id.as_deref().unwrap_or("-"), "call refused");
            }
            CallEvent::ResponseSent { status, .. } => {
                if seen.call.is_some() {
                    r.inc(sip_class_metric(*status), labels);
                }
            }
        }
    }
}
