//! Test harness: starts the `voicegw` binary on its own loopback address with the default
//! topology (SIP 5060/5061, carrier 5080, PBX 5090, metrics 9100) and runs real peers against it.
//!
//! Each test takes its own 127.0.0.x address, so tests can run in parallel without port clashes.
//! A test that needs a peer program that is missing fails under `CI=true` and is skipped (with a
//! message) otherwise.

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
}

impl Gateway {
    /// Starts voicegw on `ip` with the default configuration, edited by `edit`.
    pub fn start(ip: &str, edit: impl FnOnce(String) -> String) -> Gateway {
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
        let log = std::fs::File::create(dir.join("voicegw.log")).expect("log file");
        let child = Command::new(voicegw_bin())
            .args(["run", "--config"])
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(log)
            .env("RUST_LOG", "info")
            .spawn()
            .expect("start voicegw");
        let gw = Gateway { ip: ip.to_string(), child, dir };
        gw.wait_ready();
        gw
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
