//! Call audio streamed to Kinesis Video Streams (`streaming.sink = "kvs"`): moto's server mode
//! is the control plane (streams created with the voice connector's retention, reused from
//! the pool by the next call) and `tests/fakes/kvs_putmedia.py` the data plane. The fake is
//! written apart from voicegw: it checks the PutMedia head, recomputes the SigV4 signature
//! with botocore from the fixed test credentials, de-chunks the body and parses the Matroska
//! stream itself, answers acknowledgements while the body is still coming, and injects error
//! acknowledgements, slow acknowledgements, refusals and dropped connections. The audio that
//! arrives is compared with the G.711 decode of what SIPp played, byte for byte; `ffmpeg`
//! reads each connection's body too. Under `CI=true` a missing peer fails the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::{is_iso_ms, require, Gateway, Moto, FAKE_AWS_ENV};

const VC: &str = "abcdef1ghij2klmno3pqr4";

/// The fake PutMedia data plane, killed when dropped.
struct FakeKvs {
    child: Child,
    state: PathBuf,
    pub addr: String,
}

impl FakeKvs {
    fn start(addr: &str, state: &Path, faults: &[&str]) -> FakeKvs {
        let script = harness::root().join("tests/fakes/kvs_putmedia.py");
        let child = Command::new("python3")
            .arg(script)
            .args(["--listen", addr, "--state"])
            .arg(state)
            .args(["--limit-secs", "300"])
            .args(faults)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(state.with_extension("stderr")).expect("stderr file"))
            .spawn()
            .expect("python3");
        assert!(harness::wait_listening(addr, Duration::from_secs(20)), "the fake did not start");
        FakeKvs { child, state: state.to_path_buf(), addr: addr.to_string() }
    }

    /// One line per connection the fake served.
    fn log(&self) -> Vec<serde_json::Value> {
        harness::json_lines(&self.state.join("log.jsonl"), 0, Duration::ZERO)
    }

    /// Every sample the fake took for `stream`, each timestamp once, in order.
    fn pcm(&self, stream: &str) -> Vec<i16> {
        let bytes = std::fs::read(self.state.join(format!("{stream}.pcm"))).unwrap_or_default();
        bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.state.with_extension("stderr")).unwrap_or_default()
    }
}

impl Drop for FakeKvs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peers() -> bool {
    require("sipp")
        && require("moto_server")
        && require("aws")
        && require("ffmpeg")
        && require("mkvinfo")
        && require("python3")
}

