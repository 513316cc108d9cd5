//! Values the driver derives from the configuration, at start-up and again at each reload.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use connector::config::Config;
use metrics::{Labels, Registry};

use crate::relay::record::RecordSink;

/// The voice connectors with `EnableSIPLogs`, with their regions.
pub fn sip_logging(cfg: &Config) -> Vec<(String, String)> {
    cfg.voice_connectors
        .iter()
        .filter(|vc| vc.logging.enable_sip_logs)
        .map(|vc| (vc.id.clone(), vc.aws_region.clone()))
        .collect()
}

/// Voice connector → its AWS Region.
pub fn regions(cfg: &Config) -> HashMap<String, String> {
    cfg.voice_connectors.iter().map(|vc| (vc.id.clone(), vc.aws_region.clone())).collect()
}

/// Where each voice connector's media-quality records and metrics go.
pub fn record_sinks(cfg: &Config, registry: &Arc<Mutex<Registry>>) -> HashMap<String, RecordSink> {
    cfg.voice_connectors
        .iter()
        .map(|vc| {
            let path = vc.logging.enable_media_metric_logs.then(|| {
                cfg.data.dir.join("ChimeVoiceConnectorLogs").join(format!("{}.jsonl", vc.id))
            });
            let labels = Labels::new(&vc.id, &vc.aws_region);
            (
                vc.id.clone(),
                RecordSink {
                    path,
                    aws_region: vc.aws_region.clone(),
                    metrics: Some((registry.clone(), labels)),
                },
            )
        })
        .collect()
}

/// Meeting participants' media-quality records: `ChimeVoiceConnectorLogs/meetings.jsonl`
/// under the data directory, and the metrics under voice connector id `meetings`.
pub fn meeting_record_sink(cfg: &Config, registry: &Arc<Mutex<Registry>>) -> RecordSink {
    let id = super::meetings::MEETINGS_VOICE_CONNECTOR;
    RecordSink {
        path: Some(cfg.data.dir.join("ChimeVoiceConnectorLogs").join(format!("{id}.jsonl"))),
        aws_region: String::new(),
        metrics: Some((registry.clone(), Labels::new(id, ""))),
    }
}

/// Voice connectors whose customer leg may learn its media source (`AllowMediaSourceLearning`).
pub fn learning_voice_connectors(cfg: &Config) -> Vec<String> {
    cfg.voice_connectors
        .iter()
        .filter(|vc| vc.allow_media_source_learning)
        .map(|vc| vc.id.clone())
        .collect()
}

/// Voice connectors that require encrypted media (`Encryption`).
pub fn encrypted_voice_connectors(cfg: &Config) -> Vec<String> {
    cfg.voice_connectors.iter().filter(|vc| vc.require_encryption).map(|vc| vc.id.clone()).collect()
}

/// Registers every voice connector's labels, so that its metrics exist before its first call.
pub fn register_labels(cfg: &Config, registry: &Mutex<Registry>) {
    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
    for vc in &cfg.voice_connectors {
        r.register_labels(&Labels::new(&vc.id, &vc.aws_region));
    }
}

/// Where each voice connector's calls are recorded (`SiprecRecording`), by id in lower case:
/// the recording server's URI and address. TCP is sent over TLS where the voice connector
/// requires encryption, as for origination routes.
pub fn recording_targets(
    v: &connector::config::Validated,
) -> HashMap<String, siprec::client::Target> {
    use connector::config::Protocol;
    let mut targets = HashMap::new();
    for vc in &v.config.voice_connectors {
        let key = vc.id.to_ascii_lowercase();
        let Some(t) = v.networks.connectors.get(&key).and_then(|n| n.recording_target.as_ref())
        else {
            continue;
        };
        let transport = match (t.protocol, vc.require_encryption) {
            (Protocol::Tcp, true) => sip::Transport::Tls,
            (p, _) => p.transport(),
        };
        let host = match t.addr.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let param = match transport {
            sip::Transport::Udp => "",
            sip::Transport::Tcp => ";transport=tcp",
            sip::Transport::Tls => ";transport=tls",
        };
        let text = format!("sip:{}@{host}:{}{param}", t.user, t.addr.port());
        // The user and the address were checked when the configuration was read.
        if let Ok(uri) = sip::Uri::parse(&text) {
            let peer = sip::Peer::new(transport, t.addr);
            targets.insert(key, siprec::client::Target { uri, peer });
        }
    }
    targets
}
