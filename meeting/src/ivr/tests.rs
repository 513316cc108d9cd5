//! The IVR in virtual time: every path a caller can take.

use super::*;

struct Meetings;

impl Directory for Meetings {
    fn meeting(&self, id: &str) -> Option<MeetingRef> {
        (id == "1234567890").then(|| MeetingRef { id: id.into() })
    }
    fn moderator(&self, id: &str) -> Option<ModeratorRef> {
        (id == "1234567890123")
            .then(|| ModeratorRef { meeting_id: "1234567890".into(), passcode: "4321".into() })
    }
}

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

fn actions(ivr: &mut Ivr) -> Vec<Action> {
    std::iter::from_fn(|| ivr.poll_action()).collect()
}

/// Keys `keys` one every 300 ms from `from_ms`; returns the time after the last.
fn press(ivr: &mut Ivr, keys: &str, from_ms: u64) -> u64 {
    let mut t = from_ms;
    for c in keys.chars() {
        ivr.digit(Digit::from_char(c).expect("a key"), &Meetings, at(t));
        t += 300;
    }
    t
}

fn join(meeting: &str, moderator: bool) -> Action {
    Action::Join { meeting: meeting.into(), moderator }
}

#[test]
fn a_meeting_id_dialled_joins_at_once() {
    let mut ivr = Ivr::start(IvrConfig::default(), "1234567890", &Meetings, at(0));
    assert_eq!(actions(&mut ivr), [join("1234567890", false)]);
    assert!(ivr.is_done() && ivr.poll_timeout().is_none());
}

#[test]
fn no_id_asks_for_it_and_hash_ends_the_entry() {
    for user in ["", "u", "U"] {
        let mut ivr = Ivr::start(IvrConfig::default(), user, &Meetings, at(0));
        assert_eq!(actions(&mut ivr), [Action::Play(Prompt::EnterMeetingId)]);
        press(&mut ivr, "1234567890#", 2000);
        assert_eq!(actions(&mut ivr), [Action::StopPrompts, join("1234567890", false)]);
    }
}

#[test]
fn the_inter_digit_timeout_finishes_the_entry_and_star_starts_it_again() {
    let cfg = IvrConfig::default();
    let mut ivr = Ivr::start(cfg, "", &Meetings, at(0));
    actions(&mut ivr);
    let t = press(&mut ivr, "99*1234567890", 1000);
    let due = ivr.poll_timeout().expect("a timeout");
    assert_eq!(due, at(t - 300) + cfg.inter_digit, "after the last key");
    ivr.handle_timeout(&Meetings, at(t));
    assert!(!ivr.is_done(), "not yet");
    ivr.handle_timeout(&Meetings, due);
    assert_eq!(actions(&mut ivr), [Action::StopPrompts, join("1234567890", false)]);
}

#[test]
fn a_moderator_id_asks_for_the_passcode() {
    let mut ivr = Ivr::start(IvrConfig::default(), "1234567890123", &Meetings, at(0));
    assert_eq!(actions(&mut ivr), [Action::Play(Prompt::EnterModeratorPasscode)]);
    press(&mut ivr, "1111#", 1000);
    assert_eq!(
        actions(&mut ivr),
        [
            Action::StopPrompts,
            Action::Play(Prompt::InvalidPasscode),
            Action::Play(Prompt::EnterModeratorPasscode)
        ]
    );
    press(&mut ivr, "4321#", 5000);
    assert_eq!(
        actions(&mut ivr),
        [Action::StopPrompts, join("1234567890", true)],
        "typing interrupts the prompt again"
    );
    // The same through the IVR: the moderator id typed, then the passcode.
    let mut ivr = Ivr::start(IvrConfig::default(), "", &Meetings, at(0));
    actions(&mut ivr);
    press(&mut ivr, "1234567890123#", 1000);
    assert_eq!(
        actions(&mut ivr),
        [Action::StopPrompts, Action::Play(Prompt::EnterModeratorPasscode)]
    );
    press(&mut ivr, "4321#", 9000);
    assert_eq!(actions(&mut ivr).last(), Some(&join("1234567890", true)));
}

#[test]
fn wrong_ids_are_retried_then_refused() {
    let mut ivr = Ivr::start(IvrConfig::default(), "", &Meetings, at(0));
    actions(&mut ivr);
    let mut t = 1000;
    for _ in 0..2 {
        t = press(&mut ivr, "555#", t) + 1000;
        assert_eq!(
            actions(&mut ivr).last(),
            Some(&Action::Play(Prompt::EnterMeetingId)),
            "asked again"
        );
    }
    press(&mut ivr, "555#", t);
    let last = actions(&mut ivr);
    assert_eq!(
        &last[last.len() - 2..],
        [Action::Play(Prompt::Goodbye), Action::Hangup { reason: Refusal::UnknownMeeting }]
    );
    assert!(ivr.is_done());
    // Keys after the end change nothing.
    press(&mut ivr, "1234567890#", t + 1000);
    assert!(actions(&mut ivr).is_empty());
}

#[test]
fn an_unknown_id_dialled_gets_the_ivr_once_then_a_refusal() {
    let mut ivr = Ivr::start(IvrConfig::default(), "9999999999", &Meetings, at(0));
    assert_eq!(
        actions(&mut ivr),
        [Action::Play(Prompt::InvalidMeetingId), Action::Play(Prompt::EnterMeetingId)]
    );
    press(&mut ivr, "8888888888#", 1000);
    let last = actions(&mut ivr);
    assert_eq!(last.last(), Some(&Action::Hangup { reason: Refusal::UnknownMeeting }));
    // Or the right id on that one try.
    let mut ivr = Ivr::start(IvrConfig::default(), "abc", &Meetings, at(0));
    actions(&mut ivr);
    press(&mut ivr, "1234567890#", 1000);
    assert_eq!(actions(&mut ivr).last(), Some(&join("1234567890", false)));
}

#[test]
fn silence_is_asked_again_then_hung_up() {
    let cfg = IvrConfig::default();
    let mut ivr = Ivr::start(cfg, "", &Meetings, at(0));
    actions(&mut ivr);
    let mut seen = Vec::new();
    while let Some(t) = ivr.poll_timeout() {
        ivr.handle_timeout(&Meetings, t);
        seen.extend(actions(&mut ivr));
    }
    assert_eq!(
        seen,
        [
            Action::Play(Prompt::EnterMeetingId),
            Action::Play(Prompt::EnterMeetingId),
            Action::Play(Prompt::Goodbye),
            Action::Hangup { reason: Refusal::Timeout }
        ]
    );
}

#[test]
fn an_endless_entry_is_bounded_and_letters_are_ignored() {
    let mut ivr = Ivr::start(IvrConfig::default(), "", &Meetings, at(0));
    actions(&mut ivr);
    let long = "1".repeat(1000);
    let t = press(&mut ivr, &long, 0);
    press(&mut ivr, "AB#", t);
    assert_eq!(actions(&mut ivr).get(1), Some(&Action::Play(Prompt::InvalidMeetingId)));
}
