//! Start-up: the data directory, the SIP listeners, the B2BUA with its router and media
//! anchor, the CDR recorder and its uploader, the SIP message log, the HTTP server, the EMF
//! writer and the media threads, wired into a [`Gateway`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connector::config::{Config, S3Target, Validated};
use connector::policy::ConfigRouter;
use metrics::Registry;
use sip::b2bua::CoreConfig;
use sip::message::ParseLimits;
use sip::transaction::TimerConfig;
use sip::Transport;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::clock::Clock;
use super::shutdown::{signal, Admission, Drain};
use super::write_ahead::WriteAhead;
use super::{settings, Gateway, Signals, SPOOL_WAIT_LIMIT};
use crate::observe::call_metrics::CallMetrics;
use crate::observe::facts::CallTable;
use crate::relay::anchor::MediaAnchor;
use crate::relay::thread as media_thread;
use crate::signalling::conns::{Conns, Senders};
use crate::signalling::transport::{self, Inbound, StreamSettings};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Cert(#[from] crate::signalling::certs::CertError),
    #[error("cannot start the media thread: {0}")]
    Media(std::io::Error),
    #[error("cannot create data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Spool(#[from] crate::cdr::spool::SpoolError),
    #[error("cannot start the SIP message log writer: {0}")]
    SipLog(std::io::Error),
    #[error("cannot start the CDR spool thread: {0}")]
    SpoolThread(std::io::Error),
    #[error("cannot start the stream writer in {0}: {1}")]
    Streams(String, std::io::Error),
    #[error("cannot open the streaming events file {0}: {1}")]
    StreamEvents(String, std::io::Error),
    #[error("streaming.webhook_url: {0}")]
    Webhook(crate::http::client::ClientError),
}

fn bind_error(
    what: &'static str,
    addr: std::net::SocketAddr,
) -> impl FnOnce(std::io::Error) -> StartError {
    move |source| StartError::Bind { what, addr, source }
}

