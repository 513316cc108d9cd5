//! The KVS control plane against moto's server mode (its `kinesisvideo` service): streams are
//! created with the voice connector's retention and the formats.md name, waited for until
//! ACTIVE, their PutMedia endpoint is fetched once and cached, and streams released by ended
//! calls are reused. The AWS CLI reads back what moto holds. Under `CI=true` a missing
//! `moto_server` or `aws` is a failure, not a skip.
#![allow(clippy::disallowed_methods)] // a test may read the clock

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Instant;
use gateway::kvs::control::{ControlPlane, ControlSettings};

const MOTO: &str = "127.0.0.65:5903";
const VC: &str = "abcdef1ghij2klmno3pqr4";

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{tool} is required under CI=true (scripts/test installs it)");
    }
    if !found {
        eprintln!("skipped: {tool} not installed");
    }
    found
}

fn aws(args: &[&str]) -> serde_json::Value {
    let out = Command::new("aws")
        .args([
            "--endpoint-url",
            &format!("http://{MOTO}"),
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("aws");
    assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("aws JSON")
}

#[tokio::test(flavor = "current_thread")]
async fn streams_are_created_with_the_retention_waited_for_cached_and_reused() {
    if !(have("moto_server") && have("aws")) {
        return;
    }
    let (host, port) = MOTO.split_once(':').unwrap();
    let _moto = Moto(
        Command::new("moto_server")
            .args(["-H", host, "-p", port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(MOTO).is_err() {
        assert!(std::time::Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Obviously fake credentials through the standard chain (moto takes any).
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", "/dev/null");
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let settings = ControlSettings {
        region: Some("us-east-1".into()),
        endpoint: Some(format!("http://{MOTO}")),
        data_endpoint: None,
    };
    let cp = ControlPlane::new(&settings).await;
    let a = cp.acquire(VC, 24, [1; 16]).await.expect("stream A");
    let b = cp.acquire(VC, 24, [2; 16]).await.expect("stream B");
    assert_eq!(a.name, format!("ChimeVoiceConnector-{VC}-01010101-0101-4101-8101-010101010101"));
    assert_ne!(a.name, b.name);
    assert!(
        a.arn.starts_with("arn:aws:kinesisvideo:us-east-1:") && a.arn.contains(&a.name),
        "{}",
        a.arn
    );
    assert_eq!(cp.counts(), (2, 0));

    // moto holds them with the retention and the media type.
    let d = aws(&["kinesisvideo", "describe-stream", "--stream-name", &a.name]);
    let info = &d["StreamInfo"];
    assert_eq!(info["DataRetentionInHours"], 24, "{d}");
    assert_eq!(info["MediaType"], "audio/L16");
    assert_eq!(info["Status"], "ACTIVE");

    // The endpoint is asked for once and cached; a failure makes it asked for again.
    let t = Instant::from_origin(Duration::from_secs(100));
    let e1 = cp.data_endpoint(&a.name, t).await.expect("endpoint");
    assert!(e1.starts_with("https://"), "{e1}");
    let e2 = cp.data_endpoint(&a.name, t + Duration::from_secs(60)).await.expect("cached");
    assert_eq!(e1, e2);
    cp.invalidate_endpoint(&a.name);
    assert!(cp.data_endpoint(&a.name, t).await.is_ok());

    // Released streams are reused by later calls of the same connector and retention only.
    cp.release(a.clone());
    assert_eq!(cp.idle(VC, 24), 1);
    let other = cp.acquire(VC, 0, [3; 16]).await.expect("another retention");
    assert_ne!(other.name, a.name, "a stream with another retention is not reused");
    let again = cp.acquire(VC, 24, [4; 16]).await.expect("reused");
    assert_eq!(again, a);
    assert_eq!(cp.counts(), (3, 1));
    let listed = aws(&["kinesisvideo", "list-streams"]);
    assert_eq!(listed["StreamInfoList"].as_array().map(Vec::len), Some(3), "{listed}");

    // An unknown stream's endpoint is an error naming it, not a panic.
    let e = cp.data_endpoint("ChimeVoiceConnector-nope", t).await.expect_err("unknown");
    assert!(e.to_string().contains("ChimeVoiceConnector-nope"), "{e}");

    // The override wins over GetDataEndpoint.
    let fixed = ControlSettings { data_endpoint: Some("http://127.0.0.65:9".into()), ..settings };
    let cp = ControlPlane::new(&fixed).await;
    assert_eq!(cp.data_endpoint(&b.name, t).await.unwrap(), "http://127.0.0.65:9");
}
