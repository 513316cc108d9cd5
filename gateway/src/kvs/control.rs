//! The KVS control plane through `aws-sdk-kinesisvideo`: a stream for each call leg, named
//! `ChimeVoiceConnector-<VoiceConnectorId>-<uuid>` (formats.md §9) and created with the voice
//! connector's `DataRetentionInHours`, waited for until `ACTIVE`; its PutMedia endpoint from
//! `GetDataEndpoint(PUT_MEDIA)`, cached for [`ENDPOINT_TTL`] (KVS's advice: refresh every 45
//! minutes, reload on failure). Streams whose call ended go back to a pool per voice connector
//! and retention and are reused by later calls (consumers split calls on the `TransactionId`
//! tag), so a busy gateway does not create a stream per call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_kinesisvideo::types::{ApiName, Status as StreamStatus};
use common::Instant;

/// How long a data endpoint is used before it is asked for again.
pub const ENDPOINT_TTL: Duration = Duration::from_secs(40 * 60);
/// Idle streams kept per voice connector and retention.
pub const POOL_PER_CONNECTOR: usize = 256;
/// DescribeStream polls while a stream is `CREATING`, and the pause between them.
const ACTIVE_POLLS: u32 = 50;
const ACTIVE_POLL_PAUSE: Duration = Duration::from_millis(200);
/// `MediaType` of the streams (the PCM the muxer writes).
pub const MEDIA_TYPE: &str = "audio/L16";

/// Why a stream could not be had. The messages name the stream and the AWS error, never
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("CreateStream {stream}: {error}")]
    Create { stream: String, error: String },
    #[error("DescribeStream {stream}: {error}")]
    Describe { stream: String, error: String },
    #[error("stream {stream} is {status}, not ACTIVE")]
    NotActive { stream: String, status: String },
    #[error("GetDataEndpoint {stream}: {error}")]
    Endpoint { stream: String, error: String },
}

/// A stream ready for PutMedia.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHandle {
    pub name: String,
    pub arn: String,
    /// The voice connector and retention it was made for (its pool).
    pub voice_connector_id: String,
    pub retention_hours: u32,
}

/// The settings of the control plane (from `[streaming]`).
#[derive(Debug, Clone, Default)]
pub struct ControlSettings {
    pub region: Option<String>,
    /// The control-plane endpoint (tests, KVS-compatible services).
    pub endpoint: Option<String>,
    /// The PutMedia endpoint instead of GetDataEndpoint's answer.
    pub data_endpoint: Option<String>,
}

/// See the module documentation. Shared by every stream's upload task (`&self`): the
/// endpoint cache and the pool sit behind a lock that is never held across a request.
pub struct ControlPlane {
    client: aws_sdk_kinesisvideo::Client,
    data_endpoint: Option<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Stream name → (its data endpoint, when it was fetched).
    endpoints: HashMap<String, (String, Instant)>,
    /// (voice connector, retention) → idle streams.
    pool: HashMap<(String, u32), Vec<StreamHandle>>,
    created: u64,
    reused: u64,
}

fn error_text<E: std::error::Error>(e: E) -> String {
    aws_sdk_kinesisvideo::error::DisplayErrorContext(e).to_string()
}

impl ControlPlane {
    /// A client on the standard credential chain (`settings.region` overrides the chain's
    /// region; `us-east-1` when neither says).
    pub async fn new(settings: &ControlSettings) -> ControlPlane {
        let shared = crate::aws::shared_config(settings.region.as_deref()).await;
        ControlPlane::from_shared(&shared, settings)
    }

