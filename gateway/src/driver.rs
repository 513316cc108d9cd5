//! The tokio driver: owns the sans-IO B2BUA core, feeds it what the transports read, carries out
//! what it outputs, runs its timers and turns its events into logs and metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics::{names, Labels, Registry};
use sip::b2bua::{B2bua, CallEvent, CoreConfig, Direction, Output, RejectCause};
use sip::message::ParseLimits;
use sip::transaction::TimerConfig;
use sip::{Peer, Transport};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use crate::media_anchor::{MediaAnchor, MediaUpdate};
use crate::media_record::{RecordSink, RelayCmd};
use crate::media_thread::{self, MediaCmd, MediaHandle};
use crate::redact::Redacted;
use crate::transport::{self, Inbound, StreamSettings};
use connector::config::Validated;
use connector::policy::ConfigRouter;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Cert(#[from] crate::certs::CertError),
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
}

struct CallInfo {
    labels: Labels,
    direction: Direction,
    answered: bool,
    started: Instant,
}

struct Conns {
    by_id: HashMap<u64, (Peer, mpsc::Sender<Bytes>)>,
    by_addr: HashMap<(Transport, std::net::SocketAddr), u64>,
    /// How many of `by_id` are TLS (a metric; counted as they come and go).
    tls: usize,
}

impl Conns {
    fn insert(&mut self, id: u64, peer: Peer, tx: mpsc::Sender<Bytes>) {
        self.by_addr.insert((peer.transport, peer.addr), id);
        if let Some((old, _)) = self.by_id.insert(id, (peer, tx)) {
            self.tls -= usize::from(old.transport == Transport::Tls);
        }
        self.tls += usize::from(peer.transport == Transport::Tls);
    }

    fn remove(&mut self, id: u64, peer: Peer) {
        if let Some((old, _)) = self.by_id.remove(&id) {
            self.tls -= usize::from(old.transport == Transport::Tls);
        }
        if self.by_addr.get(&(peer.transport, peer.addr)) == Some(&id) {
            self.by_addr.remove(&(peer.transport, peer.addr));
        }
    }
}

