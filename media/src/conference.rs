//! Meeting participants' media, sans-IO (issue 14): every participant's leg (its address,
//! SRTP, the keys heard in its RTP, the prompts played to it) and every meeting's [`Bridge`].
//!
//! - A leg's RTP is taken only from the address its SDP gave (the IP; room systems and
//!   softphones send symmetric RTP), decrypted when SRTP, counted ([`ReceiveStats`]), searched
//!   for keys ([`KeyListener`]) and, once the leg is in a meeting, given to the bridge.
//! - Out, every 20 ms: a leg in a meeting gets its bridge's mix, with its prompt (if one plays)
//!   mixed in; a leg not in a meeting yet (the IVR, waiting for the moderator) gets its prompt
//!   or silence, on one clock for all of them, so its device hears a steady stream. The leg
//!   keeps one RTP stream (SSRC, sequence, timestamp) from its first packet to its last, in and
//!   out of the bridge.
//! - Keys found come out as [`ConferenceEvent::Key`].
//!
//! Time comes in as `now`; the driver reads sockets and sends what [`Conference::handle_timeout`]
//! gives it. No allocation per packet or frame.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use common::Instant;

use crate::bridge::participant::{KeyListener, KeySource, PromptPlayer};
use crate::bridge::{Bridge, FRAME, PERIOD, RECORDING};
use crate::dtmf::Digit;
use crate::g711::Law;
use crate::quality::{minus, terminated_leg, LegQuality};
use crate::relay::Counters;
use crate::rtp::RtpHeader;
use crate::srtp::{Context, MasterKey, Suite};
use crate::stats::{Arrival, ReceiveStats};

/// A participant's call number.
pub type CallId = u64;

/// The most 20 ms frames in one packet sent to a leg (60 ms).
pub const MAX_FRAMES_PER_PACKET: u8 = 3;

/// How a leg's media was negotiated.
#[derive(Debug, Clone)]
pub struct LegSpec {
    pub law: Law,
    /// The telephone-event payload type, when negotiated.
    pub dtmf_pt: Option<u8>,
    /// Where its RTP goes (the SDP's address); RTP is taken from this IP only, unless the leg
    /// may learn its source (below).
    pub peer: SocketAddr,
    /// Plain RTP from another address moves the leg there (once: the first source that
    /// sends valid RTP). An SRTP leg always follows its authenticated packets (only the key's
    /// holder can make one; a replay is refused by SRTP itself).
    pub learn_source: bool,
    /// SDES: the suite, the participant's key (what it sends) and voicegw's (what it gets).
    pub srtp: Option<(Suite, MasterKey, MasterKey)>,
    /// voicegw's RTP stream to it: SSRC, first sequence number and timestamp (random).
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    /// 20 ms frames per packet it is sent (its `a=ptime` of 20, 40 or 60 ms): 1 to
    /// [`MAX_FRAMES_PER_PACKET`].
    pub frames_per_packet: u8,
}

/// What the conference reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConferenceEvent {
    Key { call: CallId, digit: Digit, source: KeySource },
}

/// What a leg saw, when it closes.
#[derive(Debug, Clone, Default)]
pub struct LegReport {
    pub packets_in: u64,
    pub packets_out: u64,
    pub lost: i64,
    pub jitter_ms: Option<f64>,
    pub dropped_wrong_source: u64,
    pub srtp_failures: u64,
    /// Times the leg's address moved to where its media came from.
    pub latched: u64,
}

struct Leg {
    spec: LegSpec,
    keys: KeyListener,
    prompts: PromptPlayer,
    srtp_in: Option<Context>,
    srtp_out: Option<Context>,
    meeting: Option<String>,
    /// The next packet's sequence number, and the next frame's timestamp.
    seq: u16,
    timestamp: u32,
    /// Frames waiting to fill a packet (ptime above 20 ms), and the first one's timestamp.
    pending: [u8; MAX_FRAMES_PER_PACKET as usize * FRAME],
    pending_frames: u8,
    pending_ts: u32,
    stats: ReceiveStats,
    report: LegReport,
    /// Received and sent so far, and at the last quality period.
    received: Counters,
    sent: Counters,
    last: (Counters, Counters),
}

