//! `mtasts doctor`: flags onto the doctor's options, the report printed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mtasts_doctor::gather::{self, Options};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The daemon's configuration (default: /etc/mtasts/daemon.toml when it exists, else the
    /// daemon's defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check this Postfix instance's config_directory (`postconf -c DIR`) instead of the default.
    #[arg(long, value_name = "DIR")]
    postfix_config: Option<PathBuf>,
    /// The postconf program to run.
    #[arg(long, value_name = "PATH", default_value = "postconf")]
    postconf: PathBuf,
    /// Do not look at Postfix.
    #[arg(long, conflicts_with = "postfix_config")]
    no_postfix: bool,
    /// Check Exim's configuration: a file (exim4.conf) or a conf.d directory.
    #[arg(long, value_name = "PATH")]
    exim_config: Option<PathBuf>,
    /// The TLS-RPT collector's socket, to tell whether one runs here.
    #[arg(long, value_name = "PATH", default_value = gather::DEFAULT_COLLECTOR_SOCKET)]
    tlsrpt_socket: PathBuf,
    /// The name asked to tell whether a resolver validates (its answer must carry the AD bit).
    #[arg(long, value_name = "NAME", default_value = ".")]
    dnssec_probe: String,
    /// `serve`'s policies directory: check its sites' published TXT ids and certificates.
    #[arg(long, value_name = "DIR")]
    serve_policies: Option<PathBuf>,
    /// `serve`'s sites file (`serve --sites`).
    #[arg(long, value_name = "FILE")]
    serve_sites: Option<PathBuf>,
    /// `serve`'s certificate directory (repeatable; for ACME, `<acme-dir>/certs`).
    #[arg(long, value_name = "DIR")]
    serve_certs: Vec<PathBuf>,
    /// DNS server IP:PORT for the TXT lookups of `serve`'s sites (default: /etc/resolv.conf).
    #[arg(long, value_name = "IP:PORT")]
    nameserver: Option<SocketAddr>,
    /// Time limit per probe, in seconds.
    #[arg(long, default_value = "5", value_name = "SECS", value_parser = crate::net::seconds_up_to::<60>)]
    timeout: Duration,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &DoctorArgs) -> ExitCode {
    let options = Options {
        daemon_config: args.config.clone(),
        postfix: !args.no_postfix,
        postconf: args.postconf.clone(),
        postfix_config: args.postfix_config.clone(),
        exim_config: args.exim_config.clone(),
        collector_socket: args.tlsrpt_socket.clone(),
        dnssec_probe: args.dnssec_probe.clone(),
        serve_policies: args.serve_policies.clone(),
        serve_sites: args.serve_sites.clone(),
        serve_certs: args.serve_certs.clone(),
        nameserver: args.nameserver,
        timeout: args.timeout,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mtasts doctor: starting the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let report = runtime.block_on(gather::run(&options));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("mtasts doctor: {e}");
                return ExitCode::from(3);
            }
        }
    } else {
        print!("{}", report.render_text());
    }
    ExitCode::from(report.exit_code())
}
