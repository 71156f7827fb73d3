//! For build scripts of crates whose tests need something outside Rust (redis-server, root,
//! systemd-socket-activate, Postfix, PostgreSQL, Chromium). Each [`Prereq`] becomes a cfg flag `mtasts_run_<key>`
//! that is set unless the prerequisite is missing **and** `MTASTS_TEST_SKIP` opts out of it.
//! Tests put `#[cfg_attr(not(mtasts_run_<key>), ignore = "…")]` on themselves, so:
//!
//! - by default a missing prerequisite makes its tests run and fail, saying what is missing;
//! - `MTASTS_TEST_SKIP=missing` (or a comma list of keys: `redis,root,…`) reports those tests
//!   as ignored, with the reason, instead of counting them as passed.

use std::path::{Path, PathBuf};

/// Something tests need from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prereq {
    /// `redis-server` on PATH.
    Redis,
    /// Running as root, with `ip`, `dig`, `curl` and `openssl` (the lab's network namespace),
    /// and what signs, serves and validates its DNSSEC zones (`dnssec-signzone`, `nsd`,
    /// `unbound`).
    LabNamespace,
    /// Root with `ip`, `postfix`, `postmap`, `postqueue` and `python3` (real Postfix).
    Postfix,
    /// `systemd-socket-activate` on PATH.
    SocketActivate,
    /// PostgreSQL's server programs (`initdb`, `postgres`: on PATH or in Debian's
    /// `/usr/lib/postgresql/<version>/bin`); as root, also the `postgres` user to run them.
    Postgres,
    /// Debian's `chromium`, headless (the dashboard's browser test).
    Chromium,
    /// Debian's Exim 4.96 unpacked by `.ci/exim.sh` ([`exim_binary`]), its `Debian-exim`
    /// user, root and the lab's tools (the Exim end-to-end test).
    Exim,
    /// The independent TLS-RPT peers from PyPI (parsedmarc, tlsrpt-reporter) in the venv
    /// `.ci/peers.sh` makes ([`peers_venv`]).
    Peers,
}

impl Prereq {
    /// Every prerequisite; each crate declares all flags so `check-cfg` knows them.
    pub const ALL: [Prereq; 8] = [
        Prereq::Redis,
        Prereq::LabNamespace,
        Prereq::Postfix,
        Prereq::SocketActivate,
        Prereq::Postgres,
        Prereq::Chromium,
        Prereq::Peers,
        Prereq::Exim,
    ];

    /// The name in `MTASTS_TEST_SKIP` and in the cfg flag.
    pub fn key(self) -> &'static str {
        match self {
            Prereq::Redis => "redis",
            Prereq::LabNamespace => "lab",
            Prereq::Postfix => "postfix",
            Prereq::SocketActivate => "systemd",
            Prereq::Postgres => "postgres",
            Prereq::Chromium => "chromium",
            Prereq::Peers => "peers",
            Prereq::Exim => "exim",
        }
    }

    fn needs_root(self) -> bool {
        matches!(self, Prereq::LabNamespace | Prereq::Postfix | Prereq::Exim)
    }

    fn tools(self) -> &'static [&'static str] {
        match self {
            Prereq::Redis => &["redis-server"],
            Prereq::LabNamespace => &[
                "ip",
                "dig",
                "curl",
                "openssl",
                "dnssec-signzone",
                "nsd",
                "unbound",
            ],
            Prereq::Postfix => &[
                "ip",
                "postfix",
                "postmap",
                "postqueue",
                "python3",
                "dnssec-signzone",
                "nsd",
                "unbound",
            ],
            Prereq::SocketActivate => &["systemd-socket-activate"],
            // Found by `postgres_bin_dir`, not on PATH.
            Prereq::Postgres => &[],
            Prereq::Chromium => &["chromium"],
            // In the venv, not on PATH.
            Prereq::Peers => &[],
            Prereq::Exim => &["ip", "python3", "dnssec-signzone", "nsd", "unbound"],
        }
    }

    /// What is missing beyond the tools on PATH.
    fn missing_other(self, root: bool) -> Option<&'static str> {
        match self {
            Prereq::Postgres if postgres_bin_dir().is_none() => Some("initdb, postgres"),
            Prereq::Postgres if root && !passwd_has("postgres") => Some("the postgres user"),
            Prereq::Peers if !is_executable(&peers_venv().join("bin/tlsrpt-collectd")) => {
                Some("the PyPI peers (run `bash .ci/peers.sh`)")
            }
            Prereq::Exim if !is_executable(&exim_binary()) || !passwd_has("Debian-exim") => {
                Some("Debian's Exim unpacked (run `bash .ci/exim.sh` as root)")
            }
            _ => None,
        }
    }
}

