//! SIP transports: the UDP socket and its ICMP errors, TCP and TLS listeners, connections and
//! outbound connects, and the TLS certificates.

pub mod certs;
pub mod conns;
pub mod transport;
pub mod udp_errors;
