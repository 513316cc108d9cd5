//! The one list of metric names: (CloudWatch name, kind, help). Prometheus names are derived:
//! `voicegw_` + snake case of the CloudWatch name.

/// Counter (monotonic), gauge, or histogram (latencies in seconds, kept by `hdrhistogram`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A declared metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub cloudwatch: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

macro_rules! metrics {
    ($($ident:ident = ($cw:literal, $kind:ident, $help:literal);)*) => {
        $(pub const $ident: Metric = Metric { cloudwatch: $cw, kind: Kind::$kind, help: $help };)*
        /// Every declared metric.
        pub const ALL: &[Metric] = &[$($ident),*];
    };
}

metrics! {
    INBOUND_CALL_ATTEMPTS = ("InboundCallAttempts", Counter, "Origination calls attempted (carrier to customer)");
    INBOUND_CALL_FAILURES = ("InboundCallFailures", Counter, "Origination calls that failed");
    INBOUND_CALLS_ANSWERED = ("InboundCallsAnswered", Counter, "Origination calls answered");
    INBOUND_CALLS_ACTIVE = ("InboundCallsActive", Gauge, "Origination calls in progress");
    OUTBOUND_CALL_ATTEMPTS = ("OutboundCallAttempts", Counter, "Termination calls attempted (customer to carrier)");
    OUTBOUND_CALL_FAILURES = ("OutboundCallFailures", Counter, "Termination calls that failed");
    OUTBOUND_CALLS_ANSWERED = ("OutboundCallsAnswered", Counter, "Termination calls answered");
    OUTBOUND_CALLS_ACTIVE = ("OutboundCallsActive", Gauge, "Termination calls in progress");
    VOICE_CONNECTOR_ACTIVE_CALL_COUNT = ("VoiceConnectorActiveCallCount", Gauge, "Calls in progress on the voice connector");
    THROTTLES = ("Throttles", Counter, "Calls refused for exceeding CpsLimit");
    SIP_1XX = ("Sip1xxCodes", Counter, "SIP 1xx responses sent");
    SIP_2XX = ("Sip2xxCodes", Counter, "SIP 2xx responses sent");
    SIP_3XX = ("Sip3xxCodes", Counter, "SIP 3xx responses sent");
    SIP_4XX = ("Sip4xxCodes", Counter, "SIP 4xx responses sent");
    SIP_5XX = ("Sip5xxCodes", Counter, "SIP 5xx responses sent");
    SIP_6XX = ("Sip6xxCodes", Counter, "SIP 6xx responses sent");
    SIP_BAD_REQUESTS = ("SipBadRequests", Counter, "Malformed SIP requests answered 400 (voicegw process metric)");
    SIP_DROPPED = ("SipDroppedMessages", Counter, "Malformed or unmatched SIP messages dropped (voicegw process metric)");
    SIP_OVERLOAD_REFUSALS = ("SipOverloadRefusals", Counter, "Requests answered 503 because the SIP transaction table was full (voicegw process metric)");
    SIP_TRANSPORT_ERRORS = ("SipTransportErrors", Counter, "Connections closed for framing errors or garbage (voicegw process metric)");
    PROCESS_ACTIVE_CALLS = ("ActiveCalls", Gauge, "Calls in progress in the process (voicegw process metric)");
    PROCESS_TRANSACTIONS = ("SipTransactions", Gauge, "Live SIP transactions (voicegw process metric)");
    PROCESS_CONNECTIONS = ("SipConnections", Gauge, "Open TCP and TLS connections (voicegw process metric)");
    CUSTOMER_TO_VC_RTP_PACKETS = ("CustomerToVcRtpPackets", Counter, "RTP packets customer to voicegw");
    CUSTOMER_TO_VC_RTP_BYTES = ("CustomerToVcRtpBytes", Counter, "RTP bytes customer to voicegw");
    CUSTOMER_TO_VC_RTCP_PACKETS = ("CustomerToVcRtcpPackets", Counter, "RTCP packets customer to voicegw");
    CUSTOMER_TO_VC_RTCP_BYTES = ("CustomerToVcRtcpBytes", Counter, "RTCP bytes customer to voicegw");
    CUSTOMER_TO_VC_PACKETS_LOST = ("CustomerToVcPacketsLost", Counter, "RTP packets lost customer to voicegw");
    CUSTOMER_TO_VC_JITTER = ("CustomerToVcJitter", Gauge, "Interarrival jitter customer to voicegw, microseconds (latest record)");
    VC_TO_CUSTOMER_RTP_PACKETS = ("VcToCustomerRtpPackets", Counter, "RTP packets voicegw to customer");
    VC_TO_CUSTOMER_RTP_BYTES = ("VcToCustomerRtpBytes", Counter, "RTP bytes voicegw to customer");
    VC_TO_CUSTOMER_RTCP_PACKETS = ("VcToCustomerRtcpPackets", Counter, "RTCP packets voicegw to customer");
    VC_TO_CUSTOMER_RTCP_BYTES = ("VcToCustomerRtcpBytes", Counter, "RTCP bytes voicegw to customer");
    VC_TO_CUSTOMER_PACKETS_LOST = ("VcToCustomerPacketsLost", Counter, "RTP packets lost voicegw to customer");
    VC_TO_CUSTOMER_JITTER = ("VcToCustomerJitter", Gauge, "Interarrival jitter voicegw to customer, microseconds (latest record)");
    REMOTE_TO_VC_RTP_PACKETS = ("RemoteToVcRtpPackets", Counter, "RTP packets carrier to voicegw");
    REMOTE_TO_VC_RTP_BYTES = ("RemoteToVcRtpBytes", Counter, "RTP bytes carrier to voicegw");
    REMOTE_TO_VC_RTCP_PACKETS = ("RemoteToVcRtcpPackets", Counter, "RTCP packets carrier to voicegw");
    REMOTE_TO_VC_RTCP_BYTES = ("RemoteToVcRtcpBytes", Counter, "RTCP bytes carrier to voicegw");
    REMOTE_TO_VC_PACKETS_LOST = ("RemoteToVcPacketsLost", Counter, "RTP packets lost carrier to voicegw");
    REMOTE_TO_VC_JITTER = ("RemoteToVcJitter", Gauge, "Interarrival jitter carrier to voicegw, microseconds (latest record)");
    VC_TO_REMOTE_RTP_PACKETS = ("VcToRemoteRtpPackets", Counter, "RTP packets voicegw to carrier");
    VC_TO_REMOTE_RTP_BYTES = ("VcToRemoteRtpBytes", Counter, "RTP bytes voicegw to carrier");
    VC_TO_REMOTE_RTCP_PACKETS = ("VcToRemoteRtcpPackets", Counter, "RTCP packets voicegw to carrier");
    VC_TO_REMOTE_RTCP_BYTES = ("VcToRemoteRtcpBytes", Counter, "RTCP bytes voicegw to carrier");
    VC_TO_REMOTE_PACKETS_LOST = ("VcToRemotePacketsLost", Counter, "RTP packets lost voicegw to carrier");
    VC_TO_REMOTE_JITTER = ("VcToRemoteJitter", Gauge, "Interarrival jitter voicegw to carrier, microseconds (latest record)");
    RTT_VC_CUSTOMER = ("RTTBetweenVcAndCustomer", Gauge, "Round-trip time between voicegw and the customer, microseconds (latest record)");
    RTT_VC_REMOTE = ("RTTBetweenVcAndRemote", Gauge, "Round-trip time between voicegw and the carrier, microseconds (latest record)");
    MOS_VC_CUSTOMER = ("MOSBetweenVcAndCustomer", Gauge, "E-model MOS between voicegw and the customer (latest record)");
    MOS_VC_REMOTE = ("MOSBetweenVcAndRemote", Gauge, "E-model MOS between voicegw and the carrier (latest record)");
    CALL_SETUP_SECONDS = ("CallSetupSeconds", Histogram, "Time from a call's INVITE to its answer (voicegw process metric)");
    RELAY_LATENCY_SECONDS = ("MediaRelayLatencySeconds", Histogram, "Time from reading an RTP/RTCP packet to sending it on, one packet in 16 (voicegw process metric)");
    MEDIA_PORTS_IN_USE = ("MediaPortsInUse", Gauge, "RTP/RTCP port pairs in use (voicegw process metric)");
    PROCESS_TLS_CONNECTIONS = ("SipTlsConnections", Gauge, "Open TLS connections (voicegw process metric)");
    CDRS_WRITTEN = ("CdrsWritten", Counter, "Call detail records committed to the spool (voicegw process metric)");
    CDRS_DELIVERED = ("CdrsDelivered", Counter, "Call detail records delivered to the CDR store (voicegw process metric)");
    CDR_UPLOAD_FAILURES = ("CdrUploadFailures", Counter, "Failed CDR store writes, each retried (voicegw process metric)");
    CDR_SPOOL_RECORDS = ("CdrSpoolRecords", Gauge, "Call detail records in the spool not yet delivered (voicegw process metric)");
    CDR_SPOOL_BYTES = ("CdrSpoolBytes", Gauge, "Bytes of the spool not yet delivered (voicegw process metric)");
    SIP_LOG_DROPPED = ("SipLogDroppedLines", Counter, "SIP message log lines dropped because the log writer fell behind (voicegw process metric)");
    STREAMS_STARTED = ("StreamsStarted", Counter, "Call legs whose audio started streaming (voicegw process metric)");
    STREAMS_FAILED = ("StreamsFailed", Counter, "Call legs that could not be streamed, e.g. a codec other than G.711 (voicegw process metric)");
    STREAM_BYTES = ("StreamBytes", Counter, "Matroska bytes of call audio handed to the stream sink (voicegw process metric)");
    STREAM_FRAGMENTS = ("StreamFragments", Counter, "Stream fragments (Matroska Clusters) started (voicegw process metric)");
    STREAM_FILL_MILLISECONDS = ("StreamFillMilliseconds", Counter, "Silence put into streams where RTP packets never came (voicegw process metric)");
    STREAM_DROPPED_BYTES = ("StreamDroppedBytes", Counter, "Stream bytes dropped because the stream sink fell behind (voicegw process metric)");
    STREAM_BYTES_SENT = ("StreamBytesSent", Counter, "Matroska bytes written to PutMedia connections, re-sent fragments included (voicegw process metric)");
    STREAM_ACKS = ("StreamAcks", Counter, "PutMedia acknowledgements received, by `kind`: the EventType (BUFFERING, RECEIVED, PERSISTED, ERROR, IDLE) (voicegw process metric)");
    STREAM_ERRORS = ("StreamErrors", Counter, "PutMedia errors by `kind`: an ERROR acknowledgement's ErrorId, `http_<status>` for a refused request, `connect` for a connection that could not be opened, `disconnect` for one that ended early, `ack_timeout` for one that acknowledged nothing, `parse` for an unreadable acknowledgement, `control` for a stream the control plane could not give (voicegw process metric)");
    STREAM_CONNECTIONS = ("StreamConnections", Counter, "PutMedia connections KVS accepted (200) (voicegw process metric)");
    STREAM_ROTATIONS = ("StreamRotations", Counter, "PutMedia connections ended to rotate them before KVS's connection limit (voicegw process metric)");
    STREAMS_ACTIVE = ("StreamsActive", Gauge, "Call legs streaming now (voicegw process metric)");
    STREAM_EVENTS_SENT = ("StreamEventsSent", Counter, "Streaming status events delivered, counted once per sink that took them (voicegw process metric)");
    STREAM_EVENTS_FAILED = ("StreamEventsFailed", Counter, "Streaming status events a sink did not take after its retries (voicegw process metric)");
    STREAM_EVENTS_DROPPED = ("StreamEventsDropped", Counter, "Streaming status events dropped because a sink fell behind (voicegw process metric)");
    RECORDING_SESSIONS = ("RecordingSessions", Counter, "SIPREC recording sessions answered (voicegw process metric)");
    RECORDING_SESSIONS_ACTIVE = ("RecordingSessionsActive", Gauge, "SIPREC recording sessions up now (voicegw process metric)");
    RECORDING_SESSIONS_REFUSED = ("RecordingSessionsRefused", Counter, "SIPREC recording INVITEs refused, by `kind`: the SIP status answered (voicegw process metric)");
    RECORDING_STREAMS = ("RecordingStreams", Counter, "Audio streams of answered SIPREC recording sessions (voicegw process metric)");
    RECORDING_TOLERATED = ("RecordingTolerated", Counter, "What recording clients sent that RFC 7866/7865 do not ask for and voicegw took anyway, by `kind` (metadata_without_xml, missing_label, one_mixed_stream, direction_variant, metadata_draft_attributes, …) (voicegw process metric)");
    RECORDING_CLIENT_SESSIONS = ("RecordingClientSessions", Counter, "Calls a voice connector's SIPREC recording server (SiprecRecording) answered, voicegw its recording client (voicegw process metric)");
    RECORDING_CLIENT_SESSIONS_ACTIVE = ("RecordingClientSessionsActive", Gauge, "Calls being sent to a recording server now, set up or being set up (voicegw process metric)");
    RECORDING_CLIENT_FAILURES = ("RecordingClientFailures", Counter, "Calls a recording server did not record, by `kind`: the SIP status it answered, `no_answer` when it answered nothing, `no_ports` when no media port could be bound, `not_sent`, `unusable_answer` (voicegw process metric)");
    MEETINGS_ACTIVE = ("MeetingsActive", Gauge, "Meetings with at least one participant in their audio bridge now (voicegw process metric)");
    MEETING_PARTICIPANTS_ACTIVE = ("MeetingParticipantsActive", Gauge, "Dial-in calls answered by the meeting UAS now: in the IVR, waiting for the moderator or in a meeting (voicegw process metric)");
    MEETING_PARTICIPANTS = ("MeetingParticipants", Counter, "Dial-in calls that joined a meeting's audio bridge (voicegw process metric)");
    MEETING_DIALINS_REFUSED = ("MeetingDialInsRefused", Counter, "Dial-in calls refused before they were answered, by `kind`: the SIP status (403 not over TLS, 488 no G.711, 503 too many) (voicegw process metric)");
    MEETING_IVR_FAILURES = ("MeetingIvrFailures", Counter, "Dial-in calls the IVR hung up on, by `kind`: unknown_meeting, wrong_passcode, timeout (voicegw process metric)");
    MEETING_DTMF = ("MeetingDtmf", Counter, "Keys heard from meeting participants, by `kind`: the transport (rfc4733, sip_info, inband) (voicegw process metric)");
    CDRS_SUPPRESSED = ("CdrsSuppressed", Counter, "Records of unauthenticated or unmatched calls not written because they came faster than 50/s (voicegw process metric)");
    CDR_SPOOL_FAILING = ("CdrSpoolFailing", Gauge, "1 while CDR spool commits fail (full or read-only disk): records wait in memory and /health answers 503 (voicegw process metric)");
    CDR_SPOOL_ERRORS = ("CdrSpoolErrors", Counter, "Spool commits that failed and were retried (voicegw process metric)");
    MEDIA_REJECTED_SOURCE_PACKETS = ("MediaPacketsFromRejectedSources", Counter, "RTP/RTCP packets dropped because their source is not the leg's announced (or learnt) peer (voicegw process metric)");
}

