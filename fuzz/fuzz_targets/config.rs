//! The configuration file: TOML text through parsing, the JSON documents it names and
//! validation; an error must print (file:line and key), and a valid file must build the router
//! the B2BUA asks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Document paths resolve under a directory that does not exist: only the text is input.
    let base = std::path::Path::new("/nonexistent/voicegw-fuzz");
    match connector::config::Config::parse_in(text, "fuzz.toml", base) {
        Ok(v) => {
            let _ = connector::policy::ConfigRouter::new(&v, 7);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
