//! The media relay's event loops: one thread per core, each with the sockets of its share of the
//! calls registered with one `mio` poller. A ready socket is drained (edge-triggered) with
//! batched `recvmmsg` reads ([`crate::batch_recv`]) and each packet goes through the call's
//! sans-IO [`Session`] and straight back out with a non-blocking `send_to`: no task wake-up, no
//! allocation per packet. Commands (new call, peer addresses, SRTP keys, close) arrive over a
//! channel with a poller wake-up; once a second the thread sends voicegw's own SRs, checks media
//! inactivity and writes the media-quality records that are due.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::relay::{Component, Session, Side};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::batch_recv::{Batch, BatchReceiver, BATCH};
use crate::media_anchor::CallContext;
use crate::relay_task::{
    ntp_now, write_record, RecordSink, RelayCmd, RelayTiming, Snapshot, RECV_MAX,
};

const WAKER: Token = Token(usize::MAX);

/// What the driver sends the media thread.
#[derive(Debug)]
pub enum MediaCmd {
    Open { ctx: CallContext, sockets: [std::net::UdpSocket; 4], sink: Option<RecordSink> },
    Call { call: u64, cmd: RelayCmd },
}

/// The driver's end of the media threads: calls are spread over them by call number, so a
/// burst of packets is drained by every core. Commands are queued by [`MediaHandle::send`] and
/// the threads woken once per batch by [`MediaHandle::flush`]: one wake-up (a context switch)
/// per driver turn instead of one per command.
#[derive(Clone)]
pub struct MediaHandle {
    threads: Vec<(Sender<MediaCmd>, Arc<Waker>, Arc<AtomicBool>)>,
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
                let _ = waker.wake();
            }
        }
    }
}

struct CallMedia {
    ctx: CallContext,
    socks: [UdpSocket; 4],
    /// Whether each socket is IPv6 (the batched reads keep one header set per family).
    ipv6: [bool; 4],
    session: Session,
    sink: Option<RecordSink>,
    last: Snapshot,
    last_record: Instant,
    last_packet: Instant,
}

/// Starts one media thread per core. Silent answered calls are reported on `silent`.
pub fn start(
    timing: RelayTiming,
    silent: tokio::sync::mpsc::Sender<u64>,
) -> std::io::Result<MediaHandle> {
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = channel();
        let silent = silent.clone();
        std::thread::Builder::new()
            .name(format!("voicegw-media-{i}"))
            .spawn(move || run(poll, rx, timing, silent))?;
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

fn run(
    mut poll: Poll,
    rx: Receiver<MediaCmd>,
    timing: RelayTiming,
    silent: tokio::sync::mpsc::Sender<u64>,
) {
    let start = Instant::now();
    let mut events = Events::with_capacity(1024);
    // Calls live in slots; a socket's token is slot * 4 + socket index.
    let mut slots: Vec<Option<CallMedia>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut by_call: HashMap<u64, usize> = HashMap::new();
    let mut rx_batch = BatchReceiver::new();
    let mut last_tick = Instant::now();
    loop {
        if poll.poll(&mut events, Some(Duration::from_millis(250))).is_err() {
            continue;
        }
        // Commands first: a call's peers and keys are known before its packets are read.
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                MediaCmd::Open { ctx, sockets, sink } => {
                    let slot = free.pop().unwrap_or_else(|| {
                        slots.push(None);
                        slots.len() - 1
                    });
                    let mut socks = sockets.map(|s| {
                        let _ = s.set_nonblocking(true);
                        UdpSocket::from_std(s)
                    });
                    let mut ok = true;
                    for (i, s) in socks.iter_mut().enumerate() {
                        ok &= poll
                            .registry()
                            .register(s, Token(slot * 4 + i), Interest::READABLE)
                            .is_ok();
                    }
                    if !ok {
                        tracing::error!(
                            call = ctx.call,
                            "media sockets could not be registered; call has no media relay"
                        );
                        free.push(slot);
                        continue;
                    }
                    by_call.insert(ctx.call, slot);
                    let ipv6 = socks.each_ref().map(|s| s.local_addr().is_ok_and(|a| a.is_ipv6()));
                    slots[slot] = Some(CallMedia {
                        ctx,
                        socks,
                        ipv6,
                        session: Session::new(),
                        sink,
                        last: Snapshot::default(),
                        last_record: Instant::now(),
                        last_packet: Instant::now(),
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
                        RelayCmd::Close => {
                            by_call.remove(&call);
                            if let Some(mut cm) = slots[slot].take() {
                                write_record(&cm.ctx, &cm.session, &cm.last, cm.sink.as_ref());
                                for s in cm.socks.iter_mut() {
                                    let _ = poll.registry().deregister(s);
                                }
                                log_end(&cm);
                            }
                            free.push(slot);
                        }
                    }
                }
            }
        }
        for ev in events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            let (slot, idx) = (ev.token().0 / 4, ev.token().0 % 4);
            let Some(Some(cm)) = slots.get_mut(slot) else { continue };
            let (side, component) = match idx {
                0 => (Side::A, Component::Rtp),
                1 => (Side::A, Component::Rtcp),
                2 => (Side::B, Component::Rtp),
                _ => (Side::B, Component::Rtcp),
            };
            // Edge-triggered: read until the socket is empty; a short batch proves it is.
            loop {
                let n = match rx_batch.recv(&cm.socks[idx], cm.ipv6[idx], RECV_MAX) {
                    Batch::Packets(n) => n,
                    Batch::Empty => break,
                    Batch::Failed(e) => {
                        tracing::debug!(call = cm.ctx.call, error = %e, "media socket read failed");
                        break;
                    }
                };
                let now = Instant::now();
                cm.last_packet = now;
                let now_ms = (now - start).as_secs_f64() * 1000.0;
                for i in 0..n {
                    let (len, from, buf) = rx_batch.packet(i);
                    let Some(from) = from else { continue };
                    if let Some((f, out)) =
                        cm.session.on_packet_mut(side, component, from, buf, len, now_ms)
                    {
                        let sock = &cm.socks[side_sock(f.component, f.side)];
                        let _ = sock.send_to(&buf[..out], f.to);
                    }
                }
                if n < BATCH {
                    break;
                }
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            let now_ms = start.elapsed().as_secs_f64() * 1000.0;
            let ntp = ntp_now();
            for cm in slots.iter_mut().flatten() {
                for (side, component, to, pkt) in cm.session.poll_rtcp(now_ms, ntp) {
                    let _ = cm.socks[side_sock(component, side)].send_to(&pkt, to);
                }
                if cm.last_record.elapsed() >= timing.record_period {
                    cm.last_record = Instant::now();
                    cm.last = write_record(&cm.ctx, &cm.session, &cm.last, cm.sink.as_ref());
                }
                if let Some(limit) = timing.inactivity {
                    if cm.last_packet.elapsed() >= limit {
                        // Reported once per silent period; the driver hangs up answered calls.
                        cm.last_packet = Instant::now();
                        tracing::info!(
                            call = cm.ctx.call,
                            secs = limit.as_secs(),
                            "no media either way"
                        );
                        let _ = silent.try_send(cm.ctx.call);
                    }
                }
            }
        }
    }
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
