//! The voicegw gateway: the IO around the sans-IO cores (`sip`, `media`, `connector`).
//!
//! Each room has one job: [`driver`] runs the event loop (start-up, the clock, reload,
//! shutdown, the CDR write-ahead), [`signalling`] carries SIP over UDP, TCP and TLS,
//! [`relay`] runs the media threads and their sockets, [`observe`] turns call facts into
//! metrics, SIP message logs and logs, [`cdr`] records calls durably, [`http`] serves metrics
//! and health, and [`analyze`] is the capture-statistics tool.

pub mod analyze;
pub mod aws;
pub mod cdr;
pub mod driver;
pub mod http;
pub mod kvs;
pub mod meet;
pub mod observe;
pub mod record;
pub mod relay;
pub mod signalling;
pub mod stream;
