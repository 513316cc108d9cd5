//! A data disk that turns read-only, as a failing disk does: an ext4 file system on a loop
//! device, mounted `errors=remount-ro`, is made to report an error (the kernel's
//! `trigger_fs_error`) while calls are up. voicegw notices within a second (its idle spool
//! probes the disk), says so (`CdrSpoolFailing`, `/health` 503, the log), refuses new calls
//! with 503 so the PBX fails over instead of carrying calls nothing can record, and lets the
//! calls in progress finish. After `kill -9`, a repaired disk and a restart, every call that was
//! carried has exactly one record: Completed for those that ended before the failure,
//! Interrupted for those that were up when it came (their end never reached a disk).
//!
//! And a data directory that is read-only from the start: voicegw refuses to start, naming it.
//! Both need root (mount); under CI=true a missing permission fails the test.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{
    carrier_args, cdrs_in, check_cdr, expect_ok, http_get, pbx, pbx_args, refused_scenario,
    require, run_with_limit, strs, tail, voicegw_bin, Gateway, Sipp,
};

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd).args(args).status().is_ok_and(|s| s.success())
}

/// An ext4 file system in an image file, loop-mounted on `dir`.
struct Ext4 {
    img: PathBuf,
    dir: PathBuf,
}

impl Ext4 {
    fn new(name: &str) -> Option<Ext4> {
        let base = std::env::temp_dir().join(format!("voicegw-{name}-{}", std::process::id()));
        let (img, dir) = (base.with_extension("img"), base);
        std::fs::create_dir_all(&dir).ok()?;
        let f = std::fs::File::create(&img).ok()?;
        f.set_len(64 << 20).ok()?;
        drop(f);
        let fs = Ext4 { img, dir };
        if !run("mkfs.ext4", &["-q", "-F", &fs.img.display().to_string()]) {
            return None;
        }
        fs.mount().then_some(fs)
    }

    /// Mounts the image.
    fn mount(&self) -> bool {
        run(
            "mount",
            &[
                "-o",
                "loop,errors=remount-ro",
                &self.img.display().to_string(),
                &self.dir.display().to_string(),
            ],
        )
    }

    /// The loop device's name (`loop3`).
    fn device(&self) -> Option<String> {
        let out =
            Command::new("findmnt").args(["-n", "-o", "SOURCE"]).arg(&self.dir).output().ok()?;
        let src = String::from_utf8_lossy(&out.stdout).trim().to_string();
        src.rsplit('/').next().filter(|d| !d.is_empty()).map(str::to_string)
    }

    /// Makes the kernel handle an ext4 error on this file system: with `errors=remount-ro` it
    /// refuses every write from then on. True when writes fail afterwards.
    fn fail(&self) -> bool {
        let Some(dev) = self.device() else { return false };
        let knob = format!("/sys/fs/ext4/{dev}/trigger_fs_error");
        if std::fs::write(&knob, "voicegw test: disk failure").is_err() {
            return false;
        }
        std::fs::write(self.dir.join("probe"), b"x").is_err()
    }

    /// After the process using it is gone: unmount, repair and mount again, writable.
    fn repair(&self) {
        assert!(run("umount", &[&self.dir.display().to_string()]), "umount");
        let _ = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&self.img)
            .stdout(std::process::Stdio::null())
            .status();
        assert!(self.mount(), "the repaired file system mounts");
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.img);
    }
}

fn cannot(what: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{what}");
    eprintln!("skipped: {what}");
}

