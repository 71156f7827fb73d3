//! The policy host: `GET`/`HEAD https://mta-sts.<domain>/.well-known/mta-sts.txt` → the
//! policy (`200`, `text/plain`), any other path `404`, any other method `405`, an unknown host
//! `404` (never another domain's policy), no redirects. HTTP/1.1 and HTTP/2 (ALPN); the
//! certificate by SNI. Optionally the TLS-RPT intake on one path of the same port, so the
//! policy host can also be its domains' `rua`. Sites and certificates reload without dropping
//! connections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mtasts_tlsrpt::Handler as _;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::certs::{BySni, Certs};
use crate::metrics::{Handshake, Metrics};
use crate::sites::Sites;

/// The tracing target of the request log: one event per request at info level, one per
/// failed handshake at info level.
pub const ACCESS_LOG: &str = "mtasts_serve::access";

/// The one path a policy is served on (RFC 8461 §3.3).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 4096;
/// Time a client has to send its request headers (slowloris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this long, whatever it is doing.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a load or reload took nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    #[error("reading the sites")]
    /// The policy directory or the sites file.
    Sites(#[source] crate::sites::SourceError),
    #[error("certificate directory {}", path.display())]
    /// The certificate directory.
    Certs {
        /// The directory.
        path: PathBuf,
        #[source]
        /// Why.
        source: std::io::Error,
    },
}

/// What a reload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Sites served.
    pub sites: usize,
    /// Names with a certificate.
    pub names: usize,
    /// Every file not taken, and why.
    pub problems: Vec<String>,
    /// Sites whose `mta-sts.<domain>` no certificate covers (with TLS only).
    pub uncovered: Vec<String>,
    /// Domains being retired (RFC 8461 §8.3), by name.
    pub retiring: Vec<(String, crate::retire::Retirement)>,
}

/// The server's state: sites, certificates, where they come from, the optional intake.
#[derive(Debug)]
pub struct Server {
    policies: Option<PathBuf>,
    config: Option<PathBuf>,
    certs_dir: Option<PathBuf>,
    sites: RwLock<Arc<Sites>>,
    certs: Arc<RwLock<Arc<Certs>>>,
    tlsrpt: Option<(String, Arc<mtasts_tlsrpt::Intake>)>,
    metrics: Arc<Metrics>,
    invalid_files: std::sync::atomic::AtomicUsize,
    /// ACME's certificate directory, read beside `certs_dir` once set.
    acme_certs: std::sync::OnceLock<PathBuf>,
    challenges: Arc<crate::acme::Challenges>,
    /// Bumped at each reload, so ACME sees new sites at once.
    generation: tokio::sync::watch::Sender<u64>,
    /// Requests per client address, when limited.
    limiter: std::sync::OnceLock<crate::limits::RateLimiter>,
}

impl Server {
    /// Loads the sites of `policies` (a directory) and/or `config` (a sites file with
    /// templates) and, for HTTPS, the certificates of `certs`; with `tlsrpt`, POSTs to that
    /// path go to the report intake.
    pub fn load(
        policies: Option<&Path>,
        config: Option<&Path>,
        certs: Option<&Path>,
        tlsrpt: Option<(String, Arc<mtasts_tlsrpt::Intake>)>,
    ) -> Result<(Arc<Self>, Loaded), ReloadError> {
        let server = Arc::new(Self {
            policies: policies.map(Path::to_path_buf),
            config: config.map(Path::to_path_buf),
            certs_dir: certs.map(Path::to_path_buf),
            sites: RwLock::new(Arc::new(Sites::default())),
            certs: Arc::new(RwLock::new(Arc::new(Certs::default()))),
            tlsrpt,
            metrics: Arc::new(Metrics::default()),
            invalid_files: std::sync::atomic::AtomicUsize::new(0),
            acme_certs: std::sync::OnceLock::new(),
            challenges: Arc::default(),
            generation: tokio::sync::watch::Sender::new(0),
            limiter: std::sync::OnceLock::new(),
        });
        let loaded = server.reload()?;
        Ok((server, loaded))
    }

