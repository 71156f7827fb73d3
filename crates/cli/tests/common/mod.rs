//! Helpers shared by the binary's tests.

#![allow(dead_code, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `mtasts lab serve --placement ephemeral` in a temporary directory; stopped and removed on drop.
pub struct EphemeralLab {
    pub child: Child,
    pub dir: PathBuf,
    /// The lab DNS server, `IP:PORT`.
    pub dns: String,
}

impl Drop for EphemeralLab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl EphemeralLab {
    /// Starts one; `tag` keeps parallel tests apart.
    pub fn start(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mtasts-test-lab-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
            .args(["lab", "serve", "--placement", "ephemeral", "--state-dir"])
            .arg(&dir)
            .stderr(Stdio::null())
            .spawn()
            .expect("lab serve");
        let start = Instant::now();
        while !dir.join("ready").exists() {
            assert!(start.elapsed() < Duration::from_secs(30), "lab not ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        let dns = std::fs::read_to_string(dir.join("ready"))
            .expect("ready")
            .trim()
            .to_string();
        Self { child, dir, dns }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn ports(&self) -> PathBuf {
        self.dir.join("ports.txt")
    }
}

/// Checks that this process runs as root and finds `tools` on PATH, and fails the test saying
/// what is missing otherwise. (With `MTASTS_TEST_SKIP` opting out, the build marks such
/// tests ignored instead, and this is never reached.)
pub fn require_root_with(tools: &[&str], what: &str) {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    assert!(
        root && missing.is_empty(),
        "{what} needs root and {} (root: {root}, missing: {missing:?}); run as root with them \
         installed, or set MTASTS_TEST_SKIP=missing to report these tests as ignored",
        tools.join(", ")
    );
}

/// A child process killed and reaped on drop.
pub struct Proc(pub Child);

impl Proc {
    /// Sends `sig` (e.g. `-TERM`), waits for the exit and returns what it wrote on stderr
    /// (which must have been piped).
    pub fn stop_and_log(&mut self, sig: &str) -> String {
        let sent = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let _ = self.0.wait();
        let mut log = String::new();
        self.0
            .stderr
            .take()
            .expect("stderr piped")
            .read_to_string(&mut log)
            .expect("log");
        log
    }
}
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1 (released at once; a race with other binds is possible).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// One socketmap request on a fresh connection to 127.0.0.1:`port`; the reply payload.
pub fn ask(port: u16, req: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(format!("{}:{req},", req.len()).as_bytes())
        .expect("write");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte).expect("read") == 1 {
        buf.push(byte[0]);
        if byte[0] == b',' && buf.contains(&b':') {
            let (len, rest) = buf.split_at(buf.iter().position(|&b| b == b':').unwrap_or(0));
            let n: usize = String::from_utf8_lossy(len).parse().unwrap_or(usize::MAX);
            if rest.len() == n + 2 {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once(':')
        .map(|(_, r)| r.trim_end_matches(',').to_string())
        .unwrap_or(text)
}

/// Reads netstring replies one at a time from a socketmap connection.
pub struct NetstringReader(std::io::BufReader<TcpStream>);

impl NetstringReader {
    pub fn new(s: TcpStream) -> Self {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        Self(std::io::BufReader::new(s))
    }

    /// The next reply's payload; `None` once the connection is closed.
    pub fn next_reply(&mut self) -> Option<String> {
        use std::io::BufRead;
        let mut len = Vec::new();
        self.0.read_until(b':', &mut len).ok()?;
        len.pop().filter(|&b| b == b':')?;
        let n: usize = String::from_utf8(len).ok()?.parse().ok()?;
        let mut payload = vec![0u8; n + 1];
        self.0.read_exact(&mut payload).ok()?;
        (payload.pop() == Some(b',')).then_some(())?;
        String::from_utf8(payload).ok()
    }
}

/// `mtasts daemon` listening on ports it chose itself (`127.0.0.1:0`): the addresses are read
/// from its startup log, so no port is picked beforehand and raced for. Its log is collected.
pub struct Daemon {
    proc: Proc,
    /// The first TCP socketmap listener's port.
    pub port: u16,
    /// The HTTP (metrics) listener's port, when it has one.
    pub metrics: Option<u16>,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// The port of the first `127.0.0.1:PORT` in `line`.
fn loopback_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("127.0.0.1:")? + "127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl Daemon {
    /// Starts `cmd` (a `mtasts daemon …` whose listeners use port 0) and waits until ready.
    pub fn spawn(mut cmd: Command) -> Self {
        use std::io::BufRead;
        let mut child = cmd.stderr(Stdio::piped()).spawn().expect("daemon");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("metrics on /metrics") || line.contains("mtasts daemon ready") {
                    let _ = tx.send(line.clone());
                }
                let mut all = sink.lock().expect("log");
                all.push_str(&line);
                all.push('\n');
            }
        });
        let proc = Proc(child);
        let mut metrics = None;
        let port = loop {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
                panic!("daemon not ready: {}", log.lock().expect("log"));
            };
            if line.contains("metrics on /metrics") {
                metrics = loopback_port(&line);
            } else {
                break loopback_port(&line).unwrap_or_else(|| panic!("no TCP listener in {line}"));
            }
        };
        Self {
            proc,
            port,
            metrics,
            log,
            reader: Some(reader),
        }
    }

    /// The child process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.proc.0
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Sends `sig` (e.g. `-TERM`), waits up to 10 s for the exit; its status and whole log.
    pub fn stop(&mut self, sig: &str) -> (std::process::ExitStatus, String) {
        let sent = Command::new("kill")
            .args([sig, &self.proc.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.proc.0.try_wait().expect("wait") {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no clean stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status, self.log())
    }
}

/// A temporary directory holding a report store; removed on drop.
pub struct ReportDir(pub PathBuf);

impl ReportDir {
    /// A new empty one; `tag` keeps parallel tests apart.
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("mtasts-reports-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("dir");
        Self(p)
    }

    /// `--db` for a SQLite store in it.
    pub fn db(&self) -> String {
        format!("sqlite:{}", self.0.join("reports.db").display())
    }
}

impl Drop for ReportDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `cmd` and waits (at most five stderr lines) for the line starting with `ready`; the
/// child and the rest of that line. Its stderr is drained afterwards so it never blocks.
pub fn spawn_ready(cmd: &mut Command, ready: &str) -> (Child, String) {
    use std::io::BufRead;
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("start mtasts");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    for _ in 0..5 {
        line.clear();
        if stderr.read_line(&mut line).expect("read") == 0 {
            break;
        }
        if let Some(rest) = line.trim().strip_prefix(ready) {
            let rest = rest.to_string();
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
            return (child, rest);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no `{ready}` line: {line}");
}

/// SIGTERM to `child`, then reaps it.
pub fn terminate(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Runs `script ARGS…` inside a fresh lab (`mtasts lab run --name NAME`); its output, after
/// checking it succeeded and the lab was removed.
pub fn run_in_lab(name: &str, script: &std::path::Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["lab", "run", "--name", name, "--", "bash"])
        .arg(script)
        .args(args)
        .output()
        .expect("run the scenario");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "scenario failed:\n{text}");
    assert!(
        !std::path::Path::new("/run/netns").join(name).exists(),
        "lab cleaned up"
    );
    text
}

/// `GET path` on 127.0.0.1:`port` over HTTP/1.1, the whole response (status line, headers,
/// body); `None` when the connection or the read fails.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Runs `cmd` with `input` on its standard input; its output (stdout and stderr captured).
pub fn run_with_stdin(mut cmd: Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to stdin");
    child.wait_with_output().expect("wait")
}
