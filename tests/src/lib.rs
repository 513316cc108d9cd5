//! Test harness: starts the `voicegw` binary on its own loopback address with the default
//! topology (SIP 5060/5061, carrier 5080, PBX 5090, metrics 9100) and runs real peers against it.
//!
//! Each test takes its own 127.0.0.x address, so tests can run in parallel without port clashes.
//! A test that needs a peer program that is missing fails under `CI=true` and is skipped (with a
//! message) otherwise.

pub mod audio;
pub mod meet;
pub mod pcap_gen;

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// `../shared` beside the checkout, where the reference captures live.
pub fn shared() -> PathBuf {
    root().join("..").join("shared")
}

/// `../shared` (an extra corpus of real captures and references, not the project's own), if it
/// is beside the checkout. Under `CI=true` it must be (CI has it): its absence fails the test.
/// Elsewhere a test that needs it is skipped with a note; the project's own fixtures
/// (`pcap-fixtures/`, captures the harness writes, tshark computing references live) still run.
pub fn shared_corpus() -> Option<PathBuf> {
    let dir = shared();
    if dir.join("pcaps").is_dir() && dir.join("reference").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "../shared (the shared corpus of captures and references) is required under CI=true"
        );
    }
    eprintln!("SKIPPED: ../shared is not beside the checkout (an extra corpus, used when present)");
    None
}

/// True when `tool` is on PATH. Under `CI=true` a missing tool is a test failure.
pub fn require(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{tool} is required by this test (run scripts/test as root to install it)");
        }
        eprintln!("SKIPPED: {tool} not installed (scripts/test installs it)");
    }
    found
}

/// The voicegw binary: `$VOICEGW_BIN`, else target/release, else target/debug.
pub fn voicegw_bin() -> PathBuf {
    if let Ok(p) = std::env::var("VOICEGW_BIN") {
        return PathBuf::from(p);
    }
    for profile in ["release", "debug"] {
        let p = root().join("target").join(profile).join("voicegw");
        if p.exists() {
            return p;
        }
    }
    panic!("voicegw binary not built: run `cargo build --release -p voicegw` (scripts/test does)");
}

