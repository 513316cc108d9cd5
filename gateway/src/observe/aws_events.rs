//! The streaming events' AWS targets, through the AWS SDK: EventBridge `PutEvents` (the
//! service's detail-type and detail on `streaming.event_bus_name`), SNS `Publish` and SQS
//! `SendMessage` (the whole event, as the service sends it). Credentials and region come from
//! the standard chain (`streaming.region` overrides it); each service's endpoint can be
//! overridden for tests and compatible services. One task delivers in order, retrying each
//! put a few times; a target that keeps failing is logged and counted, never waited for.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use connector::config::{NotificationTarget, StreamingConfig};
use metrics::{names, Labels, Registry};

use super::event_sinks::AwsEvent;

/// Events queued for the AWS targets at most.
const QUEUE: usize = 4096;
const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(200);
/// Deadline of one put.
const PUT_TIMEOUT: Duration = Duration::from_secs(10);

/// The clients, made at the first event that needs one.
struct Clients {
    eventbridge: Option<aws_sdk_eventbridge::Client>,
    sns: Option<aws_sdk_sns::Client>,
    sqs: Option<aws_sdk_sqs::Client>,
    shared: Option<aws_config::SdkConfig>,
}

/// Starts the delivery task on the current runtime; returns its input.
pub fn start(
    cfg: &StreamingConfig,
    registry: Arc<Mutex<Registry>>,
) -> tokio::sync::mpsc::Sender<AwsEvent> {
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
    tokio::spawn(deliver_all(cfg.clone(), rx, registry));
    tx
}

impl Clients {
    async fn shared(&mut self, cfg: &StreamingConfig) -> aws_config::SdkConfig {
        match &self.shared {
            Some(s) => s.clone(),
            None => {
                let s = crate::aws::shared_config(cfg.region.as_deref()).await;
                self.shared = Some(s.clone());
                s
            }
        }
    }
}

async fn deliver_all(
    cfg: StreamingConfig,
    mut rx: tokio::sync::mpsc::Receiver<AwsEvent>,
    registry: Arc<Mutex<Registry>>,
) {
    let mut c = Clients { eventbridge: None, sns: None, sqs: None, shared: None };
    while let Some((event, targets)) = rx.recv().await {
        for t in targets {
            let mut last = String::new();
            let mut sent = false;
            let mut wait = BACKOFF;
            for attempt in 1..=ATTEMPTS {
                let put = put(&mut c, &cfg, t, &event);
                match tokio::time::timeout(PUT_TIMEOUT, put).await {
                    Ok(Ok(())) => {
                        sent = true;
                        break;
                    }
                    Ok(Err(e)) => last = e,
                    Err(_) => last = format!("no answer within {PUT_TIMEOUT:?}"),
                }
                if attempt < ATTEMPTS {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
            let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
            if sent {
                r.inc(names::STREAM_EVENTS_SENT, &Labels::default());
            } else {
                r.inc(names::STREAM_EVENTS_FAILED, &Labels::default());
                drop(r);
                tracing::warn!(target = ?t, error = %last, attempts = ATTEMPTS, "streaming event not delivered");
            }
        }
    }
}

/// One put to one target.
async fn put(
    c: &mut Clients,
    cfg: &StreamingConfig,
    t: NotificationTarget,
    event: &str,
) -> Result<(), String> {
    match t {
        NotificationTarget::EventBridge => {
            if c.eventbridge.is_none() {
                let mut b = aws_sdk_eventbridge::config::Builder::from(&c.shared(cfg).await);
                if let Some(e) = &cfg.eventbridge_endpoint {
                    b = b.endpoint_url(e);
                }
                c.eventbridge = Some(aws_sdk_eventbridge::Client::from_conf(b.build()));
            }
            let Some(client) = &c.eventbridge else { return Err("no client".into()) };
            let v: serde_json::Value = serde_json::from_str(event).map_err(|e| e.to_string())?;
            let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source(&cfg.eventbridge_source)
                .detail_type(v["detail-type"].as_str().unwrap_or_default())
                .detail(v["detail"].to_string())
                .event_bus_name(&cfg.event_bus_name)
                .build();
            let out = client.put_events().entries(entry).send().await;
            let out =
                out.map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
            if out.failed_entry_count() > 0 {
                let why = out
                    .entries()
                    .iter()
                    .find_map(|e| e.error_message().map(str::to_string))
                    .unwrap_or_else(|| "an entry failed".into());
                return Err(why);
            }
            Ok(())
        }
        NotificationTarget::Sns => {
            if c.sns.is_none() {
                let mut b = aws_sdk_sns::config::Builder::from(&c.shared(cfg).await);
                if let Some(e) = &cfg.sns_endpoint {
                    b = b.endpoint_url(e);
                }
                c.sns = Some(aws_sdk_sns::Client::from_conf(b.build()));
            }
            let Some(client) = &c.sns else { return Err("no client".into()) };
            let topic = cfg.sns_topic_arn.as_deref().ok_or("no streaming.sns_topic_arn")?;
            let out = client.publish().topic_arn(topic).message(event).send().await;
            out.map_err(|e| aws_sdk_sns::error::DisplayErrorContext(e).to_string())?;
            Ok(())
        }
        NotificationTarget::Sqs => {
            if c.sqs.is_none() {
                let mut b = aws_sdk_sqs::config::Builder::from(&c.shared(cfg).await);
                if let Some(e) = &cfg.sqs_endpoint {
                    b = b.endpoint_url(e);
                }
                c.sqs = Some(aws_sdk_sqs::Client::from_conf(b.build()));
            }
            let Some(client) = &c.sqs else { return Err("no client".into()) };
            let queue = cfg.sqs_queue_url.as_deref().ok_or("no streaming.sqs_queue_url")?;
            client
                .send_message()
                .queue_url(queue)
                .message_body(event)
                .send()
                .await
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
            Ok(())
        }
    }
}
