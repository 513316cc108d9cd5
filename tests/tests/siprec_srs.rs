//! voicegw as a SIPREC recording server (RFC 7866), end to end: a recording client (played
//! here over UDP, as an SBC would send it) offers a session with two labelled streams and its
//! RFC 7865 metadata; voicegw answers it itself (no carrier leg), `a=recvonly` on its own
//! ports, records each stream to its own Matroska file whose audio `ffmpeg` reads back equal
//! to what was sent, and reports STARTED/ENDED per stream with `sdp.mediaIndex`,
//! `sdp.mediaLabel` and the metadata (raw and structured); a re-INVITE with new metadata gives
//! UPDATED; BYE ends it and a CDR and a streaming record are written. A recording client whose
//! address is in no voice connector's allowed list is refused with 403.

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use harness::{read_until, require, sip_header, Gateway};

const VC: &str = "abcdef1ghij2klmno3pqr4";

fn metadata(mode: &str, alice: &str) -> String {
    format!("<?xml version='1.0' encoding='UTF-8'?><recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>{mode}</datamode><session session_id='c2Vzcw=='><sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID></session><participant participant_id='cDE='><nameID aor='sip:+12065550100@pbx.example.com'><name>{alice}</name></nameID></participant><participant participant_id='cDI='><nameID aor='sip:+12065550101@carrier.example.net'><name>Bob</name></nameID></participant><stream stream_id='czE=' session_id='c2Vzcw=='><label>1</label></stream><stream stream_id='czI=' session_id='c2Vzcw=='><label>2</label></stream><participantstreamassoc participant_id='cDE='><send>czE=</send><recv>czI=</recv></participantstreamassoc><participantstreamassoc participant_id='cDI='><send>czI=</send><recv>czE=</recv></participantstreamassoc></recording>")
}

/// The recording client: its SIP socket and one RTP socket per stream.
struct Src {
    ip: String,
    sip: UdpSocket,
    rtp: [UdpSocket; 2],
    call_id: String,
}

impl Src {
    fn new(ip: &str, call_id: &str) -> Src {
        let sip = UdpSocket::bind(format!("{ip}:5095")).expect("sip socket");
        sip.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let rtp = [
            UdpSocket::bind(format!("{ip}:41000")).expect("rtp 1"),
            UdpSocket::bind(format!("{ip}:41002")).expect("rtp 2"),
        ];
        Src { ip: ip.into(), sip, rtp, call_id: call_id.into() }
    }

    fn invite(&self, to_tag: Option<&str>, cseq: u32, meta: &str) -> String {
        let ip = &self.ip;
        let sdp = format!("v=0\r\no=src 1 {cseq} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 41000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:1\r\na=sendonly\r\nm=audio 41002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:2\r\na=sendonly\r\n");
        let body = format!("--srcBoundary\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--srcBoundary\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{meta}\r\n--srcBoundary--\r\n");
        let to = match to_tag {
            Some(t) => format!("<sip:recorder@{VC}.voiceconnector.local>;tag={t}"),
            None => format!("<sip:recorder@{VC}.voiceconnector.local>"),
        };
        format!("INVITE sip:recorder@{VC}.voiceconnector.local SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5095;branch=z9hG4bK-{}-{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:src@{ip}>;tag=srctag\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:src@{ip}:5095>;+sip.src\r\nRequire: siprec\r\nContent-Type: multipart/mixed;boundary=srcBoundary\r\nContent-Length: {}\r\n\r\n{body}", self.call_id, self.call_id, body.len())
    }

    fn in_dialog(&self, method: &str, to: &str, cseq: u32) -> String {
        let ip = &self.ip;
        // The branch is unique per request (a reused one is a retransmission to the server).
        let call_id = &self.call_id;
        format!("{method} sip:voicegw@{ip}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5095;branch=z9hG4bK-{method}-{cseq}-{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:src@{ip}>;tag=srctag\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n")
    }

    fn send(&self, msg: &str) {
        self.sip.send_to(msg.as_bytes(), format!("{}:5060", self.ip)).expect("send");
    }
}

/// Stream `k`'s `n`-th packet payload (A-law, different in every packet and stream).
fn payload(k: usize, n: u16) -> Vec<u8> {
    (0..160usize).map(|i| ((usize::from(n) * 7 + i + k * 31) % 256) as u8).collect()
}

/// Stream `k`'s `n`-th RTP packet (A-law, 20 ms), of SSRC `ssrc`.
fn rtp(k: usize, n: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&n.to_be_bytes());
    p.extend_from_slice(&(u32::from(n) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&payload(k, n));
    p
}

