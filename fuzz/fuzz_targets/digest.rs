//! Digest credentials and challenges (`Proxy-Authorization`, `Proxy-Authenticate`): parse and
//! read every parameter; a parsed value prints and re-parses to the same parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::message::Digest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(d) = Digest::parse(text) else { return };
    let names =
        ["username", "realm", "nonce", "uri", "response", "algorithm", "qop", "nc", "cnonce"];
    let printed = d.to_string();
    let again = Digest::parse(&printed).expect("a printed Digest parses");
    for name in names {
        assert_eq!(again.get(name), d.get(name), "{name} after print: {printed}");
    }
});
