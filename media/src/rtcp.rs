//! RTCP compound packets (RFC 3550 §6.4): sender and receiver reports, read in place, and the
//! round-trip time a report block gives (§6.4.1: A − LSR − DLSR).

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The SSRC this block reports on.
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units of the reported stream.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from that source, 0 if none.
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

/// A sender or receiver report found in a compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub sender_ssrc: u32,
    /// For SRs: the middle 32 bits of the NTP timestamp (what receivers echo as LSR).
    pub ntp_middle: Option<u32>,
    pub blocks: Vec<ReportBlock>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The SRs and RRs of a compound RTCP packet; other packet types (SDES, BYE, APP, XR) are
/// skipped. Stops at the first malformed packet.
pub fn reports(buf: &[u8]) -> Vec<Report> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= buf.len() {
        let b0 = buf[pos];
        if b0 >> 6 != 2 {
            break;
        }
        let count = usize::from(b0 & 0x1f);
        let pt = buf[pos + 1];
        let len = (usize::from(u16::from_be_bytes([buf[pos + 2], buf[pos + 3]])) + 1) * 4;
        let Some(pkt) = buf.get(pos..pos + len) else { break };
        let (ntp_middle, blocks_at) = match pt {
            200 => {
                (Some((be32(pkt, 8).unwrap_or(0) << 16) | (be32(pkt, 12).unwrap_or(0) >> 16)), 28)
            }
            201 => (None, 8),
            _ => {
                pos += len;
                continue;
            }
        };
        let Some(sender_ssrc) = be32(pkt, 4) else { break };
        let mut blocks = Vec::with_capacity(count);
        for i in 0..count {
            let at = blocks_at + 24 * i;
            let (Some(ssrc), Some(lost_word), Some(ext), Some(jitter), Some(lsr), Some(dlsr)) = (
                be32(pkt, at),
                be32(pkt, at + 4),
                be32(pkt, at + 8),
                be32(pkt, at + 12),
                be32(pkt, at + 16),
                be32(pkt, at + 20),
            ) else {
                break;
            };
            // Sign-extend the 24-bit cumulative loss.
            let cumulative_lost = ((lost_word << 8) as i32) >> 8;
            blocks.push(ReportBlock {
                ssrc,
                fraction_lost: (lost_word >> 24) as u8,
                cumulative_lost,
                extended_highest_seq: ext,
                jitter,
                lsr,
                dlsr,
            });
        }
        out.push(Report { sender_ssrc, ntp_middle, blocks });
        pos += len;
    }
    out
}

/// Round-trip time in ms from a report block received at `arrival_ms`, given when the SR it
/// refers to (by LSR) was sent (`sr_sent_ms`, same clock). `None` without an LSR.
pub fn rtt_ms(block: &ReportBlock, sr_sent_ms: f64, arrival_ms: f64) -> Option<f64> {
    if block.lsr == 0 {
        return None;
    }
    let rtt = arrival_ms - sr_sent_ms - f64::from(block.dlsr) * 1000.0 / 65_536.0;
    Some(rtt.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sr_with_a_block_then_sdes() {
        let mut p = vec![0x81, 200, 0, 12];
        p.extend_from_slice(&0x1111_1111u32.to_be_bytes());
        p.extend_from_slice(&0xb705_2000u32.to_be_bytes()); // NTP seconds (low 16 bits: 0x2000)
        p.extend_from_slice(&0x8000_0000u32.to_be_bytes()); // NTP fraction
        p.extend_from_slice(&[0; 12]); // RTP ts, packet and octet counts
        p.extend_from_slice(&0x2222_2222u32.to_be_bytes());
        p.extend_from_slice(&[5, 0xff, 0xff, 0xfe]); // fraction 5, cumulative -2
        p.extend_from_slice(&70_000u32.to_be_bytes());
        p.extend_from_slice(&32u32.to_be_bytes());
        p.extend_from_slice(&0xb705_2000u32.to_be_bytes());
        p.extend_from_slice(&0x0005_4000u32.to_be_bytes());
        p.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 9]);
        let r = reports(&p);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].sender_ssrc, 0x1111_1111);
        assert_eq!(r[0].ntp_middle, Some(0x2000_8000));
        let b = r[0].blocks[0];
        assert_eq!(
            (b.ssrc, b.fraction_lost, b.cumulative_lost, b.extended_highest_seq, b.jitter),
            (0x2222_2222, 5, -2, 70_000, 32)
        );
        // RFC 3550 §6.4.1 example: DLSR 0x0005:4000 = 5.25 s.
        assert_eq!(rtt_ms(&b, 1000.0, 7375.0), Some(1125.0));
        assert_eq!(rtt_ms(&ReportBlock { lsr: 0, ..b }, 0.0, 1.0), None);
    }

    #[test]
    fn truncated_and_garbage() {
        assert!(reports(&[0x81, 201, 0, 7, 0, 0]).is_empty());
        assert!(reports(&[0x00; 40]).is_empty());
        let rr = [0x81, 201, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        // Claims one block but has only 4 bytes of it: the report without blocks.
        assert_eq!(reports(&rr)[0].blocks.len(), 0);
    }
}
