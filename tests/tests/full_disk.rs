//! A full disk for the data directory (a small tmpfs this test mounts, filled by a filler file):
//! calls go on, the CDR spool keeps committing into the space it reserved for its segment, the
//! local CDR store's failed writes are counted and retried, and after `kill -9`, freeing the
//! space and a restart, every call has exactly one readable record and none is marked
//! interrupted. Needs root (mount); under CI=true a missing permission fails the test.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::{
    carrier_args, cdrs_in, check_cdr, expect_ok, pbx, require, strs, tail, Gateway, Sipp,
};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmpfs(size: &str) -> Option<Mount> {
    let dir = std::env::temp_dir().join(format!("voicegw-fulldisk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(Mount(dir))
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        None
    }
}

/// Writes `path` until the file system is full; returns the bytes written.
fn fill(path: &std::path::Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    let mut n = 0;
    while f.write_all(&chunk).is_ok() {
        n += chunk.len() as u64;
    }
    let _ = f.flush();
    n
}

#[test]
fn a_full_disk_and_kill_9_lose_no_record() {
    if !require("sipp") {
        return;
    }
    let Some(mnt) = tmpfs("24m") else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "cannot mount a tmpfs (not root?)");
        eprintln!("skipped: cannot mount a tmpfs (not root?)");
        return;
    };
    let data = mnt.0.clone();
    let mut gw = Gateway::start("127.0.0.102", |c| {
        c.replace("dir = \"./var\"", &format!("dir = \"{}\"", data.display()))
    });
    let filled = fill(&data.join("filler"));
    assert!(filled > 4 << 20, "the disk was filled ({filled} bytes)");
    // 20 calls on a full disk: all complete.
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m", "20"].map(String::from));
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &strs(&c));
    let r = pbx(&gw, "full-disk", "pbx_caller_bye.xml", 20, &[]);
    expect_ok(&r, 20, &gw);
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!(callee.successful, 20, "{callee:#?}");
    // The store cannot take them: failures counted, records kept in the spool.
    let failures = gw.wait_process_metric("voicegw_cdr_upload_failures_total", 1.0);
    assert!(failures >= 1.0, "store failures counted: {}", gw.metrics());
    assert_eq!(gw.process_metric("voicegw_cdr_spool_failing"), 0.0, "the spool had its reserve");
    let delivered = cdrs_in(&data.join("cdrs"), 0, Duration::ZERO).len();
    assert!(delivered < 20, "the store was full, yet {delivered} records landed");
    // Killed while the disk is full; space comes back; the restart delivers every record.
    gw.kill9();
    std::fs::remove_file(data.join("filler")).expect("remove filler");
    gw.restart();
    let cdrs = cdrs_in(&data.join("cdrs"), 20, Duration::from_secs(20));
    let mut per_call: HashMap<String, usize> = HashMap::new();
    for (k, v) in &cdrs {
        check_cdr(k, v);
        assert_eq!(v["Status"], "Completed", "{k}: {v}");
        *per_call.entry(v["CallId"].as_str().unwrap_or("").to_string()).or_insert(0) += 1;
    }
    assert_eq!(cdrs.len(), 20, "one record per call: {}", tail(&gw.log()));
    assert!(per_call.values().all(|&n| n == 1), "{per_call:?}");
}
