//! The only code that writes to stdout. Commands hand typed records to the
//! [`Reporter`]; whether they become coloured text or NDJSON is decided here, once.
//!
//! Human text goes to stdout (results) and stderr (diagnostics: notes, errors, the
//! `listening` line of `serve`). With `--json`, stdout carries only NDJSON records
//! (see [`json`]); diagnostics still go to stderr. A closed stdout (`| head`) is not
//! an error: writes stop quietly.

pub mod chart;
pub mod color;
pub mod conflicts;
pub mod connect;
pub mod doctor;
pub mod enqueue;
pub mod html;
pub mod human;
pub mod json;
pub mod junit;
pub mod load;
pub mod proxy;
pub mod replay;
pub mod smoke;
pub mod status;
pub mod token;
pub mod watch;

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anstream::{AutoStream, ColorChoice};

pub use self::color::Color;
use self::json::{EventData, Record};
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
    /// Set once stdout is closed by the reader (or failed); later writes are dropped.
    out_closed: AtomicBool,
    /// The first failure to write stdout, other than a closed pipe.
    write_failed: Mutex<Option<io::Error>>,
    /// The live progress line of long runs (stderr, terminals only).
    bar: Mutex<Option<indicatif::ProgressBar>>,
    last_progress_record: Mutex<Option<std::time::Instant>>,
}

impl Reporter {
    /// A reporter writing NDJSON (`json`) or text, colouring each stream as
    /// [`color`] decides.
    pub fn with_options(json: bool, color: Color, verbosity: Verbosity) -> Reporter {
        // NDJSON is never coloured; text is, per stream, as the policy says.
        let out_colored = !json && color::enabled(color, &io::stdout());
        let err_colored = color::enabled(color, &io::stderr());
        // The renderers style through `colored`; a stream that must stay plain has
        // the styles stripped by its AutoStream.
        colored::control::set_override(out_colored || err_colored);
        let choice = |on: bool| {
            if on {
                ColorChoice::Always
            } else {
                ColorChoice::Never
            }
        };
        Reporter {
            json,
            verbosity,
            out: Mutex::new(AutoStream::new(io::stdout(), choice(out_colored))),
            err: Mutex::new(AutoStream::new(io::stderr(), choice(err_colored))),
            out_closed: AtomicBool::new(false),
            write_failed: Mutex::new(None),
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

    /// Writes one NDJSON record `{"type":…,"data":…}` and flushes it.
    pub fn record(&self, record: &Record<'_>) {
        match json::line(record) {
            Ok(line) => self.write_out(&line),
            Err(e) => self.note(&format!("could not encode a {} record: {e}", record.kind())),
        }
    }

    /// Writes bytes to stdout unchanged (generated files); a reader that went away
    /// is not an error, any other write failure is.
    pub fn raw(&self, bytes: &[u8]) -> anyhow::Result<()> {
        if self.out_closed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut out = self.out.lock().expect("stdout lock");
        match out.write_all(bytes).and_then(|()| out.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.out_closed.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(anyhow::Error::new(e).context("failed to write to stdout")),
            Ok(()) => Ok(()),
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
            // A reader that went away (`| head`) ends our output, not our run; any
            // other failure (a full disk) is kept for [`Reporter::finish`].
            self.out_closed.store(true, Ordering::Relaxed);
            if e.kind() != io::ErrorKind::BrokenPipe {
                let mut failed = self.write_failed.lock().expect("write lock");
                failed.get_or_insert(e);
            }
        }
    }

    /// The end of the output: an error when writing to stdout failed (other than a
    /// closed pipe), so that a run whose output was lost does not exit 0.
    pub fn finish(&self) -> anyhow::Result<()> {
        match self.write_failed.lock().expect("write lock").take() {
            Some(e) => Err(anyhow::Error::new(e).context("failed to write to stdout")),
            None => Ok(()),
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
            self.record(&Record::Listening(json::Listening { addr, url }));
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
            self.record(&Record::Open(open));
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
                Ok(value) => self.record(&Record::Event(EventData::Json(&value))),
                // Not JSON at all: still reported, as a string, so nothing is lost.
                Err(_) => self.record(&Record::Event(EventData::Text(raw))),
            }
        } else if self.verbosity > Verbosity::Quiet {
            self.write_out(&human::event(raw, frame, style));
        }
    }

    /// A socket closed.
    pub fn close(&self, close: &json::Close) {
        if self.json {
            self.record(&Record::Close(close));
        } else if self.verbosity > Verbosity::Quiet {
            self.write_out(&human::close(close));
        }
    }

    /// A `smoke` step.
    pub fn step(&self, step: &smoke::Step) {
        if self.json {
            self.record(&Record::Step(step));
        } else {
            self.say(&smoke::step_line(step));
        }
    }

    /// The final record of a run; `human` is its text rendering.
    pub fn summary(&self, data: json::Summary<'_>, human: impl FnOnce() -> String) {
        if self.json {
            self.record(&Record::Summary(data));
        } else {
            self.write_out(&human());
        }
    }

    /// A warning that does not change the verdict (possible loss, protocol oddities,
    /// a reconnection): a line on stderr, hidden by `-q` ("only errors and the final
    /// result"); with `--json` always a `warning` record. What changes the verdict is
    /// an error, not a warning.
    pub fn warn(&self, message: &str) {
        if self.json {
            self.record(&Record::Warning(json::Warning { message }));
        }
        if self.verbosity > Verbosity::Quiet {
            self.write_err(&human::warning(message));
        }
    }

    /// Live figures of a long run: a progress line on stderr when it is a terminal
    /// (not with `--json` or `-q`), and with `--json` a `progress` record a second.
    pub fn progress(&self, line: &str, data: &crate::load::Progress) {
        use std::io::IsTerminal;
        if self.json {
            let mut last = self.last_progress_record.lock().expect("progress lock");
            if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
                *last = Some(std::time::Instant::now());
                drop(last);
                self.record(&Record::Progress(data));
            }
            return;
        }
        if self.verbosity == Verbosity::Quiet || !io::stderr().is_terminal() {
            return;
        }
        let mut bar = self.bar.lock().expect("bar lock");
        let bar = bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            let term = ShortOfTheEdge(console::Term::buffered_stderr());
            bar.set_draw_target(indicatif::ProgressDrawTarget::term_like_with_hz(
                Box::new(term),
                20,
            ));
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
        self.error_record(&format!("{err:#}"), exit);
        self.write_err(&human::error(err));
    }

