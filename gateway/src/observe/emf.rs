//! CloudWatch Embedded Metric Format output (formats.md §6): once a period (a minute by
//! default) the metrics of each voice connector as one JSON line appended to a file, ready for
//! the CloudWatch agent or any log shipper that understands EMF.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use crate::driver::clock::Clock;

use metrics::Registry;

/// Appends EMF lines to `path` every `period` until the process ends.
pub async fn run(path: PathBuf, period: Duration, registry: Arc<Mutex<Registry>>, clock: Clock) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    tracing::info!(path = %path.display(), secs = period.as_secs(), "CloudWatch EMF metrics");
    let mut tick = tokio::time::interval(period);
    tick.tick().await; // the first tick is immediate
    loop {
        tick.tick().await;
        let ts = clock.wall().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let lines = registry.lock().unwrap_or_else(|e| e.into_inner()).emf_lines(ts as u64);
        let mut text = lines.join("\n");
        text.push('\n');
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "EMF metrics not written");
        }
    }
}
