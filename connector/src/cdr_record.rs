//! The call detail record of formats.md §7 (SchemaVersion "2.0"): its fields in the service's
//! order and JSON types, its store key, and the values derived from a call (durations,
//! `UsageType`, countries).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Country used when a number's country is unknown (not E.164, or in no country's plan):
/// CLDR's "Unknown Region" (ISO 3166-1 user-assigned code).
pub const UNKNOWN_COUNTRY: &str = "ZZ";

/// Key directory of records whose call was refused before a voice connector was matched
/// (draining, capacity, malformed requests, unknown voice connector).
pub const UNMATCHED_VOICE_CONNECTOR: &str = "unmatched";

/// One call detail record, field for field as the service writes it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CallDetailRecord {
    #[serde(rename = "AwsAccountId")]
    pub aws_account_id: String,
    #[serde(rename = "TransactionId")]
    pub transaction_id: String,
    #[serde(rename = "CallId")]
    pub call_id: String,
    #[serde(rename = "VoiceConnectorId")]
    pub voice_connector_id: String,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "StatusMessage")]
    pub status_message: String,
    #[serde(rename = "SipAuthUser")]
    pub sip_auth_user: String,
    #[serde(rename = "BillableDurationSeconds")]
    pub billable_duration_seconds: u64,
    #[serde(rename = "BillableDurationMinutes")]
    pub billable_duration_minutes: f64,
    #[serde(rename = "SchemaVersion")]
    pub schema_version: String,
    #[serde(rename = "SourcePhoneNumber")]
    pub source_phone_number: String,
    #[serde(rename = "SourcePhoneNumberName")]
    pub source_phone_number_name: String,
    #[serde(rename = "SourceCountry")]
    pub source_country: String,
    #[serde(rename = "DestinationPhoneNumber")]
    pub destination_phone_number: String,
    #[serde(rename = "DestinationPhoneNumberName")]
    pub destination_phone_number_name: String,
    #[serde(rename = "DestinationCountry")]
    pub destination_country: String,
    #[serde(rename = "UsageType")]
    pub usage_type: String,
    #[serde(rename = "ServiceCode")]
    pub service_code: String,
    #[serde(rename = "Direction")]
    pub direction: String,
    #[serde(rename = "StartTimeEpochSeconds")]
    pub start_time_epoch_seconds: u64,
    #[serde(rename = "EndTimeEpochSeconds")]
    pub end_time_epoch_seconds: u64,
    #[serde(rename = "Region")]
    pub region: String,
    #[serde(rename = "Streaming")]
    pub streaming: bool,
}

/// `Status` of a call that was answered.
pub const STATUS_COMPLETED: &str = "Completed";
/// `Status` of a call that was refused, failed or cancelled before it was answered.
pub const STATUS_FAILED: &str = "Failed";

/// What the gateway knows of a call when it ends (also journaled while it is in progress).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CallFacts {
    pub aws_account_id: String,
    pub transaction_id: String,
    /// The SIP Call-ID of the customer leg.
    pub call_id: String,
    /// `None`: refused before a voice connector was matched.
    pub voice_connector_id: Option<String>,
    pub region: String,
    /// `Outbound` (termination) or `Inbound` (origination).
    pub direction: String,
    pub source_number: String,
    pub source_name: String,
    pub destination_number: String,
    pub destination_name: String,
    pub sip_auth_user: Option<String>,
    /// When the INVITE arrived.
    pub started: SystemTime,
    /// When the callee answered (`None`: never).
    pub answered: Option<SystemTime>,
    pub ended: SystemTime,
    /// Final SIP status of the call's INVITE (200 if answered) and its reason phrase.
    pub sip_status: u16,
    pub sip_reason: String,
    pub streaming: bool,
    /// When the call's audio started streaming (its streaming detail record's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_started: Option<SystemTime>,
    /// The process stopped before the call ended (crash, kill, drain timeout): `ended` is the
    /// last moment the process was known alive.
    #[serde(default)]
    pub interrupted: bool,
    /// The BYEs that end the call's legs, journaled once it is answered, so that a restart
    /// after a crash can hang up both legs (not part of the record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_byes: Vec<RecoveryBye>,
}