    /// With `--json`, the `error` record alone: for errors whose text is written to
    /// stderr by someone else (clap's usage errors).
    pub fn error_record(&self, message: &str, exit: Exit) {
        if self.json {
            self.record(&Record::Error(json::ErrorRecord {
                message: message.to_string(),
                exit_code: exit.code(),
            }));
        }
    }
}

/// Checks, before a run starts, that an output file given with `flag` can be
/// written: its folder exists, and the file, if it exists, is not read-only or a
/// folder. Nothing is created, so a run that fails early leaves nothing behind.
pub fn check_output_path(path: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    use crate::exit::Failure;
    let shown = path.display();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return Err(Failure::Usage(format!(
            "{flag} {shown}: the folder {} does not exist",
            parent.display()
        ))
        .into());
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(Failure::Usage(format!("{flag} {shown} is a folder")).into()),
        Ok(m) if m.permissions().readonly() => {
            Err(Failure::Usage(format!("{flag} {shown} is read-only")).into())
        }
        _ => Ok(()),
    }
}

/// stderr for the progress line, two columns narrower than the terminal. indicatif pads
/// the line to the terminal's width, so the `^C` a terminal echoes at Ctrl-C wrapped to
/// the next line, and clearing the progress line then cleared that one, leaving the
/// last progress line above the summary. Two columns short of the edge, the echo stays
/// on the progress line and is cleared with it.
#[derive(Debug)]
struct ShortOfTheEdge(console::Term);

impl indicatif::TermLike for ShortOfTheEdge {
    fn width(&self) -> u16 {
        indicatif::TermLike::width(&self.0).saturating_sub(2).max(1)
    }
    fn height(&self) -> u16 {
        indicatif::TermLike::height(&self.0)
    }
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.0.write_line(s)
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.0.write_str(s)
    }
    fn clear_line(&self) -> io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}
