//! The network flags shared by `query` and `daemon`, and the resolver they build.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use mtasts_resolver::{
    FetchSettings, HickoryDns, HttpsFetcher, NetResolver, Resolver, ResolverSettings, SystemClock,
    client_config,
};
use mtasts_store::AnyStore;

/// How to reach DNS and policy hosts.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// DNS server to query (IP:PORT); default: the servers in /etc/resolv.conf.
    #[arg(long, value_name = "IP:PORT")]
    pub nameserver: Option<SocketAddr>,
    /// Extra trusted CA certificates (PEM) for policy hosts, added to the web PKI roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// DNS timeout per query, in seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub dns_timeout: f64,
    /// Total time limit of one policy fetch, in seconds (FETCH-07).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub fetch_timeout: f64,
    /// Connect to other addresses than DNS says: a file of `PUBLIC_ADDR BOUND_ADDR` lines, as
    /// `mtasts lab serve --placement ephemeral` writes in ports.txt (testing only).
    #[arg(long, value_name = "FILE", hide = true)]
    pub port_map: Option<PathBuf>,
}

fn secs(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .with_context(|| format!("{what}: {s} is not a duration in seconds"))
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
    /// A resolver with the system clock over `store`.
    pub fn resolver(
        &self,
        store: Option<AnyStore>,
        settings: ResolverSettings,
    ) -> Result<NetResolver> {
        build_resolver(
            &Endpoints {
                nameserver: self.nameserver,
                ca_file: self.ca_file.as_deref(),
                dns_timeout: self.dns_timeout,
                fetch_timeout: self.fetch_timeout,
                port_map: self.port_map.as_deref(),
            },
            store,
            settings,
        )
    }
}

/// Where and how the resolver reaches DNS and policy hosts.
#[derive(Debug)]
pub struct Endpoints<'a> {
    pub nameserver: Option<SocketAddr>,
    pub ca_file: Option<&'a Path>,
    pub dns_timeout: f64,
    pub fetch_timeout: f64,
    pub port_map: Option<&'a Path>,
}

/// A resolver with the system clock over `store`.
pub fn build_resolver(
    ep: &Endpoints<'_>,
    store: Option<AnyStore>,
    settings: ResolverSettings,
) -> Result<NetResolver> {
    let dns = Arc::new(
        HickoryDns::new(ep.nameserver, secs(ep.dns_timeout, "DNS timeout")?)
            .context("setting up DNS")?,
    );
    let tls = client_config(ep.ca_file)?;
    let connect_map = match ep.port_map {
        Some(p) => read_port_map(p)?,
        None => HashMap::new(),
    };
    let fetch = HttpsFetcher::new(
        dns.clone(),
        tls,
        FetchSettings {
            total_timeout: secs(ep.fetch_timeout, "fetch timeout")?,
            connect_map,
            ..FetchSettings::default()
        },
    );
    Ok(Resolver::new(
        dns,
        fetch,
        store,
        Arc::new(SystemClock),
        settings,
    ))
}