/// Runs the gateway until SIGTERM/SIGINT has drained it. SIGHUP reloads `config_path` (the
/// embedded default has nothing to reload) and applies it to new calls.
pub async fn run(v: Validated, config_path: Option<std::path::PathBuf>) -> Result<(), StartError> {
    connector::policy::numbering::warm_up();
    let cfg = &v.config;
    std::fs::create_dir_all(&cfg.data.dir)
        .map_err(|e| StartError::DataDir(cfg.data.dir.display().to_string(), e))?;
    let (tx, mut rx) = mpsc::channel::<Inbound>(8192);
    let limits = ParseLimits {
        max_message_size: cfg.sip.max_message_bytes,
        max_headers: cfg.sip.max_headers,
    };
    let client =
        crate::certs::client_config(cfg.sip.tls_ca_file.as_deref(), cfg.sip.tls_verify_server)?;
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
    };
    let mut local = HashMap::new();
    let mut udp = None;
    if let Some(addr) = v.listen_udp {
        let s = UdpSocket::bind(addr).await.map_err(|source| StartError::Bind {
            what: "SIP UDP",
            addr,
            source,
        })?;
        // A deep receive queue absorbs bursts (and floods) while the driver catches up; the
        // kernel caps it at net.core.rmem_max.
        if let Err(e) =
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBuf, &(8 << 20))
        {
            tracing::debug!(error = %e, "SIP UDP receive buffer left at the default");
        }
        if let Err(e) = crate::udp_errors::enable(&s, addr.is_ipv6()) {
            tracing::warn!(error = %e, "ICMP errors on the SIP UDP socket are not reported; dead UDP next hops fail after Timer B");
        }
        let s = Arc::new(s);
        local.insert(Transport::Udp, addr);
        tokio::spawn(transport::udp_loop(s.clone(), tx.clone()));
        udp = Some(s);
        tracing::info!(%addr, "SIP listening on UDP");
    }
    if let Some(addr) = v.listen_tcp {
        let l = TcpListener::bind(addr).await.map_err(|source| StartError::Bind {
            what: "SIP TCP",
            addr,
            source,
        })?;
        local.insert(Transport::Tcp, addr);
        tokio::spawn(transport::accept_loop(l, None, settings.clone(), tx.clone()));
        tracing::info!(%addr, "SIP listening on TCP");
    }
    if let Some(addr) = v.listen_tls {
        let configured = cfg.sip.tls_certificate.as_deref().zip(cfg.sip.tls_private_key.as_deref());
        let (cert, key, generated) = crate::certs::ensure(configured, &cfg.data.dir)?;
        if generated {
            tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::certs::server_config(&cert, &key)?);
        let l = TcpListener::bind(addr).await.map_err(|source| StartError::Bind {
            what: "SIP TLS",
            addr,
            source,
        })?;
        local.insert(Transport::Tls, addr);
        tokio::spawn(transport::accept_loop(l, Some(acceptor), settings.clone(), tx.clone()));
        tracing::info!(%addr, cert = %cert.display(), "SIP listening on TLS");
    }
    let registry = Arc::new(Mutex::new(Registry::new()));
    {
        let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
        for vc in &cfg.voice_connectors {
            r.register_labels(&Labels::new(&vc.id, &vc.aws_region));
        }
    }
    let mut regions: HashMap<String, String> =
        cfg.voice_connectors.iter().map(|vc| (vc.id.clone(), vc.aws_region.clone())).collect();
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
    let mut anchor = MediaAnchor::new(v.media_address, v.media_ports).with_required_encryption(
        cfg.voice_connectors.iter().filter(|vc| vc.require_encryption).map(|vc| vc.id.clone()),
    );
    anchor.set_media_source_learning(learning_voice_connectors(cfg));
    let clock = crate::clock::Clock::start();
    let router = ConfigRouter::new(&v, rand::random());
    let health = router.health();
    let mut core = B2bua::with_anchor(core_cfg, router, anchor);
    let mut sinks = record_sinks(cfg, &registry);
    let mut recorder = start_cdrs(cfg, v.cdr_bucket.clone(), &registry).await?;
    let mut siplog = crate::siplog::SipLog::start(
        cfg.data.dir.join("ChimeVoiceConnectorSipMessages"),
        crate::siplog::Rotation {
            max_bytes: cfg.data.sip_log_max_bytes,
            keep: cfg.data.sip_log_keep,
        },
    )
    .map_err(StartError::SipLog)?;
    siplog.configure(sip_logging(cfg));
    let mut inbound_log: Vec<Bytes> = Vec::new();
    if let Some(addr) = v.metrics_listen {
        let l = TcpListener::bind(addr).await.map_err(|source| StartError::Bind {
            what: "metrics",
            addr,
            source,
        })?;
        tokio::spawn(crate::metrics_http::serve(l, registry.clone(), health.clone(), clock));
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
    }

    if let Some(path) = &cfg.metrics.emf_file {
        let period = Duration::from_secs(cfg.metrics.emf_period_secs);
        tokio::spawn(crate::emf::run(cfg.data.dir.join(path), period, registry.clone()));
    }

    let timing = media::relay::Timing {
        record_period: Duration::from_secs(cfg.media.record_period_secs),
        inactivity: (cfg.media.inactivity_timeout_secs > 0)
            .then(|| Duration::from_secs(cfg.media.inactivity_timeout_secs)),
        ntp_at_origin: clock.ntp_at_origin(),
    };
    let (silent_tx, mut silent_rx) = mpsc::channel::<u64>(64);
    let media = media_thread::start(clock, timing, silent_tx, registry.clone())
        .map_err(StartError::Media)?;
    let mut conns = Conns { by_id: HashMap::new(), by_addr: HashMap::new(), tls: 0 };
    let mut calls: HashMap<u64, CallInfo> = HashMap::new();
    let mut garbage_closes = 0u64;
    let mut outgoing: Vec<(Peer, Bytes)> = Vec::with_capacity(256);
    // Messages of turns that ended calls, held until the spool thread has their records on
    // disk: (commit sequence number, messages), oldest first.
    let mut held: std::collections::VecDeque<Held> = Default::default();
    let mut durable = recorder.durable();
    let mut admission =
        Admission { refuse_unrecorded: cfg.cdr.refuse_calls_while_spool_fails, refusing: false };

    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate());
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt());
    let mut sighup = signal(tokio::signal::unix::SignalKind::hangup());
    let mut drain_deadline: Option<Instant> = None;
    tracing::info!(voice_connectors = cfg.voice_connectors.len(), "voicegw started");
    send_recovery_byes(&mut core, recorder.take_recovered_byes(), clock.now());

    loop {
        let timeout = core
            .poll_timeout()
            .map(|t| clock.to_std(t))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        let wake = drain_deadline.map_or(timeout, |d| d.min(timeout));
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                admission.update(&mut core, recorder.failing());
                let log = siplog.active().then_some(&mut inbound_log);
                handle_inbound(&mut core, &mut conns, msg, &mut garbage_closes, clock, log);
                // Batch what is already queued before flushing outputs.
                for _ in 0..64 {
                    match rx.try_recv() {
                        Ok(m) => {
                            let log = siplog.active().then_some(&mut inbound_log);
                            handle_inbound(&mut core, &mut conns, m, &mut garbage_closes, clock, log)
                        }
                        Err(_) => break,
                    }
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                core.handle_timeout(clock.now());
            }
            Some(call) = silent_rx.recv() => {
                // Only answered calls: a call may ring without early media for a long time.
                if core.is_answered(call) {
                    tracing::warn!(call, "media inactivity: hanging up both legs");
                    core.hang_up(call, "media inactivity", clock.now());
                }
            }
            _ = recv_signal(&mut sighup) => {
                if let Some(cfg) = reload(&mut core, config_path.as_deref(), &v, &registry, &mut sinks, &mut regions) {
                    recorder.reconfigure(&cfg);
                    admission.refuse_unrecorded = cfg.cdr.refuse_calls_while_spool_fails;
                    siplog.configure(sip_logging(&cfg));
                }
            }
            _ = durable.changed(), if !held.is_empty() => {}
            _ = recv_signal(&mut sigterm) => start_drain(&mut core, &mut drain_deadline, cfg.sip.drain_timeout_secs, "SIGTERM"),
            _ = recv_signal(&mut sigint) => start_drain(&mut core, &mut drain_deadline, cfg.sip.drain_timeout_secs, "SIGINT"),
        }
        let wall = std::time::SystemTime::now();
        let mono = Instant::now();
        while let Some(out) = core.poll_output() {
            match out {
                Output::Transmit { peer, bytes } => outgoing.push((peer, bytes)),
                // Handed to the media thread at once; the messages after it leave below.
                Output::Media(u) => media_update(u, &media, &sinks),
                Output::Event(ev) => {
                    if let CallEvent::Answered { call } = &ev {
                        recorder.set_recovery_byes(*call, recovery_byes(&core, *call));
                    }
                    recorder.on_event(&ev, wall);
                    siplog.on_event(&ev, mono);
                    on_event(ev, &mut calls, &registry, &regions);
                }
            }
        }
        // The relay knows a leg's addresses and keys before the SDP that lets the other side
        // send leaves in a SIP message.
        media.flush();
        recorder.tick(wall);
        for m in inbound_log.drain(..) {
            siplog.message(&m, wall);
        }
        // Write-ahead: a call's record is durable before the messages that end it leave. The
        // spool thread commits while the driver goes on; later messages queue behind held ones.
        match recorder.commit() {
            Some(seq) => held.push_back((seq, mono, std::mem::take(&mut outgoing))),
            None => {
                if let Some((_, _, last)) = held.back_mut() {
                    last.append(&mut outgoing);
                }
            }
        }
        let committed = *durable.borrow_and_update();
        // A spool that does not answer (a hung disk, a dead thread) must not stop calls.
        let overdue = |at: &Instant| at.elapsed() > SPOOL_WAIT_LIMIT;
        while held.front().is_some_and(|(seq, at, _)| *seq <= committed || overdue(at)) {
            if let Some((seq, at, mut batch)) = held.pop_front() {
                if seq > committed && overdue(&at) {
                    tracing::error!(
                        seq,
                        "CDR spool did not commit in time; sending the calls' messages anyway"
                    );
                }
                send_all(&mut batch, &mut siplog, wall, &udp, &mut conns, &settings, &tx).await;
            }
        }
        send_all(&mut outgoing, &mut siplog, wall, &udp, &mut conns, &settings, &tx).await;
        siplog.sweep(mono);
        let open = settings.open.load(std::sync::atomic::Ordering::Relaxed);
        update_process_metrics(&core, &registry, &conns, open, garbage_closes, &siplog, &recorder);
        if let Some(d) = drain_deadline {
            if core.is_idle() {
                tracing::info!("drained: no calls or transactions left");
                break;
            }
            if Instant::now() >= d {
                tracing::warn!(
                    calls = core.active_calls(),
                    "drain timeout reached; exiting with calls in progress"
                );
                break;
            }
        }
    }
    recorder.flush_challenges();
    let cut = recorder.interrupt_all(std::time::SystemTime::now());
    if cut > 0 {
        tracing::warn!(calls = cut, "exiting with calls in progress: recorded as interrupted");
    }
    recorder.commit();
    recorder.flush(Duration::from_secs(5)).await;
    let wall = std::time::SystemTime::now();
    for (_, _, mut batch) in held.drain(..) {
        send_all(&mut batch, &mut siplog, wall, &udp, &mut conns, &settings, &tx).await;
    }
    recorder.wait_delivered(Duration::from_secs(5)).await;
    Ok(())
}

