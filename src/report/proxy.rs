//! The text of `proxy`: what it forwards to and which faults are on. Its `--json`
//! records are `listening` (the proxy, then the control API when there is one), as
//! `serve` writes; the decisions go to `--log`, not to stdout.

use crate::proxy::faults::FaultSpec;
use crate::text;

/// `proxying to URL with N faults: …`, one line per fault after it.
pub fn started(upstream: &str, faults: &[(u64, FaultSpec)], seed: u64) -> String {
    let mut out = format!(
        "proxying to {} with {} (seed {seed})",
        text::escape(upstream),
        text::count(faults.len() as u64, "fault")
    );
    for (id, spec) in faults {
        out.push_str(&format!("\n  #{id} {}", fault(spec)));
    }
    out
}

/// One fault as the control API lists it: `drop SYNC_PROCESSING:0.5 (down)`.
pub fn fault(spec: &FaultSpec) -> String {
    let mut line = spec.fault.name().to_string();
    if !spec.written.is_empty() {
        line.push(' ');
        line.push_str(&text::escape(&spec.written));
    }
    line.push_str(&format!(" ({})", spec.direction.as_str()));
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::faults::parse;

    #[test]
    fn faults_are_listed_with_their_ids() {
        let faults = vec![(1, parse("drop", "SYNC_PROCESSING:0.5").unwrap())];
        let text = started("ws://127.0.0.1:1", &faults, 7);
        assert!(
            text.starts_with("proxying to ws://127.0.0.1:1 with 1 fault (seed 7)"),
            "{text}"
        );
        assert!(
            text.contains("#1 drop SYNC_PROCESSING:0.5 (down)"),
            "{text}"
        );
    }
}
