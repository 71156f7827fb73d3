//! Remembered TLS beside the policy cache: one row (SQLite table `remembered_tls`, in the
//! cache's file) or one hash field (Redis `mtasts:remembered-tls`, shared by a fleet) per
//! domain, holding its [`Memory`] as JSON. The learners (the Postfix log follower, the
//! TLS-RPT collector) write it; the daemon reads all of it periodically.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtasts_core::remember::Memory;
use redis::AsyncCommands;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{CacheSpec, StoreError};

const REDIS_KEY: &str = "mtasts:remembered-tls";
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// Where memories are kept.
#[derive(Clone)]
pub enum Remembered {
    /// A table in the cache's SQLite file.
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Its connection.
        conn: Arc<Mutex<Connection>>,
    },
    /// A hash in the cache's Redis.
    Redis(redis::Client),
}

impl std::fmt::Debug for Remembered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remembered::Sqlite { path, .. } => write!(f, "Remembered(sqlite:{})", path.display()),
            Remembered::Redis(_) => write!(f, "Remembered(redis)"),
        }
    }
}

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

fn decode(text: &str) -> Result<Memory, StoreError> {
    serde_json::from_str(text).map_err(StoreError::Decode)
}

impl Remembered {
    /// Opens the memory of the cache `spec` (`None` for `memory`: nothing to keep it in).
    pub async fn open(spec: &CacheSpec) -> Result<Option<Self>, StoreError> {
        match spec {
            CacheSpec::Memory => Ok(None),
            CacheSpec::Sqlite(path) => {
                let path = path
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_SQLITE_PATH));
                let p = path.clone();
                let conn = tokio::task::spawn_blocking(move || open_sqlite(&p))
                    .await
                    .map_err(StoreError::Task)??;
                Ok(Some(Remembered::Sqlite {
                    path,
                    conn: Arc::new(Mutex::new(conn)),
                }))
            }
            CacheSpec::Redis(url) => redis::Client::open(url.as_str())
                .map(|c| Some(Remembered::Redis(c)))
                .map_err(|source| StoreError::RedisUrl {
                    url: url.clone(),
                    source,
                }),
        }
    }

    async fn sqlite<T: Send + 'static>(
        path: &Path,
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&mut Connection, &Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (conn, path) = (conn.clone(), path.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().map_err(|_| StoreError::Poisoned)?;
            f(&mut c, &path)
        })
        .await
        .map_err(StoreError::Task)?
    }

    async fn redis(
        client: &redis::Client,
    ) -> Result<redis::aio::MultiplexedConnection, StoreError> {
        tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| StoreError::RedisTimeout)?
            .map_err(StoreError::Redis)
    }

    /// Every domain's memory.
    pub async fn all(&self) -> Result<Vec<(String, Memory)>, StoreError> {
        let rows: Vec<(String, String)> = match self {
            Remembered::Sqlite { path, conn } => {
                Self::sqlite(path, conn, |c, p| {
                    let mut st = c
                        .prepare("SELECT domain, memory FROM remembered_tls ORDER BY domain")
                        .map_err(sqlite_err(p))?;
                    let rows = st
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                        .map_err(sqlite_err(p))?;
                    rows.collect::<Result<Vec<_>, _>>().map_err(sqlite_err(p))
                })
                .await?
            }
            Remembered::Redis(client) => {
                let mut c = Self::redis(client).await?;
                let mut v: Vec<(String, String)> =
                    tokio::time::timeout(REDIS_TIMEOUT, c.hgetall(REDIS_KEY))
                        .await
                        .map_err(|_| StoreError::RedisTimeout)?
                        .map_err(StoreError::Redis)?;
                v.sort();
                v
            }
        };
        rows.into_iter()
            .map(|(d, m)| decode(&m).map(|m| (d, m)))
            .collect()
    }

    /// Changes `domain`'s memory with `f` (starting from an empty one), stores it, and returns
    /// what `f` returned. SQLite does it in one transaction; Redis reads and writes (two
    /// learners changing one domain at once may lose one observation).
    pub async fn update<R: Send + 'static>(
        &self,
        domain: &str,
        f: impl FnOnce(&mut Memory) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let domain = domain.to_string();
        match self {
            Remembered::Sqlite { path, conn } => {
                Self::sqlite(path, conn, move |c, p| {
                    let tx = c
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .map_err(sqlite_err(p))?;
                    let old: Option<String> = tx
                        .query_row(
                            "SELECT memory FROM remembered_tls WHERE domain = ?1",
                            params![domain],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(sqlite_err(p))?;
                    let mut m = old.as_deref().map(decode).transpose()?.unwrap_or_default();
                    let out = f(&mut m);
                    let text = serde_json::to_string(&m).map_err(StoreError::Encode)?;
                    tx.execute(
                        "INSERT INTO remembered_tls (domain, memory) VALUES (?1, ?2)
                         ON CONFLICT(domain) DO UPDATE SET memory = excluded.memory",
                        params![domain, text],
                    )
                    .map_err(sqlite_err(p))?;
                    tx.commit().map_err(sqlite_err(p))?;
                    Ok(out)
                })
                .await
            }
            Remembered::Redis(client) => {
                let mut c = Self::redis(client).await?;
                let old: Option<String> =
                    tokio::time::timeout(REDIS_TIMEOUT, c.hget(REDIS_KEY, &domain))
                        .await
                        .map_err(|_| StoreError::RedisTimeout)?
                        .map_err(StoreError::Redis)?;
                let mut m = old.as_deref().map(decode).transpose()?.unwrap_or_default();
                let out = f(&mut m);
                let text = serde_json::to_string(&m).map_err(StoreError::Encode)?;
                let () = tokio::time::timeout(REDIS_TIMEOUT, c.hset(REDIS_KEY, &domain, text))
                    .await
                    .map_err(|_| StoreError::RedisTimeout)?
                    .map_err(StoreError::Redis)?;
                Ok(out)
            }
        }
    }

    /// Forgets `domain`; whether it was there.
    pub async fn forget(&self, domain: &str) -> Result<bool, StoreError> {
        let domain = domain.to_string();
        match self {
            Remembered::Sqlite { path, conn } => {
                Self::sqlite(path, conn, move |c, p| {
                    c.execute(
                        "DELETE FROM remembered_tls WHERE domain = ?1",
                        params![domain],
                    )
                    .map(|n| n > 0)
                    .map_err(sqlite_err(p))
                })
                .await
            }
            Remembered::Redis(client) => {
                let mut c = Self::redis(client).await?;
                let n: u64 = tokio::time::timeout(REDIS_TIMEOUT, c.hdel(REDIS_KEY, &domain))
                    .await
                    .map_err(|_| StoreError::RedisTimeout)?
                    .map_err(StoreError::Redis)?;
                Ok(n > 0)
            }
        }
    }
}

