//! Start-up validation (`voicegw check-config`): the gateway's own settings, and the
//! voice-connector objects with the chime-sdk-voice API's limits. Errors name the file, the line
//! and the key.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

use super::networks::{ConnectorNetworks, Networks, RouteAddr};
use super::objects::*;
use super::{locate, Config, ConfigError, Validated};

/// Most origination routes per voice connector. The API model says both 10 and 20; the
/// service's documentation and samples say 10 (voice-connector.md §2.1), so 10 it is.
pub(super) const MAX_ROUTES: usize = 10;
/// Most voice connectors in a group (the model's `VoiceConnectorItem` limit).
pub(super) const MAX_GROUP_ITEMS: usize = 3;

impl Config {
    pub(super) fn validate(self, text: &str, origin: &str) -> Result<Validated, ConfigError> {
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
        let cdr_bucket = (self.global.voice_connector.cdr_bucket.as_deref())
            .map(super::S3Target::parse)
            .transpose()
            .map_err(|e| err("GlobalSettings.VoiceConnector.CdrBucket", e.to_string()))?;
        if !(self.cdr.aws_account_id.len() == 12
            && self.cdr.aws_account_id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(err("cdr.aws_account_id", "must be 12 digits".into()));
        }
        if let Some(e) = &self.cdr.s3_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(err("cdr.s3_endpoint", format!("`{e}` is not an http(s) URL")));
            }
        }
        if self.metrics.emf_period_secs == 0 {
            return Err(err("metrics.emf_period_secs", "must be at least 1".into()));
        }
        if self.data.sip_log_max_bytes < 4096 {
            return Err(err("data.sip_log_max_bytes", "must be at least 4096".into()));
        }
        if self.sip.max_calls == 0 {
            return Err(err("sip.max_calls", "must be at least 1".into()));
        }
        if self.sip.message_timeout_secs == 0 || self.sip.write_timeout_secs == 0 {
            return Err(err(
                "sip.message_timeout_secs",
                "message and write timeouts must be at least 1 s".into(),
            ));
        }
        if self.sip.max_transactions == 0 {
            return Err(err("sip.max_transactions", "must be at least 1".into()));
        }
        if self.sip.digest_nonce_secs == 0 {
            return Err(err("sip.digest_nonce_secs", "must be at least 1".into()));
        }
        if self.sip.digest_algorithms.is_empty()
            || self.sip.digest_algorithms.iter().any(|a| a != "MD5" && a != "SHA-256")
        {
            return Err(err(
                "sip.digest_algorithms",
                "one or both of \"MD5\" and \"SHA-256\"".into(),
            ));
        }
        if self.sip.digest_realm.contains('"') {
            return Err(err("sip.digest_realm", "must not contain a double quote".into()));
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
        let media_address = self.media.address.parse::<IpAddr>().map_err(|_| {
            err("media.address", format!("`{}` is not an IP address", self.media.address))
        })?;
        if self.media.record_period_secs == 0 {
            return Err(err("media.record_period_secs", "must be at least 1".into()));
        }
        let media_ports = media::PortRange::new(self.media.port_min, self.media.port_max)
            .map_err(|e| err("media.port_min", e.to_string()))?;

        let mut networks = Networks::default();
        let mut streaming = std::collections::HashMap::new();
        let mut ids = HashSet::new();
        for vc in &self.voice_connectors {
            let mut own = ConnectorNetworks::default();
            let id = &vc.id;
            let vc_err = |key: &str, m: String| err(key, format!("voice connector {id}: {m}"));
            if !valid_vc_id(id) {
                return Err(err(
                    "VoiceConnectorId",
                    format!(
                        "`{id}` is not a voice connector id (21-22 characters a-z0-9, or a UUID)"
                    ),
                ));
            }
            if !ids.insert(id.to_ascii_lowercase()) {
                return Err(err("VoiceConnectorId", format!("`{id}` is defined twice")));
            }
            if !vc.name.is_empty() && !valid_name(&vc.name) {
                return Err(vc_err(
                    "Name",
                    format!("`{}` is not 1-256 characters of a-z A-Z 0-9 space _ . -", vc.name),
                ));
            }
            if !AWS_REGIONS.contains(&vc.aws_region.as_str()) {
                return Err(vc_err(
                    "AwsRegion",
                    format!("`{}` is not one of {}", vc.aws_region, AWS_REGIONS.join(", ")),
                ));
            }
            if let Some(t) = &vc.termination {
                own.termination_cidrs = check_termination(t, !vc.credentials.is_empty())
                    .map_err(|(k, m)| vc_err(k, m))?;
            }
            if !vc.credentials.is_empty() && vc.termination.is_none() {
                return Err(vc_err("Credentials", "credentials without Termination".into()));
            }
            let mut users = HashSet::new();
            for c in &vc.credentials {
                if c.username.is_empty()
                    || !c.username.is_ascii()
                    || c.username.contains(['"', '\\', ':'])
                    || c.username.chars().any(|ch| ch.is_ascii_control())
                {
                    return Err(vc_err("Username", format!("`{}` is not a US-ASCII user name without quotes, backslashes or colons", c.username)));
                }
                if c.password.is_empty() {
                    return Err(vc_err(
                        "Password",
                        format!("user {} has an empty password", c.username),
                    ));
                }
                if !users.insert(&c.username) {
                    return Err(vc_err("Username", format!("`{}` is listed twice", c.username)));
                }
            }
            if let Some(o) = &vc.origination {
                if o.routes.len() > MAX_ROUTES {
                    return Err(vc_err(
                        "Routes",
                        format!("at most {MAX_ROUTES} origination routes"),
                    ));
                }
                if o.routes.is_empty() && !o.disabled {
                    return Err(vc_err(
                        "Routes",
                        "origination needs Routes unless it is Disabled".into(),
                    ));
                }
                for r in &o.routes {
                    own.origination_routes.push(check_route(r).map_err(|m| vc_err("Routes", m))?);
                    if vc.require_encryption && r.protocol == Protocol::Udp {
                        return Err(vc_err("Protocol", format!("route {}: RequireEncryption needs TCP (sent over TLS) or TLS, not UDP", r.host)));
                    }
                }
            }
            if let Some(r) = vc.siprec_recording.as_ref().filter(|r| !r.disabled) {
                own.recording_target =
                    Some(check_recording(r, vc.require_encryption).map_err(|(k, m)| vc_err(k, m))?);
            }
            networks.connectors.insert(id.to_ascii_lowercase(), own);
            if let Some(s) = &vc.streaming {
                let on = super::streaming::check_connector(s).map_err(|(k, m)| vc_err(k, m))?;
                if let Some(on) = on {
                    streaming.insert(id.to_ascii_lowercase(), on);
                }
            }
            if let Some(e) = &vc.emergency {
                let enabled = |d: Option<bool>| d == Some(false);
                if !enabled(vc.termination.as_ref().map(|t| t.disabled))
                    || !enabled(vc.origination.as_ref().map(|o| o.disabled))
                {
                    return Err(vc_err("EmergencyCallingConfiguration", "emergency calling needs termination and origination configured and enabled first".into()));
                }
                for d in &e.dnis {
                    if !is_e164(&d.emergency_phone_number) {
                        return Err(vc_err(
                            "EmergencyPhoneNumber",
                            format!("`{}` is not an E.164 number", d.emergency_phone_number),
                        ));
                    }
                    if let Some(n) = d.test_phone_number.as_ref().filter(|n| !is_e164(n)) {
                        return Err(vc_err(
                            "TestPhoneNumber",
                            format!("`{n}` is not an E.164 number"),
                        ));
                    }
                    if !valid_country(&d.calling_country) {
                        return Err(vc_err(
                            "CallingCountry",
                            format!(
                                "`{}` is not an ISO 3166-1 alpha-2 country code",
                                d.calling_country
                            ),
                        ));
                    }
                }
            }
        }
        let mut group_ids = HashSet::new();
        for g in &self.groups {
            let g_err =
                |key: &str, m: String| err(key, format!("voice connector group {}: {m}", g.id));
            if g.id.is_empty() || g.id.chars().any(char::is_whitespace) {
                return Err(err("VoiceConnectorGroupId", format!("`{}` is not a group id", g.id)));
            }
            if ids.contains(&g.id.to_ascii_lowercase())
                || !group_ids.insert(g.id.to_ascii_lowercase())
            {
                return Err(g_err("VoiceConnectorGroupId", "the id is already used".into()));
            }
            if !g.name.is_empty() && !valid_name(&g.name) {
                return Err(g_err(
                    "Name",
                    format!("`{}` is not 1-256 characters of a-z A-Z 0-9 space _ . -", g.name),
                ));
            }
            if g.items.is_empty() || g.items.len() > MAX_GROUP_ITEMS {
                return Err(g_err(
                    "VoiceConnectorItems",
                    format!("1 to {MAX_GROUP_ITEMS} voice connectors"),
                ));
            }
            let mut seen = HashSet::new();
            for item in &g.items {
                if !(1..=99).contains(&item.priority) {
                    return Err(g_err(
                        "Priority",
                        format!("Priority {} is outside 1-99", item.priority),
                    ));
                }
                let id = item.voice_connector_id.to_ascii_lowercase();
                if !ids.contains(&id) {
                    return Err(g_err(
                        "VoiceConnectorId",
                        format!("unknown voice connector `{}`", item.voice_connector_id),
                    ));
                }
                if !seen.insert(id) {
                    return Err(g_err(
                        "VoiceConnectorId",
                        format!("`{}` is listed twice", item.voice_connector_id),
                    ));
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
                let trunk = check_route(t)
                    .map_err(|m| err("Trunks", format!("carrier {}: {m}", c.name)))?;
                networks.carrier_trunks.push(trunk);
            }
            for s in &c.source_cidrs {
                networks.carrier_sources.push(s.parse::<IpNet>().map_err(|_| {
                    err("SourceCidrs", format!("carrier {}: `{s}` is not a CIDR block", c.name))
                })?);
            }
        }
        let mut numbers = HashMap::new();
        for p in &self.phone_numbers {
            if !is_e164(&p.e164) {
                return Err(err(
                    "E164PhoneNumber",
                    format!("`{}` is not an E.164 number (+ and 2 to 15 digits)", p.e164),
                ));
            }
            if numbers.insert(p.e164.clone(), ()).is_some() {
                return Err(err("E164PhoneNumber", format!("`{}` is listed twice", p.e164)));
            }
            if !p.calling_name.is_empty() && !valid_calling_name(&p.calling_name) {
                return Err(err(
                    "CallingName",
                    format!(
                        "phone number {}: `{}` is not 2-15 characters of a-z A-Z 0-9 space",
                        p.e164, p.calling_name
                    ),
                ));
            }
            match (&p.voice_connector_id, &p.voice_connector_group_id) {
                (Some(vc), None) if ids.contains(&vc.to_ascii_lowercase()) => {}
                (None, Some(g)) if group_ids.contains(&g.to_ascii_lowercase()) => {}
                (Some(vc), None) => {
                    return Err(err("VoiceConnectorId", format!("phone number {} names unknown voice connector `{vc}`", p.e164)))
                }
                (None, Some(g)) => {
                    return Err(err("VoiceConnectorGroupId", format!("phone number {} names unknown voice connector group `{g}`", p.e164)))
                }
                _ => {
                    return Err(err("E164PhoneNumber", format!("phone number {} needs exactly one of VoiceConnectorId or VoiceConnectorGroupId", p.e164)))
                }
            }
        }
        super::streaming::check_settings(&self.streaming, &streaming)
            .map_err(|(k, m)| err(k, m))?;
        let meet = super::meetings::check(&self.meet, &self.meetings, &self.sip.domain, |v| {
            streaming.contains_key(v)
        })
        .map_err(|(k, m)| err(k, m))?;
        Ok(Validated {
            config: self,
            listen_udp,
            listen_tcp,
            listen_tls,
            metrics_listen,
            media_ports,
            media_address,
            cdr_bucket,
            networks,
            streaming,
            meet,
        })
    }
}