/// Opens the CDR spool, starts its uploader towards the configured store, and returns the
/// recorder that feeds it.
async fn start_cdrs(
    cfg: &connector::config::Config,
    bucket: Option<connector::config::S3Target>,
    registry: &Arc<Mutex<Registry>>,
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
    let (recorder, cut) =
        crate::cdr::Recorder::start(cfg, writer, registry.clone(), std::time::SystemTime::now())
            .map_err(StartError::SpoolThread)?;
    if cut > 0 {
        tracing::warn!(
            calls = cut,
            "calls cut by the previous run's stop were recorded as interrupted"
        );
    }
    Ok(recorder)
}

type Core = B2bua<ConfigRouter, MediaAnchor>;

/// A turn's messages waiting for its records: (commit sequence number, since, messages).
type Held = (u64, Instant, Vec<(Peer, Bytes)>);

/// Longest a turn's messages wait for the spool to commit its records.
const SPOOL_WAIT_LIMIT: Duration = Duration::from_secs(2);

/// The voice connectors with `EnableSIPLogs`, with their regions.
fn sip_logging(cfg: &connector::config::Config) -> Vec<(String, String)> {
    cfg.voice_connectors
        .iter()
        .filter(|vc| vc.logging.enable_sip_logs)
        .map(|vc| (vc.id.clone(), vc.aws_region.clone()))
        .collect()
}

