//! The meeting UAS's media anchor: each participant gets a port pair from the media range the
//! B2BUA uses, bound at once, and an SRTP key of voicegw's when its offer is SRTP; what the
//! UAS asks of its media (prompts, the bridge, mute, close) becomes [`MeetUpdate`]s the driver
//! hands to the meetings' media thread ([`super::thread`]) in order with the SIP messages.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};

use media::conference::LegSpec;
use media::srtp::MasterKey;
use meeting::ivr::Prompt;
use meeting::offer::OfferedAudio;
use meeting::uas::MeetingMedia;

use crate::relay::anchor::MediaPorts;

/// What the meetings' media thread is told.
#[derive(Debug)]
pub enum MeetUpdate {
    /// A participant's leg: its sockets (RTP, RTCP) and media.
    Open {
        call: u64,
        sockets: [UdpSocket; 2],
        spec: Box<LegSpec>,
    },
    Play {
        call: u64,
        prompt: Prompt,
    },
    StopPrompts {
        call: u64,
    },
    Bridge {
        call: u64,
        meeting: String,
    },
    Muted {
        call: u64,
        muted: bool,
    },
    Close {
        call: u64,
    },
    /// Meeting `meeting`'s full mix is streamed as recording `call` (the driver's pseudo-call:
    /// its streams, records and events are a call's).
    Record {
        meeting: String,
        call: u64,
        ctx: Box<crate::relay::anchor::CallContext>,
    },
    StopRecord {
        meeting: String,
    },
    /// Who call `call` is, for its media-quality records (once the UAS answered it).
    Identify {
        call: u64,
        ctx: Box<crate::relay::anchor::CallContext>,
    },
}

/// See the module documentation.
pub struct MeetingAnchor {
    ports: MediaPorts,
    /// `[meet] media_source_learning`.
    learn_source: bool,
    /// Each participant's RTP port.
    calls: HashMap<u64, u16>,
    updates: VecDeque<MeetUpdate>,
}

impl MeetingAnchor {
    pub fn new(ports: MediaPorts) -> MeetingAnchor {
        MeetingAnchor {
            ports,
            learn_source: false,
            calls: HashMap::new(),
            updates: VecDeque::new(),
        }
    }

    /// Whether new plain-RTP participants may send from another address than their SDP's.
    pub fn set_media_source_learning(&mut self, on: bool) {
        self.learn_source = on;
    }

    /// Participants with a port.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    fn push(&mut self, call: u64, u: MeetUpdate) {
        if self.calls.contains_key(&call) {
            self.updates.push_back(u);
        }
    }
}

impl MeetingMedia for MeetingAnchor {
    type Update = MeetUpdate;

    fn open(
        &mut self,
        call: u64,
        audio: &OfferedAudio,
    ) -> Result<(SocketAddr, Option<MasterKey>), (u16, String)> {
        if self.calls.contains_key(&call) {
            return Err((500, "the call has media already".into()));
        }
        let (port, rtp, rtcp) = self.ports.reserve().map_err(|r| (r.status, r.warning))?;
        let own =
            audio.crypto.as_ref().map(|_| MasterKey { key: rand::random(), salt: rand::random() });
        let srtp = match (&audio.crypto, &own) {
            (Some((_, suite, theirs)), Some(ours)) => Some((*suite, theirs.clone(), ours.clone())),
            _ => None,
        };
        let spec = LegSpec {
            law: audio.law,
            dtmf_pt: audio.dtmf_pt,
            peer: audio.from,
            learn_source: self.learn_source,
            frames_per_packet: (audio.ptime_ms / 20).clamp(1, 3) as u8,
            srtp,
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
        };
        self.calls.insert(call, port);
        self.updates.push_back(MeetUpdate::Open {
            call,
            sockets: [rtp, rtcp],
            spec: Box::new(spec),
        });
        Ok((SocketAddr::new(self.ports.ip(), port), own))
    }

    fn play(&mut self, call: u64, prompt: Prompt) {
        self.push(call, MeetUpdate::Play { call, prompt });
    }

    fn stop_prompts(&mut self, call: u64) {
        self.push(call, MeetUpdate::StopPrompts { call });
    }

    fn bridge(&mut self, call: u64, meeting: &str) {
        self.push(call, MeetUpdate::Bridge { call, meeting: meeting.to_string() });
    }

    fn set_muted(&mut self, call: u64, muted: bool) {
        self.push(call, MeetUpdate::Muted { call, muted });
    }

    fn close(&mut self, call: u64) {
        if let Some(port) = self.calls.remove(&call) {
            self.ports.release(port);
            self.updates.push_back(MeetUpdate::Close { call });
        }
    }

    fn poll_update(&mut self) -> Option<MeetUpdate> {
        self.updates.pop_front()
    }
}
