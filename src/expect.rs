//! The expectation language of `watch-sync --expect PATTERN`: an ordered pattern of
//! event types, with alternatives and repetition, matched against the event types a
//! sync socket sends.
//!
//! This module owns the syntax (parsing with positioned errors), the compiled form
//! ([`Pattern`], a small NFA), and the incremental matching of one stream of events
//! ([`Matcher`], one per watched item), including the human explanation of why an
//! expectation failed or is still unmet. It knows nothing about sockets or timeouts:
//! callers push event types and look at the [`Status`].
//!
//! # Syntax
//!
//! ```text
//! CONNECTED SYNC_QUEUED SYNC_PROCESSING+ (SYNC_SUCCESS|SYNC_CONFLICT)
//! ```
//!
//! - **Event type**: a name `[A-Z][A-Z0-9_]*` matches one event of exactly that type.
//!   Names are case-insensitive: `sync_success` is read as `SYNC_SUCCESS`.
//! - **Shorthands**: `QUEUED`, `PROCESSING`, `SUCCESS`, `CONFLICT` and `FAILED` stand
//!   for `SYNC_QUEUED`, `SYNC_PROCESSING`, `SYNC_SUCCESS`, `SYNC_CONFLICT` and
//!   `SYNC_FAILED`. Only these five expand; every other name (`CONNECTED`,
//!   `HEARTBEAT`, ...) is taken literally.
//! - **`TERMINAL`** matches one of `SYNC_SUCCESS`, `SYNC_CONFLICT`, `SYNC_FAILED`.
//! - **`_`** matches any one event.
//! - **Groups**: `( ... )` groups a sub-pattern, e.g. to repeat or alternate it.
//! - **Quantifiers**, written directly after an atom: `+` (one or more), `*` (zero or
//!   more), `?` (zero or one), `{n}` (exactly n), `{n,}` (n or more), `{n,m}` (n to m,
//!   n ≤ m; spaces inside the braces are fine). Counts are at most 1000, and since
//!   nested counts multiply, the whole pattern may expand to at most 10 000 matching
//!   steps. Quantifiers do not stack (`A+*` is an error; write `(A+)*`).
//! - **Sequence**: atoms separated by whitespace and/or commas; `A,B` and `A B` are
//!   the same.
//! - **Alternation**: `|` between sequences, with the lowest precedence, at the top
//!   level or inside a group: `A B|C` is `(A B)|C`. Alternatives cannot be empty; use
//!   `?` for an optional part.
//!
//! # Matching modes
//!
//! - [`Mode::Subsequence`] (the default): the pattern must match a subsequence of the
//!   events; events that do not fit are skipped wherever they occur (before, between,
//!   after). Such a match never fails by itself, it stays pending until satisfied.
//! - [`Mode::Strict`]: the events, from the first one, must follow the pattern with
//!   nothing skipped. The match fails at the first event the pattern cannot take.
//!
//! In both modes the match is satisfied as soon as the events seen so far complete
//! the pattern (immediately if the pattern accepts no events at all, like `A*`); what
//! arrives afterwards does not change the outcome. Repetitions are neither greedy nor
//! lazy: every way of matching is followed at once, so `PROCESSING+ SUCCESS` matches
//! `SYNC_PROCESSING SYNC_PROCESSING SYNC_SUCCESS`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Largest count accepted in `{n}`, `{n,}` and `{n,m}`.
pub const MAX_REPEAT: u32 = 1000;

/// Upper bound on the compiled size of a pattern. Repetitions copy their body, so
/// nested counts multiply (`((A{1000}){1000}){1000}`); this keeps every pattern that
/// parses cheap to match.
pub const MAX_STATES: usize = 10_000;

/// Deepest nesting of `(` accepted; the parser is recursive and must not overflow
/// the stack on hostile input.
pub const MAX_NESTING: usize = 32;

/// What `expected_next` reports for `_`.
const ANY_EVENT: &str = "any event";

/// The short names that gain a `SYNC_` prefix.
const SHORTHANDS: [&str; 5] = ["QUEUED", "PROCESSING", "SUCCESS", "CONFLICT", "FAILED"];

/// An event type as people write it, in full: upper-cased, and a shorthand
/// (`failed`) expanded to its `SYNC_` type. `--fail-on` reads names this way too.
pub fn event_type_name(written: &str) -> String {
    let name = written.trim().to_ascii_uppercase();
    if SHORTHANDS.contains(&name.as_str()) {
        format!("SYNC_{name}")
    } else {
        name
    }
}

/// What `TERMINAL` stands for.
const TERMINAL_TYPES: [&str; 3] = ["SYNC_SUCCESS", "SYNC_CONFLICT", "SYNC_FAILED"];

/// The event types of the protocol. A guard naming anything else could never fire,
/// so names outside this list (and outside `--allow-type`) are usage errors.
pub const KNOWN_TYPES: [&str; 6] = [
    "CONNECTED",
    "SYNC_QUEUED",
    "SYNC_PROCESSING",
    "SYNC_SUCCESS",
    "SYNC_CONFLICT",
    "SYNC_FAILED",
];