    /// A client on an AWS configuration already loaded (the gateway loads one for every
    /// client).
    pub fn from_shared(shared: &aws_config::SdkConfig, settings: &ControlSettings) -> ControlPlane {
        let mut conf = aws_sdk_kinesisvideo::config::Builder::from(shared);
        if let Some(e) = &settings.endpoint {
            conf = conf.endpoint_url(e);
        }
        ControlPlane {
            client: aws_sdk_kinesisvideo::Client::from_conf(conf.build()),
            data_endpoint: settings.data_endpoint.clone(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Idle streams in the pool of `vc` with `retention_hours`.
    pub fn idle(&self, vc: &str, retention_hours: u32) -> usize {
        self.state().pool.get(&(vc.to_string(), retention_hours)).map_or(0, Vec::len)
    }

    /// Streams created so far, and streams taken from the pool.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.state();
        (s.created, s.reused)
    }

    /// A stream for one leg of a call of `vc`: an idle one of the pool, or a new one (`random`
    /// makes its uuid) created with `retention_hours` and waited for until ACTIVE.
    pub async fn acquire(
        &self,
        vc: &str,
        retention_hours: u32,
        random: [u8; 16],
    ) -> Result<StreamHandle, ControlError> {
        {
            let mut s = self.state();
            if let Some(h) = s.pool.get_mut(&(vc.to_string(), retention_hours)).and_then(Vec::pop) {
                s.reused += 1;
                return Ok(h);
            }
        }
        let name = crate::stream::call::stream_name(vc, random);
        let created = self
            .client
            .create_stream()
            .stream_name(&name)
            .media_type(MEDIA_TYPE)
            .data_retention_in_hours(retention_hours as i32)
            .send()
            .await
            .map_err(|e| ControlError::Create { stream: name.clone(), error: error_text(e) })?;
        let arn = created.stream_arn().unwrap_or_default().to_string();
        self.wait_active(&name).await?;
        self.state().created += 1;
        Ok(StreamHandle { name, arn, voice_connector_id: vc.to_string(), retention_hours })
    }

    async fn wait_active(&self, name: &str) -> Result<(), ControlError> {
        let mut last = String::from("unknown");
        for _ in 0..ACTIVE_POLLS {
            let d = self.client.describe_stream().stream_name(name).send().await.map_err(|e| {
                ControlError::Describe { stream: name.into(), error: error_text(e) }
            })?;
            match d.stream_info().and_then(|i| i.status()) {
                Some(StreamStatus::Active) => return Ok(()),
                Some(StreamStatus::Creating | StreamStatus::Updating) => {}
                Some(other) => {
                    return Err(ControlError::NotActive {
                        stream: name.into(),
                        status: other.as_str().into(),
                    })
                }
                None => {}
            }
            last = d
                .stream_info()
                .and_then(|i| i.status())
                .map_or("unknown".into(), |s| s.as_str().to_string());
            tokio::time::sleep(ACTIVE_POLL_PAUSE).await;
        }
        Err(ControlError::NotActive { stream: name.into(), status: last })
    }

    /// The PutMedia endpoint of `stream` (no path): the override, the cached answer while it
    /// is younger than [`ENDPOINT_TTL`], or a new `GetDataEndpoint(PUT_MEDIA)`.
    pub async fn data_endpoint(&self, stream: &str, now: Instant) -> Result<String, ControlError> {
        if let Some(e) = &self.data_endpoint {
            return Ok(e.clone());
        }
        if let Some((e, at)) = self.state().endpoints.get(stream) {
            if now - *at < ENDPOINT_TTL {
                return Ok(e.clone());
            }
        }
        let out = self
            .client
            .get_data_endpoint()
            .stream_name(stream)
            .api_name(ApiName::PutMedia)
            .send()
            .await
            .map_err(|e| ControlError::Endpoint { stream: stream.into(), error: error_text(e) })?;
        let Some(e) = out.data_endpoint().filter(|e| !e.is_empty()) else {
            return Err(ControlError::Endpoint {
                stream: stream.into(),
                error: "no DataEndpoint in the answer".into(),
            });
        };
        self.state().endpoints.insert(stream.to_string(), (e.to_string(), now));
        Ok(e.to_string())
    }

    /// Forgets `stream`'s endpoint (a connection to it failed): the next use asks again.
    pub fn invalidate_endpoint(&self, stream: &str) {
        self.state().endpoints.remove(stream);
    }

    /// A stream whose call ended goes back to its pool (dropped when the pool is full).
    pub fn release(&self, h: StreamHandle) {
        let mut s = self.state();
        let pool = s.pool.entry((h.voice_connector_id.clone(), h.retention_hours)).or_default();
        if pool.len() < POOL_PER_CONNECTOR {
            pool.push(h);
        } else {
            s.endpoints.remove(&h.name);
        }
    }
}
