//! `load --report FILE.html`: one self-contained page (inline CSS and SVG, no scripts, no
//! network) with the run's figures, a latency histogram and latency over time. It is
//! also well-formed XML, so tests can parse it.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::load::Mark;
use crate::load::LoadSummary;
use crate::load::threshold::Verdict;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 720.0;
const H: f64 = 240.0;
const PAD: f64 = 40.0;

/// Bars of the latency distribution on logarithmic buckets (doubling from 1 µs).
fn histogram_svg(h: &Histogram<u64>) -> String {
    let mut bars: Vec<(u64, u64)> = Vec::new();
    if !h.is_empty() {
        for v in h.iter_log(1, 2.0) {
            bars.push((v.value_iterated_to(), v.count_since_last_iteration()));
        }
    }
    while bars.last().is_some_and(|b| b.1 == 0) {
        bars.pop();
    }
    let first = bars.iter().position(|b| b.1 > 0).unwrap_or(0);
    let bars = &bars[first..];
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" aria-label="latency histogram">"#
    );
    if bars.is_empty() {
        svg.push_str(r#"<text x="20" y="40">no latency samples</text></svg>"#);
        return svg;
    }
    let most = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let width = (W - 2.0 * PAD) / bars.len() as f64;
    for (i, (upper, count)) in bars.iter().enumerate() {
        let height = (H - 2.0 * PAD) * *count as f64 / most;
        let x = PAD + i as f64 * width;
        let y = H - PAD - height;
        let label = if *upper >= 1000 {
            format!("≤{:.1} ms", *upper as f64 / 1000.0)
        } else {
            format!("≤{upper} µs")
        };
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{height:.1}" fill="#4a7ebb"><title>{label}: {count}</title></rect>"##,
            (width - 2.0).max(1.0)
        );
        if i % 2 == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                x + width / 2.0,
                H - PAD + 14.0,
                escape(&label)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{PAD}" y="20" font-size="12">frames per latency bucket (max {most:.0})</text></svg>"#
    );
    svg
}

/// p50 and p99 per second of the run.
fn timeline_svg(timeline: &[Histogram<u64>]) -> String {
    let points: Vec<(usize, f64, f64)> = timeline
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.is_empty())
        .map(|(s, h)| {
            (
                s,
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
            )
        })
        .collect();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" aria-label="latency over time">"#
    );
    if points.is_empty() {
        svg.push_str(r#"<text x="20" y="40">no latency samples</text></svg>"#);
        return svg;
    }
    let last = points.last().map_or(1, |p| p.0).max(1) as f64;
    let top = points.iter().map(|p| p.2).fold(0.0, f64::max).max(0.001);
    let xy = |s: usize, v: f64| {
        (
            PAD + (W - 2.0 * PAD) * s as f64 / last,
            H - PAD - (H - 2.0 * PAD) * v / top,
        )
    };
    for (name, colour, pick) in [("p50", "#4a7ebb", 1usize), ("p99", "#c0504d", 2usize)] {
        let path: Vec<String> = points
            .iter()
            .map(|p| {
                let (x, y) = xy(p.0, if pick == 1 { p.1 } else { p.2 });
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{name}</title></polyline>"#,
            path.join(" ")
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{PAD}" y="20" font-size="12">latency per second of the run: <tspan fill="#4a7ebb">p50</tspan>, <tspan fill="#c0504d">p99</tspan> (top {top:.2} ms, last second {last:.0})</text></svg>"##
    );
    svg
}

/// The whole page.
pub fn render(
    summary: &LoadSummary,
    verdicts: &[Verdict],
    latency: &Histogram<u64>,
    timeline: &[Histogram<u64>],
) -> String {
    let rows = figures(summary);
    let mut checks = String::new();
    for v in verdicts {
        let _ = write!(
            checks,
            r#"<li class="{}">{}</li>"#,
            if v.ok { "ok" } else { "bad" },
            escape(&v.message)
        );
    }
    page(summary.duration_ms, &rows, &checks, latency, timeline)
}

/// The rows of the figures table: the same figures as the terminal summary.
fn figures(summary: &LoadSummary) -> String {
    let mut rows = String::new();
    for (label, value, mark) in super::load::figures(summary) {
        let class = match mark {
            Mark::Plain => "",
            Mark::Good => r#" class="ok""#,
            Mark::Bad => r#" class="bad""#,
        };
        let _ = write!(
            rows,
            "<tr><th>{}</th><td{class}>{}</td></tr>",
            escape(label),
            escape(&value)
        );
    }
    rows
}

fn page(
    duration_ms: f64,
    rows: &str,
    checks: &str,
    latency: &Histogram<u64>,
    timeline: &[Histogram<u64>],
) -> String {
    format!(
        r#"<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" lang="en">
<head><meta charset="utf-8"/><title>syncprobe load report</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}th,td{{text-align:left;padding:4px 12px;border-bottom:1px solid #ddd}}.ok{{color:#2e7d32}}.bad{{color:#c62828}}svg{{background:#fafafa;border:1px solid #eee;margin:8px 0}}</style>
</head>
<body>
<h1>syncprobe load report</h1>
<p>Run of {duration:.1} s.</p>
<table>{rows}</table>
<h2>Thresholds</h2>
<ul>{checks}</ul>
<h2>Latency histogram</h2>
{histogram}
<h2>Latency over time</h2>
{timeline}
</body>
</html>
"#,
        duration = duration_ms / 1000.0,
        histogram = histogram_svg(latency),
        timeline = timeline_svg(timeline),
    )
}
