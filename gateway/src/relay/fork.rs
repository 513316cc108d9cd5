//! Copies of a call's RTP for a recording server (voicegw its SIPREC client): what each side
//! of the call sends, in clear (after SRTP), leaves from the recording session's own socket
//! for that stream — the caller's audio on the first, the callee's on the second — to where
//! the recording server's answer said. Copies are sent as the relay accepts each packet, with
//! no copy of the bytes and no allocation; what the recording server sends back (RTCP
//! receiver reports) is not read.
//!
//! The call's first packets usually arrive before the recording server has answered (the
//! caller starts sending once it has the 200 OK, while the recording INVITE is still on its
//! way): those are held, in one buffer allocated when the fork opens and bounded at
//! [`HOLD_PACKETS`] and [`HOLD_BYTES`], and sent in order the moment the answer says where,
//! so the recording starts with the call's first word. What does not fit is counted as
//! not held.

use std::net::{SocketAddr, UdpSocket};

use common::Instant;
use media::relay::{Side, Tap};
use media::rtp::RtpHeader;

/// At most this many packets (both sides together) are held before the recorder answers:
/// two seconds of 20 ms packets per side.
pub const HOLD_PACKETS: usize = 200;
/// At most this many bytes are held before the recorder answers.
pub const HOLD_BYTES: usize = 48 * 1024;

/// One call's recording streams.
pub struct Fork {
    /// `[caller's rtp, rtcp, callee's rtp, rtcp]`.
    socks: Box<[UdpSocket; 4]>,
    to: [Option<SocketAddr>; 2],
    /// Until the recorder answered: the packets held, back to back, and each one's side and
    /// length. `None` once answered.
    held: Option<Held>,
    /// Packets copied per stream, and copies the socket refused (a full buffer, an ICMP error).
    pub sent: [u64; 2],
    pub failed: [u64; 2],
    /// Packets that arrived before the answer and did not fit in the hold.
    pub not_held: [u64; 2],
}

struct Held {
    bytes: Vec<u8>,
    packets: Vec<(Side, u16)>,
}

impl Fork {
    pub fn new(socks: Box<[UdpSocket; 4]>) -> Fork {
        for s in socks.iter() {
            let _ = s.set_nonblocking(true);
        }
        let held = Held {
            bytes: Vec::with_capacity(HOLD_BYTES),
            packets: Vec::with_capacity(HOLD_PACKETS),
        };
        Fork {
            socks,
            to: [None, None],
            held: Some(held),
            sent: [0; 2],
            failed: [0; 2],
            not_held: [0; 2],
        }
    }

    /// Where the recording server takes each stream: what was held is sent there now, in
    /// the order it arrived (a declined stream's is dropped), and each packet from now on.
    pub fn set_to(&mut self, to: [Option<SocketAddr>; 2]) {
        self.to = to;
        if let Some(held) = self.held.take() {
            let mut at = 0;
            for &(side, len) in &held.packets {
                let end = at + usize::from(len);
                self.send(side, &held.bytes[at..end]);
                at = end;
            }
        }
    }

    fn send(&mut self, side: Side, packet: &[u8]) {
        let i = side.index();
        let Some(to) = self.to[i] else {
            self.hold(side, packet);
            return;
        };
        match self.socks[i * 2].send_to(packet, to) {
            Ok(_) => self.sent[i] += 1,
            Err(_) => self.failed[i] += 1,
        }
    }

    fn hold(&mut self, side: Side, packet: &[u8]) {
        let Some(held) = self.held.as_mut() else { return };
        let fits = held.packets.len() < HOLD_PACKETS
            && held.bytes.len().saturating_add(packet.len()) <= HOLD_BYTES;
        match u16::try_from(packet.len()) {
            Ok(len) if fits => {
                held.bytes.extend_from_slice(packet);
                held.packets.push((side, len));
            }
            _ => self.not_held[side.index()] += 1,
        }
    }
}

