//! `multipart/*` bodies (SIPREC's SDP + metadata INVITEs) from a hostile peer: never a panic;
//! what splits also prints and splits again into the same bodies; a recording offer read
//! from it is answered with an SDP that reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::message::multipart;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let (boundary, body) = rest.split_at((n as usize % 24).min(rest.len()));
    let boundary = String::from_utf8_lossy(boundary).replace(['"', ';', '\r', '\n'], "");
    let content_type = format!("multipart/mixed;boundary=\"{boundary}\"");
    if let Ok(offer) = siprec::offer::Offer::read(&content_type, body) {
        let key = media::srtp::MasterKey { key: [1; 16], salt: [2; 14] };
        let keys: Vec<_> =
            offer.streams.iter().map(|s| s.crypto.as_ref().map(|_| key.clone())).collect();
        let answer = offer.answer("192.0.2.1".parse().expect("ip"), &[20000, 20002], &keys, 1);
        assert!(media::sdp::Sdp::parse(answer.to_text().as_bytes()).is_ok(), "the answer reads");
        assert!(offer.streams.len() <= siprec::offer::MAX_STREAMS);
    }
    let Ok(parts) = multipart::parse(&content_type, body) else { return };
    let Some(b) = multipart::boundary(&content_type) else { return };
    let printed = multipart::print(&b, &parts);
    if let Ok(again) = multipart::parse(&content_type, &printed) {
        let bodies = |ps: &[multipart::Part]| ps.iter().map(|p| p.body.clone()).collect::<Vec<_>>();
        assert_eq!(bodies(&again), bodies(&parts), "printed and split again");
    }
});
