//! Counters of the policy host, and their Prometheus text: requests by status, policy requests
//! by domain, handshakes by outcome, and each certificate name's expiry.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

/// What the server counts.
#[derive(Debug)]
pub struct Metrics {
    /// By status code, 100 to 599: one atomic add per request, no lock.
    by_status: Box<[AtomicU64]>,
    /// By domain: a shared read lock and one atomic add per request; the write lock only
    /// for a domain's first request.
    by_domain: RwLock<HashMap<Box<str>, AtomicU64>>,
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

impl Default for Metrics {
    fn default() -> Self {
        Self {
            by_status: (100..600).map(|_| AtomicU64::new(0)).collect(),
            by_domain: RwLock::default(),
            handshakes_ok: AtomicU64::default(),
            handshakes_failed: AtomicU64::default(),
            unknown_names: AtomicU64::default(),
            acme_issued: AtomicU64::default(),
            acme_failed: AtomicU64::default(),
        }
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// One answered request; `domain` when a policy was served.
    pub fn request(&self, status: StatusCode, domain: Option<&str>) {
        if let Some(c) = self
            .by_status
            .get(usize::from(status.as_u16()).wrapping_sub(100))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let Some(d) = domain else { return };
        {
            let m = match self.by_domain.read() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            if let Some(n) = m.get(d) {
                n.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut m = match self.by_domain.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.entry(d.into())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
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
        for (status, n) in (100u16..).zip(self.by_status.iter().map(|c| c.load(Ordering::Relaxed)))
        {
            if n == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "mtasts_serve_requests_total{{status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP mtasts_serve_policy_requests_total Policies served, by domain.\n# TYPE mtasts_serve_policy_requests_total counter\n");
        let by_domain: BTreeMap<String, u64> = {
            let m = match self.by_domain.read() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            m.iter()
                .map(|(d, n)| (d.to_string(), n.load(Ordering::Relaxed)))
                .collect()
        };
        for (domain, n) in by_domain {
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
