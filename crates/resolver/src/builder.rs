//! Assembling a resolver: the DNS and fetch seams, the store, the clock and the settings, by
//! name instead of by position; [`NetEndpoints`] builds the real-network seams.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mtasts_store::AnyStore;

use crate::NetResolver;
use crate::clock::{Clock, SystemClock};
use crate::dns::{Dns, DnsError, HickoryDns};
use crate::fetch::{Fetch, FetchSettings, HttpsFetcher, TrustError, client_config};
use crate::resolver::{Resolver, ResolverSettings};
use crate::trust::TrustHandle;

/// A [`Resolver`] in the making: `Resolver::builder(dns, fetch).store(s).build()`.
pub struct ResolverBuilder<D, F> {
    dns: Arc<D>,
    fetch: F,
    store: Option<AnyStore>,
    clock: Arc<dyn Clock>,
    settings: ResolverSettings,
    failure_sink: Option<Arc<dyn crate::events::FailureSink>>,
}

impl<D, F> std::fmt::Debug for ResolverBuilder<D, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolverBuilder")
            .field("store", &self.store.as_ref().map(AnyStore::kind))
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<D: Dns, F: Fetch> Resolver<D, F> {
    /// Starts a resolver over these DNS and fetch seams: memory cache only, the system clock,
    /// default settings until said otherwise.
    pub fn builder(dns: Arc<D>, fetch: F) -> ResolverBuilder<D, F> {
        ResolverBuilder {
            dns,
            fetch,
            store: None,
            clock: Arc::new(SystemClock),
            settings: ResolverSettings::default(),
            failure_sink: None,
        }
    }
}

impl<D: Dns, F: Fetch> ResolverBuilder<D, F> {
    /// The backing store behind the memory tier.
    pub fn store(mut self, store: AnyStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock (tests: a [`crate::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Cache rules, memory bound and refresh.
    pub fn settings(mut self, settings: ResolverSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The resolver.
    /// Reports failed fetches to `sink` (TLS-RPT events).
    pub fn failure_sink(mut self, sink: Arc<dyn crate::events::FailureSink>) -> Self {
        self.failure_sink = Some(sink);
        self
    }

    /// The resolver.
    pub fn build(self) -> Resolver<D, F> {
        Resolver::with_sink(
            self.dns,
            self.fetch,
            self.store,
            self.clock,
            self.settings,
            self.failure_sink,
        )
    }
}

/// Where and how the real resolver reaches DNS and policy hosts.
#[derive(Debug, Clone)]
pub struct NetEndpoints {
    /// DNS server; `None`: the servers of /etc/resolv.conf.
    pub nameserver: Option<SocketAddr>,
    /// Extra trusted CA certificates (PEM) for policy hosts, added to the web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Per DNS query.
    pub dns_timeout: Duration,
    /// Per policy fetch, in total (FETCH-07).
    pub fetch_timeout: Duration,
    /// Connect to other addresses than DNS says (the lab's ephemeral ports).
    pub connect_map: HashMap<SocketAddr, SocketAddr>,
    /// Conditional trust for some policy domains (replaced on reload through the handle).
    pub trust: TrustHandle,
}

impl Default for NetEndpoints {
    fn default() -> Self {
        Self {
            nameserver: None,
            ca_file: None,
            dns_timeout: Duration::from_secs(5),
            fetch_timeout: FetchSettings::default().total_timeout,
            connect_map: HashMap::new(),
            trust: TrustHandle::default(),
        }
    }
}

/// Why the real-network seams could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    #[error("setting up DNS")]
    /// DNS could not be set up.
    Dns(#[source] DnsError),
    #[error("setting up the trust for policy hosts")]
    /// The CA file could not be read.
    Trust(#[from] TrustError),
}

impl NetEndpoints {
    /// A builder over hickory DNS and the HTTPS fetcher for these endpoints.
    pub fn builder(
        &self,
    ) -> Result<ResolverBuilder<HickoryDns, HttpsFetcher<HickoryDns>>, EndpointError> {
        let dns = Arc::new(
            HickoryDns::new(self.nameserver, self.dns_timeout).map_err(EndpointError::Dns)?,
        );
        let fetch = HttpsFetcher::new(
            dns.clone(),
            client_config(self.ca_file.as_deref())?,
            FetchSettings {
                total_timeout: self.fetch_timeout,
                connect_map: self.connect_map.clone(),
                ..FetchSettings::default()
            },
        )
        .with_trust(self.trust.clone());
        Ok(Resolver::builder(dns, fetch))
    }

    /// The real resolver with `store` and `settings`.
    pub fn resolver(
        &self,
        store: Option<AnyStore>,
        settings: ResolverSettings,
    ) -> Result<NetResolver, EndpointError> {
        let builder = self.builder()?.settings(settings);
        Ok(match store {
            Some(s) => builder.store(s),
            None => builder,
        }
        .build())
    }
}
