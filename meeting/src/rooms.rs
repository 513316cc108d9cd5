//! Who is in which meeting, and what follows from it: a participant who joins a moderated
//! meeting before its moderator waits (hearing that they wait) and is bridged when a
//! moderator arrives; a full or locked meeting refuses; the first participant bridged starts
//! the meeting and the last to leave ends it; in-meeting commands act on the meeting.
//! Pure bookkeeping: every call returns what the application must do, in order.

use std::collections::HashMap;

use crate::controls::Command;

/// A call's number (the application's).
pub type CallId = u64;

/// What a meeting is, for its participants' sake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingInfo {
    pub id: String,
    pub moderated: bool,
    pub max_participants: u32,
}

/// What the application does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAction {
    /// Put the call's audio in the meeting's bridge.
    Bridge {
        call: CallId,
        meeting: String,
    },
    /// The call waits for the moderator (hearing so).
    Wait {
        call: CallId,
    },
    /// The call cannot join: the meeting is full or locked.
    Refuse {
        call: CallId,
        why: RefuseWhy,
    },
    /// Mute or unmute a participant (and tell them).
    Mute {
        call: CallId,
        muted: bool,
    },
    /// Tell the call that the meeting is now locked or unlocked.
    Locked {
        call: CallId,
        locked: bool,
    },
    StartRecording {
        meeting: String,
    },
    StopRecording {
        meeting: String,
    },
    /// Hang up a call: the meeting ended.
    Disconnect {
        call: CallId,
    },
    MeetingStarted {
        meeting: String,
    },
    MeetingEnded {
        meeting: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseWhy {
    Full,
    Locked,
}

#[derive(Debug, Clone)]
struct Member {
    call: CallId,
    moderator: bool,
    bridged: bool,
    muted: bool,
}

#[derive(Debug, Clone)]
struct Room {
    info: MeetingInfo,
    members: Vec<Member>,
    locked: bool,
    recording: bool,
    started: bool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: HashMap<String, Room>,
    /// Call → meeting.
    calls: HashMap<CallId, String>,
}

impl Rooms {
    pub fn new() -> Rooms {
        Rooms::default()
    }

    /// Meetings with someone in them.
    pub fn meetings(&self) -> usize {
        self.rooms.len()
    }

    /// Participants, waiting or bridged.
    /// The calls bridged into meeting `id` (they hear it).
    pub fn bridged(&self, id: &str) -> Vec<CallId> {
        self.rooms
            .get(id)
            .map(|r| r.members.iter().filter(|m| m.bridged).map(|m| m.call).collect())
            .unwrap_or_default()
    }

    pub fn participants(&self) -> usize {
        self.calls.len()
    }

    /// The meeting a call is in.
    pub fn meeting_of(&self, call: CallId) -> Option<&str> {
        self.calls.get(&call).map(String::as_str)
    }

    /// Whether `call` is its meeting's moderator.
    pub fn is_moderator(&self, call: CallId) -> bool {
        self.member(call).is_some_and(|m| m.moderator)
    }

    fn member(&self, call: CallId) -> Option<&Member> {
        let room = self.rooms.get(self.calls.get(&call)?)?;
        room.members.iter().find(|m| m.call == call)
    }

    /// `call` joins `meeting` (as its moderator or not).
    pub fn join(
        &mut self,
        call: CallId,
        meeting: &MeetingInfo,
        moderator: bool,
    ) -> Vec<RoomAction> {
        let mut out = Vec::new();
        if self.calls.contains_key(&call) {
            return out;
        }
        let room = self.rooms.entry(meeting.id.clone()).or_insert_with(|| Room {
            info: meeting.clone(),
            members: Vec::new(),
            locked: false,
            recording: false,
            started: false,
        });
        if room.members.len() as u32 >= room.info.max_participants {
            out.push(RoomAction::Refuse { call, why: RefuseWhy::Full });
        } else if room.locked && !moderator {
            out.push(RoomAction::Refuse { call, why: RefuseWhy::Locked });
        }
        if !out.is_empty() {
            if room.members.is_empty() {
                self.rooms.remove(&meeting.id);
            }
            return out;
        }
        self.calls.insert(call, meeting.id.clone());
        room.members.push(Member { call, moderator, bridged: false, muted: false });
        let open = !room.info.moderated || room.members.iter().any(|m| m.moderator);
        if open {
            // Everyone who waited is bridged with the moderator.
            for m in room.members.iter_mut().filter(|m| !m.bridged) {
                m.bridged = true;
                out.push(RoomAction::Bridge { call: m.call, meeting: room.info.id.clone() });
            }
            if !room.started {
                room.started = true;
                out.insert(0, RoomAction::MeetingStarted { meeting: room.info.id.clone() });
            }
        } else {
            out.push(RoomAction::Wait { call });
        }
        out
    }

    /// `call` left (hung up).
    pub fn leave(&mut self, call: CallId) -> Vec<RoomAction> {
        let mut out = Vec::new();
        let Some(id) = self.calls.remove(&call) else { return out };
        let Some(room) = self.rooms.get_mut(&id) else { return out };
        room.members.retain(|m| m.call != call);
        if room.members.is_empty() {
            if room.recording {
                out.push(RoomAction::StopRecording { meeting: id.clone() });
            }
            if room.started {
                out.push(RoomAction::MeetingEnded { meeting: id.clone() });
            }
            self.rooms.remove(&id);
        }
        out
    }

    /// A command from `call` (moderator-only ones were already filtered by the controls).
    pub fn command(&mut self, call: CallId, cmd: Command) -> Vec<RoomAction> {
        let mut out = Vec::new();
        let Some(id) = self.calls.get(&call).cloned() else { return out };
        let Some(room) = self.rooms.get_mut(&id) else { return out };
        let is_moderator = room.members.iter().any(|m| m.call == call && m.moderator);
        if cmd.moderator_only() && !is_moderator {
            return out;
        }
        match cmd {
            Command::ToggleMute => {
                if let Some(m) = room.members.iter_mut().find(|m| m.call == call && m.bridged) {
                    m.muted = !m.muted;
                    out.push(RoomAction::Mute { call, muted: m.muted });
                }
            }
            Command::MuteOthers => {
                for m in room.members.iter_mut().filter(|m| m.call != call && m.bridged && !m.muted)
                {
                    m.muted = true;
                    out.push(RoomAction::Mute { call: m.call, muted: true });
                }
            }
            Command::ToggleLock => {
                room.locked = !room.locked;
                out.push(RoomAction::Locked { call, locked: room.locked });
            }
            Command::ToggleRecording => {
                room.recording = !room.recording;
                out.push(if room.recording {
                    RoomAction::StartRecording { meeting: id.clone() }
                } else {
                    RoomAction::StopRecording { meeting: id.clone() }
                });
            }
            Command::EndMeeting => {
                let calls: Vec<CallId> = room.members.iter().map(|m| m.call).collect();
                for c in calls {
                    out.push(RoomAction::Disconnect { call: c });
                    out.extend(self.leave(c));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(moderated: bool, max: u32) -> MeetingInfo {
        MeetingInfo { id: "1234567890".into(), moderated, max_participants: max }
    }

    fn bridge(call: CallId) -> RoomAction {
        RoomAction::Bridge { call, meeting: "1234567890".into() }
    }

    fn started() -> RoomAction {
        RoomAction::MeetingStarted { meeting: "1234567890".into() }
    }

    #[test]
    fn an_open_meeting_starts_with_its_first_participant_and_ends_with_its_last() {
        let mut r = Rooms::new();
        assert_eq!(r.join(1, &info(false, 10), false), [started(), bridge(1)]);
        assert_eq!(r.join(2, &info(false, 10), false), [bridge(2)]);
        assert_eq!((r.meetings(), r.participants()), (1, 2));
        assert!(r.leave(1).is_empty());
        assert_eq!(r.leave(2), [RoomAction::MeetingEnded { meeting: "1234567890".into() }]);
        assert_eq!((r.meetings(), r.participants()), (0, 0));
    }

    #[test]
    fn a_moderated_meeting_holds_its_participants_until_the_moderator() {
        let mut r = Rooms::new();
        assert_eq!(r.join(1, &info(true, 10), false), [RoomAction::Wait { call: 1 }]);
        assert_eq!(r.join(2, &info(true, 10), false), [RoomAction::Wait { call: 2 }]);
        assert_eq!(r.join(3, &info(true, 10), true), [started(), bridge(1), bridge(2), bridge(3)]);
        assert!(r.is_moderator(3) && !r.is_moderator(1));
        // Waiting participants who give up before the moderator came never started it.
        let mut r = Rooms::new();
        r.join(1, &info(true, 10), false);
        assert!(r.leave(1).is_empty(), "no meeting ended: it never started");
    }

    #[test]
    fn full_and_locked_meetings_refuse() {
        let mut r = Rooms::new();
        r.join(1, &info(false, 2), true);
        r.join(2, &info(false, 2), false);
        assert_eq!(
            r.join(3, &info(false, 2), false),
            [RoomAction::Refuse { call: 3, why: RefuseWhy::Full }]
        );
        r.leave(2);
        assert_eq!(
            r.command(1, Command::ToggleLock),
            [RoomAction::Locked { call: 1, locked: true }]
        );
        assert_eq!(
            r.join(3, &info(false, 2), false),
            [RoomAction::Refuse { call: 3, why: RefuseWhy::Locked }]
        );
        assert_eq!(r.meeting_of(3), None);
    }

    #[test]
    fn commands_act_on_the_meeting() {
        let mut r = Rooms::new();
        r.join(1, &info(false, 10), true);
        r.join(2, &info(false, 10), false);
        r.join(3, &info(false, 10), false);
        assert_eq!(r.command(2, Command::ToggleMute), [RoomAction::Mute { call: 2, muted: true }]);
        assert_eq!(r.command(2, Command::ToggleMute), [RoomAction::Mute { call: 2, muted: false }]);
        assert!(r.command(2, Command::EndMeeting).is_empty(), "not the moderator");
        assert_eq!(
            r.command(1, Command::MuteOthers),
            [RoomAction::Mute { call: 2, muted: true }, RoomAction::Mute { call: 3, muted: true }]
        );
        assert_eq!(
            r.command(1, Command::ToggleRecording),
            [RoomAction::StartRecording { meeting: "1234567890".into() }]
        );
        let end = r.command(1, Command::EndMeeting);
        assert_eq!(
            end,
            [
                RoomAction::Disconnect { call: 1 },
                RoomAction::Disconnect { call: 2 },
                RoomAction::Disconnect { call: 3 },
                RoomAction::StopRecording { meeting: "1234567890".into() },
                RoomAction::MeetingEnded { meeting: "1234567890".into() },
            ]
        );
        assert_eq!(r.participants(), 0);
    }
}
