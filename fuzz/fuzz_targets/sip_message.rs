//! SIP messages and stream framing: the parser on the whole input, and the framer on the same
//! bytes cut into chunks whose sizes come from the input. Every framed message must parse or
//! fail cleanly, a parsed message must print and re-parse to itself, and the framer must never
//! hold more than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::framing::{Frame, StreamFramer};
use sip::message::{parse_message, ParseLimits};
use sip::Message;

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits::default();
    if let Ok(m) = parse_message(data, &limits) {
        let printed = m.to_bytes();
        let again = Message::parse(&printed).expect("a printed message parses");
        assert_eq!(again, m, "print/parse round trip");
        let _ = sip::b2bua::bad_request_for(data, "fuzz");
    }
    let _ = sip::b2bua::bad_request_for(data, "fuzz");
    let Some((&first, rest)) = data.split_first() else { return };
    let chunk = usize::from(first % 64) + 1;
    let mut framer = StreamFramer::new(limits);
    for piece in rest.chunks(chunk) {
        framer.push(piece);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    let _ = parse_message(&m, &limits);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return, // the connection would be closed
            }
        }
        assert!(framer.buffered() <= limits.max_message_size + chunk);
    }
});
