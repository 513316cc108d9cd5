//! Process-wide gauges, set once per turn of the driver: SIP counters of the endpoint, calls,
//! transactions, connections, the CDR spool backlog, SIP log drops and media ports.

use metrics::{names, Labels, Registry};

/// What the driver reads the gauges from, at the end of a turn.
pub struct ProcessFacts {
    /// The endpoint's counters.
    pub stats: sip::endpoint::EndpointStats,
    pub active_calls: usize,
    /// Live transactions (client + server).
    pub transactions: usize,
    /// Every socket held, TLS handshakes and outbound connects included.
    pub open_connections: usize,
    pub tls_connections: usize,
    /// Connections closed for sending garbage.
    pub garbage_closes: u64,
    pub sip_log_dropped: u64,
    pub cdrs_suppressed: u64,
    pub media_ports_in_use: usize,
    /// Call legs streaming now.
    pub streams_active: u64,
    pub recording_sessions_active: usize,
    pub recording_client_sessions_active: usize,
    pub meetings_active: usize,
    pub meeting_participants_active: usize,
}

/// Sets the process gauges from `f`, and the CDR spool's backlog (records, bytes) from
/// `spool_backlog`, read under the registry's lock so that the uploader's own update cannot be
/// overwritten by an older one.
pub fn update(
    registry: &std::sync::Mutex<Registry>,
    f: &ProcessFacts,
    spool_backlog: impl FnOnce() -> (u64, u64),
) {
    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
    let l = Labels::default();
    r.set(names::CDRS_SUPPRESSED, &l, f.cdrs_suppressed as f64);
    let (records, bytes) = spool_backlog();
    r.set(names::CDR_SPOOL_RECORDS, &l, records as f64);
    r.set(names::CDR_SPOOL_BYTES, &l, bytes as f64);
    let s = &f.stats;
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
    r.set(names::SIP_TRANSPORT_ERRORS, &l, f.garbage_closes as f64);
    r.set(names::PROCESS_ACTIVE_CALLS, &l, f.active_calls as f64);
    r.set(names::PROCESS_TRANSACTIONS, &l, f.transactions as f64);
    r.set(names::PROCESS_CONNECTIONS, &l, f.open_connections as f64);
    r.set(names::PROCESS_TLS_CONNECTIONS, &l, f.tls_connections as f64);
    r.set(names::SIP_LOG_DROPPED, &l, f.sip_log_dropped as f64);
    r.set(names::MEDIA_PORTS_IN_USE, &l, f.media_ports_in_use as f64);
    r.set(names::STREAMS_ACTIVE, &l, f.streams_active as f64);
    r.set(names::RECORDING_SESSIONS_ACTIVE, &l, f.recording_sessions_active as f64);
    r.set(names::RECORDING_CLIENT_SESSIONS_ACTIVE, &l, f.recording_client_sessions_active as f64);
    r.set(names::MEETINGS_ACTIVE, &l, f.meetings_active as f64);
    r.set(names::MEETING_PARTICIPANTS_ACTIVE, &l, f.meeting_participants_active as f64);
}
