//! A capture-file reader down to UDP datagrams: pcap (µs and ns) and pcapng, either byte order;
//! link types Ethernet (with 802.1Q/802.1ad VLAN tags), Linux cooked v1/v2, BSD loopback/null and
//! raw IP; IPv4 (first fragments, IP-in-IP) and IPv6 (extension headers). Other frames are
//! skipped. Reads from a byte slice: no IO here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CaptureError {
    #[error("not a pcap or pcapng file")]
    UnknownFormat,
    #[error("truncated capture file at byte {0}")]
    Truncated(usize),
    #[error("malformed pcapng block at byte {0}")]
    BadBlock(usize),
}

/// One UDP datagram found in the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Capture time in nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: &'a [u8],
}

/// Every UDP datagram of a pcap or pcapng file, in file order.
pub fn udp_datagrams(file: &[u8]) -> Result<Vec<Datagram<'_>>, CaptureError> {
    let mut out = Vec::new();
    for_each_frame(file, |time_ns, link, frame| {
        if let Some((src, dst, payload)) = link_to_udp(link, frame) {
            out.push(Datagram { time_ns, src, dst, payload });
        }
    })?;
    Ok(out)
}

fn rd16(b: &[u8], at: usize, le: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if le { u16::from_le_bytes(s) } else { u16::from_be_bytes(s) })
}

fn rd32(b: &[u8], at: usize, le: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if le { u32::from_le_bytes(s) } else { u32::from_be_bytes(s) })
}

/// Calls `f(time_ns, linktype, frame)` for each captured frame.
fn for_each_frame<'a>(
    file: &'a [u8],
    mut f: impl FnMut(u64, u32, &'a [u8]),
) -> Result<(), CaptureError> {
    let magic = rd32(file, 0, false).ok_or(CaptureError::UnknownFormat)?;
    match magic {
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
            let le = matches!(magic, 0xd4c3_b2a1 | 0x4d3c_b2a1);
            let nanos = matches!(magic, 0xa1b2_3c4d | 0x4d3c_b2a1);
            let link = rd32(file, 20, le).ok_or(CaptureError::Truncated(20))?;
            let mut pos = 24;
            while pos < file.len() {
                let truncated = CaptureError::Truncated(pos);
                let hdr_end = pos.checked_add(16).ok_or(truncated.clone())?;
                let hdr = file.get(pos..hdr_end).ok_or(truncated.clone())?;
                let secs = u64::from(rd32(hdr, 0, le).unwrap_or(0));
                let frac = u64::from(rd32(hdr, 4, le).unwrap_or(0));
                let caplen = rd32(hdr, 8, le).unwrap_or(0) as usize;
                let end = hdr_end.checked_add(caplen).ok_or(truncated.clone())?;
                let data = file.get(hdr_end..end).ok_or(truncated)?;
                // u32 seconds × 10⁹ plus a u32 fraction × 10³ fit in a u64.
                let ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
                f(ns, link, data);
                pos = end;
            }
            Ok(())
        }
        0x0a0d_0d0a => pcapng(file, f),
        _ => Err(CaptureError::UnknownFormat),
    }
}

fn pcapng<'a>(file: &'a [u8], mut f: impl FnMut(u64, u32, &'a [u8])) -> Result<(), CaptureError> {
    let mut pos = 0;
    let mut le = true;
    // (linktype, timestamp units per second) per interface of the current section.
    let mut ifaces: Vec<(u32, u64)> = Vec::new();
    while file.len().saturating_sub(pos) >= 12 {
        let btype = rd32(file, pos, le).ok_or(CaptureError::Truncated(pos))?;
        if btype == 0x0a0d_0d0a {
            let bom = rd32(file, pos + 8, true).ok_or(CaptureError::Truncated(pos))?;
            le = match bom {
                0x1a2b_3c4d => true,
                0x4d3c_2b1a => false,
                _ => return Err(CaptureError::BadBlock(pos)),
            };
            ifaces.clear();
        }
        let len = rd32(file, pos + 4, le).ok_or(CaptureError::Truncated(pos))? as usize;
        if len < 12 || !len.is_multiple_of(4) || len > file.len() - pos {
            return Err(CaptureError::BadBlock(pos));
        }
        let body = &file[pos + 8..pos + len - 4];
        match btype {
            1 => {
                let link = u32::from(rd16(body, 0, le).ok_or(CaptureError::BadBlock(pos))?);
                ifaces.push((link, if_tsresol(&body[8.min(body.len())..], le)));
            }
            6 => {
                let iface = rd32(body, 0, le).ok_or(CaptureError::BadBlock(pos))? as usize;
                let hi = u64::from(rd32(body, 4, le).ok_or(CaptureError::BadBlock(pos))?);
                let lo = u64::from(rd32(body, 8, le).ok_or(CaptureError::BadBlock(pos))?);
                let caplen = rd32(body, 12, le).ok_or(CaptureError::BadBlock(pos))? as usize;
                let end = caplen.checked_add(20).ok_or(CaptureError::BadBlock(pos))?;
                let data = body.get(20..end).ok_or(CaptureError::BadBlock(pos))?;
                let (link, per_sec) = *ifaces.get(iface).ok_or(CaptureError::BadBlock(pos))?;
                let ticks = (hi << 32) | lo;
                let ns = (u128::from(ticks) * 1_000_000_000 / u128::from(per_sec.max(1))) as u64;
                f(ns, link, data);
            }
            3 => {
                // Simple packet block: no timestamp, interface 0.
                if let (Some(&(link, _)), Some(data)) = (ifaces.first(), body.get(4..)) {
                    f(0, link, data);
                }
            }
            _ => {}
        }
        pos += len;
    }
    Ok(())
}

