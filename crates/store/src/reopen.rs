//! A SQLite cache that could not be opened when the daemon started (a missing or read-only
//! directory, a full disk): every use tries to open it again, at most once per interval,
//! until it opens. Until then each operation fails as unavailable, so the resolver answers from
//! its memory tier and keeps the entries it could not write; its retry of unsaved entries
//! writes them once the file opens. No restart needed once the disk is fixed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mtasts_core::{DomainName, DomainState, UnixTime};

use crate::{EntryMeta, SqliteStore, Store, StoreError};

/// See the module docs.
#[derive(Debug)]
pub struct ReopeningSqlite {
    path: PathBuf,
    interval: Duration,
    store: OnceLock<Arc<SqliteStore>>,
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl ReopeningSqlite {
    /// Not open yet; the first use tries, then at most one attempt per `interval`.
    pub fn new(path: impl AsRef<Path>, interval: Duration) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            interval,
            store: OnceLock::new(),
            last_attempt: tokio::sync::Mutex::new(None),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it has opened.
    pub fn is_open(&self) -> bool {
        self.store.get().is_some()
    }

    async fn store(&self) -> Result<&Arc<SqliteStore>, StoreError> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let mut last = self.last_attempt.lock().await;
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        if last.is_some_and(|t| t.elapsed() < self.interval) {
            return Err(StoreError::NotOpenYet {
                path: self.path.clone(),
                every: self.interval,
            });
        }
        *last = Some(Instant::now());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (store, aside) = SqliteStore::open_or_recover(&self.path, now).await?;
        if let Some(aside) = aside {
            tracing::error!(cache = %self.path.display(), moved_to = %aside.display(), "the SQLite cache was not a readable database; moved it aside and started a fresh one");
        }
        tracing::warn!(cache = %self.path.display(), "the SQLite cache opened; entries kept in memory meanwhile are written to it");
        Ok(self.store.get_or_init(|| Arc::new(store)))
    }
}

impl Store for ReopeningSqlite {
    async fn get(&self, domain: &DomainName) -> Result<Option<Arc<DomainState>>, StoreError> {
        self.store().await?.get(domain).await
    }
    async fn put(
        &self,
        domain: &DomainName,
        state: Arc<DomainState>,
        meta: EntryMeta,
    ) -> Result<(), StoreError> {
        self.store().await?.put(domain, state, meta).await
    }
    async fn due(&self, now: UnixTime, limit: usize) -> Result<Vec<DomainName>, StoreError> {
        self.store().await?.due(now, limit).await
    }
    async fn prune(&self, now: UnixTime, limit: usize) -> Result<u64, StoreError> {
        self.store().await?.prune(now, limit).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        match self.store.get() {
            Some(s) => s.flush().await,
            // Nothing was written to it: nothing to make durable.
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tries_again_at_most_once_per_interval() {
        let dir = std::env::temp_dir().join(format!("mtasts-reopen-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let blocker = dir.join("file");
        std::fs::write(&blocker, b"").unwrap_or_else(|e| panic!("{e}"));
        let s = ReopeningSqlite::new(blocker.join("cache.sqlite3"), Duration::from_secs(3600));
        let d = DomainName::parse("a.test").unwrap_or_else(|e| panic!("{e}"));
        let first = s.get(&d).await;
        assert!(
            matches!(&first, Err(e) if !matches!(e, StoreError::NotOpenYet { .. })),
            "the first use tries to open: {first:?}"
        );
        let second = s.get(&d).await;
        assert!(
            matches!(second, Err(StoreError::NotOpenYet { .. })),
            "within the interval it does not try again: {second:?}"
        );
        assert!(s.flush().await.is_ok(), "nothing to flush");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