/// A tap that also copies each accepted RTP packet to the call's recording streams.
pub struct ForkTap<'a, T> {
    pub inner: T,
    pub fork: &'a mut Fork,
}

impl<T: Tap> Tap for ForkTap<'_, T> {
    fn rtp(&mut self, side: Side, header: &RtpHeader, packet: &[u8], now: Instant) {
        self.inner.rtp(side, header, packet, now);
        self.fork.send(side, packet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").expect("socket")
    }

    #[test]
    fn each_sides_packets_leave_from_its_stream_socket_once_the_recorder_answered() {
        let socks = Box::new([bound(), bound(), bound(), bound()]);
        let (caller_from, callee_from) =
            (socks[0].local_addr().expect("addr"), socks[2].local_addr().expect("addr"));
        let mut fork = Fork::new(socks);
        let recorder = [bound(), bound()];
        for r in &recorder {
            r.set_read_timeout(Some(std::time::Duration::from_secs(2))).expect("timeout");
        }
        let packet = [0x80u8, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9, 0xd5, 0xd5];
        let header = RtpHeader::parse(&packet).expect("rtp");
        let mut early = packet;
        early[3] = 0; // sequence 0: the packet before the answer
        let early_header = RtpHeader::parse(&early).expect("rtp");
        let mut tap = ForkTap { inner: (), fork: &mut fork };
        tap.rtp(Side::A, &early_header, &early, Instant::ZERO);
        assert_eq!(tap.fork.sent, [0, 0], "nothing sent before the answer");
        let to = [recorder[0].local_addr().ok(), recorder[1].local_addr().ok()];
        tap.fork.set_to(to);
        assert_eq!(tap.fork.sent, [1, 0], "what was held is sent at the answer");
        tap.rtp(Side::A, &header, &packet, Instant::ZERO);
        tap.rtp(Side::B, &header, &packet, Instant::ZERO);
        tap.rtp(Side::B, &header, &packet, Instant::ZERO);
        assert_eq!(fork.sent, [2, 2]);
        let mut buf = [0u8; 64];
        let (n, from) = recorder[0].recv_from(&mut buf).expect("the held copy");
        assert_eq!((&buf[..n], from), (&early[..], caller_from));
        let (n, from) = recorder[0].recv_from(&mut buf).expect("the caller's copy");
        assert_eq!((&buf[..n], from), (&packet[..], caller_from));
        let (n, from) = recorder[1].recv_from(&mut buf).expect("the callee's copy");
        assert_eq!((&buf[..n], from), (&packet[..], callee_from));
        // A declined stream is not sent, nor held.
        fork.set_to([None, to[1]]);
        let mut tap = ForkTap { inner: (), fork: &mut fork };
        tap.rtp(Side::A, &header, &packet, Instant::ZERO);
        assert_eq!(fork.sent, [2, 2]);
        assert_eq!(fork.not_held, [0, 0]);
    }

    #[test]
    fn the_hold_before_the_answer_is_bounded_and_a_declined_streams_hold_is_dropped() {
        let socks = Box::new([bound(), bound(), bound(), bound()]);
        let mut fork = Fork::new(socks);
        let recorder = bound();
        recorder.set_read_timeout(Some(std::time::Duration::from_secs(2))).expect("timeout");
        let packet = [0x80u8; 172];
        let header = RtpHeader::parse(&packet).expect("rtp");
        let mut tap = ForkTap { inner: (), fork: &mut fork };
        let offered = HOLD_PACKETS + 10;
        for i in 0..offered {
            let side = if i % 2 == 0 { Side::A } else { Side::B };
            tap.rtp(side, &header, &packet, Instant::ZERO);
        }
        let held = (HOLD_BYTES / packet.len()).min(HOLD_PACKETS);
        assert_eq!(fork.not_held.iter().sum::<u64>(), (offered - held) as u64);
        fork.set_to([None, recorder.local_addr().ok()]);
        assert_eq!(fork.sent, [0, (held / 2) as u64], "only the callee's held packets");
        assert!(fork.held.is_none(), "the hold is freed at the answer");
    }
}
