//! SDP: parse, read every typed view, print and re-parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::sdp::Sdp;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = Sdp::parse(data) else { return };
    let _ = sdp.connection();
    for m in &sdp.media {
        let _ = sdp.media_addr(m);
        let _ = m.attributes("crypto").count();
        let _ = m.rtpmaps();
        let _ = m.ptime();
    }
    let text = sdp.to_text();
    let again = Sdp::parse(text.as_bytes()).expect("printed SDP parses");
    assert_eq!(again.media.len(), sdp.media.len());
});
