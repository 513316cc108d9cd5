//! Metrics with their CloudWatch names (formats.md §6), exposed as Prometheus text.
//!
//! Every metric is declared once in [`names`]; [`Registry`] keeps values per label set and
//! renders them. Sans-IO: the HTTP listener lives in the gateway.

pub mod names;
mod registry;

pub use registry::{Labels, Latency, Registry};
