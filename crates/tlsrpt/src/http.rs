//! HTTP for TLS reports: the intake for `rua=https://…` (RFC 8460 §5.4, HTTP-01, HTTP-02):
//! `POST` of `application/tlsrpt+gzip` or `application/tlsrpt+json`, answered `201` once the
//! report is stored (`200` when it already was), so a sender retries whatever was not stored;
//! and the dashboard with its metrics, on a listener of its own. One connection loop serves
//! either ([`Handler`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use mtasts_core::errors::Chain;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::intake::{IntakeError, MAX_RECEIVED_BYTES, receive};
use crate::store::{ReportDb, Stored};

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// A connection is closed after this long, whatever it is doing (slow senders included).
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

const MEDIA_TYPES: [&str; 2] = ["application/tlsrpt+gzip", "application/tlsrpt+json"];

/// The intake: the store, shared by every connection.
#[derive(Debug)]
pub struct Intake {
    db: Mutex<ReportDb>,
}

impl Intake {
    /// An intake storing into `db`.
    pub fn new(db: ReportDb) -> Arc<Self> {
        Arc::new(Self { db: Mutex::new(db) })
    }

    async fn answer(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: String,
    ) -> Response<Full<Bytes>> {
        let refuse = reply;
        if req.method() != Method::POST {
            let mut r = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "TLS reports are POSTed (RFC 8460 §5.4)".into(),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let media = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        if !media.as_deref().is_some_and(|m| MEDIA_TYPES.contains(&m)) {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {}: a report is application/tlsrpt+gzip or application/tlsrpt+json (RFC 8460 §5.4)",
                    media.as_deref().unwrap_or("(none)")
                ),
            );
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = || format!("a report is at most {MAX_RECEIVED_BYTES} bytes (RCV-05)");
        if declared.is_some_and(|n| n > MAX_RECEIVED_BYTES as u64) {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large());
        }
        let body = match Limited::new(req.into_body(), MAX_RECEIVED_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large());
            }
            Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
        };
        let received = match receive(&body) {
            Ok(r) => r,
            Err(e @ (IntakeError::TooLarge { .. } | IntakeError::Bomb { .. })) => {
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, Chain(&e).to_string());
            }
            Err(e) => return refuse(StatusCode::BAD_REQUEST, Chain(&e).to_string()),
        };
        let now = crate::unix_now();
        let this = self.clone();
        let source = format!("https:{peer}");
        let stored = tokio::task::spawn_blocking(move || {
            let mut db = match this.db.lock() {
                Ok(db) => db,
                Err(p) => p.into_inner(),
            };
            db.store(&received, &source, now)
        })
        .await;
        match stored {
            Ok(Ok(Stored::New(_))) => reply(StatusCode::CREATED, "stored\n".into()),
            Ok(Ok(Stored::Duplicate)) => reply(StatusCode::OK, "already stored\n".into()),
            // Not stored: a 5xx makes the sender try again later (RETRY-01).
            Ok(Err(e)) => {
                tracing::error!(error = %Chain(&e), "a TLS report could not be stored");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the report could not be stored; try again later\n".into(),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "storing a TLS report failed");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the report could not be stored; try again later\n".into(),
                )
            }
        }
    }
}

/// What answers a listener's requests.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request from `peer`.
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: String,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

impl Handler for Intake {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: String,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        self.answer(req, peer)
    }
}

pub(crate) fn reply(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves `listener` until `shutdown` turns true: HTTPS with `tls`, plain HTTP without (behind
/// a TLS-terminating proxy only).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    intake: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((tcp, peer)) = accepted else {
            // Out of file descriptors or similar: wait a moment rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (tls, intake) = (tls.clone(), intake.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let work = async {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            connection(stream, intake, peer.to_string()).await;
                        }
                    }
                    None => connection(tcp, intake, peer.to_string()).await,
                }
            };
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, work).await;
        });
    }
}

async fn connection<S, H: Handler>(stream: S, intake: Arc<H>, peer: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let (intake, peer) = (intake.clone(), peer.clone());
        async move { Ok::<_, std::convert::Infallible>(intake.handle(req, peer).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
