//! A throwaway `redis-server` on a free loopback port, for tests of the Redis cache tier.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// A running redis-server; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts `redis-server` (from PATH) without persistence on 127.0.0.1 and a free port.
    pub fn start() -> Result<Self, Error> {
        let mut last = Error::Io("redis-server did not start".into());
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(Error::io("finding a free port"))?
                .port();
            match Self::spawn(port) {
                Ok(child) => return Ok(Self { child, port }),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts it again on the same port after [`RedisServer::stop`] (empty: no persistence).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.child = Self::spawn(self.port)?;
        Ok(())
    }

    fn spawn(port: u16) -> Result<Child, Error> {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Io(format!("starting redis-server (is it installed?): {e}")))?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Io(format!(
                    "redis-server on port {port} exited with {status}"
                )));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(child);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(Error::Io(format!(
            "redis-server on port {port} did not start in 5 s"
        )))
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (to test behaviour while Redis is down).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
