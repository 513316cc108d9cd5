//! The recording server's IO side (SIPREC, issue 13): what the sans-IO `siprec::srs::Srs`
//! consults and drives on the gateway. [`admit`] says which voice connector a recording
//! session belongs to; [`anchor`] binds its streams' ports from the media range the B2BUA uses
//! too and opens a record-only relay session whose two sides are the session's two streams,
//! streamed like a call's legs.

pub mod admit;
pub mod anchor;
