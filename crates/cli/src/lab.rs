//! `mtasts lab`: the testkit's fake internet for people — list the scenario catalog, serve it,
//! or bring it up in a network namespace where real MTAs and tools can be pointed at it.
//!
//! Namespace work goes through `ip` (iproute2), so nothing here needs unsafe code: the servers
//! run in a child started with `ip netns exec NAME mtasts lab serve`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use mtasts_testkit::{Catalog, DnssecMode, Placement};

const DEFAULT_NAME: &str = "mtasts-lab";
const STATE_ROOT: &str = "/run/mtasts-lab";
/// Large catalogs (the benchmark's 11,000 domains) take seconds to issue certificates for.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    cmd: LabCmd,
}

#[derive(Debug, Args)]
struct CatalogArg {
    /// A scenario catalog (TOML) instead of the built-in one.
    #[arg(long)]
    catalog: Option<PathBuf>,
}

#[derive(Debug, Args, Clone, Copy)]
struct DnssecArg {
    /// `signed`: DNSSEC scenarios signed for real (dnssec-signzone), served by NSD, validated by
    /// unbound on 127.0.0.53:53, the namespace's resolver; `simulated`: the lab's own server
    /// sets the AD bit (no bind9-utils, nsd or unbound needed). Default: signed with real
    /// ports, simulated with ephemeral ones.
    #[arg(long, value_enum)]
    dnssec: Option<DnssecChoice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DnssecChoice {
    Signed,
    Simulated,
}

impl DnssecArg {
    fn mode(self, placement: Placement) -> DnssecMode {
        match (self.dnssec, placement) {
            (Some(DnssecChoice::Signed), _) | (None, Placement::RealPorts) => DnssecMode::Signed,
            _ => DnssecMode::Simulated,
        }
    }
}

impl LabArgs {
    /// Prints and exits (`list`, `ctl`), as opposed to running servers.
    pub fn prints_and_exits(&self) -> bool {
        matches!(self.cmd, LabCmd::List { .. } | LabCmd::Ctl { .. })
    }
}

#[derive(Debug, Subcommand)]
enum LabCmd {
    /// Print the scenario catalog: one domain per line with what it demonstrates.
    List {
        #[command(flatten)]
        catalog: CatalogArg,
    },
    /// Run the fake internet in the current network namespace until SIGTERM/SIGINT.
    Serve {
        #[command(flatten)]
        catalog: CatalogArg,
        /// `real-ports` (DNS on 127.0.0.1:53, hosts on ports 443/25) or `ephemeral`.
        #[arg(long, default_value = "real-ports")]
        placement: String,
        /// Where to write ca.pem, hosts.txt and the ready marker.
        #[arg(long)]
        state_dir: PathBuf,
        #[command(flatten)]
        dnssec: DnssecArg,
    },
    /// Create network namespace NAME (loopback only) with the lab running inside (root).
    Up {
        /// Namespace name.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        #[command(flatten)]
        catalog: CatalogArg,
        #[command(flatten)]
        dnssec: DnssecArg,
    },
    /// Change or inspect a running lab: `txt NAME TEXT|-`, `mx DOMAIN PREF HOST[, PREF HOST…]`,
    /// `policy DOMAIN {toml}`, `smtp HOST {toml}` (fields as in the catalog), `latency MS`
    /// (added to every DNS answer), `count DOMAIN` (TXT queries and policy fetches seen).
    Ctl {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// The state directory of `lab serve` (instead of --name).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The command words.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Stop the lab and remove the namespace, its addresses and files (root).
    Down {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Up, run COMMAND inside the namespace, then always down; exits with COMMAND's status.
    Run {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        #[command(flatten)]
        catalog: CatalogArg,
        #[command(flatten)]
        dnssec: DnssecArg,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

pub fn run(args: &LabArgs) -> ExitCode {
    let result = match &args.cmd {
        LabCmd::List { catalog } => list(catalog).map(|()| ExitCode::SUCCESS),
        LabCmd::Serve {
            catalog,
            placement,
            state_dir,
            dnssec,
        } => serve(catalog, placement, *dnssec, state_dir).map(|()| ExitCode::SUCCESS),
        LabCmd::Up {
            name,
            catalog,
            dnssec,
        } => up(name, catalog, *dnssec).map(|lab| {
            lab.print_summary();
            ExitCode::SUCCESS
        }),
        LabCmd::Down { name } => down(name).map(|()| ExitCode::SUCCESS),
        LabCmd::Ctl {
            name,
            state_dir: dir,
            command,
        } => ctl(
            &dir.clone().unwrap_or_else(|| state_dir(name)),
            &command.join(" "),
        ),
        LabCmd::Run {
            name,
            catalog,
            dnssec,
            command,
        } => run_in_lab(name, catalog, *dnssec, command),
    };
    result.unwrap_or_else(|e| {
        eprintln!("mtasts lab: {e:#}");
        ExitCode::from(2)
    })
}

fn load_catalog(arg: &CatalogArg) -> Result<Catalog> {
    match &arg.catalog {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Catalog::parse(&text).with_context(|| path.display().to_string())
        }
        None => Catalog::builtin().context("the built-in catalog"),
    }
}

fn list(arg: &CatalogArg) -> Result<()> {
    let catalog = load_catalog(arg)?;
    let width = catalog
        .scenarios
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0);
    for s in &catalog.scenarios {
        println!("{:width$}  {}", s.name, s.about);
    }
    Ok(())
}

fn serve(arg: &CatalogArg, placement: &str, dnssec: DnssecArg, state_dir: &Path) -> Result<()> {
    let catalog = load_catalog(arg)?;
    let placement: Placement = placement.parse()?;
    let dnssec = dnssec.mode(placement);
    std::fs::create_dir_all(state_dir).with_context(|| state_dir.display().to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let world = catalog
            .world()
            .placement(placement)
            .dnssec_mode(dnssec)
            .build()
            .await
            .map_err(|e| {
                // A missing program is an I/O error: say which packages real DNSSEC needs.
                let hint = matches!((&e, dnssec), (mtasts_testkit::Error::Io(_), DnssecMode::Signed));
                anyhow::Error::new(e).context(if hint {
                    "starting the lab servers (real DNSSEC needs Debian's bind9-utils, nsd and unbound; `--dnssec simulated` runs without them)"
                } else {
                    "starting the lab servers"
                })
            })?;
        // The real DNSSEC's processes, for `lab down` should this one be killed; its trust
        // anchor, for validators people point at the lab.
        let pids: String = world
            .signed_dns_pids()
            .iter()
            .map(|p| format!("{p}\n"))
            .collect();
        std::fs::write(state_dir.join("dnssec.pids"), pids).context("writing dnssec.pids")?;
        if let Some((_, _, anchor)) = world.signed_dns() {
            std::fs::write(state_dir.join("trust-anchor.txt"), format!("{anchor}\n"))
                .context("writing trust-anchor.txt")?;
        }
        if let Some(key) = world.trust_anchor_dnskey() {
            std::fs::write(state_dir.join("trust-anchor.dnskey"), format!("{key}\n"))
                .context("writing trust-anchor.dnskey")?;
        }
        if let Some(dir) = world.signed_dns_dir() {
            // Zone files, keys, unbound's log of validation failures: where people look.
            let link = state_dir.join("files");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&dir, &link).context("linking the DNSSEC files")?;
        }
        std::fs::copy(world.ca_file(), state_dir.join("ca.pem")).context("writing ca.pem")?;
        // The second CA, trusted by nobody unless configured for some domains.
        std::fs::copy(world.private_ca_file(), state_dir.join("private-ca.pem"))
            .context("writing private-ca.pem")?;
        let mut hosts = String::new();
        for (host, ip) in world.hosts() {
            hosts.push_str(&format!("{ip} {host}\n"));
        }
        if placement == Placement::RealPorts {
            let dns = world
                .signed_dns()
                .map(|(resolver, zones, _)| {
                    [
                        resolver.ip(),
                        zones.ip(),
                        mtasts_testkit::world::PASSTHROUGH_RESOLVER_ADDR.ip(),
                    ]
                })
                .into_iter()
                .flatten();
            let hosts = world.hosts().into_iter().map(|(_, ip)| ip);
            add_loopback_addresses(dns.chain(hosts).map(|ip| ip.to_string()));
        }
        std::fs::write(state_dir.join("hosts.txt"), hosts).context("writing hosts.txt")?;
        let mut ports = String::new();
        for (public, bound) in world.port_map() {
            ports.push_str(&format!("{public} {bound}\n"));
        }
        std::fs::write(state_dir.join("ports.txt"), ports).context("writing ports.txt")?;
        let world = std::sync::Arc::new(world);
        let control = state_dir.join("control.sock");
        let _ = std::fs::remove_file(&control);
        let listener = tokio::net::UnixListener::bind(&control).context("binding control.sock")?;
        tokio::spawn(serve_control(listener, world.clone()));
        tokio::spawn(log_sessions(
            world.clone(),
            state_dir.join("smtp-sessions.log"),
        ));
        std::fs::write(state_dir.join("ready"), format!("{}\n", world.dns_addr()))
            .context("writing the ready marker")?;
        let resolver = world
            .signed_dns()
            .map(|(r, _, _)| format!("; validating resolver {r}"))
            .unwrap_or_default();
        eprintln!(
            "lab serving {} domains; DNS {}{resolver}; CA {}",
            catalog.scenarios.len(),
            world.dns_addr(),
            state_dir.join("ca.pem").display()
        );
        wait_for_stop_signal().await;
        drop(world);
        // What says "a lab is serving here" goes with it; the CA, hosts and ports files and
        // the session log stay for inspection.
        for marker in ["ready", "control.sock"] {
            let _ = std::fs::remove_file(state_dir.join(marker));
        }
        Ok(())
    })
}

/// One control command per line; one reply line each (`ok: …` or `error: …`).
async fn serve_control(
    listener: tokio::net::UnixListener,
    world: std::sync::Arc<mtasts_testkit::World>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    while let Ok((stream, _)) = listener.accept().await {
        let world = world.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = match world.control(&line) {
                    Ok(ok) => ok,
                    Err(e) => format!("error: {e}"),
                };
                if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Appends every finished SMTP session, one line each, for tests and people to read:
/// `host=… peer=… ehlo=… starttls=… sni=… tls=… completed=… delivered=…`.
async fn log_sessions(world: std::sync::Arc<mtasts_testkit::World>, path: PathBuf) {
    use std::io::Write;
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    else {
        eprintln!("cannot write {}", path.display());
        return;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (host, _) in world.hosts() {
            let sessions = world.smtp_sessions(&host);
            let done = seen.entry(host.clone()).or_default();
            for s in sessions.iter().skip(*done) {
                let tls = s.tls.as_ref();
                let _ = writeln!(
                    file,
                    "host={host} peer={} ehlo={} starttls={} sni={} tls={} completed={} delivered={}",
                    s.peer.map(|p| p.to_string()).unwrap_or_default(),
                    s.ehlo.first().cloned().unwrap_or_default(),
                    s.starttls,
                    tls.and_then(|t| t.sni.clone())
                        .unwrap_or_else(|| "-".into()),
                    tls.and_then(|t| t.version.clone())
                        .unwrap_or_else(|| "-".into()),
                    tls.is_some_and(|t| t.completed),
                    s.delivered,
                );
            }
            *done = sessions.len();
        }
    }
}

fn ctl(dir: &Path, command: &str) -> Result<ExitCode> {
    use std::io::{BufRead, Write};
    let path = dir.join("control.sock");
    let mut stream = std::os::unix::net::UnixStream::connect(&path)
        .with_context(|| format!("connecting to {} (is the lab running?)", path.display()))?;
    writeln!(stream, "{command}").context("sending the command")?;
    let mut reply = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut reply)
        .context("reading the reply")?;
    let reply = reply.trim();
    if let Some(err) = reply.strip_prefix("error: ") {
        bail!("{err}");
    }
    println!("{reply}");
    Ok(ExitCode::SUCCESS)
}

/// Adds each `ip/32` to `lo` (one `ip -batch` run) so the addresses show in `ip addr`;
/// binding works without them, since all of 127.0.0.0/8 is local, so a failure is reported only.
fn add_loopback_addresses(ips: impl Iterator<Item = String>) {
    use std::io::Write;
    let batch: String = ips.map(|ip| format!("addr add {ip}/32 dev lo\n")).collect();
    let child = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let ok = child.is_ok_and(|mut c| {
        let wrote = c
            .stdin
            .take()
            .is_some_and(|mut i| i.write_all(batch.as_bytes()).is_ok());
        wrote && c.wait().is_ok_and(|s| s.success())
    });
    if !ok {
        eprintln!("note: could not add the host addresses to lo (already there, or not root)");
    }
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A lab that is up.
struct Lab {
    name: String,
    state_dir: PathBuf,
    child: Child,
    dnssec: DnssecMode,
}

impl Lab {
    fn ca_file(&self) -> PathBuf {
        self.state_dir.join("ca.pem")
    }

    fn print_summary(&self) {
        println!("lab `{}` is up", self.name);
        println!("  namespace:  {} (loopback only)", self.name);
        if self.dnssec == DnssecMode::Signed {
            println!(
                "  resolver:   {} validating (unbound; /etc/netns/{}/resolv.conf), trust anchor {}",
                mtasts_testkit::world::RESOLVER_ADDR,
                self.name,
                self.state_dir.join("trust-anchor.txt").display()
            );
            println!(
                "  DNS:        127.0.0.1:53 the lab's own server (unsigned answers), signed zones {}",
                mtasts_testkit::world::SIGNED_ZONES_ADDR
            );
        } else {
            println!(
                "  DNS:        127.0.0.1:53 inside the namespace (/etc/netns/{}/resolv.conf), DNSSEC simulated",
                self.name
            );
        }
        println!("  test CA:    {}", self.ca_file().display());
        println!(
            "  hosts:      {}",
            self.state_dir.join("hosts.txt").display()
        );
        println!(
            "  try:        ip netns exec {} dig TXT _mta-sts.enforce.test",
            self.name
        );
        println!("  stop with:  mtasts lab down --name {}", self.name);
    }
}

fn state_dir(name: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(name)
}

fn netns_dir(name: &str) -> PathBuf {
    Path::new("/etc/netns").join(name)
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("namespace name `{name}`: use 1–32 letters, digits, `-` or `_`");
    }
    Ok(())
}

fn sh(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (is iproute2 installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn up(name: &str, arg: &CatalogArg, dnssec: DnssecArg) -> Result<Lab> {
    check_name(name)?;
    load_catalog(arg)?; // fail before touching the system
    if netns_exists(name) {
        bail!("namespace `{name}` already exists; run `mtasts lab down --name {name}` first");
    }
    sh("ip", &["netns", "add", name]).context("creating the namespace (root needed)")?;
    let lab = start_in_namespace(name, arg, dnssec.mode(Placement::RealPorts));
    if lab.is_err() {
        let _ = down(name);
    }
    lab
}

fn start_in_namespace(name: &str, arg: &CatalogArg, dnssec: DnssecMode) -> Result<Lab> {
    sh("ip", &["-n", name, "link", "set", "lo", "up"])?;
    let etc = netns_dir(name);
    std::fs::create_dir_all(&etc).with_context(|| etc.display().to_string())?;
    // With real DNSSEC the namespace's resolver validates, as on a well-run mail host: the
    // MTA and mtasts then share one view of what is secure. trust-ad: glibc passes the AD bit
    // of this (local) resolver on to Postfix and Exim.
    let resolver = match dnssec {
        DnssecMode::Signed => mtasts_testkit::world::RESOLVER_ADDR.ip().to_string(),
        DnssecMode::Simulated => "127.0.0.1".to_string(),
    };
    std::fs::write(
        etc.join("resolv.conf"),
        format!("nameserver {resolver}\noptions timeout:2 attempts:2 trust-ad\n"),
    )
    .context("writing the namespace's resolv.conf")?;
    let dir = state_dir(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let log = std::fs::File::create(dir.join("serve.log")).context("creating serve.log")?;
    let exe = std::env::current_exe().context("locating the mtasts binary")?;
    let mut cmd = Command::new("setsid");
    cmd.args(["ip", "netns", "exec", name])
        .arg(&exe)
        .args(["lab", "serve", "--state-dir"])
        .arg(&dir)
        .arg("--dnssec")
        .arg(match dnssec {
            DnssecMode::Signed => "signed",
            DnssecMode::Simulated => "simulated",
        });
    if let Some(c) = &arg.catalog {
        cmd.arg("--catalog")
            .arg(std::fs::canonicalize(c).unwrap_or_else(|_| c.clone()));
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("serve.log")?)
        .stderr(log)
        .spawn()
        .context("starting `mtasts lab serve` in the namespace")?;
    std::fs::write(dir.join("serve.pid"), format!("{}\n", child.id()))
        .context("writing serve.pid")?;
    let start = Instant::now();
    while !dir.join("ready").exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
            bail!("the lab server exited ({status}) before it was ready:\n{log}");
        }
        if start.elapsed() > READY_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the lab server was not ready after {READY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Lab {
        name: name.to_string(),
        state_dir: dir,
        child,
        dnssec,
    })
}

fn down(name: &str) -> Result<()> {
    check_name(name)?;
    let dir = state_dir(name);
    let mut removed = Vec::new();
    if let Ok(pid) = std::fs::read_to_string(dir.join("serve.pid")) {
        let pid = pid.trim();
        if stop_process(pid) {
            removed.push(format!("lab server (pid {pid})"));
        }
    }
    // unbound and NSD stop with the lab server; these are left only if it was killed. A pid
    // is stopped only if it still names one of them: once they exited, it may be anyone's.
    if let Ok(pids) = std::fs::read_to_string(dir.join("dnssec.pids")) {
        for pid in pids.lines().map(str::trim) {
            let comm = std::fs::read_to_string(Path::new("/proc").join(pid).join("comm"))
                .unwrap_or_default();
            if matches!(comm.trim(), "nsd" | "unbound") && stop_process(pid) {
                removed.push(format!("DNSSEC server (pid {pid})"));
            }
        }
    }
    if netns_exists(name) {
        sh("ip", &["netns", "del", name])?;
        removed.push(format!("namespace {name} and its loopback addresses"));
    }
    let etc = netns_dir(name);
    if etc.exists() {
        std::fs::remove_dir_all(&etc).with_context(|| etc.display().to_string())?;
        removed.push(etc.display().to_string());
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
        removed.push(dir.display().to_string());
    }
    if removed.is_empty() {
        eprintln!("lab `{name}`: nothing to remove");
    } else {
        eprintln!("lab `{name}` removed: {}", removed.join(", "));
    }
    Ok(())
}

/// SIGTERM, then SIGKILL after a grace period. True if a process was there.
fn stop_process(pid: &str) -> bool {
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let proc_dir = Path::new("/proc").join(pid);
    if !proc_dir.exists() {
        return false;
    }
    let _ = Command::new("kill").args(["-TERM", pid]).status();
    let start = Instant::now();
    while proc_dir.exists() && start.elapsed() < STOP_TIMEOUT {
        std::thread::sleep(Duration::from_millis(20));
        if is_zombie(&proc_dir) {
            break;
        }
    }
    if proc_dir.exists() && !is_zombie(&proc_dir) {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    true
}

fn is_zombie(proc_dir: &Path) -> bool {
    std::fs::read_to_string(proc_dir.join("stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn run_in_lab(
    name: &str,
    arg: &CatalogArg,
    dnssec: DnssecArg,
    command: &[String],
) -> Result<ExitCode> {
    // Survive Ctrl-C and SIGTERM long enough to clean up; the command still gets them.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .context("installing signal handlers")?;
    }
    let mut lab = up(name, arg, dnssec)?;
    let mut cmd = Command::new("ip");
    if lab.dnssec == DnssecMode::Signed {
        cmd.env(
            "MTASTS_LAB_RESOLVER",
            mtasts_testkit::world::RESOLVER_ADDR.to_string(),
        )
        .env(
            "MTASTS_LAB_TRUST_ANCHOR",
            lab.state_dir.join("trust-anchor.txt"),
        );
    }
    let result = cmd
        .args(["netns", "exec", name])
        .args(command)
        .env("MTASTS_LAB_CA", lab.ca_file())
        .env(
            "MTASTS_LAB_PRIVATE_CA",
            lab.state_dir.join("private-ca.pem"),
        )
        .env("MTASTS_LAB_DNS", "127.0.0.1:53")
        .env("MTASTS_LAB_NAME", name)
        .env("MTASTS_LAB_STATE", &lab.state_dir)
        .status()
        .with_context(|| format!("running `{}` in the lab", command.join(" ")));
    let cleanup = down(name);
    let _ = lab.child.wait();
    let status = result?;
    cleanup?;
    Ok(ExitCode::from(
        status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1),
    ))
}
