//! The media relay's event loops: one thread per core, each with the sockets of its share of the
//! calls registered with one level-triggered epoll set. Each readiness event reads one packet
//! (`recvfrom`), passes it through the call's sans-IO [`Session`] and sends it straight back out
//! with a non-blocking `send_to`: one read and one send syscall per packet, with `epoll_wait`
//! shared by every socket that is ready, no task wake-up and no allocation per packet. A socket
//! that still holds packets stays ready and is read again on the next turn. Commands (new call,
//! peer addresses, SRTP keys, close) arrive over a channel with a poller wake-up. Each session
//! keeps its own timers (own SRs, silence, record periods: [`Session::poll_timeout`]); the
//! thread visits the sessions that are due, at most a second apart, and carries out what they
//! decided. Time is read from the gateway's [`Clock`] once per turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use std::net::UdpSocket;
use std::os::fd::AsFd;

use media::relay::{Component, Instant, Session, SessionEvent, Side, Timing, TICK};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::driver::clock::Clock;
use crate::relay::anchor::CallContext;
use crate::relay::fork::{Fork, ForkTap};
use crate::relay::record::{write_record, RecordSink, RelayCmd, Snapshot, RECV_MAX};
use crate::stream::call::{CallStreams, Streamer};
use crate::stream::deferred::Deferred;
use crate::stream::worker::Worker;

/// The token of each thread's wake-up eventfd.
pub(crate) const WAKER: u64 = u64::MAX;
/// Packet buffer: the largest datagram read, plus room for an SRTP tag added in place.
const BUF: usize = 2048;

/// What the driver sends the media thread.
#[derive(Debug)]
pub enum MediaCmd {
    Open { ctx: CallContext, sockets: [std::net::UdpSocket; 4], sink: Option<Box<RecordSink>> },
    Call { call: u64, cmd: RelayCmd },
}

/// The driver's end of the media threads: calls are spread over them by call number, so a
/// burst of packets is drained by every core. Commands are queued by [`MediaHandle::send`] and
/// the threads woken once per batch by [`MediaHandle::flush`]: one wake-up (a context switch)
/// per driver turn instead of one per command.
#[derive(Clone)]
pub struct MediaHandle {
    threads: Vec<(Sender<MediaCmd>, Arc<EventFd>, Arc<AtomicBool>)>,
}

impl MediaHandle {
    /// Queues a command for the thread that owns the call; [`MediaHandle::flush`] delivers it.
    pub fn send(&self, cmd: MediaCmd) {
        let call = match &cmd {
            MediaCmd::Open { ctx, .. } => ctx.call,
            MediaCmd::Call { call, .. } => *call,
        };
        let (tx, _, pending) = &self.threads[(call as usize) % self.threads.len()];
        if tx.send(cmd).is_ok() {
            pending.store(true, Ordering::Relaxed);
        }
    }

    /// Wakes the threads that have commands queued.
    pub fn flush(&self) {
        for (_, waker, pending) in &self.threads {
            if pending.swap(false, Ordering::Relaxed) {
                let _ = waker.write(1);
            }
        }
    }
}

struct CallMedia {
    ctx: CallContext,
    socks: [UdpSocket; 4],
    session: Session,
    sink: Option<RecordSink>,
    last: Snapshot,
    /// Packets from rejected sources already counted in the metrics.
    rejected_reported: u64,
    /// The call's audio is streamed (its streams live on the thread's streaming worker).
    streamed: bool,
    /// The call is recorded by a recording server: copies of its RTP go there.
    fork: Option<Fork>,
}

impl CallMedia {
    /// One packet through the session; a streamed call's accepted RTP is kept in `deferred`
    /// for its streams, which take it on the streaming worker after the turn.
    #[allow(clippy::too_many_arguments)]
    fn relay(
        &mut self,
        deferred: &mut Deferred,
        side: Side,
        component: Component,
        from: std::net::SocketAddr,
        buf: &mut [u8],
        n: usize,
        now: Instant,
    ) -> Option<(media::relay::Forward, usize)> {
        match (self.streamed, self.fork.as_mut()) {
            (false, None) => self.session.on_packet_mut(side, component, from, buf, n, now),
            (true, None) => {
                let mut tap = deferred.tap(self.ctx.call);
                self.session.on_packet_tapped(side, component, from, buf, n, now, &mut tap)
            }
            (true, Some(fork)) => {
                let mut tap = ForkTap { inner: deferred.tap(self.ctx.call), fork };
                self.session.on_packet_tapped(side, component, from, buf, n, now, &mut tap)
            }
            (false, Some(fork)) => {
                let mut tap = ForkTap { inner: (), fork };
                self.session.on_packet_tapped(side, component, from, buf, n, now, &mut tap)
            }
        }
    }
}