impl Metric {
    /// Whether the metric is voicegw's own, process-wide (empty labels), rather than one of the
    /// service's per voice connector.
    pub fn is_process(&self) -> bool {
        self.help.ends_with("(voicegw process metric)")
    }

    /// Whether the metric is counted by a `kind` label (its help says what the kinds are).
    pub fn has_kind(&self) -> bool {
        self.help.contains("by `kind`")
    }

    /// The CloudWatch unit of the metric (Embedded Metric Format).
    pub fn unit(&self) -> &'static str {
        let n = self.cloudwatch;
        if n.ends_with("Bytes") {
            "Bytes"
        } else if n.ends_with("Jitter") || n.starts_with("RTT") {
            "Microseconds"
        } else if n.starts_with("MOS") {
            "None"
        } else if n.ends_with("Seconds") {
            "Seconds"
        } else {
            "Count"
        }
    }
}

/// The reference table of every metric (METRICS.md is this text; a test keeps them equal).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| CloudWatch name | Prometheus name | type | unit | labels | meaning |\n|---|---|---|---|---|---|\n",
    );
    for m in ALL {
        let (kind, prom) = match m.kind {
            Kind::Counter => ("counter", format!("{}_total", prometheus_name(m.cloudwatch))),
            Kind::Gauge => ("gauge", prometheus_name(m.cloudwatch)),
            Kind::Histogram => ("histogram", prometheus_name(m.cloudwatch)),
        };
        let labels = if m.has_kind() {
            "kind (process)"
        } else if m.is_process() {
            "none (process)"
        } else {
            "voice_connector_id, region"
        };
        let help = m.help.trim_end_matches(" (voicegw process metric)");
        out.push_str(&format!(
            "| `{}` | `{prom}` | {kind} | {} | {labels} | {help} |\n",
            m.cloudwatch,
            m.unit()
        ));
    }
    out
}

