//! The addresses the voice-connector objects name, as typed values: validation parses every
//! CIDR block and route host once, and the policy uses what it parsed (nothing is re-parsed, so
//! nothing that failed to parse can be dropped on the way).

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::objects::{OriginationRoute, Protocol};

/// A next hop of an origination route or carrier trunk, with its host parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteAddr {
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub priority: u32,
    pub weight: u32,
}

impl RouteAddr {
    /// `r` with its host parsed; `None` if the host is not an IP address.
    pub(super) fn of(r: &OriginationRoute) -> Option<RouteAddr> {
        Some(RouteAddr {
            ip: r.host.parse().ok()?,
            port: r.port,
            protocol: r.protocol,
            priority: r.priority,
            weight: r.weight,
        })
    }
}

/// One voice connector's networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectorNetworks {
    /// Termination's `CidrAllowedList`.
    pub termination_cidrs: Vec<IpNet>,
    /// Origination's `Routes`, in their order.
    pub origination_routes: Vec<RouteAddr>,
    /// `SiprecRecording`, when enabled.
    pub recording_target: Option<RecordingTarget>,
}

/// A recording server voicegw sends a voice connector's calls to (`SiprecRecording`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingTarget {
    pub user: String,
    pub addr: std::net::SocketAddr,
    pub protocol: Protocol,
}

/// Every network the configuration names, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks {
    /// By voice connector id in lower case.
    pub connectors: HashMap<String, ConnectorNetworks>,
    /// Every carrier's `SourceCidrs`.
    pub carrier_sources: Vec<IpNet>,
    /// Every carrier's trunks, in order.
    pub carrier_trunks: Vec<RouteAddr>,
}
