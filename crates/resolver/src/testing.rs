//! Test doubles for the resolver's two seams, [`Dns`] and [`Fetch`]: answers scripted per
//! name, every call counted, and a gate to hold fetches open. With a [`crate::ManualClock`]
//! they make the cache rules' timing deterministic; the real-socket tests (the testkit's
//! world) keep covering the wire.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mtasts_core::{DomainName, Policy};
use tokio::sync::{Notify, watch};

use crate::dns::{Dns, DnsError, TxtAnswer};
use crate::fetch::{Fetch, FetchError, Fetched};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

#[derive(Debug, Default)]
struct DnsScript {
    txt: HashMap<String, Result<TxtAnswer, DnsError>>,
    addresses: HashMap<String, Result<Vec<IpAddr>, DnsError>>,
    mx: HashMap<String, Result<Vec<(u16, String)>, DnsError>>,
    txt_queries: HashMap<String, usize>,
    address_queries: HashMap<String, usize>,
}

/// DNS with scripted answers. Names without an answer are NXDOMAIN. Cheap to clone; clones
/// share the script and the counters.
#[derive(Debug, Clone, Default)]
pub struct ScriptedDns {
    script: Arc<Mutex<DnsScript>>,
    queried: Arc<Notify>,
}

impl ScriptedDns {
    /// No records anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// The answer to TXT queries at `name`.
    pub fn set_txt(&self, name: &str, answer: Result<TxtAnswer, DnsError>) {
        lock(&self.script).txt.insert(name.to_string(), answer);
    }

    /// `_mta-sts.<domain>` TXT with one record, `v=STSv1; id=<id>;`, and an address for the
    /// policy host.
    pub fn publish(&self, domain: &str, id: &str) {
        let record = format!("v=STSv1; id={id};").into_bytes();
        self.set_txt(
            &format!("_mta-sts.{domain}"),
            Ok(TxtAnswer::Records(vec![vec![record]])),
        );
        self.set_addresses(
            &format!("mta-sts.{domain}"),
            Ok(vec![IpAddr::from([192, 0, 2, 1])]),
        );
    }

    /// The answer to MX queries for `domain`.
    pub fn set_mx(&self, domain: &str, answer: Result<Vec<(u16, String)>, DnsError>) {
        lock(&self.script).mx.insert(domain.to_string(), answer);
    }

    /// The answer to address queries for `host`.
    pub fn set_addresses(&self, host: &str, answer: Result<Vec<IpAddr>, DnsError>) {
        lock(&self.script)
            .addresses
            .insert(host.to_string(), answer);
    }

    /// TXT queries sent for `name` so far.
    pub fn txt_queries(&self, name: &str) -> usize {
        lock(&self.script)
            .txt_queries
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Address lookups sent for `host` so far.
    pub fn address_queries(&self, host: &str) -> usize {
        lock(&self.script)
            .address_queries
            .get(host)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `name` has had `n` TXT queries (background work), up to `limit`. Returns
    /// whether it happened.
    pub async fn wait_txt_queries(&self, name: &str, n: usize, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let notified = self.queried.notified();
                if self.txt_queries(name) >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}

impl Dns for ScriptedDns {
    async fn txt(&self, name: &str) -> Result<TxtAnswer, DnsError> {
        let answer = {
            let mut s = lock(&self.script);
            *s.txt_queries.entry(name.to_string()).or_default() += 1;
            s.txt.get(name).cloned().unwrap_or(Ok(TxtAnswer::NxDomain))
        };
        self.queried.notify_waiters();
        answer
    }

    async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError> {
        lock(&self.script)
            .mx
            .get(domain)
            .cloned()
            .unwrap_or(Ok(Vec::new()))
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let answer = {
            let mut s = lock(&self.script);
            *s.address_queries.entry(host.to_string()).or_default() += 1;
            s.addresses.get(host).cloned().unwrap_or(Ok(Vec::new()))
        };
        self.queried.notify_waiters();
        answer
    }
}

#[derive(Debug, Default)]
struct FetchScript {
    outcomes: HashMap<DomainName, Result<String, FetchError>>,
    fetches: HashMap<DomainName, usize>,
}

/// A fetcher with scripted outcomes: the policy text a domain serves (parsed like a real
/// body), or a [`FetchError`]. Domains without an outcome fail with HTTP 404. Fetches can be
/// held open ([`ScriptedFetch::hold`]) to test what happens while one is in flight.
#[derive(Debug, Clone)]
pub struct ScriptedFetch {
    script: Arc<Mutex<FetchScript>>,
    open: watch::Sender<bool>,
    fetched: Arc<Notify>,
}

impl Default for ScriptedFetch {
    fn default() -> Self {
        Self {
            script: Arc::default(),
            open: watch::channel(true).0,
            fetched: Arc::default(),
        }
    }
}

impl ScriptedFetch {
    /// Every domain answers 404.
    pub fn new() -> Self {
        Self::default()
    }

    /// `domain` serves this policy text.
    pub fn serve(&self, domain: &DomainName, text: &str) {
        lock(&self.script)
            .outcomes
            .insert(domain.clone(), Ok(text.to_string()));
    }

    /// Fetches of `domain` fail with `error`.
    pub fn fail(&self, domain: &DomainName, error: FetchError) {
        lock(&self.script)
            .outcomes
            .insert(domain.clone(), Err(error));
    }

    /// Fetches started for `domain` so far.
    pub fn fetches(&self, domain: &DomainName) -> usize {
        lock(&self.script).fetches.get(domain).copied().unwrap_or(0)
    }

    /// Fetches wait from now on until [`ScriptedFetch::release`].
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    /// Lets held and future fetches finish.
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    /// Waits until `domain` has had `n` fetches started, up to `limit`.
    pub async fn wait_fetches(&self, domain: &DomainName, n: usize, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let notified = self.fetched.notified();
                if self.fetches(domain) >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}

impl Fetch for ScriptedFetch {
    async fn fetch(&self, domain: &DomainName) -> Result<Fetched, FetchError> {
        let outcome = {
            let mut s = lock(&self.script);
            *s.fetches.entry(domain.clone()).or_default() += 1;
            s.outcomes
                .get(domain)
                .cloned()
                .unwrap_or(Err(FetchError::Status(404)))
        };
        self.fetched.notify_waiters();
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|o| *o).await;
        let text = outcome?;
        Ok(Fetched {
            parsed: Policy::parse(&text).map_err(FetchError::Invalid)?,
            peer: SocketAddr::from(([192, 0, 2, 1], 443)),
            tls_version: "TLSv1_3".into(),
        })
    }
}
