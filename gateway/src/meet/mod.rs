//! Meeting dial-in's IO side (issue 14): what the sans-IO `meeting` crate needs from the
//! machine. [`policy`] reads the configuration for the UAS, [`anchor`] binds each
//! participant's ports, [`thread`] runs every meeting's media (the sans-IO
//! `media::conference`), and [`prompts`] makes the IVR's audio.

pub mod anchor;
pub mod policy;
pub mod prompts;
pub mod thread;