/// A BYE for one leg of a call in progress, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RecoveryBye {
    /// `UDP`, `TCP` or `TLS`.
    pub transport: String,
    pub addr: std::net::SocketAddr,
    /// The request without a Via.
    pub request: String,
}

/// `StatusMessage` of a call that voicegw stopped in the middle of.
pub const INTERRUPTED: &str = "Interrupted: voicegw stopped before the call ended";

impl CallDetailRecord {
    /// The record of a call (formats.md §7).
    pub fn from_facts(f: &CallFacts) -> CallDetailRecord {
        let billable =
            f.answered.map_or(Duration::ZERO, |a| f.ended.duration_since(a).unwrap_or_default());
        let seconds = round_seconds(billable);
        let source_country = country_or_unknown(&f.source_number);
        let destination_country = country_or_unknown(&f.destination_number);
        let (status, status_message) = if f.interrupted {
            let status = if f.answered.is_some() { STATUS_COMPLETED } else { STATUS_FAILED };
            (status, INTERRUPTED.to_string())
        } else if f.answered.is_some() {
            (STATUS_COMPLETED, "OK".to_string())
        } else if f.sip_reason.is_empty() {
            (STATUS_FAILED, reason_phrase(f.sip_status).to_string())
        } else {
            (STATUS_FAILED, f.sip_reason.clone())
        };
        CallDetailRecord {
            aws_account_id: f.aws_account_id.clone(),
            transaction_id: f.transaction_id.clone(),
            call_id: f.call_id.clone(),
            voice_connector_id: f.voice_connector_id.clone().unwrap_or_default(),
            status: status.into(),
            status_message,
            sip_auth_user: f.sip_auth_user.clone().unwrap_or_default(),
            billable_duration_seconds: seconds,
            billable_duration_minutes: minutes_of(seconds),
            schema_version: "2.0".into(),
            source_phone_number: f.source_number.clone(),
            source_phone_number_name: f.source_name.clone(),
            destination_phone_number: f.destination_number.clone(),
            destination_phone_number_name: f.destination_name.clone(),
            usage_type: usage_type(&f.region, &f.direction, &source_country, &destination_country),
            source_country,
            destination_country,
            service_code: "AmazonChimeVoiceConnector".into(),
            direction: f.direction.clone(),
            start_time_epoch_seconds: epoch_secs(f.started),
            end_time_epoch_seconds: epoch_secs(f.ended),
            region: f.region.clone(),
            streaming: f.streaming,
        }
    }
}

/// One streaming detail record (formats.md §7, SchemaVersion "1.0"), field for field in the
/// service's example order: written beside the CDR of a call whose audio was streamed.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StreamingDetailRecord {
    #[serde(rename = "SchemaVersion")]
    pub schema_version: String,
    #[serde(rename = "AwsAccountId")]
    pub aws_account_id: String,
    #[serde(rename = "TransactionId")]
    pub transaction_id: String,
    #[serde(rename = "CallId")]
    pub call_id: String,
    #[serde(rename = "VoiceConnectorId")]
    pub voice_connector_id: String,
    #[serde(rename = "StartTimeEpochSeconds")]
    pub start_time_epoch_seconds: u64,
    #[serde(rename = "EndTimeEpochSeconds")]
    pub end_time_epoch_seconds: u64,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "StatusMessage")]
    pub status_message: String,
    #[serde(rename = "ServiceCode")]
    pub service_code: String,
    #[serde(rename = "UsageType")]
    pub usage_type: String,
    #[serde(rename = "BillableDurationSeconds")]
    pub billable_duration_seconds: u64,
    #[serde(rename = "Region")]
    pub region: String,
}

/// `StatusMessage` of a stream that ran to the end of its call.
pub const STREAMING_SUCCEEDED: &str = "Streaming succeeded";