/// The `if_tsresol` option of an interface description block (default microseconds).
fn if_tsresol(opts: &[u8], le: bool) -> u64 {
    let mut pos = 0;
    while opts.len().saturating_sub(pos) >= 4 {
        let code = rd16(opts, pos, le).unwrap_or(0);
        let len = usize::from(rd16(opts, pos + 2, le).unwrap_or(0));
        if code == 0 {
            break;
        }
        if code == 9 && len >= 1 {
            let Some(&v) = opts.get(pos + 4) else { break };
            let exp = u32::from(v & 0x7f);
            return if v & 0x80 == 0 {
                10u64.saturating_pow(exp)
            } else {
                2u64.saturating_pow(exp)
            };
        }
        pos += 4 + len.div_ceil(4) * 4;
    }
    1_000_000
}

/// Link layer → network layer: (ethertype-like protocol, payload).
fn link_to_udp(link: u32, frame: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    match link {
        // Ethernet
        1 => {
            let mut et = rd16(frame, 12, false)?;
            let mut off = 14;
            while et == 0x8100 || et == 0x88a8 || et == 0x9100 {
                et = rd16(frame, off + 2, false)?;
                off += 4;
            }
            ip(et, frame.get(off..)?)
        }
        // BSD loopback/null: 4-byte address family in the capturing host's byte order.
        0 | 108 => {
            let fam_le = rd32(frame, 0, true)?;
            let fam_be = rd32(frame, 0, false)?;
            let v4 = fam_le == 2 || fam_be == 2;
            let v6 = [24, 28, 30].contains(&fam_le) || [24, 28, 30].contains(&fam_be);
            let et = if v4 {
                0x0800
            } else if v6 {
                0x86dd
            } else {
                return None;
            };
            ip(et, frame.get(4..)?)
        }
        // Raw IP
        101 | 12 | 14 => {
            let et = if frame.first()? >> 4 == 6 { 0x86dd } else { 0x0800 };
            ip(et, frame)
        }
        // Linux cooked v1: protocol at 14, 16-byte header.
        113 => ip(rd16(frame, 14, false)?, frame.get(16..)?),
        // Linux cooked v2: protocol at 0, 20-byte header.
        276 => ip(rd16(frame, 0, false)?, frame.get(20..)?),
        _ => None,
    }
}

/// Most IP headers read for one frame (tunnels inside tunnels); deeper frames are skipped.
const MAX_IP_NESTING: u8 = 4;

fn ip(ethertype: u16, pkt: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    match ethertype {
        0x0800 => ipv4(pkt, MAX_IP_NESTING),
        0x86dd => ipv6(pkt, MAX_IP_NESTING),
        _ => None,
    }
}

