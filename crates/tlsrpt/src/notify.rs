//! Sending an alert: to a command (`sh -c`, the alert as JSON on stdin and as `MTASTS_ALERT_*`
//! variables) or a webhook (a JSON `POST`; HTTPS verified against the web PKI, plain HTTP
//! only to loopback). Each is bounded in time; a failure is reported, never swallowed, so the
//! alert is tried again at the next run.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use crate::alert::{Alert, AlertState};

/// How long a command or a webhook may take.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an alert could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error("running `{command}`")]
    /// The command could not be started or waited for.
    Spawn {
        /// The command.
        command: String,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("`{command}` exited with {status}")]
    /// The command failed.
    Command {
        /// The command.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    #[error("`{what}` took more than {} s", NOTIFY_TIMEOUT.as_secs())]
    /// Over [`NOTIFY_TIMEOUT`].
    Timeout {
        /// The command or URL.
        what: String,
    },
    #[error("webhook `{url}`: {reason}")]
    /// A webhook URL that cannot be used.
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
    #[error("webhook {url}")]
    /// Connecting or talking to the webhook failed.
    Io {
        /// The URL.
        url: String,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("webhook {url}")]
    /// The HTTP exchange failed.
    Http {
        /// The URL.
        url: String,
        #[source]
        /// Why.
        source: hyper::Error,
    },
    #[error("webhook {url} answered {status}")]
    /// Not a 2xx.
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
    },
}

fn json(alert: &Alert) -> Vec<u8> {
    serde_json::to_vec(alert).unwrap_or_default()
}

/// Runs `command` through `sh -c` with the alert on stdin (JSON) and in the environment.
pub async fn run_command(command: &str, alert: &Alert) -> Result<(), NotifyError> {
    let spawn_err = |source| NotifyError::Spawn {
        command: command.to_string(),
        source,
    };
    let state = match alert.state {
        AlertState::Firing => "firing",
        AlertState::Resolved => "resolved",
    };
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", command])
        .env("MTASTS_ALERT_STATE", state)
        .env("MTASTS_ALERT_DOMAIN", &alert.policy_domain)
        .env("MTASTS_ALERT_POLICY_TYPE", &alert.policy_type)
        .env(
            "MTASTS_ALERT_FAILURE_RATE",
            format!("{:.2}", alert.failure_rate),
        )
        .env("MTASTS_ALERT_SUCCESSFUL", alert.successful.to_string())
        .env("MTASTS_ALERT_FAILED", alert.failed.to_string())
        .env(
            "MTASTS_ALERT_WINDOW_SECONDS",
            alert.window_seconds.to_string(),
        )
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    let body = json(alert);
    let work = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its stdin is fine.
            let _ = stdin.write_all(&body).await;
        }
        child.wait().await
    };
    let status = tokio::time::timeout(NOTIFY_TIMEOUT, work)
        .await
        .map_err(|_| NotifyError::Timeout {
            what: command.to_string(),
        })?
        .map_err(spawn_err)?;
    if status.success() {
        Ok(())
    } else {
        Err(NotifyError::Command {
            command: command.to_string(),
            status,
        })
    }
}

/// POSTs the alert as JSON to `url`; a 2xx answer is success.
pub async fn post_webhook(url: &str, alert: &Alert) -> Result<(), NotifyError> {
    tokio::time::timeout(NOTIFY_TIMEOUT, post(url, alert))
        .await
        .map_err(|_| NotifyError::Timeout {
            what: url.to_string(),
        })?
}

async fn post(url: &str, alert: &Alert) -> Result<(), NotifyError> {
    let bad = |reason| NotifyError::Url {
        url: url.to_string(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("a webhook is http:// or https://")),
    };
    let host = uri.host().ok_or_else(|| bad("no host"))?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let io_err = |source| NotifyError::Io {
        url: url.to_string(),
        source,
    };
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
        .await
        .map_err(io_err)?
        .collect();
    if !https && !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(bad(
            "plain http:// only to a loopback address; use https:// elsewhere",
        ));
    }
    let tcp = tokio::net::TcpStream::connect(&addrs[..])
        .await
        .map_err(io_err)?;
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let request = Request::post(path)
        .header(
            header::HOST,
            uri.authority().map_or(host.clone(), |a| a.to_string()),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "mtasts-tlsrpt-alert")
        .body(Full::new(Bytes::from(json(alert))))
        .map_err(|_| bad("cannot build a request for it"))?;
    let status = if https {
        let config = mtasts_resolver::fetch::root_store(None)
            .and_then(mtasts_resolver::fetch::base_client_config)
            .map_err(|_| bad("TLS setup (web PKI roots)"))?;
        let name = rustls_pki_types::ServerName::try_from(bare)
            .map_err(|_| bad("the host is not a TLS server name"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(io_err)?;
        exchange(tls, request, url).await?
    } else {
        exchange(tcp, request, url).await?
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(NotifyError::Status {
            url: url.to_string(),
            status,
        })
    }
}

async fn exchange<S>(
    stream: S,
    request: Request<Full<Bytes>>,
    url: &str,
) -> Result<StatusCode, NotifyError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http_err = |source| NotifyError::Http {
        url: url.to_string(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_err)?;
    let driver = tokio::spawn(conn);
    let response = sender.send_request(request).await.map_err(http_err)?;
    let status = response.status();
    // Read (and drop) the body so the connection ends cleanly.
    let _ = response.into_body().collect().await;
    driver.abort();
    Ok(status)
}
