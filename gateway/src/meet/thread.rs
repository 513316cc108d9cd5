//! The meetings' media thread: the participants' sockets in one epoll set, their packets
//! through the sans-IO [`Conference`], the frames it makes sent when due. Commands
//! ([`MeetUpdate`]) arrive over a channel with an eventfd wake-up, as on the relay threads;
//! the keys heard go back to the driver ([`MeetMediaEvent`]), which hands them to the meeting
//! UAS. One thread for every meeting: a 10-person meeting costs a few microseconds a frame.
//! The prompts' audio is loaded when the first participant arrives (synthesised once, then
//! cached: [`super::prompts`]), so a gateway nobody dials into never spends time on it.
//! A recorded meeting's full mix goes to the thread's streaming worker as one more streamed
//! call ([`crate::stream`]: local Matroska files or Kinesis Video Streams, with their reports).

use std::collections::HashMap;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use media::bridge::participant::KeySource;
use media::conference::{Conference, ConferenceEvent, LegReport};
use media::dtmf::Digit;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::eventfd::EventFd;

use super::anchor::MeetUpdate;
use super::prompts::PromptAudio;
use crate::driver::clock::Clock;
use crate::relay::anchor::CallContext;
use crate::relay::record::{write_terminated, RecordSink};
use crate::relay::thread::WAKER;
use crate::stream::call::{CallStreams, Streamer};
use crate::stream::deferred::Deferred;
use crate::stream::worker::Worker;
use std::path::PathBuf;

/// Longest wait before the thread looks at the time again.
const MAX_WAIT: Duration = Duration::from_millis(250);
/// Most packets read from one socket per turn (a flood cannot starve the others).
const READS_PER_TURN: usize = 32;

/// What the meetings' media tells the driver.
#[derive(Debug)]
pub enum MeetMediaEvent {
    Key { call: u64, digit: Digit, source: KeySource },
    Closed { call: u64, report: LegReport },
}

/// The driver's end of the thread.
#[derive(Clone)]
pub struct MeetHandle {
    tx: Sender<MeetUpdate>,
    waker: Arc<EventFd>,
}

impl MeetHandle {
    /// Queues `u`; [`MeetHandle::flush`] wakes the thread.
    pub fn send(&self, u: MeetUpdate) {
        let _ = self.tx.send(u);
    }

    pub fn flush(&self) {
        let _ = self.waker.write(1);
    }
}

/// What the thread is started with.
pub struct Setup {
    pub clock: Clock,
    /// Where the prompts are cached (`<data>/prompts`).
    pub data_dir: PathBuf,
    pub events: tokio::sync::mpsc::UnboundedSender<MeetMediaEvent>,
    /// Recorded meetings' streams go there.
    pub streamer: Streamer,
    pub registry: Arc<std::sync::Mutex<metrics::Registry>>,
    /// Participants' media-quality records (formats.md §4), every `record_period` and at
    /// the end of each leg.
    pub records: RecordSink,
    pub record_period: Duration,
}

/// Starts the thread.
pub fn start(setup: Setup) -> std::io::Result<MeetHandle> {
    let Setup { clock, data_dir, events, streamer, registry, records, record_period } = setup;
    let worker = Worker::start("voicegw-meet-stream".into(), clock, registry)?;
    let (epoll, waker) = crate::relay::thread::epoll_with_waker()?;
    let (tx, rx) = channel();
    let thread_waker = waker.clone();
    std::thread::Builder::new().name("voicegw-meet".into()).spawn(move || {
        let recorder = Recorder {
            worker,
            streamer,
            deferred: Deferred::default(),
            by_meeting: HashMap::new(),
            quality: Quality { sink: records, period: record_period, legs: HashMap::new() },
        };
        run(clock, epoll, &thread_waker, rx, data_dir, events, recorder)
    })?;
    Ok(MeetHandle { tx, waker })
}

/// A participant's sockets: RTP, RTCP.
type Sockets = [UdpSocket; 2];

/// The recorded meetings: their streams on the worker, by meeting; and the participants'
/// media-quality records.
struct Recorder {
    worker: Worker,
    streamer: Streamer,
    deferred: Deferred,
    by_meeting: HashMap<String, u64>,
    quality: Quality,
}

/// The participants' media-quality records: who each is, and the losses last written.
struct Quality {
    sink: RecordSink,
    period: Duration,
    legs: HashMap<u64, (Box<CallContext>, [u64; 4])>,
}

impl Quality {
    /// Writes call `call`'s record for the period since its last.
    fn write(&mut self, conf: &mut Conference, call: u64, clock: Clock) {
        let Some((ctx, lost)) = self.legs.get_mut(&call) else { return };
        let Some(q) = conf.quality_period(call) else { return };
        *lost = write_terminated(ctx, q, lost, &self.sink, clock.wall());
    }
}