/// Where each voice connector's media-quality records and metrics go.
fn record_sinks(
    cfg: &connector::config::Config,
    registry: &Arc<Mutex<Registry>>,
) -> HashMap<String, RecordSink> {
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

/// SIGHUP: reads the configuration again and, if it is valid, routes new calls by it. Calls in
/// progress keep their legs, media and records. Listener, media and data settings need a
/// restart; a change to them is reported and ignored.
fn reload(
    core: &mut Core,
    path: Option<&std::path::Path>,
    running: &Validated,
    registry: &Arc<Mutex<Registry>>,
    sinks: &mut HashMap<String, RecordSink>,
    regions: &mut HashMap<String, String>,
) -> Option<connector::config::Config> {
    let Some(path) = path else {
        tracing::info!("SIGHUP: running on the embedded default configuration; nothing to reload");
        return None;
    };
    let v = match connector::config::Config::load(path) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: configuration not reloaded; the running one stays");
            return None;
        }
    };
    let restart_needed = v.listen_udp != running.listen_udp
        || v.listen_tcp != running.listen_tcp
        || v.listen_tls != running.listen_tls
        || v.metrics_listen != running.metrics_listen
        || v.media_ports != running.media_ports
        || v.config.media.address != running.config.media.address
        || v.config.data.dir != running.config.data.dir
        || v.config.cdr_spool_dir() != running.config.cdr_spool_dir()
        || v.config.cdr_dir() != running.config.cdr_dir()
        || v.cdr_bucket != running.cdr_bucket;
    if restart_needed {
        tracing::warn!(
            "SIGHUP: listener, media, data or CDR store settings changed; they apply after a restart"
        );
    }
    let cfg = &v.config;
    let router = core.router_mut().reloaded(&v, rand::random());
    *core.router_mut() = router;
    core.anchor_mut().set_required_encryption(
        cfg.voice_connectors.iter().filter(|vc| vc.require_encryption).map(|vc| vc.id.clone()),
    );
    core.anchor_mut().set_media_source_learning(learning_voice_connectors(cfg));
    {
        let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
        for vc in &cfg.voice_connectors {
            r.register_labels(&Labels::new(&vc.id, &vc.aws_region));
        }
    }
    *sinks = record_sinks(cfg, registry);
    *regions =
        cfg.voice_connectors.iter().map(|vc| (vc.id.clone(), vc.aws_region.clone())).collect();
    tracing::info!(
        path = %path.display(),
        voice_connectors = cfg.voice_connectors.len(),
        "SIGHUP: configuration reloaded; new calls use it"
    );
    Some(v.config)
}

