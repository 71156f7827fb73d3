//! The `mtasts` binary: argument parsing and wiring only.

mod lab;
mod lint;

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
    /// Check a policy file or TXT record before publishing it.
    ///
    /// Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error or unreadable input.
    Lint(lint::LintArgs),
    /// The fake internet of our tests, on loopback: list, serve, or run it in a namespace.
    ///
    /// Exit status: 0 success (for `run`, the command's own status), 2 lab error.
    Lab(lab::LabArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lint(args) => lint::run(&args),
        Command::Lab(args) => lab::run(&args),
    }
}
