//! SRTP and SRTCP unprotect with a fixed key: forged, truncated and replayed packets must be
//! refused without a panic, and a packet protected here must unprotect to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::srtp::{Context, MasterKey, Suite};

fuzz_target!(|data: &[u8]| {
    let key =
        MasterKey::from_inline("inline:NhqBK/JjtVJgmOgPyDKpvMTEjvFCQ4eiyVQelF6x").expect("key");
    let suite = if data.first().is_some_and(|b| b & 1 == 1) {
        Suite::AesCm128HmacSha1_32
    } else {
        Suite::AesCm128HmacSha1_80
    };
    let mut rx = Context::new(suite, &key);
    let mut buf = data.to_vec();
    let _ = rx.unprotect_rtp(&mut buf);
    let mut buf = data.to_vec();
    let _ = rx.unprotect_rtcp(&mut buf);
    // Round trip of the input taken as a plain RTP packet.
    if media::rtp::RtpHeader::parse(data).is_ok() && data.len() < 1400 {
        let mut tx = Context::new(suite, &key);
        let mut rx = Context::new(suite, &key);
        let mut p = data.to_vec();
        p.resize(data.len() + 14, 0);
        if let Ok(n) = tx.protect_rtp(&mut p, data.len()) {
            let mut wire = p[..n].to_vec();
            let m = rx.unprotect_rtp(&mut wire).expect("our own packet unprotects");
            assert_eq!(&wire[..m], data);
            let mut again = p[..n].to_vec();
            assert!(rx.unprotect_rtp(&mut again).is_err(), "a replay is refused");
        }
    }
});
