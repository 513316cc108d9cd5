//! The tokio driver: owns the sans-IO B2BUA core, feeds it what the transports read, carries
//! out what it outputs in order (messages, media updates, call events), runs its timers, and
//! hands every call event to the call table and its observers.
//!
//! Its rooms: [`startup`] wires the parts, [`clock`] is the one place that reads time,
//! [`write_ahead`] holds the messages that end calls until their records are durable,
//! [`reload`] applies SIGHUP, [`shutdown`] drains on SIGTERM/SIGINT, [`recovery`] ends the
//! legs a crashed run left up, [`settings`] derives per-voice-connector values.

pub mod clock;
mod meetings;
pub mod recovery;
pub mod reload;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod write_ahead;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use connector::config::Validated;
use connector::policy::ConfigRouter;
use metrics::Registry;
use sip::b2bua::CallEvent;
use sip::endpoint::{OneOf4, Output};
use tokio::sync::mpsc;

use crate::cdr::Recorder;
use crate::observe::call_metrics::CallMetrics;
use crate::observe::facts::CallTable;
use crate::observe::process_metrics::{self, ProcessFacts};
use crate::observe::siplog::SipLog;
use crate::observe::stream_events::StreamEvents;
use crate::relay::anchor::{MediaAnchor, MediaUpdate};
use crate::relay::record::{RecordSink, RelayCmd};
use crate::relay::thread::{MediaCmd, MediaHandle};
use crate::signalling::conns::Senders;
use crate::signalling::transport::Inbound;
use crate::stream::report::StreamReport;
use clock::Clock;
use shutdown::{recv_signal, Admission, Drain, DrainState, Signal};
use write_ahead::{Batch, WriteAhead};

pub use startup::StartError;

/// The recording server as the gateway runs it.
pub type RecordingServer = siprec::srs::Srs<
    crate::record::admit::RecordingAdmission,
    crate::record::anchor::RecordingMedia,
>;

/// The recording client as the gateway runs it.
pub type RecordingClient = siprec::client::RecordingClient<crate::record::fork::ForkMedia>;

/// The meeting dial-in UAS, on the gateway's configuration and media.
pub type MeetingUas = meeting::uas::MeetingUas<
    crate::meet::policy::ConfigMeetPolicy,
    crate::meet::anchor::MeetingAnchor,
>;

/// The gateway's choice of application for a new request outside a dialog: INVITEs to a meet
/// domain go to the meeting UAS, recording sessions to the recording server, everything else
/// to the B2BUA (the recording client takes no new requests).
#[derive(Debug, Clone, Default)]
pub struct AppPick {
    pub meet: connector::config::meetings::MeetSettings,
}

impl sip::endpoint::Pick for AppPick {
    fn pick(&mut self, request: &sip::Request, _peer: sip::Peer) -> sip::endpoint::Which {
        use sip::endpoint::Which;
        if request.method != sip::Method::Invite {
            return Which::First;
        }
        if crate::meet::policy::ConfigMeetPolicy::is_meet_domain(&self.meet, &request.uri.host) {
            Which::Fourth
        } else if siprec::offer::is_recording_session(request) {
            Which::Second
        } else {
            Which::First
        }
    }
}

/// The applications on the gateway's endpoint.
pub type Apps = sip::endpoint::Quartet<
    sip::b2bua::App<ConfigRouter, MediaAnchor>,
    RecordingServer,
    RecordingClient,
    MeetingUas,
    AppPick,
>;

/// The endpoint as the gateway runs it: the B2BUA, the recording server beside it (INVITEs
/// that ask for a recording session go to it), the recording client that forks calls to a
/// voice connector's recording server, and the meeting dial-in UAS (INVITEs to a meet domain).
pub type Core = sip::endpoint::Stack<Apps>;

/// Recording session ids start here, apart from the B2BUA's call numbers (one relay, one call
/// table).
pub const FIRST_RECORDING_SESSION: u64 = 1 << 48;

/// Meeting participants' call numbers start here, apart from the others'.
pub const FIRST_MEETING_CALL: u64 = 1 << 52;