/// Starts every part of the gateway for `v`; `config_path` is what SIGHUP reloads.
pub async fn start(
    v: Validated,
    config_path: Option<std::path::PathBuf>,
    clock: Clock,
) -> Result<Gateway, StartError> {
    connector::policy::numbering::warm_up();
    let cfg = &v.config;
    std::fs::create_dir_all(&cfg.data.dir)
        .map_err(|e| StartError::DataDir(cfg.data.dir.display().to_string(), e))?;
    let (tx, rx) = mpsc::channel::<Inbound>(8192);
    let limits = ParseLimits {
        max_message_size: cfg.sip.max_message_bytes,
        max_headers: cfg.sip.max_headers,
    };
    let client = crate::signalling::certs::client_config(
        cfg.sip.tls_ca_file.as_deref(),
        cfg.sip.tls_verify_server,
    )?;
    if !cfg.sip.tls_verify_server {
        tracing::warn!("tls_verify_server = false: outbound TLS accepts any server certificate");
    }
    let settings = StreamSettings {
        limits,
        idle: Duration::from_secs(cfg.sip.idle_connection_secs),
        max_connections: cfg.sip.max_connections,
        message_timeout: Duration::from_secs(cfg.sip.message_timeout_secs),
        write_timeout: Duration::from_secs(cfg.sip.write_timeout_secs),
        open: Arc::new(AtomicUsize::new(0)),
        next_id: Arc::new(AtomicU64::new(0)),
        tls_client: Some(client),
        clock,
    };
    let mut local = HashMap::new();
    let mut udp = None;
    if let Some(addr) = v.listen_udp {
        let s = UdpSocket::bind(addr).await.map_err(bind_error("SIP UDP", addr))?;
        // A deep receive queue absorbs bursts (and floods) while the driver catches up; the
        // kernel caps it at net.core.rmem_max.
        if let Err(e) =
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBuf, &(8 << 20))
        {
            tracing::debug!(error = %e, "SIP UDP receive buffer left at the default");
        }
        if let Err(e) = crate::signalling::udp_errors::enable(&s, addr.is_ipv6()) {
            tracing::warn!(error = %e, "ICMP errors on the SIP UDP socket are not reported; dead UDP next hops fail after Timer B");
        }
        let s = Arc::new(s);
        local.insert(Transport::Udp, addr);
        tokio::spawn(transport::udp_loop(s.clone(), tx.clone()));
        udp = Some(s);
        tracing::info!(%addr, "SIP listening on UDP");
    }
    if let Some(addr) = v.listen_tcp {
        let l = TcpListener::bind(addr).await.map_err(bind_error("SIP TCP", addr))?;
        local.insert(Transport::Tcp, addr);
        tokio::spawn(transport::accept_loop(l, None, settings.clone(), tx.clone()));
        tracing::info!(%addr, "SIP listening on TCP");
    }
    if let Some(addr) = v.listen_tls {
        let configured = cfg.sip.tls_certificate.as_deref().zip(cfg.sip.tls_private_key.as_deref());
        let (cert, key, generated) = crate::signalling::certs::ensure(configured, &cfg.data.dir)?;
        if generated {
            tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
        }
        let acceptor =
            tokio_rustls::TlsAcceptor::from(crate::signalling::certs::server_config(&cert, &key)?);
        let l = TcpListener::bind(addr).await.map_err(bind_error("SIP TLS", addr))?;
        local.insert(Transport::Tls, addr);
        tokio::spawn(transport::accept_loop(l, Some(acceptor), settings.clone(), tx.clone()));
        tracing::info!(%addr, cert = %cert.display(), "SIP listening on TLS");
    }
    let registry = Arc::new(Mutex::new(Registry::new()));
    settings::register_labels(cfg, &registry);
    let core_cfg = CoreConfig {
        timers: TimerConfig {
            t1: Duration::from_millis(cfg.sip.t1_ms),
            t2: Duration::from_millis(cfg.sip.t2_ms),
            t4: Duration::from_millis(cfg.sip.t4_ms),
        },
        limits,
        local,
        user_agent: cfg.sip.user_agent.clone(),
        max_calls: cfg.sip.max_calls,
        max_transactions: cfg.sip.max_transactions,
        seed: rand::random(),
    };
    let mut anchor = MediaAnchor::new(v.media_address, v.media_ports)
        .with_required_encryption(settings::encrypted_voice_connectors(cfg));
    anchor.set_media_source_learning(settings::learning_voice_connectors(cfg));
    anchor.set_streaming(v.streaming.clone());
    let router = ConfigRouter::new(&v, rand::random());
    let health = router.health();
    let mut recording_media =
        crate::record::anchor::RecordingMedia::new(anchor.ports(), v.streaming.clone());
    recording_media.set_required_encryption(settings::encrypted_voice_connectors(cfg));
    let recording = super::RecordingServer::new(
        crate::record::admit::RecordingAdmission::from_config(&v),
        recording_media,
        cfg.sip.max_calls,
        super::FIRST_RECORDING_SESSION,
    );
    let client =
        siprec::client::RecordingClient::new(crate::record::fork::ForkMedia::new(anchor.ports()));
    let mut meet_anchor = crate::meet::anchor::MeetingAnchor::new(anchor.ports());
    meet_anchor.set_media_source_learning(v.meet.media_source_learning);
    let meetings = meeting::uas::MeetingUas::new(
        crate::meet::policy::ConfigMeetPolicy::new(v.meet.clone()),
        meet_anchor,
        cfg.sip.max_calls,
        super::FIRST_MEETING_CALL,
    );
    let b2bua = sip::b2bua::App::new(&core_cfg, router, anchor);
    let pick = super::AppPick { meet: v.meet.clone() };
    let core = sip::endpoint::Stack::of(
        core_cfg.endpoint(),
        sip::endpoint::Quartet {
            first: b2bua,
            second: recording,
            third: client,
            fourth: meetings,
            pick,
        },
    );
    let sinks = settings::record_sinks(cfg, &registry);
    let recorder = start_cdrs(cfg, v.cdr_bucket.clone(), &registry, clock).await?;
    let mut siplog = crate::observe::siplog::SipLog::start(
        cfg.data.dir.join("ChimeVoiceConnectorSipMessages"),
        crate::observe::siplog::Rotation {
            max_bytes: cfg.data.sip_log_max_bytes,
            keep: cfg.data.sip_log_keep,
        },
        clock.monotonic(),
    )
    .map_err(StartError::SipLog)?;
    siplog.configure(settings::sip_logging(cfg));
    if let Some(addr) = v.metrics_listen {
        let l = TcpListener::bind(addr).await.map_err(bind_error("metrics", addr))?;
        let state =
            crate::http::State { registry: registry.clone(), health: health.clone(), clock };
        tokio::spawn(crate::http::serve(l, state));
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
    }
    if let Some(path) = &cfg.metrics.emf_file {
        let period = Duration::from_secs(cfg.metrics.emf_period_secs);
        tokio::spawn(crate::observe::emf::run(
            cfg.data.dir.join(path),
            period,
            registry.clone(),
            clock,
        ));
    }
    let timing = media::relay::Timing {
        record_period: Duration::from_secs(cfg.media.record_period_secs),
        inactivity: (cfg.media.inactivity_timeout_secs > 0)
            .then(|| Duration::from_secs(cfg.media.inactivity_timeout_secs)),
        ntp_at_origin: clock.ntp_at_origin(),
    };
    let (silent_tx, silent_rx) = mpsc::channel::<u64>(64);
    let (reports_tx, stream_rx) = mpsc::unbounded_channel();
    let streamer = crate::stream::call::Streamer {
        sink: stream_sink(cfg, clock, &reports_tx, &registry).await?,
        settings: crate::stream::StreamSettings::from_config(&cfg.streaming),
        clock,
        reports: reports_tx,
    };
    let stream_events = stream_events(&v, registry.clone())?;
    let media = media_thread::start(clock, timing, silent_tx, registry.clone(), streamer.clone())
        .map_err(StartError::Media)?;
    let (meet_tx, meet_rx) = mpsc::unbounded_channel();
    let meet = crate::meet::thread::start(crate::meet::thread::Setup {
        clock,
        data_dir: cfg.data.dir.clone(),
        events: meet_tx,
        streamer: streamer.clone(),
        registry: registry.clone(),
        records: settings::meeting_record_sink(cfg, &registry),
        record_period: Duration::from_secs(cfg.media.record_period_secs),
    })
    .map_err(StartError::Media)?;
    if let Some(domain) = v.meet.domains.first() {
        tracing::info!(%domain, meetings = v.meet.meetings.len(), "meeting dial-in on sip:<id>@{domain}");
    }
    let admission = Admission::new(cfg.cdr.refuse_calls_while_spool_fails);
    let signals = Signals {
        term: signal(tokio::signal::unix::SignalKind::terminate()),
        int: signal(tokio::signal::unix::SignalKind::interrupt()),
        hup: signal(tokio::signal::unix::SignalKind::hangup()),
    };
    tracing::info!(voice_connectors = cfg.voice_connectors.len(), "voicegw started");
    Ok(Gateway {
        table: CallTable::new(settings::regions(cfg)),
        call_metrics: CallMetrics::new(registry.clone()),
        durable: recorder.durable(),
        core,
        rx,
        senders: Senders { udp, conns: Conns::default(), settings, inbound: tx },
        registry,
        sinks,
        recorder,
        siplog,
        inbound_log: Vec::new(),
        media,
        silent_rx,
        stream_rx,
        stream_events,
        streams_active: 0,
        write_ahead: WriteAhead::new(SPOOL_WAIT_LIMIT),
        admission,
        drain: Drain::default(),
        signals,
        garbage_closes: 0,
        outgoing: Vec::with_capacity(256),
        clock,
        recording_targets: settings::recording_targets(&v),
        meet,
        meet_rx,
        meet_recordings: HashMap::new(),
        next_meet_recording: super::FIRST_MEETING_RECORDING,
        running: v,
        config_path,
    })
}