/// A gateway streaming to moto (control plane) and the fake (data plane).
fn gateway(ip: &str, moto: &str, fake: &str, retention: u32, extra: &str) -> Gateway {
    let mut env: Vec<(&str, &str)> = FAKE_AWS_ENV.to_vec();
    env.extend([("AWS_CONFIG_FILE", "/dev/null"), ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")]);
    Gateway::start_with_env(ip, &env, |c| {
        format!(
            "{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = {retention}\n\n[streaming]\nsink = \"kvs\"\nregion = \"us-east-1\"\nkvs_endpoint = \"http://{moto}\"\ndata_endpoint = \"http://{fake}\"\njitter_hold_ms = 200\n{extra}\n"
        )
    })
}

/// The streaming events of the gateway once `want` are there with an ENDED or FAILED for
/// each leg (at most `limit`).
fn events(gw: &Gateway, want: usize, limit: Duration) -> Vec<serde_json::Value> {
    harness::json_lines(&gw.dir.join("var/streaming-events.jsonl"), want, limit)
}

fn status(e: &serde_json::Value) -> &str {
    e["detail"]["streamingStatus"].as_str().unwrap_or_default()
}

/// The stream names of moto's streams, and their retention.
fn moto_streams(moto: &Moto) -> Vec<(String, u64, String)> {
    let listed = moto.aws(&["kinesisvideo", "list-streams"]);
    let mut v: Vec<(String, u64, String)> = listed["StreamInfoList"]
        .as_array()
        .expect("StreamInfoList")
        .iter()
        .map(|s| {
            (
                s["StreamName"].as_str().unwrap_or_default().to_string(),
                s["DataRetentionInHours"].as_u64().unwrap_or(u64::MAX),
                s["StreamARN"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The value of process metric `name` for `kind` (0 when absent).
fn kind_metric(gw: &Gateway, name: &str, kind: &str) -> f64 {
    let key = format!("{name}{{voice_connector_id=\"\",region=\"\",kind=\"{kind}\"}} ");
    gw.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Checks a STARTED or ENDED event of a KVS stream against formats.md §8 and what the control
/// plane and the fake saw.
fn check_event(
    e: &serde_json::Value,
    cdr: &serde_json::Value,
    streams: &[(String, u64, String)],
    log: &[serde_json::Value],
) {
    let d = &e["detail"];
    let want_keys: &[&str] = if status(e) == "STARTED" {
        &[
            "callId",
            "direction",
            "fromNumber",
            "inviteHeaders",
            "isCaller",
            "mediaType",
            "siprecMetadata",
            "startFragmentNumber",
            "startTime",
            "streamArn",
            "transactionId",
            "voiceConnectorId",
            "streamingStatus",
            "version",
            "toNumber",
        ]
    } else {
        &[]
    };
    for k in want_keys {
        assert!(d.get(*k).is_some(), "STARTED lacks {k}: {d}");
    }
    assert_eq!(e["source"], "aws.chime");
    assert_eq!(e["detail-type"], "Chime VoiceConnector Streaming Status");
    assert_eq!(d["callId"], cdr["CallId"]);
    assert_eq!(d["transactionId"], cdr["TransactionId"]);
    assert_eq!(d["voiceConnectorId"], VC);
    assert_eq!(d["mediaType"], "audio/L16");
    assert_eq!(d["version"], "0");
    assert!(is_iso_ms(d["startTime"].as_str().unwrap_or_default()), "{d}");
    let h = d["inviteHeaders"].as_object().expect("inviteHeaders");
    assert_eq!(h["call-id"], cdr["CallId"]);
    // The ARN is the one CreateStream gave (moto's), for one of the call's streams.
    let arn = d["streamArn"].as_str().expect("streamArn");
    let (name, _, _) = streams
        .iter()
        .find(|(_, _, a)| a == arn)
        .unwrap_or_else(|| panic!("{arn} is none of moto's streams {streams:?}"));
    // The fragment numbers are the fake's, for that stream.
    let numbers: Vec<String> = log
        .iter()
        .filter(|c| c["stream"] == name.as_str())
        .flat_map(|c| c["fragments"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f["number"].as_str().map(str::to_string))
        .collect();
    assert!(!numbers.is_empty(), "the fake acknowledged no fragment of {name}");
    let start = d["startFragmentNumber"].as_str().expect("startFragmentNumber");
    assert_eq!(Some(start), numbers.iter().min().map(String::as_str), "the first fragment's");
    if status(e) == "ENDED" {
        assert!(is_iso_ms(d["endTime"].as_str().unwrap_or_default()), "{d}");
        let current = d["currentFragmentNumber"].as_str().expect("currentFragmentNumber");
        assert_eq!(Some(current), numbers.iter().max().map(String::as_str), "the last one's");
    }
}

#[test]
fn a_streamed_call_reaches_kvs_intact_and_the_next_call_reuses_its_streams() {
    if !peers() {
        return;
    }
    let ip = "127.0.0.70";
    let moto = Moto::start("127.0.0.70:5906");
    let state = std::env::temp_dir().join(format!("voicegw-fake-kvs-{}-a", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    // Slow acknowledgements: each batch is held back 300 ms while the body goes on.
    let fake = FakeKvs::start("127.0.0.70:18091", &state, &["--ack-delay", "300"]);
    let gw = gateway(ip, "127.0.0.70:5906", &fake.addr, 24, "fragment_ms = 1000");
    let (pcap, _, _) = harness::g711a_capture(&gw.dir);
    let (expected, filled) = harness::played_pcm(&pcap);
    assert_eq!(filled, 0);
    harness::echoed_media_call(&gw, &pcap);

    let evs = events(&gw, 4, Duration::from_secs(30));
    let log = fake.log();
    assert_eq!(evs.len(), 4, "{evs:#?}\n{log:#?}\n{}\n{}", gw.log(), fake.stderr());
    let streams = moto_streams(&moto);
    assert_eq!(streams.len(), 2, "one stream per leg: {streams:?}");
    for (name, retention, arn) in &streams {
        assert!(
            name.starts_with(&format!("ChimeVoiceConnector-{VC}-"))
                && name.len() == 20 + 22 + 1 + 36,
            "{name}"
        );
        assert_eq!(*retention, 24, "created with the voice connector's retention");
        assert!(arn.starts_with("arn:aws:kinesisvideo:us-east-1:") && arn.contains(name), "{arn}");
    }

    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 2, Duration::from_secs(10));
    let cdr = &records.iter().find(|(k, _)| k.contains("-CDRs/")).expect("a CDR").1;
    assert_eq!(cdr["Streaming"], true, "{cdr}");
    assert!(records.iter().any(|(k, _)| k.contains("-SDRs/")), "an SDR: {records:?}");
    let mut callers = Vec::new();
    for e in &evs {
        assert!(matches!(status(e), "STARTED" | "ENDED"), "{e}");
        check_event(e, cdr, &streams, &log);
        callers.push((status(e).to_string(), e["detail"]["isCaller"].as_bool().expect("isCaller")));
    }
    callers.sort();
    assert_eq!(
        callers,
        [
            ("ENDED".into(), false),
            ("ENDED".into(), true),
            ("STARTED".into(), false),
            ("STARTED".into(), true)
        ]
    );

    // What the fake saw: one connection per stream, a right head and signature, the tags
    // before every fragment, the end-of-fragment tag at the end, and the audio played.
    assert_eq!(log.len(), 2, "{log:#?}");
    for c in &log {
        assert_eq!(c["problems"], serde_json::json!([]), "{c:#}");
        assert_eq!(c["signature_ok"], true);
        assert_eq!(c["end"], "body ended", "{c:#}");
        assert_eq!((c["tracks"].as_u64(), c["codec"].as_str()), (Some(1), Some("A_PCM/INT/LIT")));
        assert_eq!(c["end_of_fragment_tags"], 1);
        let fragments = c["fragments"].as_array().expect("fragments");
        assert!(fragments.len() >= 5, "1 s fragments of a call of 7 s: {}", fragments.len());
        for f in fragments {
            assert_eq!(f["tags"]["TransactionId"], cdr["TransactionId"], "{f}");
            assert_eq!(f["tags"]["VoiceConnectorId"], VC);
            assert_eq!(f["tags"]["CallId"], cdr["CallId"]);
        }
        let acks: Vec<&str> =
            c["acks"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert!(acks.contains(&"PERSISTED") && acks.contains(&"BUFFERING"), "{acks:?}");
        let stream = c["stream"].as_str().expect("stream");
        assert!(streams.iter().any(|(n, _, _)| n == stream), "{stream} is not moto's");
        assert!(fake.pcm(stream) == expected, "{stream}: the audio differs from what was played");
        let body = state.join(format!("{stream}.{}.mkv", c["connection"]));
        let pcm = harness::ffmpeg_pcm(&body, &body.with_extension("s16"));
        assert!(pcm == expected, "ffmpeg reads other audio in {}", body.display());
        let info = harness::run_with_limit(
            Command::new("mkvinfo").arg("-v").arg(&body),
            Duration::from_secs(30),
        );
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(info.contains("Codec ID: A_PCM/INT/LIT") && !info.contains("Warning"), "{info}");
    }
    let fragments: u64 =
        log.iter().map(|c| c["fragments"].as_array().map_or(0, Vec::len) as u64).sum();
    assert_eq!(kind_metric(&gw, "voicegw_stream_acks_total", "PERSISTED"), fragments as f64);
    assert_eq!(gw.process_metric("voicegw_stream_connections_total"), 2.0);
    assert!(gw.process_metric("voicegw_stream_bytes_sent_total") > 100_000.0);
    assert!(!gw.metrics().contains("voicegw_stream_errors_total{"), "no error: {}", gw.metrics());
    assert_eq!(gw.wait_process_metric("voicegw_streams_active", 0.0), 0.0);

    // A second call takes the two streams back from the pool: no new stream, its own tags.
    harness::echoed_media_call(&gw, &pcap);
    let evs = events(&gw, 8, Duration::from_secs(30));
    assert_eq!(evs.len(), 8, "{evs:#?}");
    assert_eq!(moto_streams(&moto), streams, "the streams are reused");
    let log = fake.log();
    assert_eq!(log.len(), 4);
    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 4, Duration::from_secs(10));
    let tx: Vec<&serde_json::Value> = records
        .iter()
        .filter(|(k, _)| k.contains("-CDRs/"))
        .map(|(_, v)| &v["TransactionId"])
        .collect();
    assert_eq!(tx.len(), 2);
    for c in &log[2..] {
        let f = &c["fragments"][0];
        assert!(
            tx.contains(&&f["tags"]["TransactionId"])
                && f["tags"]["TransactionId"] != cdr["TransactionId"],
            "{f}"
        );
        assert!(
            fake.pcm(c["stream"].as_str().unwrap()).len() > expected.len(),
            "both calls' audio on one stream"
        );
    }
}

#[test]
fn errors_disconnects_and_rotation_are_recovered_from_with_nothing_lost() {
    if !peers() {
        return;
    }
    let ip = "127.0.0.71";
    let _moto = Moto::start("127.0.0.71:5907");
    let state = std::env::temp_dir().join(format!("voicegw-fake-kvs-{}-b", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    // Connection 1: an error acknowledgement (5000, retriable) at its 2nd fragment;
    // connection 2: refused with 503; connection 3: dropped after its 1st fragment.
    let fake = FakeKvs::start(
        "127.0.0.71:18092",
        &state,
        &[
            "--error-ack",
            "1:2:5000",
            "--refuse",
            "2:503:InternalFailure",
            "--disconnect",
            "3:1",
            "--no-persist",
        ],
    );
    let gw = gateway(
        ip,
        "127.0.0.71:5907",
        &fake.addr,
        0,
        "fragment_ms = 1000\nputmedia_rotate_secs = 10",
    );
    // 20 s of A-law with loss and reordering on the way (as SIPp plays the capture).
    let pcap = gw.dir.join("lossy.pcap");
    let net = harness::pcap_gen::Network {
        seed: 11,
        packets: 1000,
        max_delay_ms: 45.0,
        loss_permille: 20,
        duplicate_permille: 5,
    };
    harness::pcap_gen::write_rtp_stream(&pcap, net);
    let (expected, filled) = harness::played_pcm(&pcap);
    assert!(filled > 0, "the capture loses packets");
    harness::echoed_media_call_lasting(&gw, &pcap, Duration::from_secs(22));

    let evs = events(&gw, 4, Duration::from_secs(60));
    let log = fake.log();
    let ended = evs.iter().filter(|e| status(e) == "ENDED").count();
    assert_eq!((evs.len(), ended), (4, 2), "{evs:#?}\n{log:#?}\n{}", gw.log());
    let names: std::collections::BTreeSet<&str> =
        log.iter().filter_map(|c| c["stream"].as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for stream in names {
        let got = fake.pcm(stream);
        assert_eq!(got.len(), expected.len(), "{stream}: samples");
        assert!(
            got == expected,
            "{stream}: the audio differs from what was played (loss filled with silence)"
        );
        let conns: Vec<&serde_json::Value> = log.iter().filter(|c| c["stream"] == stream).collect();
        // 22 s with rotation every 10 s: a rotated connection and the last one end their
        // body, after an end-of-fragment tag.
        let ended = conns.iter().filter(|c| c["end"] == "body ended").count();
        assert!(ended >= 2, "{stream}: {conns:#?}");
        for c in &conns {
            assert_eq!(c["signature_ok"], c["end"] != "refused 403");
            let problems = c["problems"].as_array().unwrap();
            assert!(problems.is_empty(), "{c:#}");
            if c["end"] == "body ended" {
                assert_eq!(c["end_of_fragment_tags"], 1, "{c:#}");
            }
        }
    }
    let m = gw.metrics();
    assert_eq!(kind_metric(&gw, "voicegw_stream_errors_total", "5000"), 1.0, "{m}");
    assert_eq!(kind_metric(&gw, "voicegw_stream_errors_total", "http_503"), 1.0, "{m}");
    assert!(kind_metric(&gw, "voicegw_stream_errors_total", "disconnect") >= 1.0, "{m}");
    assert!(gw.process_metric("voicegw_stream_rotations_total") >= 2.0, "{m}");
    assert!(kind_metric(&gw, "voicegw_stream_acks_total", "PERSISTED") == 0.0, "no retention: {m}");
    // The fill is what was lost, counted once per leg.
    let fill = gw.process_metric("voicegw_stream_fill_milliseconds_total");
    assert_eq!(fill, (2 * filled / 8) as f64, "{m}");
}

#[test]
fn a_stream_kvs_refuses_gives_a_failed_event_and_the_call_goes_on() {
    if !peers() {
        return;
    }
    let ip = "127.0.0.72";
    let _moto = Moto::start("127.0.0.72:5908");
    let state = std::env::temp_dir().join(format!("voicegw-fake-kvs-{}-c", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    // The fake knows other credentials: every signature is wrong, every request refused 403.
    let fake = FakeKvs::start("127.0.0.72:18093", &state, &["--secret-key", "another-fake-secret"]);
    let gw = gateway(ip, "127.0.0.72:5908", &fake.addr, 1, "");
    let (pcap, _, _) = harness::g711a_capture(&gw.dir);
    harness::echoed_media_call(&gw, &pcap);
    let evs = events(&gw, 2, Duration::from_secs(30));
    assert_eq!(evs.len(), 2, "{evs:#?}\n{}", gw.log());
    let records = harness::cdrs_in(&gw.dir.join("var/cdrs"), 1, Duration::from_secs(10));
    let cdr = &records.iter().find(|(k, _)| k.contains("-CDRs/")).expect("a CDR").1;
    assert_eq!(cdr["Status"], "Completed", "the call goes on: {cdr}");
    for e in &evs {
        assert_eq!(status(e), "FAILED", "{e}");
        let d = &e["detail"];
        assert_eq!(d["callId"], cdr["CallId"]);
        assert!(is_iso_ms(d["failTime"].as_str().unwrap_or_default()));
        let reason = d["failureReason"].as_str().unwrap();
        assert!(reason.contains("403") && reason.contains("NotAuthorizedException"), "{reason}");
    }
    let log = fake.log();
    assert!(log.iter().all(|c| c["signature_ok"] == false), "{log:#?}");
    assert_eq!(log.len(), 2, "a refusal is final: no retry");
    assert_eq!(kind_metric(&gw, "voicegw_stream_errors_total", "http_403"), 2.0);
    assert_eq!(gw.wait_process_metric("voicegw_streams_failed_total", 2.0), 2.0);
    // The secret reaches neither the log nor the events.
    let text = std::fs::read_to_string(gw.dir.join("var/streaming-events.jsonl")).unwrap();
    for secret in ["testing\"", "AWS_SECRET"] {
        assert!(!gw.log().contains(secret) && !text.contains(secret), "{secret}");
    }
}

/// A CA and a certificate for `ip` signed by it (openssl), in `dir`: (ca.pem, cert.pem, key.pem).
fn test_ca(dir: &Path, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let run = |args: &[&str]| {
        let out = harness::run_with_limit(
            Command::new("openssl").args(args).current_dir(dir),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(p("leaf.ext"), format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n"))
        .expect("ext");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=voicegw test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=fake kvs",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

/// KVS endpoints are HTTPS: PutMedia goes over TLS to an endpoint whose certificate the
/// system's roots (here `SSL_CERT_FILE`, a test CA) vouch for; an endpoint they do not vouch
/// for is never sent a byte, and the legs fail with the TLS error once the give-up time passed.
#[test]
fn putmedia_goes_over_tls_and_an_unknown_certificate_is_refused() {
    if !peers() || !require("openssl") {
        return;
    }
    let ip = "127.0.0.74";
    let _moto = Moto::start("127.0.0.74:5909");
    let state = std::env::temp_dir().join(format!("voicegw-fake-kvs-{}-d", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state");
    let (ca, cert, key) = test_ca(&state, ip);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let fake =
        FakeKvs::start("127.0.0.74:18094", &state, &["--tls-cert", &cert, "--tls-key", &key]);
    let ca = ca.display().to_string();
    let mut env: Vec<(&str, &str)> = FAKE_AWS_ENV.to_vec();
    env.extend([
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("SSL_CERT_FILE", ca.as_str()),
    ]);
    let streaming = format!(
        "\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 1\n\n[streaming]\nsink = \"kvs\"\nregion = \"us-east-1\"\nkvs_endpoint = \"http://127.0.0.74:5909\"\ndata_endpoint = \"https://{ip}:18094\"\nputmedia_give_up_secs = 5\n"
    );
    let mut gw = Gateway::start_with_env(ip, &env, |c| format!("{c}{streaming}"));
    let (pcap, _, _) = harness::g711a_capture(&gw.dir);
    let (expected, _) = harness::played_pcm(&pcap);
    harness::echoed_media_call(&gw, &pcap);
    let evs = events(&gw, 4, Duration::from_secs(30));
    let ended = evs.iter().filter(|e| status(e) == "ENDED").count();
    assert_eq!((evs.len(), ended), (4, 2), "{evs:#?}\n{}\n{}", gw.log(), fake.stderr());
    let log = fake.log();
    assert_eq!(log.len(), 2, "{log:#?}");
    for c in &log {
        assert_eq!((&c["signature_ok"], &c["end"]), (&true.into(), &"body ended".into()), "{c:#}");
        assert!(fake.pcm(c["stream"].as_str().unwrap()) == expected, "the audio over TLS");
    }
    let _ = gw.terminate(Duration::from_secs(20));

    // The same endpoint, with only the system's usual roots: the certificate is unknown.
    let env: Vec<(&str, &str)> = env.into_iter().filter(|(k, _)| *k != "SSL_CERT_FILE").collect();
    let gw = Gateway::start_with_env("127.0.0.75", &env, |c| format!("{c}{streaming}"));
    harness::echoed_media_call(&gw, &pcap);
    let evs = events(&gw, 2, Duration::from_secs(30));
    assert_eq!(evs.len(), 2, "{evs:#?}\n{}", gw.log());
    for e in &evs {
        assert_eq!(status(e), "FAILED", "{e}");
        let reason = e["detail"]["failureReason"].as_str().unwrap_or_default();
        assert!(reason.contains("TLS") && reason.contains("has not worked for 5 s"), "{reason}");
    }
    assert_eq!(fake.log().len(), 2, "nothing reached the fake without TLS trust");
    assert!(kind_metric(&gw, "voicegw_stream_errors_total", "connect") >= 2.0);
}