/// Starts, updates and stops call media on the media thread as the anchor asks.
fn media_update(u: MediaUpdate, media: &MediaHandle, sinks: &HashMap<String, RecordSink>) {
    match u {
        MediaUpdate::Open { ctx, sockets } => {
            let sink = sinks.get(&ctx.voice_connector_id).cloned();
            media.send(MediaCmd::Open { ctx, sockets, sink });
        }
        MediaUpdate::Peer { call, side, rtp, rtcp, mux, rates } => {
            media
                .send(MediaCmd::Call { call, cmd: RelayCmd::Peer { side, rtp, rtcp, mux, rates } });
        }
        MediaUpdate::Srtp { call, side, inbound, outbound } => {
            media.send(MediaCmd::Call { call, cmd: RelayCmd::Srtp { side, inbound, outbound } });
        }
        MediaUpdate::Close { call } => media.send(MediaCmd::Call { call, cmd: RelayCmd::Close }),
    }
}

type Signal = Option<tokio::signal::unix::Signal>;

fn signal(kind: tokio::signal::unix::SignalKind) -> Signal {
    tokio::signal::unix::signal(kind).ok()
}

async fn recv_signal(s: &mut Signal) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Whether new calls are refused because their records could not be written.
struct Admission {
    /// `[cdr] refuse_calls_while_spool_fails`.
    refuse_unrecorded: bool,
    refusing: bool,
}

impl Admission {
    /// Brought up to date before each batch of inbound messages (the spool's state changes on
    /// its own thread).
    fn update(&mut self, core: &mut Core, spool_failing: bool) {
        let refuse = self.refuse_unrecorded && spool_failing;
        if refuse == self.refusing {
            return;
        }
        self.refusing = refuse;
        if refuse {
            tracing::error!("the CDR spool cannot write: new calls are refused (503) until it can");
        } else {
            tracing::warn!("the CDR spool writes again: new calls are accepted");
        }
        core.refuse_new_calls(refuse.then_some("call records cannot be written"));
    }
}

fn start_drain(core: &mut Core, deadline: &mut Option<Instant>, secs: u64, why: &str) {
    if deadline.is_none() {
        tracing::info!(
            signal = why,
            calls = core.active_calls(),
            "draining: new calls are refused, calls in progress go on"
        );
        core.drain();
        *deadline = Some(Instant::now() + Duration::from_secs(secs));
    }
}

