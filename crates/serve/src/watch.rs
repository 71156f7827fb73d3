//! Reload when the files change: the policy and certificate directories and the sites file's
//! directory are watched (inotify through `notify`); a burst of events (an editor's write and
//! rename, `serve retire`, a deploy copying many files) becomes one reload once the
//! directories have been quiet for [`QUIET`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// How long the watched directories must be quiet before a reload.
pub const QUIET: Duration = Duration::from_millis(300);
/// A reload happens at the latest this long after the first change, even if changes go on.
pub const MAX_DELAY: Duration = Duration::from_secs(3);

/// Watches directories; [`Changes::next`] returns once per burst of changes.
pub struct Changes {
    // Kept alive: dropping it stops the watch.
    _watcher: notify::RecommendedWatcher,
    rx: mpsc::Receiver<()>,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

/// Why a watch could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("watching {} for changes", path.display())]
pub struct WatchError {
    /// The directory.
    pub path: PathBuf,
    #[source]
    /// Why (e.g. the inotify watch limit).
    pub source: notify::Error,
}

/// The directories to watch for these sources: the policy and certificate directories, and
/// the directory holding the sites file (editors replace files by rename, which a watch on
/// the file itself would lose).
pub fn dirs(policies: Option<&Path>, sites: Option<&Path>, certs: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = policies
        .into_iter()
        .chain(certs)
        .map(Path::to_path_buf)
        .chain(sites.map(|s| match s.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

impl Changes {
    /// Watches `dirs` (not recursively).
    pub fn watch(dirs: &[PathBuf]) -> Result<Self, WatchError> {
        // One slot: events arriving while a reload is pending add nothing.
        let (tx, rx) = mpsc::channel(1);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Reads (access events) change nothing; errors (e.g. queue overflow) may hide a
                // change, so they reload too.
                if event.is_ok_and(|e| e.kind.is_access()) {
                    return;
                }
                let _ = tx.try_send(());
            })
            .map_err(|source| WatchError {
                path: dirs.first().cloned().unwrap_or_default(),
                source,
            })?;
        for d in dirs {
            watcher
                .watch(d, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError {
                    path: d.clone(),
                    source,
                })?;
        }
        Ok(Self {
            _watcher: watcher,
            rx,
        })
    }

    /// Waits for a change, then for [`QUIET`] without one (or [`MAX_DELAY`] in all); `None`
    /// if the watch ended.
    pub async fn next(&mut self) -> Option<()> {
        self.rx.recv().await?;
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Some(());
            }
            match tokio::time::timeout(QUIET.min(left), self.rx.recv()).await {
                Err(_) => return Some(()),
                Ok(Some(())) => {}
                Ok(None) => return None,
            }
        }
    }
}