#[test]
fn a_data_disk_turning_read_only_refuses_new_calls_and_kill_9_loses_no_call_record() {
    if !require("sipp") {
        return;
    }
    let Some(disk) = Ext4::new("rodisk") else {
        return cannot("cannot make and mount an ext4 image (not root, or no loop devices?)");
    };
    let data = disk.dir.clone();
    let mut gw = Gateway::start("127.0.0.107", |c| {
        c.replace("dir = \"./var\"", &format!("dir = \"{}\"", data.display()))
    });
    // Before: 10 calls, recorded.
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m", "14"].map(String::from));
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &strs(&c));
    let r = pbx(&gw, "before", "pbx_caller_bye.xml", 10, &[]);
    expect_ok(&r, 10, &gw);
    assert_eq!(cdrs_in(&data.join("cdrs"), 10, Duration::from_secs(10)).len(), 10);
    // 4 calls of 8 s each (from another port of the PBX) are up when the disk fails.
    let mut a = pbx_args(&gw.ip);
    let port = a.iter().position(|x| x == "5090").expect("pbx port");
    a[port] = "5092".into();
    a.extend(["-m", "4", "-r", "20", "-d", "8000", "-timeout", "30s"].map(String::from));
    let long = Sipp::spawn(&gw.dir, "during", "pbx_caller_bye.xml", &strs(&a));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        gw.process_metric("voicegw_active_calls"),
        4.0,
        "the long calls are up: {}",
        gw.metrics()
    );
    if !disk.fail() {
        drop(long);
        return cannot("cannot make the ext4 file system fail (no trigger_fs_error?)");
    }
    let seen = Instant::now();
    let failing = gw.wait_process_metric("voicegw_cdr_spool_failing", 1.0);
    assert_eq!(failing, 1.0, "the failure is noticed without a call: {}", tail(&gw.log()));
    assert!(seen.elapsed() < Duration::from_secs(5), "noticed in {:?}", seen.elapsed());
    assert!(
        http_get(&format!("{}:9100", gw.ip), "/health").starts_with("cdr spool failing"),
        "/health says the gateway cannot record"
    );
    // New calls are refused while nothing can record them.
    let refused = refused_scenario(&gw, 503);
    let r = pbx(&gw, "refused", refused.to_str().expect("path"), 5, &[]);
    expect_ok(&r, 5, &gw);
    // The calls in progress go on to their end.
    let long = long.wait(Duration::from_secs(20));
    assert_eq!((long.successful, long.failed), (4, 0), "{long:#?}\n{}", tail(&gw.log()));
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!(callee.successful, 14, "{callee:#?}");
    let log = gw.log();
    assert!(log.contains("the CDR spool cannot write"), "{}", tail(&log));
    assert!(log.contains("new calls are refused (503)"), "{}", tail(&log));
    // Killed on the failed disk; the disk is repaired; the restart records every call.
    gw.kill9();
    disk.repair();
    gw.restart();
    let cdrs = cdrs_in(&data.join("cdrs"), 14, Duration::from_secs(20));
    let mut status: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in &cdrs {
        check_cdr(k, v);
        let interrupted = v["StatusMessage"].as_str().unwrap_or("").starts_with("Interrupted");
        let st = if interrupted { "Interrupted" } else { v["Status"].as_str().unwrap_or("") };
        let st = st.to_string();
        status.entry(st).or_default().push(v["CallId"].as_str().unwrap_or("").to_string());
    }
    let count = |s: &str| status.get(s).map_or(0, Vec::len);
    assert_eq!(
        (count("Completed"), count("Interrupted"), cdrs.len()),
        (10, 4, 14),
        "{status:?}\n{}",
        tail(&gw.log())
    );
    let mut ids: Vec<&String> = status.values().flatten().collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 14, "one record per call: {status:?}");
    // Writable again: calls are taken. (The carrier runs without a call limit: the BYEs the
    // restart sends the legs the killed run left up reach it too.)
    let callee =
        Sipp::spawn(&gw.dir, "carrier-after", "carrier_answer.xml", &strs(&carrier_args(&gw.ip)));
    let r = pbx(&gw, "after", "pbx_caller_bye.xml", 2, &[]);
    expect_ok(&r, 2, &gw);
    drop(callee);
}

#[test]
fn a_read_only_data_directory_stops_the_start_with_its_name() {
    let dir = std::env::temp_dir().join(format!("voicegw-rodir-{}", std::process::id()));
    let data = dir.join("var");
    std::fs::create_dir_all(&data).expect("dir");
    let d = data.display().to_string();
    if !(run("mount", &["--bind", &d, &d]) && run("mount", &["-o", "remount,ro,bind", &d, &d])) {
        let _ = std::fs::remove_dir_all(&dir);
        return cannot("cannot bind-mount a directory read-only (not root?)");
    }
    let cfg = std::fs::read_to_string(harness::root().join("configs/voicegw.toml"))
        .expect("config")
        .replace("127.0.0.1", "127.0.0.108")
        .replace("dir = \"./var\"", &format!("dir = \"{d}\""));
    let cfg_path = dir.join("voicegw.toml");
    std::fs::write(&cfg_path, cfg).expect("config");
    let out = run_with_limit(
        Command::new(voicegw_bin()).arg("run").arg("--config").arg(&cfg_path),
        Duration::from_secs(20),
    );
    let _ = Command::new("umount").arg(&d).status();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "voicegw started on a read-only data directory: {err}");
    assert!(err.contains(&d) && err.contains("Read-only file system"), "{err}");
}
