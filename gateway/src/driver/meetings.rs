//! The meeting UAS's facts (issue 14), to the driver's observers: each dial-in call is a call
//! to the call table (started and answered at once, ended), so it gets its CDR (under the
//! voice connector id `meetings`), its SIP log lines and its call metrics like any call; the
//! meeting's own facts (started, ended, joined, waiting, left) go to the JSON-lines event file
//! and webhook; the keys heard in the participants' media go back to the UAS.

use meeting::uas::{DtmfTransport, MeetEvent};
use serde_json::json;
use sip::b2bua::CallEvent;

use super::{Apps, Gateway};
use crate::meet::thread::MeetMediaEvent;
use crate::observe::facts::Moment;

/// The voice connector id of dial-in calls' records.
pub(crate) const MEETINGS_VOICE_CONNECTOR: &str = "meetings";

impl Gateway {
    /// One fact of the meeting UAS.
    pub(super) fn meeting_event(&mut self, ev: MeetEvent, at: Moment) {
        let counted = |g: &Gateway, m: metrics::names::Metric, kind: Option<&str>| {
            let mut r = g.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.inc(m, &kind.map(metrics::Labels::kind).unwrap_or_default());
        };
        use metrics::names as n;
        match ev {
            MeetEvent::Answered { call, transaction_id, invite, peer, .. } => {
                let call_id = invite.call_id().unwrap_or_default().to_string();
                tracing::info!(call, %call_id, %peer, to = %invite.uri, "meeting dial-in answered");
                let vc = MEETINGS_VOICE_CONNECTOR.to_string();
                self.answered_by_voicegw(call, transaction_id, vc, &invite, peer, at);
                self.identify_participant(call, &invite);
            }
            MeetEvent::Refused { call_id, status, reason } => {
                tracing::info!(%call_id, status, %reason, "meeting dial-in refused");
                counted(self, n::MEETING_DIALINS_REFUSED, Some(&status.to_string()));
            }
            MeetEvent::Joined { call, meeting, moderator } => {
                tracing::info!(call, %meeting, moderator, "participant joined the meeting");
                counted(self, n::MEETING_PARTICIPANTS, None);
                self.meeting_json("PARTICIPANT_JOINED", &meeting, Some(call), moderator, at);
            }
            MeetEvent::Waiting { call, meeting } => {
                tracing::info!(call, %meeting, "participant waits for the moderator");
                self.meeting_json("PARTICIPANT_WAITING", &meeting, Some(call), false, at);
            }
            MeetEvent::IvrFailed { call, why } => {
                let kind = match why {
                    meeting::ivr::Refusal::UnknownMeeting => "unknown_meeting",
                    meeting::ivr::Refusal::WrongPasscode => "wrong_passcode",
                    meeting::ivr::Refusal::Timeout => "timeout",
                };
                tracing::info!(call, kind, "IVR gave up; hanging up after the prompt");
                counted(self, n::MEETING_IVR_FAILURES, Some(kind));
            }
            MeetEvent::Dtmf { call, transport } => {
                tracing::debug!(call, transport = transport.as_str(), "key");
                counted(self, n::MEETING_DTMF, Some(transport.as_str()));
            }
            MeetEvent::MeetingStarted { meeting } => {
                tracing::info!(%meeting, "meeting started");
                self.meeting_json("MEETING_STARTED", &meeting, None, false, at);
            }
            MeetEvent::MeetingEnded { meeting } => {
                tracing::info!(%meeting, "meeting ended");
                self.meeting_json("MEETING_ENDED", &meeting, None, false, at);
            }
            MeetEvent::RecordingStarted { meeting } => self.start_meeting_recording(&meeting, at),
            MeetEvent::RecordingStopped { meeting } => self.stop_meeting_recording(&meeting, at),
            MeetEvent::Ended { call, meeting, reason, .. } => {
                tracing::info!(call, ?meeting, reason, "meeting dial-in ended");
                if let Some(m) = &meeting {
                    self.meeting_json("PARTICIPANT_LEFT", m, Some(call), false, at);
                }
                let ended = CallEvent::Ended { call, status: 200, reason: reason.to_string() };
                self.apply(&ended, at);
            }
        }
    }

