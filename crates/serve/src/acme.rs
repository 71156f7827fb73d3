//! Certificates from an ACME CA (RFC 8555) for the configured sites only: for each
//! `mta-sts.<domain>` of a served site that no certificate covers, or whose certificate has
//! passed two thirds of its lifetime, one order, answered with TLS-ALPN-01 (RFC 8737) on the
//! serving port itself. A name of a request or an SNI is never ordered: only configured
//! sites are. The account and every certificate are kept on disk, so a restart re-issues
//! nothing; a failed name is retried with a growing delay, and the others go on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;

use crate::server::Server;

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// First retry delay after a failed order; doubled per failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(60);
/// The longest wait between attempts for one name.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// The longest sleep between passes (new sites are picked up this soon).
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Where and how to order certificates.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The CA's directory URL.
    pub directory: String,
    /// A PEM root to trust for the directory's own HTTPS (a test CA such as pebble); the
    /// system's roots otherwise.
    pub directory_ca: Option<PathBuf>,
    /// The account (`account.json`) and the certificates (`certs/<host>.pem`).
    pub state: PathBuf,
    /// Contact URIs for the account (`mailto:…`).
    pub contact: Vec<String>,
    /// How the CA validates.
    pub challenge: Validation,
}

/// The challenge answered (RFC 8555 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validation {
    /// TLS-ALPN-01 on the HTTPS port (RFC 8737): nothing else to run.
    #[default]
    TlsAlpn01,
    /// HTTP-01: `http://<name>/.well-known/acme-challenge/<token>` on port 80, answered by
    /// [`serve_http01`].
    Http01,
}

impl AcmeSettings {
    /// The directory the certificates are written to (and served from).
    pub fn certs_dir(&self) -> PathBuf {
        self.state.join("certs")
    }
}

/// Why an order or the account failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    #[error("ACME account at {directory}")]
    /// Creating or restoring the account.
    Account {
        /// The directory URL.
        directory: String,
        #[source]
        /// Why.
        source: instant_acme::Error,
    },
    #[error("{path}: the stored ACME account is unreadable")]
    /// `account.json` exists but is not an account.
    StoredAccount {
        /// The file.
        path: String,
        #[source]
        /// Why.
        source: serde_json::Error,
    },
    #[error("{host}: ACME order")]
    /// The CA refused or failed a step of the order.
    Order {
        /// The name ordered.
        host: String,
        #[source]
        /// Why.
        source: instant_acme::Error,
    },
    #[error("{host}: the CA offers no {kind} challenge")]
    /// The configured challenge is not offered.
    NoChallenge {
        /// The name ordered.
        host: String,
        /// `tls-alpn-01` or `http-01`.
        kind: &'static str,
    },
    #[error("{host}: the order ended {status:?}")]
    /// Validation failed (the CA could not reach us, or refused the name).
    Invalid {
        /// The name ordered.
        host: String,
        /// The final status.
        status: OrderStatus,
    },
    #[error("{host}: the challenge certificate")]
    /// Making the TLS-ALPN-01 certificate.
    ChallengeCert {
        /// The name.
        host: String,
        #[source]
        /// Why.
        source: rcgen::Error,
    },
    #[error("{path}: writing")]
    /// Writing the account or a certificate.
    Write {
        /// The file.
        path: String,
        #[source]
        /// Why.
        source: std::io::Error,
    },
}

/// TLS-ALPN-01 certificates being validated, by host name; the certificate resolver answers
/// an `acme-tls/1` handshake from here and nothing else.
/// HTTP-01 tokens and their key authorizations the same way.
#[derive(Debug, Default)]
pub struct Challenges {
    tls: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    http: RwLock<HashMap<String, (String, String)>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    }
}

impl Challenges {
    /// The challenge certificate for `host`, while its validation runs.
    pub fn get(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        read(&self.tls)
            .get(&host.trim_end_matches('.').to_ascii_lowercase())
            .cloned()
    }

    /// The key authorization for HTTP-01 `token`, if `host` is the name being validated.
    pub fn http_response(&self, host: &str, token: &str) -> Option<String> {
        read(&self.http)
            .get(token)
            .filter(|(h, _)| h.eq_ignore_ascii_case(host.trim_end_matches('.')))
            .map(|(_, k)| k.clone())
    }

