//! The voicegw gateway: configuration, routing and the tokio driver around the sans-IO cores.

pub mod analyze;
pub mod cdr;
pub mod certs;
pub mod clock;
pub mod driver;
pub mod emf;
pub mod logging;
pub mod media_anchor;
pub mod media_record;
pub mod media_thread;
pub mod metrics_http;
pub mod redact;
pub mod siplog;
pub mod transport;
pub mod udp_errors;
