//! Where streaming status events go, best effort and never in a call's way: every event is a
//! line of the JSON-lines file (its own thread), POSTed to the webhook when one is set (retried),
//! and sent to the voice connector's `StreamingNotificationTargets` (EventBridge, SNS, SQS).
//! Each sink has a bounded queue; an event a full queue cannot take is dropped and counted.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use connector::config::NotificationTarget;
use metrics::{names, Labels, Registry};

use crate::http::client::{self, Target};

/// Events queued per sink at most.
const QUEUE: usize = 4096;
/// Webhook: attempts per event, the first pause between them (doubled each time), and the
/// deadline of one attempt.
const WEBHOOK_ATTEMPTS: u32 = 4;
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(250);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// An event for the AWS targets: its JSON and the targets of its voice connector.
pub type AwsEvent = (Arc<str>, Vec<NotificationTarget>);

/// The sinks' inputs.
#[derive(Clone)]
pub struct EventSinks {
    file: std::sync::mpsc::SyncSender<Arc<str>>,
    webhook: Option<tokio::sync::mpsc::Sender<Arc<str>>>,
    aws: tokio::sync::mpsc::Sender<AwsEvent>,
    registry: Arc<Mutex<Registry>>,
}

fn count(registry: &Mutex<Registry>, m: metrics::names::Metric) {
    registry.lock().unwrap_or_else(|e| e.into_inner()).inc(m, &Labels::default());
}

impl EventSinks {
    /// Starts the file's writer thread and, when `webhook` is set, its delivery task (on the
    /// current tokio runtime). `aws` takes the events whose voice connector has targets.
    pub fn start(
        file: PathBuf,
        webhook: Option<Target>,
        aws: tokio::sync::mpsc::Sender<AwsEvent>,
        registry: Arc<Mutex<Registry>>,
    ) -> std::io::Result<EventSinks> {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&file)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<str>>(QUEUE);
        let r = registry.clone();
        std::thread::Builder::new()
            .name("stream-events".into())
            .spawn(move || write_lines(out, file, rx, r))?;
        let webhook = webhook.map(|t| {
            let (wtx, wrx) = tokio::sync::mpsc::channel(QUEUE);
            tokio::spawn(post_all(t, wrx, registry.clone()));
            wtx
        });
        Ok(EventSinks { file: tx, webhook, aws, registry })
    }

    /// Hands one event to every sink (never blocks).
    pub fn send(&self, event: String, targets: &[NotificationTarget]) {
        let event: Arc<str> = event.into();
        if self.file.try_send(event.clone()).is_err() {
            count(&self.registry, names::STREAM_EVENTS_DROPPED);
        }
        if let Some(w) = &self.webhook {
            if w.try_send(event.clone()).is_err() {
                count(&self.registry, names::STREAM_EVENTS_DROPPED);
            }
        }
        if !targets.is_empty() && self.aws.try_send((event, targets.to_vec())).is_err() {
            count(&self.registry, names::STREAM_EVENTS_DROPPED);
        }
    }
}

/// The file sink: one line per event, flushed whenever the queue runs dry.
fn write_lines(
    out: std::fs::File,
    path: PathBuf,
    rx: std::sync::mpsc::Receiver<Arc<str>>,
    registry: Arc<Mutex<Registry>>,
) {
    let mut out = std::io::BufWriter::new(out);
    let mut failing = false;
    let mut written = 0u64;
    while let Ok(first) = rx.recv() {
        let mut ev = Some(first);
        let mut result = Ok(());
        while let Some(e) = ev.take() {
            result = result.and(out.write_all(e.as_bytes())).and(out.write_all(b"\n"));
            written += 1;
            ev = rx.try_recv().ok();
        }
        let result = result.and(out.flush());
        let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                r.add(names::STREAM_EVENTS_SENT, &Labels::default(), written as f64);
                if failing {
                    tracing::warn!(file = %path.display(), "streaming events file writable again");
                    failing = false;
                }
            }
            Err(e) => {
                r.add(names::STREAM_EVENTS_FAILED, &Labels::default(), written as f64);
                if !failing {
                    tracing::error!(file = %path.display(), error = %e, "cannot write streaming events");
                    failing = true;
                }
            }
        }
        written = 0;
    }
}

/// The webhook sink: each event POSTed as `application/json`, retried with backoff; a 2xx
/// answer takes it.
async fn post_all(
    t: Target,
    mut rx: tokio::sync::mpsc::Receiver<Arc<str>>,
    registry: Arc<Mutex<Registry>>,
) {
    tracing::info!(webhook = %t.describe(), "streaming events webhook");
    while let Some(ev) = rx.recv().await {
        let body = Bytes::copy_from_slice(ev.as_bytes());
        let mut wait = WEBHOOK_BACKOFF;
        let mut last = String::new();
        let mut sent = false;
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            match client::post(&t, "application/json", body.clone(), WEBHOOK_TIMEOUT).await {
                Ok(s) if (200..300).contains(&s) => {
                    sent = true;
                    break;
                }
                Ok(s) => last = format!("HTTP status {s}"),
                Err(e) => last = e.to_string(),
            }
            if attempt < WEBHOOK_ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        if sent {
            count(&registry, names::STREAM_EVENTS_SENT);
        } else {
            tracing::warn!(webhook = %t.describe(), error = %last, attempts = WEBHOOK_ATTEMPTS, "streaming event not delivered to the webhook");
            count(&registry, names::STREAM_EVENTS_FAILED);
        }
    }
}
