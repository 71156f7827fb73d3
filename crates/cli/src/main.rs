//! The `mtasts` binary: argument parsing and wiring only.

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lint(args) => lint::run(&args),
    }
}