impl StreamingDetailRecord {
    /// The record of a call whose audio was streamed (`None` if it was not): from the first
    /// audio streamed to the end of the call.
    pub fn from_facts(f: &CallFacts) -> Option<StreamingDetailRecord> {
        if !f.streaming {
            return None;
        }
        // A journal from before `stream_started` existed: the stream began at the answer.
        let start = f.stream_started.or(f.answered).unwrap_or(f.started);
        let seconds = round_seconds(f.ended.duration_since(start).unwrap_or_default());
        let status_message =
            if f.interrupted { INTERRUPTED.to_string() } else { STREAMING_SUCCEEDED.to_string() };
        Some(StreamingDetailRecord {
            schema_version: "1.0".into(),
            aws_account_id: f.aws_account_id.clone(),
            transaction_id: f.transaction_id.clone(),
            call_id: f.call_id.clone(),
            voice_connector_id: f.voice_connector_id.clone().unwrap_or_default(),
            start_time_epoch_seconds: epoch_secs(start),
            end_time_epoch_seconds: epoch_secs(f.ended),
            status: STATUS_COMPLETED.into(),
            status_message,
            service_code: "AmazonChime".into(),
            usage_type: format!("{}-VC-kinesis-audio-streaming", region_code(&f.region)),
            billable_duration_seconds: seconds,
            region: f.region.clone(),
        })
    }

    /// Its store key: the CDR's, under `Amazon-Chime-Voice-Connector-SDRs`.
    pub fn key(f: &CallFacts) -> String {
        key_under(SDR_PREFIX, f.voice_connector_id.as_deref(), f.started, &f.transaction_id)
    }
}

/// Key prefix of call detail records.
pub const CDR_PREFIX: &str = "Amazon-Chime-Voice-Connector-CDRs";
/// Key prefix of streaming detail records.
pub const SDR_PREFIX: &str = "Amazon-Chime-Voice-Connector-SDRs";

/// The store key of a record: `Amazon-Chime-Voice-Connector-CDRs/json/<VoiceConnectorId>/
/// <YYYY>/<MM>/<DD>/<HH.MM.SS.mmm>_<TransactionId>`, from the call's start time in UTC, no
/// extension. The same call always has the same key, so uploading it again is harmless.
pub fn key(voice_connector_id: Option<&str>, started: SystemTime, transaction_id: &str) -> String {
    key_under(CDR_PREFIX, voice_connector_id, started, transaction_id)
}

