//! `roost completion bash|zsh|fish`: the shell completion script, made by
//! `clap_complete` from the `roost` command the binary builds.

use std::io::Write;

use clap_complete::Shell;

use crate::error::Error;

/// Flags of `roost completion`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  source <(roost completion bash)          # this bash session\n  roost completion bash > /etc/bash_completion.d/roost\n  roost completion zsh > \"${fpath[1]}/_roost\"\n  roost completion fish > ~/.config/fish/completions/roost.fish"
)]
pub struct CompletionArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells `roost completion` writes scripts for.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionShell {
    /// Bash
    Bash,
    /// Zsh
    Zsh,
    /// Fish
    Fish,
}

impl From<CompletionShell> for Shell {
    fn from(shell: CompletionShell) -> Self {
        match shell {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
        }
    }
}

/// Writes the completion script of `cmd` (the whole `roost` command) for
/// the shell `args` names.
pub fn write_completion(
    args: &CompletionArgs,
    cmd: &mut clap::Command,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(Shell::from(args.shell), cmd, name, &mut script);
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}

/// Prints the completion script of `cmd` on standard output and returns
/// the process exit code, as [`crate::run`] does.
pub fn print_completion(args: &CompletionArgs, cmd: &mut clap::Command) -> i32 {
    let mut out = std::io::stdout().lock();
    match write_completion(args, cmd, &mut out) {
        Ok(()) => 0,
        Err(Error::ClosedPipe) => Error::ClosedPipe.code(),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "roost: {}", e.message());
            e.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The client verbs under the name `roost`, as the binary has them.
    #[derive(Parser)]
    #[command(name = "roost")]
    struct Cli {
        #[command(subcommand)]
        cmd: crate::ClientCommand,
    }

    fn script(shell: CompletionShell) -> String {
        let mut out = Vec::new();
        write_completion(&CompletionArgs { shell }, &mut Cli::command(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_bash_script_loads_in_bash_and_completes_roost() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.bash");
        std::fs::write(&file, script(CompletionShell::Bash)).unwrap();
        let out = std::process::Command::new("bash")
            .arg("--norc")
            .arg("--noprofile")
            .arg("-c")
            .arg(format!("source '{}' && complete -p roost", file.display()))
            .output()
            .expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("complete "), "{stdout}");
        assert!(stdout.trim_end().ends_with(" roost"), "{stdout}");
    }

    #[test]
    fn the_bash_script_knows_the_verbs_and_the_output_flags() {
        let text = script(CompletionShell::Bash);
        for word in [
            "alarm",
            "subcloud-group",
            "--output",
            "--no-headers",
            "yaml",
        ] {
            assert!(text.contains(word), "{word}");
        }
    }

    #[test]
    fn zsh_and_fish_scripts_name_roost() {
        for shell in [CompletionShell::Zsh, CompletionShell::Fish] {
            let text = script(shell);
            assert!(!text.trim().is_empty(), "{shell:?}");
            assert!(text.contains("roost"), "{shell:?}: {text}");
        }
    }
}
