//! Streaming call audio to Kinesis Video Streams: voicegw's own `[streaming]` settings (where
//! the streams go, the fragment length, where status events go) and each voice connector's
//! `StreamingConfiguration` (the API's object), checked once and kept as typed values.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::objects::StreamingConfiguration;

/// Where the streams go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamSink {
    /// One Matroska file per stream under `streaming.dir` (no AWS account needed).
    #[default]
    Local,
    /// Kinesis Video Streams (or a KVS-compatible service at `kvs_endpoint`).
    Kvs,
}

/// voicegw's own streaming settings (`[streaming]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingConfig {
    pub sink: StreamSink,
    /// Local streams; `<data.dir>/kvs` when unset.
    pub dir: Option<PathBuf>,
    /// The KVS region; the AWS chain's, or `us-east-1`, when unset.
    pub region: Option<String>,
    /// The KVS control-plane endpoint (CreateStream, DescribeStream, GetDataEndpoint), for
    /// tests and KVS-compatible services.
    pub kvs_endpoint: Option<String>,
    /// The PutMedia endpoint instead of GetDataEndpoint's answer.
    pub data_endpoint: Option<String>,
    /// Fragment (Cluster) length: 1000–10000 ms, in steps of 20 ms.
    pub fragment_ms: u32,
    /// How long a gap in a leg's RTP waits for late packets before it is filled with silence.
    pub jitter_hold_ms: u32,
    /// Per stream, the most audio kept for a slow or unreachable PutMedia endpoint.
    pub max_buffered_kib: u32,
    /// A PutMedia connection is replaced (at the next fragment boundary) after this long:
    /// KVS ends connections at 45 minutes. 10–2640 s.
    pub putmedia_rotate_secs: u32,
    /// A stream whose PutMedia connections keep failing for this long is given up (a FAILED
    /// event). 5–3600 s.
    pub putmedia_give_up_secs: u32,
    /// Streaming status events as JSON lines; `<data.dir>/streaming-events.jsonl` when unset.
    pub events_file: Option<PathBuf>,
    /// An HTTP(S) URL every event is also POSTed to (retried, best effort).
    pub webhook_url: Option<String>,
    /// For the `EventBridge` target: the bus (default `default`) and an endpoint override.
    pub event_bus_name: String,
    pub eventbridge_endpoint: Option<String>,
    /// The `Source` of the events put on the bus. EventBridge refuses `aws.*` sources from
    /// anyone but AWS, so the default is `voicegw.chime`; the detail-type and the detail are
    /// the service's (`aws.chime` is kept in the JSON-lines file and the SNS/SQS messages).
    pub eventbridge_source: String,
    /// For the `SNS` target: the topic (named `ChimeVoiceConnector-Streaming…`).
    pub sns_topic_arn: Option<String>,
    pub sns_endpoint: Option<String>,
    /// For the `SQS` target: the queue URL (a queue named `ChimeVoiceConnector-Streaming…`).
    pub sqs_queue_url: Option<String>,
    pub sqs_endpoint: Option<String>,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            sink: StreamSink::Local,
            dir: None,
            region: None,
            kvs_endpoint: None,
            data_endpoint: None,
            fragment_ms: 2000,
            jitter_hold_ms: 60,
            max_buffered_kib: 4096,
            putmedia_rotate_secs: 2400,
            putmedia_give_up_secs: 60,
            events_file: None,
            webhook_url: None,
            event_bus_name: "default".into(),
            eventbridge_endpoint: None,
            eventbridge_source: "voicegw.chime".into(),
            sns_topic_arn: None,
            sns_endpoint: None,
            sqs_queue_url: None,
            sqs_endpoint: None,
        }
    }
}

/// A `StreamingNotificationTarget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationTarget {
    EventBridge,
    Sns,
    Sqs,
}

impl NotificationTarget {
    fn parse(s: &str) -> Option<NotificationTarget> {
        match s {
            "EventBridge" => Some(NotificationTarget::EventBridge),
            "SNS" => Some(NotificationTarget::Sns),
            "SQS" => Some(NotificationTarget::Sqs),
            _ => None,
        }
    }
}

/// A voice connector's streaming, when it is on (`Disabled: false`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorStreaming {
    /// `DataRetentionInHours`: the KVS streams' retention (0: none, and no PERSISTED acks).
    pub retention_hours: u32,
    /// `StreamingNotificationTargets`, in order, each once.
    pub targets: Vec<NotificationTarget>,
    /// `MediaInsightsConfiguration.ConfigurationArn` when media insights are on: accepted and
    /// kept (voicegw runs no call analytics).
    pub media_insights_arn: Option<String>,
}

/// KVS's largest `DataRetentionInHours` (10 years).
pub const MAX_RETENTION_HOURS: u32 = 87_600;
/// The name SNS topics and SQS queues for streaming events must start with.
pub const TARGET_NAME_PREFIX: &str = "ChimeVoiceConnector-Streaming";