    fn set(&self, host: &str, cert: Arc<CertifiedKey>) {
        write(&self.tls).insert(host.to_string(), cert);
    }

    /// Forgets every challenge of `host` (its validation is over).
    fn clear(&self, host: &str) {
        write(&self.tls).remove(host);
        write(&self.http).retain(|_, (h, _)| h != host);
    }

    fn set_http(&self, host: &str, token: &str, key_authorization: &str) {
        write(&self.http).insert(
            token.to_string(),
            (host.to_string(), key_authorization.to_string()),
        );
    }
}

/// The RFC 8737 §3 certificate for `host`: self-signed, the name as its only SAN, and the
/// critical `acmeIdentifier` extension holding the SHA-256 of the key authorization.
fn challenge_cert(host: &str, digest: &[u8]) -> Result<CertifiedKey, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Names given a new certificate.
    pub issued: Vec<String>,
    /// Names whose order failed, and why.
    pub failed: Vec<(String, AcmeError)>,
    /// Names due but waiting out a back-off.
    pub backing_off: Vec<String>,
}

/// The ordering side: the account, and per name when to try again.
pub struct Acme {
    settings: AcmeSettings,
    account: Account,
    server: Arc<Server>,
    challenges: Arc<Challenges>,
    /// Per failed name: the next attempt (Unix seconds) and the current delay.
    retry: HashMap<String, (u64, Duration)>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory", &self.settings.directory)
            .finish_non_exhaustive()
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), AcmeError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |source| AcmeError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(data).and_then(|()| f.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

impl Acme {
    /// Restores the account from `state/account.json`, or creates one and stores it there.
    pub async fn start(
        settings: AcmeSettings,
        server: Arc<Server>,
        challenges: Arc<Challenges>,
    ) -> Result<Self, AcmeError> {
        let account_err = |source| AcmeError::Account {
            directory: settings.directory.clone(),
            source,
        };
        let builder = || match &settings.directory_ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        };
        let stored = settings.state.join("account.json");
        let account = match std::fs::read(&stored) {
            Ok(bytes) => {
                let creds: AccountCredentials =
                    serde_json::from_slice(&bytes).map_err(|source| AcmeError::StoredAccount {
                        path: stored.display().to_string(),
                        source,
                    })?;
                builder()
                    .map_err(account_err)?
                    .from_credentials(creds)
                    .await
                    .map_err(account_err)?
            }
            Err(_) => {
                let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
                let (account, creds) = builder()
                    .map_err(account_err)?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        settings.directory.clone(),
                        None,
                    )
                    .await
                    .map_err(account_err)?;
                let json = serde_json::to_vec_pretty(&creds).map_err(|e| AcmeError::Write {
                    path: stored.display().to_string(),
                    source: std::io::Error::other(e),
                })?;
                write_private(&stored, &json)?;
                account
            }
        };
        Ok(Self {
            settings,
            account,
            server,
            challenges,
            retry: HashMap::new(),
        })
    }

    /// The names that need a certificate at `now`: every served site's host that no
    /// certificate covers, or whose certificate is past two thirds of its lifetime.
    pub fn due(&self, now: u64) -> Vec<String> {
        let certs = self.server.certs();
        self.server
            .sites()
            .iter()
            .map(|s| s.host())
            .filter(|h| match certs.validity(h) {
                None => true,
                Some((not_before, not_after)) => {
                    let life = not_after.saturating_sub(not_before);
                    now >= not_before.saturating_add(life / 3 * 2)
                }
            })
            .collect()
    }

    /// Orders what is due at `now` (one name after another), writes each certificate and
    /// reloads the server's certificates after each.
    pub async fn pass(&mut self, now: u64) -> Pass {
        let mut pass = Pass::default();
        for host in self.due(now) {
            if self.retry.get(&host).is_some_and(|(at, _)| now < *at) {
                pass.backing_off.push(host);
                continue;
            }
            let result = self.issue(&host).await;
            self.server.metrics().acme_order(result.is_ok());
            match result {
                Ok(()) => {
                    self.retry.remove(&host);
                    pass.issued.push(host);
                }
                Err(e) => {
                    let delay = self
                        .retry
                        .get(&host)
                        .map_or(FIRST_BACKOFF, |(_, d)| (*d * 2).min(MAX_BACKOFF));
                    self.retry
                        .insert(host.clone(), (now.saturating_add(delay.as_secs()), delay));
                    pass.failed.push((host, e));
                }
            }
        }
        pass
    }

    async fn issue(&self, host: &str) -> Result<(), AcmeError> {
        let order_err = |source| AcmeError::Order {
            host: host.to_string(),
            source,
        };
        let ids = [Identifier::Dns(host.to_string())];
        let mut order = self
            .account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(order_err)?;
        let result = self.validate(&mut order, host).await;
        // The challenge certificate is served only while the validation runs.
        self.challenges.clear(host);
        result?;
        let key_pem = order.finalize().await.map_err(order_err)?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(60)))
            .await
            .map_err(order_err)?;
        let path = self.settings.certs_dir().join(format!("{host}.pem"));
        write_private(&path, format!("{chain_pem}{key_pem}").as_bytes())?;
        if let Err(e) = self.server.reload() {
            tracing::warn!(error = %mtasts_core::errors::Chain(&e), "reload after an ACME certificate failed");
        }
        Ok(())
    }

    async fn validate(&self, order: &mut instant_acme::Order, host: &str) -> Result<(), AcmeError> {
        let order_err = |source| AcmeError::Order {
            host: host.to_string(),
            source,
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(order_err)?;
            if authz.status == AuthorizationStatus::Valid {
                continue;
            }
            let (kind, name) = match self.settings.challenge {
                Validation::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
                Validation::Http01 => (ChallengeType::Http01, "http-01"),
            };
            let mut challenge = authz
                .challenge(kind)
                .ok_or_else(|| AcmeError::NoChallenge {
                    host: host.to_string(),
                    kind: name,
                })?;
            let key_authorization = challenge.key_authorization();
            match self.settings.challenge {
                Validation::TlsAlpn01 => {
                    let cert = challenge_cert(host, key_authorization.digest().as_ref()).map_err(
                        |source| AcmeError::ChallengeCert {
                            host: host.to_string(),
                            source,
                        },
                    )?;
                    self.challenges.set(host, Arc::new(cert));
                }
                Validation::Http01 => {
                    self.challenges
                        .set_http(host, &challenge.token, key_authorization.as_str());
                }
            }
            challenge.set_ready().await.map_err(order_err)?;
        }
        let status = order
            .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(60)))
            .await
            .map_err(order_err)?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::Invalid {
                host: host.to_string(),
                status,
            });
        }
        Ok(())
    }

    /// Passes until `shutdown` turns true, logging what each did: one at start, one after
    /// every reload (new sites), and one at least every [`MAX_SLEEP`] (renewals, retries).
    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut reloaded = self.server.reloaded();
        loop {
            let now = mtasts_tlsrpt::unix_now();
            let pass = self.pass(now).await;
            for h in &pass.issued {
                tracing::info!(host = %h, "ACME certificate issued");
            }
            for (h, e) in &pass.failed {
                let retry = self.retry.get(h).map_or(0, |(at, _)| *at);
                tracing::warn!(host = %h, error = %mtasts_core::errors::Chain(e), retry_at = retry, "ACME order failed");
            }
            reloaded.mark_unchanged();
            tokio::select! {
                () = tokio::time::sleep(MAX_SLEEP) => {}
                _ = reloaded.changed() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Serves HTTP-01 (RFC 8555 §8.3) on `listener` (port 80 of the sites' names) until
/// `shutdown`: `GET /.well-known/acme-challenge/<token>` for a name being validated gets its
/// key authorization; everything else `404`. Nothing else is served on it, and no redirect.
pub async fn serve_http01(
    listener: tokio::net::TcpListener,
    challenges: Arc<Challenges>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use http::{Response, StatusCode};
    use http_body_util::Full;
    use hyper::body::Bytes;
    crate::server::serve_http1(listener, shutdown, move |req| {
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h).to_string())
            .unwrap_or_default();
        let found = req
            .uri()
            .path()
            .strip_prefix("/.well-known/acme-challenge/")
            .filter(|_| req.method() == http::Method::GET)
            .and_then(|token| challenges.http_response(&host, token));
        let mut r = match found {
            Some(k) => Response::new(Full::new(Bytes::from(k))),
            None => {
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
        };
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/octet-stream"),
        );
        r
    })
    .await;
}
