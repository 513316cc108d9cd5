//! The voice-connector model, sans-IO: what a voice connector is and what it decides, apart
//! from any socket or clock.
//!
//! - [`config`]: the TOML file and the API-shaped objects it names, parsed once into typed
//!   values (networks, socket addresses, S3 targets) with errors that give file:line and key.
//! - [`policy`]: the [`sip::b2bua::Router`] the B2BUA core asks — termination and origination
//!   rules, digest authentication, the CPS limit, route order, numbering and countries.
//! - [`cdr_record`]: the call detail record of formats.md §7 and the values derived for it.
//! - [`timefmt`]: the API's ISO 8601 timestamps.
//!
//! Time comes in as arguments (`sip::Instant`, or a `SystemTime` the caller read); clippy's
//! `disallowed-methods` keeps clock reads and sleeps out of this crate.

pub mod cdr_record;
pub mod config;
pub mod policy;
pub mod timefmt;
