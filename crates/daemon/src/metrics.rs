//! The daemon's HTTP listener: Prometheus metrics (`GET /metrics`, text exposition format
//! 0.0.4), `GET /healthz`, and the JSON view of a decision (`GET /v1/decision/<domain>`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mtasts_resolver::{Counter, DaneResolver, Dns, Fetch};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::report::DecisionReport;
use crate::server::{LATENCY_BOUNDS, Server};

fn load(a: &Counter) -> u64 {
    a.get()
}

/// The exposition text for `server`.
pub fn render<D: Dns, F: Fetch>(server: &Server<D, F>) -> String {
    let c = server.counters();
    let s = server.resolver().stats();
    let mut out = String::with_capacity(2048);
    let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    counter(
        "mtasts_requests_total",
        "Socketmap requests answered.",
        &[("", c.requests())],
    );
    counter(
        "mtasts_answers_total",
        "Socketmap answers by status.",
        &[
            ("{status=\"OK\"}", load(&c.ok)),
            ("{status=\"NOTFOUND\"}", load(&c.notfound)),
            ("{status=\"TEMP\"}", load(&c.temp)),
            ("{status=\"PERM\"}", load(&c.perm)),
        ],
    );
    counter(
        "mtasts_remembered_tls_total",
        "Answers for domains remembered to do TLS, by what was done (required: encrypt; would_require: report mode).",
        &[
            ("{outcome=\"required\"}", load(&c.remembered_required)),
            (
                "{outcome=\"would_require\"}",
                load(&c.remembered_would_require),
            ),
        ],
    );
    counter(
        "mtasts_deadline_hits_total",
        "Answers given at the zone deadline while a lookup continued.",
        &[("", load(&c.deadline_hits))],
    );
    counter(
        "mtasts_bad_frames_total",
        "Connections closed for malformed requests.",
        &[("", load(&c.bad_frames))],
    );
    counter(
        "mtasts_connections_total",
        "Connections accepted.",
        &[("", load(&c.connections))],
    );
    counter(
        "mtasts_connections_refused_total",
        "Connections closed at once because max_connections were open.",
        &[("", load(&c.refused))],
    );
    counter(
        "mtasts_lookups_total",
        "Resolver lookups.",
        &[("", load(&s.lookups))],
    );
    counter(
        "mtasts_cache_hits_total",
        "Lookups answered from memory.",
        &[("", load(&s.memory_answers))],
    );
    counter(
        "mtasts_cache_misses_total",
        "Lookups that needed DNS.",
        &[("", load(&s.lookups).saturating_sub(load(&s.memory_answers)))],
    );
    counter(
        "mtasts_txt_queries_total",
        "_mta-sts TXT queries sent.",
        &[("", load(&s.txt_queries))],
    );
    counter(
        "mtasts_fetches_total",
        "Policy fetches by result.",
        &[
            ("{result=\"ok\"}", load(&s.fetches_ok)),
            ("{result=\"failed\"}", load(&s.fetches_failed)),
        ],
    );
    counter(
        "mtasts_refreshes_total",
        "Proactive refreshes run.",
        &[("", load(&s.refreshes))],
    );
    counter(
        "mtasts_store_fallbacks_total",
        "Starts whose cache file was unreadable (moved aside) or could not be opened (memory only).",
        &[("", load(&c.store_fallbacks))],
    );
    counter(
        "mtasts_pruned_total",
        "Expired entries pruned from the backing store.",
        &[("", load(&s.pruned))],
    );
    counter(
        "mtasts_store_reads_total",
        "Backing-store reads (memory-tier misses; one per cold domain).",
        &[("", load(&s.store_reads))],
    );
    counter(
        "mtasts_store_errors_total",
        "Cache backend errors (answers fell back to memory or network).",
        &[("", load(&s.store_errors))],
    );
    counter(
        "mtasts_dane_downgrades_total",
        "Domains whose DANE check went from DANE to \"does not apply\" (possible downgrade; each logged).",
        &[("", server.dane().map_or(0, DaneResolver::downgrades))],
    );
    let h = &c.latency;
    let _ = writeln!(
        out,
        "# HELP mtasts_answer_seconds Time to answer a socketmap request.\n# TYPE mtasts_answer_seconds histogram"
    );
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
        cumulative += load(&h.buckets[i]);
        let _ = writeln!(
            out,
            "mtasts_answer_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += load(&h.buckets[LATENCY_BOUNDS.len()]);
    let _ = writeln!(
        out,
        "mtasts_answer_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "mtasts_answer_seconds_sum {}",
        load(&h.sum_micros) as f64 / 1e6
    );
    let _ = writeln!(out, "mtasts_answer_seconds_count {}", h.count());
    let _ = writeln!(
        out,
        "# HELP mtasts_cached_domains Domains in the memory tier.\n# TYPE mtasts_cached_domains gauge"
    );
    let _ = writeln!(
        out,
        "mtasts_cached_domains {}",
        server.resolver().memory_len()
    );
    let _ = writeln!(
        out,
        "# HELP mtasts_open_connections Socketmap connections open now.\n# TYPE mtasts_open_connections gauge\nmtasts_open_connections {}",
        server.open_connections()
    );
    let (policies, negatives) = server.resolver().memory_tiers();
    let _ = writeln!(
        out,
        "# HELP mtasts_cached_policies Domains with a policy in the memory tier (bounded by memory_capacity).\n# TYPE mtasts_cached_policies gauge\nmtasts_cached_policies {policies}"
    );
    let _ = writeln!(
        out,
        "# HELP mtasts_cached_negatives Domains without a policy in the memory tier (bounded separately, so they never evict policies).\n# TYPE mtasts_cached_negatives gauge\nmtasts_cached_negatives {negatives}"
    );
    out
}

type Response = http::Response<Full<Bytes>>;

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut r = http::Response::new(Full::new(body.into()));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

fn json_error(status: u16, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    respond(status, "application/json", body)
}

/// The value of `name` in a query string (`a=b&c=d`), undecoded: map names and domains need
/// no percent-encoding.
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `GET /metrics`, `GET /healthz`, `GET /v1/decision/<domain>?zone=<map name>`.
async fn route<D: Dns, F: Fetch, B>(server: &Server<D, F>, req: &http::Request<B>) -> Response {
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return respond(405, "text/plain", "GET only\n");
    }
    let path = req.uri().path();
    if path == "/metrics" {
        return respond(200, "text/plain; version=0.0.4", render(server));
    }
    if path == "/healthz" {
        return respond(200, "text/plain", "ok\n");
    }
    let Some(key) = path.strip_prefix("/v1/decision/") else {
        return respond(
            404,
            "text/plain",
            "see /metrics, /healthz, /v1/decision/<domain>\n",
        );
    };
    let domain = match mtasts_core::postfix::policy_domain_from_key(key) {
        Ok(d) => d,
        Err(e) => return json_error(400, &e.to_string()),
    };
    let map = query_param(req.uri().query(), "zone").unwrap_or("postfix");
    let explanation = server.explain(map, &domain, true).await;
    match serde_json::to_string_pretty(&DecisionReport::new(&explanation)) {
        Ok(body) => respond(200, "application/json", body),
        Err(e) => json_error(500, &e.to_string()),
    }
}

/// Serves `/metrics`, `/healthz` and `/v1/decision/<domain>` on `addr` until shutdown.
pub async fn serve<D: Dns, F: Fetch>(
    addr: SocketAddr,
    server: Arc<Server<D, F>>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(serve_on(listener, server, shutdown));
    Ok(local)
}

/// Serves on a bound listener until shutdown.
pub async fn serve_on<D: Dns, F: Fetch>(
    listener: TcpListener,
    server: Arc<Server<D, F>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let server = server.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let server = server.clone();
                    async move { Ok::<_, std::convert::Infallible>(route(&server, &req).await) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
