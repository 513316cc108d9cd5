//! CDRs to an S3 API server on loopback (moto's server mode), through an outage in the middle
//! of the run: records are spooled while the store is unreachable and delivered once it is
//! back, each object written once (bucket versioning counts the writes). The AWS CLI lists
//! what landed.

use std::time::{Duration, Instant};

use harness::{
    carrier_args, check_cdr, pbx_args, require, run_sipp, strs, tail, Gateway, Moto, Sipp,
    TcpProxy, FAKE_AWS_ENV,
};
use serde_json::Value;

const IP: &str = "127.0.0.63";
const MOTO: &str = "127.0.0.63:5900";
const PROXY: &str = "127.0.0.63:5901";
const BUCKET: &str = "voicegw-cdrs";
/// Every version of every object under the prefix: (key, version count).
fn versions(moto: &Moto) -> Vec<(String, usize)> {
    let v = moto.aws(&["s3api", "list-object-versions", "--bucket", BUCKET, "--prefix", "gw1/"]);
    let mut counts = std::collections::BTreeMap::new();
    for o in v["Versions"].as_array().cloned().unwrap_or_default() {
        *counts.entry(o["Key"].as_str().unwrap_or("").to_string()).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

fn wait_objects(moto: &Moto, n: usize, limit: Duration) -> Vec<(String, usize)> {
    let start = Instant::now();
    loop {
        let v = versions(moto);
        if v.len() >= n || start.elapsed() > limit {
            return v;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn calls(gw: &Gateway, name: &str, n: u32) {
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m".to_string(), n.to_string()]);
    let callee = Sipp::spawn(&gw.dir, &format!("{name}-carrier"), "carrier_answer.xml", &strs(&c));
    let mut args = pbx_args(&gw.ip);
    args.extend(
        ["-m", &n.to_string(), "-r", "20", "-timeout", "30s", "-timeout_error"].map(String::from),
    );
    let r = run_sipp(&gw.dir, name, "pbx_caller_bye.xml", &strs(&args), Duration::from_secs(35));
    assert_eq!((r.successful, r.failed), (n as u64, 0), "{r:#?}\n{}", tail(&gw.log()));
    callee.wait(Duration::from_secs(10));
}

#[test]
fn cdrs_reach_s3_through_an_outage_each_written_once() {
    if !(require("sipp") && require("moto_server") && require("aws")) {
        return;
    }
    let moto = Moto::start(MOTO);
    moto.aws(&["s3api", "create-bucket", "--bucket", BUCKET]);
    moto.aws(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        BUCKET,
        "--versioning-configuration",
        "Status=Enabled",
    ]);
    let proxy = TcpProxy::start(PROXY, MOTO);
    let mut gw = Gateway::start_with_env(IP, FAKE_AWS_ENV, |c| {
        format!(
            "{c}\n[GlobalSettings.VoiceConnector]\nCdrBucket = \"s3://{BUCKET}/gw1\"\n"
        )
        .replace(
            "[data]",
            &format!("[cdr]\ns3_endpoint = \"http://{PROXY}\"\ns3_region = \"us-east-1\"\naws_account_id = \"111122223333\"\n\n[data]"),
        )
    });
    calls(&gw, "before", 5);
    let v = wait_objects(&moto, 5, Duration::from_secs(20));
    assert_eq!(v.len(), 5, "{v:?}\n{}", tail(&gw.log()));

    // Outage: the store is unreachable while 6 more calls end.
    proxy.set_up(false);
    calls(&gw, "during", 6);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(versions(&moto).len(), 5, "nothing can land during the outage");
    assert_eq!(gw.process_metric("voicegw_cdr_spool_records"), 6.0, "{}", gw.metrics());
    assert!(gw.process_metric("voicegw_cdr_upload_failures_total") >= 1.0, "{}", gw.metrics());
    assert!(gw.log().contains("CDR upload failed; kept in the spool"), "{}", tail(&gw.log()));

    // Back: the spooled records go out, each once.
    proxy.set_up(true);
    let v = wait_objects(&moto, 11, Duration::from_secs(60));
    assert_eq!(v.len(), 11, "{v:?}\n{}", tail(&gw.log()));
    assert!(v.iter().all(|(_, n)| *n == 1), "an object written twice: {v:?}");
    assert_eq!(gw.wait_process_metric("voicegw_cdr_spool_records", 0.0), 0.0, "{}", gw.metrics());
    assert_eq!(gw.wait_process_metric("voicegw_cdrs_delivered_total", 11.0), 11.0);

    // The objects are the records, under the key layout after the prefix.
    for (key, _) in &v {
        let out = gw.dir.join("object.json");
        moto.aws(&["s3api", "get-object", "--bucket", BUCKET, "--key", key, out.to_str().unwrap()]);
        let body: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        check_cdr(key.strip_prefix("gw1/").unwrap(), &body);
        assert_eq!(body["AwsAccountId"], "111122223333");
        assert_eq!(body["Status"], "Completed");
    }
    // No local copy: the bucket is the store.
    assert!(harness::files_under(&gw.dir.join("var/cdrs")).is_empty());
    assert_eq!(gw.terminate(Duration::from_secs(20)), Some(0));
    drop(moto);
}
