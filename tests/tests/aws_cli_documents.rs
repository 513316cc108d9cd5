//! JSON printed by the real AWS CLI (`aws chime-sdk-voice get-voice-connector-*`) is accepted
//! as is by voicegw's `Documents`. The CLI talks to a stand-in HTTP endpoint that answers
//! with the API's response shapes; what the CLI prints (its own rendering) is what a user
//! would paste, and voicegw then runs a call by it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use harness::{
    carrier_args, pbx_args, require, run_sipp, run_with_limit, voicegw_bin, Gateway, Sipp,
};

const VC: &str = "abcdef1ghij2klmno3pqr4";

/// Serves the API's GET responses for voice connector `VC` until the listener is dropped.
fn stand_in_api(ip: &str) -> String {
    let l = TcpListener::bind(format!("{ip}:0")).expect("bind");
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the headers.
            let mut h = String::new();
            while r.read_line(&mut h).is_ok() && h != "\r\n" && !h.is_empty() {
                h.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let base = format!("/voice-connectors/{VC}");
            let body = match path.strip_prefix(&base).unwrap_or("?") {
                "" => format!(r#"{{"VoiceConnector":{{"VoiceConnectorId":"{VC}","AwsRegion":"us-west-2","Name":"from the cli","OutboundHostName":"{VC}.voiceconnector.chime.aws","RequireEncryption":false,"CreatedTimestamp":"2019-09-18T20:34:01.352Z","UpdatedTimestamp":"2019-09-18T20:34:01.352Z","VoiceConnectorArn":"arn:aws:chime:us-west-2:123456789012:vc/{VC}"}}}}"#),
                "/termination" => r#"{"Termination":{"CpsLimit":7,"CallingRegions":["US","CA"],"CidrAllowedList":["127.0.0.0/8"],"Disabled":false}}"#.to_string(),
                "/origination" => r#"{"Origination":{"Routes":[{"Host":"127.0.0.53","Port":5090,"Protocol":"UDP","Priority":1,"Weight":1}],"Disabled":false}}"#.to_string(),
                "/logging-configuration" => r#"{"LoggingConfiguration":{"EnableSIPLogs":true,"EnableMediaMetricLogs":false}}"#.to_string(),
                _ => String::new(),
            };
            let status = if body.is_empty() { "404 Not Found" } else { "200 OK" };
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    addr
}

/// `aws chime-sdk-voice <op> --voice-connector-id VC` against the stand-in; returns stdout.
fn aws(endpoint: &str, op: &str) -> String {
    let out = run_with_limit(
        Command::new("aws")
            .args(["chime-sdk-voice", op, "--voice-connector-id", VC, "--output", "json"])
            .args(["--endpoint-url", &format!("http://{endpoint}"), "--region", "us-west-2"])
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true"),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "aws {op}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn documents_printed_by_the_aws_cli_configure_a_voice_connector() {
    if !require("aws") || !require("sipp") {
        return;
    }
    let ip = "127.0.0.53";
    let endpoint = stand_in_api(ip);
    let gw_dir = std::env::temp_dir().join(format!("voicegw-aws-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&gw_dir);
    std::fs::create_dir_all(&gw_dir).unwrap();
    let docs = [
        ("vc.json", "get-voice-connector"),
        ("termination.json", "get-voice-connector-termination"),
        ("origination.json", "get-voice-connector-origination"),
        ("logging.json", "get-voice-connector-logging-configuration"),
    ];
    for (file, op) in docs {
        let printed = aws(&endpoint, op);
        std::fs::write(gw_dir.join(file), &printed).unwrap();
    }
    let termination = std::fs::read_to_string(gw_dir.join("termination.json")).unwrap();
    assert!(termination.contains("\"CpsLimit\": 7"), "the CLI's own rendering: {termination}");

    // A voice connector made only of the CLI's documents.
    let list = docs
        .iter()
        .map(|(f, _)| format!("\"{}\"", gw_dir.join(f).display()))
        .collect::<Vec<_>>()
        .join(", ");
    let gw = Gateway::start(ip, |c| {
        let start = c.find("[[VoiceConnectors]]").unwrap();
        let end = c.find("[[Carriers]]").unwrap();
        format!(
            "{}[[VoiceConnectors]]\nVoiceConnectorId = \"{VC}\"\nDocuments = [{list}]\n\n{}",
            &c[..start],
            &c[end..]
        )
    });
    let cfg = gw.dir.join("voicegw.toml");
    let check = Command::new(voicegw_bin()).arg("check-config").arg(&cfg).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // The region comes from get-voice-connector, the policy from the other documents.
    let m = gw.metrics();
    assert!(m.contains(&format!("voice_connector_id=\"{VC}\",region=\"us-west-2\"")), "{m}");
    let mut c = carrier_args(ip);
    c.extend(["-m", "2"].map(String::from));
    let cs: Vec<&str> = c.iter().map(String::as_str).collect();
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &cs);
    let mut p = pbx_args(ip);
    p.extend(["-m", "2", "-r", "5", "-timeout", "20s", "-timeout_error"].map(String::from));
    let ps: Vec<&str> = p.iter().map(String::as_str).collect();
    let r = run_sipp(&gw.dir, "pbx", "pbx_caller_bye.xml", &ps, Duration::from_secs(25));
    assert_eq!((r.successful, r.failed), (2, 0), "{r:#?}\n{}", gw.log());
    assert_eq!(callee.wait(Duration::from_secs(10)).successful, 2);

    // The same document also inline: one place must say what applies.
    let twice = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("Documents = [{list}]"),
        &format!("Documents = [{list}]\n[VoiceConnectors.Termination]\nCallingRegions = [\"US\"]\nCidrAllowedList = [\"127.0.0.0/8\"]"),
    );
    let bad = gw.dir.join("twice.toml");
    std::fs::write(&bad, twice).unwrap();
    let out = Command::new(voicegw_bin()).arg("check-config").arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("termination.json")
            && err.contains("Termination is set more than once"),
        "{err}"
    );
    // A document with a key the API does not have is refused, naming the file.
    std::fs::write(
        gw_dir.join("termination.json"),
        termination.replace("\"CpsLimit\"", "\"CpsLimitt\""),
    )
    .unwrap();
    let out = Command::new(voicegw_bin()).arg("check-config").arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("termination.json") && err.contains("CpsLimitt"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&gw_dir);
}
