//! The sending side's collector: a unix datagram socket taking libtlsrpt's session results
//! (Postfix ≥ 3.10's `smtp_tlsrpt_socket_name` pointed here instead of tlsrpt-collectd), each
//! counted into the store under the UTC day it arrived. A bad datagram is logged and counted,
//! and the others go on; a store failure is logged and that session is lost (libtlsrpt sends
//! without waiting, so nothing could be asked to send again).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UnixDatagram;

use crate::store::ReportDb;

/// What the collector saw.
#[derive(Debug, Default)]
pub struct CollectCounts {
    /// Sessions counted.
    pub sessions: AtomicU64,
    /// Datagrams refused (not a session result).
    pub refused: AtomicU64,
    /// Sessions the store failed to count.
    pub store_failures: AtomicU64,
}

/// The UTC day (`YYYY-MM-DD`) of `unix` seconds (RFC 8460 §4: reports cover UTC days).
pub fn utc_day(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(..10).unwrap_or(&s).to_string()
}

/// Binds `path` (a stale socket file there is replaced) for datagrams.
pub fn bind(path: &Path) -> std::io::Result<UnixDatagram> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(_) => {}
    }
    UnixDatagram::bind(path)
}

/// Receives datagrams on `socket` into `db` until `shutdown` turns true.
pub async fn collect(
    socket: UnixDatagram,
    db: Arc<Mutex<ReportDb>>,
    counts: Arc<CollectCounts>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; mtasts_core::session::MAX_DATAGRAM + 1];
    loop {
        let n = tokio::select! {
            r = socket.recv(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "tlsrpt collect: receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let session = match mtasts_core::session::parse_datagram(buf.get(..n).unwrap_or(&[])) {
            Ok(s) => s,
            Err(e) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %mtasts_core::errors::Chain(&e), bytes = n, "tlsrpt collect: datagram refused");
                continue;
            }
        };
        let day = utc_day(crate::unix_now());
        let db = db.clone();
        // The store may fsync: off the runtime's threads.
        let stored = tokio::task::spawn_blocking(move || {
            let mut db = match db.lock() {
                Ok(d) => d,
                Err(p) => p.into_inner(),
            };
            db.add_session(&day, &session)
                .map_err(|e| mtasts_core::errors::Chain(&e).to_string())
        })
        .await;
        match stored {
            Ok(Ok(())) => {
                counts.sessions.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                counts.store_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "tlsrpt collect: a session could not be stored");
            }
            Err(e) => {
                counts.store_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "tlsrpt collect: the store task failed");
            }
        }
    }
}
