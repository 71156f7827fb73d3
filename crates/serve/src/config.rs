//! Sites from a configuration file, for hosting providers: single sites with their policy
//! inline, and templates — one policy text with `{domain}` in it, applied to a list of
//! customer domains (inline, or a file of one domain per line). Each generated policy goes
//! through the same parser as a policy file; a bad one is reported naming the template, the
//! domain and the rule, and the others are served.
//!
//! ```toml
//! [[site]]
//! domain = "example.com"
//! policy = """
//! version: STSv1
//! mode: enforce
//! mx: mx1.example.com
//! max_age: 604800
//! """
//!
//! [[template]]
//! name = "customers"
//! policy = """
//! version: STSv1
//! mode: enforce
//! mx: mx.{domain}.cust.provider.example
//! max_age: 604800
//! """
//! domains = ["a.example"]
//! domains_file = "customers.txt"
//!
//! [[retire]]                        # RFC 8461 §8.3, see `retire`
//! domain = "b.example"
//! since = "2026-12-01T00:00:00Z"
//! ```

use std::path::{Path, PathBuf};

use mtasts_core::DomainName;
use serde::Deserialize;

use crate::retire::{Pending, RetireFields};
use crate::sites::{Site, SiteError};

/// What a sites file holds.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// The sites generated from `[[site]]` and `[[template]]` entries.
    pub(crate) sites: Vec<Site>,
    /// The `[[retire]]` entries, applied once every source is read.
    pub(crate) retiring: Vec<Pending>,
    /// Entries not taken.
    pub(crate) problems: Vec<SiteError>,
}

/// The file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    site: Vec<SiteEntry>,
    #[serde(default)]
    template: Vec<Template>,
    #[serde(default)]
    retire: Vec<RetireFields>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteEntry {
    domain: String,
    policy: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Template {
    name: String,
    policy: String,
    #[serde(default)]
    domains: Vec<String>,
    domains_file: Option<PathBuf>,
}

/// Why the configuration as a whole cannot be used (nothing of it is served then).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{}: unreadable", path.display())]
    /// The file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("{}: not a sites configuration", path.display())]
    /// Not TOML of the expected shape.
    Toml {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why (with line and column).
        source: Box<toml::de::Error>,
    },
}

/// The sites and retirements of the configuration at `path`, and the entries not taken. A
/// `domains_file` is relative to the configuration's directory.
pub(crate) fn load(path: &Path) -> Result<Found, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: File = toml::from_str(&text).map_err(|source| ConfigError::Toml {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let (mut sites, mut problems) = (Vec::new(), Vec::new());
    for (i, s) in file.site.iter().enumerate() {
        let at = format!("{}: site[{i}]", path.display());
        match make(&at, &s.domain, &s.policy, path) {
            Ok(site) => sites.push(site),
            Err(e) => problems.push(e),
        }
    }
    for (i, t) in file.template.iter().enumerate() {
        let at = format!("{}: template[{i}] ({})", path.display(), t.name);
        if !t.policy.contains("{domain}") {
            // Surely a mistake: a template is for per-customer MX names; a shared policy is a
            // plain `[[site]]` per domain.
            problems.push(SiteError::Template {
                at: at.clone(),
                reason: "the policy has no `{domain}`; not applied (use [[site]] entries for one shared policy)".into(),
            });
            continue;
        }
        let mut domains: Vec<(String, String)> = t
            .domains
            .iter()
            .enumerate()
            .map(|(j, d)| (format!("{at}.domains[{j}]"), d.clone()))
            .collect();
        if let Some(f) = &t.domains_file {
            let f = base.join(f);
            match std::fs::read_to_string(&f) {
                Ok(list) => domains.extend(
                    list.lines()
                        .enumerate()
                        .map(|(n, l)| (n, l.split('#').next().unwrap_or("").trim()))
                        .filter(|(_, l)| !l.is_empty())
                        .map(|(n, l)| (format!("{at}: {}:{}", f.display(), n + 1), l.to_string())),
                ),
                Err(e) => problems.push(SiteError::Template {
                    at: at.clone(),
                    reason: format!("domains_file {}: {e}", f.display()),
                }),
            }
        }
        for (where_, domain) in domains {
            let text = t
                .policy
                .replace("{domain}", domain.trim().trim_end_matches('.'));
            match make(&where_, &domain, &text, path) {
                Ok(site) => sites.push(site),
                Err(e) => problems.push(e),
            }
        }
    }
    let mut retiring = Vec::new();
    for (i, r) in file.retire.iter().enumerate() {
        let at = format!("{}: retire[{i}]", path.display());
        let named = r.domain.as_deref().unwrap_or("");
        match DomainName::parse(named.trim()) {
            Ok(domain) => retiring.push(Pending {
                at,
                source: path.to_path_buf(),
                domain,
                fields: r.clone(),
            }),
            Err(e) => problems.push(SiteError::Template {
                at,
                reason: format!(
                    "domain = `{named}`: not a valid domain (a [[retire]] entry names one): {e}"
                ),
            }),
        }
    }
    Ok(Found {
        sites,
        retiring,
        problems,
    })
}

fn make(at: &str, domain: &str, text: &str, source: &Path) -> Result<Site, SiteError> {
    let domain = DomainName::parse(domain.trim()).map_err(|e| SiteError::Template {
        at: at.to_string(),
        reason: format!("`{domain}` is not a valid domain: {e}"),
    })?;
    Site::from_body(domain, text.as_bytes().to_vec(), Path::new(at), source)
}