    /// Reads the sources again and swaps in what they hold; connections and requests in
    /// flight keep the state they started with. On an unreadable source nothing changes.
    pub fn reload(&self) -> Result<Loaded, ReloadError> {
        let sites = Sites::load(self.policies.as_deref(), self.config.as_deref())
            .map_err(ReloadError::Sites)?;
        let acme = self.acme_certs.get();
        let certs = match (&self.certs_dir, acme) {
            (None, None) => None,
            (dir, acme) => {
                let dirs: Vec<&Path> = dir.iter().chain(acme).map(PathBuf::as_path).collect();
                Some(Certs::load_dirs(&dirs).map_err(|source| {
                    ReloadError::Certs {
                        path: dirs
                            .iter()
                            .map(|d| d.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                            .into(),
                        source,
                    }
                })?)
            }
        };
        let mut problems: Vec<String> = sites.problems.iter().map(ToString::to_string).collect();
        let mut uncovered = Vec::new();
        let mut names = 0;
        if let Some(c) = &certs {
            problems.extend(c.problems.iter().map(ToString::to_string));
            uncovered = sites
                .iter()
                .map(|s| s.host())
                .filter(|h| !c.covers(h))
                .collect();
            names = c.len();
        }
        let retiring = sites
            .iter()
            .filter_map(|s| s.retiring.map(|r| (s.domain.to_string(), r)))
            .collect();
        let loaded = Loaded {
            sites: sites.len(),
            names,
            problems,
            uncovered,
            retiring,
        };
        set(&self.sites, Arc::new(sites));
        self.invalid_files
            .store(loaded.problems.len(), std::sync::atomic::Ordering::Relaxed);
        if let Some(c) = certs {
            set(&self.certs, Arc::new(c));
        }
        self.generation.send_modify(|g| *g += 1);
        Ok(loaded)
    }

    /// The sites now served.
    pub fn sites(&self) -> Arc<Sites> {
        get(&self.sites)
    }

    /// Answers a client over `rate` with `429` (once, before serving).
    pub fn limit_clients(&self, rate: crate::limits::ClientRate) {
        let _ = self.limiter.set(crate::limits::RateLimiter::new(rate));
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Changes at every reload.
    pub fn reloaded(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The certificates now loaded.
    pub fn certs(&self) -> Arc<Certs> {
        get(&self.certs)
    }

    /// Also serve the certificates of `dir` (ACME's), from the next reload on (created if
    /// missing); the TLS-ALPN-01 certificates under validation are `challenges`. Once only.
    pub fn use_acme(&self, dir: PathBuf) -> std::io::Result<Arc<crate::acme::Challenges>> {
        std::fs::create_dir_all(&dir)?;
        let _ = self.acme_certs.set(dir);
        Ok(self.challenges.clone())
    }

    /// The Prometheus text of this server.
    pub fn metrics_text(&self) -> String {
        let certs = get(&self.certs);
        let expiry = certs
            .not_after
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        self.metrics.render(
            self.sites().len(),
            self.invalid_files
                .load(std::sync::atomic::Ordering::Relaxed),
            &expiry,
        )
    }

    /// The TLS configuration: certificates by SNI, ALPN `h2` and `http/1.1`.
    pub fn tls_acceptor(&self) -> Result<TlsAcceptor, rustls::Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni {
            certs: self.certs.clone(),
            metrics: self.metrics.clone(),
            challenges: self.challenges.clone(),
        }));
        // `acme-tls/1` last: only a client offering nothing else (a CA validating) gets it.
        config.alpn_protocols = vec![
            b"h2".to_vec(),
            b"http/1.1".to_vec(),
            crate::acme::ACME_TLS_ALPN.to_vec(),
        ];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Answers one request that arrived on a connection whose TLS handshake named `sni`, and
    /// counts it.
    pub async fn answer(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        sni: Option<Arc<str>>,
    ) -> Response<Full<Bytes>> {
        let metrics = self.metrics.clone();
        // Captured only when the request log is on: nothing is copied per request otherwise.
        let logged = tracing::enabled!(target: ACCESS_LOG, tracing::Level::INFO).then(|| {
            (
                std::time::Instant::now(),
                peer.to_string(),
                sni.clone(),
                request_host(&req),
                req.method().clone(),
                req.uri().path().to_string(),
                req.version(),
            )
        });
        let (response, site) = self.route(req, peer, sni).await;
        metrics.request(response.status(), site.as_ref().map(|s| s.domain.as_str()));
        if let Some((start, peer, sni, host, method, path, version)) = logged {
            use hyper::body::Body as _;
            tracing::info!(
                target: ACCESS_LOG,
                peer,
                sni = sni.as_deref().unwrap_or(""),
                host = host.as_deref().unwrap_or(""),
                method = method.as_str(),
                path,
                version = ?version,
                status = response.status().as_u16(),
                bytes = response.body().size_hint().exact().unwrap_or(0),
                micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
                "request"
            );
        }
        response
    }

    async fn route(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        sni: Option<Arc<str>>,
    ) -> (Response<Full<Bytes>>, Option<Arc<crate::sites::Site>>) {
        if let Some((path, intake)) = &self.tlsrpt
            && req.uri().path() == path
        {
            return (intake.clone().handle(req, peer.to_string()).await, None);
        }
        let host = request_host(&req);
        let sites = self.sites();
        let Some(site) = host.as_deref().and_then(|h| sites.for_host(h)) else {
            return (
                text(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no MTA-STS policy is served for {}\n",
                        host.as_deref().unwrap_or("(no host)")
                    ),
                ),
                None,
            );
        };
        // The certificate presented was for the SNI name: a request for another host on that
        // connection goes elsewhere (RFC 9110 §15.5.20), never answered with another policy.
        if let (Some(sni), Some(h)) = (sni.as_deref(), host.as_deref())
            && !sni.eq_ignore_ascii_case(h)
        {
            return (
                text(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!("this connection is for {sni}, not {h}\n"),
                ),
                None,
            );
        }
        if req.uri().path() != POLICY_PATH {
            return (
                text(
                    StatusCode::NOT_FOUND,
                    format!("the policy is at {POLICY_PATH}\n"),
                ),
                None,
            );
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n".into());
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return (r, None);
        }
        // HEAD: the length, no body (over HTTP/2 a body after HEAD is a protocol error).
        let head = req.method() == Method::HEAD;
        let body = if head {
            Bytes::new()
        } else {
            site.body.clone()
        };
        let mut r = Response::new(Full::new(body));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if head {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(site.body.len()));
        }
        (r, Some(site.clone()))
    }
}

