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
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(Error::io("finding a free port"))?
            .port();
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
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&conf_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(Error::io("starting unbound (Debian package `unbound`)"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut unbound = Self { child, addr };
        // Ready once it answers on TCP as well (it opens both together).
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = unbound.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("unbound.log")).unwrap_or_default();
                return Err(Error::Io(format!("unbound exited ({status}): {log}")));
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err(Error::Io(format!("unbound never listened on {addr}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(unbound)
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