/// See the module documentation.
pub struct Conference {
    legs: HashMap<CallId, Leg>,
    bridges: HashMap<String, Bridge>,
    /// The clock of the legs not in a meeting (while there are any).
    solo_next: Option<Instant>,
    events: VecDeque<ConferenceEvent>,
    frame: [i16; FRAME],
    payload: [u8; FRAME],
    out: [u8; OUT],
}

/// A packet sent: header, up to 60 ms of G.711, an SRTP tag.
const OUT: usize = 12 + MAX_FRAMES_PER_PACKET as usize * FRAME + 16;

/// The leg's prompt (if one plays) mixed into `payload`, in `law`.
fn mix_prompt(prompts: &mut PromptPlayer, frame: &mut [i16; FRAME], law: Law, payload: &mut [u8]) {
    if !prompts.next_frame(frame) {
        return;
    }
    for (b, s) in payload.iter_mut().zip(frame.iter()) {
        *b = law.encode(law.decode(*b).saturating_add(*s));
    }
}

impl Default for Conference {
    fn default() -> Self {
        Conference {
            legs: HashMap::new(),
            bridges: HashMap::new(),
            solo_next: None,
            events: VecDeque::new(),
            frame: [0; FRAME],
            payload: [0; FRAME],
            out: [0; OUT],
        }
    }
}

impl Conference {
    pub fn new() -> Conference {
        Conference::default()
    }

    /// Legs open.
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    /// Meetings with a bridge running.
    pub fn meetings(&self) -> usize {
        self.bridges.len()
    }

    /// Call `call`'s leg opens (out of any meeting: it hears its prompts, or silence). A leg
    /// already open under that number is closed first.
    pub fn open(&mut self, call: CallId, spec: LegSpec, now: Instant) {
        self.close(call);
        let (srtp_in, srtp_out) = match &spec.srtp {
            Some((suite, theirs, ours)) => {
                (Some(Context::new(*suite, theirs)), Some(Context::new(*suite, ours)))
            }
            None => (None, None),
        };
        let leg = Leg {
            keys: KeyListener::new(spec.law, spec.dtmf_pt),
            prompts: PromptPlayer::new(),
            srtp_in,
            srtp_out,
            meeting: None,
            seq: spec.seq,
            timestamp: spec.timestamp,
            pending: [0; MAX_FRAMES_PER_PACKET as usize * FRAME],
            pending_frames: 0,
            pending_ts: 0,
            stats: ReceiveStats::new(),
            report: LegReport::default(),
            received: Counters::default(),
            sent: Counters::default(),
            last: (Counters::default(), Counters::default()),
            spec,
        };
        self.legs.insert(call, leg);
        self.solo_next.get_or_insert(now + PERIOD);
    }

    /// Call `call`'s leg closes: it leaves its bridge (fading out); what it saw is returned.
    pub fn close(&mut self, call: CallId) -> Option<LegReport> {
        let leg = self.legs.remove(&call)?;
        if let Some(b) = leg.meeting.as_ref().and_then(|m| self.bridges.get_mut(m)) {
            b.leave(call);
        }
        let mut r = leg.report;
        r.lost = leg.stats.lost();
        r.jitter_ms = leg.stats.mean_jitter_ms();
        Some(r)
    }

    /// Queues `clip` for call `call` after the prompts playing.
    pub fn play(&mut self, call: CallId, clip: Arc<[i16]>) {
        if let Some(l) = self.legs.get_mut(&call) {
            l.prompts.play(clip);
        }
    }

    pub fn stop_prompts(&mut self, call: CallId) {
        if let Some(l) = self.legs.get_mut(&call) {
            l.prompts.stop();
        }
    }

    /// Call `call` joins meeting `meeting`'s bridge (started with its first participant).
    pub fn bridge(&mut self, call: CallId, meeting: &str, now: Instant) {
        let Some(l) = self.legs.get_mut(&call) else { return };
        if l.meeting.as_deref() == Some(meeting) {
            return;
        }
        if let Some(b) = l.meeting.as_ref().and_then(|m| self.bridges.get_mut(m)) {
            b.leave(call);
        }
        l.meeting = Some(meeting.to_string());
        let b = self.bridges.entry(meeting.to_string()).or_default();
        b.join(call, l.spec.law, l.spec.ssrc, l.seq, l.timestamp, now);
    }

