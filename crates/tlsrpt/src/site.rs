//! The dashboard over HTTP: `GET /` (the page, `?domain=D` for one domain), `/report/<id>`
//! (a report's JSON as received), `/metrics` (Prometheus). Read-only; behind a bearer token
//! when one is set (`Authorization: Bearer …` or `?token=…`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use mtasts_core::errors::Chain;

use crate::dashboard;
use crate::http::{Handler, reply};
use crate::store::{DbError, Filter, ReportDb};

/// The dashboard's site.
#[derive(Debug)]
pub struct Site {
    db: Mutex<ReportDb>,
    token: Option<String>,
    window: Duration,
}

impl Site {
    /// Shows `db`'s reports of the last `window`; with `token`, only to requests carrying it.
    pub fn new(db: ReportDb, token: Option<String>, window: Duration) -> Arc<Self> {
        Arc::new(Self {
            db: Mutex::new(db),
            token,
            window,
        })
    }

    fn authorised(&self, req: &Request<Incoming>) -> bool {
        let Some(want) = &self.token else {
            return true;
        };
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let query = query_param(req.uri().query(), "token");
        [bearer, query.as_deref()]
            .into_iter()
            .flatten()
            .any(|got| same(got.as_bytes(), want.as_bytes()))
    }

    /// Runs `f` on the store off the async threads.
    async fn with_db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut ReportDb) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, String> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut db = match this.db.lock() {
                Ok(db) => db,
                Err(p) => p.into_inner(),
            };
            f(&mut db).map_err(|e| Chain(&e).to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "read-only\n".into());
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        if !self.authorised(&req) {
            let mut r = reply(StatusCode::UNAUTHORIZED, "a token is required\n".into());
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        let path = req.uri().path().to_string();
        let token = self
            .token
            .is_some()
            .then(|| query_param(req.uri().query(), "token"))
            .flatten();
        let unavailable = |e: String| {
            tracing::error!(error = %e, "the report store could not be read");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the report store could not be read\n".into(),
            )
        };
        if path == "/" {
            let domain = query_param(req.uri().query(), "domain");
            let since = crate::unix_now().saturating_sub(self.window.as_secs());
            let window_days = self.window.as_secs() / 86_400;
            let data = self
                .with_db(move |db| {
                    let rows = db.reports(&Filter {
                        domain: None,
                        since: Some(since),
                    })?;
                    let ignored = db
                        .ignored(Some(since))
                        .map(|v| u64::try_from(v.len()).unwrap_or(0))?;
                    Ok(dashboard::build(&rows, ignored, crate::unix_now()))
                })
                .await;
            return match data {
                Ok(d) => {
                    let page =
                        dashboard::render(&d, domain.as_deref(), window_days, token.as_deref());
                    with_type(
                        reply(StatusCode::OK, page),
                        "text/html; charset=utf-8",
                        PAGE_POLICY,
                    )
                }
                Err(e) => unavailable(e),
            };
        }
        if path == "/metrics" {
            let text = self
                .with_db(|db| {
                    let totals = db.totals()?;
                    Ok(crate::metrics::render(
                        &totals,
                        db.count()?,
                        db.count_ignored()?,
                    ))
                })
                .await;
            return match text {
                Ok(t) => with_type(
                    reply(StatusCode::OK, t),
                    "text/plain; version=0.0.4; charset=utf-8",
                    PAGE_POLICY,
                ),
                Err(e) => unavailable(e),
            };
        }
        if let Some(id) = path
            .strip_prefix("/report/")
            .and_then(|id| id.parse::<i64>().ok())
        {
            return match self.with_db(move |db| db.report(id)).await {
                // The sender's bytes, never interpreted by the browser (RCV-02).
                Ok(Some(row)) => with_type(
                    Response::new(Full::new(Bytes::from(row.raw))),
                    "application/json",
                    RAW_POLICY,
                ),
                Ok(None) => reply(StatusCode::NOT_FOUND, "no such report\n".into()),
                Err(e) => unavailable(e),
            };
        }
        reply(StatusCode::NOT_FOUND, "not found\n".into())
    }
}

impl Handler for Site {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        _peer: String,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        self.answer(req)
    }
}

/// The page's policy: no script, no external asset; inline styles and its own SVG only.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";
/// A raw report's policy: nothing at all.
const RAW_POLICY: &str = "sandbox; default-src 'none'";

fn with_type(
    mut r: Response<Full<Bytes>>,
    content_type: &'static str,
    policy: &'static str,
) -> Response<Full<Bytes>> {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The first `name=` parameter of `query`, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_param(Some("a=1&token=a%20b%26c"), "token").as_deref(),
            Some("a b&c")
        );
        assert_eq!(
            query_param(Some("token=%zz%4"), "token").as_deref(),
            Some("%zz%4")
        );
        assert_eq!(query_param(Some("domain=example.com"), "token"), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
