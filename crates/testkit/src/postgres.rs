//! A throwaway PostgreSQL server on a free loopback port, for tests of the PostgreSQL report
//! store: its own `initdb` in a temporary directory, trust authentication, no fsync. As root
//! it runs as the `postgres` user (PostgreSQL refuses to run as root).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// A running PostgreSQL; stopped and its directory removed on drop.
#[derive(Debug)]
pub struct PostgresServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// The superuser the tests connect as.
pub const USER: &str = "mtasts";

impl PostgresServer {
    /// Runs `initdb` and starts `postgres` on 127.0.0.1 and a free port.
    pub fn start() -> Result<Self, Error> {
        let bin = mtasts_prereq::postgres_bin_dir().ok_or_else(|| {
            Error::Io("PostgreSQL's initdb not found (install Debian's postgresql)".into())
        })?;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mtasts-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(Error::io("creating the PostgreSQL directory"))?;
        let owner = run_as()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(Error::io("handing the directory to the postgres user"))?;
        }
        let data = dir.join("data");
        let out = command(&bin.join("initdb"), owner)
            .args(["-D", &data.display().to_string()])
            .args(["-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .map_err(Error::io("running initdb"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Error::Io(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut last = Error::Io("postgres did not start".into());
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(Error::io("finding a free port"))?
                .port();
            match spawn(&bin, &dir, &data, port, owner) {
                Ok(child) => return Ok(Self { child, port, dir }),
                Err(e) => last = e,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last)
    }

    /// `postgres://mtasts@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// (uid, gid) of the `postgres` user when running as root; `None` otherwise.
fn run_as() -> Result<Option<(u32, u32)>, Error> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(Error::io("reading /proc/self/status"))?;
    let root = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Ok(None);
    }
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(Error::io("reading /etc/passwd"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres"))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .map(Some)
        .ok_or_else(|| Error::Io("running as root, but there is no postgres user".into()))
}

fn command(program: &Path, owner: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = owner {
        c.uid(uid).gid(gid);
    }
    c
}

fn spawn(
    bin: &Path,
    dir: &Path,
    data: &Path,
    port: u16,
    owner: Option<(u32, u32)>,
) -> Result<Child, Error> {
    let mut child = command(&bin.join("postgres"), owner)
        .args(["-D", &data.display().to_string()])
        .args(["-k", &dir.display().to_string()])
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "max_connections=50"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::Io(format!("starting postgres: {e}")))?;
    let start = Instant::now();
    // The port accepts before the server takes logins; postmaster.pid says `ready` when it does.
    let pid_file = data.join("postmaster.pid");
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Io(format!(
                "postgres on port {port} exited with {status}"
            )));
        }
        let ready = std::fs::read_to_string(&pid_file)
            .is_ok_and(|s| s.lines().any(|l| l.trim() == "ready"));
        if ready {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(Error::Io(format!(
        "postgres on port {port} did not start in 20 s"
    )))
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
