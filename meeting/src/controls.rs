//! In-meeting DTMF commands: `*` then a key within [`ARM_FOR`]. Everyone has `*7` (mute or
//! unmute yourself, as the service's dial-in attendees do); a moderator also has `*5` (mute
//! everyone else), `*8` (lock or unlock the meeting), `*9` (start or stop recording) and `*0`
//! (end the meeting for everyone). Other keys are ignored, so a caller who types during the
//! meeting changes nothing by accident.

use std::time::Duration;

use common::Instant;
use media::dtmf::Digit;

/// How long `*` waits for its key.
pub const ARM_FOR: Duration = Duration::from_secs(3);

/// A command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    ToggleMute,
    MuteOthers,
    ToggleLock,
    ToggleRecording,
    EndMeeting,
}

impl Command {
    /// The key after `*`.
    pub fn key(self) -> char {
        match self {
            Command::ToggleMute => '7',
            Command::MuteOthers => '5',
            Command::ToggleLock => '8',
            Command::ToggleRecording => '9',
            Command::EndMeeting => '0',
        }
    }

    /// Whether only a moderator may give it.
    pub fn moderator_only(self) -> bool {
        self != Command::ToggleMute
    }
}

/// One participant's keys.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    moderator: bool,
    armed: Option<Instant>,
}

impl Controls {
    pub fn new(moderator: bool) -> Controls {
        Controls { moderator, armed: None }
    }

    /// A key: the command it completes, if any (a moderator command from a participant who is
    /// not one is no command).
    pub fn digit(&mut self, d: Digit, now: Instant) -> Option<Command> {
        let armed = self.armed.take().is_some_and(|at| now < at + ARM_FOR);
        if d.as_char() == '*' {
            self.armed = Some(now);
            return None;
        }
        if !armed {
            return None;
        }
        let cmd = [
            Command::ToggleMute,
            Command::MuteOthers,
            Command::ToggleLock,
            Command::ToggleRecording,
            Command::EndMeeting,
        ]
        .into_iter()
        .find(|c| c.key() == d.as_char())?;
        (!cmd.moderator_only() || self.moderator).then_some(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &mut Controls, keys: &str, from_ms: u64, step_ms: u64) -> Vec<Command> {
        keys.chars()
            .enumerate()
            .filter_map(|(i, k)| {
                let t = Instant::from_origin(Duration::from_millis(from_ms + i as u64 * step_ms));
                c.digit(Digit::from_char(k).expect("a key"), t)
            })
            .collect()
    }

    #[test]
    fn star_seven_toggles_mute_for_everyone() {
        let mut c = Controls::new(false);
        assert_eq!(keys(&mut c, "*7", 0, 500), [Command::ToggleMute]);
        assert_eq!(keys(&mut c, "7*77", 10_000, 500), [Command::ToggleMute], "7 alone is nothing");
        assert_eq!(keys(&mut c, "**7", 20_000, 500), [Command::ToggleMute], "a second * re-arms");
    }

    #[test]
    fn moderator_commands_are_the_moderators_only() {
        let mut m = Controls::new(true);
        assert_eq!(
            keys(&mut m, "*5*8*9*0", 0, 500),
            [
                Command::MuteOthers,
                Command::ToggleLock,
                Command::ToggleRecording,
                Command::EndMeeting
            ]
        );
        let mut p = Controls::new(false);
        assert!(keys(&mut p, "*5*8*9*0", 0, 500).is_empty());
    }

    #[test]
    fn a_star_that_waited_too_long_is_forgotten_and_other_keys_do_nothing() {
        let mut c = Controls::new(true);
        assert!(keys(&mut c, "*7", 0, 3500).is_empty(), "the key came after ARM_FOR");
        assert!(keys(&mut c, "*1*#*A", 10_000, 100).is_empty());
    }
}
