//! Batched datagram reads for the media threads: one `recvmmsg` reads up to [`BATCH`] packets
//! from a socket, and a short batch also proves the socket empty, so an edge-triggered loop
//! needs no extra `recv` that ends in `EAGAIN`. At 50 packets/s per stream a socket seldom holds
//! more than one packet, so this is what halves the reads per packet: one syscall per packet
//! instead of two.
//!
//! The headers are preallocated once per thread, one set per address family: the kernel writes
//! each message's address length back into its header and `nix` does not reset it, so a header
//! set is never shared between IPv4 and IPv6 sockets.

use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6};

/// Packets read per syscall.
pub const BATCH: usize = 8;
/// Size of each packet buffer (room for an SRTP tag added in place after the read).
pub const BUF: usize = 2048;

/// What one batched read returned.
pub enum Batch {
    /// `n` packets were read; fewer than [`BATCH`] means the socket is now empty.
    Packets(usize),
    /// Nothing to read.
    Empty,
    /// The read failed for another reason (e.g. an ICMP error reported on the socket).
    Failed(std::io::Error),
}

/// Per-thread receive buffers and message headers.
pub struct BatchReceiver {
    v4: MultiHeaders<SockaddrIn>,
    v6: MultiHeaders<SockaddrIn6>,
    bufs: Box<[[u8; BUF]; BATCH]>,
    meta: [(usize, Option<SocketAddr>); BATCH],
}

impl Default for BatchReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchReceiver {
    pub fn new() -> Self {
        BatchReceiver {
            v4: MultiHeaders::preallocate(BATCH, None),
            v6: MultiHeaders::preallocate(BATCH, None),
            bufs: Box::new([[0u8; BUF]; BATCH]),
            meta: [(0, None); BATCH],
        }
    }

    /// Reads up to [`BATCH`] datagrams of at most `max` bytes each from a non-blocking socket.
    pub fn recv(&mut self, sock: &impl AsRawFd, ipv6: bool, max: usize) -> Batch {
        let max = max.min(BUF);
        let fd = sock.as_raw_fd();
        let [b0, b1, b2, b3, b4, b5, b6, b7] = &mut *self.bufs;
        let mut iovs = [
            [IoSliceMut::new(&mut b0[..max])],
            [IoSliceMut::new(&mut b1[..max])],
            [IoSliceMut::new(&mut b2[..max])],
            [IoSliceMut::new(&mut b3[..max])],
            [IoSliceMut::new(&mut b4[..max])],
            [IoSliceMut::new(&mut b5[..max])],
            [IoSliceMut::new(&mut b6[..max])],
            [IoSliceMut::new(&mut b7[..max])],
        ];
        let meta = &mut self.meta;
        let result = if ipv6 {
            recvmmsg(fd, &mut self.v6, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None).map(|res| {
                let mut n = 0;
                for (m, r) in meta.iter_mut().zip(res) {
                    let addr = r.address.map(|a| {
                        SocketAddr::V6(SocketAddrV6::new(
                            a.ip(),
                            a.port(),
                            a.flowinfo(),
                            a.scope_id(),
                        ))
                    });
                    *m = (r.bytes, addr);
                    n += 1;
                }
                n
            })
        } else {
            recvmmsg(fd, &mut self.v4, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None).map(|res| {
                let mut n = 0;
                for (m, r) in meta.iter_mut().zip(res) {
                    let addr =
                        r.address.map(|a| SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())));
                    *m = (r.bytes, addr);
                    n += 1;
                }
                n
            })
        };
        match result {
            Ok(0) => Batch::Empty,
            Ok(n) => Batch::Packets(n),
            Err(Errno::EAGAIN) => Batch::Empty,
            Err(e) => Batch::Failed(std::io::Error::from(e)),
        }
    }

    /// The `i`-th packet of the last batch: its length, source and whole buffer (the packet is
    /// `buf[..len]`; the rest is room to grow it in place).
    pub fn packet(&mut self, i: usize) -> (usize, Option<SocketAddr>, &mut [u8; BUF]) {
        let (len, from) = self.meta[i];
        (len, from, &mut self.bufs[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn pair(addr: &str) -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind(addr).unwrap();
        let b = UdpSocket::bind(addr).unwrap();
        a.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn read_all(
        rx: &mut BatchReceiver,
        sock: &UdpSocket,
        v6: bool,
        max: usize,
    ) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut got = Vec::new();
        loop {
            match rx.recv(sock, v6, max) {
                Batch::Packets(n) => {
                    for i in 0..n {
                        let (len, from, buf) = rx.packet(i);
                        got.push((buf[..len].to_vec(), from.unwrap()));
                    }
                    if n < BATCH {
                        break;
                    }
                }
                Batch::Empty => break,
                Batch::Failed(e) => panic!("{e}"),
            }
        }
        got
    }

    #[test]
    fn reads_batches_in_order_with_sources_and_reports_empty() {
        let mut rx = BatchReceiver::new();
        let (a, b) = pair("127.0.0.1:0");
        assert!(matches!(rx.recv(&a, false, 1500), Batch::Empty));
        for i in 0..20u8 {
            b.send_to(&vec![i; 10 + i as usize], a.local_addr().unwrap()).unwrap();
        }
        let got = read_all(&mut rx, &a, false, 1500);
        assert_eq!(got.len(), 20);
        for (i, (p, from)) in got.iter().enumerate() {
            assert_eq!(p.len(), 10 + i);
            assert!(p.iter().all(|&x| x == i as u8));
            assert_eq!(*from, b.local_addr().unwrap());
        }
        assert!(matches!(rx.recv(&a, false, 1500), Batch::Empty));
    }

    #[test]
    fn ipv6_sources_are_not_truncated_after_ipv4_reads() {
        let mut rx = BatchReceiver::new();
        let (a4, b4) = pair("127.0.0.1:0");
        b4.send_to(b"four", a4.local_addr().unwrap()).unwrap();
        assert_eq!(read_all(&mut rx, &a4, false, 1500)[0].1, b4.local_addr().unwrap());
        let Ok(a6) = UdpSocket::bind("[::1]:0") else { return }; // no IPv6 loopback here
        a6.set_nonblocking(true).unwrap();
        let b6 = UdpSocket::bind("[::1]:0").unwrap();
        b6.send_to(b"six", a6.local_addr().unwrap()).unwrap();
        let got = read_all(&mut rx, &a6, true, 1500);
        assert_eq!(got[0].0, b"six");
        assert_eq!(got[0].1, b6.local_addr().unwrap());
    }

    #[test]
    fn oversize_datagrams_are_cut_to_max() {
        let mut rx = BatchReceiver::new();
        let (a, b) = pair("127.0.0.1:0");
        b.send_to(&[7u8; 1000], a.local_addr().unwrap()).unwrap();
        b.send_to(&[8u8; 50], a.local_addr().unwrap()).unwrap();
        let got = read_all(&mut rx, &a, false, 100);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, vec![7u8; 100]);
        assert_eq!(got[1].0, vec![8u8; 50]);
    }
}
