//! A small capture writer for tests: synthetic RTP streams with a seeded network model (delay
//! jitter large enough to reorder, loss, duplicates), written as a classic pcap (Ethernet, IPv4,
//! UDP) that tshark and `voicegw analyze` both read.

use std::io::Write;
use std::path::Path;

/// What the network does to a stream of 20 ms G.711 A-law packets.
#[derive(Debug, Clone, Copy)]
pub struct Network {
    pub seed: u64,
    pub packets: u16,
    /// Each packet is delayed by a uniform 0..max_delay_ms: above 20 ms, packets reorder.
    pub max_delay_ms: f64,
    /// Per mille of packets lost, and of packets duplicated.
    pub loss_permille: u64,
    pub duplicate_permille: u64,
}

fn next(state: &mut u64) -> u64 {
    // xorshift64*: deterministic for a seed.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Writes one stream 10.0.0.1:40000 → 10.0.0.2:40002 (SSRC 0x1234, PT 8) to `path`; returns
/// the number of packets written.
pub fn write_rtp_stream(path: &Path, net: Network) -> usize {
    write_rtp_stream_as(path, net, 8)
}

/// [`write_rtp_stream`] with RTP payload type `pt` (the payload bytes are the same).
pub fn write_rtp_stream_as(path: &Path, net: Network, pt: u8) -> usize {
    let mut state = net.seed.max(1);
    let mut arrivals: Vec<(f64, u16)> = Vec::new();
    for i in 0..net.packets {
        let r = next(&mut state);
        if i > 0 && i + 1 < net.packets && r % 1000 < net.loss_permille {
            continue;
        }
        let send = 1000.0 + f64::from(i) * 0.020;
        let delay = (next(&mut state) % 1_000_000) as f64 / 1e6 * net.max_delay_ms / 1000.0;
        arrivals.push((send + delay, i));
        if (next(&mut state) % 1000) < net.duplicate_permille {
            let again = (next(&mut state) % 1_000_000) as f64 / 1e6 * net.max_delay_ms / 1000.0;
            arrivals.push((send + again, i));
        }
    }
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (t, seq) in &arrivals {
        let mut rtp = vec![0x80, pt];
        rtp.extend_from_slice(&seq.to_be_bytes());
        rtp.extend_from_slice(&(u32::from(*seq) * 160).to_be_bytes());
        rtp.extend_from_slice(&0x1234u32.to_be_bytes());
        // A sweep of code words, different in every packet (streamed audio is compared byte
        // for byte).
        rtp.extend((0..160usize).map(|i| ((usize::from(*seq) * 7 + i) % 256) as u8));
        let udp_len = 8 + rtp.len();
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&[0x45, 0]);
        frame.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        frame.extend_from_slice(&40_000u16.to_be_bytes());
        frame.extend_from_slice(&40_002u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&rtp);
        let micros = (t * 1e6).round() as u64;
        out.extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::File::create(path).and_then(|mut f| f.write_all(&out)).expect("write capture");
    arrivals.len()
}