/// Checks an event type as written (`SUCCES`, `sync_faild`) against the protocol's
/// types and `allowed` (full names of custom types): `Err` says what is unknown and,
/// when one is close, what was probably meant.
pub fn check_type_name(written: &str, allowed: &[String]) -> Result<(), String> {
    let full = event_type_name(written);
    if full.is_empty() {
        return Err("an event type is empty".into());
    }
    if KNOWN_TYPES.contains(&full.as_str()) || allowed.iter().any(|a| event_type_name(a) == full) {
        return Ok(());
    }
    let upper = written.trim().to_ascii_uppercase();
    let candidates = KNOWN_TYPES
        .iter()
        .map(|t| t.to_string())
        .chain(SHORTHANDS.iter().map(|s| s.to_string()))
        .chain(["TERMINAL".to_string()])
        .chain(allowed.iter().map(|a| a.to_ascii_uppercase()));
    let nearest = candidates
        .map(|c| (strsim::damerau_levenshtein(&upper, &c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min();
    let mut message = format!("unknown event type {}", written.trim());
    if let Some((_, near)) = nearest {
        message.push_str(&format!(" (did you mean {near}?)"));
    }
    message.push_str("; a custom type needs --allow-type NAME");
    Err(message)
}

// ---------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------

/// A pattern that does not parse, with the column of the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based character (not byte) column in the pattern.
    pub column: usize,
    pub message: String,
    pattern: String,
}

impl ParseError {
    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The caret counts characters, so every character must take exactly one cell:
        // tabs and newlines would move the pattern out from above the caret.
        let shown: String = self
            .pattern
            .chars()
            .map(|c| {
                if c.is_whitespace() {
                    ' '
                } else if c.is_control() {
                    '?'
                } else {
                    c
                }
            })
            .collect();
        write!(
            f,
            "invalid expectation at column {}: {}\n  {}\n  {}^",
            self.column,
            self.message,
            shown,
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

impl std::error::Error for ParseError {}

// ---------------------------------------------------------------------------------
// Compiled pattern
// ---------------------------------------------------------------------------------

/// One atom as written in the pattern. Repetitions compile the same atom several
/// times; all copies point here, so explanations can name the source position.
#[derive(Clone, Debug)]
struct Atom {
    /// 1-based column where the atom starts.
    column: usize,
    /// The spelling in the pattern (`QUEUED`, `sync_success`, `_`, `TERMINAL`).
    written: String,
    kind: AtomKind,
}

#[derive(Clone, Debug)]
enum AtomKind {
    Any,
    /// Full event type names after expansion.
    Types(Vec<String>),
}

impl Atom {
    fn matches(&self, event_type: &str) -> bool {
        match &self.kind {
            AtomKind::Any => true,
            AtomKind::Types(types) => types.iter().any(|t| t == event_type),
        }
    }

    fn labels(&self) -> Vec<String> {
        match &self.kind {
            AtomKind::Any => vec![ANY_EVENT.to_string()],
            AtomKind::Types(types) => types.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// Consumes one event that matches the atom.
    Step {
        atom: usize,
        next: usize,
    },
    /// Epsilon transition to both.
    Split(usize, usize),
    Accept,
}

/// A parsed and compiled expectation. Share it with [`Arc`] between the matchers of
/// all watched items.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    atoms: Vec<Atom>,
    states: Vec<State>,
    start: usize,
}

impl Pattern {
    /// Parses and compiles `text`; see the module documentation for the syntax.
    pub fn parse(text: &str) -> Result<Pattern, ParseError> {
        let mut parser = Parser {
            chars: text.chars().collect(),
            pos: 0,
            depth: 0,
            atoms: Vec::new(),
            source: text,
        };
        let root = parser.parse_pattern()?;
        let mut pattern = Pattern {
            source: text.to_string(),
            atoms: parser.atoms,
            states: Vec::with_capacity(root.states + 1),
            start: 0,
        };
        pattern.states.push(State::Accept);
        pattern.start = pattern.compile(&root.node, 0);
        Ok(pattern)
    }

    /// The text as given to [`Pattern::parse`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first atom naming a type that is neither the protocol's nor in `allowed`,
    /// as a usage message pointing at its column.
    pub fn check_types(&self, allowed: &[String]) -> Result<(), String> {
        for atom in &self.atoms {
            if let AtomKind::Types(_) = atom.kind
                && !atom.written.eq_ignore_ascii_case("TERMINAL")
                && let Err(message) = check_type_name(&atom.written, allowed)
            {
                return Err(format!(
                    "--expect {:?}, column {}: {message}",
                    self.source, atom.column
                ));
            }
        }
        Ok(())
    }

    /// Whether an atom of the pattern names `event_type` (a full, upper-case type
    /// name; shorthands and `TERMINAL` count as naming what they expand to, `_` names
    /// nothing).
    pub fn mentions(&self, event_type: &str) -> bool {
        self.atoms.iter().any(|atom| match &atom.kind {
            AtomKind::Any => false,
            AtomKind::Types(types) => types.iter().any(|t| t == event_type),
        })
    }

    /// Appends the states for `node`, continuing to `next`; returns the entry state.
    /// Building back to front means no patch lists: every continuation exists before
    /// what jumps to it, except loops, which fill in a placeholder.
    fn compile(&mut self, node: &Node, next: usize) -> usize {
        match node {
            Node::Atom(atom) => self.add(State::Step { atom: *atom, next }),
            Node::Seq(items) => items
                .iter()
                .rev()
                .fold(next, |cont, item| self.compile(item, cont)),
            Node::Alt(alternatives) => {
                let starts: Vec<usize> = alternatives
                    .iter()
                    .map(|alt| self.compile(alt, next))
                    .collect();
                let mut entries = starts.into_iter().rev();
                let last = entries.next().unwrap_or(next);
                entries.fold(last, |rest, start| self.add(State::Split(start, rest)))
            }
            Node::Repeat { node, min, max } => {
                let mut cont = next;
                let mandatory = match max {
                    Some(max) => {
                        // Each optional copy may be left for `next`, so `X{1,3}` is
                        // `X (X (X)?)?`.
                        for _ in *min..*max {
                            let body = self.compile(node, cont);
                            cont = self.add(State::Split(body, next));
                        }
                        *min
                    }
                    None => {
                        let looping = self.add(State::Accept);
                        let body = self.compile(node, looping);
                        self.states[looping] = State::Split(body, next);
                        if *min == 0 {
                            cont = looping;
                            0
                        } else {
                            // The loop's body is the last mandatory copy.
                            cont = body;
                            min - 1
                        }
                    }
                };
                for _ in 0..mandatory {
                    cont = self.compile(node, cont);
                }
                cont
            }
        }
    }

    fn add(&mut self, state: State) -> usize {
        self.states.push(state);
        self.states.len() - 1
    }

    /// The epsilon closure of `seeds`, keeping only consuming and accepting states.
    /// When several seeds reach a state the first one's trace wins, so callers order
    /// seeds by preference.
    fn close(&self, seeds: Vec<Live>) -> Vec<Live> {
        let mut seen = vec![false; self.states.len()];
        let mut out = Vec::new();
        // An explicit stack: long chains of splits (`A?{1000}`) would be deep recursion.
        let mut stack = Vec::new();
        for seed in seeds {
            stack.push(seed.state);
            while let Some(state) = stack.pop() {
                if std::mem::replace(&mut seen[state], true) {
                    continue;
                }
                match self.states[state] {
                    State::Split(a, b) => {
                        stack.push(b);
                        stack.push(a);
                    }
                    State::Step { .. } | State::Accept => out.push(Live {
                        state,
                        trace: seed.trace.clone(),
                    }),
                }
            }
        }
        out
    }
}

impl FromStr for Pattern {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Pattern, ParseError> {
        Pattern::parse(text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

// ---------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------

#[derive(Debug)]
enum Node {
    Atom(usize),
    Seq(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

/// A node with the number of NFA states it will compile to, so that oversized
/// patterns are rejected, with a position, before anything is built.
struct Sized {
    node: Node,
    states: usize,
}

/// What came right before a sequence, to explain why an empty one is wrong.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Before {
    Start,
    OpenParen,
    Pipe,
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    atoms: Vec<Atom>,
    source: &'a str,
}

impl Parser<'_> {
    fn parse_pattern(&mut self) -> Result<Sized, ParseError> {
        self.skip_separators();
        if self.peek().is_none() {
            return Err(self.error_at(1, "empty pattern: expected at least one event type"));
        }
        let root = self.parse_alternation(Before::Start)?;
        match self.peek() {
            None => Ok(root),
            Some(')') => Err(self.unmatched_close()),
            // parse_alternation only stops at the end, ')' or an error.
            Some(c) => Err(self.error(format!("unexpected character {}", quoted(c)))),
        }
    }

    /// `sequence ('|' sequence)*`; stops before `)` or the end.
    fn parse_alternation(&mut self, before: Before) -> Result<Sized, ParseError> {
        let start_column = self.column();
        let mut alternatives = Vec::new();
        let mut states = 0usize;
        let mut before = before;
        loop {
            let alternative = self.parse_sequence(before)?;
            // One split per extra alternative.
            states = states
                .saturating_add(alternative.states)
                .saturating_add(usize::from(!alternatives.is_empty()));
            self.check_size(states, start_column)?;
            alternatives.push(alternative.node);
            if self.peek() == Some('|') {
                self.pos += 1;
                before = Before::Pipe;
            } else {
                break;
            }
        }
        let node = if alternatives.len() == 1 {
            alternatives.pop().unwrap_or_else(|| Node::Seq(Vec::new()))
        } else {
            Node::Alt(alternatives)
        };
        Ok(Sized { node, states })
    }

    /// One or more quantified atoms; stops before `|`, `)` or the end.
    fn parse_sequence(&mut self, before: Before) -> Result<Sized, ParseError> {
        let mut items = Vec::new();
        let mut states = 0usize;
        loop {
            self.skip_separators();
            let column = self.column();
            match self.peek() {
                None | Some('|') => break,
                Some(')') if self.depth == 0 => return Err(self.unmatched_close()),
                Some(')') => break,
                Some(c) if is_quantifier_start(c) => {
                    let message = if items.is_empty() {
                        format!("quantifier {} has nothing before it to repeat", quoted(c))
                    } else {
                        format!(
                            "quantifier {} must directly follow what it repeats (remove the space or comma before it)",
                            quoted(c)
                        )
                    };
                    return Err(self.error(message));
                }
                Some(_) => {
                    let item = self.parse_quantified()?;
                    states = states.saturating_add(item.states);
                    self.check_size(states, column)?;
                    items.push(item.node);
                }
            }
        }
        if items.is_empty() {
            return Err(self.empty_sequence(before));
        }
        let node = if items.len() == 1 {
            items.pop().unwrap_or_else(|| Node::Seq(Vec::new()))
        } else {
            Node::Seq(items)
        };
        Ok(Sized { node, states })
    }

    fn empty_sequence(&self, before: Before) -> ParseError {
        let found = match self.peek() {
            Some(c) => quoted(c),
            None => "the end of the pattern".to_string(),
        };
        if self.peek().is_none() && self.depth > 0 && before != Before::Pipe {
            return self.unclosed_open();
        }
        let why = match (before, self.peek()) {
            (Before::Pipe, _) => "the alternative after '|' cannot be empty",
            (_, Some('|')) => "the alternative before '|' cannot be empty",
            (Before::OpenParen, _) => "a group cannot be empty",
            // At the start of the whole pattern only '|' or ')' can end a sequence
            // before it began, and both are handled above.
            (Before::Start, _) => "an event type must come first",
        };
        self.error(format!("expected an event type, found {found}: {why}"))
    }

    /// An atom and an optional quantifier.
    fn parse_quantified(&mut self) -> Result<Sized, ParseError> {
        let atom = self.parse_atom()?;
        let Some(c) = self.peek().filter(|&c| is_quantifier_start(c)) else {
            return Ok(atom);
        };
        let column = self.column();
        let (min, max) = match c {
            '+' => {
                self.pos += 1;
                (1, None)
            }
            '*' => {
                self.pos += 1;
                (0, None)
            }
            '?' => {
                self.pos += 1;
                (0, Some(1))
            }
            _ => self.parse_braces()?,
        };
        if let Some(next) = self.peek().filter(|&c| is_quantifier_start(c)) {
            return Err(self.error(format!(
                "quantifier {} cannot follow another quantifier; put the repeated part in parentheses, e.g. (A+)*",
                quoted(next)
            )));
        }
        let copies = match max {
            Some(max) => max as usize,
            None => min.max(1) as usize,
        };
        // Bounded repeats add one split per optional copy, loops one split.
        let splits = match max {
            Some(max) => (max - min) as usize,
            None => 1,
        };
        let states = atom.states.saturating_mul(copies).saturating_add(splits);
        self.check_size(states, column)?;
        Ok(Sized {
            node: Node::Repeat {
                node: Box::new(atom.node),
                min,
                max,
            },
            states,
        })
    }

    /// `{n}`, `{n,}` or `{n,m}`, spaces allowed inside.
    fn parse_braces(&mut self) -> Result<(u32, Option<u32>), ParseError> {
        let open = self.column();
        self.pos += 1;
        self.skip_spaces();
        let min = self.parse_count("after '{'")?;
        self.skip_spaces();
        let max = if self.peek() == Some(',') {
            self.pos += 1;
            self.skip_spaces();
            let max = match self.peek() {
                Some(c) if c.is_ascii_digit() => Some(self.parse_count("after ','")?),
                _ => None,
            };
            self.skip_spaces();
            max
        } else {
            Some(min)
        };
        match self.peek() {
            Some('}') => self.pos += 1,
            None => {
                return Err(self.error_at(
                    open,
                    "unclosed '{': expected '}' to end the repetition count",
                ));
            }
            Some(c) => {
                return Err(self.error(format!(
                    "expected '}}' to end the repetition count, found {}",
                    quoted(c)
                )));
            }
        }
        if let Some(max) = max
            && min > max
        {
            return Err(self.error_at(
                open,
                format!(
                    "invalid repetition {{{min},{max}}}: the minimum {min} is larger than the maximum {max}"
                ),
            ));
        }
        Ok((min, max))
    }

    fn parse_count(&mut self, context: &str) -> Result<u32, ParseError> {
        let column = self.column();
        let start = self.pos;
        let mut value: u32 = 0;
        while let Some(digit) = self.peek().and_then(|c| c.to_digit(10)) {
            value = value.saturating_mul(10).saturating_add(digit);
            self.pos += 1;
        }
        if self.pos == start {
            let found = match self.peek() {
                Some(c) => quoted(c),
                None => "the end of the pattern".to_string(),
            };
            return Err(self.error(format!("expected a number {context}, found {found}")));
        }
        if value > MAX_REPEAT {
            let shown: String = self.chars[start..self.pos].iter().collect();
            return Err(self.error_at(
                column,
                format!("repetition count {shown} is larger than the limit of {MAX_REPEAT}"),
            ));
        }
        Ok(value)
    }

    fn parse_atom(&mut self) -> Result<Sized, ParseError> {
        let column = self.column();
        let Some(c) = self.peek() else {
            return Err(self.error("expected an event type, found the end of the pattern"));
        };
        if c == '(' {
            if self.depth >= MAX_NESTING {
                return Err(self.error(format!(
                    "groups are nested too deeply: at most {MAX_NESTING} levels of '(' are allowed"
                )));
            }
            self.pos += 1;
            self.depth += 1;
            let inner = self.parse_alternation(Before::OpenParen)?;
            if self.peek() != Some(')') {
                // parse_alternation stops only at ')' or the end.
                return Err(self.error_at(column, unclosed_message()));
            }
            self.pos += 1;
            self.depth -= 1;
            return Ok(inner);
        }
        if !(c.is_ascii_alphabetic() || c == '_') {
            let hint = if c.is_ascii_digit() {
                "event types start with a letter"
            } else {
                "event types are made of letters, digits and '_'"
            };
            return Err(self.error(format!("unexpected character {}: {hint}", quoted(c))));
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        let written: String = self.chars[start..self.pos].iter().collect();
        let name = written.to_ascii_uppercase();
        let kind = if name == "_" {
            AtomKind::Any
        } else if name.starts_with('_') {
            return Err(self.error_at(
                column,
                format!("invalid event type '{written}': event types start with a letter"),
            ));
        } else if name == "TERMINAL" {
            AtomKind::Types(TERMINAL_TYPES.iter().map(|t| t.to_string()).collect())
        } else {
            AtomKind::Types(vec![event_type_name(&name)])
        };
        self.atoms.push(Atom {
            column,
            written,
            kind,
        });
        Ok(Sized {
            node: Node::Atom(self.atoms.len() - 1),
            states: 1,
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn column(&self) -> usize {
        self.pos + 1
    }

    fn skip_separators(&mut self) {
        while self.peek().is_some_and(|c| c.is_whitespace() || c == ',') {
            self.pos += 1;
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn check_size(&self, states: usize, column: usize) -> Result<(), ParseError> {
        if states > MAX_STATES {
            return Err(self.error_at(
                column,
                format!(
                    "pattern too large: it expands to more than {MAX_STATES} matching steps; use smaller repetition counts"
                ),
            ));
        }
        Ok(())
    }

    fn unmatched_close(&self) -> ParseError {
        self.error("unmatched ')': no '(' is open here")
    }

    fn unclosed_open(&self) -> ParseError {
        // Point at the innermost '(' still open: scan back to find it.
        let mut depth = 0usize;
        let mut column = self.column();
        for (index, &c) in self.chars[..self.pos].iter().enumerate().rev() {
            match c {
                ')' => depth += 1,
                '(' if depth == 0 => {
                    column = index + 1;
                    break;
                }
                '(' => depth -= 1,
                _ => {}
            }
        }
        self.error_at(column, unclosed_message())
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.column(), message)
    }

    fn error_at(&self, column: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            column,
            message: message.into(),
            pattern: self.source.to_string(),
        }
    }
}

fn unclosed_message() -> &'static str {
    "unclosed '(': expected ')' before the end of the pattern"
}

fn is_quantifier_start(c: char) -> bool {
    matches!(c, '+' | '*' | '?' | '{')
}

fn quoted(c: char) -> String {
    format!("'{}'", c.escape_debug())
}

// ---------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------

/// How the events must line up with the pattern; see the module documentation.
/// Serialised as `subsequence` or `strict`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Events that do not fit are skipped.
    #[default]
    Subsequence,
    /// Every event from the first must fit.
    Strict,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Subsequence => "subsequence",
            Mode::Strict => "strict",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        match text.to_ascii_lowercase().as_str() {
            "subsequence" => Ok(Mode::Subsequence),
            "strict" => Ok(Mode::Strict),
            _ => Err(format!(
                "unknown match mode '{text}': expected 'subsequence' or 'strict'"
            )),
        }
    }
}

/// Where a match stands; serialised as `pending`, `satisfied` or `failed` (the
/// expectation status of the summaries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The pattern is not complete yet, but can still be.
    Pending,
    /// The events so far complete the pattern. Final.
    Satisfied,
    /// Strict mode only: an event did not fit. Final.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Satisfied => "satisfied",
            Status::Failed => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Which event matched which atom, as a shared linked list: live states fork from a
/// common past, and sharing it keeps a push at O(states) instead of copying
/// histories.
struct Trace {
    /// 1-based position of the event in the input.
    position: usize,
    atom: usize,
    len: usize,
    prev: Option<Arc<Trace>>,
}

impl Drop for Trace {
    // The default drop recurses once per node; a long stream (`HEARTBEAT+` over
    // hours) would overflow the stack. Unlink iteratively while we own the nodes.
    fn drop(&mut self) {
        let mut next = self.prev.take();
        while let Some(node) = next {
            match Arc::try_unwrap(node) {
                Ok(mut node) => next = node.prev.take(),
                Err(_) => break,
            }
        }
    }
}

impl fmt::Debug for Trace {
    // Only the head: printing the whole chain would recurse as deeply as dropping it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("position", &self.position)
            .field("atom", &self.atom)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
struct Live {
    state: usize,
    trace: Option<Arc<Trace>>,
}

fn trace_len(trace: &Option<Arc<Trace>>) -> usize {
    trace.as_ref().map_or(0, |t| t.len)
}

/// (event position, atom index) pairs in input order.
fn trace_steps(trace: &Option<Arc<Trace>>) -> Vec<(usize, usize)> {
    let mut steps = Vec::new();
    let mut cursor = trace.as_ref();
    while let Some(node) = cursor {
        steps.push((node.position, node.atom));
        cursor = node.prev.as_ref();
    }
    steps.reverse();
    steps
}

/// Where a strict match broke.
#[derive(Clone, Debug)]
struct Divergence {
    /// 1-based position of the event that did not fit.
    position: usize,
    expected: Vec<String>,
    trace: Option<Arc<Trace>>,
}

/// The progress of one stream of events (one watched item) through a [`Pattern`].
#[derive(Clone, Debug)]
pub struct Matcher {
    pattern: Arc<Pattern>,
    mode: Mode,
    status: Status,
    live: Vec<Live>,
    received: Vec<String>,
    /// Set when Satisfied: the number of events it took and the path that got there.
    satisfied: Option<(usize, Option<Arc<Trace>>)>,
    divergence: Option<Divergence>,
}

impl Matcher {
    pub fn new(pattern: &Arc<Pattern>, mode: Mode) -> Matcher {
        let live = pattern.close(vec![Live {
            state: pattern.start,
            trace: None,
        }]);
        let mut matcher = Matcher {
            pattern: Arc::clone(pattern),
            mode,
            status: Status::Pending,
            live,
            received: Vec::new(),
            satisfied: None,
            divergence: None,
        };
        matcher.check_accept();
        matcher
    }

    pub fn pattern(&self) -> &Arc<Pattern> {
        &self.pattern
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Feeds one event type; returns the status after it. Once Satisfied or Failed
    /// the status sticks; further pushes are recorded but do not change it.
    pub fn push(&mut self, event_type: &str) -> Status {
        self.received.push(event_type.to_string());
        if self.status != Status::Pending {
            return self.status;
        }
        let position = self.received.len();
        let pattern = Arc::clone(&self.pattern);
        let mut seeds = Vec::new();
        for live in &self.live {
            if let State::Step { atom, next } = pattern.states[live.state]
                && pattern.atoms[atom].matches(event_type)
            {
                seeds.push(Live {
                    state: next,
                    trace: Some(Arc::new(Trace {
                        position,
                        atom,
                        len: trace_len(&live.trace) + 1,
                        prev: live.trace.clone(),
                    })),
                });
            }
        }
        match self.mode {
            Mode::Strict if seeds.is_empty() => {
                self.divergence = Some(Divergence {
                    position,
                    expected: self.expected_next(),
                    trace: self.best_trace(),
                });
                self.status = Status::Failed;
                self.live.clear();
                return self.status;
            }
            Mode::Strict => {}
            // Skipping the event keeps every state that was live.
            Mode::Subsequence => seeds.append(&mut self.live),
        }
        // The closure keeps the first trace to reach a state; preferring the longest
        // makes explanations show the most progress. The sort is stable, so among
        // equals the advancing seeds (pushed first) win.
        seeds.sort_by_key(|seed| std::cmp::Reverse(trace_len(&seed.trace)));
        self.live = pattern.close(seeds);
        self.check_accept();
        self.status
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// The event types that would make progress next, sorted and deduplicated;
    /// `"any event"` stands for `_`. Empty once Satisfied. Once Failed, what was
    /// expected where the events diverged. In subsequence mode, types that would only
    /// repeat progress already made (such as the first atom, which can always be
    /// matched again) are left out.
    pub fn expected_next(&self) -> Vec<String> {
        match self.status {
            Status::Satisfied => return Vec::new(),
            Status::Failed => {
                return self
                    .divergence
                    .as_ref()
                    .map_or_else(Vec::new, |d| d.expected.clone());
            }
            Status::Pending => {}
        }
        let pattern = &self.pattern;
        let mut in_set = vec![false; pattern.states.len()];
        for live in &self.live {
            in_set[live.state] = true;
        }
        let mut labels = Vec::new();
        for live in &self.live {
            let State::Step { atom, next } = pattern.states[live.state] else {
                continue;
            };
            let progresses = match self.mode {
                Mode::Strict => true,
                Mode::Subsequence => pattern
                    .close(vec![Live {
                        state: next,
                        trace: None,
                    }])
                    .iter()
                    .any(|reached| !in_set[reached.state]),
            };
            if progresses {
                labels.extend(pattern.atoms[atom].labels());
            }
        }
        labels.sort();
        labels.dedup();
        labels
    }

    /// What arrived so far (the types pushed), in order.
    pub fn received(&self) -> &[String] {
        &self.received
    }

    /// Multi-line explanation of where the match stands: the pattern, every event
    /// received with what it matched (or why not), and what was expected next. Meant
    /// for a failure or for an expectation still unmet at a timeout; it also
    /// describes a satisfied match.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let (trace, cutoff) = match self.status {
            Status::Satisfied => {
                let (at, trace) = self.satisfied.clone().unwrap_or((0, None));
                if at == 0 {
                    out.push_str(&format!(
                        "expectation met ({}): the pattern accepts an empty stream\n",
                        self.mode
                    ));
                } else {
                    out.push_str(&format!(
                        "expectation met ({}) at {}\n",
                        self.mode,
                        self.name_of(at)
                    ));
                }
                (trace, Some(at))
            }
            Status::Failed => {
                let divergence = self.divergence.clone().unwrap_or(Divergence {
                    position: 0,
                    expected: Vec::new(),
                    trace: None,
                });
                let event = self
                    .received
                    .get(divergence.position.wrapping_sub(1))
                    .map_or_else(String::new, |t| {
                        crate::text::shown(t, crate::text::MAX_COLUMN)
                    });
                let expected = describe_expected(&divergence.expected);
                out.push_str(&match self.event_number(divergence.position) {
                    Some(n) => format!(
                        "expectation failed ({}): event {n} was {event}, expected {expected}\n",
                        self.mode
                    ),
                    None => format!(
                        "expectation failed ({}): CONNECTED arrived, expected {expected}\n",
                        self.mode
                    ),
                });
                let matched = divergence.position.saturating_sub(1);
                out.push_str(&match self.describe_prefix(matched) {
                    None => format!(
                        "{} already did not fit the pattern\n",
                        match self.event_number(divergence.position) {
                            Some(_) => "the first event",
                            None => "CONNECTED",
                        }
                    ),
                    Some(prefix) => {
                        format!("{prefix} matched the pattern, then the events diverged\n")
                    }
                });
                (divergence.trace, Some(divergence.position))
            }
            Status::Pending => {
                let trace = self.best_trace();
                let steps = trace_len(&trace);
                out.push_str(&format!(
                    "expectation not met ({}): {} of the pattern matched, expected next {}\n",
                    self.mode,
                    match steps {
                        0 => "nothing".to_string(),
                        1 => "1 step".to_string(),
                        n => format!("{n} steps"),
                    },
                    describe_expected(&self.expected_next())
                ));
                (trace, None)
            }
        };
        out.push_str(&format!("pattern: {}\n", self.pattern.source));

        if self.received.is_empty() {
            out.push_str("received no events\n");
            return out;
        }
        // CONNECTED is matched like an event but is not one of the stream's events:
        // counted apart and named rather than numbered, the numbers agree with the
        // summary and `--count`.
        let connected = self.connected_before(self.received.len());
        let events = self.received.len() - connected;
        out.push_str(&format!(
            "received {}{events} event{}:\n",
            match connected {
                0 => String::new(),
                1 => "CONNECTED and ".to_string(),
                n => format!("{n} CONNECTED and "),
            },
            if events == 1 { "" } else { "s" }
        ));
        let steps = trace_steps(&trace);
        // Types come from the server: escaped and clamped, so a huge one cannot size
        // (or overflow) the column.
        let shown: Vec<String> = self
            .received
            .iter()
            .map(|t| crate::text::shown(t, crate::text::MAX_COLUMN))
            .collect();
        let type_width = shown.iter().map(|t| t.chars().count()).max().unwrap_or(0);
        let number_width = events.to_string().len();
        let mut next_step = 0;
        let mut connected_so_far = 0;
        for (index, event_type) in shown.iter().enumerate() {
            let position = index + 1;
            // Steps are in input order, so one cursor walks them alongside the events.
            let matched = match steps.get(next_step) {
                Some(&(at, atom)) if at == position => {
                    next_step += 1;
                    Some(atom)
                }
                _ => None,
            };
            let note = if let Some(atom) = matched {
                let atom = &self.pattern.atoms[atom];
                format!("matched {} (pattern column {})", atom.written, atom.column)
            } else {
                match (self.status, cutoff) {
                    (Status::Failed, Some(at)) if position == at => "did not fit".to_string(),
                    (Status::Failed, Some(at)) if position > at => "after the failure".to_string(),
                    (Status::Satisfied, Some(at)) if position > at => "after the match".to_string(),
                    _ => "skipped".to_string(),
                }
            };
            // A running count: asking `event_number` per row would be quadratic.
            let number = if self.received[index] == "CONNECTED" {
                connected_so_far += 1;
                " ".repeat(number_width + 1)
            } else {
                format!("{:>number_width$}.", position - connected_so_far)
            };
            out.push_str(&format!("  {number} {event_type:<type_width$}  {note}\n"));
        }
        out
    }

    /// How many of the first `upto` received were CONNECTED.
    fn connected_before(&self, upto: usize) -> usize {
        self.received
            .iter()
            .take(upto)
            .filter(|t| *t == "CONNECTED")
            .count()
    }

    /// The number the summary gives the event at 1-based `position` of what was
    /// received (CONNECTED not counted); `None` for a CONNECTED.
    fn event_number(&self, position: usize) -> Option<usize> {
        match self.received.get(position.wrapping_sub(1)) {
            Some(t) if t == "CONNECTED" => None,
            _ => Some(position - self.connected_before(position)),
        }
    }

    /// What is received at `position`, by name: `CONNECTED` or `event N`.
    fn name_of(&self, position: usize) -> String {
        self.event_number(position)
            .map_or_else(|| "CONNECTED".to_string(), |n| format!("event {n}"))
    }

    /// The first `count` received, as a phrase (`CONNECTED and events 1-2`);
    /// `None` when `count` is 0.
    fn describe_prefix(&self, count: usize) -> Option<String> {
        let connected = self.connected_before(count);
        let connected = match connected {
            0 => None,
            1 => Some("CONNECTED".to_string()),
            n => Some(format!("{n} CONNECTED")),
        };
        let events = match count - self.connected_before(count) {
            0 => None,
            1 => Some("event 1".to_string()),
            n => Some(format!("events 1-{n}")),
        };
        match (connected, events) {
            (None, None) => None,
            (Some(c), Some(e)) => Some(format!("{c} and {e}")),
            (Some(one), None) | (None, Some(one)) => Some(one),
        }
    }

    /// The longest path among the live states: the most progress made so far.
    fn best_trace(&self) -> Option<Arc<Trace>> {
        self.live
            .iter()
            .max_by_key(|live| trace_len(&live.trace))
            .and_then(|live| live.trace.clone())
    }

    fn check_accept(&mut self) {
        let accepted = self
            .live
            .iter()
            .find(|live| matches!(self.pattern.states[live.state], State::Accept));
        if let Some(live) = accepted {
            self.satisfied = Some((self.received.len(), live.trace.clone()));
            self.status = Status::Satisfied;
            // Nothing can change a final status, so the states are dead weight.
            self.live.clear();
        }
    }
}

fn describe_expected(expected: &[String]) -> String {
    match expected {
        [] => "nothing more".to_string(),
        [one] => one.clone(),
        many => format!("one of {}", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Arc<Pattern> {
        match Pattern::parse(text) {
            Ok(p) => Arc::new(p),
            Err(e) => panic!("{text:?} should parse:\n{e}"),
        }
    }

    fn error(text: &str) -> ParseError {
        match Pattern::parse(text) {
            Ok(_) => panic!("{text:?} should not parse"),
            Err(e) => e,
        }
    }

    fn run(text: &str, mode: Mode, events: &[&str]) -> Matcher {
        let mut matcher = Matcher::new(&pattern(text), mode);
        for event in events {
            matcher.push(event);
        }
        matcher
    }

    fn status(text: &str, mode: Mode, events: &[&str]) -> Status {
        run(text, mode, events).status()
    }

    const EXAMPLE: &str = "CONNECTED SYNC_QUEUED SYNC_PROCESSING+ (SYNC_SUCCESS|SYNC_CONFLICT)";

    #[test]
    fn unknown_type_names_are_refused_with_the_nearest_name() {
        let none: Vec<String> = Vec::new();
        for ok in ["SUCCESS", "sync_failed", "CONNECTED", "queued"] {
            assert_eq!(check_type_name(ok, &none), Ok(()), "{ok}");
        }
        let err = |name: &str| check_type_name(name, &none).unwrap_err();
        assert!(err("SUCCES").starts_with("unknown event type SUCCES (did you mean SUCCESS?)"));
        assert!(
            err("SYNC_FAILD").contains("did you mean SYNC_FAILED?"),
            "{}",
            err("SYNC_FAILD")
        );
        assert!(!err("FOO").contains("did you mean"), "{}", err("FOO"));
        assert!(err("FOO").contains("--allow-type"));
        assert_eq!(err(""), "an event type is empty");
        assert_eq!(err("  "), "an event type is empty");
        let allowed = vec!["HEARTBEAT".to_string()];
        assert_eq!(check_type_name("heartbeat", &allowed), Ok(()));
        assert!(
            check_type_name("HEARTBEET", &allowed)
                .unwrap_err()
                .contains("HEARTBEAT?")
        );
        // Patterns: the column of the first unknown name; TERMINAL and _ are fine.
        let p = pattern("QUEUED PROCESSING+ SUCCES");
        let message = p.check_types(&none).unwrap_err();
        assert!(
            message.contains("column 20") && message.contains("did you mean SUCCESS?"),
            "{message}"
        );
        assert_eq!(
            pattern("QUEUED _ TERMINAL (SUCCESS|FAILED)").check_types(&none),
            Ok(())
        );
        assert_eq!(pattern("HEARTBEAT+").check_types(&allowed), Ok(()));
    }

    #[test]
    fn parses_valid_patterns() {
        for text in [
            EXAMPLE,
            "A",
            "A,B",
            "A , B,C",
            "A|B",
            "(A|B)+",
            "A(B)C",
            "((A))",
            "A B | C D",
            "_ _*",
            "A{2} B{2,} C{1,3} D{ 1 , 3 } E{0}",
            "TERMINAL",
            "sync_success",
            "A1_B2",
            "  A  ",
            "A?",
        ] {
            pattern(text);
        }
    }

    #[test]
    fn example_error_renders_with_caret_under_the_problem() {
        let err = error("CONNECTED SYNC_QUEUED (A|)");
        assert_eq!(err.column, 26);
        assert_eq!(
            err.to_string(),
            format!(
                "invalid expectation at column 26: expected an event type, found ')': \
                 the alternative after '|' cannot be empty\n  \
                 CONNECTED SYNC_QUEUED (A|)\n  {}^",
                " ".repeat(25)
            )
        );
        assert_eq!(err.pattern(), "CONNECTED SYNC_QUEUED (A|)");
    }

    #[test]
    fn rejects_malformed_patterns_with_positions() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "empty pattern: expected at least one event type"),
            (" , ", 1, "empty pattern: expected at least one event type"),
            (
                "A - B",
                3,
                "unexpected character '-': event types are made of letters, digits and '_'",
            ),
            (
                "A 1B",
                3,
                "unexpected character '1': event types start with a letter",
            ),
            (
                "A (B C",
                3,
                "unclosed '(': expected ')' before the end of the pattern",
            ),
            (
                "A (B (C) D",
                3,
                "unclosed '(': expected ')' before the end of the pattern",
            ),
            (
                "A (",
                3,
                "unclosed '(': expected ')' before the end of the pattern",
            ),
            ("A B)", 4, "unmatched ')': no '(' is open here"),
            (")", 1, "unmatched ')': no '(' is open here"),
            (
                "A ()",
                4,
                "expected an event type, found ')': a group cannot be empty",
            ),
            (
                "(|A)",
                2,
                "expected an event type, found '|': the alternative before '|' cannot be empty",
            ),
            (
                "|A",
                1,
                "expected an event type, found '|': the alternative before '|' cannot be empty",
            ),
            (
                "A||B",
                3,
                "expected an event type, found '|': the alternative after '|' cannot be empty",
            ),
            (
                "A|",
                3,
                "expected an event type, found the end of the pattern: the alternative after '|' cannot be empty",
            ),
            ("+A", 1, "quantifier '+' has nothing before it to repeat"),
            ("(*A)", 2, "quantifier '*' has nothing before it to repeat"),
            ("A|?", 3, "quantifier '?' has nothing before it to repeat"),
            ("{2}", 1, "quantifier '{' has nothing before it to repeat"),
            (
                "A +",
                3,
                "quantifier '+' must directly follow what it repeats (remove the space or comma before it)",
            ),
            (
                "A+*",
                3,
                "quantifier '*' cannot follow another quantifier; put the repeated part in parentheses, e.g. (A+)*",
            ),
            (
                "A{3,1}",
                2,
                "invalid repetition {3,1}: the minimum 3 is larger than the maximum 1",
            ),
            ("A{}", 3, "expected a number after '{', found '}'"),
            ("A{,3}", 3, "expected a number after '{', found ','"),
            (
                "A{2",
                2,
                "unclosed '{': expected '}' to end the repetition count",
            ),
            (
                "A{2,3x}",
                6,
                "expected '}' to end the repetition count, found 'x'",
            ),
            (
                "A{1001}",
                3,
                "repetition count 1001 is larger than the limit of 1000",
            ),
            (
                "A{1,99999999999999}",
                5,
                "repetition count 99999999999999 is larger than the limit of 1000",
            ),
            (
                "A _B",
                3,
                "invalid event type '_B': event types start with a letter",
            ),
        ];
        for &(text, column, message) in cases {
            let err = error(text);
            assert_eq!(
                (err.column, err.message.as_str()),
                (column, message),
                "pattern {text:?}"
            );
        }
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let err = error("É A");
        assert_eq!(err.column, 1);
        let err = error("A é");
        assert_eq!(err.column, 3);
        assert!(err.message.starts_with("unexpected character 'é'"));
    }

    #[test]
    fn rejects_patterns_that_expand_too_far() {
        let err = error("((A{1000}){1000}){1000}");
        assert!(
            err.message.starts_with("pattern too large"),
            "{}",
            err.message
        );
        assert_eq!(err.column, 11);
        // Empty bodies still cost splits.
        let err = error("((A{0}){0,1000}){0,1000}");
        assert!(
            err.message.starts_with("pattern too large"),
            "{}",
            err.message
        );
        let nested = format!("{}A{}", "(".repeat(100), ")".repeat(100));
        let err = error(&nested);
        assert!(err.message.starts_with("groups are nested too deeply"));
        assert_eq!(err.column, MAX_NESTING + 1);
    }

    #[test]
    fn parser_never_panics_on_junk() {
        // A cheap deterministic fuzz: every string over the language's characters up
        // to length 4, plus some stray ones.
        let alphabet: Vec<char> = "A_(|)+*?{},1 é".chars().collect();
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            let mut longer = Vec::new();
            for text in &texts {
                for &c in &alphabet {
                    longer.push(format!("{text}{c}"));
                }
            }
            texts.extend(longer);
        }
        texts.sort();
        texts.dedup();
        for text in &texts {
            match Pattern::parse(text) {
                Ok(p) => {
                    let p = Arc::new(p);
                    for mode in [Mode::Subsequence, Mode::Strict] {
                        let mut m = Matcher::new(&p, mode);
                        m.push("A");
                        m.push("B");
                        m.expected_next();
                        m.explain();
                    }
                }
                Err(e) => {
                    assert!(
                        e.column >= 1 && e.column <= text.chars().count() + 1,
                        "{text:?}: {e}"
                    );
                    let _ = e.to_string();
                }
            }
        }
    }

    #[test]
    fn shorthands_terminal_and_lowercase_expand() {
        let p = pattern("queued Processing SUCCESS conflict FAILED");
        for t in [
            "SYNC_QUEUED",
            "SYNC_PROCESSING",
            "SYNC_SUCCESS",
            "SYNC_CONFLICT",
            "SYNC_FAILED",
        ] {
            assert!(p.mentions(t), "{t}");
        }
        assert!(!p.mentions("QUEUED"));

        let p = pattern("terminal");
        assert!(
            p.mentions("SYNC_SUCCESS") && p.mentions("SYNC_CONFLICT") && p.mentions("SYNC_FAILED")
        );
        for t in ["SYNC_SUCCESS", "SYNC_CONFLICT", "SYNC_FAILED"] {
            assert_eq!(
                status("TERMINAL", Mode::Strict, &[t]),
                Status::Satisfied,
                "{t}"
            );
        }
        assert_eq!(
            status("TERMINAL", Mode::Strict, &["SYNC_QUEUED"]),
            Status::Failed
        );

        // Only the five known short names expand.
        let p = pattern("connected heartbeat SYNC");
        assert!(p.mentions("CONNECTED") && p.mentions("HEARTBEAT") && p.mentions("SYNC"));
        assert!(!p.mentions("SYNC_CONNECTED") && !p.mentions("SYNC_HEARTBEAT"));
        assert_eq!(
            status("sync_success", Mode::Strict, &["SYNC_SUCCESS"]),
            Status::Satisfied
        );
    }

    #[test]
    fn mentions_ignores_wildcards() {
        let p = pattern("_ QUEUED");
        assert!(p.mentions("SYNC_QUEUED"));
        assert!(!p.mentions("CONNECTED"));
        assert!(pattern(EXAMPLE).mentions("CONNECTED"));
        assert!(!pattern("QUEUED TERMINAL").mentions("CONNECTED"));
    }

    #[test]
    fn source_is_the_text_as_given() {
        let p: Pattern = " queued,  success "
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.source(), " queued,  success ");
        assert_eq!(p.to_string(), " queued,  success ");
    }

    #[test]
    fn quantifiers_in_strict_mode() {
        use Status::*;
        let s = |text, events: &[&str]| status(text, Mode::Strict, events);
        // `+`
        assert_eq!(s("A+ B", &["A", "B"]), Satisfied);
        assert_eq!(s("A+ B", &["A", "A", "A", "B"]), Satisfied);
        assert_eq!(s("A+ B", &["B"]), Failed);
        // `*`
        assert_eq!(s("A* B", &["B"]), Satisfied);
        assert_eq!(s("A* B", &["A", "A", "B"]), Satisfied);
        // `?`
        assert_eq!(s("A? B", &["B"]), Satisfied);
        assert_eq!(s("A? B", &["A", "B"]), Satisfied);
        assert_eq!(s("A? B", &["A", "A"]), Failed);
        // `{2}`
        assert_eq!(s("A{2} B", &["A", "A", "B"]), Satisfied);
        assert_eq!(s("A{2} B", &["A", "B"]), Failed);
        assert_eq!(s("A{2} B", &["A", "A", "A"]), Failed);
        // `{2,}`
        assert_eq!(s("A{2,} B", &["A", "B"]), Failed);
        assert_eq!(s("A{2,} B", &["A", "A", "B"]), Satisfied);
        assert_eq!(s("A{2,} B", &["A", "A", "A", "A", "B"]), Satisfied);
        assert_eq!(s("A{2,} B", &["A", "A", "A"]), Pending);
        // `{1,3}`
        assert_eq!(s("A{1,3} B", &["B"]), Failed);
        assert_eq!(s("A{1,3} B", &["A", "B"]), Satisfied);
        assert_eq!(s("A{1,3} B", &["A", "A", "A", "B"]), Satisfied);
        assert_eq!(s("A{1,3} B", &["A", "A", "A", "A"]), Failed);
        // `{0}` matches nothing at all.
        assert_eq!(s("A{0} B", &["B"]), Satisfied);
        assert_eq!(s("A{0} B", &["A"]), Failed);
        // Groups repeat as a whole.
        assert_eq!(s("(A B)+ C", &["A", "B", "A", "B", "C"]), Satisfied);
        assert_eq!(s("(A B)+ C", &["A", "B", "A", "C"]), Failed);
        assert_eq!(s("(A|B){3}", &["B", "A", "B"]), Satisfied);
        // Nullable bodies in loops must not hang.
        assert_eq!(s("(A*)* B", &["A", "B"]), Satisfied);
        assert_eq!(s("(A?){2,} B", &["B"]), Satisfied);
    }

    #[test]
    fn alternation_has_lowest_precedence() {
        use Status::*;
        assert_eq!(status("A B|C", Mode::Strict, &["C"]), Satisfied);
        assert_eq!(status("A B|C", Mode::Strict, &["A", "B"]), Satisfied);
        assert_eq!(status("A B|C", Mode::Strict, &["A", "C"]), Failed);
        assert_eq!(status("A (B|C)", Mode::Strict, &["A", "C"]), Satisfied);
    }

    #[test]
    fn wildcard_matches_any_one_event() {
        use Status::*;
        assert_eq!(
            status("A _ C", Mode::Strict, &["A", "WHATEVER", "C"]),
            Satisfied
        );
        assert_eq!(status("A _ C", Mode::Strict, &["A", "C"]), Pending);
        assert_eq!(status("A _ C", Mode::Strict, &["A", "C", "D"]), Failed);
    }

    #[test]
    fn example_against_a_realistic_stream() {
        let events = [
            "CONNECTED",
            "SYNC_QUEUED",
            "SYNC_PROCESSING",
            "SYNC_PROCESSING",
            "SYNC_SUCCESS",
        ];
        for mode in [Mode::Subsequence, Mode::Strict] {
            let mut m = Matcher::new(&pattern(EXAMPLE), mode);
            let statuses: Vec<Status> = events.iter().map(|e| m.push(e)).collect();
            assert_eq!(
                statuses,
                [
                    Status::Pending,
                    Status::Pending,
                    Status::Pending,
                    Status::Pending,
                    Status::Satisfied
                ],
                "{mode}"
            );
        }
    }

    #[test]
    fn strict_failure_reports_the_divergence() {
        let m = run(
            EXAMPLE,
            Mode::Strict,
            &["CONNECTED", "SYNC_QUEUED", "SYNC_FAILED"],
        );
        assert_eq!(m.status(), Status::Failed);
        assert_eq!(m.expected_next(), ["SYNC_PROCESSING"]);
        let text = m.explain();
        assert!(
            text.contains("event 2 was SYNC_FAILED, expected SYNC_PROCESSING"),
            "{text}"
        );
        assert!(
            text.contains("CONNECTED and event 1 matched the pattern"),
            "{text}"
        );
        assert!(
            text.contains("received CONNECTED and 2 events:\n"),
            "{text}"
        );
        // CONNECTED is named, not numbered: the numbers are the summary's.
        assert!(
            text.contains("\n     CONNECTED    matched CONNECTED (pattern column 1)\n"),
            "{text}"
        );
        assert!(
            text.contains("  1. SYNC_QUEUED  matched SYNC_QUEUED (pattern column 11)"),
            "{text}"
        );
        assert!(text.contains("  2. SYNC_FAILED  did not fit"), "{text}");

        // The same stream is only pending as a subsequence: the failure may be noise.
        let m = run(
            EXAMPLE,
            Mode::Subsequence,
            &["CONNECTED", "SYNC_QUEUED", "SYNC_FAILED"],
        );
        assert_eq!(m.status(), Status::Pending);
        assert_eq!(m.expected_next(), ["SYNC_PROCESSING"]);
    }

    #[test]
    fn strict_divergence_lists_every_alternative() {
        let m = run(
            EXAMPLE,
            Mode::Strict,
            &["CONNECTED", "SYNC_QUEUED", "SYNC_PROCESSING", "HEARTBEAT"],
        );
        assert_eq!(m.status(), Status::Failed);
        assert!(
            m.explain().contains(
                "event 3 was HEARTBEAT, expected one of SYNC_CONFLICT, SYNC_PROCESSING, SYNC_SUCCESS"
            ),
            "{}",
            m.explain()
        );
    }

    #[test]
    fn subsequence_skips_noise_anywhere() {
        let events = [
            "HELLO",
            "CONNECTED",
            "HEARTBEAT",
            "SYNC_QUEUED",
            "SYNC_SUCCESS",
            "SYNC_PROCESSING",
            "PING",
            "SYNC_QUEUED",
            "SYNC_CONFLICT",
        ];
        let m = run(EXAMPLE, Mode::Subsequence, &events);
        assert_eq!(m.status(), Status::Satisfied);
        let text = m.explain();
        assert!(
            text.contains("expectation met (subsequence) at event 8"),
            "{text}"
        );
        assert!(text.contains("2. HEARTBEAT        skipped"), "{text}");
        assert!(
            text.contains("8. SYNC_CONFLICT    matched SYNC_CONFLICT (pattern column 54)"),
            "{text}"
        );

        // Strict mode rejects the very first bit of noise.
        let m = run(EXAMPLE, Mode::Strict, &events);
        assert_eq!(m.status(), Status::Failed);
        assert!(
            m.explain()
                .contains("event 1 was HELLO, expected CONNECTED")
        );
        assert!(m.explain().contains("the first event already did not fit"));

        // Noise in the middle, in strict mode, fails at its own position.
        let m = run(
            EXAMPLE,
            Mode::Strict,
            &["CONNECTED", "HEARTBEAT", "SYNC_QUEUED"],
        );
        assert_eq!(m.status(), Status::Failed);
        assert!(
            m.explain()
                .contains("event 1 was HEARTBEAT, expected SYNC_QUEUED")
        );
    }

    #[test]
    fn quantifiers_in_subsequence_mode() {
        use Status::*;
        let s = |text, events: &[&str]| status(text, Mode::Subsequence, events);
        assert_eq!(s("A{2} B", &["A", "X", "A", "Y", "B"]), Satisfied);
        assert_eq!(s("A{2} B", &["A", "X", "B"]), Pending);
        assert_eq!(s("A{1,3} B", &["B", "A", "B"]), Satisfied);
        assert_eq!(s("A{2,} B", &["A", "B", "A", "B"]), Satisfied);
        assert_eq!(s("A+ B", &["B", "B"]), Pending);
        assert_eq!(s("A? B", &["X", "B"]), Satisfied);
        assert_eq!(s("(A|B) C", &["X", "B", "Y", "C"]), Satisfied);
    }

    #[test]
    fn long_streams_stay_cheap_and_do_not_overflow() {
        // Every HEARTBEAT extends the match, so the trace grows with the stream;
        // dropping and explaining it must neither recurse per event nor go quadratic.
        let p = pattern("HEARTBEAT+ SUCCESS");
        let mut m = Matcher::new(&p, Mode::Strict);
        for _ in 0..200_000 {
            assert_eq!(m.push("HEARTBEAT"), Status::Pending);
        }
        let copy = m.clone();
        assert_eq!(m.push("SYNC_SUCCESS"), Status::Satisfied);
        let text = m.explain();
        assert!(text.contains("at event 200001"));
        assert!(text.ends_with("SYNC_SUCCESS  matched SUCCESS (pattern column 12)\n"));
        drop(m);
        drop(copy);

        // The largest pattern allowed still matches.
        let p = pattern("(A|B){1000} C{1000} _{1000}");
        let mut m = Matcher::new(&p, Mode::Subsequence);
        for _ in 0..1000 {
            m.push("A");
        }
        for _ in 0..1000 {
            m.push("C");
        }
        for _ in 0..999 {
            m.push("X");
        }
        assert_eq!(m.status(), Status::Pending);
        assert_eq!(m.push("X"), Status::Satisfied);
    }

    #[test]
    fn connected_is_named_not_numbered_wherever_positions_are_shown() {
        // Divergence at a CONNECTED (a reconnect) names it.
        let m = run(
            "CONNECTED QUEUED SUCCESS",
            Mode::Strict,
            &["CONNECTED", "SYNC_QUEUED", "CONNECTED"],
        );
        let text = m.explain();
        assert!(
            text.starts_with(
                "expectation failed (strict): CONNECTED arrived, expected SYNC_SUCCESS\n\
                 CONNECTED and event 1 matched the pattern, then the events diverged\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("received 2 CONNECTED and 1 event:\n"),
            "{text}"
        );
        assert!(text.contains("\n     CONNECTED    did not fit\n"), "{text}");

        let m = run("QUEUED", Mode::Strict, &["CONNECTED"]);
        assert!(
            m.explain()
                .contains("\nCONNECTED already did not fit the pattern\n"),
            "{}",
            m.explain()
        );

        // Met at CONNECTED: no event number.
        let m = run("CONNECTED", Mode::Strict, &["CONNECTED", "SYNC_QUEUED"]);
        let text = m.explain();
        assert!(
            text.starts_with("expectation met (strict) at CONNECTED\n"),
            "{text}"
        );
        assert!(text.contains("  1. SYNC_QUEUED  after the match"), "{text}");

        // Events after a second CONNECTED keep counting from where they were.
        let m = run(
            "CONNECTED QUEUED CONNECTED SUCCESS",
            Mode::Strict,
            &["CONNECTED", "SYNC_QUEUED", "CONNECTED", "SYNC_FAILED"],
        );
        let text = m.explain();
        assert!(text.contains("event 2 was SYNC_FAILED"), "{text}");
        assert!(
            text.contains("2 CONNECTED and event 1 matched the pattern"),
            "{text}"
        );
    }

    #[test]
    fn subsequence_never_fails() {
        let mut m = Matcher::new(&pattern("A B"), Mode::Subsequence);
        for event in ["B", "C", "B", "X", "B"] {
            assert_eq!(m.push(event), Status::Pending);
        }
        assert_eq!(m.push("A"), Status::Pending);
        assert_eq!(m.push("B"), Status::Satisfied);
    }

    #[test]
    fn final_status_sticks_and_pushes_are_recorded() {
        let mut m = Matcher::new(&pattern("A B"), Mode::Strict);
        m.push("A");
        assert_eq!(m.push("B"), Status::Satisfied);
        assert_eq!(m.push("Z"), Status::Satisfied);
        assert_eq!(m.status(), Status::Satisfied);
        assert_eq!(m.received(), ["A", "B", "Z"]);
        assert!(m.expected_next().is_empty());
        let text = m.explain();
        assert!(
            text.contains("expectation met (strict) at event 2"),
            "{text}"
        );
        assert!(text.contains("3. Z  after the match"), "{text}");

        let mut m = Matcher::new(&pattern("A B"), Mode::Strict);
        assert_eq!(m.push("X"), Status::Failed);
        assert_eq!(m.push("A"), Status::Failed);
        assert_eq!(m.push("B"), Status::Failed);
        assert_eq!(m.received(), ["X", "A", "B"]);
        assert!(
            m.explain().contains("2. A  after the failure"),
            "{}",
            m.explain()
        );
    }

    #[test]
    fn nullable_pattern_is_satisfied_before_any_event() {
        for mode in [Mode::Subsequence, Mode::Strict] {
            let m = Matcher::new(&pattern("A*"), mode);
            assert_eq!(m.status(), Status::Satisfied);
            assert!(m.explain().contains("accepts an empty stream"));
        }
        assert_eq!(
            Matcher::new(&pattern("A? B*"), Mode::Strict).status(),
            Status::Satisfied
        );
        assert_eq!(
            Matcher::new(&pattern("A"), Mode::Strict).status(),
            Status::Pending
        );
    }

    #[test]
    fn expected_next_reports_what_makes_progress() {
        let p = pattern(EXAMPLE);
        let mut m = Matcher::new(&p, Mode::Subsequence);
        assert_eq!(m.expected_next(), ["CONNECTED"]);
        m.push("CONNECTED");
        // CONNECTED could match again, but that would not be progress.
        assert_eq!(m.expected_next(), ["SYNC_QUEUED"]);
        m.push("SYNC_QUEUED");
        assert_eq!(m.expected_next(), ["SYNC_PROCESSING"]);
        m.push("SYNC_PROCESSING");
        // Another SYNC_PROCESSING would be allowed but reach no new state: the
        // subsequence is already where a second one would put it.
        assert_eq!(m.expected_next(), ["SYNC_CONFLICT", "SYNC_SUCCESS"]);

        // Strictly, another SYNC_PROCESSING is one of the events that may come next.
        let mut m = Matcher::new(&p, Mode::Strict);
        m.push("CONNECTED");
        m.push("SYNC_QUEUED");
        m.push("SYNC_PROCESSING");
        assert_eq!(
            m.expected_next(),
            ["SYNC_CONFLICT", "SYNC_PROCESSING", "SYNC_SUCCESS"]
        );

        let m = Matcher::new(&pattern("QUEUED _ TERMINAL"), Mode::Strict);
        assert_eq!(m.expected_next(), ["SYNC_QUEUED"]);
        let mut m = m;
        m.push("SYNC_QUEUED");
        assert_eq!(m.expected_next(), [ANY_EVENT]);
        m.push("X");
        assert_eq!(
            m.expected_next(),
            ["SYNC_CONFLICT", "SYNC_FAILED", "SYNC_SUCCESS"]
        );
    }

    #[test]
    fn pending_explanation_shows_progress_and_what_is_missing() {
        let m = run(
            EXAMPLE,
            Mode::Subsequence,
            &["CONNECTED", "NOISE", "SYNC_QUEUED", "SYNC_PROCESSING"],
        );
        assert_eq!(m.status(), Status::Pending);
        let text = m.explain();
        assert!(
            text.starts_with(
                "expectation not met (subsequence): 3 steps of the pattern matched, \
                 expected next one of SYNC_CONFLICT, SYNC_SUCCESS\n"
            ),
            "{text}"
        );
        assert!(text.contains(&format!("pattern: {EXAMPLE}\n")), "{text}");
        assert!(text.contains("received CONNECTED and 3 events:"), "{text}");
        assert!(text.contains("1. NOISE            skipped"), "{text}");
        assert!(
            text.contains("3. SYNC_PROCESSING  matched SYNC_PROCESSING (pattern column 23)"),
            "{text}"
        );

        let m = Matcher::new(&pattern("queued"), Mode::Subsequence);
        let text = m.explain();
        assert!(
            text.contains("nothing of the pattern matched, expected next SYNC_QUEUED"),
            "{text}"
        );
        assert!(text.contains("received no events"), "{text}");
    }

    #[test]
    fn matcher_clones_progress_independently() {
        let p = pattern("A B");
        let mut a = Matcher::new(&p, Mode::Strict);
        a.push("A");
        let mut b = a.clone();
        assert_eq!(a.push("B"), Status::Satisfied);
        assert_eq!(b.push("C"), Status::Failed);
        assert_eq!(a.received(), ["A", "B"]);
        assert_eq!(b.received(), ["A", "C"]);
    }

    #[test]
    fn mode_parses_and_displays() {
        assert_eq!("strict".parse::<Mode>(), Ok(Mode::Strict));
        assert_eq!("Subsequence".parse::<Mode>(), Ok(Mode::Subsequence));
        assert!("loose".parse::<Mode>().is_err());
        assert_eq!(Mode::default(), Mode::Subsequence);
        assert_eq!(Mode::Strict.to_string(), "strict");
        assert_eq!(format!("[{:<8}]", Mode::Strict), "[strict  ]");
        assert_eq!(format!("[{:>8}]", Status::Failed), "[  failed]");
    }

    #[test]
    fn mode_and_status_serialise_as_their_names() {
        for mode in [Mode::Subsequence, Mode::Strict] {
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
            assert_eq!(serde_json::from_str::<Mode>(&json).unwrap(), mode);
        }
        for status in [Status::Pending, Status::Satisfied, Status::Failed] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
        }
    }
}
