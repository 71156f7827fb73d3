//! Counters of the policy host, and their Prometheus text: requests by status, policy requests
//! by domain, handshakes by outcome, and each certificate name's expiry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

/// What the server counts.
#[derive(Debug, Default)]
pub struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    by_domain: Mutex<BTreeMap<String, u64>>,
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    unknown_names: AtomicU64,
    acme_issued: AtomicU64,
    acme_failed: AtomicU64,
}

/// A handshake's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// Completed.
    Ok,
    /// Did not complete (no certificate for the name, a bad client hello, a timeout).
    Failed,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut m = match map.lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    *m.entry(key).or_default() += 1;
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// One answered request; `domain` when a policy was served.
    pub fn request(&self, status: StatusCode, domain: Option<&str>) {
        bump(&self.by_status, status.as_u16());
        if let Some(d) = domain {
            let mut m = match self.by_domain.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            // The name is allocated once per domain, not once per request.
            match m.get_mut(d) {
                Some(n) => *n += 1,
                None => {
                    m.insert(d.to_string(), 1);
                }
            }
        }
    }

    /// One handshake.
    pub fn handshake(&self, outcome: Handshake) {
        let c = match outcome {
            Handshake::Ok => &self.handshakes_ok,
            Handshake::Failed => &self.handshakes_failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// One ACME order's outcome: a certificate, or not.
    pub fn acme_order(&self, issued: bool) {
        let c = if issued {
            &self.acme_issued
        } else {
            &self.acme_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A client hello without SNI, or for a name no certificate covers.
    pub fn unknown_name(&self) {
        self.unknown_names.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text; `sites`, `invalid` and `expiry` (name → not-after, seconds since
    /// the epoch) come from what is loaded now.
    pub fn render(&self, sites: usize, invalid: usize, expiry: &BTreeMap<String, i64>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP mtasts_serve_sites Sites served.\n# TYPE mtasts_serve_sites gauge\nmtasts_serve_sites {sites}\n\
# HELP mtasts_serve_invalid_files Policy and certificate files not taken at the last load.\n# TYPE mtasts_serve_invalid_files gauge\nmtasts_serve_invalid_files {invalid}"
        );
        out.push_str("# HELP mtasts_serve_requests_total Requests answered, by status.\n# TYPE mtasts_serve_requests_total counter\n");
        for (status, n) in copy(&self.by_status) {
            let _ = writeln!(
                out,
                "mtasts_serve_requests_total{{status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP mtasts_serve_policy_requests_total Policies served, by domain.\n# TYPE mtasts_serve_policy_requests_total counter\n");
        for (domain, n) in copy(&self.by_domain) {
            let _ = writeln!(
                out,
                "mtasts_serve_policy_requests_total{{domain=\"{}\"}} {n}",
                label(&domain)
            );
        }
        out.push_str("# HELP mtasts_serve_handshakes_total TLS handshakes, by outcome.\n# TYPE mtasts_serve_handshakes_total counter\n");
        for (result, c) in [
            ("ok", &self.handshakes_ok),
            ("failed", &self.handshakes_failed),
        ] {
            let _ = writeln!(
                out,
                "mtasts_serve_handshakes_total{{result=\"{result}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP mtasts_serve_unknown_names_total Handshakes without SNI or for a name no certificate covers (among the failed).\n\
# TYPE mtasts_serve_unknown_names_total counter\nmtasts_serve_unknown_names_total {}",
            self.unknown_names.load(Ordering::Relaxed)
        );
        out.push_str("# HELP mtasts_serve_acme_orders_total ACME orders, by outcome.\n# TYPE mtasts_serve_acme_orders_total counter\n");
        for (result, c) in [("issued", &self.acme_issued), ("failed", &self.acme_failed)] {
            let _ = writeln!(
                out,
                "mtasts_serve_acme_orders_total{{result=\"{result}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP mtasts_serve_certificate_expiry_seconds When each certificate name's certificate expires (seconds since the epoch).\n# TYPE mtasts_serve_certificate_expiry_seconds gauge\n");
        for (name, t) in expiry {
            let _ = writeln!(
                out,
                "mtasts_serve_certificate_expiry_seconds{{name=\"{}\"}} {t}",
                label(name)
            );
        }
        out
    }
}

fn copy<K: Ord + Clone>(map: &Mutex<BTreeMap<K, u64>>) -> Vec<(K, u64)> {
    let m = match map.lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    m.iter().map(|(k, v)| (k.clone(), *v)).collect()
}
