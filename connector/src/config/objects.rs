//! Voice-connector objects with the chime-sdk-voice API's own keys (formats.md §2), so the same
//! object reads from TOML and from the JSON the AWS CLI prints.

use serde::Deserialize;

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
    /// voicegw's own: the customer's media may come from another address than its SDP says
    /// (a PBX behind NAT); the source is then learnt from consistent packets. Off by default:
    /// media is accepted only from the address SDP announced (SECURITY.md).
    #[serde(rename = "AllowMediaSourceLearning", default)]
    pub allow_media_source_learning: bool,
    /// voicegw's own: the customer's PBX/SBC is inside the trust domain (RFC 3325), so its
    /// `P-Asserted-Identity`, `P-Preferred-Identity` and `Remote-Party-ID` reach the carrier.
    /// Off by default: they are removed (SECURITY.md).
    #[serde(rename = "TrustAssertedIdentity", default)]
    pub trust_asserted_identity: bool,
    /// JSON documents printed by `aws chime-sdk-voice get-voice-connector-*` (or the request
    /// bodies of the matching `put-…` calls), paths relative to the configuration file. Each
    /// top-level key (`Termination`, `Origination`, `Credentials`, …) sets that sub-resource.
    #[serde(rename = "Documents", default)]
    pub documents: Vec<String>,
    #[serde(rename = "Termination")]
    pub termination: Option<Termination>,
    /// Termination digest credentials (`PutVoiceConnectorTerminationCredentials`).
    #[serde(rename = "Credentials", default)]
    pub credentials: Vec<Credential>,
    #[serde(rename = "Origination")]
    pub origination: Option<Origination>,
    #[serde(rename = "LoggingConfiguration", default)]
    pub logging: LoggingConfiguration,
    #[serde(rename = "StreamingConfiguration")]
    pub streaming: Option<StreamingConfiguration>,
    #[serde(rename = "EmergencyCallingConfiguration")]
    pub emergency: Option<EmergencyCallingConfiguration>,
    /// voicegw's own: every call relayed for this voice connector is also sent to a SIPREC
    /// recording server (RFC 7866), voicegw being its recording client.
    #[serde(rename = "SiprecRecording")]
    pub siprec_recording: Option<SiprecRecording>,
}

/// Where a voice connector's calls are recorded (voicegw's own object).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiprecRecording {
    #[serde(rename = "Disabled", default)]
    pub disabled: bool,
    /// The recording server's IP address.
    #[serde(rename = "Host")]
    pub host: String,
    #[serde(rename = "Port", default = "default_sip_port")]
    pub port: u16,
    #[serde(rename = "Protocol", default = "default_protocol")]
    pub protocol: Protocol,
    /// The user part of the recording server's URI (`sip:<User>@<Host>:<Port>`).
    #[serde(rename = "User", default = "default_recorder_user")]
    pub user: String,
}

fn default_recorder_user() -> String {
    "srs".into()
}

pub fn default_region() -> String {
    "us-east-1".into()
}

/// The AWS Regions a voice connector can be in (the model's `VoiceConnectorAwsRegion`).
pub const AWS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "ca-central-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "ap-northeast-2",
    "ap-northeast-1",
    "ap-southeast-1",
    "ap-southeast-2",
];

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
pub struct Credential {
    #[serde(rename = "Username")]
    pub username: String,
    #[serde(rename = "Password")]
    pub password: String,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingConfiguration {
    #[serde(rename = "DataRetentionInHours", default)]
    pub data_retention_in_hours: u32,
    #[serde(rename = "Disabled", default)]
    pub disabled: bool,
    #[serde(rename = "StreamingNotificationTargets", default)]
    pub notification_targets: Vec<StreamingNotificationTarget>,
    #[serde(rename = "MediaInsightsConfiguration")]
    pub media_insights: Option<MediaInsightsConfiguration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingNotificationTarget {
    #[serde(rename = "NotificationTarget")]
    pub notification_target: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaInsightsConfiguration {
    #[serde(rename = "Disabled", default)]
    pub disabled: bool,
    #[serde(rename = "ConfigurationArn")]
    pub configuration_arn: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyCallingConfiguration {
    #[serde(rename = "DNIS", default)]
    pub dnis: Vec<DnisEmergencyCallingConfiguration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnisEmergencyCallingConfiguration {
    #[serde(rename = "EmergencyPhoneNumber")]
    pub emergency_phone_number: String,
    #[serde(rename = "TestPhoneNumber")]
    pub test_phone_number: Option<String>,
    #[serde(rename = "CallingCountry")]
    pub calling_country: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConnectorGroup {
    #[serde(rename = "VoiceConnectorGroupId")]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "VoiceConnectorItems", default)]
    pub items: Vec<VoiceConnectorItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConnectorItem {
    #[serde(rename = "VoiceConnectorId")]
    pub voice_connector_id: String,
    #[serde(rename = "Priority", default = "one")]
    pub priority: u32,
}

/// A carrier: the PSTN side. Termination calls go to its trunks (by `Priority`, then `Weight`,
/// with failover); calls from its source CIDRs are origination.
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
    /// Associated with one voice connector…
    #[serde(rename = "VoiceConnectorId")]
    pub voice_connector_id: Option<String>,
    /// …or with a voice connector group.
    #[serde(rename = "VoiceConnectorGroupId")]
    pub voice_connector_group_id: Option<String>,
}

/// One JSON document as the AWS CLI prints it: any of these top-level keys. Read-only keys the
/// CLI prints beside the settings (timestamps, ARNs) are accepted and ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(rename = "VoiceConnector")]
    pub voice_connector: Option<VoiceConnectorDocument>,
    #[serde(rename = "Termination")]
    pub termination: Option<Termination>,
    #[serde(rename = "Credentials")]
    pub credentials: Option<Vec<Credential>>,
    #[serde(rename = "Origination")]
    pub origination: Option<Origination>,
    #[serde(rename = "LoggingConfiguration")]
    pub logging: Option<LoggingConfiguration>,
    #[serde(rename = "StreamingConfiguration")]
    pub streaming: Option<StreamingConfiguration>,
    #[serde(rename = "EmergencyCallingConfiguration")]
    pub emergency: Option<EmergencyCallingConfiguration>,
}

/// `aws chime-sdk-voice get-voice-connector` output's object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConnectorDocument {
    #[serde(rename = "VoiceConnectorId")]
    pub id: String,
    #[serde(rename = "AwsRegion")]
    pub aws_region: Option<String>,
    #[serde(rename = "Name")]
    pub name: Option<String>,
    #[serde(rename = "RequireEncryption")]
    pub require_encryption: Option<bool>,
    #[serde(rename = "OutboundHostName")]
    pub outbound_host_name: Option<String>,
    #[serde(rename = "CreatedTimestamp")]
    pub created_timestamp: Option<String>,
    #[serde(rename = "UpdatedTimestamp")]
    pub updated_timestamp: Option<String>,
    #[serde(rename = "VoiceConnectorArn")]
    pub arn: Option<String>,
    #[serde(rename = "IntegrationType")]
    pub integration_type: Option<String>,
    #[serde(rename = "NetworkType")]
    pub network_type: Option<String>,
}
