//! SIPREC recording metadata (RFC 7865 XML) from a hostile recording client: never a panic,
//! every bound kept (items, values), the JSON form always made, and merging an update of any
//! kind into any state keeps the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use siprec::metadata::{Metadata, MAX_ITEMS, MAX_TEXT};

fn bounded(m: &Metadata) {
    assert!(m.sessions.len() <= MAX_ITEMS);
    assert!(m.participants.len() <= MAX_ITEMS);
    assert!(m.streams.len() <= MAX_ITEMS);
    for p in &m.participants {
        assert!(p.id.len() <= MAX_TEXT && p.name.as_ref().is_none_or(|n| n.len() <= MAX_TEXT));
        assert!(p.send.len() <= MAX_ITEMS && p.recv.len() <= MAX_ITEMS);
    }
    for s in &m.streams {
        assert!(s.label.as_ref().is_none_or(|l| l.len() <= MAX_TEXT));
    }
}

fuzz_target!(|data: &[u8]| {
    // Two documents: a state and an update.
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (first, second) = (&data[..cut], data.get(cut + 1..).unwrap_or_default());
    let Ok(mut state) = Metadata::parse(first) else { return };
    bounded(&state);
    let _ = state.to_json().to_string();
    if let Ok(update) = Metadata::parse(second) {
        bounded(&update);
        state.merge(update);
        bounded(&state);
        let _ = state.to_json().to_string();
    }
});