/// One packet in this many has its relay latency measured (a clock read after its send).
const LATENCY_SAMPLE: u32 = 16;

/// An epoll set with a wake-up eventfd in it (token [`WAKER`]): what a media thread waits on.
pub(crate) fn epoll_with_waker() -> std::io::Result<(Epoll, Arc<EventFd>)> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(std::io::Error::from)?;
    let waker = Arc::new(
        EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(std::io::Error::from)?,
    );
    epoll
        .add(waker.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKER))
        .map_err(std::io::Error::from)?;
    Ok((epoll, waker))
}

/// Starts one media thread per core, timing sessions per `timing` on `clock`. Silent calls are
/// reported on `silent`; relay latencies go to `registry` once a second. Calls whose context
/// asks for streaming are streamed through `streamer`.
pub fn start(
    clock: Clock,
    timing: Timing,
    silent: tokio::sync::mpsc::Sender<u64>,
    registry: Arc<std::sync::Mutex<metrics::Registry>>,
    streamer: Streamer,
) -> std::io::Result<MediaHandle> {
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let (epoll, waker) = epoll_with_waker()?;
        let (tx, rx) = channel();
        let silent = silent.clone();
        let worker = Worker::start(format!("voicegw-stream-{i}"), clock, registry.clone())?;
        let thread_waker = waker.clone();
        let registry = registry.clone();
        let streamer = streamer.clone();
        std::thread::Builder::new().name(format!("voicegw-media-{i}")).spawn(move || {
            run(clock, epoll, thread_waker, rx, timing, silent, registry, streamer, worker)
        })?;
        threads.push((tx, waker, Arc::new(AtomicBool::new(false))));
    }
    Ok(MediaHandle { threads })
}

fn side_sock(c: Component, side: Side) -> usize {
    match (side, c) {
        (Side::A, Component::Rtp) => 0,
        (Side::A, Component::Rtcp) => 1,
        (Side::B, Component::Rtp) => 2,
        (Side::B, Component::Rtcp) => 3,
    }
}

/// Longest wait for packets or commands before the thread looks at the time again.
const MAX_WAIT: Duration = Duration::from_millis(250);

/// How much later than due a session's timer may run, so that a thread with many sessions
/// (their timers spread over the second) visits them a few times a second, not once per
/// session.
const VISIT_SLACK: Duration = Duration::from_millis(50);

