//! Meeting dial-in (formats.md §11): voicegw's own `[meet]` settings (the meet domain and its
//! aliases, TLS only unless a lab allows otherwise, the IVR's timeouts) and the `[[Meetings]]`
//! a room system or phone can dial, checked once and kept as typed values.

use std::collections::HashMap;

use serde::Deserialize;

/// `[meet]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeetConfig {
    /// The domain dialled (`<id>@<domain>`); `meet.<sip.domain>` when empty.
    pub domain: String,
    /// More domains that reach the same meetings (regional names such as `meet.ue1.<domain>`).
    pub aliases: Vec<String>,
    /// Dial-in over UDP or TCP too, for labs; the service takes TLS only.
    pub allow_unencrypted: bool,
    /// Plain-RTP participants' media may come from another address than their SDP says (a
    /// room system behind NAT): voicegw then sends to where it comes from. SRTP participants'
    /// media follows the address of its authenticated packets whatever this says.
    pub media_source_learning: bool,
    /// The IVR: seconds after the last key that end an entry, seconds a question waits, tries.
    pub ivr_inter_digit_secs: u32,
    pub ivr_question_secs: u32,
    pub ivr_tries: u8,
}

impl Default for MeetConfig {
    fn default() -> Self {
        MeetConfig {
            domain: String::new(),
            aliases: Vec::new(),
            allow_unencrypted: false,
            media_source_learning: false,
            ivr_inter_digit_secs: 5,
            ivr_question_secs: 20,
            ivr_tries: 3,
        }
    }
}

/// One `[[Meetings]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meeting {
    /// 10 digits.
    #[serde(rename = "MeetingId")]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Participants wait until a moderator joins.
    #[serde(rename = "Moderated", default)]
    pub moderated: bool,
    /// 13 digits: dialled (or entered) to join as the moderator.
    #[serde(rename = "ModeratorId")]
    pub moderator_id: Option<String>,
    /// 4–12 digits asked of whoever uses the moderator id.
    #[serde(rename = "ModeratorPasscode")]
    pub moderator_passcode: Option<String>,
    #[serde(rename = "MaxParticipants", default = "default_max_participants")]
    pub max_participants: u32,
    /// The voice connector whose `StreamingConfiguration` a recording of the meeting follows.
    #[serde(rename = "RecordingVoiceConnectorId")]
    pub recording_voice_connector_id: Option<String>,
}

fn default_max_participants() -> u32 {
    100
}

/// The most participants a meeting may allow.
pub const MAX_PARTICIPANTS: u32 = 250;
/// The most meetings configured.
pub const MAX_MEETINGS: usize = 10_000;

/// A meeting, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingDef {
    pub id: String,
    pub name: String,
    pub moderated: bool,
    /// (moderator id, passcode).
    pub moderator: Option<(String, String)>,
    pub max_participants: u32,
    /// In lower case.
    pub recording_voice_connector_id: Option<String>,
}

impl std::fmt::Display for MeetingDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passcode.
        write!(f, "meeting {}", self.id)
    }
}

/// `[meet]` and `[[Meetings]]`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeetSettings {
    /// The meet domain first, then its aliases, in lower case.
    pub domains: Vec<String>,
    pub allow_unencrypted: bool,
    pub media_source_learning: bool,
    pub ivr_inter_digit_secs: u32,
    pub ivr_question_secs: u32,
    pub ivr_tries: u8,
    /// By meeting id.
    pub meetings: HashMap<String, MeetingDef>,
    /// Moderator id → meeting id.
    pub moderators: HashMap<String, String>,
}

