//! Meeting dial-in with a real SIP user agent: two baresip instances (TLS to 5061, SRTP by
//! SDES, PCMA, RFC 4733 keys from their keypads) join one meeting. The first dials without an
//! id and types it for the IVR; the second dials the meeting's id. Each plays a tone of its
//! own from a file and records what it hears (its `sndfile` dump): each must hear the other's
//! tone and not its own.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::audio::{hears, power, tone, wav_samples, write_wav};
use harness::{require, Gateway};

const DOMAIN: &str = "meet.voiceconnector.local";

/// One baresip: its configuration directory, its recordings, the process.
struct Baresip {
    dir: PathBuf,
    child: Child,
}

impl Baresip {
    /// Starts baresip on `ip:sip_port`, playing `tone_hz` for `seconds` (the call ends with
    /// the file), dialling `uri` through voicegw's TLS listener on `gw_ip`.
    fn dial(
        gw: &Gateway,
        name: &str,
        sip_port: u16,
        rtp: u16,
        tone_hz: f32,
        seconds: f32,
        uri: &str,
    ) -> Baresip {
        let dir = gw.dir.join(name);
        std::fs::create_dir_all(dir.join("snd")).expect("dir");
        let source = dir.join("tone.wav");
        write_wav(&source, &tone(tone_hz, 8000.0, seconds));
        let cert = gw.dir.join("var/tls/voicegw-cert.pem");
        let config = format!(
            "poll_method epoll\nnet_interface {ip}\nsip_listen {ip}:{sip_port}\nsip_cafile {cert}\n\
             audio_player aufile,{snd}\naudio_source aufile,{src}\naudio_alert aufile,/dev/null\n\
             ausrc_srate 8000\nauplay_srate 8000\nausrc_channels 1\nauplay_channels 1\n\
             rtp_ports {rtp}-{rtp_end}\nmodule_path /usr/lib/baresip/modules\nmodule stdio.so\n\
             module g711.so\nmodule aufile.so\nmodule sndfile.so\nmodule srtp.so\n\
             module_app account.so\nmodule_app menu.so\nsnd_path {snd}\n",
            ip = gw.ip,
            cert = cert.display(),
            snd = dir.join("snd").display(),
            src = source.display(),
            rtp_end = rtp + 20,
        );
        std::fs::write(dir.join("config"), config).expect("config");
        let account = format!(
            "<sip:{name}@{DOMAIN};transport=tls>;regint=0;outbound=\"sip:{}:5061;transport=tls\";\
             audio_codecs=PCMA;mediaenc=srtp\n",
            gw.ip
        );
        std::fs::write(dir.join("accounts"), account).expect("accounts");
        let log = std::fs::File::create(dir.join("baresip.log")).expect("log");
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-e", &format!("/dial {uri}"), "-t", &format!("{}", seconds as u64 + 6)])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("baresip");
        Baresip { dir, child }
    }

    /// Types `keys` on its keypad (sent as RFC 4733 events in the call), one every 250 ms.
    fn type_keys(&mut self, keys: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        for k in keys.chars() {
            let _ = stdin.write_all(&[k as u8]);
            let _ = stdin.flush();
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits for it to end (the call ends with its tone file) and returns what it heard.
    fn heard(&mut self, limit: Duration) -> Vec<i16> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default();
        let dumps: Vec<PathBuf> = std::fs::read_dir(self.dir.join("snd"))
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| is_decoded(p)).collect())
            .unwrap_or_default();
        assert_eq!(dumps.len(), 1, "one recording of what it heard\n{log}");
        wav_samples(&dumps[0])
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_decoded(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("-dec.wav"))
}

#[test]
fn two_baresips_over_tls_and_srtp_join_by_ivr_and_by_id_and_hear_each_other() {
    if !require("baresip") {
        return;
    }
    let gw = Gateway::start("127.0.0.115", |c| {
        format!(
            "{c}\n[meet]\nivr_inter_digit_secs = 3\n\n[[Meetings]]\nMeetingId = \"1234567890\"\n"
        )
    });
    // The first asks the IVR: no id in the URI; keys after the prompt has started.
    let mut a = Baresip::dial(&gw, "room-a", 5090, 42500, 1000.0, 12.0, &format!("sip:u@{DOMAIN}"));
    let mut b =
        Baresip::dial(&gw, "room-b", 5096, 42600, 500.0, 12.0, &format!("sip:1234567890@{DOMAIN}"));
    std::thread::sleep(Duration::from_secs(3));
    a.type_keys("1234567890#");
    let (ha, hb) = (a.heard(Duration::from_secs(30)), b.heard(Duration::from_secs(30)));
    let log = gw.log();
    // A joined about 6 s into its call; both calls last 12 s.
    let window = |h: &[i16]| h[(8 * 8000).min(h.len())..(11 * 8000).min(h.len())].to_vec();
    let (wa, wb) = (window(&ha), window(&hb));
    assert!(wa.len() >= 8000, "A heard {} samples\n{log}", ha.len());
    assert!(hears(&wa, 500.0), "A hears B ({:.0})\n{log}", power(&wa, 500.0));
    assert!(power(&wa, 1000.0) < 1e4, "A does not hear itself ({:.0})", power(&wa, 1000.0));
    assert!(hears(&wb, 1000.0), "B hears A ({:.0})\n{log}", power(&wb, 1000.0));
    assert!(power(&wb, 500.0) < 1e4, "B does not hear itself ({:.0})", power(&wb, 500.0));
    // Both over TLS with SRTP, A's id taken from its RFC 4733 keys.
    assert_eq!(log.matches("meeting dial-in answered").count(), 2, "{log}");
    assert!(log.matches("peer=TLS:").count() >= 2, "{log}");
    assert_eq!(log.matches("participant joined the meeting").count(), 2, "{log}");
    let key = "voicegw_meeting_dtmf_total{voice_connector_id=\"\",region=\"\",kind=\"rfc4733\"} 11";
    assert!(gw.metrics().contains(key), "{}", gw.metrics());
    assert!(log.contains("srtp_failures=0"), "{log}");
}
