//! The pcap/pcapng reader behind `voicegw analyze` (and `replay`): any file gives datagrams or
//! an error, in bounded time.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(datagrams) = media::capture::udp_datagrams(data) {
        for d in datagrams {
            assert!(d.payload.len() <= data.len());
        }
    }
});
