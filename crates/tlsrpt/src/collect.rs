//! The sending side's collector: a unix datagram socket taking libtlsrpt's session results
//! (Postfix ≥ 3.10's `smtp_tlsrpt_socket_name` pointed here instead of tlsrpt-collectd), each
//! counted into the store under the UTC day it arrived. A bad datagram is logged and counted,
//! and the others go on; a store failure is logged and that session is lost (libtlsrpt sends
//! without waiting, so nothing could be asked to send again).
//!
//! Beside it, a unix stream socket for MTAs without libtlsrpt (Exim's `event_action`,
//! scripts): one JSON session result per line ([`mtasts_core::submission`]), each answered
//! `ok` once stored or `error: <why>`, so the submitter knows.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixDatagram, UnixListener, UnixStream};

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
    remove_stale(path)?;
    UnixDatagram::bind(path)
}

/// Binds `path` (a stale socket file there is replaced) for submission connections.
pub fn bind_stream(path: &Path) -> std::io::Result<UnixListener> {
    remove_stale(path)?;
    UnixListener::bind(path)
}

fn remove_stale(path: &Path) -> std::io::Result<()> {
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
    Ok(())
}

/// Remembered TLS fed from the sessions the collector takes in (`collect --remember`).
#[derive(Debug)]
pub struct Learner {
    /// Where the memories are kept (the daemon's cache).
    pub store: mtasts_store::remember::Remembered,
    /// The daemon's rule.
    pub rule: mtasts_core::remember::Rule,
}

impl Learner {
    /// Learns from `session`; a failure is logged (the session itself is stored anyway).
    async fn observe(&self, session: &mtasts_core::session::SessionResult) {
        use mtasts_core::remember::Change;
        let Some(seen) = mtasts_core::remember::seen_in(session) else {
            return;
        };
        let (rule, at) = (self.rule, crate::unix_now());
        let domain = session.domain.clone();
        match self
            .store
            .update(domain.as_str(), move |m| m.observe(seen, at, &rule))
            .await
        {
            Ok(Change::Remembered) => {
                tracing::info!(domain = %domain, "remembered TLS: domain now remembered")
            }
            Ok(Change::Downgrade) => {
                tracing::warn!(domain = %domain, "remembered TLS: possible downgrade: a session to a domain remembered to do TLS found no STARTTLS")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(domain = %domain, error = %mtasts_core::errors::Chain(&e), "remembered TLS: the memory could not be updated")
            }
        }
    }
}

/// Receives datagrams on `socket` into `db` until `shutdown` turns true.
pub async fn collect(
    socket: UnixDatagram,
    db: Arc<Mutex<ReportDb>>,
    counts: Arc<CollectCounts>,
    learner: Option<Arc<Learner>>,
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
        if let Some(l) = &learner {
            l.observe(&session).await;
        }
        match store(&db, session).await {
            Ok(()) => {
                counts.sessions.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counts.store_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "tlsrpt collect: a session could not be stored");
            }
        }
    }
}

/// Counts `session` under today (UTC); the error as text.
async fn store(
    db: &Arc<Mutex<ReportDb>>,
    session: mtasts_core::session::SessionResult,
) -> Result<(), String> {
    let day = utc_day(crate::unix_now());
    crate::store::blocking(db, move |db| db.add_session(&day, &session))
        .await
        .map_err(|e| format!("the store task failed: {e}"))?
        .map_err(|e| mtasts_core::errors::Chain(&e).to_string())
}

/// Submission connections open at once at most; more are told `error: busy` and closed.
pub const MAX_SUBMITTERS: usize = 64;

/// A submitter idle this long is disconnected.
pub const SUBMIT_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Takes submission connections on `listener` until `shutdown` turns true.
pub async fn serve_submissions(
    listener: UnixListener,
    db: Arc<Mutex<ReportDb>>,
    counts: Arc<CollectCounts>,
    learner: Option<Arc<Learner>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SUBMITTERS));
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "tlsrpt collect: accepting a submitter failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let mut stream = stream;
            let _ = stream.write_all(b"error: busy, try again\n").await;
            continue;
        };
        let (db, counts, shutdown) = (db.clone(), counts.clone(), shutdown.clone());
        let learner = learner.clone();
        tokio::spawn(async move {
            submitter(stream, db, counts, learner, shutdown).await;
            drop(slot);
        });
    }
}

/// One submitter: a line in, a line out, until it closes, idles or the collector stops.
async fn submitter(
    stream: UnixStream,
    db: Arc<Mutex<ReportDb>>,
    counts: Arc<CollectCounts>,
    learner: Option<Arc<Learner>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let (read, mut write) = stream.into_split();
    let mut read = tokio::io::BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = u64::try_from(mtasts_core::submission::MAX_LINE + 2).unwrap_or(u64::MAX);
        let mut limited = (&mut read).take(limit);
        let n = tokio::select! {
            r = tokio::time::timeout(SUBMIT_IDLE, limited.read_until(b'\n', &mut line)) => match r {
                Ok(Ok(n)) => n,
                Ok(Err(_)) | Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        if n == 0 {
            return;
        }
        let complete = line.last() == Some(&b'\n');
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.is_empty() && complete {
            continue;
        }
        let parsed = mtasts_core::submission::parse_submission(&line);
        if let (Ok(session), Some(l)) = (&parsed, &learner) {
            l.observe(session).await;
        }
        let answer = match parsed {
            Err(e) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                format!("error: {}\n", mtasts_core::errors::Chain(&e))
            }
            Ok(session) => match store(&db, session).await {
                Ok(()) => {
                    counts.sessions.fetch_add(1, Ordering::Relaxed);
                    "ok\n".to_string()
                }
                Err(e) => {
                    counts.store_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "tlsrpt collect: a submitted session could not be stored");
                    format!("error: not stored, try again: {e}\n")
                }
            },
        };
        if write.write_all(answer.as_bytes()).await.is_err() || !complete {
            // An over-long line has no end to resynchronise on: close after answering.
            return;
        }
    }
}
