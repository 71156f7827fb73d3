//! Redis store for a fleet of MTAs sharing one cache. Entries expire with their policy; a
//! sorted set orders refreshes; `SET NX PX` locks let one host refresh a domain at a time.
//! Redis being down is an error the caller logs and counts; reconnects are retried at most
//! once per second so a dead Redis costs no latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mtasts_core::{DomainName, DomainState, UnixTime};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use std::sync::Arc;

use crate::{EntryMeta, Store, StoreError, Unreachable, decode, encode};

const PREFIX: &str = "mtasts:v1";
const OP_TIMEOUT: Duration = Duration::from_millis(500);
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// A Redis-backed store.
pub struct RedisStore {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    last_attempt: std::sync::Mutex<Option<Instant>>,
    owner: String,
    errors: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("owner", &self.owner)
            .field("errors", &self.errors())
            .finish()
    }
}

fn state_key(d: &DomainName) -> String {
    format!("{PREFIX}:state:{d}")
}
fn lock_key(d: &DomainName) -> String {
    format!("{PREFIX}:lock:{d}")
}
fn refresh_key() -> String {
    format!("{PREFIX}:refresh")
}

impl RedisStore {
    /// A store for `url` (`redis://…`, or `rediss://…` for TLS). Connects lazily.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|source| StoreError::RedisUrl {
            url: url.to_string(),
            source,
        })?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Ok(Self {
            client,
            conn: tokio::sync::Mutex::new(None),
            last_attempt: std::sync::Mutex::new(None),
            owner: format!("{}-{nanos}", std::process::id()),
            errors: AtomicU64::new(0),
        })
    }

    /// Operations that failed since start (for metrics).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    async fn conn(&self) -> Result<MultiplexedConnection, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        if let Ok(mut last) = self.last_attempt.lock() {
            if last.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
                return Err(StoreError::Unavailable(Unreachable::BackingOff));
            }
            *last = Some(Instant::now());
        }
        let c = tokio::time::timeout(OP_TIMEOUT, self.client.get_multiplexed_async_connection())
            .await
            .map_err(|_| StoreError::Unavailable(Unreachable::ConnectTimeout))?
            .map_err(|e| StoreError::Unavailable(Unreachable::Connect(e)))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Runs one operation with a timeout; on failure drops the connection and counts it.
    async fn op<T, F>(&self, f: impl FnOnce(MultiplexedConnection) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let result = match self.conn().await {
            Ok(c) => match tokio::time::timeout(OP_TIMEOUT, f(c)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => StoreError::Redis(e),
                Err(_) => StoreError::RedisTimeout,
            },
            Err(e) => e,
        };
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.conn.lock().await = None;
        Err(result)
    }
}

impl Store for RedisStore {
    async fn get(&self, domain: &DomainName) -> Result<Option<Arc<DomainState>>, StoreError> {
        let key = state_key(domain);
        let text: Option<String> = self.op(|mut c| async move { c.get(key).await }).await?;
        text.map(|t| decode(&t).map(Arc::new)).transpose()
    }

    async fn put(
        &self,
        domain: &DomainName,
        state: Arc<DomainState>,
        meta: EntryMeta,
    ) -> Result<(), StoreError> {
        let text = encode(&state)?;
        let key = state_key(domain);
        let member = domain.to_string();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Redis rejects an expiry in the past; keep such an entry for a minute.
        let expires_ms = meta.expires_at.max(now + 60).saturating_mul(1000);
        self.op(|mut c| async move {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("SET")
                .arg(&key)
                .arg(text)
                .arg("PXAT")
                .arg(expires_ms)
                .ignore();
            match meta.refresh_at {
                Some(at) => pipe.zadd(refresh_key(), &member, at).ignore(),
                None => pipe.zrem(refresh_key(), &member).ignore(),
            };
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    async fn due(&self, now: UnixTime, limit: usize) -> Result<Vec<DomainName>, StoreError> {
        let limit = isize::try_from(limit).unwrap_or(isize::MAX);
        let names: Vec<String> = self
            .op(|mut c| async move {
                c.zrangebyscore_limit(refresh_key(), "-inf", now, 0, limit)
                    .await
            })
            .await?;
        Ok(names
            .iter()
            .filter_map(|n| DomainName::parse(n).ok())
            .collect())
    }

    async fn try_lock(&self, domain: &DomainName, ttl: Duration) -> Result<bool, StoreError> {
        let key = lock_key(domain);
        let owner = self.owner.clone();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply: Option<String> = self
            .op(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(reply.is_some())
    }

    async fn unlock(&self, domain: &DomainName) -> Result<(), StoreError> {
        // Delete only our own lock: it may have expired and been taken by another host.
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
        );
        let key = lock_key(domain);
        let owner = self.owner.clone();
        self.op(|mut c| async move {
            script
                .key(key)
                .arg(owner)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
        .await
    }
}
