//! Streaming status events to the AWS targets, through the AWS SDK against moto's server mode:
//! a voice connector lists EventBridge, SNS and SQS as its `StreamingNotificationTargets`. SQS
//! queues collect what arrives: one is the SQS target itself, one is subscribed to the SNS
//! topic, one is the target of an EventBridge rule matching the events. Each gets the call's
//! four events (STARTED and ENDED per leg); the AWS CLI reads them back.

use std::time::{Duration, Instant};

use harness::{require, Gateway, Moto, FAKE_AWS_ENV};
use serde_json::Value;

const IP: &str = "127.0.0.64";
const MOTO: &str = "127.0.0.64:5902";
const ACCOUNT: &str = "123456789012";

fn queue(moto: &Moto, name: &str) -> (String, String) {
    let url = moto.aws(&["sqs", "create-queue", "--queue-name", name])["QueueUrl"]
        .as_str()
        .expect("QueueUrl")
        .to_string();
    let attrs = moto.aws(&[
        "sqs",
        "get-queue-attributes",
        "--queue-url",
        &url,
        "--attribute-names",
        "QueueArn",
    ]);
    let arn = attrs["Attributes"]["QueueArn"].as_str().expect("QueueArn").to_string();
    (url, arn)
}

/// The bodies that reached `url` once there are `want` (or after 20 s).
fn received(moto: &Moto, url: &str, want: usize) -> Vec<String> {
    let start = Instant::now();
    let mut bodies = Vec::new();
    while bodies.len() < want && start.elapsed() < Duration::from_secs(20) {
        let v = moto.aws(&[
            "sqs",
            "receive-message",
            "--queue-url",
            url,
            "--max-number-of-messages",
            "10",
            "--wait-time-seconds",
            "1",
        ]);
        for m in v["Messages"].as_array().cloned().unwrap_or_default() {
            bodies.push(m["Body"].as_str().unwrap_or_default().to_string());
            let receipt = m["ReceiptHandle"].as_str().unwrap_or_default();
            moto.aws(&["sqs", "delete-message", "--queue-url", url, "--receipt-handle", receipt]);
        }
    }
    bodies
}

fn statuses(details: &[Value]) -> Vec<(String, bool)> {
    let mut s: Vec<(String, bool)> = details
        .iter()
        .map(|d| {
            (
                d["streamingStatus"].as_str().unwrap_or("?").to_string(),
                d["isCaller"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    s.sort();
    s
}

#[test]
fn events_reach_eventbridge_sns_and_sqs() {
    if !(require("sipp") && require("moto_server") && require("aws")) {
        return;
    }
    let moto = Moto::start(MOTO);
    let (sqs_url, _) = queue(&moto, "ChimeVoiceConnector-Streaming-q");
    let (from_sns_url, from_sns_arn) = queue(&moto, "from-sns");
    let (from_eb_url, from_eb_arn) = queue(&moto, "from-eventbridge");
    let topic = moto.aws(&["sns", "create-topic", "--name", "ChimeVoiceConnector-Streaming-topic"])
        ["TopicArn"]
        .as_str()
        .expect("TopicArn")
        .to_string();
    moto.aws(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &topic,
        "--protocol",
        "sqs",
        "--notification-endpoint",
        &from_sns_arn,
        "--attributes",
        "RawMessageDelivery=true",
    ]);
    moto.aws(&[
        "events",
        "put-rule",
        "--name",
        "chime-streaming",
        "--event-pattern",
        r#"{"source":["voicegw.chime"],"detail-type":["Chime VoiceConnector Streaming Status"]}"#,
    ]);
    moto.aws(&[
        "events",
        "put-targets",
        "--rule",
        "chime-streaming",
        "--targets",
        &format!("Id=q,Arn={from_eb_arn}"),
    ]);

    let gw = Gateway::start_with_env(IP, FAKE_AWS_ENV, |c| {
        let endpoint = format!("http://{MOTO}");
        format!(
            "{c}\n[VoiceConnectors.StreamingConfiguration]\nDisabled = false\nDataRetentionInHours = 0\nStreamingNotificationTargets = [{{NotificationTarget = \"EventBridge\"}}, {{NotificationTarget = \"SNS\"}}, {{NotificationTarget = \"SQS\"}}]\n\n[streaming]\nregion = \"us-east-1\"\neventbridge_endpoint = \"{endpoint}\"\nsns_endpoint = \"{endpoint}\"\nsqs_endpoint = \"{endpoint}\"\nsns_topic_arn = \"{topic}\"\nsqs_queue_url = \"{sqs_url}\"\n"
        )
        .replace("[data]", &format!("[cdr]\naws_account_id = \"{ACCOUNT}\"\n\n[data]"))
    });
    let (pcap, _, _) = harness::g711a_capture(&gw.dir);
    harness::echoed_media_call(&gw, &pcap);

    // The file has the four events: each AWS target must have the same.
    let start = Instant::now();
    let file: Vec<Value> = loop {
        let text =
            std::fs::read_to_string(gw.dir.join("var/streaming-events.jsonl")).unwrap_or_default();
        let lines: Vec<Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
        if lines.len() >= 4 || start.elapsed() > Duration::from_secs(15) {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(file.len(), 4, "{file:#?}\n{}", gw.log());
    let want: Vec<String> = {
        let mut v: Vec<String> = file.iter().map(|e| e.to_string()).collect();
        v.sort();
        v
    };

    // SQS and SNS (raw delivery) carry the whole event, as the file has it.
    for (what, url) in [("SQS", &sqs_url), ("SNS", &from_sns_url)] {
        let mut got: Vec<String> = received(&moto, url, 4)
            .iter()
            .map(|b| {
                serde_json::from_str::<Value>(b)
                    .unwrap_or_else(|e| panic!("{what}: {e}: {b}"))
                    .to_string()
            })
            .collect();
        got.sort();
        assert_eq!(got, want, "{what} got the file's events\n{}", gw.log());
    }
    // EventBridge: the rule matched the source and detail-type; the detail is the file's.
    let bridged: Vec<Value> = received(&moto, &from_eb_url, 4)
        .iter()
        .map(|b| serde_json::from_str(b).expect("EventBridge event"))
        .collect();
    assert_eq!(bridged.len(), 4, "{bridged:#?}\n{}", gw.log());
    for e in &bridged {
        assert_eq!(e["source"], "voicegw.chime");
        assert_eq!(e["detail-type"], "Chime VoiceConnector Streaming Status");
        assert_eq!(e["region"], "us-east-1", "{e}");
    }
    let details: Vec<Value> = bridged.iter().map(|e| e["detail"].clone()).collect();
    let file_details: Vec<Value> = file.iter().map(|e| e["detail"].clone()).collect();
    assert_eq!(statuses(&details), statuses(&file_details));
    for d in &details {
        assert!(file_details.contains(d), "EventBridge detail not in the file: {d}");
    }
    assert_eq!(
        gw.wait_process_metric("voicegw_stream_events_sent_total", 16.0),
        16.0,
        "file 4 + 3 targets x 4\n{}",
        gw.metrics()
    );
    assert!(gw.process_metric("voicegw_stream_events_failed_total") <= 0.0);
}