/// Meeting recordings' call numbers start here.
pub const FIRST_MEETING_RECORDING: u64 = 1 << 53;

/// Longest a turn's messages wait for the spool to commit its records.
const SPOOL_WAIT_LIMIT: Duration = Duration::from_secs(2);

/// Longest time between two turns (the process gauges are set at the end of each).
const GAUGE_PERIOD: Duration = Duration::from_secs(1);

/// Runs the gateway until SIGTERM/SIGINT has drained it. SIGHUP reloads `config_path` (the
/// embedded default has nothing to reload) and applies it to new calls.
pub async fn run(v: Validated, config_path: Option<std::path::PathBuf>) -> Result<(), StartError> {
    let clock = Clock::start();
    let mut gw = startup::start(v, config_path, clock).await?;
    let byes = gw.recorder.take_recovered_byes();
    recovery::send_recovery_byes(&mut gw.core, byes, clock.now());
    gw.run().await;
    Ok(())
}

/// The signals the driver answers.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

/// Everything the driver owns while it runs.
pub struct Gateway {
    core: Core,
    rx: mpsc::Receiver<Inbound>,
    senders: Senders,
    registry: Arc<Mutex<Registry>>,
    sinks: HashMap<String, RecordSink>,
    /// The calls in progress, and their observers (with `recorder` and `siplog`).
    table: CallTable,
    call_metrics: CallMetrics,
    recorder: Recorder,
    /// The spool's last durable commit.
    durable: tokio::sync::watch::Receiver<u64>,
    siplog: SipLog,
    /// This turn's inbound messages, for the SIP message log.
    inbound_log: Vec<Bytes>,
    media: MediaHandle,
    /// Calls whose media went silent.
    silent_rx: mpsc::Receiver<u64>,
    /// What the relay's streams did (started, failed, ended), for records and events.
    stream_rx: mpsc::UnboundedReceiver<StreamReport>,
    stream_events: StreamEvents,
    /// Call legs streaming now.
    streams_active: u64,
    write_ahead: WriteAhead,
    admission: Admission,
    drain: Drain,
    signals: Signals,
    garbage_closes: u64,
    /// This turn's messages.
    outgoing: Batch,
    clock: Clock,
    running: Validated,
    config_path: Option<std::path::PathBuf>,
    /// Where each voice connector's calls are recorded (`SiprecRecording`), by id in lower case.
    recording_targets: HashMap<String, siprec::client::Target>,
    /// The meetings' media thread, and what it reports.
    meet: crate::meet::thread::MeetHandle,
    meet_rx: mpsc::UnboundedReceiver<crate::meet::thread::MeetMediaEvent>,
    /// Meetings being recorded: their recording's pseudo-call, and the next number.
    meet_recordings: HashMap<String, u64>,
    next_meet_recording: u64,
}