/// A running gateway.
pub struct Gateway {
    pub ip: String,
    pub child: Child,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Gateway {
    /// Starts voicegw on `ip` with the default configuration, edited by `edit`.
    pub fn start(ip: &str, edit: impl FnOnce(String) -> String) -> Gateway {
        Gateway::start_with_env(ip, &[], edit)
    }

    /// [`Gateway::start`] with extra environment variables for the process.
    pub fn start_with_env(
        ip: &str,
        env: &[(&str, &str)],
        edit: impl FnOnce(String) -> String,
    ) -> Gateway {
        let default = std::fs::read_to_string(root().join("configs/voicegw.toml"))
            .expect("configs/voicegw.toml");
        let cfg = edit(default.replace("127.0.0.1", ip));
        let dir = std::env::temp_dir().join(format!("voicegw-test-{}-{ip}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cfg =
            cfg.replace("dir = \"./var\"", &format!("dir = \"{}\"", dir.join("var").display()));
        let cfg_path = dir.join("voicegw.toml");
        std::fs::write(&cfg_path, cfg).expect("write config");
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let child = Gateway::spawn(&dir, &env);
        let gw = Gateway { ip: ip.to_string(), child, dir, env };
        gw.wait_ready();
        gw
    }

    /// Starts voicegw on the configuration in `dir`, appending to its log.
    fn spawn(dir: &Path, env: &[(String, String)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("voicegw.log"))
            .expect("log file");
        Command::new(voicegw_bin())
            .args(["run", "--config"])
            .arg(dir.join("voicegw.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .expect("start voicegw")
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed or drained).
    pub fn kill9(&mut self) {
        let _ = Command::new("kill").arg("-KILL").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }

    /// Starts the gateway again on the same configuration and data directory.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Gateway::spawn(&self.dir, &self.env);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let addr: SocketAddr = format!("{}:9100", self.ip).parse().expect("addr");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("voicegw did not start on {}: {}", self.ip, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("voicegw.log")).unwrap_or_default()
    }

    /// The process's resident memory (KiB), from /proc; 0 if unreadable.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Sends an OPTIONS over UDP from `sock` and returns how long the 200 took (None: no
    /// answer within 2 s).
    pub fn options_rtt(&self, sock: &std::net::UdpSocket, n: u32) -> Option<Duration> {
        let ip = &self.ip;
        let msg = format!("OPTIONS sip:ping@{ip}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKping{n}\r\nFrom: <sip:probe@{ip}>;tag=p{n}\r\nTo: <sip:ping@{ip}>\r\nCall-ID: ping-{n}@{ip}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", sock.local_addr().ok()?);
        sock.set_read_timeout(Some(Duration::from_millis(100))).ok()?;
        let start = Instant::now();
        sock.send_to(msg.as_bytes(), format!("{ip}:5060")).ok()?;
        let mut buf = [0u8; 4096];
        while start.elapsed() < Duration::from_secs(2) {
            if let Ok(k) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..k]);
                if text.starts_with("SIP/2.0 200") && text.contains(&format!("ping-{n}@")) {
                    return Some(start.elapsed());
                }
            }
        }
        None
    }

    /// GET /metrics.
    pub fn metrics(&self) -> String {
        http_get(&format!("{}:9100", self.ip), "/metrics")
    }

    /// Sends SIGTERM and waits for the exit (at most `limit`); returns the exit code.
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP GET returning the body.
pub fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// The result of one SIPp run, from its `-trace_stat` CSV.
#[derive(Debug, Clone)]
pub struct SippResult {
    pub exit: Option<i32>,
    pub successful: u64,
    pub failed: u64,
    pub errors: String,
    pub stdout: String,
}

/// A SIPp process in the background (the side that waits for calls).
pub struct Sipp {
    child: Child,
    name: String,
    dir: PathBuf,
}

fn sipp_command(dir: &Path, name: &str, scenario: &str, args: &[&str]) -> Command {
    let mut c = Command::new("sipp");
    if !scenario.is_empty() {
        c.arg("-sf").arg(root().join("tests/sipp").join(scenario));
    }
    c.args(args)
        .args(["-nostdin", "-trace_err", "-trace_stat", "-fd", "1"])
        .arg("-error_file")
        .arg(dir.join(format!("{name}-errors.log")))
        .arg("-stf")
        .arg(dir.join(format!("{name}-stat.csv")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

impl Sipp {
    /// Starts SIPp in the background (UAS side). An empty `scenario` means a built-in one (`-sn`).
    pub fn spawn(dir: &Path, name: &str, scenario: &str, args: &[&str]) -> Sipp {
        let child = sipp_command(dir, name, scenario, args).spawn().expect("start sipp");
        // Give it time to bind before the caller starts.
        std::thread::sleep(Duration::from_millis(300));
        Sipp { child, name: name.to_string(), dir: dir.to_path_buf() }
    }

    /// Waits for it to finish (at most `limit`, then kills it).
    pub fn wait(mut self, limit: Duration) -> SippResult {
        let start = Instant::now();
        let mut exit = None;
        while start.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                exit = s.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let mut stdout = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        result(&self.dir, &self.name, exit, stdout)
    }
}

impl Drop for Sipp {
    /// A test that fails before `wait` must not leave SIPp holding its port for the next one.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs SIPp in the foreground (UAC side) with a time limit.
pub fn run_sipp(
    dir: &Path,
    name: &str,
    scenario: &str,
    args: &[&str],
    limit: Duration,
) -> SippResult {
    let s = Sipp {
        child: sipp_command(dir, name, scenario, args).spawn().expect("start sipp"),
        name: name.into(),
        dir: dir.into(),
    };
    s.wait(limit)
}

fn result(dir: &Path, name: &str, exit: Option<i32>, stdout: String) -> SippResult {
    let csv = std::fs::read_to_string(dir.join(format!("{name}-stat.csv"))).unwrap_or_default();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(';').collect();
    let last: Vec<&str> = lines.last().unwrap_or("").split(';').collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| *h == n)
            .and_then(|i| last.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    SippResult {
        exit,
        successful: col("SuccessfulCall(C)"),
        failed: col("FailedCall(C)"),
        errors: std::fs::read_to_string(dir.join(format!("{name}-errors.log"))).unwrap_or_default(),
        stdout,
    }
}

/// Runs a command with a time limit (it is killed after `limit`) and returns its output.
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> Output {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if start.elapsed() > limit {
                    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Reads stdout and stderr concurrently, so a chatty child cannot block on a full pipe.
    let out = child.wait_with_output().expect("output");
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    out
}

/// Common SIPp arguments for the PBX side calling through voicegw at `ip`.
pub fn pbx_args(ip: &str) -> Vec<String> {
    vec![
        format!("{ip}:5060"),
        "-i".into(),
        ip.into(),
        "-p".into(),
        "5090".into(),
        "-s".into(),
        "+12065550101".into(),
        "-key".into(),
        "vc_host".into(),
        "abcdef1ghij2klmno3pqr4.voiceconnector.local".into(),
    ]
}

/// Common SIPp arguments for the carrier side at `ip`.
pub fn carrier_args(ip: &str) -> Vec<String> {
    vec!["-i".into(), ip.into(), "-p".into(), "5080".into()]
}

/// Reads datagrams from `sock` until one starts with `start` (5 s at most).
pub fn read_until(sock: &std::net::UdpSocket, start: &str) -> String {
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            if m.starts_with(start) {
                return m;
            }
        }
    }
    panic!("no {start} within 5 s");
}

/// The value of header `name` in a SIP message's text.
pub fn sip_header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

/// The port of the first `m=audio` line of a message carrying SDP.
pub fn sdp_audio_port(msg: &str) -> u16 {
    msg.lines()
        .find_map(|l| {
            l.strip_prefix("m=audio ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|p| p.parse().ok())
        })
        .unwrap_or_else(|| panic!("no m=audio in {msg}"))
}

impl Gateway {
    /// The media-quality records (JSON lines) of the default voice connector, waiting up to 5 s
    /// for the first.
    pub fn media_records(&self) -> Vec<serde_json::Value> {
        let path = self.dir.join("var/ChimeVoiceConnectorLogs/abcdef1ghij2klmno3pqr4.jsonl");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut text = String::new();
        while Instant::now() < deadline && text.is_empty() {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            std::thread::sleep(Duration::from_millis(50));
        }
        text.lines().map(|l| serde_json::from_str(l).expect("a JSON record")).collect()
    }
}

/// An `openssl s_client` session: write SIP text, read what comes back.
pub struct TlsClient {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl TlsClient {
    pub fn connect(addr: &str, extra: &[&str]) -> TlsClient {
        let mut args = vec!["s_client", "-quiet", "-connect", addr];
        args.extend_from_slice(extra);
        TlsClient::openssl(&args)
    }

    /// An `openssl s_server` on `addr` (`host:port`) with a PEM certificate and key: the TLS
    /// end of a peer voicegw connects to. It serves one connection.
    pub fn server(addr: &str, cert: &Path, key: &Path) -> TlsClient {
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        TlsClient::openssl(&["s_server", "-quiet", "-accept", addr, "-cert", &cert, "-key", &key])
    }

    fn openssl(args: &[&str]) -> TlsClient {
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        TlsClient { child, lines: rx }
    }

    pub fn send(&mut self, msg: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        // Lines may end in `\n` or `\r\n`; SIP gets `\r\n`.
        stdin.write_all(msg.replace("\r\n", "\n").replace('\n', "\r\n").as_bytes()).expect("write");
        stdin.flush().expect("flush");
    }

    /// Reads one SIP message whose start line contains `start`, with its body, as text with
    /// `\r\n` line ends.
    pub fn expect_full(&mut self, start: &str, limit: Duration) -> String {
        let head = self.expect(start, limit);
        let len: usize =
            msg_header_opt(&head, "Content-Length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut text = head.join("\r\n") + "\r\n\r\n";
        let mut body = 0;
        while body < len {
            let Ok(line) = self.lines.recv_timeout(limit) else {
                panic!("body of `{start}` cut short: {text}");
            };
            let line = line.trim_end_matches('\r');
            body += line.len() + 2;
            text += line;
            text += "\r\n";
        }
        text
    }

    /// Reads one SIP message (start line and headers) whose start line contains `start`.
    pub fn expect(&mut self, start: &str, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut msg: Vec<String> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!("no `{start}` within {limit:?}; got so far: {msg:?}");
            };
            let line = line.trim_end_matches('\r').to_string();
            if line.is_empty() {
                if msg.first().is_some_and(|l| l.contains(start)) {
                    return msg;
                }
                msg.clear();
                continue;
            }
            // A start line begins a new message (bodies carry no blank line at their end).
            if line.starts_with("SIP/2.0 ") || line.ends_with(" SIP/2.0") {
                msg.clear();
            }
            msg.push(line);
        }
    }
}

impl Drop for TlsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A header of a message read by [`TlsClient::expect`].
pub fn msg_header<'a>(msg: &'a [String], name: &str) -> &'a str {
    msg_header_opt(msg, name).unwrap_or_else(|| panic!("no {name} in {msg:?}"))
}

fn msg_header_opt<'a>(msg: &'a [String], name: &str) -> Option<&'a str> {
    msg.iter().find_map(|l| {
        l.split_once(':')
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    })
}

/// `&str` views of `String` arguments.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The last 40 lines of a log.
pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A test-only password, different in every run.
pub fn password() -> String {
    format!(
        "test-only-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
    )
}

/// A PBX scenario whose INVITE must be answered `status` (after an optional 100), then ACKed.
pub fn refused_scenario(gw: &Gateway, status: u16) -> PathBuf {
    let path = gw.dir.join(format!("pbx_refused_{status}.xml"));
    let xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="refused {status}">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[vc_host] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[call_number]-r-[pid]
      From: "PBX" <sip:+12065550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[vc_host]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:pbx@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=pbx 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="{status}"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[vc_host] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[call_number]-r-[pid]
      From: "PBX" <sip:+12065550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#
    );
    std::fs::write(&path, xml).expect("scenario");
    path
}

impl Gateway {
    /// The value of metric `name` (Prometheus name) for voice connector `vc` in us-east-1.
    pub fn metric(&self, name: &str, vc: &str) -> f64 {
        let m = self.metrics();
        let key = format!("{name}{{voice_connector_id=\"{vc}\",region=\"us-east-1\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// The files under `root` (recursively), as paths relative to it, skipping dot-directories.
pub fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

impl Gateway {
    /// The call detail records in the local CDR store (`<data>/cdrs`), by key, once at least
    /// `expect` are there (or `limit` has passed).
    pub fn cdrs(&self, expect: usize, limit: Duration) -> Vec<(String, serde_json::Value)> {
        cdrs_in(&self.dir.join("var/cdrs"), expect, limit)
    }
}

/// The records under a local CDR store directory, waiting for at least `expect`.
pub fn cdrs_in(root: &Path, expect: usize, limit: Duration) -> Vec<(String, serde_json::Value)> {
    let deadline = Instant::now() + limit;
    loop {
        let keys = files_under(root);
        if keys.len() >= expect || Instant::now() >= deadline {
            return keys
                .into_iter()
                .map(|k| {
                    let text = std::fs::read_to_string(root.join(&k)).unwrap_or_default();
                    let v = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("CDR {k} is not JSON ({e}): {text}"));
                    (k, v)
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The fields of a call detail record (formats.md §7), in the service's order, with their
/// JSON types: `s` string, `i` non-negative integer, `f` number, `b` boolean.
pub const CDR_FIELDS: &[(&str, char)] = &[
    ("AwsAccountId", 's'),
    ("TransactionId", 's'),
    ("CallId", 's'),
    ("VoiceConnectorId", 's'),
    ("Status", 's'),
    ("StatusMessage", 's'),
    ("SipAuthUser", 's'),
    ("BillableDurationSeconds", 'i'),
    ("BillableDurationMinutes", 'f'),
    ("SchemaVersion", 's'),
    ("SourcePhoneNumber", 's'),
    ("SourcePhoneNumberName", 's'),
    ("SourceCountry", 's'),
    ("DestinationPhoneNumber", 's'),
    ("DestinationPhoneNumberName", 's'),
    ("DestinationCountry", 's'),
    ("UsageType", 's'),
    ("ServiceCode", 's'),
    ("Direction", 's'),
    ("StartTimeEpochSeconds", 'i'),
    ("EndTimeEpochSeconds", 'i'),
    ("Region", 's'),
    ("Streaming", 'b'),
];

/// Checks a record against formats.md §7 field by field and its key against the layout
/// `Amazon-Chime-Voice-Connector-CDRs/json/<vc>/<YYYY>/<MM>/<DD>/<HH.MM.SS.mmm>_<TransactionId>`.
pub fn check_cdr(key: &str, v: &serde_json::Value) {
    let obj = v.as_object().unwrap_or_else(|| panic!("{key}: not an object: {v}"));
    let names: Vec<&str> = obj.keys().map(String::as_str).collect();
    let expected: Vec<&str> = CDR_FIELDS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected, "{key}: fields or their order");
    for (name, kind) in CDR_FIELDS {
        let f = &obj[*name];
        let ok = match kind {
            's' => f.is_string(),
            'i' => f.is_u64(),
            'f' => f.is_number(),
            _ => f.is_boolean(),
        };
        assert!(ok, "{key}: {name} has the wrong JSON type: {f}");
    }
    assert_eq!(v["SchemaVersion"], "2.0");
    assert_eq!(v["ServiceCode"], "AmazonChimeVoiceConnector");
    let secs = v["BillableDurationSeconds"].as_u64().unwrap_or(0);
    let mins = v["BillableDurationMinutes"].as_f64().unwrap_or(-1.0);
    assert!((mins - secs as f64 / 60.0).abs() <= 0.005, "{key}: minutes {mins} for {secs} s");
    let tx = v["TransactionId"].as_str().unwrap_or("");
    let uuid = tx.len() == 36
        && tx.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }
        })
        && tx.as_bytes()[14] == b'4';
    assert!(uuid, "{key}: TransactionId {tx} is not a UUID v4");
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(parts.len(), 7, "{key}: key layout");
    assert_eq!(&parts[..2], &["Amazon-Chime-Voice-Connector-CDRs", "json"], "{key}");
    let vc = v["VoiceConnectorId"].as_str().unwrap_or("");
    assert_eq!(parts[2], if vc.is_empty() { "unmatched" } else { vc }, "{key}");
    let start = v["StartTimeEpochSeconds"].as_u64().unwrap_or(0);
    let (y, m, d) = civil(start / 86_400);
    assert_eq!(
        &parts[3..6],
        &[format!("{y:04}"), format!("{m:02}"), format!("{d:02}")],
        "{key}: date of StartTimeEpochSeconds {start}"
    );
    let rem = start % 86_400;
    let hms = format!("{:02}.{:02}.{:02}.", rem / 3600, rem / 60 % 60, rem % 60);
    let last = parts[6];
    assert!(last.starts_with(&hms) && last.len() == hms.len() + 4 + 36, "{key}: {hms}mmm_<id>");
    assert_eq!(&last[hms.len() + 3..hms.len() + 4], "_", "{key}");
    assert_eq!(&last[hms.len() + 4..], tx, "{key}: ends with the TransactionId");
    assert!(
        v["EndTimeEpochSeconds"].as_u64().unwrap_or(0) >= start,
        "{key}: ends before it starts"
    );
}

/// Days since 1970-01-01 to (year, month, day) — written independently of the gateway's.
fn civil(days: u64) -> (u64, u64, u64) {
    let mut y = 1970;
    let mut d = days;
    loop {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = if leap { 366 } else { 365 };
        if d < len {
            let months = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            let mut m = 0;
            while d >= months[m] {
                d -= months[m];
                m += 1;
            }
            return (y, m as u64 + 1, d + 1);
        }
        d -= len;
        y += 1;
    }
}

/// A TCP forwarder from `listen` to `target` that can be cut (connections refused, open ones
/// closed) and restored: a store outage for the process talking through it.
pub struct TcpProxy {
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpProxy {
    pub fn start(listen: &str, target: &str) -> TcpProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let up = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (listen, target) = (listen.to_string(), target.to_string());
        let (u, s) = (up.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<TcpStream> = Vec::new();
            let mut listener: Option<std::net::TcpListener> = None;
            while !s.load(Ordering::Relaxed) {
                if !u.load(Ordering::Relaxed) {
                    listener = None;
                    for c in conns.drain(..) {
                        let _ = c.shutdown(std::net::Shutdown::Both);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                if listener.is_none() {
                    match std::net::TcpListener::bind(&listen) {
                        Ok(l) => {
                            let _ = l.set_nonblocking(true);
                            listener = Some(l);
                        }
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    }
                }
                let Some(l) = &listener else { continue };
                match l.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(&target) else { continue };
                        for (mut from, mut to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server.try_clone().unwrap(), client.try_clone().unwrap()),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Write);
                            });
                        }
                        conns.push(client);
                        conns.push(server);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        });
        TcpProxy { up, stop, thread: Some(thread) }
    }

    /// Cuts (`false`) or restores (`true`) the path.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until something accepts TCP connections on `addr` (at most `limit`).
pub fn wait_listening(addr: &str, limit: Duration) -> bool {
    let a: SocketAddr = addr.parse().expect("addr");
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Runs `calls` PBX calls of `scenario` (a file in tests/sipp or an absolute path) at 20/s;
/// `extra` may name another voice connector with `-key vc_host <host>` (SIPp takes the first
/// `-key` it is given, so it replaces the default one).
pub fn pbx(gw: &Gateway, name: &str, scenario: &str, calls: u32, extra: &[&str]) -> SippResult {
    let mut args = pbx_args(&gw.ip);
    if let Some(i) = extra.windows(2).position(|w| w == ["-key", "vc_host"]) {
        let at = args.iter().position(|a| a == "vc_host").expect("pbx_args sets vc_host");
        args[at + 1] = extra[i + 2].to_string();
    }
    args.extend(
        ["-m", &calls.to_string(), "-r", "20", "-timeout", "30s", "-timeout_error"]
            .map(String::from),
    );
    let mut a = strs(&args);
    a.extend_from_slice(extra);
    run_sipp(&gw.dir, name, scenario, &a, Duration::from_secs(35))
}

/// Asserts that SIPp completed `calls` calls without a failure.
pub fn expect_ok(r: &SippResult, calls: u64, gw: &Gateway) {
    assert_eq!(
        (r.successful, r.failed, r.exit),
        (calls, 0, Some(0)),
        "{r:#?}\n{}",
        tail(&gw.log())
    );
}

impl Gateway {
    /// The value of process metric `name` (empty labels); -1 when absent.
    pub fn process_metric(&self, name: &str) -> f64 {
        let key = format!("{name}{{voice_connector_id=\"\",region=\"\"}} ");
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1.0)
    }

    /// Process metric `name` once it equals `want` (or after 10 s, whatever it is then).
    pub fn wait_process_metric(&self, name: &str, want: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.process_metric(name);
            if v == want || Instant::now() >= deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A PBX the test plays itself over UDP on `ip:5090`, with its RTP on `ip:rtp_port` (PCMA):
/// it sends an INVITE for +12065550101 through voicegw (Call-ID `call_id`) and ACKs the 200.
/// Returns its SIP socket, the To of the 200 (voicegw's tag) and the media port voicegw
/// answered with.
pub fn raw_pbx_call(ip: &str, call_id: &str, rtp_port: u16) -> (std::net::UdpSocket, String, u16) {
    let vc = "abcdef1ghij2klmno3pqr4.voiceconnector.local";
    let sip = std::net::UdpSocket::bind(format!("{ip}:5090")).expect("sip socket");
    sip.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let sdp = format!("v=0\r\no=pbx 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n");
    let gw = format!("{ip}:5060");
    let invite = format!("INVITE sip:+12065550101@{vc} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5090;branch=z9hG4bK{call_id}-1\r\nFrom: <sip:+12065550100@{ip}>;tag={call_id}\r\nTo: <sip:+12065550101@{vc}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@{ip}:5090>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len());
    sip.send_to(invite.as_bytes(), &gw).expect("send INVITE");
    let ok = read_until(&sip, "SIP/2.0 200");
    let to = sip_header(&ok, "To").to_string();
    let media_port = sdp_audio_port(&ok);
    assert!(ok.contains(&format!("c=IN IP4 {ip}")), "answer anchored on voicegw: {ok}");
    let ack = format!("ACK sip:voicegw@{ip}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5090;branch=z9hG4bK{call_id}-2\r\nFrom: <sip:+12065550100@{ip}>;tag={call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    sip.send_to(ack.as_bytes(), &gw).expect("send ACK");
    (sip, to, media_port)
}

/// The G.711 A-law capture a media test plays: `sipp-g711a.pcap` of the shared corpus (236
/// packets of 30 ms A-law, 252 bytes with the header, MANIFEST.md) when it is there, else a
/// stream the harness writes into `dir` (200 packets of 20 ms, 172 bytes). Returns the path,
/// the packet count and the packet size.
pub fn g711a_capture(dir: &Path) -> (PathBuf, usize, usize) {
    match shared_corpus() {
        Some(shared) => (shared.join("pcaps/sipp-g711a.pcap"), 236, 252),
        None => {
            let path = dir.join("g711a-stream.pcap");
            let net = pcap_gen::Network {
                seed: 1,
                packets: 200,
                max_delay_ms: 0.0,
                loss_permille: 0,
                duplicate_permille: 0,
            };
            assert_eq!(pcap_gen::write_rtp_stream(&path, net), 200);
            (path, 200, 172)
        }
    }
}

/// One call through `gw`: the PBX (SIPp) plays `pcap` as RTP once answered, the carrier
/// answers and echoes it (`-rtp_echo`), the PBX hangs up. Panics unless both ends succeed.
pub fn echoed_media_call(gw: &Gateway, pcap: &Path) {
    echoed_media_call_lasting(gw, pcap, Duration::from_secs(8));
}

/// [`echoed_media_call`], the PBX hanging up `length` after the answer (8 s in
/// `pbx_media.xml`; another length is a copy of it in the test's directory).
pub fn echoed_media_call_lasting(gw: &Gateway, pcap: &Path, length: Duration) {
    let mut scenario = "pbx_media.xml".to_string();
    if length != Duration::from_secs(8) {
        let text = std::fs::read_to_string(root().join("tests/sipp/pbx_media.xml"))
            .expect("pbx_media.xml");
        let pause = format!("<pause milliseconds=\"{}\"/>", length.as_millis());
        let text = text.replace("<pause milliseconds=\"8000\"/>", &pause);
        let path = gw.dir.join("pbx_media_lasting.xml");
        std::fs::write(&path, text).expect("scenario");
        scenario = path.display().to_string();
    }
    let mut c_args = carrier_args(&gw.ip);
    c_args.extend(["-mp", "6100", "-rtp_echo", "-m", "1"].map(String::from));
    let cargs: Vec<&str> = c_args.iter().map(String::as_str).collect();
    let callee = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &cargs);
    let mut p_args = pbx_args(&gw.ip);
    p_args.extend(["-mp", "6000", "-m", "1", "-key", "audio_pcap"].map(String::from));
    p_args.push(pcap.display().to_string());
    let pargs: Vec<&str> = p_args.iter().map(String::as_str).collect();
    let limit = length + Duration::from_secs(22);
    let caller = run_sipp(&gw.dir, "pbx", &scenario, &pargs, limit);
    let callee = callee.wait(Duration::from_secs(10));
    assert_eq!((caller.successful, callee.successful), (1, 1), "{caller:#?}\n{callee:#?}");
}

/// Obviously fake AWS credentials (moto takes any), for voicegw and the AWS CLI alike.
pub const FAKE_AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// moto's server mode on `addr` (`host:port`), killed when dropped.
pub struct Moto {
    child: Child,
    addr: String,
}

impl Moto {
    /// Starts it and waits (30 s at most) until it listens.
    pub fn start(addr: &str) -> Moto {
        let (host, port) = addr.split_once(':').expect("host:port");
        let child = Command::new("moto_server")
            .args(["-H", host, "-p", port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server");
        let moto = Moto { child, addr: addr.to_string() };
        assert!(wait_listening(addr, Duration::from_secs(30)), "moto_server did not start");
        moto
    }

    /// The AWS CLI against it (us-east-1, JSON, the fake credentials, no profile): its output
    /// parsed, `Null` when empty. Panics when the command fails.
    pub fn aws(&self, args: &[&str]) -> serde_json::Value {
        let mut cmd = Command::new("aws");
        cmd.args([
            "--endpoint-url",
            &format!("http://{}", self.addr),
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .args(args)
        .envs(FAKE_AWS_ENV.iter().copied())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        let out = run_with_limit(&mut cmd, Duration::from_secs(60));
        assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("aws {args:?}: {e}: {text}"))
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a leg's stream should hold for an A-law RTP capture played as it is written: from
/// the first packet in the file (the one that starts the stream's timeline; packets with an
/// earlier timestamp arrive after their place and are dropped), every 20 ms slot up to the
/// last timestamp is the G.711 decode of its packet, or silence where no packet was sent.
/// Returns the samples and how many of them are silence filled for packets never sent.
pub fn played_pcm(pcap: &Path) -> (Vec<i16>, u64) {
    let file = std::fs::read(pcap).expect("capture");
    let packets: Vec<(u32, Vec<u8>)> = media::capture::udp_datagrams(&file)
        .expect("pcap")
        .iter()
        .filter_map(|d| {
            let h = media::rtp::RtpHeader::parse(d.payload).ok()?;
            (h.payload_type == 8).then(|| {
                (
                    h.timestamp,
                    d.payload[h.payload_offset..h.payload_offset + h.payload_len].to_vec(),
                )
            })
        })
        .collect();
    let Some(first) = packets.first().map(|p| p.0) else { return (Vec::new(), 0) };
    let mut by_ts: std::collections::BTreeMap<u32, &Vec<u8>> = std::collections::BTreeMap::new();
    for (ts, payload) in &packets {
        if *ts >= first {
            by_ts.entry(*ts).or_insert(payload);
        }
    }
    let mut pcm = Vec::new();
    let mut filled = 0u64;
    let mut next = first;
    for (ts, payload) in by_ts {
        if ts > next {
            let gap = (ts - next) as usize;
            pcm.extend(std::iter::repeat_n(0i16, gap));
            filled += gap as u64;
        }
        pcm.extend(payload.iter().map(|&c| streaming::g711::Law::ALaw.decode(c)));
        next = ts + payload.len() as u32;
    }
    (pcm, filled)
}

/// The JSON lines of `file` once there are `want` of them (or after `limit`).
pub fn json_lines(file: &Path, want: usize, limit: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if lines.len() >= want || Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `2026-12-02T20:00:00.000Z`: an ISO 8601 time with milliseconds (formats.md §8's times).
pub fn is_iso_ms(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z'
}

/// The audio `ffmpeg` reads from a Matroska stream's first track, written raw to `out` as
/// 16-bit little-endian samples. Any warning fails, but the two every live KVS-shaped stream
/// gets: no Duration (ffmpeg estimates it) and no channel layout on a mono track.
/// The Matroska files in `dir` (a local streaming sink), sorted; none when it does not exist.
pub fn mkv_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "mkv"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

pub fn ffmpeg_pcm(mkv: &Path, out: &Path) -> Vec<i16> {
    let log = run_with_limit(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "warning", "-y", "-i"])
            .arg(mkv)
            .args(["-map", "0:a:0", "-f", "s16le", "-c", "copy"])
            .arg(out),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&log.stderr);
    assert!(log.status.success(), "ffmpeg {}: {stderr}", mkv.display());
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("Estimating duration from bitrate"))
        .filter(|l| !l.starts_with("Guessed Channel Layout") || !l.ends_with(": mono"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(warnings.is_empty(), "ffmpeg warned on {}: {warnings:?}", mkv.display());
    let bytes = std::fs::read(out).expect("pcm");
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}