#[allow(clippy::too_many_arguments)]
fn run(
    clock: Clock,
    epoll: Epoll,
    waker: Arc<EventFd>,
    rx: Receiver<MediaCmd>,
    timing: Timing,
    silent: tokio::sync::mpsc::Sender<u64>,
    registry: Arc<std::sync::Mutex<metrics::Registry>>,
    streamer: Streamer,
    worker: Worker,
) {
    let mut latency = metrics::Latency::new();
    // Packets from rejected sources not yet added to the metrics (once a second, one lock).
    let mut rejected = 0u64;
    let mut sample = 0u32;
    let mut events = [EpollEvent::empty(); 1024];
    // Calls live in slots; a socket's token is slot * 4 + socket index.
    let mut slots: Vec<Option<CallMedia>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut by_call: HashMap<u64, usize> = HashMap::new();
    let mut buf = [0u8; BUF];
    // Streamed calls' RTP of the current turn, for the streaming worker once it was sent.
    let mut deferred = Deferred::default();
    let mut now = clock.now();
    // When the sessions are next visited: the earliest of their timeouts, at most TICK ahead.
    let mut next_visit = now + TICK;
    loop {
        let wait = (next_visit - now).min(MAX_WAIT);
        // Rounded up: less than a millisecond to wait must not become a busy poll.
        let wait_ms = u16::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
        let ready = epoll.wait(&mut events, wait_ms).unwrap_or(0);
        now = clock.now();
        // Commands first: a call's peers and keys are known before its packets are read.
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                MediaCmd::Open { ctx, sockets, sink } => {
                    let slot = free.pop().unwrap_or_else(|| {
                        slots.push(None);
                        slots.len() - 1
                    });
                    let socks = sockets;
                    let mut ok = true;
                    for (i, s) in socks.iter().enumerate() {
                        ok &= s.set_nonblocking(true).is_ok();
                        let token = (slot * 4 + i) as u64;
                        ok &= epoll
                            .add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
                            .is_ok();
                    }
                    if !ok {
                        tracing::error!(
                            call = ctx.call,
                            "media sockets could not be registered; call has no media relay"
                        );
                        for s in &socks {
                            let _ = epoll.delete(s.as_fd());
                        }
                        free.push(slot);
                        continue;
                    }
                    by_call.insert(ctx.call, slot);
                    let mut session = Session::start(ctx.latching, timing, now);
                    session.set_record_only(ctx.record_only);
                    if let Some(t) = session.poll_timeout() {
                        next_visit = next_visit.min(t);
                    }
                    let streamed = match ctx.stream.as_ref() {
                        Some(spec) => {
                            let streams = CallStreams::new(&ctx, spec, streamer.clone());
                            worker.open(ctx.call, streams);
                            true
                        }
                        None => false,
                    };
                    slots[slot] = Some(CallMedia {
                        ctx,
                        socks,
                        session,
                        sink: sink.map(|s| *s),
                        last: Snapshot::default(),
                        rejected_reported: 0,
                        streamed,
                        fork: None,
                    });
                }
                MediaCmd::Call { call, cmd } => {
                    let Some(&slot) = by_call.get(&call) else { continue };
                    let Some(cm) = slots[slot].as_mut() else { continue };
                    match cmd {
                        RelayCmd::Peer { side, rtp, rtcp, mux, rates } => {
                            cm.session.set_peer(side, rtp, rtcp, mux, rates)
                        }
                        RelayCmd::Srtp { side, inbound, outbound } => {
                            let ctx = |k: Option<(media::srtp::Suite, media::srtp::MasterKey)>| {
                                k.map(|(s, key)| media::srtp::Context::new(s, &key))
                            };
                            cm.session.set_srtp(side, ctx(inbound), ctx(outbound));
                        }
                        RelayCmd::Fork { sockets } => cm.fork = Some(Fork::new(sockets)),
                        RelayCmd::ForkTo { to } => {
                            if let Some(f) = cm.fork.as_mut() {
                                f.set_to(to);
                            }
                        }
                        RelayCmd::Unfork => {
                            if let Some(f) = cm.fork.take() {
                                log_fork_end(call, &f);
                            }
                        }
                        RelayCmd::Close => {
                            by_call.remove(&call);
                            if let Some(mut cm) = slots[slot].take() {
                                relay_queued(&mut cm, &mut deferred, &mut buf, now);
                                if cm.streamed {
                                    worker.batch(&mut deferred);
                                    worker.close(call, now);
                                }
                                rejected += report_rejected(&mut cm);
                                write_record(
                                    &cm.ctx,
                                    &cm.session,
                                    &cm.last,
                                    cm.sink.as_ref(),
                                    clock.wall(),
                                );
                                for s in &cm.socks {
                                    let _ = epoll.delete(s.as_fd());
                                }
                                log_end(&cm);
                            }
                            free.push(slot);
                        }
                    }
                }
            }
        }
        for ev in &events[..ready] {
            let token = ev.data();
            if token == WAKER {
                let _ = waker.read(); // reset the eventfd; the commands were taken above
                continue;
            }
            let (slot, idx) = ((token / 4) as usize, (token % 4) as usize);
            let Some(Some(cm)) = slots.get_mut(slot) else { continue };
            let (side, component) = match idx {
                0 => (Side::A, Component::Rtp),
                1 => (Side::A, Component::Rtcp),
                2 => (Side::B, Component::Rtp),
                _ => (Side::B, Component::Rtcp),
            };
            // Level-triggered: one packet per event; more waiting means ready again next turn.
            let (n, from) = match cm.socks[idx].recv_from(&mut buf[..RECV_MAX]) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    // An ICMP error reported on the socket: nothing to relay.
                    tracing::debug!(call = cm.ctx.call, error = %e, "media socket read failed");
                    continue;
                }
            };
            let relayed = cm.relay(&mut deferred, side, component, from, &mut buf, n, now);
            if let Some((f, len)) = relayed {
                let _ = cm.socks[side_sock(f.component, f.side)].send_to(&buf[..len], f.to);
                sample += 1;
                if sample == LATENCY_SAMPLE {
                    // From the turn's clock read (epoll returned) to this packet's send.
                    sample = 0;
                    latency.record((clock.now() - now).as_secs_f64());
                }
            }
        }
        // The turn's packets were sent: their streamed payloads go to the worker.
        worker.batch(&mut deferred);
        // The sessions that are due (the clock was read once for this turn above).
        if now >= next_visit {
            next_visit = now + TICK;
            for cm in slots.iter_mut().flatten() {
                if cm.session.poll_timeout().is_some_and(|t| t <= now) {
                    cm.session.handle_timeout(now);
                    while let Some(ev) = cm.session.poll_event() {
                        on_session_event(cm, ev, &silent, clock);
                    }
                }
                if let Some(t) = cm.session.poll_timeout() {
                    next_visit = next_visit.min(t);
                }
                rejected += report_rejected(cm);
            }
            // Sessions whose timers fall close together are visited together (each visit walks
            // every session of the thread), each timer at most VISIT_SLACK late.
            next_visit = next_visit.max(now + VISIT_SLACK);
            if latency.count() > 0 || rejected > 0 {
                let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
                let labels = metrics::Labels::default();
                if latency.count() > 0 {
                    r.merge_latency(metrics::names::RELAY_LATENCY_SECONDS, &labels, &latency);
                    latency = metrics::Latency::new();
                }
                if rejected > 0 {
                    r.add(metrics::names::MEDIA_REJECTED_SOURCE_PACKETS, &labels, rejected as f64);
                    rejected = 0;
                }
            }
        }
    }
}