/// Feeds one transport event to the core; messages are also kept in `log` (SIP message logs).
fn handle_inbound(
    core: &mut Core,
    conns: &mut Conns,
    msg: Inbound,
    garbage: &mut u64,
    clock: crate::clock::Clock,
    log: Option<&mut Vec<Bytes>>,
) {
    match msg {
        Inbound::Message { bytes, peer } => {
            core.handle_bytes(&bytes, peer, clock.now());
            if let Some(log) = log {
                log.push(bytes);
            }
        }
        Inbound::Opened { conn, peer, tx } => conns.insert(conn, peer, tx),
        Inbound::Closed { conn, peer } => conns.remove(conn, peer),
        Inbound::Failed { peer, reason, garbage: is_garbage } => {
            if is_garbage {
                *garbage += 1;
                tracing::info!(%peer, %reason, "connection closed");
            } else {
                tracing::warn!(%peer, %reason, "cannot reach peer");
                core.transport_error(peer, clock.now());
            }
        }
    }
}

/// Sends `batch` (emptying it), logging each message to the SIP message log.
async fn send_all(
    batch: &mut Vec<(Peer, Bytes)>,
    siplog: &mut crate::siplog::SipLog,
    wall: std::time::SystemTime,
    udp: &Option<Arc<UdpSocket>>,
    conns: &mut Conns,
    settings: &StreamSettings,
    inbound: &mpsc::Sender<Inbound>,
) {
    for (peer, bytes) in batch.drain(..) {
        siplog.message(&bytes, wall);
        transmit(peer, bytes, udp, conns, settings, inbound).await;
    }
}

async fn transmit(
    peer: Peer,
    bytes: Bytes,
    udp: &Option<Arc<UdpSocket>>,
    conns: &mut Conns,
    settings: &StreamSettings,
    inbound: &mpsc::Sender<Inbound>,
) {
    match peer.transport {
        Transport::Udp => {
            if let Some(s) = udp {
                if let Err(e) = s.send_to(&bytes, peer.addr).await {
                    // A pending ICMP error may surface here rather than on the receive side.
                    tracing::debug!(%peer, error = %e, "udp send failed");
                    // try_send: the driver itself drains this channel.
                    for failure in transport::udp_failures(s) {
                        let _ = inbound.try_send(failure);
                    }
                }
            } else {
                tracing::warn!(%peer, "no UDP listener to send from");
            }
        }
        Transport::Tcp | Transport::Tls => {
            let conn = peer
                .conn
                .filter(|c| conns.by_id.contains_key(c))
                .or_else(|| conns.by_addr.get(&(peer.transport, peer.addr)).copied());
            if let Some((_, tx)) = conn.and_then(|c| conns.by_id.get(&c)) {
                if tx.try_send(bytes).is_err() {
                    tracing::warn!(%peer, "connection write queue full or closed; message dropped");
                }
                return;
            }
            let id = settings.new_id();
            let (tx, rx) = mpsc::channel(256);
            let _ = tx.try_send(bytes);
            conns.insert(id, peer.with_conn(id), tx);
            tokio::spawn(transport::connect(peer, id, rx, settings.clone(), inbound.clone()));
        }
    }
}

