//! Helpers shared by the binary's tests.

#![allow(dead_code, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `mtasts lab serve --placement ephemeral` in a temporary directory; stopped and removed on drop.
pub struct EphemeralLab {
    child: Child,
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

/// Whether this process runs as root and finds `tools` on PATH. Under CI a missing
/// prerequisite is a failure, elsewhere a printed skip.
pub fn root_with(tools: &[&str], what: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let found = tools.iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if root && found {
        return true;
    }
    let why = format!(
        "{what} needs root and {} (root: {root}, tools: {found})",
        tools.join(", ")
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("SKIPPED: {why}");
    false
}
