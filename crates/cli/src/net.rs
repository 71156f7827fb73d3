//! The network flags shared by `query` and `check`, and the resolver they build.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use mtasts_resolver::NetEndpoints;

/// How to reach DNS and policy hosts.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// DNS server to query (IP:PORT); default: the servers in /etc/resolv.conf.
    #[arg(long, value_name = "IP:PORT")]
    pub nameserver: Option<SocketAddr>,
    /// Extra trusted CA certificates (PEM) for policy hosts, added to the web PKI roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// DNS timeout per query, in seconds (more than 0, at most 60).
    #[arg(long, default_value = "5", value_name = "SECS", value_parser = seconds_up_to::<60>)]
    pub dns_timeout: Duration,
    /// Total time limit of one policy fetch, in seconds (FETCH-07; more than 0, at most 600).
    #[arg(long, default_value = "60", value_name = "SECS", value_parser = seconds_up_to::<600>)]
    pub fetch_timeout: Duration,
    /// Connect to other addresses than DNS says: a file of `PUBLIC_ADDR BOUND_ADDR` lines, as
    /// the rootless lab (`mtasts lab serve --placement ephemeral`) writes in DIR/ports.txt.
    /// For testing against that lab only.
    #[arg(long, value_name = "FILE")]
    pub port_map: Option<PathBuf>,
}

/// A number of seconds, more than 0 and at most `MAX`.
pub fn seconds_up_to<const MAX: u64>(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= MAX as f64) {
        return Err(format!(
            "{text} s is out of range: more than 0 and at most {MAX}"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

pub fn read_port_map(path: &Path) -> Result<HashMap<SocketAddr, SocketAddr>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let mut parts = line.split_whitespace();
            let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
                anyhow::bail!("{}:{}: expected `PUBLIC BOUND`", path.display(), i + 1);
            };
            let parse = |s: &str| {
                s.parse::<SocketAddr>()
                    .with_context(|| format!("{}:{}: `{s}` is not IP:PORT", path.display(), i + 1))
            };
            Ok((parse(a)?, parse(b)?))
        })
        .collect()
}

impl NetArgs {
    /// The endpoints these flags name.
    pub fn endpoints(&self) -> Result<NetEndpoints> {
        Ok(NetEndpoints {
            nameserver: self.nameserver,
            ca_file: self.ca_file.clone(),
            dns_timeout: self.dns_timeout,
            fetch_timeout: self.fetch_timeout,
            connect_map: match &self.port_map {
                Some(p) => read_port_map(p)?,
                None => HashMap::new(),
            },
            trust: mtasts_resolver::TrustHandle::default(),
        })
    }
}
