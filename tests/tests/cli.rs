//! The command line: --version, check-config (errors name file, line and key), JSON logs.

use std::process::Command;
use std::time::Duration;

use harness::{root, run_with_limit, voicegw_bin};

#[test]
fn version() {
    let out = Command::new(voicegw_bin()).arg("--version").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("voicegw "));
}

#[test]
fn check_config_accepts_the_default_and_names_line_and_key_of_errors() {
    let ok = Command::new(voicegw_bin())
        .arg("check-config")
        .arg(root().join("configs/voicegw.toml"))
        .output()
        .expect("run");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK (1 voice connectors"));

    let dir = std::env::temp_dir().join(format!("voicegw-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let text = std::fs::read_to_string(root().join("configs/voicegw.toml")).expect("read");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, text.replace("CpsLimit = 1000", "CpsLimit = 0")).expect("write");
    let line = text.lines().position(|l| l.contains("CpsLimit = 1000")).expect("CpsLimit line") + 1;
    let out = Command::new(voicegw_bin()).arg("check-config").arg(&bad).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("bad.toml:{line}: key `CpsLimit`")), "{err}");

    std::fs::write(&bad, text.replace("[media]", "[media]\nbogus = 1")).expect("write");
    let out = Command::new(voicegw_bin()).arg("check-config").arg(&bad).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("unknown field `bogus`") && err.contains("line"), "{err}");

    let out = Command::new(voicegw_bin())
        .arg("check-config")
        .arg(dir.join("missing.toml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = std::env::temp_dir().join(format!("voicegw-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let text = std::fs::read_to_string(root().join("configs/voicegw.toml")).expect("read");
    let cfg = dir.join("v.toml");
    std::fs::write(
        &cfg,
        text.replace("127.0.0.1", "127.0.0.22")
            .replace("dir = \"./var\"", &format!("dir = \"{}\"", dir.join("var").display())),
    )
    .expect("write");
    // The gateway runs until killed after 2 s; its log lines must each be a JSON object.
    let out = run_with_limit(
        Command::new(voicegw_bin()).args(["run", "--log-format", "json", "--config"]).arg(&cfg),
        Duration::from_secs(2),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{err}");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("level").is_some() && v.get("timestamp").is_some(), "{l}");
    }
    assert!(err.contains("voicegw started"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
