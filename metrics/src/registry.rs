use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::names::{prometheus_name, Kind, Metric, ALL, LATENCY_BUCKETS};

/// A latency histogram in microseconds, with the exact sum of what it recorded.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
    sum_secs: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// Three significant figures, from 1 µs up (auto-resizing).
    pub fn new() -> Latency {
        let mut hist = Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sigfigs is valid"));
        hist.auto(true);
        Latency { hist, sum_secs: 0.0 }
    }

    pub fn record(&mut self, secs: f64) {
        let us = (secs.max(0.0) * 1e6).round() as u64;
        let _ = self.hist.record(us);
        self.sum_secs += secs.max(0.0);
    }

    /// Adds `other` into this one (per-thread histograms merged for rendering).
    pub fn merge(&mut self, other: &Latency) {
        let _ = self.hist.add(&other.hist);
        self.sum_secs += other.sum_secs;
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0–1), in seconds.
    pub fn quantile(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1e6
    }

    /// Recorded values at or below `secs` (to the histogram's precision).
    pub fn count_at_or_below(&self, secs: f64) -> u64 {
        let us = (secs * 1e6).round() as u64;
        self.hist
            .iter_recorded()
            .filter(|v| v.value_iterated_to() <= us)
            .map(|v| v.count_at_value())
            .sum()
    }
}

/// Label set: (`voice_connector_id`, `region`); empty strings for process-wide metrics. A
/// process metric counted by kind (`Metric::has_kind`: PutMedia acknowledgements by
/// `EventType`, errors by code) also has `kind`, rendered only when it is not empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Labels {
    pub voice_connector_id: String,
    pub region: String,
    pub kind: String,
}

impl Labels {
    pub fn new(voice_connector_id: &str, region: &str) -> Labels {
        Labels {
            voice_connector_id: voice_connector_id.into(),
            region: region.into(),
            kind: String::new(),
        }
    }

    /// A process metric's labels for one `kind`.
    pub fn kind(kind: &str) -> Labels {
        Labels { kind: kind.into(), ..Labels::default() }
    }

    /// `voice_connector_id="…",region="…"` (and `,kind="…"` when there is one).
    fn prometheus(&self) -> String {
        let mut s = format!(
            "voice_connector_id=\"{}\",region=\"{}\"",
            escape(&self.voice_connector_id),
            escape(&self.region)
        );
        if !self.kind.is_empty() {
            let _ = write!(s, ",kind=\"{}\"", escape(&self.kind));
        }
        s
    }
}

/// Values of the declared metrics, per label set.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    values: BTreeMap<(&'static str, Labels), f64>,
    latencies: BTreeMap<(&'static str, Labels), Latency>,
    /// Counter values at the last Embedded Metric Format emission (for per-minute deltas).
    emitted: BTreeMap<(&'static str, Labels), f64>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    pub fn add(&mut self, m: Metric, labels: &Labels, v: f64) {
        *self.values.entry((m.cloudwatch, labels.clone())).or_insert(0.0) += v;
    }

    pub fn inc(&mut self, m: Metric, labels: &Labels) {
        self.add(m, labels, 1.0);
    }

    pub fn set(&mut self, m: Metric, labels: &Labels, v: f64) {
        self.values.insert((m.cloudwatch, labels.clone()), v);
    }

    /// Records one latency of histogram `m`.
    pub fn observe(&mut self, m: Metric, labels: &Labels, secs: f64) {
        self.latencies.entry((m.cloudwatch, labels.clone())).or_default().record(secs);
    }

    /// Adds the latencies of `h` to histogram `m`.
    pub fn merge_latency(&mut self, m: Metric, labels: &Labels, h: &Latency) {
        self.latencies.entry((m.cloudwatch, labels.clone())).or_default().merge(h);
    }

    /// Histogram `m`, if anything was recorded.
    pub fn latency(&self, m: Metric, labels: &Labels) -> Option<&Latency> {
        self.latencies.get(&(m.cloudwatch, labels.clone()))
    }

    pub fn get(&self, m: Metric, labels: &Labels) -> f64 {
        self.values.get(&(m.cloudwatch, labels.clone())).copied().unwrap_or(0.0)
    }

    /// Makes every declared per-voice-connector metric appear (at 0) for `labels`; process-wide
    /// metrics keep their own empty labels.
    pub fn register_labels(&mut self, labels: &Labels) {
        for m in ALL.iter().filter(|m| !m.is_process() && m.kind != Kind::Histogram) {
            self.values.entry((m.cloudwatch, labels.clone())).or_insert(0.0);
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for m in ALL {
            let name = prometheus_name(m.cloudwatch);
            let kind = match m.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => {
                    self.render_histogram(&mut out, m, &name);
                    continue;
                }
            };
            let rows: Vec<_> =
                self.values.iter().filter(|((n, _), _)| *n == m.cloudwatch).collect();
            if rows.is_empty() {
                continue;
            }
            let full = if m.kind == Kind::Counter { format!("{name}_total") } else { name.clone() };
            let _ = writeln!(out, "# HELP {full} {} (CloudWatch: {})", m.help, m.cloudwatch);
            let _ = writeln!(out, "# TYPE {full} {kind}");
            for ((_, l), v) in rows {
                let _ = writeln!(out, "{full}{{{}}} {}", l.prometheus(), v);
            }
        }
        out
    }
}