/// Checks `t` and returns its CIDR allow list, parsed.
fn check_termination(
    t: &Termination,
    has_credentials: bool,
) -> Result<Vec<IpNet>, (&'static str, String)> {
    if t.cps_limit < 1 {
        return Err(("CpsLimit", "CpsLimit must be at least 1".into()));
    }
    let mut cidrs = Vec::with_capacity(t.cidr_allowed_list.len());
    for c in &t.cidr_allowed_list {
        cidrs.push(
            c.parse::<IpNet>()
                .map_err(|_| ("CidrAllowedList", format!("`{c}` is not a CIDR block")))?,
        );
    }
    for r in &t.calling_regions {
        if !valid_country(r) {
            return Err((
                "CallingRegions",
                format!("`{r}` is not an ISO 3166-1 alpha-2 country code"),
            ));
        }
    }
    if !t.disabled && t.calling_regions.is_empty() {
        return Err((
            "CallingRegions",
            "CallingRegions is required: the countries calls may go to".into(),
        ));
    }
    if !t.disabled && t.cidr_allowed_list.is_empty() && !has_credentials {
        return Err((
            "CidrAllowedList",
            "termination needs a CidrAllowedList, Credentials or both (else nobody could call)"
                .into(),
        ));
    }
    if let Some(n) = &t.default_phone_number {
        if !is_e164(n) {
            return Err(("DefaultPhoneNumber", format!("`{n}` is not an E.164 number")));
        }
    }
    Ok(cidrs)
}

