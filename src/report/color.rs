//! When colour is used: one policy for stdout, stderr and clap's own help.
//!
//! `--color always|never` decides alone. `auto` (the default) follows the common
//! conventions, in this order: `NO_COLOR` (any non-empty value) turns colour off;
//! `CLICOLOR_FORCE` (non-empty and not `0`) turns it on; `CLICOLOR=0` turns it off;
//! otherwise the stream must be a terminal whose `TERM` is not `dumb`.

use std::ffi::OsString;
use std::io::IsTerminal;

/// `--color WHEN`, as the reporter takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// Whether `stream` gets colour under `when`, reading the process environment.
pub fn enabled(when: Color, stream: &impl IsTerminal) -> bool {
    decide(when, stream.is_terminal(), |name| std::env::var_os(name))
}

/// The policy itself, with the terminal test and the environment passed in.
pub fn decide(when: Color, is_terminal: bool, env: impl Fn(&str) -> Option<OsString>) -> bool {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    match when {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            if set("NO_COLOR").is_some() {
                false
            } else if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
                true
            } else if set("CLICOLOR").is_some_and(|v| v == "0") {
                false
            } else {
                is_terminal && set("TERM").is_none_or(|t| t != "dumb")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(tty: bool, vars: &[(&str, &str)]) -> bool {
        decide(Color::Auto, tty, |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn the_conventions_in_order() {
        assert!(auto(true, &[]));
        assert!(!auto(false, &[]));
        assert!(!auto(true, &[("NO_COLOR", "1")]));
        assert!(auto(true, &[("NO_COLOR", "")]), "empty NO_COLOR is unset");
        assert!(!auto(true, &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")]));
        assert!(auto(false, &[("CLICOLOR_FORCE", "1")]));
        assert!(!auto(false, &[("CLICOLOR_FORCE", "0")]), "0 is not forced");
        assert!(!auto(true, &[("CLICOLOR", "0")]));
        assert!(!auto(true, &[("TERM", "dumb")]));
        assert!(auto(false, &[("TERM", "dumb"), ("CLICOLOR_FORCE", "yes")]));
        assert!(decide(Color::Always, false, |_| None));
        assert!(!decide(Color::Never, true, |_| None));
    }
}
