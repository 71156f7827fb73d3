//! Fake SMTP servers with STARTTLS: a certificate per SNI name plus a default for clients that
//! send none; they record what every client did and store the mail they accept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::Error;
use crate::ca::{CertKind, TestCa};
use crate::tls::{SniResolver, TlsRecord, accept, server_config};

const MAX_LINE: u64 = 4096;
const MAX_MESSAGE: usize = 1 << 20;

/// How STARTTLS behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StartTls {
    /// Advertised and working.
    #[default]
    Offered,
    /// Not advertised; the command is refused (a server without TLS, or a stripping MITM).
    NotOffered,
    /// Advertised, but the command answers `454 TLS not available`.
    Refused,
    /// Advertised and accepted, then garbage instead of a TLS handshake.
    Broken,
    /// Advertised and working, but the `220` comes with a plaintext line after it (what a
    /// server vulnerable to STARTTLS command injection sends when commands were pipelined).
    Leftover,
}

/// How one MX host behaves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpHost {
    /// How STARTTLS behaves.
    pub starttls: StartTls,
    /// The certificate presented when the client sends SNI = this host's name.
    pub cert: CertKind,
    /// Further names this server holds valid certificates for, chosen by SNI (hosting).
    pub extra_names: Vec<String>,
    /// When set, clients that send no SNI (or an unknown one) get a valid certificate for this
    /// other name instead: the server works only with SNI.
    pub default_name: Option<String>,
    /// No certificate at all without SNI (or with an unknown name): the handshake is aborted.
    pub sni_required: bool,
}

impl SmtpHost {
    /// A correct server: STARTTLS, valid certificate for its name with or without SNI.
    pub fn valid() -> Self {
        Self::default()
    }

    /// Correct only when the client sends SNI; without SNI it presents `default.invalid`.
    pub fn sni_only() -> Self {
        Self {
            default_name: Some("default.invalid".into()),
            ..Self::default()
        }
    }
}

/// One SMTP connection, as the server saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmtpSession {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The EHLO names it sent.
    pub ehlo: Vec<String>,
    /// The client issued STARTTLS and got `220`.
    pub starttls: bool,
    /// The TLS handshake, if any.
    pub tls: Option<TlsRecord>,
    /// Messages delivered in this session.
    pub delivered: usize,
}

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// MAIL FROM.
    pub from: String,
    /// RCPT TO, each.
    pub to: Vec<String>,
    /// The message.
    pub data: Vec<u8>,
    /// The TLS state of the session that delivered it (`None`: plaintext).
    pub tls: Option<TlsRecord>,
}

/// Shared state of one MX host.
#[derive(Debug)]
pub struct SmtpHostState {
    /// The host name it serves.
    pub host: String,
    /// How it behaves (changeable while running).
    pub spec: Mutex<SmtpHost>,
    /// The certificates it presents; replaced by [`install_certs`].
    pub certs: Arc<SniResolver>,
    /// SubjectPublicKeyInfo (DER) of its own certificate, for TLSA records.
    pub spki: Mutex<Vec<u8>>,
    /// Connections accepted, counted at accept (sessions are recorded when they end).
    pub accepted: std::sync::atomic::AtomicU64,
    /// Every session.
    pub sessions: Mutex<Vec<SmtpSession>>,
    /// Every delivery.
    pub deliveries: Mutex<Vec<Delivery>>,
}

/// Issues and installs the certificates the host's spec asks for.
pub fn install_certs(state: &SmtpHostState, ca: &TestCa) -> Result<(), Error> {
    let spec = state
        .spec
        .lock()
        .map(|s| s.clone())
        .map_err(|_| Error::Tls("poisoned".into()))?;
    let (own, spki) = ca.issue_with_spki(&state.host, spec.cert)?;
    if let Ok(mut s) = state.spki.lock() {
        *s = spki;
    }
    let mut by_name = HashMap::from([(state.host.clone(), own.clone())]);
    for name in &spec.extra_names {
        by_name.insert(name.clone(), ca.issue(name, CertKind::Valid)?);
    }
    let default = match (&spec.default_name, spec.sni_required) {
        (_, true) => None,
        (Some(other), false) => Some(ca.issue(other, CertKind::Valid)?),
        (None, false) => Some(own),
    };
    state.certs.replace(by_name, default);
    Ok(())
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Starts one SMTP server on `addr`.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<SmtpHostState>,
    ca: &TestCa,
    tasks: &mut JoinSet<()>,
) -> Result<SocketAddr, Error> {
    install_certs(&state, ca)?;
    let config = server_config(state.certs.clone(), &[])?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Io(format!("smtp bind {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(Error::io("smtp local_addr"))?;
    tasks.spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            state
                .accepted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (config, state) = (config.clone(), state.clone());
            tokio::spawn(async move {
                let session = SmtpSession {
                    peer: Some(peer),
                    ..SmtpSession::default()
                };
                let session = run_session(Box::new(tcp), &state, config, session).await;
                if let Ok(mut s) = state.sessions.lock() {
                    s.push(session);
                }
            });
        }
    });
    Ok(local)
}