impl Gateway {
    /// The event loop: one turn per wake-up (messages, a timer, a signal), then the turn's
    /// output; ends when a drain is done.
    async fn run(&mut self) {
        let drain_limit = Duration::from_secs(self.running.config.sip.drain_timeout_secs);
        loop {
            let clock = self.clock;
            // At least one turn a second, so the process gauges follow what changes without a
            // message (a connection's place freed after its last report, for one); the core's
            // next timer may be 32 s away.
            let tick = clock.monotonic() + GAUGE_PERIOD;
            let next = match (self.core.poll_timeout(), self.core.app().fourth.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timeout = next.map_or(tick, |t| clock.to_std(t).min(tick));
            let wake = self.drain.deadline().map_or(timeout, |d| d.min(timeout));
            let signals = &mut self.signals;
            tokio::select! {
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.admission.update(&mut self.core, self.recorder.failing());
                    self.inbound(msg);
                    // Batch what is already queued before flushing outputs.
                    for _ in 0..64 {
                        match self.rx.try_recv() {
                            Ok(m) => self.inbound(m),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    let now = clock.now();
                    self.core.handle_timeout(now);
                    let (ep, apps) = self.core.split();
                    apps.fourth.handle_timeout::<Apps, 3>(ep, now);
                }
                Some(ev) = self.meet_rx.recv() => {
                    self.meet_media_event(ev);
                    while let Ok(ev) = self.meet_rx.try_recv() {
                        self.meet_media_event(ev);
                    }
                }
                Some(call) = self.silent_rx.recv() => {
                    // Only answered calls: a call may ring without early media for a long time.
                    if self.core.is_answered(call) {
                        tracing::warn!(call, "media inactivity: hanging up both legs");
                        self.core.hang_up(call, "media inactivity", clock.now());
                    }
                }
                Some(r) = self.stream_rx.recv() => {
                    self.stream_report(r);
                    while let Ok(r) = self.stream_rx.try_recv() {
                        self.stream_report(r);
                    }
                }
                _ = recv_signal(&mut signals.hup) => self.reload(),
                _ = self.durable.changed(), if !self.write_ahead.is_empty() => {}
                _ = recv_signal(&mut signals.term) => self.drain.start(&mut self.core, clock.monotonic(), drain_limit, "SIGTERM"),
                _ = recv_signal(&mut signals.int) => self.drain.start(&mut self.core, clock.monotonic(), drain_limit, "SIGINT"),
            }
            self.finish_turn().await;
            if self.drain.state(&self.core, clock.monotonic()) != DrainState::Running {
                break;
            }
        }
        self.stop().await;
    }

    /// Feeds one transport event to the core; messages are also kept for the SIP message log.
    fn inbound(&mut self, msg: Inbound) {
        let now = self.clock.now();
        match msg {
            Inbound::Message { bytes, peer } => {
                self.core.handle_bytes(&bytes, peer, now);
                if self.siplog.active() {
                    self.inbound_log.push(bytes);
                }
            }
            Inbound::Opened { conn, peer, tx } => self.senders.conns.insert(conn, peer, tx),
            Inbound::Closed { conn, peer } => self.senders.conns.remove(conn, peer),
            Inbound::Failed { peer, reason, garbage } => {
                if garbage {
                    self.garbage_closes += 1;
                    tracing::info!(%peer, %reason, "connection closed");
                } else {
                    tracing::warn!(%peer, %reason, "cannot reach peer");
                    self.core.transport_error(peer, now);
                }
            }
        }
    }

    /// Carries out the turn's output in order, then sends what the write-ahead lets go.
    async fn finish_turn(&mut self) {
        let at = self.clock.moment();
        let mut meet_updates = false;
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit { peer, bytes } => self.outgoing.push((peer, bytes)),
                // Handed to the media thread at once; the messages after it leave below.
                Output::Media(OneOf4::First(u) | OneOf4::Second(u) | OneOf4::Third(u)) => {
                    media_update(u, &self.media, &self.sinks)
                }
                Output::Media(OneOf4::Fourth(u)) => {
                    self.meet.send(u);
                    meet_updates = true;
                }
                Output::Event(OneOf4::First(ev)) => self.call_event(ev, at),
                Output::Event(OneOf4::Second(ev)) => self.recording_event(ev, at),
                Output::Event(OneOf4::Third(ev)) => self.recording_client_event(ev),
                Output::Event(OneOf4::Fourth(ev)) => self.meeting_event(ev, at),
            }
        }
        if meet_updates {
            self.meet.flush();
        }
        // The relay knows a leg's addresses and keys before the SDP that lets the other side
        // send leaves in a SIP message.
        self.media.flush();
        self.recorder.tick(at.wall);
        for m in self.inbound_log.drain(..) {
            self.siplog.message(&m, at.wall);
        }
        // Write-ahead: a call's record is durable before the messages that end it leave. The
        // spool thread commits while the driver goes on; later messages queue behind held ones.
        let commit = self.recorder.commit();
        self.write_ahead.hold(commit, at.mono, &mut self.outgoing);
        let committed = *self.durable.borrow_and_update();
        while let Some((mut batch, late)) = self.write_ahead.release(committed, at.mono) {
            if late {
                tracing::error!(
                    "CDR spool did not commit in time; sending the calls' messages anyway"
                );
            }
            self.send(&mut batch, at.wall).await;
        }
        let mut outgoing = std::mem::take(&mut self.outgoing);
        self.send(&mut outgoing, at.wall).await;
        self.outgoing = outgoing;
        self.siplog.sweep(at.mono);
        self.stream_events.sweep(at.wall);
        self.update_process_metrics();
    }

