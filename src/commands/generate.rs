//! `generate WHAT` (hidden): the shell completions and the man pages, built from the
//! same clap definition the parser uses (the root command `main` hands to [`run`], so the root page
//! carries the exit codes and the environment).
//!
//! `completions/` holds every file checked in; [`REGENERATE`] rewrites it, and the
//! test `tests/cli/completions.rs` fails when it is stale. The generated text is the
//! product here, not a report, so it bypasses the reporter: `emit` is the one place
//! that writes it to stdout, byte for byte (no colour stripping).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use clap_complete::{Generator, Shell};

use crate::exit::Exit;
use crate::report::Reporter;

/// The command name the completions complete and the man pages document.
pub const BIN_NAME: &str = "syncprobe";

/// Regenerates the checked-in `completions/` (run from the repository root).
pub const REGENERATE: &str = "cargo run --quiet -- generate all --out-dir completions";

/// Every shell with a completion script in `completions/`.
pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::PowerShell,
    Shell::Elvish,
];

#[derive(Debug, Args)]
#[command(after_long_help = "Files (with --out-dir, or `all`):
  syncprobe.bash  _syncprobe  syncprobe.fish  _syncprobe.ps1  syncprobe.elv
  syncprobe.1 and syncprobe-SUBCOMMAND.1 (man pages)

Examples:
  syncprobe generate bash > ~/.local/share/bash-completion/completions/syncprobe
  syncprobe generate man | man -l -
  syncprobe generate all --out-dir completions        # what the staleness test asks for")]
pub struct GenerateArgs {
    /// A shell's completion script, the man page, or every file (`all` needs --out-dir)
    #[arg(value_name = "WHAT")]
    pub what: What,
    /// Write the file(s) into this directory (created if missing) instead of stdout
    #[arg(long, value_name = "DIR", required_if_eq("what", "all"))]
    pub out_dir: Option<PathBuf>,
}

/// What `generate` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    Bash,
    Zsh,
    Fish,
    #[value(name = "powershell")]
    PowerShell,
    Elvish,
    /// The man page of `syncprobe` (with --out-dir: one page per subcommand too)
    Man,
    /// Every completion script and man page
    All,
}

/// One generated file: its name in `completions/` and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artefact {
    pub file_name: String,
    pub content: Vec<u8>,
}

/// The clap command as the completions see it. `clap_complete`'s generators walk
/// hidden subcommands too (clap-rs/clap#1335), and `clap::Command` cannot drop one,
/// so the root is re-assembled from the parser's own arguments and its visible
/// subcommands: nothing of the command line is restated here, so it cannot drift.
fn completion_command(full: &clap::Command) -> clap::Command {
    clap::Command::new(BIN_NAME)
        .about(full.get_about().cloned().unwrap_or_default())
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

/// The completion script of `shell`.
pub fn completion(root: &clap::Command, shell: Shell) -> Artefact {
    let mut cmd = completion_command(root);
    let mut content = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN_NAME, &mut content);
    Artefact {
        file_name: shell.file_name(BIN_NAME),
        content,
    }
}

/// The clap command as the man pages see it: built, without clap's `help`
/// subcommand (it would get a page of its own), as `clap_mangen::generate_to` does.
fn man_command(root: &clap::Command) -> clap::Command {
    let mut cmd = root
        .clone()
        .bin_name(BIN_NAME)
        .disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// One page: clap_mangen's sections, then the text after `--help` as sections of
/// its own with its lines kept (examples and tables must not be filled into one
/// paragraph), then EXIT STATUS and ENVIRONMENT, which every page carries.
fn render(cmd: &clap::Command) -> anyhow::Result<Artefact> {
    // The footer names the package, on subcommand pages too (not `watch-sync 0.1.0`).
    let man =
        clap_mangen::Man::new(cmd.clone()).source(concat!("syncprobe ", env!("CARGO_PKG_VERSION")));
    let file_name = man.get_filename();
    let mut content = Vec::new();
    let failed = || format!("failed to render {file_name}");
    man.render_title(&mut content).with_context(failed)?;
    man.render_name_section(&mut content).with_context(failed)?;
    man.render_synopsis_section(&mut content)
        .with_context(failed)?;
    man.render_description_section(&mut content)
        .with_context(failed)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut content)
            .with_context(failed)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut content)
            .with_context(failed)?;
    }
    let mut roff = roff::Roff::new();
    if let Some(after) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        for (title, lines) in after_help_sections(&after.to_string()) {
            roff.control("SH", [title.as_str()]);
            unfilled(&mut roff, &lines);
        }
    }
    exit_status(&mut roff);
    environment(&mut roff, cmd);
    roff.to_writer(&mut content).with_context(failed)?;
    man.render_version_section(&mut content)
        .with_context(failed)?;
    Ok(Artefact { file_name, content })
}

/// The text after `--help`, split into man sections at its paragraphs: `Examples:`
/// becomes EXAMPLES, a paragraph headed `Name (…):` or `Name:` becomes NAME, any
/// other paragraph joins NOTES. The exit-code table and the environment of the root
/// help are left out: every page renders them as EXIT STATUS and ENVIRONMENT.
fn after_help_sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for paragraph in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        let mut lines: Vec<String> = paragraph.lines().map(String::from).collect();
        let first = lines[0].trim_end();
        let heading = first
            .strip_suffix(':')
            .map(|h| h.split(" (").next().unwrap_or(h).trim().to_string())
            .filter(|h| h.split_whitespace().count() <= 3);
        let title = match heading.as_deref() {
            Some("Exit codes") | Some("Environment") => continue,
            Some(h) => {
                // A heading with a parenthesis keeps it as the section's first line.
                match first.split_once(" (") {
                    Some((_, rest)) => lines[0] = format!("({}", rest.trim_end_matches(':')),
                    None => {
                        lines.remove(0);
                    }
                }
                h.to_uppercase()
            }
            None => "NOTES".to_string(),
        };
        match sections.iter_mut().find(|(t, _)| *t == title) {
            Some((_, body)) => {
                body.push(String::new());
                body.extend(lines);
            }
            None => sections.push((title, lines)),
        }
    }
    sections
}

