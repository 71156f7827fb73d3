//! Postfix's parameters as `postconf -x` prints them (every parameter, `$name` expanded), for
//! the instance of `config_directory` when given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the parameters could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostconfError {
    #[error("running {program}")]
    /// postconf could not be started.
    Run {
        /// What was run.
        program: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    /// postconf ran and failed (e.g. no main.cf).
    Failed {
        /// What was run.
        program: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
}

/// `name = value` for every parameter Postfix knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses postconf's output; lines that are not `name = value` are skipped.
    pub fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter_map(|l| l.split_once(" ="))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace))
                .collect(),
        )
    }

    /// A parameter's value; `None` for a parameter this Postfix does not know.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A parameter's value, empty when unset or unknown.
    pub fn value(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// A boolean parameter (`yes`), false when unknown.
    pub fn yes(&self, name: &str) -> bool {
        self.value(name).eq_ignore_ascii_case("yes")
    }

    /// A path as Postfix's daemons see it: relative names are under `queue_directory`,
    /// where they run.
    pub fn queue_path(&self, name: &str) -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            Path::new(self.value("queue_directory")).join(p)
        }
    }

    /// From pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

/// Runs `program -x [-c config_directory]`.
pub fn read(program: &Path, config_directory: Option<&Path>) -> Result<Params, PostconfError> {
    let mut cmd = std::process::Command::new(program);
    cmd.arg("-x").stdin(std::process::Stdio::null());
    if let Some(dir) = config_directory {
        cmd.arg("-c").arg(dir);
    }
    let out = cmd.output().map_err(|source| PostconfError::Run {
        program: program.to_path_buf(),
        source,
    })?;
    if !out.status.success() {
        return Err(PostconfError::Failed {
            program: program.to_path_buf(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(Params::parse(&String::from_utf8_lossy(&out.stdout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postconf_lines_parse_with_empty_values_and_equals_signs_in_values() {
        let p = Params::parse(
            "smtp_tls_CAfile =\nsmtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix\nqueue_directory = /var/spool/postfix\nheader_checks = regexp:/a=b/\npostconf: warning: junk\n",
        );
        assert_eq!(p.get("smtp_tls_CAfile"), Some(""));
        assert_eq!(
            p.value("smtp_tls_policy_maps"),
            "socketmap:inet:127.0.0.1:8461:postfix"
        );
        assert_eq!(p.value("header_checks"), "regexp:/a=b/");
        assert_eq!(p.get("smtp_tlsrpt_enable"), None);
        assert_eq!(
            p.queue_path("private/mtasts"),
            PathBuf::from("/var/spool/postfix/private/mtasts")
        );
        assert_eq!(p.queue_path("/run/x"), PathBuf::from("/run/x"));
    }
}
