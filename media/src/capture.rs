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
                let hdr = file.get(pos..pos + 16).ok_or(CaptureError::Truncated(pos))?;
                let secs = u64::from(rd32(hdr, 0, le).unwrap_or(0));
                let frac = u64::from(rd32(hdr, 4, le).unwrap_or(0));
                let caplen = rd32(hdr, 8, le).unwrap_or(0) as usize;
                let data =
                    file.get(pos + 16..pos + 16 + caplen).ok_or(CaptureError::Truncated(pos))?;
                let ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
                f(ns, link, data);
                pos += 16 + caplen;
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
    while pos + 12 <= file.len() {
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
        if len < 12 || len % 4 != 0 || pos + len > file.len() {
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
                let data = body.get(20..20 + caplen).ok_or(CaptureError::BadBlock(pos))?;
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
    while pos + 4 <= opts.len() {
        let code = rd16(opts, pos, le).unwrap_or(0);
        let len = usize::from(rd16(opts, pos + 2, le).unwrap_or(0));
        if code == 0 {
            break;
        }
        if code == 9 && len >= 1 {
            let v = opts[pos + 4];
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

fn ip(ethertype: u16, pkt: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    match ethertype {
        0x0800 => ipv4(pkt),
        0x86dd => ipv6(pkt),
        _ => None,
    }
}

fn ipv4(p: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    if p.first()? >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(rd16(p, 2, false)?).min(p.len());
    let frag = rd16(p, 6, false)?;
    if frag & 0x1fff != 0 {
        return None; // a later fragment: no UDP header
    }
    let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(*p.get(16)?, p[17], p[18], p[19]));
    let body = p.get(ihl..total)?;
    match p[9] {
        17 => udp(src, dst, body),
        4 => ipv4(body),
        41 => ipv6(body),
        _ => None,
    }
}

fn ipv6(p: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
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
            4 => return ipv4(p.get(off..end)?),
            41 => return ipv6(p.get(off..end)?),
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
}
