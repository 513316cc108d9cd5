//! Meeting dial-in (issue 14), sans-IO: what a room system or phone that dials
//! `<id>@meet.<domain>` goes through before and while it is in a meeting.
//!
//! - [`ivr`]: the IVR that asks for the meeting id (and a moderator's passcode) by DTMF, with
//!   inter-digit and overall timeouts and retries.
//! - [`controls`]: in-meeting DTMF commands (`*7` mute/unmute, the moderator's commands).
//! - [`offer`]: a caller's SDP offer read (G.711 audio, telephone-events, SRTP) and answered
//!   with video declined.
//! - [`rooms`]: who is in which meeting: moderated waiting, full and locked meetings, the
//!   commands' effects, meetings starting and ending.
//! - [`uas`]: the SIP application that answers dial-ins and ties the above together.
//!
//! Time comes in as `now` and leaves as the next timeout; nothing here reads a clock.

pub mod controls;
pub mod ivr;
pub mod offer;
pub mod rooms;
pub mod uas;
