//! The KVS sink (`streaming.sink = "kvs"`): one tokio task per stream drives the sans-IO
//! [`Upload`] of the `streaming` crate over PutMedia connections ([`super::putmedia`]).
//!
//! A relay thread opens a stream when a leg's first audio is muxed ([`KvsSink::open`]): it
//! hands over the stream head and then sends the muxed bytes, split where fragments begin, as
//! [`Piece`]s on a bounded channel it never waits on. The task takes a stream from the control
//! plane (a pooled one, or a new one with the voice connector's retention), opens PutMedia
//! connections as the upload asks (the data endpoint cached by the control plane, SigV4 on the
//! standard credential chain), writes what the upload hands out as the connection takes it,
//! and feeds the acknowledgements back. The upload's buffer is bounded, so a slow or dead
//! endpoint costs memory up to `streaming.max_buffered_kib` per stream and never reaches the
//! relay or the signalling.
//!
//! What the task learns becomes the stream's reports: `Started` at the first acknowledged
//! fragment (its number is the event's `startFragmentNumber`, the ARN CreateStream gave),
//! `Ended` once every fragment is acknowledged (`currentFragmentNumber`: the last one), or
//! `Failed` with the reason when the upload gives up. The stream then goes back to the pool.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
use bytes::Bytes;
use streaming::muxer::Chunk;
use streaming::upload::{Upload, UploadConfig, UploadEvent, UploadStats, ACK_EVENTS};
use tokio::sync::mpsc;

use super::control::{ControlPlane, StreamHandle};
use super::putmedia::{ConnEvent, Connection};
use crate::driver::clock::Clock;
use crate::http::client::Target;
use crate::stream::report::{CallClosed, StreamFacts, StreamReport};

/// Pieces a stream's channel holds (about a second of audio each) before the relay thread
/// drops instead of waiting.
pub const PIECES: usize = 64;
/// Longest wait for a stream from the control plane, an endpoint, or credentials.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// A piece of a stream, from its relay thread.
#[derive(Debug)]
pub enum Piece {
    /// Muxed bytes; `fragment` is the timecode of the fragment they begin, if they begin one.
    Chunk { fragment: Option<u64>, bytes: Vec<u8> },
    /// The leg ended at `at_ms` (epoch ms); `failure` says why, if it stopped streaming
    /// before (a codec that is not G.711).
    End { at_ms: u64, failure: Option<String> },
}

/// A stream to upload: what the relay thread knows when a leg's audio starts.
pub struct StreamJob {
    pub call: u64,
    pub is_caller: bool,
    pub voice_connector_id: String,
    pub retention_hours: u32,
    /// The stream head (EBML header, Segment, Info, Tracks) every connection starts with.
    pub head: Vec<u8>,
    /// The wall time (epoch ms) of the leg's first audio.
    pub start_ms: u64,
    /// A recording session's stream: its m-line index and label.
    pub sdp: Option<(usize, String)>,
    /// Kept until the task ends, so the call's `Closed` report follows this stream's last.
    pub closed: Arc<CallClosed>,
}

/// What every stream task shares.
pub struct KvsContext {
    pub control: ControlPlane,
    pub credentials: Option<SharedCredentialsProvider>,
    pub region: String,
    pub upload: UploadConfig,
    pub clock: Clock,
    pub reports: mpsc::UnboundedSender<StreamReport>,
    pub registry: Arc<Mutex<metrics::Registry>>,
}

/// The relay threads' end of the KVS sink.
#[derive(Clone)]
pub struct KvsSink {
    ctx: Arc<KvsContext>,
    runtime: tokio::runtime::Handle,
}

impl KvsSink {
    pub fn new(ctx: KvsContext, runtime: tokio::runtime::Handle) -> KvsSink {
        KvsSink { ctx: Arc::new(ctx), runtime }
    }

    /// Starts the stream's task; the pieces go to the sender returned.
    pub fn open(&self, job: StreamJob) -> mpsc::Sender<Piece> {
        let (tx, rx) = mpsc::channel(PIECES);
        let ctx = self.ctx.clone();
        self.runtime.spawn(run(ctx, job, rx));
        tx
    }
}

