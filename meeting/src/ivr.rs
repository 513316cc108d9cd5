//! The dial-in IVR (formats.md §11): a caller that dialled a meeting id joins at once; one
//! that dialled a moderator id (13 digits) is asked for the moderator passcode; one that
//! dialled no id (`meet.<domain>` or `u@meet.<domain>`) is asked for the meeting id, ended by
//! `#`. A caller that dialled an unknown id hears that it is not valid and gets one more try;
//! then the call is refused. Digits are collected with an inter-digit timeout (what was
//! entered then counts as if `#` followed), an overall timeout per question, and a number of
//! tries; `*` starts the entry again.
//!
//! Sans-IO: [`Ivr::start`], [`Ivr::digit`] and [`Ivr::handle_timeout`] take `now`; what the
//! gateway must do comes out of [`Ivr::poll_action`] in order, and [`Ivr::poll_timeout`] says
//! when to call again.

use std::collections::VecDeque;
use std::time::Duration;

use common::Instant;
use media::dtmf::Digit;

/// What the IVR says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// "Enter your meeting ID followed by the pound key."
    EnterMeetingId,
    /// "Enter the moderator passcode followed by the pound key."
    EnterModeratorPasscode,
    /// "That meeting ID is not valid."
    InvalidMeetingId,
    /// "That passcode is not valid."
    InvalidPasscode,
    /// "Sorry, we could not connect you. Goodbye."
    Goodbye,
    /// "Please wait: the meeting starts when the moderator joins."
    WaitingForModerator,
    /// "You are muted." / "You are unmuted."
    Muted,
    Unmuted,
    /// "The meeting is locked." / "The meeting is unlocked."
    Locked,
    Unlocked,
    /// "This meeting is full." / "This meeting is locked; you cannot join."
    MeetingFull,
    MeetingLockedOut,
    /// "This meeting is now recorded." / "Recording has stopped."
    RecordingStarted,
    RecordingStopped,
    /// "The meeting has ended."
    MeetingEnded,
}

impl Prompt {
    /// Every prompt, for generating their audio.
    pub const ALL: [Prompt; 15] = [
        Prompt::EnterMeetingId,
        Prompt::EnterModeratorPasscode,
        Prompt::InvalidMeetingId,
        Prompt::InvalidPasscode,
        Prompt::Goodbye,
        Prompt::WaitingForModerator,
        Prompt::Muted,
        Prompt::Unmuted,
        Prompt::Locked,
        Prompt::Unlocked,
        Prompt::MeetingFull,
        Prompt::MeetingLockedOut,
        Prompt::RecordingStarted,
        Prompt::RecordingStopped,
        Prompt::MeetingEnded,
    ];

    /// What it says (the text a speech synthesiser reads).
    pub fn text(self) -> &'static str {
        match self {
            Prompt::EnterMeetingId => {
                "Welcome. Please enter your meeting ID, followed by the pound key."
            }
            Prompt::EnterModeratorPasscode => {
                "Please enter the moderator passcode, followed by the pound key."
            }
            Prompt::InvalidMeetingId => "That meeting ID is not valid.",
            Prompt::InvalidPasscode => "That passcode is not valid.",
            Prompt::Goodbye => "Sorry, we could not connect you. Goodbye.",
            Prompt::WaitingForModerator => {
                "Please wait. The meeting will start when the moderator joins."
            }
            Prompt::Muted => "You are muted.",
            Prompt::Unmuted => "You are unmuted.",
            Prompt::Locked => "The meeting is locked.",
            Prompt::Unlocked => "The meeting is unlocked.",
            Prompt::MeetingFull => "This meeting is full. Goodbye.",
            Prompt::MeetingLockedOut => "This meeting is locked. Goodbye.",
            Prompt::RecordingStarted => "This meeting is now being recorded.",
            Prompt::RecordingStopped => "Recording has stopped.",
            Prompt::MeetingEnded => "The meeting has ended. Goodbye.",
        }
    }

    /// A short file name for its audio.
    pub fn name(self) -> &'static str {
        match self {
            Prompt::EnterMeetingId => "enter-meeting-id",
            Prompt::EnterModeratorPasscode => "enter-moderator-passcode",
            Prompt::InvalidMeetingId => "invalid-meeting-id",
            Prompt::InvalidPasscode => "invalid-passcode",
            Prompt::Goodbye => "goodbye",
            Prompt::WaitingForModerator => "waiting-for-moderator",
            Prompt::Muted => "muted",
            Prompt::Unmuted => "unmuted",
            Prompt::Locked => "locked",
            Prompt::Unlocked => "unlocked",
            Prompt::MeetingFull => "meeting-full",
            Prompt::MeetingLockedOut => "meeting-locked-out",
            Prompt::RecordingStarted => "recording-started",
            Prompt::RecordingStopped => "recording-stopped",
            Prompt::MeetingEnded => "meeting-ended",
        }
    }
}

