//! The `mtasts` binary: argument parsing and wiring only.

mod check;
mod daemon;
mod doctor;
mod generate;
mod lab;
mod lint;
mod logging;
mod net;
mod query;
mod remembered;
mod serve;
mod tlsrpt;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// MTA-STS (RFC 8461) toolkit.
#[derive(Debug, Parser)]
#[command(name = "mtasts", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The MTA-STS policy server for Postfix (`smtp_tls_policy_maps` over socketmap).
    ///
    /// Exit status: 0 after a clean shutdown, 2 configuration or startup error.
    Daemon(daemon::DaemonArgs),
    /// Check a policy file or TXT record before publishing it.
    ///
    /// Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error or unreadable input.
    Lint(lint::LintArgs),
    /// The fake internet of our tests, on loopback: list, serve, or run it in a namespace.
    ///
    /// Exit status: 0 success (for `run`, the command's own status), 2 lab error.
    Lab(lab::LabArgs),
    /// Diagnose a domain's MTA-STS the way a sender sees it (TXT, policy, MX, STARTTLS with and
    /// without SNI, DANE, TLS-RPT).
    ///
    /// Exit status: 0 all ok, 1 warnings only, 2 errors, 3 could not run or could not tell
    /// (DNS gave no answer for the TXT, MX or TLS-RPT lookups).
    Check(check::CheckArgs),
    /// `check` for a list of domains, with CSV or JSON-lines rows and a summary.
    ///
    /// Exit status: 0 done (rows carry the verdicts), 2 usage error, 3 could not run, 130
    /// stopped by Ctrl-C (the rows done are kept; `--resume` continues).
    Scan(check::ScanArgs),
    /// Look up a domain's MTA-STS policy through the daemon's code path and explain the result.
    ///
    /// Exit status: 0 a decision (policy or none), 3 temporary failure, 2 usage or setup error.
    Query(query::QueryArgs),
    /// TLS reports (RFC 8460) for a receiving domain: store them, summarise them.
    ///
    /// Exit status: per subcommand (see `mtasts tlsrpt ingest --help`); 2 usage or store error.
    Tlsrpt(tlsrpt::TlsrptArgs),
    /// Host MTA-STS policies for many domains over HTTPS (certificates by SNI, HTTP/1.1 and
    /// HTTP/2), or print the DNS records each domain publishes (`serve records`).
    ///
    /// Exit status: 0 after a clean shutdown; `records`: 0 printed, 1 some policy invalid; 2
    /// setup error.
    Serve(Box<serve::ServeArgs>),
    /// Check the local setup (Postfix, Exim, the daemon, its cache and DNS view, `serve`'s
    /// sites and certificates) and say what to fix.
    ///
    /// Exit status: 0 all ok, 1 warnings only, 2 errors, 3 some check could not run.
    Doctor(doctor::DoctorArgs),
    /// Remembered TLS: learn from Postfix's log which domains do TLS; list, export, import
    /// and forget what is remembered (docs/remembered-tls.md).
    ///
    /// Exit status: 0 done, 1 `forget` found nothing for some domain, 2 usage or store error.
    Remembered(remembered::RememberedArgs),
    /// Write the man pages and shell completions (for packaging).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that print and exit end quietly when their reader goes away (`| head`), as
    // other Unix tools do; servers keep ignoring SIGPIPE, so a peer hanging up on a unix
    // socket never kills them.
    let prints_and_exits = match &cli.command {
        Command::Daemon(_) => false,
        Command::Lab(args) => args.prints_and_exits(),
        Command::Tlsrpt(args) => args.prints_and_exits(),
        Command::Serve(args) => args.prints_and_exits(),
        Command::Remembered(args) => args.prints_and_exits(),
        Command::Lint(_)
        | Command::Check(_)
        | Command::Scan(_)
        | Command::Query(_)
        | Command::Doctor(_)
        | Command::Generate(_) => true,
    };
    if prints_and_exits {
        sigpipe::reset();
    }
    // The servers set up their own logs (format and level are flags of theirs).
    match &cli.command {
        Command::Daemon(_) | Command::Serve(_) => {}
        Command::Remembered(r) if !r.prints_and_exits() => {
            logging::init(mtasts_daemon::LogFormat::Text, "info");
        }
        _ => logging::init(mtasts_daemon::LogFormat::Text, "warn"),
    }
    match cli.command {
        Command::Daemon(args) => daemon::run(&args),
        Command::Lint(args) => lint::run(&args),
        Command::Lab(args) => lab::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Check(args) => check::run_check(&args),
        Command::Scan(args) => check::run_scan(&args),
        Command::Tlsrpt(args) => tlsrpt::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Remembered(args) => remembered::run(&args),
    }
}