/// The venv holding parsedmarc and tlsrpt-reporter: `$MTASTS_PEERS_VENV`, else
/// `target/peers-venv` of the workspace (where `.ci/peers.sh` puts it).
pub fn peers_venv() -> PathBuf {
    std::env::var_os("MTASTS_PEERS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peers-venv"))
}

/// Exim's binary as `.ci/exim.sh` unpacks it: under `$MTASTS_EXIM_ROOT`, else the workspace's
/// `target/exim-root`.
pub fn exim_binary() -> PathBuf {
    std::env::var_os("MTASTS_EXIM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/exim-root"))
        .join("usr/sbin/exim4")
}

/// The directory of PostgreSQL's server programs: the one holding `initdb` on PATH, else
/// the newest `/usr/lib/postgresql/<version>/bin` (Debian keeps them off PATH).
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Some(initdb) = find(&dirs, "initdb") {
        // Often a symlink into the real directory, which also holds `postgres` and `psql`.
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        return real.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            is_executable(&bin.join("initdb")).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn passwd_has(user: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .is_ok_and(|s| s.lines().any(|l| l.split(':').next() == Some(user)))
}

/// Called from `build.rs`: declares every flag and sets those whose tests should run.
pub fn emit() {
    println!("cargo::rerun-if-env-changed=MTASTS_TEST_SKIP");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=MTASTS_PEERS_VENV");
    println!("cargo::rerun-if-env-changed=MTASTS_EXIM_ROOT");
    let skip = std::env::var("MTASTS_TEST_SKIP").unwrap_or_default();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let root = is_root();
    for p in Prereq::ALL {
        let flag = format!("mtasts_run_{}", p.key());
        println!("cargo::rustc-check-cfg=cfg({flag})");
        let missing: Vec<&str> = p
            .tools()
            .iter()
            .copied()
            .filter(|t| find(&dirs, t).is_none())
            .collect();
        let other = p.missing_other(root);
        let missing: Vec<&str> = missing.into_iter().chain(other).collect();
        let present = missing.is_empty() && (root || !p.needs_root());
        if present || !opted_out(&skip, p.key()) {
            println!("cargo::rustc-cfg={flag}");
        } else {
            // Installing the tool later changes nothing that cargo watches: say how to rerun.
            println!(
                "cargo::warning=tests needing {} are reported as ignored (MTASTS_TEST_SKIP={skip}; missing: {}{}); `touch build.rs` after installing",
                p.key(),
                missing.join(", "),
                if p.needs_root() && !root { " root" } else { "" }
            );
        }
    }
}

fn opted_out(skip: &str, key: &str) -> bool {
    skip.split(',')
        .map(str::trim)
        .any(|k| k == key || k == "missing")
}

fn find(dirs: &[PathBuf], tool: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(tool)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

/// Called from `build.rs` of crates whose tests read the real-world corpus: sets
/// `mtasts_have_realworld` and `MTASTS_REALWORLD_DIR` when `$MTASTS_REALWORLD` or
/// `../shared/realworld/corpus` beside the checkout exists. It is data beside the project,
/// not part of it (not copied in), so where absent its tests are reported ignored.
pub fn emit_realworld() {
    println!("cargo::rustc-check-cfg=cfg(mtasts_have_realworld)");
    println!("cargo::rerun-if-env-changed=MTASTS_REALWORLD");
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let dir = std::env::var_os("MTASTS_REALWORLD")
        .map(PathBuf::from)
        .or_else(|| {
            // crates/<crate>/ → the checkout's parent.
            manifest.map(|m| m.join("../../../shared/realworld/corpus"))
        });
    if let Some(dir) = dir {
        println!("cargo::rerun-if-changed={}", dir.display());
        if dir.is_dir() {
            println!("cargo::rustc-cfg=mtasts_have_realworld");
            println!("cargo::rustc-env=MTASTS_REALWORLD_DIR={}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::opted_out;

    #[test]
    fn opting_out_names_a_key_or_everything_missing() {
        assert!(opted_out("redis", "redis"));
        assert!(opted_out("root, redis", "redis"));
        assert!(opted_out("missing", "postfix"));
        assert!(!opted_out("", "redis"));
        assert!(!opted_out("redis-server", "redis"));
    }
}