fn on_event(
    ev: CallEvent,
    calls: &mut HashMap<u64, CallInfo>,
    registry: &Mutex<Registry>,
    regions: &HashMap<String, String>,
) {
    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
    match ev {
        CallEvent::Started { call, call_id, direction, voice_connector_id, to, target, .. } => {
            let region = regions.get(&voice_connector_id).cloned().unwrap_or_default();
            let labels = Labels::new(&voice_connector_id, &region);
            let (attempts, active) = match direction {
                Direction::Outbound => {
                    (names::OUTBOUND_CALL_ATTEMPTS, names::OUTBOUND_CALLS_ACTIVE)
                }
                Direction::Inbound => (names::INBOUND_CALL_ATTEMPTS, names::INBOUND_CALLS_ACTIVE),
            };
            r.inc(attempts, &labels);
            r.add(active, &labels, 1.0);
            r.add(names::VOICE_CONNECTOR_ACTIVE_CALL_COUNT, &labels, 1.0);
            tracing::info!(call, %call_id, direction = direction.as_str(), voice_connector_id, to = %Redacted(&to), next_hop = %target, "call started");
            calls.insert(
                call,
                CallInfo { labels, direction, answered: false, started: Instant::now() },
            );
        }
        CallEvent::Answered { call } => {
            if let Some(c) = calls.get_mut(&call) {
                c.answered = true;
                let m = match c.direction {
                    Direction::Outbound => names::OUTBOUND_CALLS_ANSWERED,
                    Direction::Inbound => names::INBOUND_CALLS_ANSWERED,
                };
                r.inc(m, &c.labels);
                let setup = c.started.elapsed().as_secs_f64();
                r.observe(names::CALL_SETUP_SECONDS, &Labels::default(), setup);
            }
            tracing::info!(call, "call answered");
        }
        CallEvent::Ended { call, status, reason } => {
            if let Some(c) = calls.remove(&call) {
                let (active, failures) = match c.direction {
                    Direction::Outbound => {
                        (names::OUTBOUND_CALLS_ACTIVE, names::OUTBOUND_CALL_FAILURES)
                    }
                    Direction::Inbound => {
                        (names::INBOUND_CALLS_ACTIVE, names::INBOUND_CALL_FAILURES)
                    }
                };
                r.add(active, &c.labels, -1.0);
                r.add(names::VOICE_CONNECTOR_ACTIVE_CALL_COUNT, &c.labels, -1.0);
                if !c.answered && status >= 300 {
                    r.inc(failures, &c.labels);
                }
            }
            tracing::info!(call, status, %reason, "call ended");
        }
        CallEvent::Failover { call, status, target, voice_connector_id, .. } => {
            if let Some(c) = calls.get_mut(&call) {
                if c.labels.voice_connector_id != voice_connector_id {
                    // Group failover: the call now belongs to the next voice connector.
                    let active = match c.direction {
                        Direction::Outbound => names::OUTBOUND_CALLS_ACTIVE,
                        Direction::Inbound => names::INBOUND_CALLS_ACTIVE,
                    };
                    r.add(active, &c.labels, -1.0);
                    r.add(names::VOICE_CONNECTOR_ACTIVE_CALL_COUNT, &c.labels, -1.0);
                    let region = regions.get(&voice_connector_id).cloned().unwrap_or_default();
                    c.labels = Labels::new(&voice_connector_id, &region);
                    r.add(active, &c.labels, 1.0);
                    r.add(names::VOICE_CONNECTOR_ACTIVE_CALL_COUNT, &c.labels, 1.0);
                }
            }
            tracing::warn!(call, failed_status = ?status, next_hop = %target, voice_connector_id, "next hop failed; trying the next one");
        }
        CallEvent::Rejected {
            call_id,
            status,
            reason,
            cause,
            source,
            voice_connector_id,
            direction,
            ..
        } => {
            // A 407 challenge is the first half of an authenticated call, not a failed call.
            if let (Some(vc), Some(dir)) = (&voice_connector_id, direction) {
                let region = regions.get(vc).cloned().unwrap_or_default();
                let labels = Labels::new(vc, &region);
                r.inc(sip_class_metric(status), &labels);
                if cause != RejectCause::Unauthenticated {
                    let (attempts, failures) = match dir {
                        Direction::Outbound => {
                            (names::OUTBOUND_CALL_ATTEMPTS, names::OUTBOUND_CALL_FAILURES)
                        }
                        Direction::Inbound => {
                            (names::INBOUND_CALL_ATTEMPTS, names::INBOUND_CALL_FAILURES)
                        }
                    };
                    r.inc(attempts, &labels);
                    r.inc(failures, &labels);
                    if cause == RejectCause::Throttled {
                        r.inc(names::THROTTLES, &labels);
                    }
                }
            }
            tracing::info!(%call_id, status, reason = %Redacted(&reason), %source, voice_connector_id = voice_connector_id.as_deref().unwrap_or("-"), "call refused");
        }
        CallEvent::ResponseSent { call, status } => {
            if let Some(c) = calls.get(&call) {
                r.inc(sip_class_metric(status), &c.labels);
            }
        }
    }
}

/// `Sip1xxCodes` … `Sip6xxCodes` for a status.
fn sip_class_metric(status: u16) -> metrics::names::Metric {
    match status / 100 {
        1 => names::SIP_1XX,
        2 => names::SIP_2XX,
        3 => names::SIP_3XX,
        4 => names::SIP_4XX,
        5 => names::SIP_5XX,
        _ => names::SIP_6XX,
    }
}