    /// The moderator asked for a recording: the meeting's full mix is streamed to its
    /// `RecordingVoiceConnectorId`'s streaming (local Matroska files or Kinesis Video
    /// Streams) as a recording pseudo-call — started and answered now, ended when recording
    /// stops — so its streaming events, its streaming record and its CDR follow as a call's.
    fn start_meeting_recording(&mut self, meeting: &str, at: Moment) {
        let vc = self
            .running
            .meet
            .meetings
            .get(meeting)
            .and_then(|m| m.recording_voice_connector_id.clone());
        let Some(vc) = vc else {
            tracing::warn!(meeting, "recording asked for, but the meeting has no RecordingVoiceConnectorId: not recorded");
            return;
        };
        let Some(streaming) = self.running.streaming.get(&vc.to_ascii_lowercase()).cloned() else {
            tracing::warn!(meeting, voice_connector_id = %vc, "recording asked for, but the voice connector does not stream: not recorded");
            return;
        };
        if self.meet_recordings.contains_key(meeting) {
            return;
        }
        let call = self.next_meet_recording;
        self.next_meet_recording += 1;
        let transaction_id = common::uuid::uuid_v4(rand::random());
        let call_id = format!("meeting-{meeting}-{transaction_id}");
        let domain = self.running.meet.domains.first().cloned().unwrap_or_default();
        let local = std::net::SocketAddr::new(self.running.media_address, 0);
        let started = CallEvent::Started {
            call,
            transaction_id: transaction_id.clone(),
            call_id: call_id.clone(),
            b_call_id: call_id.clone(),
            direction: sip::b2bua::Direction::Outbound,
            voice_connector_id: vc.clone(),
            from: format!("<sip:{meeting}@{domain}>"),
            to: format!("sip:{meeting}@{domain}"),
            target: sip::Peer::new(sip::Transport::Udp, local),
            auth_user: None,
        };
        self.apply(&started, at);
        self.apply(&CallEvent::Answered { call }, at);
        let ctx = crate::relay::anchor::CallContext {
            call,
            transaction_id,
            voice_connector_id: vc.clone(),
            direction: sip::b2bua::Direction::Outbound,
            from_user: meeting.to_string(),
            to_user: meeting.to_string(),
            from_country: None,
            to_country: None,
            latching: Default::default(),
            stream: Some(Box::new(crate::relay::anchor::StreamSpec {
                call_id,
                retention_hours: streaming.retention_hours,
                sdp: [None, None],
            })),
            record_only: true,
        };
        self.meet_recordings.insert(meeting.to_string(), call);
        tracing::info!(meeting, call, voice_connector_id = %vc, "meeting recording started");
        self.meet.send(crate::meet::anchor::MeetUpdate::Record {
            meeting: meeting.to_string(),
            call,
            ctx: Box::new(ctx),
        });
        self.meet.flush();
        self.meeting_json("RECORDING_STARTED", meeting, None, false, at);
    }

    fn stop_meeting_recording(&mut self, meeting: &str, at: Moment) {
        let Some(call) = self.meet_recordings.remove(meeting) else { return };
        self.meet
            .send(crate::meet::anchor::MeetUpdate::StopRecord { meeting: meeting.to_string() });
        self.meet.flush();
        tracing::info!(meeting, call, "meeting recording stopped");
        let ended = CallEvent::Ended { call, status: 200, reason: "recording stopped".into() };
        self.apply(&ended, at);
        self.meeting_json("RECORDING_STOPPED", meeting, None, false, at);
    }

    /// Tells the meetings' media thread who call `call` is, for its media-quality records.
    fn identify_participant(&mut self, call: u64, invite: &sip::Request) {
        let Some(c) = self.table.get(call) else { return };
        let user_of = connector::policy::numbering::user_of;
        let ctx = crate::relay::anchor::CallContext {
            call,
            transaction_id: c.transaction_id.clone(),
            voice_connector_id: MEETINGS_VOICE_CONNECTOR.to_string(),
            direction: c.direction,
            from_user: invite.from().map(|f| user_of(&f.uri)).unwrap_or_default(),
            to_user: user_of(&invite.uri),
            from_country: None,
            to_country: None,
            latching: Default::default(),
            stream: None,
            record_only: false,
        };
        self.meet.send(crate::meet::anchor::MeetUpdate::Identify { call, ctx: Box::new(ctx) });
    }

    /// A meeting's event, in the envelope of the streaming status events.
    fn meeting_json(
        &self,
        kind: &str,
        meeting: &str,
        call: Option<u64>,
        moderator: bool,
        at: Moment,
    ) {
        let c = call.and_then(|c| self.table.get(c));
        let mut detail = json!({
            "meetingEventType": kind,
            "meetingId": meeting,
            "version": "0",
        });
        if let (Some(c), Some(d)) = (c, detail.as_object_mut()) {
            d.insert("callId".into(), json!(c.call_id));
            d.insert("transactionId".into(), json!(c.transaction_id));
            d.insert("moderator".into(), json!(moderator));
        }
        let event = json!({
            "version": "0",
            "id": common::uuid::uuid_v4(rand::random()),
            "detail-type": "Meeting Dial-In Event",
            "source": "voicegw.meetings",
            "account": self.running.config.cdr.aws_account_id,
            "time": crate::observe::stream_events::iso_seconds(at.wall),
            "region": self.running.config.streaming.region.clone().unwrap_or_default(),
            "resources": [],
            "detail": detail,
        });
        self.stream_events.send_other(event);
    }

    /// What the meetings' media thread reports.
    pub(super) fn meet_media_event(&mut self, ev: MeetMediaEvent) {
        match ev {
            MeetMediaEvent::Key { call, digit, source } => {
                let transport = match source {
                    media::bridge::participant::KeySource::Rfc4733 => DtmfTransport::Rfc4733,
                    media::bridge::participant::KeySource::InBand => DtmfTransport::InBand,
                };
                let now = self.clock.now();
                let (ep, apps) = self.core.split();
                apps.fourth.digit::<Apps, 3>(ep, call, digit, transport, now);
            }
            MeetMediaEvent::Closed { call, report } => {
                tracing::info!(
                    call,
                    packets_in = report.packets_in,
                    packets_out = report.packets_out,
                    lost = report.lost,
                    jitter_ms = report.jitter_ms.unwrap_or(0.0),
                    dropped_wrong_source = report.dropped_wrong_source,
                    srtp_failures = report.srtp_failures,
                    latched = report.latched,
                    "meeting participant's media ended"
                );
            }
        }
    }
}