async fn run_session(
    stream: Box<dyn Io>,
    state: &SmtpHostState,
    config: Arc<rustls::ServerConfig>,
    mut session: SmtpSession,
) -> SmtpSession {
    let spec = match state.spec.lock() {
        Ok(s) => s.clone(),
        Err(_) => return session,
    };
    let mut io = BufReader::new(stream);
    if reply(&mut io, &format!("220 {} ESMTP mtasts-testkit", state.host))
        .await
        .is_err()
    {
        return session;
    }
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    loop {
        let Some(line) = read_line(&mut io).await else {
            return session;
        };
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        let result = match verb.as_str() {
            "EHLO" | "HELO" => {
                session.ehlo.push(line[4..].trim().to_string());
                let tls_active = session.tls.is_some();
                let offer = spec.starttls != StartTls::NotOffered && !tls_active && verb == "EHLO";
                let mut lines = vec![format!("250-{} greets you", state.host)];
                if offer {
                    lines.push("250-STARTTLS".into());
                }
                lines.push("250-8BITMIME".into());
                lines.push("250 SIZE 10485760".into());
                reply(&mut io, &lines.join("\r\n")).await
            }
            "STARTTLS" if session.tls.is_some() => reply(&mut io, "503 TLS already active").await,
            "STARTTLS" => match spec.starttls {
                StartTls::NotOffered => reply(&mut io, "502 5.5.1 command not recognised").await,
                StartTls::Refused => reply(&mut io, "454 4.7.0 TLS not available").await,
                StartTls::Broken => {
                    let _ = reply(&mut io, "220 2.0.0 Ready to start TLS").await;
                    session.starttls = true;
                    let _ = io.get_mut().write_all(b"this is not TLS\r\n").await;
                    return session;
                }
                StartTls::Offered | StartTls::Leftover => {
                    // Leftover: both lines in one write, so the client reads them together.
                    let ready = if spec.starttls == StartTls::Leftover {
                        "220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected"
                    } else {
                        "220 2.0.0 Ready to start TLS"
                    };
                    let ready = reply(&mut io, ready).await;
                    if ready.is_err() {
                        return session;
                    }
                    session.starttls = true;
                    if !io.buffer().is_empty() {
                        // Commands sent before the handshake would be injected; drop the client.
                        return session;
                    }
                    let (tls, record) = accept(config.clone(), io.into_inner()).await;
                    session.tls = Some(record);
                    let Some(tls) = tls else {
                        return session;
                    };
                    io = BufReader::new(Box::new(tls));
                    from = None;
                    to.clear();
                    Ok(())
                }
            },
            "MAIL" => {
                from = Some(arg(&line));
                reply(&mut io, "250 2.1.0 OK").await
            }
            "RCPT" if from.is_some() => {
                to.push(arg(&line));
                reply(&mut io, "250 2.1.5 OK").await
            }
            "RCPT" => reply(&mut io, "503 5.5.1 MAIL first").await,
            "DATA" if !to.is_empty() => {
                if reply(&mut io, "354 End data with <CR><LF>.<CR><LF>")
                    .await
                    .is_err()
                {
                    return session;
                }
                let Some(data) = read_data(&mut io).await else {
                    return session;
                };
                if let Ok(mut d) = state.deliveries.lock() {
                    d.push(Delivery {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut to),
                        data,
                        tls: session.tls.clone(),
                    });
                }
                session.delivered += 1;
                reply(&mut io, "250 2.0.0 queued").await
            }
            "DATA" => reply(&mut io, "503 5.5.1 RCPT first").await,
            "RSET" => {
                from = None;
                to.clear();
                reply(&mut io, "250 2.0.0 OK").await
            }
            "NOOP" => reply(&mut io, "250 2.0.0 OK").await,
            "QUIT" => {
                let _ = reply(&mut io, "221 2.0.0 Bye").await;
                return session;
            }
            _ => reply(&mut io, "500 5.5.2 unrecognised command").await,
        };
        if result.is_err() {
            return session;
        }
    }
}

fn arg(line: &str) -> String {
    line.split_once(':')
        .map(|(_, a)| {
            a.trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

async fn reply(io: &mut BufReader<Box<dyn Io>>, text: &str) -> std::io::Result<()> {
    // One write per reply: clients such as `openssl s_client` read the STARTTLS reply with a
    // single read and would take a separately sent CRLF for the start of the TLS handshake.
    let w = io.get_mut();
    w.write_all(format!("{text}\r\n").as_bytes()).await?;
    w.flush().await
}

async fn read_line(io: &mut BufReader<Box<dyn Io>>) -> Option<String> {
    let mut buf = Vec::new();
    let n = (&mut *io)
        .take(MAX_LINE)
        .read_until(b'\n', &mut buf)
        .await
        .ok()?;
    if n == 0 {
        return None;
    }
    Some(String::from_utf8_lossy(&buf).trim_end().to_string())
}

async fn read_data(io: &mut BufReader<Box<dyn Io>>) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = (&mut *io)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
            .ok()?;
        if n == 0 || data.len() > MAX_MESSAGE {
            return None;
        }
        if line == b".\r\n" || line == b".\n" {
            return Some(data);
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(unstuffed);
    }
}
