//! What the gateway tells about itself: SIP message logs, CloudWatch embedded metrics, process
//! logging, and the redaction every logged value passes through.

pub mod aws_events;
pub mod call_metrics;
pub mod emf;
pub mod event_sinks;
pub mod facts;
pub mod logging;
pub mod process_metrics;
pub mod redact;
pub mod siplog;
pub mod stream_events;