    pub fn set_muted(&mut self, call: CallId, muted: bool) {
        let Some(l) = self.legs.get(&call) else { return };
        if let Some(b) = l.meeting.as_ref().and_then(|m| self.bridges.get_mut(m)) {
            b.set_muted(call, muted);
        }
    }

    /// Starts or stops recording meeting `meeting` (its full mix, µ-law RTP stream `ssrc`, to
    /// [`Conference::handle_timeout`]'s `record`).
    pub fn record(&mut self, meeting: &str, on: bool, ssrc: u32) {
        if let Some(b) = self.bridges.get_mut(meeting) {
            b.set_recording(on, ssrc);
        }
    }

    /// The active speaker of meeting `meeting`.
    pub fn active_speaker(&self, meeting: &str) -> Option<CallId> {
        self.bridges.get(meeting).and_then(Bridge::active_speaker)
    }

    /// An RTP packet for call `call` from `from` (`buf[..n]`, decrypted in place when SRTP).
    pub fn rtp(&mut self, call: CallId, from: SocketAddr, buf: &mut [u8], n: usize, now: Instant) {
        let Some(l) = self.legs.get_mut(&call) else { return };
        let srtp = l.srtp_in.is_some();
        // Plain RTP learns once; SRTP follows what authenticates.
        let may_learn = srtp || (l.spec.learn_source && l.report.latched == 0);
        if from.ip() != l.spec.peer.ip() && !may_learn {
            l.report.dropped_wrong_source += 1;
            return;
        }
        let Some(packet) = buf.get_mut(..n) else { return };
        let n = match l.srtp_in.as_mut() {
            Some(ctx) => match ctx.unprotect_rtp(packet) {
                Ok(len) => len,
                Err(_) => {
                    l.report.srtp_failures += 1;
                    return;
                }
            },
            None => n,
        };
        let packet = &packet[..n];
        let Ok(h) = RtpHeader::parse(packet) else { return };
        l.received.rtp_packets += 1;
        l.received.rtp_bytes += n as u64;
        if from != l.spec.peer && may_learn {
            l.spec.peer = from;
            l.report.latched += 1;
        }
        l.report.packets_in += 1;
        let at_ms = now.since_origin().as_secs_f64() * 1000.0;
        l.stats.on_packet(&Arrival {
            sequence: h.sequence,
            timestamp: h.timestamp,
            payload_type: h.payload_type,
            marker: h.marker,
            payload_len: h.payload_len,
            at_ms,
            clock_rate: Some(8000),
            comfort_noise: h.payload_type == 13,
        });
        let events = &mut self.events;
        l.keys.rtp_parsed(&h, packet, |digit, source| {
            events.push_back(ConferenceEvent::Key { call, digit, source })
        });
        if let Some(b) = l.meeting.as_ref().and_then(|m| self.bridges.get_mut(m)) {
            b.rtp_parsed(call, &h, packet);
        }
    }

    /// An RTCP packet of `len` bytes from call `call`'s peer (counted; reports are not read).
    pub fn rtcp(&mut self, call: CallId, from: SocketAddr, len: usize) {
        if let Some(l) = self.legs.get_mut(&call).filter(|l| from.ip() == l.spec.peer.ip()) {
            l.received.rtcp_packets += 1;
            l.received.rtcp_bytes += len as u64;
        }
    }

    /// Call `call`'s media quality since the last time this was asked (formats.md §4's
    /// customer leg: the participant and voicegw).
    pub fn quality_period(&mut self, call: CallId) -> Option<LegQuality> {
        let l = self.legs.get_mut(&call)?;
        let q = terminated_leg(&l.stats, minus(l.received, l.last.0), minus(l.sent, l.last.1));
        l.last = (l.received, l.sent);
        Some(q)
    }

    pub fn poll_event(&mut self) -> Option<ConferenceEvent> {
        self.events.pop_front()
    }

