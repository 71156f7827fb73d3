//! The embedded default store: one SQLite file in WAL mode. Each put is one transaction, so a
//! process killed mid-write leaves every committed entry intact and the file consistent.
//! (`synchronous=NORMAL` is durable against a process crash; a power loss may drop the last
//! commits, never corrupt the file.)

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtasts_core::{DomainName, DomainState, UnixTime};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{EntryMeta, Store, StoreError, decode, encode};

/// A SQLite-backed store.
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// SQLite's "this is not a database" and "database corrupt" errors.
fn is_not_a_database(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

impl SqliteStore {
    /// Opens (creating if needed, with its directory) the cache file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || Self::open_blocking(&p))
            .await
            .map_err(StoreError::Task)??;
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// [`SqliteStore::open`], but a file SQLite cannot read as a database (corrupted, or not
    /// one at all) is moved aside to `<file>.corrupt-<unix time>` and a fresh one created. The
    /// second value names where the old file went.
    pub async fn open_or_recover(
        path: impl AsRef<Path>,
        now: u64,
    ) -> Result<(Self, Option<PathBuf>), StoreError> {
        let path = path.as_ref();
        match Self::open(path).await {
            Err(StoreError::Sqlite { source, .. }) if is_not_a_database(&source) => {
                let mut aside = path.as_os_str().to_owned();
                aside.push(format!(".corrupt-{now}"));
                let aside = PathBuf::from(aside);
                std::fs::rename(path, &aside).map_err(|source| StoreError::MoveAside {
                    path: path.to_path_buf(),
                    to: aside.clone(),
                    source,
                })?;
                // The write-ahead log and index of the old file belong to it.
                for suffix in ["-wal", "-shm"] {
                    let mut side = path.as_os_str().to_owned();
                    side.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(side));
                }
                Ok((Self::open(path).await?, Some(aside)))
            }
            other => other.map(|s| (s, None)),
        }
    }

    /// Opens the cache file (creating it, its directory and the cache table), in WAL mode.
    pub(crate) fn open_blocking(path: &Path) -> Result<Connection, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.to_path_buf(),
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(err(path))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(err(path))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err(path))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err(path))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS domain_state (
                 domain     TEXT PRIMARY KEY,
                 state      TEXT NOT NULL,
                 refresh_at INTEGER,
                 expires_at INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS domain_state_refresh
                 ON domain_state(refresh_at) WHERE refresh_at IS NOT NULL;
             CREATE INDEX IF NOT EXISTS domain_state_expires ON domain_state(expires_at);",
        )
        .map_err(err(path))?;
        Ok(conn)
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (conn, path) = (self.conn.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(|_| StoreError::Poisoned)?;
            f(&conn, &path)
        })
        .await
        .map_err(StoreError::Task)?
    }

    /// Runs SQLite's own consistency check; `Ok(())` when it reports "ok".
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        self.with(|c, p| {
            let r: String = c
                .query_row("PRAGMA integrity_check", [], |row| row.get(0))
                .map_err(err(p))?;
            if r == "ok" {
                Ok(())
            } else {
                Err(StoreError::Integrity {
                    path: p.to_path_buf(),
                    report: r,
                })
            }
        })
        .await
    }

    /// Number of stored domains.
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.with(|c, p| {
            c.query_row("SELECT COUNT(*) FROM domain_state", [], |row| row.get(0))
                .map_err(err(p))
        })
        .await
    }
}

impl Store for SqliteStore {
    async fn get(&self, domain: &DomainName) -> Result<Option<Arc<DomainState>>, StoreError> {
        let d = domain.to_string();
        let text: Option<String> = self
            .with(move |c, p| {
                c.query_row(
                    "SELECT state FROM domain_state WHERE domain = ?1",
                    [&d],
                    |row| row.get(0),
                )
                .optional()
                .map_err(err(p))
            })
            .await?;
        text.map(|t| decode(&t).map(Arc::new)).transpose()
    }

    async fn put(
        &self,
        domain: &DomainName,
        state: Arc<DomainState>,
        meta: EntryMeta,
    ) -> Result<(), StoreError> {
        let text = encode(&state)?;
        let d = domain.to_string();
        let refresh = meta.refresh_at.and_then(|t| i64::try_from(t).ok());
        let expires = i64::try_from(meta.expires_at).unwrap_or(i64::MAX);
        self.with(move |c, p| {
            c.execute(
                "INSERT INTO domain_state (domain, state, refresh_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(domain) DO UPDATE SET
                     state = excluded.state,
                     refresh_at = excluded.refresh_at,
                     expires_at = excluded.expires_at",
                params![d, text, refresh, expires],
            )
            .map(|_| ())
            .map_err(err(p))
        })
        .await
    }

    async fn due(&self, now: UnixTime, limit: usize) -> Result<Vec<DomainName>, StoreError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let names: Vec<String> = self
            .with(move |c, p| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT domain FROM domain_state
                         WHERE refresh_at IS NOT NULL AND refresh_at <= ?1
                         ORDER BY refresh_at LIMIT ?2",
                    )
                    .map_err(err(p))?;
                let rows = stmt
                    .query_map(params![now, limit], |row| row.get(0))
                    .map_err(err(p))?;
                rows.collect::<Result<Vec<String>, _>>().map_err(err(p))
            })
            .await?;
        // A name that no longer parses is skipped, not fatal: it will be re-learned.
        Ok(names
            .iter()
            .filter_map(|n| DomainName::parse(n).ok())
            .collect())
    }

    async fn prune(&self, now: UnixTime, limit: usize) -> Result<u64, StoreError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c, p| {
            // Bounded per call, so one pass never holds the connection for long.
            c.execute(
                "DELETE FROM domain_state WHERE rowid IN
                     (SELECT rowid FROM domain_state WHERE expires_at <= ?1 LIMIT ?2)",
                params![now, limit],
            )
            .map(|n| n as u64)
            .map_err(err(p))
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.with(|c, p| {
            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .map_err(err(p))
        })
        .await
    }
}
