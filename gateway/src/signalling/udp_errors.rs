//! ICMP errors for SIP over UDP: with `IP_RECVERR` the kernel queues "port unreachable" (and
//! the like) on the socket with the destination of the datagram that caused it, so a request to
//! a next hop where nothing listens fails at once — a transport error, which fails over
//! (RFC 3261 §18.4) — instead of after Timer B's 32 seconds.

use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};

/// Asks the kernel to queue ICMP errors on `socket` (IPv4, or IPv6 when `ipv6`).
pub fn enable(socket: &impl AsFd, ipv6: bool) -> std::io::Result<()> {
    let r = if ipv6 {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true)
    } else {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)
    };
    r.map_err(std::io::Error::from)
}

/// One queued error: where the failed datagram was going and what the ICMP message said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpError {
    pub destination: SocketAddr,
    pub reason: String,
}

/// Reads every queued error from `socket` without blocking.
pub fn drain(socket: &impl AsRawFd) -> Vec<UdpError> {
    let fd = socket.as_raw_fd();
    let mut out = Vec::new();
    for _ in 0..64 {
        let mut data = [0u8; 512];
        let mut iov = [IoSliceMut::new(&mut data)];
        let mut cmsg = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in6);
        let msg = match recvmsg::<SockaddrStorage>(
            fd,
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(m) => m,
            Err(Errno::EAGAIN) => break,
            Err(_) => break,
        };
        let Some(destination) = msg.address.as_ref().and_then(to_std) else { continue };
        let mut reason = "ICMP error".to_string();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                let errno = match c {
                    ControlMessageOwned::Ipv4RecvErr(e, _)
                    | ControlMessageOwned::Ipv6RecvErr(e, _) => e.ee_errno,
                    _ => continue,
                };
                reason = format!("ICMP: {}", Errno::from_raw(errno as i32).desc());
            }
        }
        out.push(UdpError { destination, reason });
    }
    out
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    a.as_sockaddr_in6().map(|v6| {
        SocketAddr::V6(SocketAddrV6::new(v6.ip(), v6.port(), v6.flowinfo(), v6.scope_id()))
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests may read the clock
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    #[test]
    fn port_unreachable_is_reported_with_its_destination() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&s, false).unwrap();
        s.set_nonblocking(true).unwrap();
        // A port with nobody on it: bind, note it, close.
        let dead = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        s.send_to(b"OPTIONS", dead).unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut got = Vec::new();
        while got.is_empty() && Instant::now() < deadline {
            let mut b = [0u8; 16];
            let _ = s.recv_from(&mut b); // surfaces (and clears) the pending error
            got = drain(&s);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].destination, dead);
        assert!(got[0].reason.contains("refused"), "{}", got[0].reason);
        assert!(drain(&s).is_empty());
    }
}