    /// When [`Conference::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.bridges.values().filter_map(Bridge::poll_timeout).chain(self.solo_next).min()
    }

    /// Makes every frame due at `now`: `send(call, to, packet)` for each leg's, and
    /// `record(meeting, packet)` for each recorded meeting's full mix.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        send: &mut impl FnMut(CallId, SocketAddr, &[u8]),
        record: &mut impl FnMut(&str, &[u8]),
    ) {
        let Conference { legs, bridges, solo_next, frame, payload, out, .. } = self;
        for (meeting, b) in bridges.iter_mut() {
            b.handle_timeout(now, &mut |call, packet| {
                if call == RECORDING {
                    record(meeting, packet);
                    return;
                }
                let Some(l) = legs.get_mut(&call) else { return };
                let Some(audio) = packet.get(12..12 + FRAME) else { return };
                payload.copy_from_slice(audio);
                mix_prompt(&mut l.prompts, frame, l.spec.law, payload);
                // The bridge times this leg's frames from where the leg left them.
                let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
                l.timestamp = ts.wrapping_add(FRAME as u32);
                Self::queue_frame(call, l, ts, payload, out, send);
            });
        }
        bridges.retain(|_, b| !b.is_empty());
        while let Some(t) = solo_next.filter(|t| *t <= now) {
            for (&call, l) in legs.iter_mut().filter(|(_, l)| l.meeting.is_none()) {
                if !l.prompts.next_frame(frame) {
                    frame.fill(0);
                }
                for (b, s) in payload.iter_mut().zip(frame.iter()) {
                    *b = l.spec.law.encode(*s);
                }
                let ts = l.timestamp;
                l.timestamp = l.timestamp.wrapping_add(FRAME as u32);
                Self::queue_frame(call, l, ts, payload, out, send);
            }
            let any_solo = legs.values().any(|l| l.meeting.is_none());
            *solo_next = any_solo.then(|| {
                let next = t + PERIOD;
                // Far behind (a stalled process): skip ahead rather than burst.
                if next < now && now - next > PERIOD * 5 {
                    now + PERIOD
                } else {
                    next
                }
            });
        }
    }

    /// One 20 ms frame (timestamp `ts`) for the leg: sent once its packet is full (at once
    /// at 20 ms, every second or third frame at 40 or 60 ms).
    fn queue_frame(
        call: CallId,
        l: &mut Leg,
        ts: u32,
        frame: &[u8; FRAME],
        out: &mut [u8; OUT],
        send: &mut impl FnMut(CallId, SocketAddr, &[u8]),
    ) {
        let per_packet = l.spec.frames_per_packet.clamp(1, MAX_FRAMES_PER_PACKET);
        if l.pending_frames == 0 {
            l.pending_ts = ts;
        }
        let at = usize::from(l.pending_frames) * FRAME;
        l.pending[at..at + FRAME].copy_from_slice(frame);
        l.pending_frames += 1;
        if l.pending_frames < per_packet {
            return;
        }
        let len = usize::from(per_packet) * FRAME;
        out[0] = 0x80;
        out[1] = l.spec.law.payload_type();
        out[2..4].copy_from_slice(&l.seq.to_be_bytes());
        out[4..8].copy_from_slice(&l.pending_ts.to_be_bytes());
        out[8..12].copy_from_slice(&l.spec.ssrc.to_be_bytes());
        out[12..12 + len].copy_from_slice(&l.pending[..len]);
        l.seq = l.seq.wrapping_add(1);
        l.pending_frames = 0;
        Self::send_leg(call, l, out, 12 + len, send);
    }

    /// Protects (SRTP) and sends `out[..n]` to the leg.
    fn send_leg(
        call: CallId,
        l: &mut Leg,
        out: &mut [u8],
        n: usize,
        send: &mut impl FnMut(CallId, SocketAddr, &[u8]),
    ) {
        let n = match l.srtp_out.as_mut() {
            Some(ctx) => match ctx.protect_rtp(out, n) {
                Ok(len) => len,
                Err(_) => return,
            },
            None => n,
        };
        l.report.packets_out += 1;
        l.sent.rtp_packets += 1;
        l.sent.rtp_bytes += n as u64;
        send(call, l.spec.peer, &out[..n]);
    }
}

#[cfg(test)]
mod tests;
