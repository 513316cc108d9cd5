//! A meeting recorded by its moderator (`*9` to start, `*9` to stop): the meeting's full mix
//! streams as one Matroska stream of its `RecordingVoiceConnectorId` (local files by default,
//! the same bytes Kinesis Video Streams would get), with STARTED/ENDED streaming events and the
//! meeting's RECORDING_STARTED/STOPPED events. ffmpeg reads the file: everyone is in it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use harness::audio::{hears, power};
use harness::meet::{dial, meeting_events, of_type, Plan};
use harness::{require, Gateway};

const VC: &str = "abcdef1ghij2klmno3pqr4";

#[test]
fn the_moderator_records_the_meeting_as_one_stream_with_everyone_in_it() {
    if !require("sipp") || !require("ffmpeg") {
        return;
    }
    let gw = Gateway::start("127.0.0.116", |c| {
        format!(
            "{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\n\
             DataRetentionInHours = 0\n\n[meet]\nallow_unencrypted = true\n\n\
             [[Meetings]]\nMeetingId = \"5555555555\"\nModerated = true\n\
             ModeratorId = \"5555555555123\"\nModeratorPasscode = \"4321\"\n\
             RecordingVoiceConnectorId = \"{VC}\"\n"
        )
    });
    let stop = Arc::new(AtomicBool::new(false));
    let ip = "127.0.0.116";
    // The moderator: passcode by SIP INFO, then *9 (RFC 4733) at 3 s and again at 7 s.
    let passcode: Vec<(u64, char)> =
        "4321#".chars().enumerate().map(|(i, k)| (500 + i as u64 * 200, k)).collect();
    let keys = vec![(3000, '*'), (3250, '9'), (7000, '*'), (7250, '9')];
    let m = Plan { tone: Some((1100.0, 0)), events: keys, length_ms: 9000, ..Plan::default() };
    let pm = dial(&gw, "moderator", ip, 5100, 42700, "5555555555123", &passcode, m, &stop);
    let p = Plan { tone: Some((600.0, 0)), length_ms: 9000, ..Plan::default() };
    let pp = dial(&gw, "participant", ip, 5101, 42710, "5555555555", &[], p, &stop);
    let limit = Duration::from_secs(40);
    let (_, _) = (pm.finish(limit), pp.finish(limit));
    let events = meeting_events(&gw, 6);
    assert_eq!(of_type(&events, "RECORDING_STARTED").len(), 1, "{events:#?}\n{}", gw.log());
    assert_eq!(of_type(&events, "RECORDING_STOPPED").len(), 1, "{events:#?}");
    // The recording's streaming events: one stream, started and ended, with the meeting in
    // its Call-ID.
    let all =
        harness::json_lines(&gw.dir.join("var/streaming-events.jsonl"), 8, Duration::from_secs(10));
    let streaming: Vec<&serde_json::Value> =
        all.iter().filter(|e| e["detail"]["streamingStatus"].is_string()).collect();
    let status: Vec<&str> =
        streaming.iter().filter_map(|e| e["detail"]["streamingStatus"].as_str()).collect();
    assert_eq!(status, ["STARTED", "ENDED"], "{all:#?}");
    for e in &streaming {
        assert_eq!(e["detail"]["voiceConnectorId"], VC, "{e}");
        let call_id = e["detail"]["callId"].as_str().unwrap_or_default();
        assert!(call_id.starts_with("meeting-5555555555-"), "{e}");
    }
    // The file: about 4 s of the full mix, both voices in it.
    let files = harness::mkv_files(&gw.dir.join("var/kvs"));
    assert_eq!(files.len(), 1, "{files:?}");
    let pcm = harness::ffmpeg_pcm(&files[0], &files[0].with_extension("s16"));
    let seconds = pcm.len() as f64 / 8000.0;
    assert!((3.0..5.5).contains(&seconds), "{seconds:.1} s recorded");
    let middle = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
    assert!(hears(middle, 1100.0), "the moderator is in it ({:.0})", power(middle, 1100.0));
    assert!(hears(middle, 600.0), "the participant is in it ({:.0})", power(middle, 600.0));
    // A CDR for each participant and one for the recording (under the recording's voice
    // connector).
    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 3, Duration::from_secs(10));
    let cdrs: Vec<&serde_json::Value> =
        records.iter().filter(|(k, _)| k.contains("-CDRs/")).map(|(_, v)| v).collect();
    assert_eq!(cdrs.len(), 3, "{records:#?}");
    assert!(
        cdrs.iter().any(|c| c["VoiceConnectorId"] == VC && c["Streaming"] == true),
        "{cdrs:#?}"
    );
}