/// Where call audio streams go: local files (the default) or Kinesis Video Streams.
async fn stream_sink(
    cfg: &connector::config::Config,
    clock: Clock,
    reports: &mpsc::UnboundedSender<crate::stream::report::StreamReport>,
    registry: &Arc<Mutex<metrics::Registry>>,
) -> Result<crate::stream::call::Sink, StartError> {
    use crate::kvs::{control, uploader};
    use crate::stream::call::Sink;
    let s = &cfg.streaming;
    if s.sink == connector::config::StreamSink::Local {
        let dir = cfg.streaming_dir();
        return crate::stream::local::LocalSink::start(dir.clone())
            .map(Sink::Local)
            .map_err(|e| StartError::Streams(dir.display().to_string(), e));
    }
    let shared = crate::aws::shared_config(s.region.as_deref()).await;
    let settings = control::ControlSettings {
        region: s.region.clone(),
        endpoint: s.kvs_endpoint.clone(),
        data_endpoint: s.data_endpoint.clone(),
    };
    let upload = streaming::upload::UploadConfig {
        rotate_after: Duration::from_secs(u64::from(s.putmedia_rotate_secs)),
        give_up_after: Duration::from_secs(u64::from(s.putmedia_give_up_secs)),
        max_buffered_bytes: s.max_buffered_kib as usize * 1024,
        ..streaming::upload::UploadConfig::default()
    };
    let region = shared.region().map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
    tracing::info!(
        %region,
        control = s.kvs_endpoint.as_deref().unwrap_or("the region's"),
        data = s.data_endpoint.as_deref().unwrap_or("GetDataEndpoint's"),
        "call audio streams go to Kinesis Video Streams"
    );
    let ctx = uploader::KvsContext {
        control: control::ControlPlane::from_shared(&shared, &settings),
        credentials: shared.credentials_provider(),
        region,
        upload,
        clock,
        reports: reports.clone(),
        registry: registry.clone(),
    };
    Ok(Sink::Kvs(uploader::KvsSink::new(ctx, tokio::runtime::Handle::current())))
}