/// The cache file, with the memories' table beside the cache's.
fn open_sqlite(path: &Path) -> Result<Connection, StoreError> {
    let conn = crate::sqlite::SqliteStore::open_blocking(path)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS remembered_tls (
             domain TEXT PRIMARY KEY,
             memory TEXT NOT NULL
         );",
    )
    .map_err(sqlite_err(path))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtasts_core::remember::{Rule, Seen};

    #[tokio::test]
    async fn memories_survive_a_reopen_and_forget_removes_them() {
        let dir = std::env::temp_dir().join(format!("mtasts-remembered-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spec = CacheSpec::Sqlite(Some(dir.join("cache.sqlite3")));
        let r = Remembered::open(&spec)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("sqlite"));
        for i in 0..3 {
            r.update("a.example", move |m| {
                m.observe(Seen::Tls, 1000 + i, &Rule::default())
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
        drop(r);
        let r = Remembered::open(&spec)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("sqlite"));
        let all = r.all().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.tls_deliveries, 3);
        assert!(r.forget("a.example").await.unwrap_or(false));
        assert!(!r.forget("a.example").await.unwrap_or(true));
        assert!(r.all().await.unwrap_or_default().is_empty());
        assert!(
            Remembered::open(&CacheSpec::Memory)
                .await
                .is_ok_and(|r| r.is_none())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
