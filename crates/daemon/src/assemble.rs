//! The daemon put together from its configuration: cache, resolver, DANE, listeners, the HTTP
//! listener and the refresher. The binary only parses flags, handles signals and calls this.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mtasts_resolver::{
    DaneResolver, DaneSettings, DnssecClient, EndpointError, HickoryDns, HttpsFetcher,
    NetEndpoints, NoValidatingResolver, TrustHandle,
};
use mtasts_store::{AnyStore, CacheSpec, SqliteStore, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::server::{Listener, Server, ServerError, bind};

/// The server over the real network.
pub type NetServer = Server<HickoryDns, HttpsFetcher<HickoryDns>>;

/// What the binary passes besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Connect to other addresses than DNS says (testing: the lab's ephemeral ports).
    pub connect_map: HashMap<SocketAddr, SocketAddr>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("opening the cache `{spec}`")]
    /// The cache could not be opened.
    Store {
        /// The cache spec.
        spec: String,
        #[source]
        /// Why.
        source: StoreError,
    },
    #[error("setting up the resolver")]
    /// DNS or the trust for policy hosts could not be set up.
    Endpoints(#[from] EndpointError),
    #[error("setting up conditional trust")]
    /// A `[[trust]]` rule could not be set up.
    Trust(#[source] crate::load::ConfigError),
    #[error(
        "DANE checks need a validating resolver (set dane_nameserver, or dane = false in the zones)"
    )]
    /// DANE is on but no validating resolver could be chosen.
    Dane(#[source] NoValidatingResolver),
    #[error(transparent)]
    /// A listener could not be bound.
    Listen(#[from] ServerError),
    #[error("the TLS-RPT event socket {}", path.display())]
    /// The socket for policy failure events could not be set up.
    TlsrptSocket {
        /// The socket's path.
        path: PathBuf,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("metrics listener {addr}")]
    /// The HTTP listener could not be bound.
    Metrics {
        /// Its address.
        addr: SocketAddr,
        #[source]
        /// Why.
        source: std::io::Error,
    },
}

/// A daemon ready to serve: everything bound and opened, nothing running yet.
#[derive(Debug)]
pub struct Daemon {
    server: Arc<NetServer>,
    listeners: Vec<Listener>,
    metrics: Option<TcpListener>,
    exim: Vec<Listener>,
    cache: CacheSpec,
}

/// The embedded default cache file: /var/lib/mtasts for root, ~/.local/state/mtasts otherwise.
pub fn default_sqlite_path() -> PathBuf {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    match std::env::var_os("HOME") {
        Some(home) if !is_root => PathBuf::from(home).join(".local/state/mtasts/cache.sqlite3"),
        _ => PathBuf::from(mtasts_store::DEFAULT_SQLITE_PATH),
    }
}

/// The configured cache. A SQLite file that cannot be read as a database is moved aside and
/// a fresh one started; one that cannot be opened at all (full or read-only disk, no
/// directory) leaves the daemon on its memory tier — a policy daemon that does not start
/// makes Postfix defer everything. The second value says whether that fallback happened.
/// How often a SQLite cache that could not be opened at start is tried again.
pub const REOPEN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

async fn open_store(config: &Config) -> Result<(Option<AnyStore>, bool), StartError> {
    let CacheSpec::Sqlite(Some(path)) = &config.cache else {
        let store = AnyStore::open_spec(&config.cache, config.resolver.memory_capacity)
            .await
            .map_err(|source| StartError::Store {
                spec: config.cache.to_string(),
                source,
            })?;
        return Ok((Some(store), false));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match SqliteStore::open_or_recover(path, now).await {
        Ok((store, aside)) => {
            if let Some(aside) = &aside {
                tracing::error!(cache = %path.display(), moved_to = %aside.display(), "the SQLite cache was not a readable database; moved it aside and started a fresh one");
            }
            Ok((Some(AnyStore::Sqlite(Arc::new(store))), aside.is_some()))
        }
        Err(e) => {
            tracing::error!(cache = %path.display(), error = %mtasts_core::errors::Chain(&e), every = ?REOPEN_INTERVAL, "the SQLite cache cannot be opened; answering from the memory tier and trying to open it again (what is looked up meanwhile is written once it opens)");
            let reopening = mtasts_store::ReopeningSqlite::new(path, REOPEN_INTERVAL);
            Ok((Some(AnyStore::ReopeningSqlite(Arc::new(reopening))), true))
        }
    }
}

impl Daemon {
    /// Opens the cache, builds the resolver and DANE checks, binds the listeners (or takes
    /// systemd's) and the HTTP listener. `sqlite:` without a path becomes
    /// [`default_sqlite_path`].
    pub async fn from_config(mut config: Config, options: Options) -> Result<Self, StartError> {
        if config.cache == CacheSpec::Sqlite(None) {
            config.cache = CacheSpec::Sqlite(Some(default_sqlite_path()));
        }
        let (store, fallback) = open_store(&config).await?;
        let trust = TrustHandle::new(config.trust_table().map_err(StartError::Trust)?);
        let endpoints = NetEndpoints {
            nameserver: config.nameserver,
            ca_file: config.ca_file.clone(),
            dns_timeout: config.resolver.dns_timeout,
            fetch_timeout: config.resolver.fetch_timeout,
            connect_map: options.connect_map,
            trust: trust.clone(),
        };
        let mut builder = endpoints.builder()?.settings(config.resolver_settings());
        if let Some(store) = store {
            builder = builder.store(store);
        }
        if let Some(path) = &config.tlsrpt_socket {
            let sink = mtasts_resolver::events::DatagramSink::new(path).map_err(|source| {
                StartError::TlsrptSocket {
                    path: path.clone(),
                    source,
                }
            })?;
            builder = builder.failure_sink(Arc::new(sink));
        }
        let resolver = builder.build();
        let dane =
            if config.postfix_dnssec.dane_answers() && config.named_zones().any(|(_, z)| z.dane) {
                let client = DnssecClient::new(
                    config.dane_nameserver.or(config.nameserver),
                    config.resolver.dns_timeout,
                )
                .map_err(StartError::Dane)?;
                Some(DaneResolver::new(client, DaneSettings::default()))
            } else {
                None
            };
        let listeners = bind(&config).await?;
        let exim = crate::server::bind_addrs(&config.exim_listen, &config.unix_socket).await?;
        let metrics = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Metrics { addr, source })?,
            ),
            None => None,
        };
        let cache = config.cache.clone();
        let server = Server::with_trust(resolver, dane, config, trust);
        if fallback {
            server.counters().store_fallbacks.inc();
        }
        Ok(Self {
            server,
            listeners,
            metrics,
            exim,
            cache,
        })
    }

    /// The server, for reloads and counters.
    pub fn server(&self) -> &Arc<NetServer> {
        &self.server
    }

    /// Where it listens, for the ready line.
    pub fn listening(&self) -> Vec<String> {
        self.listeners.iter().map(Listener::describe).collect()
    }

    /// Where it answers Exim, for the ready line.
    pub fn exim_listening(&self) -> Vec<String> {
        self.exim.iter().map(Listener::describe).collect()
    }

    /// The HTTP listener's address, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The cache it opened.
    pub fn cache(&self) -> &CacheSpec {
        &self.cache
    }

    /// Serves until `shutdown` turns true, then lets open connections finish within
    /// `shutdown_timeout`, stops the refresher and flushes the cache.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        // Always (but for a memory cache): a reload may turn remember_tls on.
        if self.cache != CacheSpec::Memory {
            tokio::spawn(load_remembered(
                self.server.clone(),
                self.cache.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(l) = self.metrics {
            tokio::spawn(crate::metrics::serve_on(
                l,
                self.server.clone(),
                shutdown.clone(),
            ));
        }
        let mut exim_sockets = Vec::new();
        for l in self.exim {
            if let Listener::Unix(_, path) = &l {
                exim_sockets.push(path.clone());
            }
            tokio::spawn(crate::exim::serve(self.server.clone(), l, shutdown.clone()));
        }
        let refresher = self.server.resolver().spawn_refresher();
        let grace: Duration = self.server.config().shutdown_timeout;
        self.server
            .clone()
            .run(self.listeners, shutdown, grace)
            .await;
        if let Some(r) = refresher {
            r.abort();
        }
        for path in exim_sockets {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Reads the remembered-TLS memories the learners write, now and every
/// `remember.reload_interval`, until shutdown; a store that cannot be opened or read is tried
/// again at the next turn (the memories already read stay in force).
async fn load_remembered(
    server: Arc<NetServer>,
    cache: CacheSpec,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut store: Option<mtasts_store::remember::Remembered> = None;
    loop {
        let wanted = server
            .config()
            .named_zones()
            .any(|(_, z)| z.remember_tls != mtasts_core::decision::RememberMode::Off);
        if !wanted {
            // Nothing asks for the memories: read none (and forget those read before).
            server.set_remembered(std::collections::HashMap::new());
        } else if store.is_none() {
            match mtasts_store::remember::Remembered::open(&cache).await {
                Ok(s) => store = s,
                Err(e) => {
                    tracing::error!(cache = %cache, error = %mtasts_core::errors::Chain(&e), "remembered TLS: cannot open the memories; trying again");
                }
            }
        }
        if let Some(s) = store.as_ref().filter(|_| wanted) {
            match s.all().await {
                Ok(all) => {
                    let n = all.len();
                    server.set_remembered(all.into_iter().collect());
                    tracing::debug!(domains = n, "remembered TLS: memories read");
                }
                Err(e) => {
                    tracing::error!(cache = %cache, error = %mtasts_core::errors::Chain(&e), "remembered TLS: reading the memories failed; keeping the last ones");
                }
            }
        }
        let every = server.config().remember.reload_interval;
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