/// The streaming status events and their sinks.
fn stream_events(
    v: &Validated,
    registry: Arc<Mutex<Registry>>,
) -> Result<crate::observe::stream_events::StreamEvents, StartError> {
    use crate::observe::event_sinks::EventSinks;
    let cfg = &v.config;
    let webhook = match &cfg.streaming.webhook_url {
        Some(u) => Some(crate::http::client::Target::parse(u).map_err(StartError::Webhook)?),
        None => None,
    };
    let file = cfg.streaming_events_file();
    // Always there: a reload may give a voice connector targets; nothing is made until then.
    let aws = crate::observe::aws_events::start(&cfg.streaming, registry.clone());
    let sinks = EventSinks::start(file.clone(), webhook, aws, registry)
        .map_err(|e| StartError::StreamEvents(file.display().to_string(), e))?;
    Ok(crate::observe::stream_events::StreamEvents::new(
        v.streaming.clone(),
        cfg.cdr.aws_account_id.clone(),
        sinks,
        Duration::from_secs(u64::from(cfg.streaming.putmedia_give_up_secs)),
    ))
}

/// Opens the CDR spool, starts its uploader towards the configured store, and returns the
/// recorder that feeds it.
async fn start_cdrs(
    cfg: &Config,
    bucket: Option<S3Target>,
    registry: &Arc<Mutex<Registry>>,
    clock: Clock,
) -> Result<crate::cdr::Recorder, StartError> {
    use crate::cdr::{spool, store, uploader};
    let spool_dir = cfg.cdr_spool_dir();
    let writer = spool::Writer::open(&spool_dir)?;
    let shared = writer.shared();
    let left = shared.pending_records.load(std::sync::atomic::Ordering::Relaxed);
    if left > 0 {
        tracing::info!(records = left, spool = %spool_dir.display(), "CDRs left by an earlier run are delivered first");
    }
    let store = match bucket {
        Some(target) => {
            store::Store::s3(target, cfg.cdr.s3_endpoint.as_deref(), cfg.cdr.s3_region.as_deref())
                .await
        }
        None => store::Store::Local(cfg.cdr_dir()),
    };
    let up = uploader::Uploader { dir: spool_dir, store, shared, registry: registry.clone() };
    tokio::spawn(up.run());
    let (recorder, cut) = crate::cdr::Recorder::start(cfg, writer, registry.clone(), clock.wall())
        .map_err(StartError::SpoolThread)?;
    if cut > 0 {
        tracing::warn!(
            calls = cut,
            "calls cut by the previous run's stop were recorded as interrupted"
        );
    }
    Ok(recorder)
}