    /// One fact of the B2BUA's calls, to the call table and its observers.
    fn call_event(&mut self, ev: CallEvent, at: crate::observe::facts::Moment) {
        if let CallEvent::Answered { call } = &ev {
            let byes = recovery::recovery_byes(&self.core, *call);
            self.recorder.set_recovery_byes(*call, byes);
        }
        self.apply(&ev, at);
        self.follow_invite(&ev);
        match &ev {
            CallEvent::Answered { call } => self.start_recording(*call),
            CallEvent::Ended { call, .. } => {
                let now = self.clock.now();
                let (ep, apps) = self.core.split();
                apps.third.stop::<Apps, 2>(ep, *call, now);
            }
            _ => {}
        }
    }

    /// An answered call of a voice connector with `SiprecRecording` is sent to its recording
    /// server too (voicegw its recording client); the call never waits for it.
    fn start_recording(&mut self, call: u64) {
        let Some(c) = self.table.get(call) else { return };
        let vc = c.labels.voice_connector_id.to_ascii_lowercase();
        let Some(target) = self.recording_targets.get(&vc) else { return };
        let metadata = crate::observe::stream_events::call_metadata(c);
        let now = self.clock.now();
        let (ep, apps) = self.core.split();
        apps.third.start::<Apps, 2>(ep, call, target, &metadata, now);
    }

    /// What the recording client did, to the log and the metrics.
    fn recording_client_event(&mut self, ev: siprec::client::ClientEvent) {
        use siprec::client::ClientEvent as C;
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        match ev {
            C::Started { call, recorder } => {
                tracing::info!(call, %recorder, "recording server answered; copying the call's audio");
                r.inc(metrics::names::RECORDING_CLIENT_SESSIONS, &metrics::Labels::default());
            }
            C::Failed { call, why, reason } => {
                tracing::warn!(call, %reason, "call not recorded by the recording server; the call goes on");
                let kind = metrics::Labels::kind(&why.label());
                r.inc(metrics::names::RECORDING_CLIENT_FAILURES, &kind);
            }
            C::Ended { call, by_recorder } => {
                tracing::info!(
                    call,
                    by_recorder,
                    "recording session to the recording server ended"
                );
            }
        }
    }

    fn apply(&mut self, ev: &CallEvent, at: crate::observe::facts::Moment) {
        self.table.apply(
            ev,
            at,
            &mut [
                &mut self.recorder,
                &mut self.siplog,
                &mut self.call_metrics,
                &mut self.stream_events,
            ],
        );
    }

    /// One fact of the recording server's sessions. A recording session is a call to the call
    /// table (started, answered at once, ended), so its record, SIP log and metrics follow;
    /// its streaming events carry the recording client's INVITE and metadata.
    fn recording_event(
        &mut self,
        ev: siprec::srs::RecordingEvent,
        at: crate::observe::facts::Moment,
    ) {
        use siprec::srs::RecordingEvent as R;
        match ev {
            R::Started {
                session,
                transaction_id,
                voice_connector_id,
                invite,
                source,
                metadata_xml,
                metadata,
                tolerated,
                streams,
                ..
            } => {
                if !tolerated.is_empty() {
                    tracing::info!(session, ?tolerated, "recording session: tolerated");
                }
                {
                    use metrics::names;
                    let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                    let none = metrics::Labels::default();
                    r.inc(names::RECORDING_SESSIONS, &none);
                    r.add(names::RECORDING_STREAMS, &none, streams.len() as f64);
                    for t in &tolerated {
                        r.inc(names::RECORDING_TOLERATED, &metrics::Labels::kind(t));
                    }
                }
                self.answered_by_voicegw(
                    session,
                    transaction_id,
                    voice_connector_id,
                    &invite,
                    source,
                    at,
                );
                if self.stream_events.follows(session) {
                    self.stream_events.set_invite(session, &invite);
                    let json = metadata.as_ref().map(siprec::metadata::Metadata::to_json);
                    self.stream_events.set_recording_metadata(session, metadata_xml, json);
                }
            }
            R::Updated { session, request, metadata_xml, metadata } => {
                let json = metadata.as_ref().map(siprec::metadata::Metadata::to_json);
                self.stream_events.updated(session, &request, metadata_xml, json, at);
            }
            R::Ended { session, reason, .. } => {
                let ended =
                    CallEvent::Ended { call: session, status: 200, reason: reason.to_string() };
                self.apply(&ended, at);
            }
            R::Refused { call_id, voice_connector_id, status, reason } => {
                tracing::info!(%call_id, ?voice_connector_id, status, %reason, "recording session refused");
                let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                let kind = metrics::Labels::kind(&status.to_string());
                r.inc(metrics::names::RECORDING_SESSIONS_REFUSED, &kind);
            }
        }
    }