/// Checks one voice connector's `StreamingConfiguration`: `Ok(None)` when it is disabled.
/// Errors are `(key, message)`.
pub(super) fn check_connector(
    s: &StreamingConfiguration,
) -> Result<Option<ConnectorStreaming>, (&'static str, String)> {
    if s.data_retention_in_hours > MAX_RETENTION_HOURS {
        return Err((
            "DataRetentionInHours",
            format!(
                "{} hours is more than Kinesis Video Streams keeps ({MAX_RETENTION_HOURS})",
                s.data_retention_in_hours
            ),
        ));
    }
    if s.notification_targets.len() > 3 {
        return Err(("StreamingNotificationTargets", "at most 3 targets".into()));
    }
    let mut targets = Vec::new();
    for t in &s.notification_targets {
        let Some(target) = NotificationTarget::parse(&t.notification_target) else {
            return Err((
                "NotificationTarget",
                format!("`{}` is not EventBridge, SNS or SQS", t.notification_target),
            ));
        };
        if targets.contains(&target) {
            return Err((
                "NotificationTarget",
                format!("`{}` is listed twice", t.notification_target),
            ));
        }
        targets.push(target);
    }
    let media_insights_arn = match &s.media_insights {
        Some(m) if !m.disabled => {
            let arn = m.configuration_arn.clone().unwrap_or_default();
            let ok = arn.len() <= 1024
                && arn.starts_with("arn")
                && arn.len() > 3
                && arn.bytes().all(|b| b.is_ascii_alphanumeric() || b"/:-_.".contains(&b));
            if !ok {
                // The ARN is marked sensitive in the API: it is not repeated here.
                return Err((
                    "ConfigurationArn",
                    "media insights need a ConfigurationArn (arn:…, up to 1024 characters)".into(),
                ));
            }
            Some(arn)
        }
        _ => None,
    };
    if s.disabled {
        return Ok(None);
    }
    Ok(Some(ConnectorStreaming {
        retention_hours: s.data_retention_in_hours,
        targets,
        media_insights_arn,
    }))
}

