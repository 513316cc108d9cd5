//! Rules of the build that no compiler checks: the declared `rust-version` is true to the lock
//! file (no locked dependency needs a newer toolchain), and one crypto back end is compiled
//! (ring, under rustls, for SIP over TLS and the AWS SDK alike: no aws-lc, no OpenSSL), and
//! the README's two commands share one build: the test build (every member but the
//! benchmarks, every target) asks for the same features of each dependency as
//! `cargo run -p voicegw`, so whichever runs second compiles nothing.

use std::process::Command;

/// The host's target triple (what the build is for).
fn host() -> String {
    let out = Command::new("rustc").arg("-vV").output().expect("rustc -vV");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| l.strip_prefix("host: ")).expect("host line").trim().to_string()
}

/// The resolved dependency graph for this platform (a fresh machine has downloaded only the
/// packages it builds: unfiltered, `cargo metadata --offline` wants every platform's).
fn metadata() -> serde_json::Value {
    let host = host();
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(harness::root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("metadata JSON")
}

fn version(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn the_declared_rust_version_is_true_to_the_lock_file() {
    let m = metadata();
    let packages = m["packages"].as_array().expect("packages");
    let ours: Vec<&serde_json::Value> = packages.iter().filter(|p| p["source"].is_null()).collect();
    let declared = ours
        .iter()
        .find(|p| p["name"] == "voicegw")
        .and_then(|p| p["rust_version"].as_str())
        .expect("voicegw declares a rust-version");
    for p in &ours {
        assert_eq!(p["rust_version"].as_str(), Some(declared), "{} declares another", p["name"]);
    }
    let needed = packages
        .iter()
        .filter_map(|p| Some((p["rust_version"].as_str()?, p["name"].as_str()?)))
        .max_by_key(|(v, _)| version(v))
        .expect("some package declares a rust-version");
    assert!(
        version(declared) >= version(needed.0),
        "rust-version {declared} is not true: {} needs {}",
        needed.1,
        needed.0
    );
}

#[test]
fn one_crypto_back_end_is_compiled() {
    let lock = std::fs::read_to_string(harness::root().join("Cargo.lock")).expect("Cargo.lock");
    for other in ["aws-lc-sys", "aws-lc-rs", "openssl-sys"] {
        assert!(
            !lock.contains(&format!("name = \"{other}\"")),
            "{other} is in Cargo.lock: the AWS SDK or another crate left rustls with ring"
        );
    }
    assert!(lock.contains("name = \"ring\""), "ring is the crypto back end");
}

/// Each package of `cargo tree` with the features it is built with.
fn features(args: &[&str]) -> std::collections::BTreeMap<String, String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "--prefix", "none", "--no-dedupe"])
        .args(["--format", "{p}|{f}"])
        .args(args)
        .current_dir(harness::root())
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (p, f) = l.trim_end_matches(" (*)").split_once('|')?;
            Some((p.to_string(), f.to_string()))
        })
        .collect()
}

#[test]
fn the_test_build_and_the_run_command_share_one_build() {
    let run = features(&["-p", "voicegw", "-e", "normal,build"]);
    let test = features(&["--workspace", "--exclude", "voicegw-benches", "-e", "normal,build,dev"]);
    let differ: Vec<String> = run
        .iter()
        .filter(|(p, f)| test.get(*p).is_some_and(|t| t != *f))
        .map(|(p, f)| format!("{p}: run [{f}], test [{}]", test[p]))
        .collect();
    assert!(differ.is_empty(), "features differ, so the two commands compile twice: {differ:#?}");
}