/// Checks `r` and returns it with its host parsed.
fn check_route(r: &OriginationRoute) -> Result<RouteAddr, String> {
    if !(1..=100).contains(&r.priority) {
        return Err(format!("Priority {} is outside 1-100", r.priority));
    }
    if !(1..=100).contains(&r.weight) {
        return Err(format!("Weight {} is outside 1-100", r.weight));
    }
    if r.port == 0 {
        return Err("Port 0 is not valid".into());
    }
    RouteAddr::of(r).ok_or_else(|| {
        format!("Host `{}` must be an IP address (name resolution is not supported yet)", r.host)
    })
}

/// A voice connector's `SiprecRecording`: an IP address, a port, a user of URI characters,
/// and TLS (or TCP, sent over TLS) where the voice connector requires encryption.
fn check_recording(
    r: &SiprecRecording,
    require_encryption: bool,
) -> Result<super::networks::RecordingTarget, (&'static str, String)> {
    let ip: IpAddr = r.host.parse().map_err(|_| {
        (
            "Host",
            format!("`{}` must be an IP address (name resolution is not supported yet)", r.host),
        )
    })?;
    if r.port == 0 {
        return Err(("Port", "Port 0 is not valid".into()));
    }
    let user_ok = (1..=64).contains(&r.user.len())
        && r.user.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()+".contains(&b));
    if !user_ok {
        return Err(("User", format!("`{}` is not 1-64 SIP user characters", r.user)));
    }
    if require_encryption && r.protocol == Protocol::Udp {
        return Err((
            "Protocol",
            "RequireEncryption needs the recording server over TLS (or TCP, sent over TLS)".into(),
        ));
    }
    Ok(super::networks::RecordingTarget {
        user: r.user.clone(),
        addr: SocketAddr::new(ip, r.port),
        protocol: r.protocol,
    })
}

/// An ISO 3166-1 alpha-2 code the numbering plan knows.
pub(super) fn valid_country(code: &str) -> bool {
    code.len() == 2
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && phonenumber::country::Id::from_str(code).is_ok()
}

/// `+` followed by 2 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else { return false };
    (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// `[a-zA-Z0-9 _.-]{1,256}` (voice connector and group names).
fn valid_name(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'.' | b'-'))
}

/// `[a-zA-Z0-9 ]{2,15}` (phone number calling names).
fn valid_calling_name(s: &str) -> bool {
    (2..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
}

pub(super) fn valid_vc_id(id: &str) -> bool {
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
