//! Meeting dial-in's IO side (issue 14): what the sans-IO `meeting` crate needs from the
//! machine. [`prompts`] makes the IVR's audio.

pub mod prompts;