/// A meeting as the IVR needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingRef {
    /// Its 10-digit id.
    pub id: String,
}

/// A moderator id (13 digits) as the IVR needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeratorRef {
    /// The meeting it moderates.
    pub meeting_id: String,
    /// The passcode asked for (digits).
    pub passcode: String,
}

/// Where the IVR looks ids up (the configured meetings).
pub trait Directory {
    /// The meeting whose 10-digit id is `id`.
    fn meeting(&self, id: &str) -> Option<MeetingRef>;
    /// The meeting whose 13-digit moderator id is `id`.
    fn moderator(&self, id: &str) -> Option<ModeratorRef>;
}

/// What the gateway does for the IVR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play this prompt (prompts queue: each starts when the one before ended).
    Play(Prompt),
    /// Stop any prompt playing (the caller started typing).
    StopPrompts,
    /// The caller joins meeting `meeting`, as its moderator or not.
    Join { meeting: String, moderator: bool },
    /// Hang up, for this reason (after the prompts queued before).
    Hangup { reason: Refusal },
}

/// Why the IVR gave up on a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The meeting id was wrong too many times.
    UnknownMeeting,
    /// The passcode was wrong too many times.
    WrongPasscode,
    /// Nothing was entered in time.
    Timeout,
}

/// Timeouts and tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvrConfig {
    /// After the last digit, the entry counts as finished.
    pub inter_digit: Duration,
    /// A question gets no finished entry in this long: it counts as a failed try.
    pub per_question: Duration,
    /// Tries per question.
    pub tries: u8,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            inter_digit: Duration::from_secs(5),
            per_question: Duration::from_secs(20),
            tries: 3,
        }
    }
}

/// The longest entry kept (a moderator id is 13 digits; passcodes are short).
const MAX_DIGITS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Collecting a meeting or moderator id.
    MeetingId,
    /// Collecting the passcode for `0`.
    Passcode(ModeratorRef),
    /// Joined or hung up: the IVR is done.
    Done,
}

/// One caller's IVR.
#[derive(Debug)]
pub struct Ivr {
    cfg: IvrConfig,
    state: State,
    entry: String,
    /// Failed tries at the current question.
    failures: u8,
    /// Tries the current question allows.
    tries: u8,
    last_digit: Option<Instant>,
    question_since: Instant,
    actions: VecDeque<Action>,
}

/// Whether `s` is `n` ASCII digits.
fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// Equal strings, compared in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let diff = a.iter().zip(b).fold(a.len() ^ b.len(), |d, (x, y)| d | usize::from(x ^ y));
    diff == 0
}

impl Ivr {
    /// A caller that dialled `user` (the Request-URI's user part, empty when none).
    pub fn start(cfg: IvrConfig, user: &str, dir: &impl Directory, now: Instant) -> Ivr {
        let mut ivr = Ivr {
            cfg,
            state: State::MeetingId,
            entry: String::new(),
            failures: 0,
            tries: cfg.tries.max(1),
            last_digit: None,
            question_since: now,
            actions: VecDeque::new(),
        };
        let user = user.trim();
        if user.is_empty() || user.eq_ignore_ascii_case("u") {
            ivr.actions.push_back(Action::Play(Prompt::EnterMeetingId));
        } else if !ivr.lookup(user, dir, now) {
            // An id that is not a meeting's: the IVR once, then a refusal.
            ivr.tries = 1;
            ivr.actions.push_back(Action::Play(Prompt::InvalidMeetingId));
            ivr.actions.push_back(Action::Play(Prompt::EnterMeetingId));
        }
        ivr
    }

