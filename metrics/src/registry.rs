use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::names::{prometheus_name, Kind, Metric, ALL};

/// Label set: (`voice_connector_id`, `region`); empty strings for process-wide metrics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Labels {
    pub voice_connector_id: String,
    pub region: String,
}

impl Labels {
    pub fn new(voice_connector_id: &str, region: &str) -> Labels {
        Labels { voice_connector_id: voice_connector_id.into(), region: region.into() }
    }
}

/// Values of the declared metrics, per label set.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    values: BTreeMap<(&'static str, Labels), f64>,
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

    pub fn get(&self, m: Metric, labels: &Labels) -> f64 {
        self.values.get(&(m.cloudwatch, labels.clone())).copied().unwrap_or(0.0)
    }

    /// Makes every declared per-voice-connector metric appear (at 0) for `labels`; process-wide
    /// metrics keep their own empty labels.
    pub fn register_labels(&mut self, labels: &Labels) {
        for m in ALL.iter().filter(|m| !m.help.contains("process metric")) {
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
                let _ = writeln!(
                    out,
                    "{full}{{voice_connector_id=\"{}\",region=\"{}\"}} {}",
                    escape(&l.voice_connector_id),
                    escape(&l.region),
                    v
                );
            }
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names;

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