/// Lines set as they are (no filling, no adjusting).
fn unfilled(roff: &mut roff::Roff, lines: &[String]) {
    roff.control("nf", []);
    for line in lines {
        roff.text([roff::roman(line.as_str())]);
    }
    roff.control("fi", []);
}

fn exit_status(roff: &mut roff::Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    for (exit, meaning) in Exit::TABLE {
        roff.control("TP", []);
        roff.text([roff::bold(exit.code().to_string())]);
        roff.text([roff::roman(meaning)]);
    }
}

/// The variables every subcommand reads, then those standing in for this page's
/// own flags (`serve`'s settings, `token`'s secret).
fn environment(roff: &mut roff::Roff, cmd: &clap::Command) {
    roff.control("SH", ["ENVIRONMENT"]);
    let own = cmd.get_arguments().filter_map(|arg| {
        let name = arg.get_env()?.to_string_lossy().into_owned();
        let meaning = format!(
            "--{} ({})",
            arg.get_long().unwrap_or_default(),
            arg.get_help().map(|h| h.to_string()).unwrap_or_default()
        );
        Some((name, meaning))
    });
    let shared = super::args::ENVIRONMENT
        .iter()
        .map(|(name, meaning)| (name.to_string(), meaning.to_string()));
    for (name, meaning) in shared.chain(own) {
        roff.control("TP", []);
        roff.text([roff::bold(name)]);
        roff.text([roff::roman(meaning)]);
    }
}

/// `syncprobe.1`, the root man page.
pub fn man_page(root: &clap::Command) -> anyhow::Result<Artefact> {
    render(&man_command(root))
}

/// `syncprobe.1` and one `syncprobe-SUBCOMMAND.1` per visible subcommand (the root
/// page refers to them by those names).
pub fn man_pages(root: &clap::Command) -> anyhow::Result<Vec<Artefact>> {
    let cmd = man_command(root);
    let mut pages = vec![render(&cmd)?];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(render(sub)?);
    }
    Ok(pages)
}

/// Everything `completions/` must hold, in a stable order.
pub fn all(root: &clap::Command) -> anyhow::Result<Vec<Artefact>> {
    let mut files: Vec<Artefact> = SHELLS.into_iter().map(|s| completion(root, s)).collect();
    files.extend(man_pages(root)?);
    Ok(files)
}

fn shell_of(what: What) -> Option<Shell> {
    match what {
        What::Bash => Some(Shell::Bash),
        What::Zsh => Some(Shell::Zsh),
        What::Fish => Some(Shell::Fish),
        What::PowerShell => Some(Shell::PowerShell),
        What::Elvish => Some(Shell::Elvish),
        What::Man | What::All => None,
    }
}

/// Writes what `args` asks for, generated from `root`, the whole command line (passed
/// in by `main`, which owns the root definition).
pub async fn run(
    args: GenerateArgs,
    root: &clap::Command,
    reporter: &Reporter,
) -> anyhow::Result<Exit> {
    match (args.what, &args.out_dir) {
        (What::Man, None) => reporter.raw(&man_page(root)?.content)?,
        (What::Man, Some(dir)) => write_all(dir, &man_pages(root)?, reporter)?,
        (What::All, Some(dir)) => write_all(dir, &all(root)?, reporter)?,
        // clap requires --out-dir with `all`.
        (What::All, None) => anyhow::bail!("`generate all` needs --out-dir DIR"),
        (shell, out_dir) => {
            let shell = shell_of(shell).expect("every other value is a shell");
            let file = completion(root, shell);
            match out_dir {
                Some(dir) => write_all(dir, &[file], reporter)?,
                None => reporter.raw(&file.content)?,
            }
        }
    }
    Ok(Exit::Success)
}

fn write_all(dir: &Path, files: &[Artefact], reporter: &Reporter) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    for file in files {
        let path = dir.join(&file.file_name);
        std::fs::write(&path, &file.content)
            .with_context(|| format!("failed to write {}", path.display()))?;
        reporter.note(&format!("wrote {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> anyhow::Result<Vec<Artefact>> {
        super::all(&crate::cli::command())
    }

    #[test]
    fn every_file_has_its_own_name() {
        let files = all().unwrap();
        let mut names: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), files.len(), "{names:?}");
        assert!(names.contains(&"syncprobe.1") && names.contains(&"syncprobe.bash"));
    }

    #[test]
    fn the_hidden_subcommand_is_left_out() {
        // How each shell's script names it: its description (zsh, fish, powershell,
        // elvish, man) and its case labels (bash, zsh, powershell, elvish).
        let marks = [
            "Write shell completions or the man page",
            "subcmd__generate",
            "syncprobe;generate",
        ];
        for file in all().unwrap() {
            let text = String::from_utf8(file.content).unwrap();
            for own in marks {
                assert!(!text.contains(own), "{} offers `generate`", file.file_name);
            }
        }
    }
}
