//! Peer text made safe for a terminal. Anything a server or client sends can hold
//! control characters (a `\r` that rewrites the line, ESC sequences such as OSC 52
//! that write the clipboard or OSC 0 the window title, BEL), bidi overrides that
//! reorder what is shown, or be long enough to wreck a column. Human output shows
//! such text through [`escape`] and [`clamp`]; NDJSON keeps the peer's bytes.

use std::borrow::Cow;

/// Widest column built from peer data (pfaIds, event types), in characters.
pub const MAX_COLUMN: usize = 48;
/// Longest peer text shown in one place (a detail, a reason, a body), in characters.
pub const MAX_SHOWN: usize = 300;
/// Longest line of a message that quotes peers (a warning, an error), in characters.
pub const MAX_LINE: usize = 800;

/// Whether `c` must not reach a terminal as itself: C0 and C1 controls, DEL, and the
/// bidirectional embeddings, overrides and isolates.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character written as a visible escape (`\u{1b}`).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A message of several lines that quotes peers: each line escaped and cut to
/// [`MAX_LINE`].
pub fn message_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| clamp(&escape(line), MAX_LINE).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` cut to `max` characters (an ellipsis marks the cut).
pub fn clamp(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
    }
}

/// `1 event`, `2 events`, `0 events`: a count with its noun (regular plurals).
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    match n.into() {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// [`escape`] then [`clamp`]: peer text as one field of human output.
pub fn shown(text: &str, max: usize) -> String {
    clamp(&escape(text), max).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_escapes_and_bidi_are_made_visible() {
        assert_eq!(escape("pfa-1"), "pfa-1");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("a\rb"), "a\\u{d}b");
        assert_eq!(escape("\u{1b}]52;c;aGk=\u{7}"), "\\u{1b}]52;c;aGk=\\u{7}");
        assert_eq!(escape("x\u{9b}31m"), "x\\u{9b}31m");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("tab\there\u{7f}"), "tab\\u{9}here\\u{7f}");
        assert_eq!(escape("accents é ✓"), "accents é ✓");
        assert_eq!(message_lines("one\ntwo\r\n"), "one\ntwo\\u{d}\n");
    }

    #[test]
    fn counts_take_their_plural() {
        assert_eq!(count(1u64, "event"), "1 event");
        assert_eq!(count(0u64, "item"), "0 items");
        assert_eq!(count(2u32, "connection"), "2 connections");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(clamp("short", 10), "short");
        assert_eq!(clamp("ééééé", 3), "ééé…");
        let huge = "p".repeat(100_000);
        assert_eq!(shown(&huge, MAX_COLUMN).chars().count(), MAX_COLUMN + 1);
        let message = message_lines(&format!("a {huge}\nb\r"));
        let lines: Vec<&str> = message.split('\n').collect();
        assert_eq!(lines[0].chars().count(), MAX_LINE + 1);
        assert_eq!(lines[1], "b\\u{d}");
    }
}
