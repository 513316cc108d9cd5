//! RTP and RTCP headers read in place (RFC 3550 §5.1, §6.4): no copy, no allocation.

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("packet of {0} bytes is shorter than an RTP header")]
    TooShort(usize),
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    #[error("CSRC list, extension or padding runs past the end of the packet")]
    Truncated,
}

/// The fixed RTP header fields and where the payload lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Offset of the payload (after CSRCs and the header extension).
    pub payload_offset: usize,
    /// Payload length without padding.
    pub payload_len: usize,
}

impl RtpHeader {
    pub fn parse(buf: &[u8]) -> Result<RtpHeader, RtpError> {
        RtpHeader::read(buf, true)
    }

    /// The header of an SRTP packet whose payload is still encrypted: the padding count (the
    /// last payload byte) is ciphertext, so it is not read (`payload_len` includes padding).
    pub fn parse_encrypted(buf: &[u8]) -> Result<RtpHeader, RtpError> {
        RtpHeader::read(buf, false)
    }

    fn read(buf: &[u8], honour_padding: bool) -> Result<RtpHeader, RtpError> {
        if buf.len() < 12 {
            return Err(RtpError::TooShort(buf.len()));
        }
        let version = buf[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let padding = honour_padding && buf[0] & 0x20 != 0;
        let extension = buf[0] & 0x10 != 0;
        let csrc = usize::from(buf[0] & 0x0f);
        let mut offset = 12 + 4 * csrc;
        if extension {
            let ext = buf.get(offset + 2..offset + 4).ok_or(RtpError::Truncated)?;
            offset += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        if offset > buf.len() {
            return Err(RtpError::Truncated);
        }
        let pad = if padding { usize::from(*buf.last().unwrap_or(&0)) } else { 0 };
        let payload_len = (buf.len() - offset).checked_sub(pad).ok_or(RtpError::Truncated)?;
        Ok(RtpHeader {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7f,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload_offset: offset,
            payload_len,
        })
    }
}

/// True when the packet looks like RTCP rather than RTP (version 2, packet type 192–223, which
/// RTP payload types 64–95 would collide with: RFC 5761 §4).
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 8 && buf[0] >> 6 == 2 && (192..=223).contains(&buf[1])
}

/// The clock rate of a static payload type (RFC 3551 Table 4/5), `None` for dynamic or unknown.
pub fn static_clock_rate(pt: u8) -> Option<u32> {
    Some(match pt {
        0 | 1 | 2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 13 | 15 | 18 | 19 => 8000,
        6 => 16_000,
        10 | 11 => 44_100,
        16 => 11_025,
        17 => 22_050,
        14 | 25 | 26 | 28 | 31 | 32 | 33 | 34 => 90_000,
        _ => return None,
    })
}

/// Comfort noise (RFC 3389, and the older PT 19).
pub fn is_comfort_noise(pt: u8) -> bool {
    pt == 13 || pt == 19
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixed_header_csrc_extension_and_padding() {
        let mut p = vec![0x80, 0x88, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef];
        p.extend_from_slice(&[0u8; 160]);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(
            (h.marker, h.payload_type, h.sequence, h.timestamp, h.ssrc),
            (true, 8, 0x1234, 320, 0xdeadbeef)
        );
        assert_eq!((h.payload_offset, h.payload_len), (12, 160));
        // one CSRC, a one-word extension, 4 bytes of padding
        let mut q = vec![
            0xb1, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 0xbe, 0xde, 0, 1, 1, 2, 3, 4,
        ];
        q.extend_from_slice(&[7u8; 10]);
        q.extend_from_slice(&[0, 0, 0, 4]);
        let h = RtpHeader::parse(&q).unwrap();
        assert_eq!((h.payload_offset, h.payload_len), (24, 10));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(RtpHeader::parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        assert_eq!(RtpHeader::parse(&[0x40; 12]), Err(RtpError::Version(1)));
        assert_eq!(RtpHeader::parse(&[0x8f; 12]), Err(RtpError::Truncated));
        let mut pad = vec![0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200];
        assert_eq!(RtpHeader::parse(&pad), Err(RtpError::Truncated));
        pad.truncate(12);
        assert!(is_rtcp(&[0x81, 200, 0, 6, 0, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0, 0, 6, 0, 0, 0, 1]));
    }
}