fn audio_ports(answer: &str) -> Vec<u16> {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("m=audio "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The next 200 for `cseq` (`"3 BYE"`), skipping retransmissions of earlier ones.
fn ok_for(sock: &UdpSocket, cseq: &str) -> String {
    for _ in 0..20 {
        let m = read_until(sock, "SIP/2.0 200");
        if sip_header(&m, "CSeq") == cseq {
            return m;
        }
    }
    panic!("no 200 for {cseq}");
}

fn pcm_of(file: &Path) -> Vec<i16> {
    harness::ffmpeg_pcm(file, &file.with_extension("s16"))
}

#[test]
fn a_recording_session_is_answered_recorded_per_stream_updated_and_ended() {
    if !require("ffmpeg") || !require("mkvinfo") {
        return;
    }
    let ip = "127.0.0.76";
    let gw = Gateway::start(ip, |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n")
    });
    let src = Src::new(ip, "rs-1@src");
    src.send(&src.invite(None, 1, &metadata("complete", "Alice")));
    let ok = read_until(&src.sip, "SIP/2.0 200");
    let to = sip_header(&ok, "To").to_string();
    let tag = to.split("tag=").nth(1).expect("a To tag").to_string();
    assert!(sip_header(&ok, "Contact").contains("+sip.srs"), "{ok}");
    let ports = audio_ports(&ok);
    assert_eq!(ports.len(), 2, "{ok}");
    assert!(
        ok.contains("a=label:1\r\na=recvonly") && ok.contains("a=label:2\r\na=recvonly"),
        "{ok}"
    );
    assert!(ok.contains(&format!("c=IN IP4 {ip}")), "{ok}");
    src.send(&src.in_dialog("ACK", &to, 1));

    // Two streams of 4 s, 20 ms A-law packets, each to its own port.
    let packets = 200u16;
    for n in 0..packets {
        for (k, (sock, port)) in src.rtp.iter().zip(&ports).enumerate() {
            let p = rtp(k, n, 0x5000 + k as u32);
            sock.send_to(&p, format!("{ip}:{port}")).expect("rtp");
        }
        std::thread::sleep(Duration::from_millis(20));
        if n == packets / 2 {
            // Mid-session, a re-INVITE with changed metadata (a participant renamed).
            src.send(&src.invite(Some(&tag), 2, &metadata("partial", "Alice Transferred")));
        }
    }
    let reok = read_until(&src.sip, "SIP/2.0 200");
    assert!(
        reok.contains("CSeq: 2 INVITE") && audio_ports(&reok) == ports,
        "the same ports: {reok}"
    );
    src.send(&src.in_dialog("ACK", &to, 2));
    src.send(&src.in_dialog("BYE", &to, 3));
    ok_for(&src.sip, "3 BYE");

    let events =
        harness::json_lines(&gw.dir.join("var/streaming-events.jsonl"), 5, Duration::from_secs(15));
    let status = |e: &serde_json::Value| {
        e["detail"]["streamingStatus"].as_str().unwrap_or_default().to_string()
    };
    let mut kinds: Vec<String> = events.iter().map(status).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["ENDED", "ENDED", "STARTED", "STARTED", "UPDATED"],
        "{events:#?}\n{}",
        gw.log()
    );
    for e in &events {
        let d = &e["detail"];
        assert_eq!(d["callId"], "rs-1@src");
        assert_eq!(d["voiceConnectorId"], VC);
        match status(e).as_str() {
            "UPDATED" => {
                assert!(d["siprecMetadata"].as_str().unwrap().contains("Alice Transferred"));
                assert_eq!(
                    d["siprecMetadataJson"]["participants"][0]["name"], "Alice Transferred",
                    "merged"
                );
                assert_eq!(d["updateHeaders"]["cseq"], "2 INVITE");
            }
            _ => {
                let label = d["sdp"]["mediaLabel"].as_str().expect("sdp.mediaLabel");
                let index = d["sdp"]["mediaIndex"].as_u64().expect("sdp.mediaIndex");
                assert_eq!(index.to_string(), (label.parse::<u64>().unwrap() - 1).to_string());
                assert!(
                    d["siprecMetadata"].as_str().unwrap().contains("<recording"),
                    "the client's XML: {d}"
                );
                let streams = &d["siprecMetadataJson"]["streams"];
                assert!(streams.as_array().is_some_and(|s| s.len() == 2), "{d}");
                assert_eq!(d["inviteHeaders"]["require"], "siprec");
            }
        }
    }

    // One Matroska file per stream, each the audio of its stream, byte for byte.
    let files = harness::mkv_files(&gw.dir.join("var/kvs"));
    assert_eq!(files.len(), 2, "{files:?}");
    let mut matched = Vec::new();
    for f in &files {
        let pcm = pcm_of(f);
        let which = (0..2).find(|&k| {
            let want: Vec<i16> = (0..packets)
                .flat_map(|n| payload(k, n))
                .map(|c| streaming::g711::Law::ALaw.decode(c))
                .collect();
            pcm == want
        });
        matched.push(which.unwrap_or_else(|| {
            panic!("{} is neither stream's audio ({} samples)", f.display(), pcm.len())
        }));
    }
    matched.sort_unstable();
    assert_eq!(matched, [0, 1]);

    // A record of the session (and its streaming record).
    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 2, Duration::from_secs(10));
    let cdr = &records.iter().find(|(k, _)| k.contains("-CDRs/")).expect("a CDR").1;
    assert_eq!(
        (&cdr["CallId"], &cdr["Status"], &cdr["Streaming"]),
        (&"rs-1@src".into(), &"Completed".into(), &true.into()),
        "{cdr}"
    );
    assert!(records.iter().any(|(k, _)| k.contains("-SDRs/")));

    // The media-quality record of the received streams (side A stream 1, side B stream 2):
    // every packet received, nothing sent back.
    let path = gw.dir.join(format!("var/ChimeVoiceConnectorLogs/{VC}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let rec: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a media-quality record")).expect("JSON");
    assert_eq!(
        (&rec["cust2vc_rtp_packets"], &rec["rem2vc_rtp_packets"]),
        (&u64::from(packets).into(), &u64::from(packets).into()),
        "{rec}"
    );
    assert_eq!((&rec["vc2cust_rtp_packets"], &rec["vc2rem_rtp_packets"]), (&0.into(), &0.into()));
    assert_eq!(rec["cust2vc_packets_lost"], 0, "{rec}");

    assert_eq!(gw.process_metric("voicegw_recording_sessions_total"), 1.0, "{}", gw.metrics());
    assert_eq!(gw.process_metric("voicegw_recording_streams_total"), 2.0);
    assert_eq!(gw.wait_process_metric("voicegw_recording_sessions_active", 0.0), 0.0);
}

