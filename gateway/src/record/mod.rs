//! SIPREC's IO side (issue 13): what the sans-IO `siprec::srs::Srs` (the recording server)
//! and `siprec::client::RecordingClient` consult and drive on the gateway. [`admit`] says
//! which voice connector a recording session belongs to; [`anchor`] binds its streams' ports
//! from the media range the B2BUA uses too and opens a record-only relay session whose two
//! sides are the session's two streams, streamed like a call's legs; [`fork`] binds the ports
//! a recorded call's copies leave from, for the recording client.

pub mod admit;
pub mod anchor;
pub mod fork;
