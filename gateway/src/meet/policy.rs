//! The meeting UAS's view of the configuration (`[meet]`, `[[Meetings]]`): which meetings and
//! moderator ids exist, whether a transport may dial in, the IVR's timers. SIGHUP replaces it;
//! calls in progress keep the meeting they joined.

use std::time::Duration;

use connector::config::meetings::MeetSettings;
use meeting::ivr::{Directory, IvrConfig, MeetingRef, ModeratorRef};
use meeting::rooms::MeetingInfo;
use meeting::uas::MeetPolicy;
use sip::Transport;

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct ConfigMeetPolicy {
    settings: MeetSettings,
}

impl ConfigMeetPolicy {
    pub fn new(settings: MeetSettings) -> ConfigMeetPolicy {
        ConfigMeetPolicy { settings }
    }

    pub fn set(&mut self, settings: MeetSettings) {
        self.settings = settings;
    }

    /// Whether `host` (a Request-URI's host) is a meet domain.
    pub fn is_meet_domain(settings: &MeetSettings, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        settings.domains.iter().any(|d| d.eq_ignore_ascii_case(host))
    }
}

impl Directory for ConfigMeetPolicy {
    fn meeting(&self, id: &str) -> Option<MeetingRef> {
        self.settings.meetings.get(id).map(|m| MeetingRef { id: m.id.clone() })
    }

    fn moderator(&self, id: &str) -> Option<ModeratorRef> {
        let meeting_id = self.settings.moderators.get(id)?;
        let m = self.settings.meetings.get(meeting_id)?;
        let (_, passcode) = m.moderator.as_ref()?;
        Some(ModeratorRef { meeting_id: meeting_id.clone(), passcode: passcode.clone() })
    }
}

impl MeetPolicy for ConfigMeetPolicy {
    fn allows(&self, transport: Transport) -> bool {
        transport == Transport::Tls || self.settings.allow_unencrypted
    }

    fn info(&self, id: &str) -> Option<MeetingInfo> {
        self.settings.meetings.get(id).map(|m| MeetingInfo {
            id: m.id.clone(),
            moderated: m.moderated,
            max_participants: m.max_participants,
        })
    }

    fn ivr(&self) -> IvrConfig {
        IvrConfig {
            inter_digit: Duration::from_secs(self.settings.ivr_inter_digit_secs.into()),
            per_question: Duration::from_secs(self.settings.ivr_question_secs.into()),
            tries: self.settings.ivr_tries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector::config::Config;

    const CONFIG: &str = r#"
[meet]
domain = "meet.example.com"
aliases = ["meet.eu.example.com"]

[[Meetings]]
MeetingId = "1234567890"
Moderated = true
ModeratorId = "1234567890123"
ModeratorPasscode = "4321"
MaxParticipants = 5
"#;

    #[test]
    fn meetings_moderators_domains_and_transports_come_from_the_configuration() {
        let v = Config::parse(CONFIG, "test").expect("config");
        let p = ConfigMeetPolicy::new(v.meet.clone());
        assert_eq!(p.meeting("1234567890").map(|m| m.id), Some("1234567890".into()));
        assert_eq!(p.meeting("1234567891"), None);
        let m = p.moderator("1234567890123").expect("the moderator id");
        assert_eq!((m.meeting_id.as_str(), m.passcode.as_str()), ("1234567890", "4321"));
        let info = p.info("1234567890").expect("info");
        assert!(info.moderated);
        assert_eq!(info.max_participants, 5);
        assert!(p.allows(Transport::Tls) && !p.allows(Transport::Udp) && !p.allows(Transport::Tcp));
        assert!(ConfigMeetPolicy::is_meet_domain(&v.meet, "MEET.example.com"));
        assert!(ConfigMeetPolicy::is_meet_domain(&v.meet, "meet.eu.example.com"));
        assert!(!ConfigMeetPolicy::is_meet_domain(&v.meet, "example.com"));
    }
}
