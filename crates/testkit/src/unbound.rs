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
    /// most `max_ttl` seconds (short, so a test sees a change soon). No validation yet.
    pub fn start(stubs: &[(&str, SocketAddr)], max_ttl: u32, dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("unbound directory"))?;
        // A port free for UDP may be taken for TCP (or taken again before unbound binds it):
        // unbound then exits at once, so try a few ports before giving up.
        let mut last = String::new();
        for _ in 0..5 {
            match Self::start_on(free_port()?, stubs, max_ttl, dir)? {
                Ok(unbound) => return Ok(unbound),
                Err(exited) => last = exited,
            }
        }
        Err(Error::Io(format!(
            "unbound exited on five ports; last: {last}"
        )))
    }

    /// One attempt: `Ok(Err(why))` when unbound exited before listening.
    fn start_on(
        port: u16,
        stubs: &[(&str, SocketAddr)],
        max_ttl: u32,
        dir: &Path,
    ) -> Result<Result<Self, String>, Error> {
        let mut conf = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  do-not-query-localhost: no\n\
             \x20 access-control: 127.0.0.0/8 allow\n  username: \"\"\n  chroot: \"\"\n\
             \x20 directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  use-syslog: no\n\
             \x20 logfile: \"{dir}/unbound.log\"\n  verbosity: 1\n  module-config: \"iterator\"\n\
             \x20 cache-max-ttl: {max_ttl}\n  cache-max-negative-ttl: {max_ttl}\n\
             \x20 qname-minimisation: no\n",
            dir = dir.display()
        );
        for (zone, _) in stubs {
            // `test.` and its kin are special-use names unbound answers locally by default.
            let zone = zone.trim_end_matches('.');
            conf.push_str(&format!("  local-zone: \"{zone}.\" nodefault\n"));
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
        // Errors before the log file is opened (a port in use) go to stderr only.
        let stderr_file = dir.join("unbound.stderr");
        let stderr = std::fs::File::create(&stderr_file).map_err(Error::io("unbound stderr"))?;
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&conf_file)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(Error::io("starting unbound (Debian package `unbound`)"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut unbound = Self { child, addr };
        // Ready once it answers on TCP as well (it opens both together).
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = unbound.child.try_wait() {
                let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
                let why = format!(
                    "{status}: {}{}",
                    read("unbound.stderr").trim(),
                    read("unbound.log").trim()
                );
                return Ok(Err(why));
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err(Error::Io(format!("unbound never listened on {addr}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Ok(unbound))
    }

    /// Where it answers (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
