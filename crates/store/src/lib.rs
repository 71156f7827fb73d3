//! Policy cache backends. One interface, [`Store`], three backends:
//!
//! - [`MemoryStore`]: bounded LRU, the hot tier in front of the others;
//! - [`SqliteStore`]: the embedded default, a file that survives restarts and `kill -9`;
//! - [`RedisStore`]: shared by a fleet of MTAs, with a per-domain refresh lock.
//!
//! [`AnyStore`] picks one at run time from a URL-like spec (`memory`, `sqlite:PATH`,
//! `redis://…`).
#![warn(missing_docs)]

mod entry;
mod memory;
mod redis_store;
pub mod remember;
mod reopen;
mod slab_lru;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

pub use entry::{decode, encode};
pub use memory::MemoryStore;
use std::path::PathBuf;

use mtasts_core::{DomainName, DomainState, UnixTime};
pub use redis_store::RedisStore;
pub use reopen::ReopeningSqlite;
pub use sqlite::SqliteStore;

/// The default SQLite cache file when `--cache sqlite:` names no path.
pub const DEFAULT_SQLITE_PATH: &str = "/var/lib/mtasts/cache.sqlite3";

/// Why a store operation failed. Callers log and count these; a lookup never turns one into a
/// wrong answer. The cause is kept as the error's source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cache spec `{0}`: expected `memory`, `sqlite:PATH` or `redis://…`/`rediss://…`")]
    /// Not `memory`, `sqlite:PATH` or a Redis URL.
    BadSpec(String),
    #[error("SQLite {}", path.display())]
    /// A SQLite operation failed.
    Sqlite {
        /// The database file.
        path: PathBuf,
        #[source]
        /// Why.
        source: rusqlite::Error,
    },
    #[error("SQLite {}: creating {}", path.display(), dir.display())]
    /// The database's directory could not be created.
    CreateDir {
        /// The database file.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    /// An unreadable database file could not be moved aside.
    #[error("SQLite {}: moving the unreadable file aside to {}", path.display(), to.display())]
    MoveAside {
        /// The database file.
        path: PathBuf,
        /// Where it was to go.
        to: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    #[error("SQLite {}: integrity check reports `{report}`", path.display())]
    /// SQLite's integrity check failed.
    Integrity {
        /// The database file.
        path: PathBuf,
        /// What the check said.
        report: String,
    },
    #[error("SQLite {}: not open yet (it could not be opened; tried again at most every {every:?})", path.display())]
    /// A cache that could not be opened, between attempts to open it.
    NotOpenYet {
        /// The database file.
        path: PathBuf,
        /// How often it is tried.
        every: Duration,
    },
    #[error("SQLite: the connection lock is poisoned (an earlier operation panicked)")]
    /// An earlier operation panicked while holding the connection.
    Poisoned,
    #[error("SQLite: the blocking task failed")]
    /// The blocking task running the operation failed.
    Task(#[source] tokio::task::JoinError),
    #[error("Redis URL `{url}`")]
    /// The Redis URL is invalid.
    RedisUrl {
        /// The URL.
        url: String,
        #[source]
        /// Why.
        source: redis::RedisError,
    },
    #[error("Redis")]
    /// A Redis operation failed.
    Redis(#[source] redis::RedisError),
    #[error("Redis: operation timed out")]
    /// A Redis operation took too long.
    RedisTimeout,
    #[error("Redis unreachable (retrying in the background)")]
    /// Redis cannot be reached now.
    Unavailable(#[source] Unreachable),
    #[error("encoding a cache entry")]
    /// An entry could not be encoded.
    Encode(#[source] serde_json::Error),
    #[error("decoding a cache entry")]
    /// A stored entry is not valid JSON of the entry shape.
    Decode(#[source] serde_json::Error),
    #[error("decoding a cache entry: entry version {found} (expected {expected})")]
    /// A stored entry of another format version.
    Version {
        /// Its version.
        found: u8,
        /// This version's.
        expected: u8,
    },
    #[error("decoding a cache entry: the stored policy no longer parses")]
    /// The stored policy text no longer parses.
    StoredPolicy(#[source] mtasts_core::PolicyErrors),
    #[error("decoding a cache entry: unknown fetch failure `{0}`")]
    /// A stored fetch failure of an unknown kind.
    UnknownFailure(String),
}

/// Why Redis could not be reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unreachable {
    #[error("reconnect backing off")]
    /// The last attempt was too recent; not retried yet.
    BackingOff,
    #[error("connect timed out")]
    /// Connecting took too long.
    ConnectTimeout,
    #[error("connect failed")]
    /// Connecting failed.
    Connect(#[source] redis::RedisError),
}

/// What the store needs to know beyond the state itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryMeta {
    /// When a background refresh of this entry is due (None: nothing to refresh).
    pub refresh_at: Option<UnixTime>,
    /// When the entry is useless and may be dropped (Redis expiry).
    pub expires_at: UnixTime,
}

/// A policy cache.
pub trait Store: Send + Sync {
    /// The state of `domain`, if stored.
    fn get(
        &self,
        domain: &DomainName,
    ) -> impl Future<Output = Result<Option<Arc<DomainState>>, StoreError>> + Send;

    /// Stores the state of `domain`.
    fn put(
        &self,
        domain: &DomainName,
        state: Arc<DomainState>,
        meta: EntryMeta,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` domains whose refresh is due at or before `now`, earliest first.
    fn due(
        &self,
        now: UnixTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DomainName>, StoreError>> + Send;

    /// Takes the refresh lock of `domain` for `ttl` (so one host of a fleet refreshes it).
    /// Single-host backends keep the default: always granted.
    fn try_lock(
        &self,
        domain: &DomainName,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (domain, ttl);
        async { Ok(true) }
    }

    /// Releases a lock taken with [`Store::try_lock`].
    fn unlock(&self, domain: &DomainName) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = domain;
        async { Ok(()) }
    }

    /// Drops entries whose `expires_at` has passed, at most `limit` per call; how many went
    /// (default: nothing to do, the backend expires entries itself).
    fn prune(
        &self,
        now: UnixTime,
        limit: usize,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = (now, limit);
        async { Ok(0) }
    }

    /// Makes everything written so far durable (default: nothing to do).
    fn flush(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// A store chosen at run time.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// Memory only.
    Memory(Arc<MemoryStore>),
    /// A SQLite file.
    Sqlite(Arc<SqliteStore>),
    /// A SQLite file that could not be opened at start, opened again on use.
    ReopeningSqlite(Arc<ReopeningSqlite>),
    /// A Redis server.
    Redis(Arc<RedisStore>),
}

/// Which store to open: `memory`, `sqlite:PATH` (`sqlite:` alone: the default path) or a
/// `redis://` / `rediss://` URL. Parsed once, where the text is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSpec {
    /// Memory only.
    Memory,
    /// `None`: [`DEFAULT_SQLITE_PATH`] unless the caller chooses another default.
    Sqlite(Option<PathBuf>),
    /// A Redis URL.
    Redis(String),
}

impl std::str::FromStr for CacheSpec {
    type Err = StoreError;
    fn from_str(spec: &str) -> Result<Self, StoreError> {
        if spec == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(path) = spec.strip_prefix("sqlite:") {
            return Ok(Self::Sqlite(
                (!path.is_empty()).then(|| PathBuf::from(path)),
            ));
        }
        if spec.starts_with("redis://") || spec.starts_with("rediss://") {
            return Ok(Self::Redis(spec.to_string()));
        }
        Err(StoreError::BadSpec(spec.to_string()))
    }
}

impl std::fmt::Display for CacheSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Sqlite(None) => f.write_str("sqlite:"),
            Self::Sqlite(Some(p)) => write!(f, "sqlite:{}", p.display()),
            Self::Redis(url) => f.write_str(url),
        }
    }
}

impl AnyStore {
    /// Opens a store from its spec text (see [`CacheSpec`]). `memory_capacity` bounds the
    /// memory backend.
    pub async fn open(spec: &str, memory_capacity: usize) -> Result<Self, StoreError> {
        Self::open_spec(&spec.parse()?, memory_capacity).await
    }

    /// Opens the store `spec` names.
    pub async fn open_spec(spec: &CacheSpec, memory_capacity: usize) -> Result<Self, StoreError> {
        Ok(match spec {
            CacheSpec::Memory => Self::Memory(Arc::new(MemoryStore::new(memory_capacity))),
            CacheSpec::Sqlite(path) => {
                let path = path
                    .as_deref()
                    .unwrap_or_else(|| std::path::Path::new(DEFAULT_SQLITE_PATH));
                Self::Sqlite(Arc::new(SqliteStore::open(path).await?))
            }
            CacheSpec::Redis(url) => Self::Redis(Arc::new(RedisStore::new(url)?)),
        })
    }

    /// Short name of the backend for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Sqlite(_) | Self::ReopeningSqlite(_) => "sqlite",
            Self::Redis(_) => "redis",
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Memory($s) => $e,
            AnyStore::Sqlite($s) => $e,
            AnyStore::ReopeningSqlite($s) => $e,
            AnyStore::Redis($s) => $e,
        }
    };
}

impl Store for AnyStore {
    async fn get(&self, domain: &DomainName) -> Result<Option<Arc<DomainState>>, StoreError> {
        dispatch!(self, s => s.get(domain).await)
    }
    async fn put(
        &self,
        domain: &DomainName,
        state: Arc<DomainState>,
        meta: EntryMeta,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.put(domain, state, meta).await)
    }
    async fn due(&self, now: UnixTime, limit: usize) -> Result<Vec<DomainName>, StoreError> {
        dispatch!(self, s => s.due(now, limit).await)
    }
    async fn try_lock(&self, domain: &DomainName, ttl: Duration) -> Result<bool, StoreError> {
        dispatch!(self, s => s.try_lock(domain, ttl).await)
    }
    async fn unlock(&self, domain: &DomainName) -> Result<(), StoreError> {
        dispatch!(self, s => s.unlock(domain).await)
    }
    async fn prune(&self, now: UnixTime, limit: usize) -> Result<u64, StoreError> {
        dispatch!(self, s => s.prune(now, limit).await)
    }
    async fn flush(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.flush().await)
    }
}
