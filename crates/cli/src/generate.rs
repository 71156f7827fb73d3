//! `mtasts generate`: man pages and shell completions made from the clap definitions, so
//! the packaged pages cannot drift from the flags (the Debian package is built from these).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Command, CommandFactory};
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where to write: man/mtasts.1, man/mtasts-<subcommand>.1 (and deeper, e.g.
    /// mtasts-tlsrpt-send.1), and completions/mtasts.bash, _mtasts (zsh), mtasts.fish.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: &GenerateArgs) -> ExitCode {
    match generate(&args.out) {
        Ok(n) => {
            println!("wrote {n} files under {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mtasts generate: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn generate(out: &Path) -> Result<usize> {
    let mut cmd = crate::Cli::command();
    cmd.build();
    let man = out.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    let mut written = man_pages(&cmd, "mtasts", &man)?;
    let comp = out.join("completions");
    std::fs::create_dir_all(&comp).with_context(|| format!("creating {}", comp.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, "mtasts", &comp)
            .with_context(|| format!("writing the {shell} completion"))?;
        tracing::debug!(path = %path.display(), "completion written");
        written += 1;
    }
    Ok(written)
}

/// One page per command with subcommands' pages named `parent-child`, as git and cargo do.
fn man_pages(cmd: &Command, name: &str, dir: &Path) -> Result<usize> {
    if cmd.is_hide_set() {
        return Ok(0);
    }
    let page = cmd.clone().name(name.to_string());
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut buf)
        .with_context(|| format!("rendering {name}(1)"))?;
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    let mut n = 1;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        n += man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible command has a page, and every long flag of it is on that page.
    #[test]
    fn every_command_and_flag_is_in_the_generated_pages() {
        let dir = std::env::temp_dir().join(format!("mtasts-generate-{}", std::process::id()));
        let n = generate(&dir).unwrap_or_else(|e| panic!("{e:#}"));
        let mut cmd = crate::Cli::command();
        cmd.build();
        fn walk(cmd: &Command, name: &str, dir: &Path, seen: &mut usize) {
            if cmd.is_hide_set() || cmd.get_name() == "help" {
                return;
            }
            let page = std::fs::read_to_string(dir.join("man").join(format!("{name}.1")))
                .unwrap_or_else(|e| panic!("{name}.1: {e}"));
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    // roff escapes the dashes of flags.
                    let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(page.contains(&escaped), "{name}.1 lacks --{long}");
                }
            }
            *seen += 1;
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{name}-{}", sub.get_name()), dir, seen);
            }
        }
        let mut pages = 0;
        walk(&cmd, "mtasts", &dir, &mut pages);
        assert!(pages > 20, "{pages} pages");
        assert_eq!(n, pages + 3, "pages plus three completions");
        assert!(
            !dir.join("man/mtasts-generate.1").exists(),
            "hidden command"
        );
        let bash = std::fs::read_to_string(dir.join("completions/mtasts.bash")).unwrap_or_default();
        assert!(
            bash.contains("--dane-nameserver"),
            "bash completion knows daemon flags"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
