//! Typed configuration, read from TOML and validated at start-up (`voicegw check-config`).
//!
//! Voice-connector objects use the chime-sdk-voice API's own keys (formats.md §2); the
//! gateway's own settings (`[sip]`, `[media]`, `[metrics]`, `[data]`) use snake case.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

mod documents;
pub mod meetings;
mod networks;
mod objects;
mod s3_target;
mod streaming;
mod validate;

pub use networks::{ConnectorNetworks, Networks, RecordingTarget, RouteAddr};
pub use objects::*;
pub use s3_target::{BucketError, S3Target};
pub use streaming::{
    ConnectorStreaming, NotificationTarget, StreamSink, StreamingConfig, MAX_RETENTION_HOURS,
    TARGET_NAME_PREFIX,
};
pub use validate::is_e164;

/// The configuration embedded in the binary: the loopback demo of `configs/voicegw.toml`.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../configs/voicegw.toml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}:{line}: key `{key}`: {message}")]
    Invalid { path: String, line: usize, key: String, message: String },
    #[error("{path}: {message}")]
    Document { path: String, message: String },
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
    #[serde(default)]
    pub cdr: CdrConfig,
    #[serde(default)]
    pub streaming: StreamingConfig,
    /// The API's global settings (`UpdateGlobalSettings`): `{VoiceConnector: {CdrBucket}}`.
    #[serde(rename = "GlobalSettings", default)]
    pub global: GlobalSettings,
    #[serde(rename = "VoiceConnectors", default)]
    pub voice_connectors: Vec<VoiceConnector>,
    #[serde(rename = "Carriers", default)]
    pub carriers: Vec<Carrier>,
    #[serde(rename = "PhoneNumbers", default)]
    pub phone_numbers: Vec<PhoneNumber>,
    #[serde(rename = "VoiceConnectorGroups", default)]
    pub groups: Vec<VoiceConnectorGroup>,
    /// Meeting dial-in (voicegw's own `[meet]` settings).
    #[serde(default)]
    pub meet: meetings::MeetConfig,
    /// The meetings room systems and phones dial into.
    #[serde(rename = "Meetings", default)]
    pub meetings: Vec<meetings::Meeting>,
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
    /// PEM bundle of the CAs trusted for outbound TLS (origination routes of voice connectors
    /// with `RequireEncryption`, TLS carrier trunks); the system's roots when unset.
    pub tls_ca_file: Option<PathBuf>,
    /// Verify the certificate of TLS peers voicegw connects to. Turning it off accepts any
    /// certificate (self-signed PBXes on a private network) and is logged at start.
    pub tls_verify_server: bool,
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    pub max_calls: usize,
    /// Most SIP server transactions at once for requests outside a dialog (in-dialog requests
    /// may use twice as many); further requests get a stateless 503 with `Retry-After`.
    pub max_transactions: usize,
    pub max_message_bytes: usize,
    pub max_headers: usize,
    pub max_connections: usize,
    pub idle_connection_secs: u64,
    /// A message on a TCP/TLS connection must be complete this long after its first byte.
    pub message_timeout_secs: u64,
    /// A write to a TCP/TLS peer must complete within this (a peer that never reads).
    pub write_timeout_secs: u64,
    /// Longest wait for calls to finish after SIGTERM.
    pub drain_timeout_secs: u64,
    pub user_agent: String,
    /// Realm of termination digest challenges; the SIP domain when empty.
    pub digest_realm: String,
    /// How long a digest nonce is accepted; an older one gets a new challenge with `stale=true`.
    pub digest_nonce_secs: u64,
    /// Digest algorithms offered in a 407, one challenge each, in this order (`MD5`,
    /// `SHA-256`). Clients answer the first they support; many (SIPp, older PBXes) only try
    /// the first, so MD5 leads by default.
    pub digest_algorithms: Vec<String>,
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
            tls_ca_file: None,
            tls_verify_server: true,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            max_calls: 10_000,
            max_transactions: 50_000,
            max_message_bytes: 65_535,
            max_headers: 256,
            max_connections: 4096,
            idle_connection_secs: 300,
            message_timeout_secs: 10,
            write_timeout_secs: 10,
            drain_timeout_secs: 40,
            user_agent: format!("voicegw/{}", env!("CARGO_PKG_VERSION")),
            digest_realm: String::new(),
            digest_nonce_secs: 300,
            digest_algorithms: vec!["MD5".into(), "SHA-256".into()],
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
    /// CloudWatch Embedded Metric Format JSON lines appended to this file (relative paths are
    /// under `data.dir`) every `emf_period_secs`; unset: no EMF output.
    pub emf_file: Option<PathBuf>,
    pub emf_period_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: "127.0.0.1:9100".into(), emf_file: None, emf_period_secs: 60 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub dir: PathBuf,
    /// SIP message log files (`EnableSIPLogs`) rotate when they would grow past this size.
    pub sip_log_max_bytes: u64,
    /// Rotated SIP message log files kept per voice connector.
    pub sip_log_keep: u32,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { dir: "./var".into(), sip_log_max_bytes: 100 << 20, sip_log_keep: 5 }
    }
}

