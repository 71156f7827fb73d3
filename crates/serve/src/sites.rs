//! The sites served: one policy per domain, read from a directory of `<domain>.txt` files
//! (each the policy exactly as served), validated by the core parser. An invalid file is
//! reported with its line and rule and not served; the others are.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mtasts_core::DomainName;
use mtasts_core::policy::{Policy, PolicyErrors};

use crate::retire::{Pending, Retirement};

/// One served policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The policy domain.
    pub domain: DomainName,
    /// The policy.
    pub policy: Policy,
    /// The bytes served, exactly as in the file (shared with every response, never copied).
    pub body: hyper::body::Bytes,
    /// The TXT `id`, derived from the canonical policy (see [`policy_id`]).
    pub id: String,
    /// Where it came from.
    pub source: PathBuf,
    /// Set when the domain is being retired: the policy is then `mode: none`.
    pub retiring: Option<Retirement>,
}

impl Site {
    /// The site serving `body` for `domain`, if it is a valid policy; `at` names where it
    /// came from in errors, `source` in the site.
    pub fn from_body(
        domain: DomainName,
        body: Vec<u8>,
        at: &Path,
        source: &Path,
    ) -> Result<Self, SiteError> {
        let parsed = Policy::parse_bytes(&body).map_err(|errors| SiteError::Invalid {
            path: at.to_path_buf(),
            domain: domain.to_string(),
            errors,
        })?;
        Ok(Self {
            id: policy_id(&parsed.policy),
            domain,
            policy: parsed.policy,
            body: hyper::body::Bytes::from(body),
            source: source.to_path_buf(),
            retiring: None,
        })
    }

    /// `mta-sts.<domain>`, the name the policy is served under (RFC 8461 §3.3).
    pub fn host(&self) -> String {
        format!("mta-sts.{}", self.domain)
    }
}

/// The id for a policy: the first 128 bits of SHA-256 over its canonical text, in hex (32
/// characters, within RFC 8461 §3.1's `1*32(ALPHA / DIGIT)`). The same policy always gets the
/// same id, whatever its line ends, order of equal lines or file name; any change of content
/// gives a new one.
pub fn policy_id(policy: &Policy) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, policy.render().as_bytes());
    digest.as_ref()[..16]
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Why a file is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    #[error("{}: the file name is not `<domain>.txt` for a valid domain", path.display())]
    /// The name does not give a domain.
    Name {
        /// The file.
        path: PathBuf,
    },
    #[error("{}: unreadable: {reason}", path.display())]
    /// It could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    #[error("{} (domain {domain}): invalid policy: {}", path.display(), errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    /// Not a valid policy.
    Invalid {
        /// The file.
        path: PathBuf,
        /// The domain it is for.
        domain: String,
        /// Every problem, with line and rule.
        errors: PolicyErrors,
    },
    #[error("{at}: {reason}")]
    /// A configured site or template entry that cannot be used.
    Template {
        /// Where in the configuration.
        at: String,
        /// Why.
        reason: String,
    },
    #[error("{at} (domain {domain}): retirement not applied: {reason}")]
    /// A retirement that cannot be used (the domain's policy, if any, is served as before).
    Retire {
        /// Where it was written.
        at: String,
        /// The domain.
        domain: String,
        /// Why.
        reason: String,
    },
    #[error("{}: a second definition of {domain} (first: {})", path.display(), first.display())]
    /// Two files name the same domain (e.g. different case).
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The first one.
        first: PathBuf,
        /// The domain.
        domain: String,
    },
}

/// The sites by policy host, and the files that were not taken.
#[derive(Debug, Clone, Default)]
pub struct Sites {
    by_host: HashMap<String, Arc<Site>>,
    /// Files not served, and why.
    pub problems: Vec<SiteError>,
}

/// Why the sources as a whole could not be read (nothing changes on a reload then).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("policy directory {}", path.display())]
    /// The directory cannot be read.
    Dir {
        /// The directory.
        path: PathBuf,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("sites configuration")]
    /// The configuration file cannot be used.
    Config(#[source] crate::config::ConfigError),
}