fn ipv4(p: &[u8], depth: u8) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let depth = depth.checked_sub(1)?;
    let head: &[u8; 20] = p.get(..20)?.try_into().ok()?;
    if head[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(head[0] & 0x0f) * 4;
    if ihl < 20 {
        return None; // IHL below the minimum header: malformed
    }
    let total = usize::from(rd16(p, 2, false)?).min(p.len());
    let frag = rd16(p, 6, false)?;
    if frag & 0x1fff != 0 {
        return None; // a later fragment: no UDP header
    }
    let src = IpAddr::V4(Ipv4Addr::new(head[12], head[13], head[14], head[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(head[16], head[17], head[18], head[19]));
    let body = p.get(ihl..total)?;
    match head[9] {
        17 => udp(src, dst, body),
        4 => ipv4(body, depth),
        41 => ipv6(body, depth),
        _ => None,
    }
}

fn ipv6(p: &[u8], depth: u8) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let depth = depth.checked_sub(1)?;
    if p.first()? >> 4 != 6 {
        return None;
    }
    let plen = usize::from(rd16(p, 4, false)?);
    let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
    let (src, dst) = (IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(Ipv6Addr::from(dst)));
    let mut next = p[6];
    let mut off = 40;
    let end = (40 + plen).min(p.len());
    loop {
        match next {
            17 => return udp(src, dst, p.get(off..end)?),
            0 | 43 | 60 => {
                next = *p.get(off)?;
                off += (usize::from(*p.get(off + 1)?) + 1) * 8;
            }
            44 => {
                let frag = rd16(p, off + 2, false)?;
                if frag & 0xfff8 != 0 {
                    return None;
                }
                next = *p.get(off)?;
                off += 8;
            }
            4 => return ipv4(p.get(off..end)?, depth),
            41 => return ipv6(p.get(off..end)?, depth),
            _ => return None,
        }
    }
}

fn udp(src: IpAddr, dst: IpAddr, p: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let sport = rd16(p, 0, false)?;
    let dport = rd16(p, 2, false)?;
    let len = usize::from(rd16(p, 4, false)?);
    let end = if len >= 8 { len.min(p.len()) } else { p.len() };
    Some((SocketAddr::new(src, sport), SocketAddr::new(dst, dport), p.get(8..end)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth_ipv4_udp(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]); // one VLAN tag
        let total = 20 + 8 + payload.len();
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
        ]);
        let ulen = 8 + payload.len();
        f.extend_from_slice(&[0x13, 0x88, 0x07, 0xd6, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn reads_pcap_little_endian_with_vlan() {
        let frame = eth_ipv4_udp(b"hello");
        let mut file = vec![
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0,
            0,
        ];
        file.extend_from_slice(&10u32.to_le_bytes());
        file.extend_from_slice(&500u32.to_le_bytes());
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(&frame);
        let d = udp_datagrams(&file).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].time_ns, 10_000_500_000);
        assert_eq!(d[0].src, "10.0.0.1:5000".parse().unwrap());
        assert_eq!(d[0].dst, "10.0.0.2:2006".parse().unwrap());
        assert_eq!(d[0].payload, b"hello");
    }

    #[test]
    fn rejects_unknown_and_truncated() {
        assert_eq!(
            udp_datagrams(b"GIF89a.........................."),
            Err(CaptureError::UnknownFormat)
        );
        let mut file = vec![
            0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0,
            1,
        ];
        file.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 99, 0, 0, 0, 99, 1, 2, 3]);
        assert_eq!(udp_datagrams(&file), Err(CaptureError::Truncated(24)));
    }
    fn pcap_of(frames: &[Vec<u8>], link: u8) -> Vec<u8> {
        let mut file = vec![
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, link, 0,
            0, 0,
        ];
        for frame in frames {
            file.extend_from_slice(&[0; 8]);
            file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            file.extend_from_slice(frame);
        }
        file
    }

    #[test]
    fn hostile_ip_headers_are_skipped() {
        // IP-in-IP whose IHL is 0: the "inner" packet is the outer one again (looped forever).
        let mut ihl0 = vec![0x40, 0, 0, 40, 0, 0, 0, 0, 64, 4, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        ihl0.resize(40, 0);
        // IPv4 shorter than its own header; IPv4 with IHL 15 and nothing after it.
        let short = vec![0x45, 0, 0, 14, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2];
        let long_ihl = vec![0x4f, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        // Tunnels nested deeper than any real capture: skipped, not recursed without end.
        let mut nested = Vec::new();
        for _ in 0..64 {
            nested.extend_from_slice(&[0x45, 0, 0xff, 0xff, 0, 0, 0, 0, 64, 4, 0, 0]);
            nested.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        }
        let file = pcap_of(&[ihl0, short, long_ihl, nested], 101);
        assert_eq!(udp_datagrams(&file), Ok(vec![]));
    }

    #[test]
    fn pcapng_option_at_the_end_of_a_block() {
        // An interface description block whose if_tsresol option header ends the block.
        let mut shb = vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0];
        shb.extend_from_slice(&[0xff; 8]);
        shb.extend_from_slice(&28u32.to_le_bytes());
        let mut idb = vec![1, 0, 0, 0, 24, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        idb.extend_from_slice(&[9, 0, 1, 0]);
        idb.extend_from_slice(&24u32.to_le_bytes());
        let mut file = shb;
        file.extend_from_slice(&idb);
        assert_eq!(udp_datagrams(&file), Ok(vec![]));
    }

    #[test]
    fn mutated_captures_never_panic() {
        let frame = eth_ipv4_udp(b"hello, world");
        let file = pcap_of(&[frame.clone(), frame], 1);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut m = file.clone();
            for _ in 0..1 + (x % 4) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % m.len();
                m[at] = (x >> 32) as u8;
            }
            if x.is_multiple_of(7) {
                m.truncate((x as usize >> 8) % m.len());
            }
            let _ = udp_datagrams(&m);
        }
    }
}
