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