impl Sites {
    /// The sites of a policy directory and/or a configuration file (templates); a domain
    /// defined twice keeps its first definition (the directory's) and the second is reported.
    pub fn load(dir: Option<&Path>, config: Option<&Path>) -> Result<Self, SourceError> {
        let (mut sites, mut retiring) = match dir {
            Some(d) => Self::read_dir(d).map_err(|source| SourceError::Dir {
                path: d.to_path_buf(),
                source,
            })?,
            None => (Self::default(), Vec::new()),
        };
        if let Some(c) = config {
            let found = crate::config::load(c).map_err(SourceError::Config)?;
            sites.problems.extend(found.problems);
            for site in found.sites {
                sites.insert(site);
            }
            retiring.extend(found.retiring);
        }
        sites.retire(&retiring);
        Ok(sites)
    }

    /// Reads every `*.txt` in `dir`, and every `*.retire` (other files are ignored). Fails
    /// only when `dir` itself cannot be read.
    pub fn load_dir(dir: &Path) -> std::io::Result<Self> {
        let (mut sites, retiring) = Self::read_dir(dir)?;
        sites.retire(&retiring);
        Ok(sites)
    }

    fn read_dir(dir: &Path) -> std::io::Result<(Self, Vec<Pending>)> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        let mut sites = Self::default();
        let mut retiring = Vec::new();
        for path in entries {
            match path.extension().and_then(|e| e.to_str()) {
                Some("txt") => match load_file(&path) {
                    Ok(site) => sites.insert(site),
                    Err(e) => sites.problems.push(e),
                },
                Some("retire") => match crate::retire::read_file(&path) {
                    Ok(p) => retiring.push(p),
                    Err(e) => sites.problems.push(e),
                },
                _ => {}
            }
        }
        Ok((sites, retiring))
    }

    /// Replaces each retiring domain's policy with its `mode: none` one; a second retirement
    /// of one domain is reported and the first kept.
    fn retire(&mut self, retiring: &[Pending]) {
        let mut done: BTreeMap<String, PathBuf> = BTreeMap::new();
        for p in retiring {
            let host = format!("mta-sts.{}", p.domain);
            if let Some(first) = done.get(&host) {
                self.problems.push(SiteError::Duplicate {
                    path: p.source.clone(),
                    first: first.clone(),
                    domain: p.domain.to_string(),
                });
                continue;
            }
            match crate::retire::retire(p, self.by_host.get(&host).map(AsRef::as_ref)) {
                Ok(site) => {
                    done.insert(host.clone(), p.source.clone());
                    self.by_host.insert(host, Arc::new(site));
                }
                Err(e) => self.problems.push(e),
            }
        }
    }

    fn insert(&mut self, site: Site) {
        let host = site.host();
        if let Some(first) = self.by_host.get(&host) {
            self.problems.push(SiteError::Duplicate {
                path: site.source.clone(),
                first: first.source.clone(),
                domain: site.domain.to_string(),
            });
            return;
        }
        self.by_host.insert(host, Arc::new(site));
    }

    /// The site served under `host` (`mta-sts.<domain>`, any case, trailing dot allowed).
    pub fn for_host(&self, host: &str) -> Option<&Arc<Site>> {
        // Hosts usually come lower case without the root dot: no copy then.
        if !host.ends_with('.') && !host.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.by_host.get(host);
        }
        self.by_host
            .get(&host.trim_end_matches('.').to_ascii_lowercase())
    }

    /// Every site, in host order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Site>> {
        let mut sites: Vec<(&String, &Arc<Site>)> = self.by_host.iter().collect();
        sites.sort_unstable_by(|a, b| a.0.cmp(b.0));
        sites.into_iter().map(|(_, s)| s)
    }

    /// How many sites are served.
    pub fn len(&self) -> usize {
        self.by_host.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}

fn load_file(path: &Path) -> Result<Site, SiteError> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| SiteError::Name {
            path: path.to_path_buf(),
        })?;
    let domain = DomainName::parse(name).map_err(|_| SiteError::Name {
        path: path.to_path_buf(),
    })?;
    let body = std::fs::read(path).map_err(|e| SiteError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Site::from_body(domain, body, path, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::parse(text).expect("policy").policy
    }

    #[test]
    fn ids_follow_the_content_not_its_spelling() {
        let a = policy("version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n");
        let b =
            policy("version: STSv1\r\nmode: enforce\r\nmx: MX.example.com\r\nmax_age: 86400\r\n");
        let c = policy("version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 86400\n");
        assert_eq!(policy_id(&a), policy_id(&b));
        assert_ne!(policy_id(&a), policy_id(&c));
        let id = policy_id(&a);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