#[test]
fn a_recording_client_from_an_unknown_address_is_refused() {
    let gw = Gateway::start("127.0.0.77", |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n")
            .replace("CidrAllowedList = [\"127.0.0.0/8\"]", "CidrAllowedList = [\"10.0.0.0/8\"]")
    });
    let src = Src::new("127.0.0.77", "rs-2@src");
    src.send(&src.invite(None, 1, &metadata("complete", "Alice")));
    let refused = read_until(&src.sip, "SIP/2.0 403");
    assert!(sip_header(&refused, "Warning").contains("CidrAllowedList"), "{refused}\n{}", gw.log());
    let refusals = "voicegw_recording_sessions_refused_total{voice_connector_id=\"\",region=\"\",kind=\"403\"} 1";
    let start = std::time::Instant::now();
    while !gw.metrics().contains(refusals) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.metrics().contains(refusals), "{}", gw.metrics());
    assert!(
        !gw.dir.join("var/kvs").exists()
            || std::fs::read_dir(gw.dir.join("var/kvs")).unwrap().next().is_none()
    );
}

/// SIPp as the recording client, with one mixed stream (as some SBCs record) and digest
/// credentials (without them, or with a wrong answer, the client is challenged): the capture it plays is the recording,
/// byte for byte, and the variant is counted as tolerated.
#[test]
fn a_sipp_recording_client_with_one_mixed_stream_is_recorded() {
    if !require("sipp") || !require("ffmpeg") {
        return;
    }
    let ip = "127.0.0.78";
    // The voice connector has digest credentials: the recording client is challenged.
    let pw = harness::password();
    let gw = Gateway::start(ip, |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n")
            .replace(
                "RequireEncryption = false",
                &format!("RequireEncryption = false\nCredentials = [{{ Username = \"sbc1\", Password = \"{pw}\" }}]"),
            )
    });
    let (pcap, _, _) = harness::g711a_capture(&gw.dir);
    let (expected, _) = harness::played_pcm(&pcap);
    let sipp = |name: &str, password: &str, timeout: Duration| {
        let mut args = harness::pbx_args(ip);
        args.extend(["-mp", "6000", "-m", "1", "-key", "audio_pcap"].map(String::from));
        args.push(pcap.display().to_string());
        args.extend(["-au".into(), "sbc1".into(), "-ap".into(), password.to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        harness::run_sipp(&gw.dir, name, "src_siprec_mixed.xml", &args, timeout)
    };
    let r = sipp("src", &pw, Duration::from_secs(30));
    assert_eq!(r.successful, 1, "{r:#?}\n{}", gw.log());
    assert!(!gw.log().contains(&pw), "the password never reaches the log");
    // Without credentials, or with a wrong answer: 407, and nothing recorded.
    let src = Src::new(ip, "rs-auth@src");
    src.send(&src.invite(None, 1, &metadata("complete", "Alice")));
    let challenge = read_until(&src.sip, "SIP/2.0 407");
    let www = sip_header(&challenge, "Proxy-Authenticate");
    assert!(www.starts_with("Digest realm=") && www.contains("nonce="), "{challenge}");
    let param = |name: &str| {
        let v = www.split(&format!("{name}=\"")).nth(1).and_then(|n| n.split('"').next());
        v.expect(name).to_string()
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    let forged = src.invite(None, 2, &metadata("complete", "Alice")).replacen(
        "Require: siprec\r\n",
        &format!("Require: siprec\r\nProxy-Authorization: Digest username=\"sbc1\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:recorder@{VC}.voiceconnector.local\", response=\"00000000000000000000000000000000\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\"\r\n"),
        1,
    );
    src.send(&forged);
    let again = read_until(&src.sip, "SIP/2.0 407");
    assert!(again.contains("CSeq: 2 INVITE"), "{again}");
    let events =
        harness::json_lines(&gw.dir.join("var/streaming-events.jsonl"), 2, Duration::from_secs(15));
    assert_eq!(events.len(), 2, "{events:#?}");
    for e in &events {
        assert_eq!(e["detail"]["sdp"], serde_json::json!({"mediaIndex": 0, "mediaLabel": "1"}));
        assert_eq!(e["detail"]["siprecMetadataJson"]["participants"][1]["name"], "Callee");
    }
    let files = harness::mkv_files(&gw.dir.join("var/kvs"));
    assert_eq!(files.len(), 1, "one stream: {files:?}");
    assert!(pcm_of(&files[0]) == expected, "the recording is the capture played");
    let tolerated = "voicegw_recording_tolerated_total{voice_connector_id=\"\",region=\"\",kind=\"one_mixed_stream\"} 1";
    assert!(gw.metrics().contains(tolerated), "{}", gw.metrics());
}

/// SIPp as the recording client with two labelled streams (`src_siprec_two_streams.xml`): it
/// plays the G.711 capture as stream 1, the test plays a stream of its own as stream 2 from
/// the address the offer gave (127.0.0.86, a `c=` line of its own), and a re-INVITE with partial metadata renames the callee. Each
/// stream's recording is its audio byte for byte; the events carry each stream's index and
/// label, and UPDATED the merged metadata.
#[test]
fn a_sipp_recording_client_with_two_streams_is_recorded_and_updated() {
    if !require("sipp") || !require("ffmpeg") {
        return;
    }
    let ip = "127.0.0.85";
    let gw = Gateway::start(ip, |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n")
    });
    let (pcap, _, _) = harness::g711a_capture(&gw.dir);
    let (expected, _) = harness::played_pcm(&pcap);
    let port_file = gw.dir.join("stream2.port");
    let mut args = harness::pbx_args(ip);
    args.extend(["-mp", "6000", "-m", "1", "-key", "audio_pcap"].map(String::from));
    args.push(pcap.display().to_string());
    args.extend(["-key".to_string(), "port_file".to_string(), port_file.display().to_string()]);
    args.extend(["-key", "stream2_ip", "127.0.0.86"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sipp = harness::Sipp::spawn(&gw.dir, "src2", "src_siprec_two_streams.xml", &args);
    let start = std::time::Instant::now();
    let port: u16 = loop {
        // `<stream 2's port> <stream 1's port>`, complete once its line ends.
        let text = std::fs::read_to_string(&port_file).unwrap_or_default();
        let line = text.strip_suffix('\n');
        if let Some(p) = line.and_then(|l| l.split_whitespace().next()?.parse().ok()) {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "SIPp wrote no port\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    // Stream 2 from the address the offer announced.
    let sock = UdpSocket::bind("127.0.0.86:6000").expect("stream 2 socket");
    let packets = 300u16;
    for n in 0..packets {
        let p = rtp(1, n, 0x2222_0002u32);
        sock.send_to(&p, format!("{ip}:{port}")).expect("rtp");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = sipp.wait(Duration::from_secs(30));
    assert_eq!(r.successful, 1, "{r:#?}\n{}", gw.log());

    let events =
        harness::json_lines(&gw.dir.join("var/streaming-events.jsonl"), 5, Duration::from_secs(15));
    let status =
        |e: &serde_json::Value| e["detail"]["streamingStatus"].as_str().unwrap_or("").to_string();
    let mut kinds: Vec<String> = events.iter().map(status).collect();
    kinds.sort();
    assert_eq!(kinds, ["ENDED", "ENDED", "STARTED", "STARTED", "UPDATED"], "{events:#?}");
    for e in &events {
        let d = &e["detail"];
        if status(e) == "UPDATED" {
            assert_eq!(d["siprecMetadataJson"]["participants"][1]["name"], "Callee Transferred");
            assert_eq!(d["siprecMetadataJson"]["participants"][0]["name"], "Caller", "merged");
        } else {
            let index = d["sdp"]["mediaIndex"].as_u64().expect("mediaIndex");
            let label = d["sdp"]["mediaLabel"].as_str().expect("mediaLabel");
            assert_eq!((index + 1).to_string(), label, "{d}");
        }
    }
    let second: Vec<i16> = (0..packets)
        .flat_map(|n| payload(1, n))
        .map(|c| streaming::g711::Law::ALaw.decode(c))
        .collect();
    let files = harness::mkv_files(&gw.dir.join("var/kvs"));
    assert_eq!(files.len(), 2, "{files:?}");
    let pcms: Vec<Vec<i16>> = files.iter().map(|f| pcm_of(f)).collect();
    assert!(pcms.contains(&expected), "stream 1 is the capture SIPp played");
    assert!(pcms.contains(&second), "stream 2 is what the test played");
}

/// One recording client's shape: its headers, its SDP's m-lines (ports 41000 and 41002) and
/// its body parts besides the SDP.
struct Shape {
    name: &'static str,
    headers: String,
    media: String,
    /// (Content-Type, Content-Disposition, body) of the parts after the SDP.
    parts: Vec<(&'static str, Option<&'static str>, String)>,
    labels: &'static [&'static str],
    tolerated: &'static [&'static str],
}

/// Every vendor's shape, for a client at `ip`.
fn shapes(ip: &str) -> Vec<Shape> {
    let rfc = metadata("complete", "Alice");
    let draft = "<?xml version='1.0' encoding='UTF-8'?><recording xmlns='urn:ietf:params:xml:ns:recording'><dataMode>complete</dataMode><session id='urn:uuid:1'><start-time>2026-12-07T10:00:00</start-time></session><participant id='urn:uuid:2' session='urn:uuid:1'><aor>sip:alice@192.0.2.40</aor><name>alice</name><send>urn:uuid:4</send></participant><participant id='urn:uuid:3' session='urn:uuid:1'><aor>sip:bob@192.0.2.60</aor><name>bob</name><send>urn:uuid:5</send></participant><stream id='urn:uuid:4' session='urn:uuid:1'><mode>separate</mode><label>1</label></stream><stream id='urn:uuid:5' session='urn:uuid:1'><mode>separate</mode><label>2</label></stream></recording>".to_string();
    let cube = rfc.replace("</recording>", "<extensiondata xmlns:call='urn:x-cisco:params:xml:ns:src:call'><call:callid>8a1c2b3d</call:callid></extensiondata></recording>");
    let siprec = format!("Require: siprec\r\nContact: <sip:src@{ip}:5095>;+sip.src\r\n");
    let two = "m=audio 41000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:1\r\na=sendonly\r\nm=audio 41002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:2\r\na=sendonly\r\n".to_string();
    let meta = |body: &str| {
        vec![("application/rs-metadata+xml", Some("recording-session"), body.to_string())]
    };
    vec![
        // Cisco CUBE: RFC 7865 with its extension data.
        Shape { name: "cisco_cube", headers: siprec.clone(), media: two.clone(), parts: meta(&cube), labels: &["1", "2"], tolerated: &[] },
        // Oracle (Acme Packet): the draft's metadata, no direction attribute (sample SDP and
        // metadata of its SIPREC documentation).
        Shape {
            name: "oracle_acme",
            headers: siprec.clone(),
            media: "m=audio 41000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:1\r\nm=audio 41002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:2\r\n".into(),
            parts: meta(&draft),
            labels: &["1", "2"],
            tolerated: &["direction_variant", "metadata_draft_namespace", "metadata_draft_attributes"],
        },
        // Avaya SBCE: a c= line per m-line.
        Shape {
            name: "avaya_sbce",
            headers: siprec.clone(),
            media: format!("m=audio 41000 RTP/AVP 8\r\nc=IN IP4 {ip}\r\na=label:1\r\na=sendonly\r\nm=audio 41002 RTP/AVP 8\r\nc=IN IP4 {ip}\r\na=label:2\r\na=sendonly\r\n"),
            parts: meta(&rfc),
            labels: &["1", "2"],
            tolerated: &["per_media_connection"],
        },
        // BroadWorks: metadata typed without +xml, only +sip.src to say it is recording.
        Shape {
            name: "broadworks",
            headers: format!("Contact: <sip:src@{ip}:5095>;+sip.src\r\n"),
            media: two,
            parts: vec![("application/rs-metadata", Some("recording-session"), rfc.clone())],
            labels: &["1", "2"],
            tolerated: &["metadata_without_xml"],
        },
        // Sonus/Ribbon: labels that are not numbers, and a GTD part.
        Shape {
            name: "sonus_ribbon",
            headers: siprec.clone(),
            media: "m=audio 41000 RTP/AVP 8\r\na=label:caller\r\na=sendonly\r\nm=audio 41002 RTP/AVP 8\r\na=label:callee\r\na=sendonly\r\n".into(),
            parts: vec![
                ("application/gtd", Some("signal;handling=optional"), "IAM,\r\nPRN,isdn*,,NT100,,,,,".into()),
                ("application/rs-metadata+xml", Some("recording-session"), rfc.clone()),
            ],
            labels: &["caller", "callee"],
            tolerated: &["extra_parts", "non_numeric_label"],
        },
        // Metaswitch: one mixed stream.
        Shape {
            name: "metaswitch",
            headers: siprec.clone(),
            media: "m=audio 41000 RTP/AVP 8\r\na=label:1\r\na=sendonly\r\n".into(),
            parts: meta(&rfc),
            labels: &["1"],
            tolerated: &["one_mixed_stream"],
        },
        // FreeSWITCH: no Content-Disposition on the metadata, sendrecv streams.
        Shape {
            name: "freeswitch",
            headers: siprec.clone(),
            media: "m=audio 41000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=label:1\r\na=sendrecv\r\nm=audio 41002 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=label:2\r\na=sendrecv\r\n".into(),
            parts: vec![("application/rs-metadata+xml", None, rfc.clone())],
            labels: &["1", "2"],
            tolerated: &["no_content_disposition", "direction_variant"],
        },
        // OpenSIPS: Require: siprec without +sip.src, ICE and RTCP-XR attributes, a missing label.
        Shape {
            name: "opensips",
            headers: format!("Require: siprec\r\nContact: <sip:{ip}:5095>\r\n"),
            media: "m=audio 41000 RTP/AVP 0 8 101\r\na=ice-ufrag:ade56ecb\r\na=rtcp-xr:rcvr-rtt=all:10000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=label:0\r\na=sendonly\r\nm=audio 41002 RTP/AVP 8 101\r\na=sendonly\r\n".into(),
            parts: meta(&rfc),
            labels: &["0", "1"],
            tolerated: &["missing_label"],
        },
    ]
}

/// What one vendor sends, recorded: its streams are answered, recorded with their audio byte
/// for byte and reported with their labels, and what was tolerated is counted.
fn vendor_shape_is_recorded(name: &str, ip: &str) {
    if !require("ffmpeg") {
        return;
    }
    let gw = Gateway::start(ip, |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n")
    });
    let shape = shapes(ip).into_iter().find(|s| s.name == name).expect("a vendor's shape");
    let packets = 50u16;
    let src = Src::new(ip, &format!("rs-{}@src", shape.name));
    let sdp =
        format!("v=0\r\no=src 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{}", shape.media);
    let mut body = format!("--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n");
    for (ct, disposition, content) in &shape.parts {
        body.push_str(&format!("--b\r\nContent-Type: {ct}\r\n"));
        if let Some(d) = disposition {
            body.push_str(&format!("Content-Disposition: {d}\r\n"));
        }
        body.push_str(&format!("\r\n{content}\r\n"));
    }
    body.push_str("--b--\r\n");
    let invite = format!("INVITE sip:recorder@{VC}.voiceconnector.local SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5095;branch=z9hG4bK-{}\r\nMax-Forwards: 70\r\nFrom: <sip:src@{ip}>;tag=srctag\r\nTo: <sip:recorder@{VC}.voiceconnector.local>\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\n{}Content-Type: multipart/mixed;boundary=b\r\nContent-Length: {}\r\n\r\n{body}", shape.name, src.call_id, shape.headers, body.len());
    src.send(&invite);
    let ok = ok_for(&src.sip, "1 INVITE");
    let to = sip_header(&ok, "To").to_string();
    let ports: Vec<u16> = audio_ports(&ok).into_iter().filter(|p| *p != 0).collect();
    assert_eq!(ports.len(), shape.labels.len(), "{}: {ok}", shape.name);
    src.send(&src.in_dialog("ACK", &to, 1));
    for n in 0..packets {
        for (k, (sock, port)) in src.rtp.iter().zip(&ports).enumerate() {
            let p = rtp(k, n, 0x6000 + k as u32);
            sock.send_to(&p, format!("{ip}:{port}")).expect("rtp");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    src.send(&src.in_dialog("BYE", &to, 2));
    ok_for(&src.sip, "2 BYE");

    let want_events = 2 * shape.labels.len();
    let events = harness::json_lines(
        &gw.dir.join("var/streaming-events.jsonl"),
        want_events,
        Duration::from_secs(20),
    );
    assert_eq!(events.len(), want_events, "{events:#?}");
    for (k, label) in shape.labels.iter().enumerate() {
        let started = events
            .iter()
            .find(|e| {
                e["detail"]["streamingStatus"] == "STARTED"
                    && e["detail"]["sdp"]["mediaLabel"] == *label
            })
            .unwrap_or_else(|| panic!("{}: no STARTED for label {label}: {events:#?}", shape.name));
        // Its stream's file, by the name in its ARN, holds the audio sent on it.
        let arn = started["detail"]["streamArn"].as_str().expect("arn");
        let name = arn.split(":stream/").nth(1).and_then(|r| r.split('/').next()).expect("name");
        let file = gw.dir.join(format!("var/kvs/{name}.mkv"));
        let want: Vec<i16> = (0..packets)
            .flat_map(|n| payload(k, n))
            .map(|c| streaming::g711::Law::ALaw.decode(c))
            .collect();
        assert!(pcm_of(&file) == want, "{}: label {label}'s recording", shape.name);
    }
    let metrics = gw.metrics();
    for t in shape.tolerated {
        let key = format!("voicegw_recording_tolerated_total{{voice_connector_id=\"\",region=\"\",kind=\"{t}\"}} 1");
        assert!(metrics.contains(&key), "{}: {t} not counted:\n{metrics}", shape.name);
    }
    assert_eq!(gw.process_metric("voicegw_recording_sessions_total"), 1.0);
}

#[test]
fn cisco_cube_is_recorded() {
    vendor_shape_is_recorded("cisco_cube", "127.0.0.90");
}

#[test]
fn oracle_acme_packet_is_recorded() {
    vendor_shape_is_recorded("oracle_acme", "127.0.0.91");
}

#[test]
fn avaya_sbce_is_recorded() {
    vendor_shape_is_recorded("avaya_sbce", "127.0.0.92");
}

#[test]
fn broadworks_is_recorded() {
    vendor_shape_is_recorded("broadworks", "127.0.0.93");
}

#[test]
fn sonus_ribbon_is_recorded() {
    vendor_shape_is_recorded("sonus_ribbon", "127.0.0.94");
}

#[test]
fn metaswitch_is_recorded() {
    vendor_shape_is_recorded("metaswitch", "127.0.0.95");
}

#[test]
fn freeswitch_is_recorded() {
    vendor_shape_is_recorded("freeswitch", "127.0.0.96");
}

#[test]
fn opensips_is_recorded() {
    vendor_shape_is_recorded("opensips", "127.0.0.97");
}

/// `X-Voice-Connector-Record-Only: true` (a header, or a Request-URI parameter) on an ordinary
/// INVITE: voicegw answers it itself, places no carrier leg, and records what the caller sends.
#[test]
fn a_record_only_invite_is_recorded_without_a_carrier_leg() {
    if !require("ffmpeg") {
        return;
    }
    let ip = "127.0.0.80";
    let gw = Gateway::start(ip, |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n")
    });
    // The carrier the default configuration routes to: nothing may reach it.
    let carrier = UdpSocket::bind(format!("{ip}:5080")).expect("carrier socket");
    carrier.set_nonblocking(true).expect("nonblocking");
    let packets = 50u16;
    for (call_id, uri_param, header) in [
        ("ro-header@pbx", "", "X-Voice-Connector-Record-Only: true\r\n"),
        ("ro-param@pbx", ";X-Voice-Connector-Record-Only=true", ""),
    ] {
        let src = Src::new(ip, call_id);
        let sdp = format!("v=0\r\no=pbx 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 41000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n");
        let invite = format!("INVITE sip:+12065550101@{VC}.voiceconnector.local{uri_param} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5095;branch=z9hG4bK-{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:+12065550100@{ip}>;tag=pbx\r\nTo: <sip:+12065550101@{VC}.voiceconnector.local>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@{ip}:5095>\r\n{header}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len());
        src.send(&invite);
        let ok = ok_for(&src.sip, "1 INVITE");
        assert!(ok.contains("a=recvonly"), "{ok}");
        let to = sip_header(&ok, "To").to_string();
        let port = audio_ports(&ok)[0];
        src.send(&src.in_dialog("ACK", &to, 1));
        for n in 0..packets {
            let p = rtp(0, n, 0x7000u32);
            src.rtp[0].send_to(&p, format!("{ip}:{port}")).expect("rtp");
            std::thread::sleep(Duration::from_millis(20));
        }
        src.send(&src.in_dialog("BYE", &to, 2));
        ok_for(&src.sip, "2 BYE");
    }
    let mut buf = [0u8; 4096];
    assert!(carrier.recv(&mut buf).is_err(), "no carrier leg: {}", String::from_utf8_lossy(&buf));
    let events =
        harness::json_lines(&gw.dir.join("var/streaming-events.jsonl"), 4, Duration::from_secs(15));
    assert_eq!(events.len(), 4, "{events:#?}");
    let want: Vec<i16> = (0..packets)
        .flat_map(|n| payload(0, n))
        .map(|c| streaming::g711::Law::ALaw.decode(c))
        .collect();
    let files = harness::mkv_files(&gw.dir.join("var/kvs"));
    assert_eq!(files.len(), 2, "one stream per session: {files:?}");
    for f in &files {
        assert!(pcm_of(f) == want, "{}: the caller's audio", f.display());
    }
}

/// A voice connector that requires encryption takes recording sessions over TLS with SRTP
/// streams only: over UDP, or with a plain stream, the client is refused with 488. An SRTP
/// session (SDES, one key per stream) is answered with voicegw's own key for each stream, and
/// what is recorded is the audio the client encrypted, byte for byte.
#[test]
fn an_srtp_recording_session_on_an_encrypted_voice_connector_is_recorded_in_clear() {
    use media::srtp::{Context, MasterKey, Suite};
    if !require("ffmpeg") || !require("openssl") {
        return;
    }
    let ip = "127.0.0.75";
    let gw = Gateway::start(ip, |c| {
        format!("{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\n")
            .replace("RequireEncryption = false", "RequireEncryption = true")
            .replace("Port = 5090, Protocol = \"UDP\"", "Port = 5090, Protocol = \"TCP\"")
    });
    // Obviously fake keys, one per stream.
    let keys = [
        MasterKey { key: [0x11; 16], salt: [0x22; 14] },
        MasterKey { key: [0x33; 16], salt: [0x44; 14] },
    ];
    let stream = |port: u16, label: u8, proto: &str, key: &MasterKey| {
        let crypto = if proto == "RTP/SAVP" {
            format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 {}\r\n", key.to_inline())
        } else {
            String::new()
        };
        format!("m=audio {port} {proto} 8\r\na=rtpmap:8 PCMA/8000\r\n{crypto}a=label:{label}\r\na=sendonly\r\n")
    };
    let invite = |transport: &str, call_id: &str, protos: [&str; 2]| {
        let sdp = format!(
            "v=0\r\no=src 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{}{}",
            stream(41000, 1, protos[0], &keys[0]),
            stream(41002, 2, protos[1], &keys[1])
        );
        let meta = metadata("complete", "Alice");
        let body = format!("--srcBoundary\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--srcBoundary\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{meta}\r\n--srcBoundary--\r\n");
        let param = if transport == "TLS" { ";transport=tls" } else { "" };
        format!("INVITE sip:recorder@{VC}.voiceconnector.local{param} SIP/2.0\r\nVia: SIP/2.0/{transport} {ip}:5095;branch=z9hG4bK-{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:src@{ip}>;tag=srctag\r\nTo: <sip:recorder@{VC}.voiceconnector.local>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:src@{ip}:5095{param}>;+sip.src\r\nRequire: siprec\r\nContent-Type: multipart/mixed;boundary=srcBoundary\r\nContent-Length: {}\r\n\r\n{body}", body.len())
    };
    // SIPREC over UDP to an encrypted voice connector: 488.
    let src = Src::new(ip, "srtp-udp@src");
    src.send(&invite("UDP", "srtp-udp@src", ["RTP/SAVP", "RTP/SAVP"]));
    let refused = read_until(&src.sip, "SIP/2.0 488");
    assert!(sip_header(&refused, "Warning").contains("requires encryption"), "{refused}");

    let mut tls = harness::TlsClient::connect(&format!("{ip}:5061"), &[]);
    // Over TLS, one plain stream: 488.
    tls.send(&invite("TLS", "srtp-plain@src", ["RTP/SAVP", "RTP/AVP"]));
    let refused = tls.expect("SIP/2.0 488", Duration::from_secs(5));
    assert!(
        harness::msg_header(&refused, "Warning").contains("requires encryption"),
        "{refused:?}"
    );
    // Over TLS, both streams SRTP: answered with voicegw's keys.
    tls.send(&invite("TLS", "srtp@src", ["RTP/SAVP", "RTP/SAVP"]));
    let ok = tls.expect_full("SIP/2.0 200", Duration::from_secs(10));
    let ports = audio_ports(&ok);
    assert_eq!(ports.len(), 2, "{ok}");
    let answered: Vec<MasterKey> = ok
        .lines()
        .filter_map(|l| l.strip_prefix("a=crypto:1 AES_CM_128_HMAC_SHA1_80 "))
        .map(|k| MasterKey::from_inline(k).expect("a key voicegw answered"))
        .collect();
    assert_eq!(answered.len(), 2, "a key per stream: {ok}");
    assert!(answered.iter().all(|k| !keys.contains(k)) && answered[0] != answered[1], "{ok}");
    assert_eq!(ok.matches("RTP/SAVP").count(), 2, "{ok}");
    let to = sip_header(&ok, "To").to_string();
    tls.send(&format!("ACK sip:voicegw@{ip}:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {ip}:5095;branch=z9hG4bK-srtp-ack\r\nMax-Forwards: 70\r\nFrom: <sip:src@{ip}>;tag=srctag\r\nTo: {to}\r\nCall-ID: srtp@src\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));

    let mut tx: Vec<Context> =
        keys.iter().map(|k| Context::new(Suite::AesCm128HmacSha1_80, k)).collect();
    let packets = 100u16;
    for n in 0..packets {
        for (k, (sock, port)) in src.rtp.iter().zip(&ports).enumerate() {
            let mut p = rtp(k, n, 0x6000 + k as u32);
            let len = p.len();
            p.resize(len + 10, 0);
            let len = tx[k].protect_rtp(&mut p, len).expect("protect");
            assert_ne!(&p[12..172], &payload(k, n)[..], "encrypted on the wire");
            sock.send_to(&p[..len], format!("{ip}:{port}")).expect("rtp");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tls.send(&format!("BYE sip:voicegw@{ip}:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {ip}:5095;branch=z9hG4bK-srtp-bye\r\nMax-Forwards: 70\r\nFrom: <sip:src@{ip}>;tag=srctag\r\nTo: {to}\r\nCall-ID: srtp@src\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"));
    tls.expect("SIP/2.0 200", Duration::from_secs(5));

    let events =
        harness::json_lines(&gw.dir.join("var/streaming-events.jsonl"), 4, Duration::from_secs(15));
    assert_eq!(events.len(), 4, "{events:#?}\n{}", gw.log());
    let files = harness::mkv_files(&gw.dir.join("var/kvs"));
    assert_eq!(files.len(), 2, "{files:?}");
    let mut matched: Vec<usize> = files
        .iter()
        .map(|f| {
            let pcm = pcm_of(f);
            (0..2)
                .find(|&k| {
                    let want: Vec<i16> = (0..packets)
                        .flat_map(|n| payload(k, n))
                        .map(|c| streaming::g711::Law::ALaw.decode(c))
                        .collect();
                    pcm == want
                })
                .unwrap_or_else(|| panic!("{} is neither stream's audio in clear", f.display()))
        })
        .collect();
    matched.sort_unstable();
    assert_eq!(matched, [0, 1]);
    assert!(gw.metrics().contains("kind=\"srtp\""), "{}", gw.metrics());
}