/// The key of a record under `prefix` (the CDRs' or the SDRs').
pub fn key_under(
    prefix: &str,
    voice_connector_id: Option<&str>,
    started: SystemTime,
    transaction_id: &str,
) -> String {
    let vc = match voice_connector_id {
        Some(v) if !v.is_empty() => v,
        _ => UNMATCHED_VOICE_CONNECTOR,
    };
    let d = started.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = crate::timefmt::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{prefix}/json/{vc}/{y:04}/{m:02}/{day:02}/{:02}.{:02}.{:02}.{:03}_{transaction_id}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Billable seconds: answer to hang-up, rounded to the nearest second (**decision**).
pub fn round_seconds(d: Duration) -> u64 {
    (d.as_millis() as u64 + 500) / 1000
}

/// `BillableDurationMinutes`: the billable seconds in minutes, to two decimals (6 s → 0.1).
pub fn minutes_of(seconds: u64) -> f64 {
    (seconds as f64 / 60.0 * 100.0).round() / 100.0
}

fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// The country of a number, or [`UNKNOWN_COUNTRY`].
fn country_or_unknown(number: &str) -> String {
    crate::policy::numbering::country_of_user(number).unwrap_or_else(|| UNKNOWN_COUNTRY.to_string())
}

/// `UsageType`: `<RegionCode>-<Source>-<Destination>-outbound-minutes` on termination and
/// `<RegionCode>-<Destination>-inbound-minutes` on origination (the number called is the voice
/// connector's own, whose country prices the call).
pub fn usage_type(region: &str, direction: &str, source: &str, destination: &str) -> String {
    let code = region_code(region);
    if direction == "Inbound" {
        format!("{code}-{destination}-inbound-minutes")
    } else {
        format!("{code}-{source}-{destination}-outbound-minutes")
    }
}

/// The billing code of an AWS Region as it prefixes usage types (`us-east-1` → `USE1`).
pub fn region_code(region: &str) -> String {
    let known = match region {
        "us-east-1" => "USE1",
        "us-east-2" => "USE2",
        "us-west-1" => "USW1",
        "us-west-2" => "USW2",
        "ca-central-1" => "CAN1",
        "eu-central-1" => "EUC1",
        "eu-west-1" => "EU",
        "eu-west-2" => "EUW2",
        "eu-west-3" => "EUW3",
        "eu-north-1" => "EUN1",
        "ap-northeast-1" => "APN1",
        "ap-northeast-2" => "APN2",
        "ap-southeast-1" => "APS1",
        "ap-southeast-2" => "APS2",
        "ap-south-1" => "APS3",
        "sa-east-1" => "SAE1",
        "us-gov-west-1" => "UGW1",
        "us-gov-east-1" => "UGE1",
        _ => "",
    };
    if known.is_empty() {
        region.replace('-', "").to_ascii_uppercase()
    } else {
        known.to_string()
    }
}

/// RFC 3261 reason phrases, for statuses that came without one.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Call Failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn facts() -> CallFacts {
        CallFacts {
            aws_account_id: "111122223333".into(),
            transaction_id: "6f1a3c2e-1111-4a2b-9c3d-0123456789ab".into(),
            call_id: "123a4b567890123c456789012d3456e7@203.0.113.9:8080".into(),
            voice_connector_id: Some("abcdef1ghij2klmno3pqr4".into()),
            region: "us-east-1".into(),
            direction: "Outbound".into(),
            source_number: "+12065550100".into(),
            source_name: "North Campus Reception".into(),
            destination_number: "+12065550101".into(),
            destination_name: "South Campus Reception".into(),
            sip_auth_user: Some("XXXX".into()),
            started: at(1_565_399_625_000),
            answered: Some(at(1_565_399_623_000 + 2_000)),
            ended: at(1_565_399_631_000),
            sip_status: 200,
            sip_reason: "OK".into(),
            streaming: true,
            stream_started: Some(at(1_565_399_625_000)),
            interrupted: false,
            recovery_byes: Vec::new(),
        }
    }

    /// The service's example record (formats.md §7), field by field and in its order.
    #[test]
    fn the_example_record_of_formats_md() {
        let r = CallDetailRecord::from_facts(&facts());
        let text = serde_json::to_string(&r).unwrap();
        let expected = r#"{"AwsAccountId":"111122223333","TransactionId":"6f1a3c2e-1111-4a2b-9c3d-0123456789ab","CallId":"123a4b567890123c456789012d3456e7@203.0.113.9:8080","VoiceConnectorId":"abcdef1ghij2klmno3pqr4","Status":"Completed","StatusMessage":"OK","SipAuthUser":"XXXX","BillableDurationSeconds":6,"BillableDurationMinutes":0.1,"SchemaVersion":"2.0","SourcePhoneNumber":"+12065550100","SourcePhoneNumberName":"North Campus Reception","SourceCountry":"US","DestinationPhoneNumber":"+12065550101","DestinationPhoneNumberName":"South Campus Reception","DestinationCountry":"US","UsageType":"USE1-US-US-outbound-minutes","ServiceCode":"AmazonChimeVoiceConnector","Direction":"Outbound","StartTimeEpochSeconds":1565399625,"EndTimeEpochSeconds":1565399631,"Region":"us-east-1","Streaming":true}"#;
        assert_eq!(text, expected);
    }

    /// The service's example SDR (voice-connector.md §6.5): fields, types and order.
    #[test]
    fn the_streaming_detail_record_of_a_streamed_call() {
        let mut f = facts();
        f.ended = at(1_565_399_631_400);
        let r = StreamingDetailRecord::from_facts(&f).expect("streamed");
        let text = serde_json::to_string(&r).unwrap();
        let expected = r#"{"SchemaVersion":"1.0","AwsAccountId":"111122223333","TransactionId":"6f1a3c2e-1111-4a2b-9c3d-0123456789ab","CallId":"123a4b567890123c456789012d3456e7@203.0.113.9:8080","VoiceConnectorId":"abcdef1ghij2klmno3pqr4","StartTimeEpochSeconds":1565399625,"EndTimeEpochSeconds":1565399631,"Status":"Completed","StatusMessage":"Streaming succeeded","ServiceCode":"AmazonChime","UsageType":"USE1-VC-kinesis-audio-streaming","BillableDurationSeconds":6,"Region":"us-east-1"}"#;
        assert_eq!(text, expected);
        assert_eq!(
            StreamingDetailRecord::key(&f),
            "Amazon-Chime-Voice-Connector-SDRs/json/abcdef1ghij2klmno3pqr4/2019/08/10/01.13.45.000_6f1a3c2e-1111-4a2b-9c3d-0123456789ab"
        );
        f.streaming = false;
        assert_eq!(StreamingDetailRecord::from_facts(&f), None, "no stream, no record");
    }

    #[test]
    fn failed_calls_carry_the_sip_reason_and_no_billable_time() {
        let mut f = facts();
        f.answered = None;
        f.sip_status = 486;
        f.sip_reason = "Busy Here".into();
        f.sip_auth_user = None;
        let r = CallDetailRecord::from_facts(&f);
        assert_eq!((r.status.as_str(), r.status_message.as_str()), ("Failed", "Busy Here"));
        assert_eq!((r.billable_duration_seconds, r.billable_duration_minutes), (0, 0.0));
        assert_eq!(r.sip_auth_user, "");
        f.sip_reason.clear();
        f.sip_status = 487;
        assert_eq!(CallDetailRecord::from_facts(&f).status_message, "Request Terminated");
    }

    #[test]
    fn interrupted_calls_say_so() {
        let mut f = facts();
        f.interrupted = true;
        let r = CallDetailRecord::from_facts(&f);
        assert_eq!((r.status.as_str(), r.status_message.as_str()), ("Completed", INTERRUPTED));
        assert_eq!(r.billable_duration_seconds, 6);
        f.answered = None;
        assert_eq!(CallDetailRecord::from_facts(&f).status, "Failed");
    }

    #[test]
    fn durations_round_to_the_second_and_minutes_derive() {
        assert_eq!(round_seconds(Duration::from_millis(1_499)), 1);
        assert_eq!(round_seconds(Duration::from_millis(1_500)), 2);
        assert_eq!(round_seconds(Duration::ZERO), 0);
        assert_eq!(minutes_of(6), 0.1);
        assert_eq!(minutes_of(90), 1.5);
        assert_eq!(minutes_of(7), 0.12);
    }

    #[test]
    fn usage_types_by_direction_region_and_country() {
        let mut f = facts();
        f.direction = "Inbound".into();
        f.region = "eu-west-2".into();
        f.source_number = "+442079460000".into();
        let r = CallDetailRecord::from_facts(&f);
        assert_eq!(r.usage_type, "EUW2-US-inbound-minutes");
        assert_eq!(r.source_country, "GB");
        f.direction = "Outbound".into();
        f.destination_number = "anonymous".into();
        let r = CallDetailRecord::from_facts(&f);
        assert_eq!(r.usage_type, "EUW2-GB-ZZ-outbound-minutes");
        assert_eq!(r.destination_country, "ZZ");
        assert_eq!(region_code("ap-southeast-2"), "APS2");
        assert_eq!(region_code("xx-new-9"), "XXNEW9");
    }

    #[test]
    fn key_layout() {
        let t = at(1_551_460_200_020); // 2019-03-01T17.10.00.020Z
        assert_eq!(
            key(Some("abcdef1ghij2klmno3pqr4"), t, "123abc4d-efg5-6789-h012-j3456789k012"),
            "Amazon-Chime-Voice-Connector-CDRs/json/abcdef1ghij2klmno3pqr4/2019/03/01/17.10.00.020_123abc4d-efg5-6789-h012-j3456789k012"
        );
        assert!(key(None, t, "x").starts_with("Amazon-Chime-Voice-Connector-CDRs/json/unmatched/"));
    }
}