    /// Joins or asks for the passcode if `id` is a meeting's or a moderator's; false if not.
    fn lookup(&mut self, id: &str, dir: &impl Directory, now: Instant) -> bool {
        if digits(id, 10) {
            if let Some(m) = dir.meeting(id) {
                self.state = State::Done;
                self.actions.push_back(Action::Join { meeting: m.id, moderator: false });
                return true;
            }
        } else if digits(id, 13) {
            if let Some(m) = dir.moderator(id) {
                self.ask(State::Passcode(m), Prompt::EnterModeratorPasscode, now);
                return true;
            }
        }
        false
    }

    fn ask(&mut self, state: State, prompt: Prompt, now: Instant) {
        self.state = state;
        self.entry.clear();
        self.failures = 0;
        self.tries = self.cfg.tries.max(1);
        self.last_digit = None;
        self.question_since = now;
        self.actions.push_back(Action::Play(prompt));
    }

    /// Whether the IVR is done (the caller joined or was refused).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// A key from the caller.
    pub fn digit(&mut self, d: Digit, dir: &impl Directory, now: Instant) {
        if self.is_done() {
            return;
        }
        if self.entry.is_empty() && self.last_digit.is_none() {
            self.actions.push_back(Action::StopPrompts);
        }
        match d.as_char() {
            '#' => self.finish(dir, now),
            '*' => {
                self.entry.clear();
                self.last_digit = Some(now);
            }
            c @ '0'..='9' => {
                if self.entry.len() < MAX_DIGITS {
                    self.entry.push(c);
                }
                self.last_digit = Some(now);
            }
            _ => {}
        }
    }

    /// The entry is finished: `#`, or the inter-digit timeout.
    fn finish(&mut self, dir: &impl Directory, now: Instant) {
        let entry = std::mem::take(&mut self.entry);
        self.last_digit = None;
        match self.state.clone() {
            State::MeetingId => {
                if !self.lookup(&entry, dir, now) {
                    self.failed(Prompt::InvalidMeetingId, Refusal::UnknownMeeting, now);
                }
            }
            State::Passcode(m) => {
                if same(&entry, &m.passcode) {
                    self.state = State::Done;
                    self.actions.push_back(Action::Join { meeting: m.meeting_id, moderator: true });
                } else {
                    self.failed(Prompt::InvalidPasscode, Refusal::WrongPasscode, now);
                }
            }
            State::Done => {}
        }
    }

    /// A failed try: the question again, or the refusal after the last try.
    fn failed(&mut self, said: Prompt, refusal: Refusal, now: Instant) {
        self.failures += 1;
        self.actions.push_back(Action::Play(said));
        if self.failures >= self.tries {
            self.hang_up(refusal);
            return;
        }
        let again = match self.state {
            State::Passcode(_) => Prompt::EnterModeratorPasscode,
            _ => Prompt::EnterMeetingId,
        };
        self.actions.push_back(Action::Play(again));
        self.question_since = now;
    }

    fn hang_up(&mut self, reason: Refusal) {
        self.state = State::Done;
        self.actions.push_back(Action::Play(Prompt::Goodbye));
        self.actions.push_back(Action::Hangup { reason });
    }

    /// When [`Ivr::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_done() {
            return None;
        }
        let question = self.question_since + self.cfg.per_question;
        Some(match self.last_digit {
            Some(t) => (t + self.cfg.inter_digit).min(question),
            None => question,
        })
    }

    pub fn handle_timeout(&mut self, dir: &impl Directory, now: Instant) {
        if self.is_done() {
            return;
        }
        if self.last_digit.is_some_and(|t| now >= t + self.cfg.inter_digit) {
            if self.entry.is_empty() {
                // Only `*` was pressed: the question stands.
                self.last_digit = None;
            } else {
                self.finish(dir, now);
            }
            return;
        }
        if now >= self.question_since + self.cfg.per_question {
            self.failures += 1;
            self.entry.clear();
            self.last_digit = None;
            if self.failures >= self.tries {
                self.hang_up(Refusal::Timeout);
            } else {
                let again = match self.state {
                    State::Passcode(_) => Prompt::EnterModeratorPasscode,
                    _ => Prompt::EnterMeetingId,
                };
                self.actions.push_back(Action::Play(again));
                self.question_since = now;
            }
        }
    }

    /// What to do next, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
mod tests;
