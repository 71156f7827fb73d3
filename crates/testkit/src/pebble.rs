//! A throwaway pebble (Debian's `pebble`, Let's Encrypt's ACME test CA) on loopback, resolving
//! names through a given DNS server (the lab's) and validating for real: TLS-ALPN-01 and
//! HTTP-01 connect to the address a name resolves to, on the ports given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, TestCa};

/// What pebble is started with.
#[derive(Debug, Clone)]
pub struct PebbleConfig {
    /// Where it resolves the names it validates.
    pub dns: SocketAddr,
    /// The port TLS-ALPN-01 connects to.
    pub tls_port: u16,
    /// The port HTTP-01 connects to.
    pub http_port: u16,
    /// Names it refuses to issue for.
    pub blocklist: Vec<String>,
    /// Lifetime of the certificates it issues, in seconds.
    pub validity_secs: u64,
}

/// A running pebble; killed on drop.
#[derive(Debug)]
pub struct Pebble {
    child: Child,
    api: u16,
    management: u16,
    ca_file: PathBuf,
    dir: PathBuf,
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(Error::io("finding a free port"))?
        .port())
}

fn wait_port(port: u16) -> Result<(), Error> {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(20) {
            return Err(Error::Io(format!("pebble never listened on {port}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

impl Pebble {
    /// Starts `pebble` (from PATH) with its own HTTPS certificate for `localhost` from `ca`,
    /// its files under `dir`.
    pub fn start(config: &PebbleConfig, ca: &TestCa, dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("pebble directory"))?;
        let ca_file = dir.join("pebble-api-ca.pem");
        ca.write_pem(&ca_file)?;
        let pem_file = dir.join("pebble-api.pem");
        std::fs::write(&pem_file, ca.issue_pem(&["localhost"])?)
            .map_err(Error::io("pebble certificate"))?;
        let (api, management) = (free_port()?, free_port()?);
        let json = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{api}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": pem_file,
            "privateKey": pem_file,
            "httpPort": config.http_port,
            "tlsPort": config.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "domainBlocklist": config.blocklist,
            "certificateValidityPeriod": config.validity_secs,
        }});
        let config_file = dir.join("pebble.json");
        std::fs::write(&config_file, json.to_string()).map_err(Error::io("pebble config"))?;
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &config.dns.to_string()])
            // No random sleep before validating; no deliberately rejected nonces.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(Error::io("starting pebble (Debian package `pebble`)"))?;
        let pebble = Self {
            child,
            api,
            management,
            ca_file,
            dir: dir.to_path_buf(),
        };
        wait_port(api)?;
        wait_port(management)?;
        Ok(pebble)
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://localhost:{}/dir", self.api)
    }

    /// The CA file to trust for the directory's own HTTPS.
    pub fn api_ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Writes the root pebble issues under (random per run; from its management API) and
    /// returns its path.
    pub fn root_file(&self) -> Result<PathBuf, Error> {
        let out = self.dir.join("pebble-root.pem");
        let o = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&self.ca_file)
            .arg(format!("https://localhost:{}/roots/0", self.management))
            .arg("-o")
            .arg(&out)
            .output()
            .map_err(Error::io("curl for pebble's root"))?;
        if !o.status.success() {
            return Err(Error::Io(format!(
                "pebble's root: {}",
                String::from_utf8_lossy(&o.stderr)
            )));
        }
        Ok(out)
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