impl Registry {
    fn render_histogram(&self, out: &mut String, m: &Metric, name: &str) {
        let _ = writeln!(out, "# HELP {name} {} (CloudWatch: {})", m.help, m.cloudwatch);
        let _ = writeln!(out, "# TYPE {name} histogram");
        let empty = Latency::new();
        let mut rows: Vec<(&Labels, &Latency)> = self
            .latencies
            .iter()
            .filter(|((n, _), _)| *n == m.cloudwatch)
            .map(|((_, l), h)| (l, h))
            .collect();
        let none = Labels::default();
        if rows.is_empty() {
            rows.push((&none, &empty));
        }
        for (l, h) in rows {
            let labels = l.prometheus();
            for b in LATENCY_BUCKETS {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels},le=\"{b}\"}} {}",
                    h.count_at_or_below(*b)
                );
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count());
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_secs);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
        }
    }

    /// CloudWatch Embedded Metric Format: one JSON line per voice connector with its metrics
    /// (namespace `AWS/ChimeVoiceConnector`, dimensions `VoiceConnectorId`, `Region`), counters
    /// as their increase since the previous call, gauges as they are; then one line for the
    /// process metrics (namespace `voicegw`, no dimensions). `timestamp_ms`: milliseconds
    /// since the epoch.
    pub fn emf_lines(&mut self, timestamp_ms: u64) -> Vec<String> {
        let mut groups: BTreeMap<Labels, Vec<(&'static Metric, f64)>> = BTreeMap::new();
        for m in ALL.iter().filter(|m| m.kind != Kind::Histogram) {
            for ((n, l), v) in self.values.iter().filter(|((n, _), _)| *n == m.cloudwatch) {
                let key = (*n, l.clone());
                let value = if m.kind == Kind::Counter {
                    let before = self.emitted.get(&key).copied().unwrap_or(0.0);
                    self.emitted.insert(key, *v);
                    v - before
                } else {
                    *v
                };
                groups.entry(l.clone()).or_default().push((m, value));
            }
        }
        let mut lines = Vec::new();
        for (l, metrics) in groups {
            let process = l.voice_connector_id.is_empty();
            let mut line = String::from("{\"_aws\":{");
            let _ = write!(line, "\"Timestamp\":{timestamp_ms},\"CloudWatchMetrics\":[{{");
            if process && !l.kind.is_empty() {
                line.push_str(
                    "\"Namespace\":\"voicegw\",\"Dimensions\":[[\"Kind\"]],\"Metrics\":[",
                );
            } else if process {
                line.push_str("\"Namespace\":\"voicegw\",\"Dimensions\":[[]],\"Metrics\":[");
            } else {
                line.push_str("\"Namespace\":\"AWS/ChimeVoiceConnector\",\"Dimensions\":[[\"VoiceConnectorId\",\"Region\"]],\"Metrics\":[");
            }
            for (i, (m, _)) in metrics.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(
                    line,
                    "{sep}{{\"Name\":\"{}\",\"Unit\":\"{}\"}}",
                    m.cloudwatch,
                    m.unit()
                );
            }
            line.push_str("]}]}");
            if process && !l.kind.is_empty() {
                let _ = write!(line, ",\"Kind\":\"{}\"", json_escape(&l.kind));
            }
            if !process {
                let _ = write!(
                    line,
                    ",\"VoiceConnectorId\":\"{}\",\"Region\":\"{}\"",
                    json_escape(&l.voice_connector_id),
                    json_escape(&l.region)
                );
            }
            for (m, v) in &metrics {
                let v = if v.is_finite() { *v } else { 0.0 };
                let _ = write!(line, ",\"{}\":{v}", m.cloudwatch);
            }
            line.push('}');
            lines.push(line);
        }
        lines
    }
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let mut r = Registry::new();
        let l = Labels::default();
        for s in [0.000_02, 0.000_04, 0.003, 2.0] {
            r.observe(names::CALL_SETUP_SECONDS, &l, s);
        }
        let text = r.render();
        assert!(text.contains("# TYPE voicegw_call_setup_seconds histogram"), "{text}");
        let bucket = |le: &str| {
            let key = format!("voicegw_call_setup_seconds_bucket{{voice_connector_id=\"\",region=\"\",le=\"{le}\"}} ");
            text.lines().find_map(|x| x.strip_prefix(&key)).unwrap().to_string()
        };
        assert_eq!(bucket("0.00001"), "0");
        assert_eq!(bucket("0.000025"), "1");
        assert_eq!(bucket("0.00005"), "2");
        assert_eq!(bucket("0.005"), "3");
        assert_eq!(bucket("2.5"), "4");
        assert_eq!(bucket("+Inf"), "4");
        assert!(text
            .contains("voicegw_call_setup_seconds_count{voice_connector_id=\"\",region=\"\"} 4"));
        // Declared but empty: still exposed, with zero counts.
        assert!(text.contains(
            "voicegw_media_relay_latency_seconds_count{voice_connector_id=\"\",region=\"\"} 0"
        ));
        let h = r.latency(names::CALL_SETUP_SECONDS, &l).unwrap();
        assert!((h.quantile(0.5) - 0.000_04).abs() < 1e-6, "{}", h.quantile(0.5));
    }

    #[test]
    fn emf_lines_carry_deltas_of_counters_and_gauges_as_they_are() {
        let mut r = Registry::new();
        let l = Labels::new("abcdef1ghij2klmno3pqr4", "us-east-1");
        r.add(names::OUTBOUND_CALL_ATTEMPTS, &l, 5.0);
        r.set(names::OUTBOUND_CALLS_ACTIVE, &l, 2.0);
        r.set(names::CUSTOMER_TO_VC_JITTER, &l, 1500.0);
        let first = r.emf_lines(1_700_000_000_000);
        assert_eq!(first.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&first[0]).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "AWS/ChimeVoiceConnector");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "VoiceConnectorId");
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(v["VoiceConnectorId"], "abcdef1ghij2klmno3pqr4");
        assert_eq!(v["OutboundCallAttempts"], 5.0);
        assert_eq!(v["OutboundCallsActive"], 2.0);
        let metrics = v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        assert!(metrics
            .iter()
            .any(|m| m["Name"] == "CustomerToVcJitter" && m["Unit"] == "Microseconds"));
        r.add(names::OUTBOUND_CALL_ATTEMPTS, &l, 2.0);
        let v: serde_json::Value =
            serde_json::from_str(&r.emf_lines(1_700_000_060_000)[0]).unwrap();
        assert_eq!(v["OutboundCallAttempts"], 2.0, "the minute's increase");
        assert_eq!(v["OutboundCallsActive"], 2.0);
    }

    #[test]
    fn a_kind_label_is_rendered_only_where_it_is_set() {
        let mut r = Registry::new();
        r.add(names::STREAM_ACKS, &Labels::kind("PERSISTED"), 3.0);
        r.add(names::STREAM_ERRORS, &Labels::kind("4004"), 1.0);
        r.add(names::STREAM_BYTES, &Labels::default(), 10.0);
        let text = r.render();
        assert!(text.contains(
            "voicegw_stream_acks_total{voice_connector_id=\"\",region=\"\",kind=\"PERSISTED\"} 3"
        ));
        assert!(text.contains(
            "voicegw_stream_errors_total{voice_connector_id=\"\",region=\"\",kind=\"4004\"} 1"
        ));
        assert!(text.contains("voicegw_stream_bytes_total{voice_connector_id=\"\",region=\"\"} 10"));
        let lines = r.emf_lines(1_700_000_000_000);
        let acks = lines.iter().find(|l| l.contains("StreamAcks")).expect("a line");
        let v: serde_json::Value = serde_json::from_str(acks).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "Kind");
        assert_eq!((v["Kind"].as_str(), v["StreamAcks"].as_f64()), (Some("PERSISTED"), Some(3.0)));
        assert!(names::STREAM_ERRORS.has_kind() && !names::STREAM_BYTES.has_kind());
    }

    #[test]
    fn renders_help_type_and_values() {
        let mut r = Registry::new();
        let l = Labels::new("abcdef1ghij2klmno3pqr4", "us-east-1");
        r.inc(names::OUTBOUND_CALL_ATTEMPTS, &l);
        r.inc(names::OUTBOUND_CALL_ATTEMPTS, &l);
        r.set(names::OUTBOUND_CALLS_ACTIVE, &l, 1.0);
        let text = r.render();
        assert!(text.contains("# TYPE voicegw_outbound_call_attempts_total counter"));
        assert!(text.contains("voicegw_outbound_call_attempts_total{voice_connector_id=\"abcdef1ghij2klmno3pqr4\",region=\"us-east-1\"} 2"));
        assert!(text.contains("voicegw_outbound_calls_active{voice_connector_id=\"abcdef1ghij2klmno3pqr4\",region=\"us-east-1\"} 1"));
        assert!(text.contains("(CloudWatch: OutboundCallAttempts)"));
        assert_eq!(r.get(names::OUTBOUND_CALL_ATTEMPTS, &l), 2.0);
    }
}