/// voicegw's own CDR settings; the bucket itself is the API's `GlobalSettings.VoiceConnector.CdrBucket`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdrConfig {
    /// Local CDR store when no `CdrBucket` is set; `<data.dir>/cdrs` when unset.
    pub dir: Option<PathBuf>,
    /// Durable spool the records are written to before upload; `<data.dir>/cdr-spool` when unset.
    pub spool_dir: Option<PathBuf>,
    /// `AwsAccountId` written in every record.
    pub aws_account_id: String,
    /// Endpoint of an S3-compatible store (path-style addressing), e.g. `http://127.0.0.1:9000`.
    pub s3_endpoint: Option<String>,
    /// Region of the bucket; the AWS chain's (`AWS_REGION`, profile) or `us-east-1` when unset.
    pub s3_region: Option<String>,
    /// While the spool cannot write (a read-only or failing data disk), new calls are refused
    /// with `503` and Retry-After so the PBX or carrier fails over: a record that reaches no
    /// disk would be lost with the process. `false` carries calls anyway, their records kept
    /// in memory until the disk takes them.
    pub refuse_calls_while_spool_fails: bool,
}

impl Default for CdrConfig {
    fn default() -> Self {
        CdrConfig {
            dir: None,
            spool_dir: None,
            aws_account_id: "000000000000".into(),
            s3_endpoint: None,
            s3_region: None,
            refuse_calls_while_spool_fails: true,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalSettings {
    #[serde(rename = "VoiceConnector", default)]
    pub voice_connector: GlobalVoiceConnectorSettings,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalVoiceConnectorSettings {
    /// S3 bucket for CDRs: a bucket name or `s3://bucket/prefix`; unset: the local directory.
    #[serde(rename = "CdrBucket")]
    pub cdr_bucket: Option<String>,
}

impl Config {
    /// The local CDR directory.
    pub fn cdr_dir(&self) -> PathBuf {
        self.cdr.dir.clone().unwrap_or_else(|| self.data.dir.join("cdrs"))
    }

    /// The CDR spool directory.
    pub fn cdr_spool_dir(&self) -> PathBuf {
        self.cdr.spool_dir.clone().unwrap_or_else(|| self.data.dir.join("cdr-spool"))
    }

    /// Where local-mode streams are written.
    pub fn streaming_dir(&self) -> PathBuf {
        self.streaming.dir.clone().unwrap_or_else(|| self.data.dir.join("kvs"))
    }

    /// The streaming status events file.
    pub fn streaming_events_file(&self) -> PathBuf {
        let default = || self.data.dir.join("streaming-events.jsonl");
        self.streaming.events_file.clone().unwrap_or_else(default)
    }
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
    /// `media.address`, parsed.
    pub media_address: IpAddr,
    /// `GlobalSettings.VoiceConnector.CdrBucket`, parsed.
    pub cdr_bucket: Option<S3Target>,
    /// The CIDR blocks and route hosts of the voice-connector objects, parsed.
    pub networks: Networks,
    /// The voice connectors that stream (`StreamingConfiguration` with `Disabled: false`), by
    /// id in lower case.
    pub streaming: HashMap<String, ConnectorStreaming>,
    /// `[meet]` and `[[Meetings]]`, checked.
    pub meet: meetings::MeetSettings,
}

impl Config {
    /// Reads and validates `path`; errors name the file, the line and the key. JSON documents
    /// it names are read relative to its directory.
    pub fn load(path: &Path) -> Result<Validated, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse_in(&text, &path.display().to_string(), base)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Validated, ConfigError> {
        Config::parse_in(text, origin, Path::new("."))
    }

    /// Parses and validates TOML text whose relative document paths start at `base`.
    pub fn parse_in(text: &str, origin: &str, base: &Path) -> Result<Validated, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_string(),
            message: syntax_message(text, &e),
        })?;
        documents::merge(&mut config, base)?;
        config.validate(text, origin)
    }
}

/// A TOML error as `line L, column C: message`, without the source line the toml crate quotes
/// and without the offending value: the line may hold a password (`check-config` output and
/// the log on SIGHUP must not), and the key name, position and expected type are enough to fix
/// it.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let mut message = e.message().trim_end().to_string();
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let kind = rest.split([' ', ',']).next().unwrap_or("");
            let expected = rest.find(", expected").map(|i| &rest[i..]).unwrap_or("");
            message = format!("{prefix}{kind}{expected}");
            break;
        }
    }
    let Some(span) = e.span() else { return message };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    format!("line {line}, column {column}: {message}")
}