fn get<T>(lock: &RwLock<Arc<T>>) -> Arc<T> {
    match lock.read() {
        Ok(v) => v.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn set<T>(lock: &RwLock<Arc<T>>, value: Arc<T>) {
    match lock.write() {
        Ok(mut v) => *v = value,
        Err(p) => *p.into_inner() = value,
    }
}

/// The host the request names: HTTP/2's `:authority` or HTTP/1.1's `Host`, without port.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    let raw = req.uri().host().map(str::to_string).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    })?;
    let host = if let Some(v6) = raw.strip_prefix('[') {
        v6.split(']').next().unwrap_or("").to_string()
    } else {
        raw.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(raw.clone(), |(h, _)| h.to_string())
    };
    Some(host.to_ascii_lowercase())
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves `GET /metrics` (plain HTTP, HTTP/1.1) on `listener` until `shutdown` turns true.
pub async fn serve_metrics(
    listener: TcpListener,
    server: Arc<Server>,
    shutdown: watch::Receiver<bool>,
) {
    serve_http1(listener, shutdown, move |req| {
        if req.uri().path() != "/metrics" {
            return text(StatusCode::NOT_FOUND, "metrics are at /metrics\n".into());
        }
        let mut r = text(StatusCode::OK, server.metrics_text());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    })
    .await;
}

/// Plain HTTP/1.1 on `listener` until `shutdown` turns true, each request answered by
/// `answer` (a side listener: metrics, ACME HTTP-01), each connection bounded in time.
pub(crate) async fn serve_http1<F>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    answer: F,
) where
    F: Fn(Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let r = answer(req);
                async move { Ok::<_, std::convert::Infallible>(r) }
            });
            let work = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, work).await;
        });
    }
}

/// Serves `listener` until `shutdown` turns true: HTTPS with `tls` (HTTP/2 or HTTP/1.1 by
/// ALPN), plain HTTP without (behind a TLS-terminating proxy).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    server: Arc<Server>,
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
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (tls, server) = (tls.clone(), server.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let work = async {
                match tls {
                    Some(acceptor) => {
                        // A handshake for a name we hold no certificate for fails here with
                        // an alert; nothing else is disturbed.
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream))
                                if stream.get_ref().1.alpn_protocol()
                                    == Some(crate::acme::ACME_TLS_ALPN) =>
                            {
                                // RFC 8737 §3: the validation is the handshake; nothing follows.
                                drop(stream);
                            }
                            Ok(Ok(stream)) => {
                                server.metrics.handshake(Handshake::Ok);
                                let sni = stream.get_ref().1.server_name().map(Arc::from);
                                connection(stream, server, peer, sni).await;
                            }
                            failed => {
                                server.metrics.handshake(Handshake::Failed);
                                let why = match failed {
                                    Ok(Err(e)) => e.to_string(),
                                    _ => "no handshake within the header timeout".to_string(),
                                };
                                tracing::info!(target: ACCESS_LOG, peer = %peer, error = why, "handshake failed");
                            }
                        }
                    }
                    None => connection(tcp, server, peer, None).await,
                }
            };
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, work).await;
        });
    }
}

async fn connection<S>(stream: S, server: Arc<Server>, peer: SocketAddr, sni: Option<Arc<str>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let (server, sni) = (server.clone(), sni.clone());
        async move {
            if let Some(limiter) = server.limiter.get()
                && !limiter.allow(peer.ip(), std::time::Instant::now())
            {
                let mut r = text(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests from this address\n".into(),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                server.metrics.request(r.status(), None);
                return Ok::<_, std::convert::Infallible>(r);
            }
            Ok(server.answer(req, peer, sni).await)
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(16 * 1024);
    builder.http2().max_concurrent_streams(64);
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_comes_without_port_and_lower_case() {
        let req = |host: &str| {
            Request::get("/x")
                .header(header::HOST, host)
                .body(())
                .expect("request")
        };
        assert_eq!(
            request_host(&req("MTA-STS.Example.COM:443")).as_deref(),
            Some("mta-sts.example.com")
        );
        assert_eq!(
            request_host(&req("mta-sts.example.com")).as_deref(),
            Some("mta-sts.example.com")
        );
        assert_eq!(request_host(&req("[::1]:8443")).as_deref(), Some("::1"));
        let h2 = Request::get("https://mta-sts.example.net/.well-known/mta-sts.txt")
            .body(())
            .expect("request");
        assert_eq!(request_host(&h2).as_deref(), Some("mta-sts.example.net"));
    }
}
