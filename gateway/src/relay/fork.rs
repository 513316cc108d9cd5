//! Copies of a call's RTP for a recording server (voicegw its SIPREC client): what each side
//! of the call sends, in clear (after SRTP), leaves from the recording session's own socket
//! for that stream — the caller's audio on the first, the callee's on the second — to where
//! the recording server's answer said. Copies are sent as the relay accepts each packet, with
//! no copy of the bytes and no allocation; what the recording server sends back (RTCP
//! receiver reports) is not read.

use std::net::{SocketAddr, UdpSocket};

use common::Instant;
use media::relay::{Side, Tap};
use media::rtp::RtpHeader;

/// One call's recording streams.
pub struct Fork {
    /// `[caller's rtp, rtcp, callee's rtp, rtcp]`.
    socks: Box<[UdpSocket; 4]>,
    to: [Option<SocketAddr>; 2],
    /// Packets copied per stream, and copies the socket refused (a full buffer, an ICMP error).
    pub sent: [u64; 2],
    pub failed: [u64; 2],
}

impl Fork {
    pub fn new(socks: Box<[UdpSocket; 4]>) -> Fork {
        for s in socks.iter() {
            let _ = s.set_nonblocking(true);
        }
        Fork { socks, to: [None, None], sent: [0; 2], failed: [0; 2] }
    }

    /// Where the recording server takes each stream (nothing is sent before).
    pub fn set_to(&mut self, to: [Option<SocketAddr>; 2]) {
        self.to = to;
    }

    fn send(&mut self, side: Side, packet: &[u8]) {
        let i = side.index();
        let Some(to) = self.to[i] else { return };
        match self.socks[i * 2].send_to(packet, to) {
            Ok(_) => self.sent[i] += 1,
            Err(_) => self.failed[i] += 1,
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
        let mut tap = ForkTap { inner: (), fork: &mut fork };
        tap.rtp(Side::A, &header, &packet, Instant::ZERO);
        assert_eq!(tap.fork.sent, [0, 0], "nothing before the answer");
        let to = [recorder[0].local_addr().ok(), recorder[1].local_addr().ok()];
        tap.fork.set_to(to);
        tap.rtp(Side::A, &header, &packet, Instant::ZERO);
        tap.rtp(Side::B, &header, &packet, Instant::ZERO);
        tap.rtp(Side::B, &header, &packet, Instant::ZERO);
        assert_eq!(fork.sent, [1, 2]);
        let mut buf = [0u8; 64];
        let (n, from) = recorder[0].recv_from(&mut buf).expect("the caller's copy");
        assert_eq!((&buf[..n], from), (&packet[..], caller_from));
        let (n, from) = recorder[1].recv_from(&mut buf).expect("the callee's copy");
        assert_eq!((&buf[..n], from), (&packet[..], callee_from));
        // A declined stream is not sent.
        fork.set_to([None, to[1]]);
        let mut tap = ForkTap { inner: (), fork: &mut fork };
        tap.rtp(Side::A, &header, &packet, Instant::ZERO);
        assert_eq!(fork.sent, [1, 2]);
    }
}
