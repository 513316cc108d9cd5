//! DTMF from a hostile peer: RFC 4733 telephone-event payloads with any timestamps, SIP INFO
//! bodies of both DTMF types, and any audio for the in-band detector; the keys found then
//! drive the meeting IVR and the in-meeting controls in virtual time. Never a panic; the IVR
//! always ends (joined or refused) once time runs on.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use media::dtmf::{inband::InbandDetector, info, telephone_event::EventReceiver, Digit};
use meeting::controls::Controls;
use meeting::ivr::{Directory, Ivr, IvrConfig, MeetingRef, ModeratorRef};
use sip::Instant;

struct One;

impl Directory for One {
    fn meeting(&self, id: &str) -> Option<MeetingRef> {
        (id == "1234567890").then(|| MeetingRef { id: id.into() })
    }
    fn moderator(&self, id: &str) -> Option<ModeratorRef> {
        (id == "1234567890123")
            .then(|| ModeratorRef { meeting_id: "1234567890".into(), passcode: "4321".into() })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut keys: Vec<Digit> = Vec::new();
    match mode % 3 {
        0 => {
            let mut r = EventReceiver::new();
            for chunk in rest.chunks(8) {
                let ts = u32::from_be_bytes([
                    chunk.first().copied().unwrap_or(0),
                    chunk.get(1).copied().unwrap_or(0),
                    0,
                    chunk.get(2).copied().unwrap_or(0),
                ]);
                keys.extend(r.packet(ts, chunk.get(3..).unwrap_or(&[])));
            }
        }
        1 => {
            let (a, b) = rest.split_at(rest.len() / 2);
            keys.extend(info::digit("application/dtmf-relay", a));
            keys.extend(info::digit("application/dtmf", b));
        }
        _ => {
            let samples: Vec<i16> =
                rest.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
            let mut d = InbandDetector::new();
            d.push(&samples, |k| keys.push(k));
        }
    }
    let user = keys.iter().map(|k| k.as_char()).collect::<String>();
    let mut now = Instant::ZERO;
    let mut ivr = Ivr::start(IvrConfig::default(), &user, &One, now);
    let mut controls = Controls::new(mode & 4 != 0);
    for k in &keys {
        now = now + Duration::from_millis(700);
        ivr.digit(*k, &One, now);
        let _ = controls.digit(*k, now);
        while ivr.poll_action().is_some() {}
    }
    for _ in 0..100 {
        let Some(t) = ivr.poll_timeout() else { break };
        // A driver that was late calls at once (the keys above came without timeouts).
        now = now.max(t);
        ivr.handle_timeout(&One, now);
        while ivr.poll_action().is_some() {}
    }
    assert!(ivr.is_done(), "the IVR ends once time runs on: keys {user:?}, {ivr:?}");
});
