//! The daemon's answers for Exim (`exim_listen`): Exim's `${readsocket{…}{DOMAIN\n}…}` sends
//! the recipient domain (any key form Postfix sends is taken too), shuts its side down, and
//! reads one line: [`mtasts_core::exim::render`] of the same decision Postfix gets, under the
//! zone named `exim` (the default zone unless one is configured). One request per
//! connection; the connection is closed after the answer.

use std::sync::Arc;
use std::time::Duration;

use mtasts_core::decision::Decision;
use mtasts_core::exim::{line, render};
use mtasts_core::postfix::policy_domain_from_key;
use mtasts_resolver::{Dns, Fetch};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;

use crate::server::{Listener, Server};

/// The zone Exim's answers are decided under.
pub const EXIM_ZONE: &str = "exim";

/// Bytes of a request at most (a domain name and its line end).
const MAX_REQUEST: u64 = 1024;

impl<D: Dns, F: Fetch> Server<D, F> {
    /// The answer line for `key` (no line end).
    pub async fn exim_answer(&self, key: &str) -> String {
        let domain = match policy_domain_from_key(key.trim()) {
            Ok(d) => d,
            Err(e) => return line(&[("mode", "none"), ("reason", &e.to_string())]),
        };
        let explanation = self.explain(EXIM_ZONE, &domain, false).await;
        let (decision, remembered) = explanation.decision_and_remembered();
        self.count_remembered(&domain, remembered);
        let mx = if matches!(decision, Decision::Enforce { .. }) {
            match self.resolver().dns().mx(domain.as_str()).await {
                Ok(mx) => mx,
                Err(e) => {
                    // The allowed hosts cannot be known: wait rather than guess.
                    let reason = format!(
                        "MX lookup for {domain} failed: {}",
                        mtasts_core::errors::Chain(&e)
                    );
                    return line(&[
                        ("mode", "defer"),
                        ("domain", domain.as_str()),
                        ("reason", &reason),
                    ]);
                }
            }
        } else {
            Vec::new()
        };
        render(&domain, &decision, &mx)
    }
}

/// Answers Exim's requests on `listener` until `shutdown` turns true.
pub async fn serve<D: Dns, F: Fetch>(
    server: Arc<Server<D, F>>,
    listener: Listener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok(Conn::Tcp(s)) => {
                tokio::spawn(answer_one(server.clone(), s));
            }
            Ok(Conn::Unix(s)) => {
                tokio::spawn(answer_one(server.clone(), s));
            }
            Err(e) => {
                tracing::warn!(error = %e, "exim listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Conn> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Conn::Tcp(s)),
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
    }
}

async fn answer_one<D, F, S>(server: Arc<Server<D, F>>, stream: S)
where
    D: Dns,
    F: Fetch,
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let idle = server.config().idle_timeout;
    let mut stream = tokio::io::BufReader::new(stream);
    let mut line = Vec::new();
    let read = tokio::time::timeout(
        idle,
        (&mut stream).take(MAX_REQUEST).read_until(b'\n', &mut line),
    )
    .await;
    if !matches!(read, Ok(Ok(n)) if n > 0) {
        return;
    }
    let key = String::from_utf8_lossy(&line).trim().to_string();
    let mut answer = server.exim_answer(&key).await;
    tracing::debug!(key, answer, "exim answer");
    answer.push('\n');
    let mut stream = stream.into_inner();
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}
