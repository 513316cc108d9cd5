//! Typed configuration, read from TOML and validated at start-up (`voicegw check-config`).
//!
//! Voice-connector objects use the chime-sdk-voice API's own keys (formats.md §2); the
//! gateway's own settings (`[sip]`, `[media]`, `[metrics]`, `[data]`) use snake case.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use thiserror::Error;

/// The configuration embedded in the binary: the loopback demo of `configs/voicegw.toml`.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../configs/voicegw.toml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}:{line}: key `{key}`: {message}")]
    Invalid { path: String, line: usize, key: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(rename = "VoiceConnectors", default)]
    pub voice_connectors: Vec<VoiceConnector>,
    #[serde(rename = "Carriers", default)]
    pub carriers: Vec<Carrier>,
    #[serde(rename = "PhoneNumbers", default)]
    pub phone_numbers: Vec<PhoneNumber>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP listener; empty string disables it.
    pub listen_udp: String,
    pub listen_tcp: String,
    pub listen_tls: String,
    /// SIP domain of outbound host names: `<VoiceConnectorId>.<domain>`.
    pub domain: String,
    /// PEM certificate chain and key for TLS; generated under `<data.dir>/tls` when unset.
    pub tls_certificate: Option<PathBuf>,
    pub tls_private_key: Option<PathBuf>,
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    pub max_calls: usize,
    pub max_message_bytes: usize,
    pub max_headers: usize,
    pub max_connections: usize,
    pub idle_connection_secs: u64,
    /// Longest wait for calls to finish after SIGTERM.
    pub drain_timeout_secs: u64,
    pub user_agent: String,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen_udp: "127.0.0.1:5060".into(),
            listen_tcp: "127.0.0.1:5060".into(),
            listen_tls: "127.0.0.1:5061".into(),
            domain: "voiceconnector.local".into(),
            tls_certificate: None,
            tls_private_key: None,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            max_calls: 10_000,
            max_message_bytes: 65_535,
            max_headers: 256,
            max_connections: 4096,
            idle_connection_secs: 300,
            drain_timeout_secs: 40,
            user_agent: format!("voicegw/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    pub address: String,
    pub port_min: u16,
    pub port_max: u16,
    /// Period of the media-quality records (the service's is one minute).
    pub record_period_secs: u64,
    /// A confirmed call whose media has been silent both ways this long is hung up (BYE to both
    /// legs); 0 disables the check.
    pub inactivity_timeout_secs: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            address: "127.0.0.1".into(),
            port_min: 10_000,
            port_max: 60_000,
            record_period_secs: 60,
            inactivity_timeout_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Prometheus listener; empty string disables it.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: "127.0.0.1:9100".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub dir: PathBuf,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { dir: "./var".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Udp,
    Tcp,
    Tls,
}

impl Protocol {
    pub fn transport(self) -> sip::Transport {
        match self {
            Protocol::Udp => sip::Transport::Udp,
            Protocol::Tcp => sip::Transport::Tcp,
            Protocol::Tls => sip::Transport::Tls,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConnector {
    #[serde(rename = "VoiceConnectorId")]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "AwsRegion", default = "default_region")]
    pub aws_region: String,
    #[serde(rename = "RequireEncryption", default)]
    pub require_encryption: bool,
    #[serde(rename = "Termination")]
    pub termination: Option<Termination>,
    #[serde(rename = "Origination")]
    pub origination: Option<Origination>,
    #[serde(rename = "LoggingConfiguration", default)]
    pub logging: LoggingConfiguration,
}

fn default_region() -> String {
    "us-east-1".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Termination {
    #[serde(rename = "CpsLimit", default = "default_cps")]
    pub cps_limit: u32,
    #[serde(rename = "DefaultPhoneNumber")]
    pub default_phone_number: Option<String>,
    #[serde(rename = "CallingRegions", default)]
    pub calling_regions: Vec<String>,
    #[serde(rename = "CidrAllowedList", default)]
    pub cidr_allowed_list: Vec<String>,
    #[serde(rename = "Disabled", default)]
    pub disabled: bool,
}

fn default_cps() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origination {
    #[serde(rename = "Routes", default)]
    pub routes: Vec<OriginationRoute>,
    #[serde(rename = "Disabled", default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginationRoute {
    #[serde(rename = "Host")]
    pub host: String,
    #[serde(rename = "Port", default = "default_sip_port")]
    pub port: u16,
    #[serde(rename = "Protocol", default = "default_protocol")]
    pub protocol: Protocol,
    #[serde(rename = "Priority", default = "one")]
    pub priority: u32,
    #[serde(rename = "Weight", default = "one")]
    pub weight: u32,
}

fn default_sip_port() -> u16 {
    5060
}
fn default_protocol() -> Protocol {
    Protocol::Udp
}
fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfiguration {
    #[serde(rename = "EnableSIPLogs", default)]
    pub enable_sip_logs: bool,
    #[serde(rename = "EnableMediaMetricLogs", default)]
    pub enable_media_metric_logs: bool,
}

/// A carrier: the PSTN side. Termination calls go to its trunks; calls from its source CIDRs
/// are origination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Carrier {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Trunks", default)]
    pub trunks: Vec<OriginationRoute>,
    #[serde(rename = "SourceCidrs", default)]
    pub source_cidrs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneNumber {
    #[serde(rename = "E164PhoneNumber")]
    pub e164: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "CallingName", default)]
    pub calling_name: String,
    #[serde(rename = "VoiceConnectorId")]
    pub voice_connector_id: String,
}

/// A validated configuration together with what validation derived.
#[derive(Debug, Clone)]
pub struct Validated {
    pub config: Config,
    pub listen_udp: Option<SocketAddr>,
    pub listen_tcp: Option<SocketAddr>,
    pub listen_tls: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub media_ports: media::PortRange,
}

impl Config {
    /// Reads and validates `path`; errors name the file, the line and the key.
    pub fn load(path: &Path) -> Result<Validated, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Validated, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate(text, origin)
    }

    fn validate(self, text: &str, origin: &str) -> Result<Validated, ConfigError> {
        let err = |key: &str, message: String| ConfigError::Invalid {
            path: origin.to_string(),
            line: locate(text, key),
            key: key.to_string(),
            message,
        };
        let addr = |key: &str, v: &str| -> Result<Option<SocketAddr>, ConfigError> {
            if v.is_empty() {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .map_err(|_| err(key, format!("`{v}` is not an IP:port socket address")))
        };
        let listen_udp = addr("sip.listen_udp", &self.sip.listen_udp)?;
        let listen_tcp = addr("sip.listen_tcp", &self.sip.listen_tcp)?;
        let listen_tls = addr("sip.listen_tls", &self.sip.listen_tls)?;
        let metrics_listen = addr("metrics.listen", &self.metrics.listen)?;
        if listen_udp.is_none() && listen_tcp.is_none() && listen_tls.is_none() {
            return Err(err("sip.listen_udp", "at least one SIP listener is required".into()));
        }
        if self.sip.t1_ms == 0 || self.sip.t2_ms < self.sip.t1_ms {
            return Err(err("sip.t2_ms", "T1 must be > 0 and T2 >= T1".into()));
        }
        if self.sip.max_message_bytes < 1024 {
            return Err(err("sip.max_message_bytes", "must be at least 1024".into()));
        }
        if self.sip.max_calls == 0 {
            return Err(err("sip.max_calls", "must be at least 1".into()));
        }
        if self.sip.tls_certificate.is_some() != self.sip.tls_private_key.is_some() {
            return Err(err(
                "sip.tls_certificate",
                "tls_certificate and tls_private_key go together".into(),
            ));
        }
        if self.sip.domain.is_empty()
            || self.sip.domain.contains(|c: char| c.is_whitespace() || c == '@')
        {
            return Err(err("sip.domain", format!("`{}` is not a host name", self.sip.domain)));
        }
        self.media.address.parse::<IpAddr>().map_err(|_| {
            err("media.address", format!("`{}` is not an IP address", self.media.address))
        })?;
        if self.media.record_period_secs == 0 {
            return Err(err("media.record_period_secs", "must be at least 1".into()));
        }
        let media_ports = media::PortRange::new(self.media.port_min, self.media.port_max)
            .map_err(|e| err("media.port_min", e.to_string()))?;

        let mut ids = std::collections::HashSet::new();
        for vc in &self.voice_connectors {
            if !valid_vc_id(&vc.id) {
                return Err(err(
                    "VoiceConnectorId",
                    format!(
                        "`{}` is not a voice connector id (21-22 characters a-z0-9, or a UUID)",
                        vc.id
                    ),
                ));
            }
            if !ids.insert(vc.id.clone()) {
                return Err(err("VoiceConnectorId", format!("`{}` is defined twice", vc.id)));
            }
            if let Some(t) = &vc.termination {
                if t.cps_limit < 1 {
                    return Err(err(
                        "CpsLimit",
                        format!("voice connector {}: CpsLimit must be at least 1", vc.id),
                    ));
                }
                for c in &t.cidr_allowed_list {
                    c.parse::<IpNet>().map_err(|_| {
                        err(
                            "CidrAllowedList",
                            format!("voice connector {}: `{c}` is not a CIDR block", vc.id),
                        )
                    })?;
                }
                for r in &t.calling_regions {
                    if r.len() != 2 || !r.bytes().all(|b| b.is_ascii_uppercase()) {
                        return Err(err("CallingRegions", format!("voice connector {}: `{r}` is not an ISO 3166-1 alpha-2 country code", vc.id)));
                    }
                }
                if let Some(n) = &t.default_phone_number {
                    if !is_e164(n) {
                        return Err(err(
                            "DefaultPhoneNumber",
                            format!("voice connector {}: `{n}` is not an E.164 number", vc.id),
                        ));
                    }
                }
            }
            if let Some(o) = &vc.origination {
                if o.routes.len() > 20 {
                    return Err(err(
                        "Routes",
                        format!("voice connector {}: at most 20 origination routes", vc.id),
                    ));
                }
                for r in &o.routes {
                    check_route(r)
                        .map_err(|m| err("Routes", format!("voice connector {}: {m}", vc.id)))?;
                }
            }
        }
        for c in &self.carriers {
            if c.trunks.is_empty() {
                return Err(err(
                    "Trunks",
                    format!("carrier {}: at least one trunk is required", c.name),
                ));
            }
            for t in &c.trunks {
                check_route(t).map_err(|m| err("Trunks", format!("carrier {}: {m}", c.name)))?;
            }
            for s in &c.source_cidrs {
                s.parse::<IpNet>().map_err(|_| {
                    err("SourceCidrs", format!("carrier {}: `{s}` is not a CIDR block", c.name))
                })?;
            }
        }
        let mut numbers = std::collections::HashSet::new();
        for p in &self.phone_numbers {
            if !is_e164(&p.e164) {
                return Err(err(
                    "E164PhoneNumber",
                    format!("`{}` is not an E.164 number (+ and 2 to 15 digits)", p.e164),
                ));
            }
            if !numbers.insert(p.e164.clone()) {
                return Err(err("E164PhoneNumber", format!("`{}` is listed twice", p.e164)));
            }
            if !ids.contains(&p.voice_connector_id) {
                return Err(err(
                    "VoiceConnectorId",
                    format!(
                        "phone number {} names unknown voice connector `{}`",
                        p.e164, p.voice_connector_id
                    ),
                ));
            }
        }
        Ok(Validated {
            config: self,
            listen_udp,
            listen_tcp,
            listen_tls,
            metrics_listen,
            media_ports,
        })
    }
}

fn check_route(r: &OriginationRoute) -> Result<(), String> {
    if !(1..=100).contains(&r.priority) {
        return Err(format!("Priority {} is outside 1-100", r.priority));
    }
    if !(1..=100).contains(&r.weight) {
        return Err(format!("Weight {} is outside 1-100", r.weight));
    }
    if r.port == 0 {
        return Err("Port 0 is not valid".into());
    }
    if r.host.parse::<IpAddr>().is_err() {
        return Err(format!(
            "Host `{}` must be an IP address (name resolution is not supported yet)",
            r.host
        ));
    }
    if r.protocol == Protocol::Tls {
        return Err(format!("Host {}: outbound TLS is not supported yet", r.host));
    }
    Ok(())
}

/// `+` followed by 2 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else { return false };
    (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

fn valid_vc_id(id: &str) -> bool {
    let plain = (21..=22).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let uuid = id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    plain || uuid
}

/// The 1-based line where `key` (a dotted path or a bare key name) is first set; 0 if unknown.
fn locate(text: &str, key: &str) -> usize {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let section = key.rsplit_once('.').map(|(s, _)| s);
    let mut in_section = section.is_none();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('[') {
            if let Some(s) = section {
                in_section = l.trim_matches(|c| c == '[' || c == ']').trim() == s;
            }
            continue;
        }
        if in_section && (l.starts_with(&format!("{leaf} ")) || l.starts_with(&format!("{leaf}=")))
        {
            return i + 1;
        }
        if section.is_none() && l.contains(&format!("{leaf} =")) {
            return i + 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_the_loopback_demo() {
        let v = Config::parse(EMBEDDED_DEFAULT, "embedded").unwrap();
        assert_eq!(v.listen_udp, Some("127.0.0.1:5060".parse().unwrap()));
        assert_eq!(v.listen_tcp, Some("127.0.0.1:5060".parse().unwrap()));
        assert_eq!(v.listen_tls, Some("127.0.0.1:5061".parse().unwrap()));
        assert_eq!(v.metrics_listen, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(v.media_ports, media::PortRange { min: 10_000, max: 60_000 });
        let vc = &v.config.voice_connectors[0];
        assert_eq!(vc.id, "abcdef1ghij2klmno3pqr4");
        let t = vc.termination.as_ref().unwrap();
        assert_eq!(
            (t.cps_limit, &t.calling_regions[..], &t.cidr_allowed_list[..]),
            (1000, &["US".to_string()][..], &["127.0.0.0/8".to_string()][..])
        );
        assert!(vc.logging.enable_sip_logs && vc.logging.enable_media_metric_logs);
        assert_eq!(v.config.carriers[0].trunks[0].port, 5080);
        assert_eq!(v.config.phone_numbers[0].e164, "+12065550100");
        assert_eq!(vc.origination.as_ref().unwrap().routes[0].port, 5090);
        assert_eq!(v.config.data.dir, PathBuf::from("./var"));
    }

    #[test]
    fn errors_name_line_and_key() {
        let bad = EMBEDDED_DEFAULT.replace("CpsLimit = 1000", "CpsLimit = 0");
        let e = Config::parse(&bad, "x.toml").unwrap_err().to_string();
        let line =
            EMBEDDED_DEFAULT.lines().position(|l| l.contains("CpsLimit = 1000")).unwrap() + 1;
        assert!(e.starts_with(&format!("x.toml:{line}: key `CpsLimit`")), "{e}");
        let bad = EMBEDDED_DEFAULT.replace("\"127.0.0.0/8\"", "\"127.0.0.0/99\"");
        assert!(Config::parse(&bad, "x").unwrap_err().to_string().contains("not a CIDR block"));
        let bad =
            EMBEDDED_DEFAULT.replace("listen_udp = \"127.0.0.1:5060\"", "listen_udp = \"nowhere\"");
        let e = Config::parse(&bad, "x").unwrap_err().to_string();
        assert!(e.contains("sip.listen_udp") && e.contains("nowhere"), "{e}");
        let e = Config::parse("[sip]\nlisten_upd = \"1\"\n", "x").unwrap_err().to_string();
        assert!(e.contains("unknown field") && e.contains("line 2"), "{e}");
        let bad = EMBEDDED_DEFAULT.replace("Priority = 1", "Priority = 101");
        assert!(Config::parse(&bad, "x").unwrap_err().to_string().contains("Priority 101"));
        let bad = EMBEDDED_DEFAULT
            .replace("E164PhoneNumber = \"+12065550100\"", "E164PhoneNumber = \"2065550100\"");
        assert!(Config::parse(&bad, "x").unwrap_err().to_string().contains("E.164"));
    }

    #[test]
    fn e164_and_ids() {
        assert!(is_e164("+12065550100"));
        assert!(
            !is_e164("12065550100")
                && !is_e164("+0123")
                && !is_e164("+1")
                && !is_e164("+1206555010012345")
        );
        assert!(valid_vc_id("abcdef1ghij2klmno3pqr4"));
        assert!(valid_vc_id("6f1a3c2e-1111-4a2b-9c3d-0123456789ab"));
        assert!(!valid_vc_id("ABC"));
    }
}