/// The 1-based line where `key` (a dotted path or a bare key name) is first set; 0 if unknown.
pub(super) fn locate(text: &str, key: &str) -> usize {
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
    fn addresses_are_parsed_once_into_typed_values() {
        let v = Config::parse(EMBEDDED_DEFAULT, "embedded").unwrap();
        assert_eq!(v.media_address, IpAddr::from([127, 0, 0, 1]));
        let own = &v.networks.connectors["abcdef1ghij2klmno3pqr4"];
        assert_eq!(own.termination_cidrs, vec!["127.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]);
        let route = own.origination_routes[0];
        assert_eq!((route.ip, route.port), (IpAddr::from([127, 0, 0, 1]), 5090));
        assert_eq!(v.networks.carrier_trunks.len(), v.config.carriers[0].trunks.len());
        assert_eq!(v.networks.carrier_trunks[0].port, 5080);
        let sources: usize = v.config.carriers.iter().map(|c| c.source_cidrs.len()).sum();
        assert_eq!(v.networks.carrier_sources.len(), sources);
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
        assert!(validate::valid_vc_id("abcdef1ghij2klmno3pqr4"));
        assert!(validate::valid_vc_id("6f1a3c2e-1111-4a2b-9c3d-0123456789ab"));
        assert!(!validate::valid_vc_id("ABC"));
    }

    #[test]
    fn cdr_store_settings() {
        let v = Config::parse(EMBEDDED_DEFAULT, "x").unwrap();
        assert_eq!(v.config.cdr_dir(), PathBuf::from("./var/cdrs"));
        assert_eq!(v.config.cdr_spool_dir(), PathBuf::from("./var/cdr-spool"));
        assert_eq!(v.config.cdr.aws_account_id, "000000000000");
        assert!(v.config.global.voice_connector.cdr_bucket.is_none());
        let with = |extra: &str| format!("{EMBEDDED_DEFAULT}\n{extra}\n");
        let v = Config::parse(
            &with("[GlobalSettings.VoiceConnector]\nCdrBucket = \"s3://my-cdrs/gw1\"\n[cdr]\ns3_endpoint = \"http://127.0.0.1:9000\""),
            "x",
        )
        .unwrap();
        assert_eq!(v.config.global.voice_connector.cdr_bucket.as_deref(), Some("s3://my-cdrs/gw1"));
        let e =
            Config::parse(&with("[GlobalSettings.VoiceConnector]\nCdrBucket = \"My_Bucket\""), "x")
                .unwrap_err()
                .to_string();
        assert!(e.contains("CdrBucket") && e.contains("My_Bucket"), "{e}");
        let e =
            Config::parse(&with("[cdr]\naws_account_id = \"12\""), "x").unwrap_err().to_string();
        assert!(e.contains("cdr.aws_account_id") && e.contains("12 digits"), "{e}");
        let e = Config::parse(&with("[cdr]\ns3_endpoint = \"localhost:9000\""), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cdr.s3_endpoint"), "{e}");
        let e = Config::parse(&with("[GlobalSettings.VoiceConnector]\nCdrBuckett = \"x\""), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn syntax_errors_never_quote_a_password() {
        let cases = [
            ("Password = \"s3cr3t-Pa55\", Pasword = \"x\"", "unknown field `Pasword`"),
            ("Password = \"s3cr3t-Pa55", "line 3"),
            ("Password = 12345678", "invalid type: integer, expected a string"),
        ];
        for (creds, want) in cases {
            let text = format!("[[VoiceConnectors]]\nVoiceConnectorId = \"abc\"\nCredentials = [ {{ Username = \"pbx1\", {creds} }} ]\n");
            let e = Config::parse(&text, "x.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("s3cr3t") && !e.contains("12345678"), "secret in: {e}");
        }
    }

    fn err_of(edit: impl Fn(&str) -> String) -> String {
        Config::parse(&edit(EMBEDDED_DEFAULT), "x").unwrap_err().to_string()
    }

    #[test]
    fn a_recording_server_is_an_address_a_user_and_tls_where_encryption_is_required() {
        fn with(rec: &'static str) -> impl Fn(&str) -> String {
            move |c: &str| {
                c.replace(
                    "[VoiceConnectors.LoggingConfiguration]",
                    &format!("[VoiceConnectors.SiprecRecording]\n{rec}\n[VoiceConnectors.LoggingConfiguration]"),
                )
            }
        }
        let v =
            Config::parse(&with("Host = \"192.0.2.9\"\nProtocol = \"TCP\"")(EMBEDDED_DEFAULT), "x")
                .expect("valid");
        let t = v.networks.connectors.values().find_map(|n| n.recording_target.clone());
        let t = t.expect("a recording target");
        assert_eq!((t.addr.to_string(), t.user.as_str()), ("192.0.2.9:5060".into(), "srs"));
        let v =
            Config::parse(&with("Disabled = true\nHost = \"192.0.2.9\"")(EMBEDDED_DEFAULT), "x")
                .expect("valid");
        assert!(v.networks.connectors.values().all(|n| n.recording_target.is_none()));
        let e = err_of(with("Host = \"srs.example.com\""));
        assert!(e.contains("must be an IP address"), "{e}");
        let e = err_of(with("Host = \"192.0.2.9\"\nUser = \"a b\""));
        assert!(e.contains("SIP user characters"), "{e}");
        let e = err_of(with("Host = \"192.0.2.9\"\nPort = 0"));
        assert!(e.contains("Port 0"), "{e}");
        let e = err_of(with("Host = \"192.0.2.9\"\nHost2 = 1"));
        assert!(e.contains("Host2"), "{e}");
    }

    #[test]
    fn voice_connector_limits_of_the_api() {
        let routes = (0..11)
            .map(|i| format!("{{ Host = \"127.0.0.{i}\", Port = 5090 }}"))
            .collect::<Vec<_>>()
            .join(", ");
        let e = err_of(|c| {
            c.replace(
                "  { Host = \"127.0.0.1\", Port = 5090, Protocol = \"UDP\", Priority = 1, Weight = 1 },",
                &format!("{routes},"),
            )
        });
        assert!(e.contains("at most 10 origination routes"), "{e}");
        let e = err_of(|c| c.replace("CallingRegions = [\"US\"]", "CallingRegions = [\"XX\"]"));
        assert!(e.contains("`XX` is not an ISO 3166-1"), "{e}");
        let e = err_of(|c| c.replace("CallingRegions = [\"US\"]", "CallingRegions = []"));
        assert!(e.contains("CallingRegions is required"), "{e}");
        let e =
            err_of(|c| c.replace("CidrAllowedList = [\"127.0.0.0/8\"]", "CidrAllowedList = []"));
        assert!(e.contains("needs a CidrAllowedList, Credentials or both"), "{e}");
        let e = err_of(|c| c.replace("AwsRegion = \"us-east-1\"", "AwsRegion = \"mars-1\""));
        assert!(e.contains("`mars-1` is not one of"), "{e}");
        let e = err_of(|c| c.replace("RequireEncryption = false", "RequireEncryption = true"));
        assert!(e.contains("RequireEncryption needs TCP"), "{e}");
        let e = err_of(|c| {
            c.replace(
                "[VoiceConnectors.LoggingConfiguration]",
                "[VoiceConnectors.EmergencyCallingConfiguration]\nDNIS = [{ EmergencyPhoneNumber = \"+12065550911\", CallingCountry = \"US\" }]\n[VoiceConnectors.LoggingConfiguration]",
            )
            .replace("[VoiceConnectors.Origination]\nDisabled = false", "[VoiceConnectors.Origination]\nDisabled = true")
        });
        assert!(e.contains("emergency calling needs termination and origination"), "{e}");
        fn group(items: &'static str) -> impl Fn(&str) -> String {
            move |c: &str| {
                format!("{c}\n[[VoiceConnectorGroups]]\nVoiceConnectorGroupId = \"g1\"\nVoiceConnectorItems = [{items}]\n")
            }
        }
        let e = err_of(group("{ VoiceConnectorId = \"abcdef1ghij2klmno3pqr4\", Priority = 100 }"));
        assert!(e.contains("Priority 100 is outside 1-99"), "{e}");
        let e = err_of(group("{ VoiceConnectorId = \"nosuchvc0000000000000x\", Priority = 1 }"));
        assert!(e.contains("unknown voice connector"), "{e}");
        let e = err_of(group(""));
        assert!(e.contains("1 to 3 voice connectors"), "{e}");
        let ok = group("{ VoiceConnectorId = \"abcdef1ghij2klmno3pqr4\", Priority = 1 }")(
            EMBEDDED_DEFAULT,
        );
        // The phone number is the last table of the default: give it both associations.
        let both = ok.replace(
            "CallingName = \"voicegw demo\"\nVoiceConnectorId = \"abcdef1ghij2klmno3pqr4\"",
            "CallingName = \"voicegw demo\"\nVoiceConnectorId = \"abcdef1ghij2klmno3pqr4\"\nVoiceConnectorGroupId = \"g1\"",
        );
        let e = Config::parse(&both, "x").unwrap_err().to_string();
        assert!(e.contains("exactly one of VoiceConnectorId or VoiceConnectorGroupId"), "{e}");
        let by_group = ok.replace(
            "CallingName = \"voicegw demo\"\nVoiceConnectorId = \"abcdef1ghij2klmno3pqr4\"",
            "CallingName = \"voicegw demo\"\nVoiceConnectorGroupId = \"g1\"",
        );
        let v = Config::parse(&by_group, "x").unwrap();
        assert_eq!(v.config.phone_numbers[0].voice_connector_group_id.as_deref(), Some("g1"));
        let e = err_of(|c| {
            c.replace(
                "digest_algorithms = [\"MD5\", \"SHA-256\"]",
                "digest_algorithms = [\"SHA-1\"]",
            )
        });
        assert!(e.contains("digest_algorithms"), "{e}");
    }
}