fn run(
    clock: Clock,
    epoll: Epoll,
    waker: &EventFd,
    rx: Receiver<MeetUpdate>,
    data_dir: PathBuf,
    events: tokio::sync::mpsc::UnboundedSender<MeetMediaEvent>,
    mut recorder: Recorder,
) {
    let mut prompts: Option<PromptAudio> = None;
    let mut next_record = clock.now() + recorder.quality.period;
    let mut conf = Conference::new();
    let mut socks: HashMap<u64, Sockets> = HashMap::new();
    let mut ready = [EpollEvent::empty(); 256];
    let mut buf = [0u8; 2048];
    loop {
        let now = clock.now();
        let wait = conf.poll_timeout().map_or(MAX_WAIT, |t| (t - now).min(MAX_WAIT));
        let wait_ms = u16::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
        let n = epoll.wait(&mut ready, wait_ms).unwrap_or(0);
        let now = clock.now();
        for ev in &ready[..n] {
            let token = ev.data();
            if token == WAKER {
                let _ = waker.read();
                continue;
            }
            let (call, component) = (token >> 1, (token & 1) as usize);
            let Some(s) = socks.get(&call) else { continue };
            for _ in 0..READS_PER_TURN {
                let Ok((len, from)) = s[component].recv_from(&mut buf) else { break };
                // RTCP from the participant is read and let go (reports are not kept yet).
                if component == 0 {
                    conf.rtp(call, from, &mut buf, len, now);
                } else {
                    conf.rtcp(call, from, len);
                }
            }
        }
        loop {
            match rx.try_recv() {
                Ok(u) => {
                    if matches!(u, MeetUpdate::Open { .. }) && prompts.is_none() {
                        let (audio, sources) = super::prompts::load(&data_dir);
                        tracing::info!(?sources, "meeting prompts loaded");
                        prompts = Some(audio);
                    }
                    let prompts = prompts.as_ref();
                    let mut cx = Cx {
                        conf: &mut conf,
                        socks: &mut socks,
                        epoll: &epoll,
                        recorder: &mut recorder,
                        clock,
                    };
                    cx.command(u, prompts, &events, now)
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
        }
        if now >= next_record {
            next_record = now + recorder.quality.period;
            let calls: Vec<u64> = recorder.quality.legs.keys().copied().collect();
            for call in calls {
                recorder.quality.write(&mut conf, call, clock);
            }
        }
        while let Some(ConferenceEvent::Key { call, digit, source }) = conf.poll_event() {
            let _ = events.send(MeetMediaEvent::Key { call, digit, source });
        }
        if conf.poll_timeout().is_some_and(|t| t <= now) {
            let Recorder { by_meeting, deferred, .. } = &mut recorder;
            conf.handle_timeout(
                now,
                &mut |call, to, packet| {
                    if let Some(s) = socks.get(&call) {
                        let _ = s[0].send_to(packet, to);
                    }
                },
                &mut |meeting, packet| {
                    let Some(&call) = by_meeting.get(meeting) else { return };
                    if let Ok(h) = media::rtp::RtpHeader::parse(packet) {
                        media::relay::Tap::rtp(
                            &mut deferred.tap(call),
                            media::relay::Side::A,
                            &h,
                            packet,
                            now,
                        );
                    }
                },
            );
            recorder.worker.batch(&mut recorder.deferred);
        }
    }
}

/// What a command works on.
struct Cx<'a> {
    conf: &'a mut Conference,
    socks: &'a mut HashMap<u64, Sockets>,
    epoll: &'a Epoll,
    recorder: &'a mut Recorder,
    clock: Clock,
}

impl Cx<'_> {
    fn command(
        &mut self,
        u: MeetUpdate,
        prompts: Option<&PromptAudio>,
        events: &tokio::sync::mpsc::UnboundedSender<MeetMediaEvent>,
        now: common::Instant,
    ) {
        let Cx { conf, socks, epoll, recorder, clock } = self;
        match u {
            MeetUpdate::Open { call, sockets, spec } => {
                let mut ok = true;
                for (i, s) in sockets.iter().enumerate() {
                    ok &= s.set_nonblocking(true).is_ok();
                    let token = (call << 1) | i as u64;
                    ok &= epoll.add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token)).is_ok();
                }
                if !ok {
                    tracing::error!(call, "meeting media sockets could not be registered");
                }
                socks.insert(call, sockets);
                conf.open(call, *spec, now);
            }
            MeetUpdate::Play { call, prompt } => {
                if let Some(p) = prompts {
                    conf.play(call, p.clip(prompt));
                }
            }
            MeetUpdate::StopPrompts { call } => conf.stop_prompts(call),
            MeetUpdate::Bridge { call, meeting } => conf.bridge(call, &meeting, now),
            MeetUpdate::Muted { call, muted } => conf.set_muted(call, muted),
            MeetUpdate::Close { call } => {
                if let Some(s) = socks.remove(&call) {
                    for s in &s {
                        let _ = epoll.delete(s.as_fd());
                    }
                }
                // The leg's last record, then it goes.
                recorder.quality.write(conf, call, *clock);
                recorder.quality.legs.remove(&call);
                if let Some(report) = conf.close(call) {
                    let _ = events.send(MeetMediaEvent::Closed { call, report });
                }
            }
            MeetUpdate::Identify { call, ctx } => {
                if socks.contains_key(&call) {
                    recorder.quality.legs.insert(call, (ctx, [0; 4]));
                }
            }
            MeetUpdate::Record { meeting, call, ctx } => {
                let Some(spec) = ctx.stream.as_deref() else { return };
                if recorder.by_meeting.contains_key(&meeting) {
                    return;
                }
                let streams = CallStreams::new(&ctx, spec, recorder.streamer.clone());
                recorder.worker.open(call, streams);
                recorder.by_meeting.insert(meeting.clone(), call);
                conf.record(&meeting, true, rand::random());
            }
            MeetUpdate::StopRecord { meeting } => {
                conf.record(&meeting, false, 0);
                if let Some(call) = recorder.by_meeting.remove(&meeting) {
                    recorder.worker.batch(&mut recorder.deferred);
                    recorder.worker.close(call, now);
                }
            }
        }
    }
}