/// Checks `[streaming]` against what the voice connectors ask of it. Errors are
/// `(key, message)`.
pub(super) fn check_settings(
    c: &StreamingConfig,
    connectors: &HashMap<String, ConnectorStreaming>,
) -> Result<(), (&'static str, String)> {
    if !(1000..=10_000).contains(&c.fragment_ms) || !c.fragment_ms.is_multiple_of(20) {
        return Err((
            "fragment_ms",
            format!("{} is not 1000 to 10000 in steps of 20 (KVS fragments are 1 to 10 s of 20 ms blocks)", c.fragment_ms),
        ));
    }
    if c.jitter_hold_ms > 1000 {
        return Err(("jitter_hold_ms", format!("{} ms is more than 1000", c.jitter_hold_ms)));
    }
    let source = &c.eventbridge_source;
    if source.is_empty() || source.len() > 256 || source.chars().any(char::is_control) {
        return Err(("eventbridge_source", "1 to 256 characters, no control characters".into()));
    }
    if !(64..=1 << 20).contains(&c.max_buffered_kib) {
        return Err(("max_buffered_kib", format!("{} is not 64 to 1048576", c.max_buffered_kib)));
    }
    if !(10..=2640).contains(&c.putmedia_rotate_secs) {
        return Err((
            "putmedia_rotate_secs",
            format!(
                "{} is not 10 to 2640 (KVS ends PutMedia connections at 45 minutes)",
                c.putmedia_rotate_secs
            ),
        ));
    }
    if !(5..=3600).contains(&c.putmedia_give_up_secs) {
        return Err((
            "putmedia_give_up_secs",
            format!("{} is not 5 to 3600", c.putmedia_give_up_secs),
        ));
    }
    for (key, url) in [
        ("kvs_endpoint", &c.kvs_endpoint),
        ("data_endpoint", &c.data_endpoint),
        ("webhook_url", &c.webhook_url),
        ("eventbridge_endpoint", &c.eventbridge_endpoint),
        ("sns_endpoint", &c.sns_endpoint),
        ("sqs_endpoint", &c.sqs_endpoint),
        ("sqs_queue_url", &c.sqs_queue_url),
    ] {
        if let Some(u) = url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                return Err((key, format!("`{u}` is not an http:// or https:// URL")));
            }
        }
    }
    // SNS and SQS targets need a topic (its name ends an ARN) or a queue (its name ends a URL).
    for (target, label, key, value, what, separator) in [
        (NotificationTarget::Sns, "SNS", "sns_topic_arn", &c.sns_topic_arn, "topic", ':'),
        (NotificationTarget::Sqs, "SQS", "sqs_queue_url", &c.sqs_queue_url, "queue", '/'),
    ] {
        if !connectors.values().any(|s| s.targets.contains(&target)) {
            continue;
        }
        let Some(v) = value else {
            return Err((key, format!("a voice connector sends streaming events to {label}: name the {what} (streaming.{key})")));
        };
        let name = v.trim_end_matches('/').rsplit(separator).next().unwrap_or_default();
        if !name.starts_with(TARGET_NAME_PREFIX) {
            return Err((
                key,
                format!("the {what}'s name must start with {TARGET_NAME_PREFIX}: `{v}`"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Config, EMBEDDED_DEFAULT};
    use super::*;

    const VC: &str = "abcdef1ghij2klmno3pqr4";

    fn with(streaming_vc: &str, settings: &str) -> Result<super::super::Validated, String> {
        let text = format!(
            "{EMBEDDED_DEFAULT}\n[VoiceConnectors.StreamingConfiguration]\n{streaming_vc}\n[streaming]\n{settings}\n"
        );
        Config::parse(&text, "x.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn the_default_streams_nothing_and_writes_locally() {
        let v = Config::parse(EMBEDDED_DEFAULT, "embedded").expect("default");
        assert!(v.streaming.is_empty());
        assert_eq!(v.config.streaming.sink, StreamSink::Local);
        assert_eq!(v.config.streaming_dir(), PathBuf::from("./var/kvs"));
        assert_eq!(v.config.streaming_events_file(), PathBuf::from("./var/streaming-events.jsonl"));
        assert_eq!(v.config.streaming.fragment_ms, 2000);
    }

    #[test]
    fn an_enabled_connector_is_kept_typed_with_its_targets() {
        let v = with(
            "Disabled = false\nDataRetentionInHours = 24\nStreamingNotificationTargets = [{NotificationTarget = \"EventBridge\"}, {NotificationTarget = \"SQS\"}]\nMediaInsightsConfiguration = {Disabled = false, ConfigurationArn = \"arn:aws:chime:us-east-1:111122223333:media-insights-pipeline-configuration/x\"}",
            "sqs_queue_url = \"http://127.0.0.1:5055/123456789012/ChimeVoiceConnector-Streaming-q\"",
        )
        .expect("valid");
        let s = &v.streaming[VC];
        assert_eq!(s.retention_hours, 24);
        assert_eq!(s.targets, [NotificationTarget::EventBridge, NotificationTarget::Sqs]);
        assert!(s.media_insights_arn.as_deref().is_some_and(|a| a.ends_with("/x")));
        let off = with("Disabled = true\nDataRetentionInHours = 0", "").expect("valid");
        assert!(off.streaming.is_empty(), "a disabled configuration streams nothing");
    }

    #[test]
    fn what_kvs_or_the_api_would_refuse_is_an_error_naming_its_key() {
        let cases = [
            ("Disabled = false\nDataRetentionInHours = 90000", "", "DataRetentionInHours"),
            ("Disabled = false\nStreamingNotificationTargets = [{NotificationTarget = \"Lambda\"}]", "", "is not EventBridge"),
            ("Disabled = false\nStreamingNotificationTargets = [{NotificationTarget = \"SNS\"}, {NotificationTarget = \"SNS\"}]", "", "listed twice"),
            ("Disabled = false\nStreamingNotificationTargets = [{NotificationTarget = \"SNS\"}]", "", "sns_topic_arn"),
            ("Disabled = false\nStreamingNotificationTargets = [{NotificationTarget = \"SNS\"}]", "sns_topic_arn = \"arn:aws:sns:us-east-1:123456789012:other\"", "must start with ChimeVoiceConnector-Streaming"),
            ("Disabled = false\nStreamingNotificationTargets = [{NotificationTarget = \"SQS\"}]", "", "sqs_queue_url"),
            ("Disabled = false\nMediaInsightsConfiguration = {Disabled = false}", "", "ConfigurationArn"),
            ("Disabled = false", "fragment_ms = 500", "fragment_ms"),
            ("Disabled = false", "fragment_ms = 1010", "steps of 20"),
            ("Disabled = false", "jitter_hold_ms = 5000", "jitter_hold_ms"),
            ("Disabled = false", "putmedia_rotate_secs = 3000", "45 minutes"),
            ("Disabled = false", "putmedia_give_up_secs = 1", "putmedia_give_up_secs"),
            ("Disabled = false", "webhook_url = \"ftp://x\"", "webhook_url"),
            ("Disabled = false", "sink = \"s3\"", "unknown variant"),
        ];
        for (vc, settings, want) in cases {
            let e = with(vc, settings).expect_err(want);
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = with("Disabled = false", "fragment_ms = 500").expect_err("bad");
        assert!(e.starts_with("x.toml:") && !e.starts_with("x.toml:0:"), "a line: {e}");
    }
}