fn wall_ms(clock: Clock) -> u64 {
    let wall = clock.wall();
    wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl KvsContext {
    fn report(&self, r: StreamReport) {
        // Fails only when the driver is gone (the process is stopping).
        let _ = self.reports.send(r);
    }

    fn count(&self, metric: metrics::names::Metric, kind: &str, n: u64) {
        if n > 0 {
            let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
            let labels = if kind.is_empty() {
                metrics::Labels::default()
            } else {
                metrics::Labels::kind(kind)
            };
            r.add(metric, &labels, n as f64);
        }
    }

    /// Adds to the metrics what the upload did since `last`.
    fn count_stats(&self, now: &UploadStats, last: &mut UploadStats) {
        use metrics::names;
        if now == last {
            return;
        }
        self.count(names::STREAM_BYTES_SENT, "", now.bytes_sent - last.bytes_sent);
        self.count(names::STREAM_CONNECTIONS, "", now.connections - last.connections);
        self.count(names::STREAM_ROTATIONS, "", now.rotations - last.rotations);
        self.count(names::STREAM_DROPPED_BYTES, "", now.dropped_bytes - last.dropped_bytes);
        self.count(names::STREAM_ERRORS, "parse", now.ack_parse_errors - last.ack_parse_errors);
        self.count(names::STREAM_ERRORS, "ack_timeout", now.ack_timeouts - last.ack_timeouts);
        for (i, e) in ACK_EVENTS.iter().enumerate() {
            self.count(names::STREAM_ACKS, e.as_str(), now.acks[i] - last.acks[i]);
        }
        *last = *now;
    }

    /// A PutMedia request for `stream`: where, and its signed headers.
    async fn request(
        &self,
        stream: &StreamHandle,
        start_ms: u64,
    ) -> Result<(Target, Vec<(String, String)>), String> {
        let now = self.clock.now();
        let endpoint =
            tokio::time::timeout(CONTROL_TIMEOUT, self.control.data_endpoint(&stream.name, now))
                .await
                .map_err(|_| "GetDataEndpoint did not answer in time".to_string())?
                .map_err(|e| e.to_string())?;
        let target = Target::parse(&endpoint)
            .map_err(|e| format!("the PutMedia endpoint `{endpoint}`: {e}"))?;
        let provider = self
            .credentials
            .as_ref()
            .ok_or("no AWS credentials: the standard chain has no provider")?;
        let credentials = tokio::time::timeout(CONTROL_TIMEOUT, provider.provide_credentials())
            .await
            .map_err(|_| "the AWS credentials did not come in time".to_string())?
            // The chain's errors name where it looked, never a secret.
            .map_err(|e| format!("no AWS credentials: {e}"))?;
        let headers = super::sign::putmedia_headers(
            &endpoint,
            &stream.name,
            start_ms,
            &credentials,
            &self.region,
            self.clock.wall(),
        )
        .map_err(|e| e.to_string())?;
        Ok((target, headers))
    }
}

/// One stream's life. See the module documentation.
async fn run(ctx: Arc<KvsContext>, job: StreamJob, mut pieces: mpsc::Receiver<Piece>) {
    let StreamJob {
        call,
        is_caller,
        voice_connector_id,
        retention_hours,
        head,
        start_ms,
        sdp,
        closed,
    } = job;
    let _closed = closed;
    let failed = |ctx: &KvsContext, started: bool, reason: String| {
        ctx.count(metrics::names::STREAMS_FAILED, "", 1);
        tracing::warn!(call, is_caller, %reason, "call audio streaming to KVS failed");
        let at_ms = wall_ms(ctx.clock);
        ctx.report(StreamReport::Failed { call, is_caller, started, reason, at_ms });
    };
    let stream = match tokio::time::timeout(
        CONTROL_TIMEOUT,
        ctx.control.acquire(&voice_connector_id, retention_hours, rand::random()),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            ctx.count(metrics::names::STREAM_ERRORS, "control", 1);
            return failed(&ctx, false, e.to_string());
        }
        Err(_) => {
            ctx.count(metrics::names::STREAM_ERRORS, "control", 1);
            return failed(&ctx, false, "the KVS control plane did not answer in time".into());
        }
    };
    tracing::debug!(call, is_caller, stream = %stream.name, "streaming call audio to KVS");
    let mut cfg = ctx.upload.clone();
    cfg.persisted_acks = retention_hours > 0;
    let mut up = Upload::new(cfg, head);
    let (events_tx, mut events) = mpsc::channel(16);
    let mut conn: Option<Connection> = None;
    // The open connection's body was ended (its response ending is then no failure).
    let mut body_ended = false;
    let mut tag = 0u64;
    let mut started: Option<String> = None;
    let mut end: Option<(u64, Option<String>)> = None;
    let mut pieces_open = true;
    let mut frame = Vec::new();
    let mut counted = UploadStats::default();
    let facts = |first: &str| StreamFacts {
        is_caller,
        name: stream.name.clone(),
        arn: Some(stream.arn.clone()),
        start_ms,
        start_fragment: first.to_string(),
        sdp: sdp.clone(),
    };
    let outcome: Result<(), String> = 'life: loop {
        // What the upload asked for, and what it has to write, until it has nothing more.
        loop {
            while let Some(e) = up.poll_event() {
                match e {
                    UploadEvent::Connect => {
                        tag += 1;
                        conn = None;
                        body_ended = false;
                        match ctx.request(&stream, start_ms).await {
                            Ok((target, headers)) => {
                                conn =
                                    Some(Connection::open(target, headers, tag, events_tx.clone()));
                            }
                            Err(reason) => {
                                ctx.count(metrics::names::STREAM_ERRORS, "connect", 1);
                                tracing::warn!(call, stream = %stream.name, %reason, "PutMedia cannot be opened");
                                up.connect_failed(ctx.clock.now(), None, &reason);
                            }
                        }
                    }
                    UploadEvent::Abort { reason } => {
                        conn = None;
                        tracing::warn!(call, stream = %stream.name, %reason, "PutMedia connection dropped");
                        up.closed(ctx.clock.now(), &reason);
                    }
                    UploadEvent::EndBody => {
                        body_ended = true;
                        if let Some(c) = &mut conn {
                            c.end_body();
                        }
                    }
                    UploadEvent::Acknowledged { fragment_number: Some(n), first: true, .. } => {
                        if started.is_none() {
                            ctx.report(StreamReport::Started { call, stream: facts(&n) });
                            started = Some(n);
                        }
                    }
                    UploadEvent::Acknowledged { .. } => {}
                    UploadEvent::ErrorAck { error_id } => {
                        ctx.count(metrics::names::STREAM_ERRORS, &error_id.to_string(), 1);
                    }
                    UploadEvent::Failed { reason } => break 'life Err(reason),
                    UploadEvent::Done => break 'life Ok(()),
                }
            }
            if let Some(c) = &conn {
                while up.wants_transmit() {
                    let Some(permit) = c.reserve() else { break };
                    frame.clear();
                    up.poll_transmit(ctx.clock.now(), &mut frame);
                    if !frame.is_empty() {
                        permit.send(Bytes::copy_from_slice(&frame));
                    }
                }
            }
            if !up.has_event() {
                break;
            }
        }
        ctx.count_stats(&up.stats(), &mut counted);
        let timeout =
            up.poll_timeout().map(|t| tokio::time::Instant::from_std(ctx.clock.to_std(t)));
        let writable = conn.as_ref().filter(|_| up.wants_transmit());
        tokio::select! {
            p = pieces.recv(), if pieces_open => match p {
                Some(Piece::Chunk { fragment, bytes }) => {
                    up.push(ctx.clock.now(), Chunk { fragment, bytes: &bytes });
                }
                Some(Piece::End { at_ms, failure }) => end = Some((at_ms, failure)),
                None => {
                    pieces_open = false;
                    up.finish(ctx.clock.now());
                }
            },
            Some((t, ev)) = events.recv(), if true => {
                let now = ctx.clock.now();
                match ev {
                    // News of a connection already dropped.
                    _ if t != tag => {}
                    ConnEvent::Open => up.connected(now),
                    ConnEvent::Data(b) => up.receive(now, &b),
                    ConnEvent::Refused { status, reason } => {
                        conn = None;
                        let kind = status.as_ref().map_or("connect".to_string(), |(s, _)| format!("http_{s}"));
                        ctx.count(metrics::names::STREAM_ERRORS, &kind, 1);
                        ctx.control.invalidate_endpoint(&stream.name);
                        tracing::warn!(call, stream = %stream.name, %reason, "PutMedia refused");
                        up.connect_failed(now, status.as_ref().map(|(s, t)| (*s, t.as_str())), &reason);
                    }
                    ConnEvent::Ended { reason } => {
                        conn = None;
                        if !body_ended {
                            ctx.count(metrics::names::STREAM_ERRORS, "disconnect", 1);
                            tracing::warn!(call, stream = %stream.name, %reason, "PutMedia connection ended early");
                        }
                        up.closed(now, &reason);
                    }
                }
            },
            _ = async { if let Some(t) = timeout { tokio::time::sleep_until(t).await } }, if timeout.is_some() => {
                up.handle_timeout(ctx.clock.now());
            },
            _ = async { if let Some(c) = writable { c.ready().await } }, if writable.is_some() => {},
        }
    };
    drop(conn);
    ctx.count_stats(&up.stats(), &mut counted);
    let relay_failure = end.as_mut().and_then(|e| e.1.take());
    match (outcome, started) {
        (Err(reason), started) => {
            // Not pooled: the stream may be what failed (deleted, not authorised).
            let reason = relay_failure.unwrap_or(reason);
            failed(&ctx, started.is_some(), reason);
        }
        (Ok(()), started) => {
            if let Some(reason) = relay_failure {
                failed(&ctx, started.is_some(), reason);
            } else if let Some(first) = started {
                let end_ms = end.map_or_else(|| wall_ms(ctx.clock), |e| e.0);
                let current_fragment = up.last_fragment_number().unwrap_or(&first).to_string();
                ctx.report(StreamReport::Ended {
                    call,
                    stream: facts(&first),
                    end_ms,
                    current_fragment,
                });
            } else {
                failed(&ctx, false, "KVS acknowledged no fragment of the stream".into());
            }
            ctx.control.release(stream);
        }
    }
}