    /// An INVITE voicegw answered itself (a recording session, a meeting dial-in) becomes a
    /// call of the call table, started and answered at `at`, so its CDR, SIP log and metrics
    /// follow as a call's.
    fn answered_by_voicegw(
        &mut self,
        call: u64,
        transaction_id: String,
        voice_connector_id: String,
        invite: &sip::Request,
        peer: sip::Peer,
        at: crate::observe::facts::Moment,
    ) {
        let call_id = invite.call_id().unwrap_or_default().to_string();
        let started = CallEvent::Started {
            call,
            transaction_id,
            call_id: call_id.clone(),
            b_call_id: call_id,
            direction: sip::b2bua::Direction::Outbound,
            voice_connector_id,
            from: invite
                .headers
                .get(&sip::message::HeaderName::From)
                .unwrap_or_default()
                .to_string(),
            to: invite.uri.to_string(),
            target: peer,
            auth_user: None,
        };
        self.apply(&started, at);
        self.apply(&CallEvent::Answered { call }, at);
    }

    /// A streamed call's events carry the headers of its customer leg's INVITE (the caller's
    /// on termination, the one sent to the PBX on origination, after any failover).
    fn follow_invite(&mut self, ev: &CallEvent) {
        let (CallEvent::Started { call, .. } | CallEvent::Failover { call, .. }) = ev else {
            return;
        };
        if !self.stream_events.follows(*call) {
            return;
        }
        let Some(c) = self.table.get(*call) else { return };
        let caller = c.direction == sip::b2bua::Direction::Outbound;
        if let Some(invite) = self.core.invite_of(*call, caller) {
            self.stream_events.set_invite(*call, invite);
        }
    }

    /// One report of the relay's streams: the CDR learns the call streams, the events go out.
    fn stream_report(&mut self, r: StreamReport) {
        match &r {
            StreamReport::Streaming { call, start_ms } => {
                let at = std::time::UNIX_EPOCH + Duration::from_millis(*start_ms);
                self.recorder.mark_streamed(*call, at);
            }
            StreamReport::Started { call, stream } => {
                let at = std::time::UNIX_EPOCH + Duration::from_millis(stream.start_ms);
                self.recorder.mark_streamed(*call, at);
                self.streams_active += 1;
            }
            StreamReport::Ended { .. } | StreamReport::Failed { started: true, .. } => {
                self.streams_active = self.streams_active.saturating_sub(1);
            }
            StreamReport::Failed { .. } | StreamReport::Closed { .. } => {}
        }
        self.stream_events.on_report(&r, self.clock.moment());
    }

    /// Sends `batch` (emptying it), logging each message to the SIP message log.
    async fn send(&mut self, batch: &mut Batch, wall: std::time::SystemTime) {
        for (peer, bytes) in batch.drain(..) {
            self.siplog.message(&bytes, wall);
            self.senders.transmit(peer, bytes).await;
        }
    }