fn digits(s: &str, n: std::ops::RangeInclusive<usize>) -> bool {
    n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn valid_domain(d: &str) -> bool {
    (1..=253).contains(&d.len())
        && d.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Checks `[meet]` and `[[Meetings]]` for SIP domain `sip_domain`; `streams` says whether a
/// voice connector (by id in lower case) streams. Errors name the key.
pub fn check(
    meet: &MeetConfig,
    meetings: &[Meeting],
    sip_domain: &str,
    streams: impl Fn(&str) -> bool,
) -> Result<MeetSettings, (&'static str, String)> {
    let domain =
        if meet.domain.is_empty() { format!("meet.{sip_domain}") } else { meet.domain.clone() };
    let mut domains = Vec::new();
    for d in std::iter::once(&domain).chain(&meet.aliases) {
        let d = d.to_ascii_lowercase();
        if !valid_domain(&d) {
            return Err(("domain", format!("`{d}` is not a domain name")));
        }
        if domains.contains(&d) {
            return Err(("aliases", format!("`{d}` is listed twice")));
        }
        domains.push(d);
    }
    if !(1..=60).contains(&meet.ivr_inter_digit_secs) {
        return Err(("ivr_inter_digit_secs", "must be 1-60".into()));
    }
    if !(5..=300).contains(&meet.ivr_question_secs) {
        return Err(("ivr_question_secs", "must be 5-300".into()));
    }
    if !(1..=10).contains(&meet.ivr_tries) {
        return Err(("ivr_tries", "must be 1-10".into()));
    }
    if meetings.len() > MAX_MEETINGS {
        return Err(("Meetings", format!("at most {MAX_MEETINGS} meetings")));
    }
    let mut out = MeetSettings {
        domains,
        allow_unencrypted: meet.allow_unencrypted,
        media_source_learning: meet.media_source_learning,
        ivr_inter_digit_secs: meet.ivr_inter_digit_secs,
        ivr_question_secs: meet.ivr_question_secs,
        ivr_tries: meet.ivr_tries,
        ..MeetSettings::default()
    };
    for m in meetings {
        let id = &m.id;
        if !digits(id, 10..=10) {
            return Err(("MeetingId", format!("`{id}` is not 10 digits")));
        }
        if out.meetings.contains_key(id) {
            return Err(("MeetingId", format!("`{id}` is defined twice")));
        }
        let moderator = match (&m.moderator_id, &m.moderator_passcode) {
            (Some(mid), Some(pass)) => {
                if !digits(mid, 13..=13) {
                    return Err(("ModeratorId", format!("meeting {id}: `{mid}` is not 13 digits")));
                }
                if !digits(pass, 4..=12) {
                    // The passcode itself never reaches an error message.
                    return Err(("ModeratorPasscode", format!("meeting {id}: not 4-12 digits")));
                }
                if out.moderators.insert(mid.clone(), id.clone()).is_some() {
                    return Err(("ModeratorId", format!("`{mid}` is used twice")));
                }
                Some((mid.clone(), pass.clone()))
            }
            (None, None) => None,
            _ => {
                return Err((
                    "ModeratorId",
                    format!("meeting {id}: ModeratorId and ModeratorPasscode go together"),
                ))
            }
        };
        if m.moderated && moderator.is_none() {
            return Err((
                "Moderated",
                format!(
                    "meeting {id}: a moderated meeting needs a ModeratorId and a ModeratorPasscode"
                ),
            ));
        }
        if !(2..=MAX_PARTICIPANTS).contains(&m.max_participants) {
            return Err(("MaxParticipants", format!("meeting {id}: must be 2-{MAX_PARTICIPANTS}")));
        }
        let recording = m.recording_voice_connector_id.as_ref().map(|v| v.to_ascii_lowercase());
        if let Some(v) = &recording {
            if !streams(v) {
                return Err((
                    "RecordingVoiceConnectorId",
                    format!("meeting {id}: voice connector `{v}` does not stream (StreamingConfiguration)"),
                ));
            }
        }
        if m.name.len() > 256 || m.name.chars().any(char::is_control) {
            return Err(("Name", format!("meeting {id}: at most 256 printable characters")));
        }
        out.meetings.insert(
            id.clone(),
            MeetingDef {
                id: id.clone(),
                name: m.name.clone(),
                moderated: m.moderated,
                moderator,
                max_participants: m.max_participants,
                recording_voice_connector_id: recording,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meeting(id: &str) -> Meeting {
        Meeting {
            id: id.into(),
            name: String::new(),
            moderated: false,
            moderator_id: None,
            moderator_passcode: None,
            max_participants: 100,
            recording_voice_connector_id: None,
        }
    }

    fn checked(meet: &MeetConfig, ms: &[Meeting]) -> Result<MeetSettings, String> {
        check(meet, ms, "voicegw.local", |v| v == "vc1").map_err(|(k, m)| format!("{k}: {m}"))
    }

    #[test]
    fn meetings_and_the_meet_domain_are_checked_once() {
        let mut m = meeting("1234567890");
        m.moderated = true;
        m.moderator_id = Some("1234567890123".into());
        m.moderator_passcode = Some("4321".into());
        m.recording_voice_connector_id = Some("VC1".into());
        let meet =
            MeetConfig { aliases: vec!["Meet.UE1.voicegw.local".into()], ..MeetConfig::default() };
        let s = checked(&meet, &[m, meeting("0000000001")]).expect("valid");
        assert_eq!(s.domains, ["meet.voicegw.local", "meet.ue1.voicegw.local"]);
        assert_eq!(s.moderators["1234567890123"], "1234567890");
        let def = &s.meetings["1234567890"];
        assert_eq!(def.recording_voice_connector_id.as_deref(), Some("vc1"));
        assert_eq!(def.to_string(), "meeting 1234567890", "no passcode in its text");
        assert!(!s.allow_unencrypted);
    }

    #[test]
    fn what_is_wrong_is_named() {
        let d = MeetConfig::default();
        let e = |ms: Vec<Meeting>| checked(&d, &ms).unwrap_err();
        assert!(e(vec![meeting("123")]).contains("not 10 digits"));
        assert!(e(vec![meeting("1234567890"), meeting("1234567890")]).contains("twice"));
        let mut m = meeting("1234567890");
        m.moderated = true;
        assert!(e(vec![m.clone()]).contains("needs a ModeratorId"));
        m.moderator_id = Some("1234567890123".into());
        assert!(e(vec![m.clone()]).contains("go together"));
        m.moderator_passcode = Some("12a4-secret".into());
        let err = e(vec![m.clone()]);
        assert!(err.contains("4-12 digits") && !err.contains("secret"), "{err}");
        m.moderator_passcode = Some("1234".into());
        m.max_participants = 1;
        assert!(e(vec![m.clone()]).contains("MaxParticipants"));
        m.max_participants = 10;
        m.recording_voice_connector_id = Some("vc2".into());
        assert!(e(vec![m]).contains("does not stream"));
        let bad = MeetConfig { domain: "meet..x".into(), ..MeetConfig::default() };
        assert!(checked(&bad, &[]).unwrap_err().contains("not a domain name"));
        let bad = MeetConfig { ivr_tries: 0, ..MeetConfig::default() };
        assert!(checked(&bad, &[]).unwrap_err().contains("ivr_tries"));
    }
}
