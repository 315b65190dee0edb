//! The only code that writes to stdout. Commands hand typed records to the
//! [`Reporter`]; whether they become coloured text or NDJSON is decided here, once.
//!
//! Human text goes to stdout (results) and stderr (diagnostics: notes, errors, the
//! `listening` line of `serve`). With `--json`, stdout carries only NDJSON records
//! (see [`json`]); diagnostics still go to stderr. A closed stdout (`| head`) is not
//! an error: writes stop quietly.

pub mod human;
pub mod json;
pub mod junit;

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anstream::{AutoStream, ColorChoice};
use serde::Serialize;

use crate::cli::{ColorWhen, GlobalArgs};
use crate::exit::Exit;

/// How much the user asked to see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Writes every record of a run, as text or NDJSON.
pub struct Reporter {
    json: bool,
    verbosity: Verbosity,
    out: Mutex<AutoStream<io::Stdout>>,
    err: Mutex<AutoStream<io::Stderr>>,
    /// Set once stdout is closed by the reader; later writes are dropped.
    out_closed: AtomicBool,
    /// The live progress line of long runs (stderr, terminals only).
    bar: Mutex<Option<indicatif::ProgressBar>>,
    last_progress_record: Mutex<Option<std::time::Instant>>,
}

impl Reporter {
    pub fn new(global: &GlobalArgs) -> Reporter {
        let verbosity = match (global.quiet, global.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            _ => Verbosity::Verbose,
        };
        Reporter::with_options(global.json, global.color, verbosity)
    }

    pub fn with_options(json: bool, color: ColorWhen, verbosity: Verbosity) -> Reporter {
        let choice = |is_out: bool| match color {
            ColorWhen::Always => ColorChoice::Always,
            ColorWhen::Never => ColorChoice::Never,
            // NO_COLOR, CLICOLOR_FORCE, TERM=dumb and "is a terminal" are read here.
            ColorWhen::Auto if is_out => AutoStream::choice(&io::stdout()),
            ColorWhen::Auto => AutoStream::choice(&io::stderr()),
        };
        Reporter {
            json,
            verbosity,
            out: Mutex::new(AutoStream::new(io::stdout(), choice(true))),
            err: Mutex::new(AutoStream::new(io::stderr(), choice(false))),
            out_closed: AtomicBool::new(false),
            bar: Mutex::new(None),
            last_progress_record: Mutex::new(None),
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// Whether colour reaches stdout (for renderers that choose layout by it).
    pub fn stdout_is_colored(&self) -> bool {
        self.out
            .lock()
            .map(|s| s.current_choice() != ColorChoice::Never)
            .unwrap_or(false)
    }

    /// Writes one NDJSON record `{"type":…,"data":…}` and flushes it.
    pub fn json_record<T: Serialize + ?Sized>(&self, kind: &str, data: &T) {
        match json::line(kind, data) {
            Ok(line) => self.write_out(&line),
            Err(e) => self.note(&format!("could not encode a {kind} record: {e}")),
        }
    }

    /// Writes text to stdout (already styled; AutoStream strips styles when needed).
    pub fn write_out(&self, text: &str) {
        if self.out_closed.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut out) = self.out.lock() else { return };
        let result = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        if let Err(e) = result {
            // A reader that went away (`| head`) ends our output, not our run.
            if e.kind() == io::ErrorKind::BrokenPipe {
                self.out_closed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Writes text to stderr; diagnostics never fail the run.
    pub fn write_err(&self, text: &str) {
        if let Ok(mut err) = self.err.lock() {
            let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
        }
    }

    /// A diagnostic line on stderr (`syncprobe: note: …`), hidden by `-q`.
    pub fn note(&self, message: &str) {
        if self.verbosity > Verbosity::Quiet {
            self.write_err(&human::note(message));
        }
    }

    /// A diagnostic line shown only with `-v`.
    pub fn debug(&self, message: &str) {
        if self.verbosity >= Verbosity::Verbose {
            self.write_err(&human::note(message));
        }
    }

    /// `serve` is bound: `listening on ws://ADDR` on stderr, and a record with `--json`.
    pub fn listening(&self, addr: std::net::SocketAddr, url: &str) {
        if self.json {
            self.json_record("listening", &json::Listening { addr, url });
        }
        self.write_err(&human::listening(url));
    }

    /// A line of human narration on stdout (`Testing WebSocket connection to: …`);
    /// not part of `--json`, hidden by `-q`.
    pub fn say(&self, text: &str) {
        if !self.json && self.verbosity > Verbosity::Quiet {
            self.write_out(&format!("{text}\n"));
        }
    }

    /// A socket opened.
    pub fn open(&self, open: &json::Open) {
        if self.json {
            self.json_record("open", open);
        } else if self.verbosity > Verbosity::Quiet {
            self.write_out(&human::open(open));
        }
    }

    /// A frame from the server: untouched inside an `event` record, or rendered in
    /// `style` for people.
    pub fn event(
        &self,
        raw: &str,
        frame: Option<&crate::protocol::ServerFrame>,
        style: human::EventStyle,
    ) {
        if self.json {
            match serde_json::value::RawValue::from_string(raw.to_string()) {
                Ok(value) => self.json_record("event", &value),
                // Not JSON at all: still reported, as a string, so nothing is lost.
                Err(_) => self.json_record("event", raw),
            }
        } else if self.verbosity > Verbosity::Quiet {
            self.write_out(&human::event(raw, frame, style));
        }
    }

    /// A socket closed.
    pub fn close(&self, close: &json::Close) {
        if self.json {
            self.json_record("close", close);
        } else if self.verbosity > Verbosity::Quiet {
            self.write_out(&human::close(close));
        }
    }

    /// The final record of a run; `human` is its text rendering.
    pub fn summary<T: Serialize>(&self, data: &T, human: impl FnOnce() -> String) {
        if self.json {
            self.json_record("summary", data);
        } else {
            self.write_out(&human());
        }
    }

    /// A warning worth a line even in quiet mode (possible loss, protocol oddities).
    pub fn warn(&self, message: &str) {
        if self.json {
            self.json_record("warning", &json::Warning { message });
        }
        self.write_err(&human::warning(message));
    }

    /// Live figures of a long run: a progress line on stderr when it is a terminal
    /// (not with `--json` or `-q`), and with `--json` a `progress` record a second.
    pub fn progress<T: Serialize>(&self, line: &str, data: &T) {
        use std::io::IsTerminal;
        if self.json {
            let mut last = self.last_progress_record.lock().expect("progress lock");
            if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
                *last = Some(std::time::Instant::now());
                drop(last);
                self.json_record("progress", data);
            }
            return;
        }
        if self.verbosity == Verbosity::Quiet || !io::stderr().is_terminal() {
            return;
        }
        let mut bar = self.bar.lock().expect("bar lock");
        let bar = bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar
        });
        bar.set_message(line.to_string());
        bar.tick();
    }

    /// Removes the progress line, if one is drawn.
    pub fn finish_progress(&self) {
        if let Some(bar) = self.bar.lock().expect("bar lock").take() {
            bar.finish_and_clear();
        }
    }

    /// The error that ends the run: one line on stderr (cause chain included), hints
    /// after it, and an `error` record on stdout with `--json`.
    pub fn error(&self, err: &anyhow::Error, exit: Exit) {
        if self.json {
            self.json_record(
                "error",
                &json::ErrorRecord {
                    message: format!("{err:#}"),
                    exit_code: exit.code(),
                },
            );
        }
        self.write_err(&human::error(err));
    }
}