    fn update_process_metrics(&self) {
        let core = &self.core;
        let (clients, servers) = core.transactions();
        let facts = ProcessFacts {
            stats: core.stats().clone(),
            active_calls: core.active_calls(),
            transactions: clients + servers,
            open_connections: self.senders.settings.open.load(std::sync::atomic::Ordering::Relaxed),
            tls_connections: self.senders.conns.tls(),
            garbage_closes: self.garbage_closes,
            sip_log_dropped: self.siplog.dropped(),
            cdrs_suppressed: self.recorder.suppressed(),
            media_ports_in_use: core.anchor().ports_in_use(),
            streams_active: self.streams_active,
            recording_sessions_active: core.app().second.active_sessions(),
            recording_client_sessions_active: core.app().third.active_sessions(),
            meetings_active: core.app().fourth.rooms().meetings(),
            meeting_participants_active: core.app().fourth.active_calls(),
        };
        process_metrics::update(&self.registry, &facts, || self.recorder.spool_backlog());
    }

    /// SIGHUP.
    fn reload(&mut self) {
        let Some(v) = reload::load(self.config_path.as_deref(), &self.running) else { return };
        reload::apply_to_core(&mut self.core, &v);
        self.recording_targets = settings::recording_targets(&v);
        let apps = self.core.app_mut();
        apps.pick.meet = v.meet.clone();
        apps.fourth.policy_mut().set(v.meet.clone());
        apps.fourth.media_mut().set_media_source_learning(v.meet.media_source_learning);
        let cfg = &v.config;
        settings::register_labels(cfg, &self.registry);
        self.sinks = settings::record_sinks(cfg, &self.registry);
        self.table.set_regions(settings::regions(cfg));
        self.recorder.reconfigure(cfg);
        self.admission.refuse_unrecorded = cfg.cdr.refuse_calls_while_spool_fails;
        self.siplog.configure(settings::sip_logging(cfg));
        self.stream_events.reconfigure(v.streaming.clone(), cfg.cdr.aws_account_id.clone());
        // Restart-only settings are compared with those the process started with.
    }

    /// After the loop: calls still up are recorded as interrupted, every record is flushed,
    /// held messages leave, and the uploader gets a moment to deliver.
    async fn stop(&mut self) {
        self.recorder.flush_challenges();
        let cut = self.recorder.interrupt_all(self.clock.wall());
        if cut > 0 {
            tracing::warn!(calls = cut, "exiting with calls in progress: recorded as interrupted");
        }
        self.recorder.commit();
        self.recorder.flush(Duration::from_secs(5)).await;
        let wall = self.clock.wall();
        let held: Vec<Batch> = self.write_ahead.take_all().collect();
        for mut batch in held {
            self.send(&mut batch, wall).await;
        }
        self.recorder.wait_delivered(Duration::from_secs(5)).await;
    }
}

/// Starts, updates and stops call media on the media thread as the anchor asks.
fn media_update(u: MediaUpdate, media: &MediaHandle, sinks: &HashMap<String, RecordSink>) {
    match u {
        MediaUpdate::Open { ctx, sockets } => {
            let sink = sinks.get(&ctx.voice_connector_id).cloned().map(Box::new);
            media.send(MediaCmd::Open { ctx, sockets, sink });
        }
        MediaUpdate::Peer { call, side, rtp, rtcp, mux, rates } => {
            media
                .send(MediaCmd::Call { call, cmd: RelayCmd::Peer { side, rtp, rtcp, mux, rates } });
        }
        MediaUpdate::Srtp { call, side, inbound, outbound } => {
            media.send(MediaCmd::Call { call, cmd: RelayCmd::Srtp { side, inbound, outbound } });
        }
        MediaUpdate::ForkOpen { call, sockets } => {
            media.send(MediaCmd::Call { call, cmd: RelayCmd::Fork { sockets: Box::new(sockets) } })
        }
        MediaUpdate::ForkTo { call, to } => {
            media.send(MediaCmd::Call { call, cmd: RelayCmd::ForkTo { to } })
        }
        MediaUpdate::ForkClose { call } => {
            media.send(MediaCmd::Call { call, cmd: RelayCmd::Unfork })
        }
        MediaUpdate::Close { call } => media.send(MediaCmd::Call { call, cmd: RelayCmd::Close }),
    }
}