/// Carries out what a session decided on its timeout.
fn on_session_event(
    cm: &mut CallMedia,
    ev: SessionEvent,
    silent: &tokio::sync::mpsc::Sender<u64>,
    clock: Clock,
) {
    match ev {
        SessionEvent::Transmit { side, component, to, packet } => {
            let _ = cm.socks[side_sock(component, side)].send_to(&packet, to);
        }
        SessionEvent::RecordDue => {
            cm.last = write_record(&cm.ctx, &cm.session, &cm.last, cm.sink.as_ref(), clock.wall());
        }
        SessionEvent::Silent { silent_for } => {
            // The driver hangs up answered calls.
            tracing::info!(call = cm.ctx.call, secs = silent_for.as_secs(), "no media either way");
            let _ = silent.try_send(cm.ctx.call);
        }
    }
}

/// Most packets read from one socket of a call that closes.
const CLOSE_DRAIN_MAX: usize = 512;

/// Relays (and counts) what already waits in a closing call's sockets: packets that arrived
/// before the BYE was handled belong to the call and its last record, however busy the
/// machine was.
fn relay_queued(cm: &mut CallMedia, deferred: &mut Deferred, buf: &mut [u8; BUF], now: Instant) {
    for (idx, side, component) in [
        (0, Side::A, Component::Rtp),
        (1, Side::A, Component::Rtcp),
        (2, Side::B, Component::Rtp),
        (3, Side::B, Component::Rtcp),
    ] {
        for _ in 0..CLOSE_DRAIN_MAX {
            let Ok((n, from)) = cm.socks[idx].recv_from(&mut buf[..RECV_MAX]) else { break };
            if let Some((f, len)) = cm.relay(deferred, side, component, from, buf, n, now) {
                let _ = cm.socks[side_sock(f.component, f.side)].send_to(&buf[..len], f.to);
            }
        }
    }
}

/// A call's packets from rejected sources since the last report (for the metrics); logs the
/// first of them.
fn report_rejected(cm: &mut CallMedia) -> u64 {
    let (a, b) = (cm.session.side(Side::A), cm.session.side(Side::B));
    let total = a.dropped_wrong_source + b.dropped_wrong_source;
    if total == cm.rejected_reported {
        return 0;
    }
    if cm.rejected_reported == 0 {
        for (name, st) in [("A", a), ("B", b)] {
            if let Some(src) = st.last_rejected_source {
                tracing::warn!(
                    call = cm.ctx.call,
                    leg = name,
                    source = %src,
                    expected = ?st.peer.latched_rtp.or(st.peer.sdp_rtp),
                    "media from an unexpected source dropped"
                );
            }
        }
    }
    let new = total - cm.rejected_reported;
    cm.rejected_reported = total;
    new
}

fn log_fork_end(call: u64, f: &Fork) {
    tracing::info!(
        call,
        caller_copied = f.sent[0],
        callee_copied = f.sent[1],
        failed = f.failed[0] + f.failed[1],
        not_held_before_answer = f.not_held[0] + f.not_held[1],
        "copies to the recording server ended"
    );
}

fn log_end(cm: &CallMedia) {
    let (a, b) = (cm.session.side(Side::A), cm.session.side(Side::B));
    tracing::info!(
        call = cm.ctx.call,
        a_rtp_in = a.received.rtp_packets,
        b_rtp_in = b.received.rtp_packets,
        a_lost = a.stats.lost(),
        b_lost = b.stats.lost(),
        dropped_wrong_source = a.dropped_wrong_source + b.dropped_wrong_source,
        srtp_failures = a.srtp_failures + b.srtp_failures,
        "media relay ended"
    );
}