/// Bucket bounds (seconds) of the latency histograms in the Prometheus exposition.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Prometheus names that differ from the snake-case rule: a gauge may not end in `_count`
/// (that suffix belongs to histograms and summaries; `promtool check metrics` refuses it).
const PROMETHEUS_OVERRIDES: &[(&str, &str)] =
    &[("VoiceConnectorActiveCallCount", "voicegw_voice_connector_active_calls")];

/// The Prometheus name of a CloudWatch name: `voicegw_` + snake case (`Sip1xxCodes` →
/// `voicegw_sip_1xx_codes`, `RTTBetweenVcAndCustomer` → `voicegw_rtt_between_vc_and_customer`),
/// but for the few names overridden (`PROMETHEUS_OVERRIDES`). Counters get `_total` when rendered.
pub fn prometheus_name(cloudwatch: &str) -> String {
    if let Some((_, p)) = PROMETHEUS_OVERRIDES.iter().find(|(c, _)| *c == cloudwatch) {
        return (*p).to_string();
    }
    let mut out = String::from("voicegw_");
    let chars: Vec<char> = cloudwatch.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let prev = if i > 0 { Some(chars[i - 1]) } else { None };
        let next = chars.get(i + 1).copied();
        let boundary = match prev {
            None => false,
            Some(p) => {
                (c.is_ascii_uppercase() && (p.is_ascii_lowercase() || p.is_ascii_digit()))
                    || (c.is_ascii_uppercase()
                        && p.is_ascii_uppercase()
                        && next.is_some_and(|n| n.is_ascii_lowercase()))
                    || (c.is_ascii_digit() && p.is_ascii_alphabetic())
            }
        };
        if boundary {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_names() {
        assert_eq!(prometheus_name("Sip1xxCodes"), "voicegw_sip_1xx_codes");
        assert_eq!(
            prometheus_name("RTTBetweenVcAndCustomer"),
            "voicegw_rtt_between_vc_and_customer"
        );
        assert_eq!(prometheus_name("InboundCallAttempts"), "voicegw_inbound_call_attempts");
        assert_eq!(prometheus_name("MOSBetweenVcAndRemote"), "voicegw_mos_between_vc_and_remote");
        assert_eq!(
            prometheus_name("VoiceConnectorActiveCallCount"),
            "voicegw_voice_connector_active_calls"
        );
    }

    /// METRICS.md documents every metric: its table is the generated one, to the byte.
    #[test]
    fn metrics_md_is_the_declared_list() {
        let doc = include_str!("../../METRICS.md");
        assert!(
            doc.contains(&markdown_table()),
            "METRICS.md is out of date: regenerate its table with `voicegw metrics`"
        );
    }

    #[test]
    fn units_and_scopes() {
        assert_eq!(CUSTOMER_TO_VC_JITTER.unit(), "Microseconds");
        assert_eq!(RTT_VC_REMOTE.unit(), "Microseconds");
        assert_eq!(VC_TO_REMOTE_RTP_BYTES.unit(), "Bytes");
        assert_eq!(MOS_VC_CUSTOMER.unit(), "None");
        assert_eq!(THROTTLES.unit(), "Count");
        assert!(CDRS_WRITTEN.is_process() && !THROTTLES.is_process());
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for m in ALL {
            assert!(seen.insert(m.cloudwatch), "duplicate {}", m.cloudwatch);
        }
    }
}