fn update_process_metrics(
    core: &Core,
    registry: &Mutex<Registry>,
    conns: &Conns,
    open_connections: usize,
    garbage: u64,
    siplog: &crate::siplog::SipLog,
    recorder: &crate::cdr::Recorder,
) {
    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
    r.set(names::CDRS_SUPPRESSED, &Labels::default(), recorder.suppressed() as f64);
    // Read under the lock, so the uploader's update cannot be overwritten by an older one.
    let (records, bytes) = recorder.spool_backlog();
    r.set(names::CDR_SPOOL_RECORDS, &Labels::default(), records as f64);
    r.set(names::CDR_SPOOL_BYTES, &Labels::default(), bytes as f64);
    let l = Labels::default();
    let s = core.stats();
    for (i, m) in [
        names::SIP_1XX,
        names::SIP_2XX,
        names::SIP_3XX,
        names::SIP_4XX,
        names::SIP_5XX,
        names::SIP_6XX,
    ]
    .into_iter()
    .enumerate()
    {
        r.set(m, &l, s.responses_sent[i + 1] as f64);
    }
    r.set(names::SIP_BAD_REQUESTS, &l, s.bad_requests as f64);
    r.set(names::SIP_DROPPED, &l, s.dropped as f64);
    r.set(names::SIP_OVERLOAD_REFUSALS, &l, s.overloaded as f64);
    r.set(names::SIP_TRANSPORT_ERRORS, &l, garbage as f64);
    r.set(names::PROCESS_ACTIVE_CALLS, &l, core.active_calls() as f64);
    let (c, sv) = core.transactions();
    r.set(names::PROCESS_TRANSACTIONS, &l, (c + sv) as f64);
    // Every socket held, TLS handshakes and outbound connects included.
    r.set(names::PROCESS_CONNECTIONS, &l, open_connections as f64);
    r.set(names::PROCESS_TLS_CONNECTIONS, &l, conns.tls as f64);
    r.set(names::SIP_LOG_DROPPED, &l, siplog.dropped() as f64);
    r.set(names::MEDIA_PORTS_IN_USE, &l, core.anchor().ports_in_use() as f64);
}

/// Voice connectors whose customer leg may learn its media source (`AllowMediaSourceLearning`).
fn learning_voice_connectors(cfg: &connector::config::Config) -> Vec<String> {
    cfg.voice_connectors
        .iter()
        .filter(|vc| vc.allow_media_source_learning)
        .map(|vc| vc.id.clone())
        .collect()
}

/// How to end call `call`'s legs, for the journal.
fn recovery_byes(core: &Core, call: u64) -> Vec<connector::cdr_record::RecoveryBye> {
    core.recovery_byes(call)
        .into_iter()
        .map(|(peer, bye)| connector::cdr_record::RecoveryBye {
            transport: peer.transport.to_string(),
            addr: peer.addr,
            request: String::from_utf8_lossy(&bye.to_bytes()).into_owned(),
        })
        .collect()
}

/// Ends the legs of the calls the previous run left up (it crashed or was killed): each gets
/// the BYE journaled at its answer, so no carrier or PBX keeps a call nobody relays.
fn send_recovery_byes(
    core: &mut Core,
    byes: Vec<connector::cdr_record::RecoveryBye>,
    now: sip::Instant,
) {
    if byes.is_empty() {
        return;
    }
    let mut sent = 0;
    for b in byes {
        let transport = match b.transport.to_ascii_uppercase().as_str() {
            "UDP" => Transport::Udp,
            "TCP" => Transport::Tcp,
            "TLS" => Transport::Tls,
            other => {
                tracing::warn!(
                    transport = other,
                    "journaled BYE with an unknown transport; skipped"
                );
                continue;
            }
        };
        match sip::Message::parse(b.request.as_bytes()) {
            Ok(sip::Message::Request(req)) => {
                core.send_recovery_bye(Peer::new(transport, b.addr), req, now);
                sent += 1;
            }
            _ => tracing::warn!("journaled BYE unreadable; skipped"),
        }
    }
    tracing::warn!(legs = sent, "ending the call legs the previous run left up (BYE)");
}
