//! A throwaway recursive resolver: Debian's `unbound` on a free loopback port, with stub zones
//! pointing at the lab's authoritative servers (the lab DNS, `serve`'s delegated zone), so a
//! lookup follows CNAMEs from one zone into another as on the real internet.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// A running unbound; killed on drop.
#[derive(Debug)]
pub struct Unbound {
    child: Child,
    addr: SocketAddr,
}

impl Unbound {
    /// Starts `unbound` (from PATH) in the foreground with its files under `dir`: each
    /// `(zone, server)` of `stubs` is answered by asking that server; answers are cached at
    /// most `max_ttl` seconds (short, so a test sees a change soon). No validation.
    pub fn start(stubs: &[(&str, SocketAddr)], max_ttl: u32, dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("unbound directory"))?;
        // A port free for UDP may be taken for TCP (or taken again before unbound binds it):
        // unbound then exits at once, so try a few ports before giving up.
        let mut last = String::new();
        for _ in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            match Self::start_on(addr, stubs, max_ttl, None, dir)? {
                Ok(unbound) => return Ok(unbound),
                Err(exited) => last = exited,
            }
        }
        Err(Error::Io(format!(
            "unbound exited on five ports; last: {last}"
        )))
    }

    /// A non-validating resolver on `addr` with these stubs (it passes DNSSEC records on to
    /// clients that ask with DO, and sets no AD bit).
    pub fn at(
        addr: SocketAddr,
        stubs: &[(&str, SocketAddr)],
        max_ttl: u32,
        dir: &Path,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("unbound directory"))?;
        Self::start_on(addr, stubs, max_ttl, None, dir)?
            .map_err(|why| Error::Io(format!("unbound exited: {why}")))
    }

    /// A validating resolver on `addr` trusting `trust_anchor` (a DS or DNSKEY record in
    /// presentation format), with the same stubs; nothing is cached (`lab ctl` changes are
    /// seen at once), bogus answers are SERVFAIL, and each validation failure is logged.
    pub fn validating(
        addr: SocketAddr,
        stubs: &[(&str, SocketAddr)],
        trust_anchor: &str,
        dir: &Path,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("unbound directory"))?;
        Self::start_on(addr, stubs, 0, Some(trust_anchor), dir)?
            .map_err(|why| Error::Io(format!("unbound exited: {why}")))
    }

    /// One attempt: `Ok(Err(why))` when unbound exited before listening.
    fn start_on(
        addr: SocketAddr,
        stubs: &[(&str, SocketAddr)],
        max_ttl: u32,
        trust_anchor: Option<&str>,
        dir: &Path,
    ) -> Result<Result<Self, String>, Error> {
        let modules = if trust_anchor.is_some() {
            "validator iterator"
        } else {
            "iterator"
        };
        let mut conf = format!(
            "server:\n  interface: {ip}\n  port: {port}\n  do-ip6: no\n  do-not-query-localhost: no\n\
             \x20 access-control: 127.0.0.0/8 allow\n  username: \"\"\n  chroot: \"\"\n\
             \x20 directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  use-syslog: no\n\
             \x20 logfile: \"{dir}/unbound.log\"\n  verbosity: 1\n  module-config: \"{modules}\"\n\
             \x20 cache-max-ttl: {max_ttl}\n  cache-max-negative-ttl: {max_ttl}\n\
             \x20 qname-minimisation: no\n\
             \x20 infra-host-ttl: 10\n  infra-keep-probing: yes\n",
            ip = addr.ip(),
            port = addr.port(),
            dir = dir.display()
        );
        if let Some(anchor) = trust_anchor {
            // val-log-level 2: why each answer was bogus, in unbound.log, for a failing test.
            conf.push_str(&format!(
                "  trust-anchor: \"{anchor}\"\n  val-log-level: 2\n  val-bogus-ttl: 1\n"
            ));
        }
        for (zone, _) in stubs {
            // `test.` and its kin are special-use names unbound answers locally by default.
            let zone = zone.trim_end_matches('.');
            if !zone.is_empty() {
                conf.push_str(&format!("  local-zone: \"{zone}.\" nodefault\n"));
            }
        }
        for (zone, server) in stubs {
            conf.push_str(&format!(
                "stub-zone:\n  name: \"{}.\"\n  stub-addr: {}@{}\n",
                zone.trim_end_matches('.'),
                server.ip(),
                server.port()
            ));
        }
        let conf_file = dir.join("unbound.conf");
        std::fs::write(&conf_file, conf).map_err(Error::io("unbound config"))?;
        let (child, exited) = spawn_listening("unbound", &conf_file, addr, dir)?;
        match exited {
            Some(why) => Ok(Err(why)),
            None => Ok(Ok(Self { child, addr })),
        }
    }

    /// Where it answers (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Unbound {
    /// Its process id (`mtasts lab down` stops it by this if the lab itself was killed).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Starts `program -d -c conf` (unbound and NSD both take these: foreground, config file),
/// stderr and the log in `dir/<program>.stderr` and `.log`, and waits until it accepts TCP on
/// `addr` (it opens UDP together). `Some(why)` beside the child if it exited first.
pub(crate) fn spawn_listening(
    program: &str,
    conf: &Path,
    addr: SocketAddr,
    dir: &Path,
) -> Result<(Child, Option<String>), Error> {
    // Errors before the log file is opened (a port in use) go to stderr only.
    let stderr_file = dir.join(format!("{program}.stderr"));
    let stderr = std::fs::File::create(&stderr_file)
        .map_err(|e| Error::Io(format!("{}: {e}", stderr_file.display())))?;
    let mut child = Command::new(program)
        .arg("-d")
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| {
            Error::Io(format!(
                "starting {program} (Debian package `{program}`): {e}"
            ))
        })?;
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let read = |ext: &str| {
                std::fs::read_to_string(dir.join(format!("{program}.{ext}"))).unwrap_or_default()
            };
            let why = format!("{status}: {}{}", read("stderr").trim(), read("log").trim());
            return Ok((child, Some(why)));
        }
        if start.elapsed() > Duration::from_secs(20) {
            terminate(&mut child);
            return Err(Error::Io(format!("{program} never listened on {addr}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, None))
}

/// SIGTERM (through kill(1): no unsafe code here), up to 2 s to exit, then SIGKILL.
pub(crate) fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A loopback port that was free for both UDP and TCP a moment ago.
fn free_port() -> Result<u16, Error> {
    loop {
        let udp =
            std::net::UdpSocket::bind("127.0.0.1:0").map_err(Error::io("finding a free port"))?;
        let port = udp
            .local_addr()
            .map_err(Error::io("finding a free port"))?
            .port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}
