//! SDP: parse, read every typed view, print and re-parse; then offer/answer through the anchor
//! (`media::negotiate`) from either leg, whose output must parse again; and a meeting dial-in's
//! offer (`meeting::offer`) answered, which must parse again.
#![no_main]

use common::Side;
use libfuzzer_sys::fuzz_target;
use media::negotiate::Negotiation;
use media::sdp::Sdp;
use media::srtp::MasterKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(offer) = meeting::offer::Offer::read(data) {
        let key = MasterKey { key: [1; 16], salt: [2; 14] };
        let answer = offer.answer("198.51.100.1:20000".parse().expect("addr"), Some(&key), 1);
        let text = answer.to_text();
        let again = Sdp::parse(text.as_bytes()).expect("the meeting answer parses");
        assert_eq!(again.media.len(), offer.sdp.media.len(), "every m-line answered");
    }
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

    let key = || MasterKey { key: [7; 16], salt: [9; 14] };
    let mut n = Negotiation::new(
        [192, 0, 2, 1].into(),
        [40_000, 40_002],
        [key(), key()],
        true,
        Some(Side::A),
    );
    for from in [Side::A, Side::B, Side::A] {
        if let Ok(r) = n.rewrite(from, data) {
            Sdp::parse(r.body.as_bytes()).expect("rewritten SDP parses");
        }
    }
});
