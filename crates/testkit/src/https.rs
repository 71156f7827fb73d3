//! Fake HTTPS policy hosts. The HTTP/1.1 side is written by hand on purpose: a fake must be
//! able to lie (wrong Content-Length, endless or dripping bodies, hanging after TLS), which a
//! correct server library will not do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::Error;
use crate::ca::{CertKind, TestCa};
use crate::tls::{SniResolver, TlsRecord, accept, server_config};

const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// How one `mta-sts.<domain>` host answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyHost {
    /// Which certificate to present.
    pub cert: CertKind,
    /// The HTTP status.
    pub status: u16,
    /// `None` sends no Content-Type header.
    pub content_type: Option<String>,
    /// The body.
    pub body: String,
    /// Pads the body with `#` lines up to this many bytes (an oversize policy).
    pub pad_to: Option<usize>,
    /// A `Location` header (for 3xx).
    pub location: Option<String>,
    /// Transfer-Encoding: chunked instead of Content-Length.
    pub chunked: bool,
    /// A Content-Length header with this value instead of the true length.
    pub content_length: Option<u64>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long before the response head.
    pub delay_ms: u64,
    /// Send the body one byte at a time with this pause between bytes.
    pub drip_ms: Option<u64>,
    /// Complete TLS, then never answer.
    pub hang: bool,
}

impl Default for PolicyHost {
    fn default() -> Self {
        Self {
            cert: CertKind::Valid,
            status: 200,
            content_type: Some("text/plain".into()),
            body: String::new(),
            pad_to: None,
            location: None,
            chunked: false,
            content_length: None,
            headers: Vec::new(),
            delay_ms: 0,
            drip_ms: None,
            hang: false,
        }
    }
}

impl PolicyHost {
    /// 200, `text/plain`, this body, valid certificate.
    pub fn ok(body: &str) -> Self {
        Self {
            body: body.to_string(),
            ..Self::default()
        }
    }

    fn full_body(&self) -> Vec<u8> {
        let mut body = self.body.clone().into_bytes();
        if let Some(target) = self.pad_to {
            while body.len() < target {
                body.extend_from_slice(b"x-pad: ");
                let fill = (target - body.len()).clamp(1, 70);
                body.extend(std::iter::repeat_n(b'a', fill));
                body.push(b'\n');
            }
            body.truncate(target);
        }
        body
    }
}

/// One request a policy host received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The TLS handshake as seen by the server.
    pub tls: TlsRecord,
    /// The request method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl HttpRequest {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Shared, changeable state of one host.
#[derive(Debug)]
pub struct HttpsHostState {
    /// The host name it serves.
    pub host: String,
    /// How it behaves (changeable while running).
    pub spec: Mutex<PolicyHost>,
    /// The certificate it presents; replaced by [`install_cert`].
    pub certs: Arc<SniResolver>,
    /// TLS handshakes that did not complete (no request follows).
    pub failed_handshakes: Mutex<Vec<TlsRecord>>,
    /// Every request received.
    pub requests: Mutex<Vec<HttpRequest>>,
    /// The SubjectPublicKeyInfo (DER) of the certificate presented (for pinning tests).
    pub spki: Mutex<Vec<u8>>,
}

/// Starts one policy host on `addr`.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<HttpsHostState>,
    ca: &TestCa,
    tasks: &mut JoinSet<()>,
) -> Result<SocketAddr, Error> {
    install_cert(&state, ca)?;
    let config = server_config(state.certs.clone(), &[b"http/1.1"])?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Io(format!("https bind {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(Error::io("https local_addr"))?;
    tasks.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (config, state) = (config.clone(), state.clone());
            tokio::spawn(async move {
                let (tls, record) = accept(config, tcp).await;
                let Some(mut tls) = tls else {
                    if let Ok(mut f) = state.failed_handshakes.lock() {
                        f.push(record);
                    }
                    return;
                };
                let Some(request) = read_head(&mut tls, record).await else {
                    return;
                };
                if let Ok(mut r) = state.requests.lock() {
                    r.push(request);
                }
                let spec = match state.spec.lock() {
                    Ok(s) => s.clone(),
                    Err(_) => return,
                };
                let _ = respond(&mut tls, &spec).await;
            });
        }
    });
    Ok(local)
}

/// Issues and installs the certificate the host's spec asks for.
pub fn install_cert(state: &HttpsHostState, ca: &TestCa) -> Result<(), Error> {
    let kind = state.spec.lock().map(|s| s.cert).unwrap_or_default();
    let (cert, spki) = ca.issue_with_spki(&state.host, kind)?;
    if let Ok(mut s) = state.spki.lock() {
        *s = spki;
    }
    let by_name = HashMap::from([(state.host.clone(), cert.clone())]);
    state.certs.replace(by_name, Some(cert));
    Ok(())
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    tls: TlsRecord,
) -> Option<HttpRequest> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > MAX_REQUEST_HEAD {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(HttpRequest {
        tls,
        method,
        path,
        headers,
    })
}

async fn respond<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    spec: &PolicyHost,
) -> std::io::Result<()> {
    if spec.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return Ok(());
    }
    if spec.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(spec.delay_ms)).await;
    }
    let body = spec.full_body();
    let mut head = format!("HTTP/1.1 {} {}\r\n", spec.status, reason(spec.status));
    if let Some(ct) = &spec.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if let Some(loc) = &spec.location {
        head.push_str(&format!("Location: {loc}\r\n"));
    }
    for (k, v) in &spec.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if spec.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    } else {
        let len = spec.content_length.unwrap_or(body.len() as u64);
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let framed = if spec.chunked { chunk(&body) } else { body };
    match spec.drip_ms {
        Some(ms) => {
            for b in framed {
                stream.write_all(&[b]).await?;
                stream.flush().await?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        None => stream.write_all(&framed).await?,
    }
    stream.flush().await?;
    stream.shutdown().await
}

/// Chunked encoding in 4 KiB chunks.
fn chunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    for part in body.chunks(4096) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
