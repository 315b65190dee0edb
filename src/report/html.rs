//! `load --report FILE.html`: one self-contained page (inline CSS and SVG, no script,
//! no network): the run's facts and verdict, its figures (per URL with several
//! `--url`), the thresholds, the comparison with a baseline, and six charts (see
//! [`charts`]). The page is a `maud` template and well-formed XHTML, so tests parse
//! it; the charts are drawn by [`super::chart`].
//!
//! Light and dark follow `prefers-color-scheme`; printing keeps each chart on one
//! page. Each chart's heading links to the chart, and a chart that is the URL's
//! target (`report.html#latency-time`) fills the window, to look at it alone.

use hdrhistogram::Histogram;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::chart::{Axis, Chart, Series};
use super::load::{self as text, Delta, Direction, LoadReport, Mark, RunFacts};
use crate::load::threshold::{Threshold, Verdict};
use crate::load::{Detail, Timeline};

/// The comparison with an earlier run.
#[derive(Clone, Debug)]
pub struct Baseline {
    /// The file it came from, as given.
    pub name: String,
    pub deltas: Vec<Delta>,
}

/// Everything the page shows.
pub struct Page<'a> {
    pub report: &'a LoadReport,
    pub facts: &'a RunFacts,
    pub detail: &'a Detail,
    pub interrupted: bool,
    pub baseline: Option<&'a Baseline>,
}

const STYLE: &str = r#"
:root{--bg:#ffffff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--panel:#f6f8fa;--ok:#1a7f37;--bad:#cf222e;
--s0:#0969da;--s1:#d4640b;--s2:#1a7f37;--s3:#cf222e;--s4:#8250df;--s5:#6e7781}
@media (prefers-color-scheme: dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--panel:#151b23;
--ok:#3fb950;--bad:#f85149;--s0:#4493f8;--s1:#f0883e;--s2:#3fb950;--s3:#f85149;--s4:#ab7df8;--s5:#9198a1}}
body{font-family:system-ui,sans-serif;margin:20px;background:var(--bg);color:var(--fg);max-width:1260px}
h1{font-size:1.5em;margin:0 0 8px}h2{font-size:1.15em;margin:24px 0 6px}h2 a{color:inherit;text-decoration:none}
table{border-collapse:collapse;margin:4px 0}th,td{text-align:left;padding:3px 12px 3px 0;border-bottom:1px solid var(--line);vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:0.9em;word-break:break-all}
.ok{color:var(--ok)}.bad{color:var(--bad)}.muted,figcaption{color:var(--muted)}
.verdict{font-size:1.3em;font-weight:bold;padding:6px 12px;border-left:6px solid;margin:8px 0}
.verdict.ok{border-color:var(--ok)}.verdict.bad{border-color:var(--bad)}
figure{margin:8px 0 20px;padding:8px;background:var(--panel);border:1px solid var(--line)}
figure:target{position:fixed;top:0;left:0;right:0;bottom:0;margin:0;z-index:10;background:var(--bg);overflow:auto}
svg.chart{width:100%;height:auto;display:block}
svg text{fill:var(--fg);font-size:13px}svg text.label{fill:var(--muted)}svg text.empty{fill:var(--muted);font-size:16px}
svg line{stroke:var(--muted)}.legend text{stroke:none}g.markers circle{fill:var(--bg);stroke-width:2}g.series text.count{fill:var(--fg);font-size:11px}svg line.grid{stroke:var(--line)}
.series{fill:none;stroke-width:2.5}g.series{stroke:none}
.s0{stroke:var(--s0)}g.s0 rect{fill:var(--s0)}.s1{stroke:var(--s1)}g.s1 rect{fill:var(--s1)}
.s2{stroke:var(--s2)}g.s2 rect{fill:var(--s2)}.s3{stroke:var(--s3)}g.s3 rect{fill:var(--s3)}
.s4{stroke:var(--s4)}g.s4 rect{fill:var(--s4)}.s5{stroke:var(--s5)}g.s5 rect{fill:var(--s5)}
@media print{body{max-width:none;margin:0}figure{break-inside:avoid}figure:target{position:static}}
"#;

/// The whole page, as XHTML text.
pub fn render(page: &Page) -> String {
    let report = page.report;
    let (word, good) = text::verdict_word(report, page.interrupted);
    let markup = html! {
        (DOCTYPE)
        html xmlns="http://www.w3.org/1999/xhtml" lang="en" {
            head {
                meta charset="utf-8" {}
                meta name="viewport" content="width=device-width, initial-scale=1" {}
                title { "syncprobe load report: " (word) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "syncprobe load report" }
                p.verdict.(if good { "ok" } else { "bad" }) data-verdict=(word) {
                    (if good { "✓ " } else { "✗ " }) (word)
                }
                (facts(page))
                h2 { "Figures" }
                (figures(report))
                @if report.summary.urls.len() > 1 { (per_url(report)) }
                @if !report.thresholds.is_empty() { (thresholds(&report.thresholds)) }
                @if let Some(b) = page.baseline { (baseline(b)) }
                @for (chart, caption) in charts(report, page.detail) {
                    figure id=(chart.id) {
                        h2 { a href={ "#" (chart.id) } { (chart.title) } }
                        (chart.svg())
                        figcaption { (caption) }
                    }
                }
            }
        }
    };
    markup.into_string()
}

fn facts(page: &Page) -> Markup {
    let s = &page.report.summary;
    let p = &s.phases_ms;
    let urls: Vec<&str> = s.urls.iter().map(|u| u.url.as_str()).collect();
    let rows: Vec<(&str, String)> = vec![
        ("syncprobe", page.facts.version.clone()),
        ("command", page.facts.command.clone()),
        (
            if urls.len() > 1 {
                "target URLs"
            } else {
                "target URL"
            },
            urls.join(", "),
        ),
        ("started", s.started_at.clone()),
        (
            "phases",
            format!(
                "connect {:.2} s, events {:.2} s, drain {:.2} s (run {:.2} s)",
                p.connect / 1000.0,
                p.events / 1000.0,
                p.drain / 1000.0,
                s.duration_ms / 1000.0
            ),
        ),
        (
            "load",
            format!(
                "C = {} over {}",
                s.connections_requested,
                crate::text::count(s.organizations, "organization")
            ),
        ),
        ("event source", page.facts.source.clone()),
    ];
    html! {
        table.facts {
            @for (k, v) in rows {
                tr { th { (k) } td { @if k == "command" { code { (v) } } @else { (v) } } }
            }
        }
    }
}

fn mark_class(mark: Mark) -> &'static str {
    match mark {
        Mark::Plain => "",
        Mark::Good => "ok",
        Mark::Bad => "bad",
    }
}

fn figures(report: &LoadReport) -> Markup {
    html! {
        table.figures {
            @for (label, value, mark) in text::figures(&report.summary) {
                tr { th { (label) } td class=(mark_class(mark)) { (value) } }
            }
        }
    }
}

fn per_url(report: &LoadReport) -> Markup {
    html! {
        h2 { "Per URL" }
        table.urls {
            tr { th { "URL" } th { "opened" } th { "failed" } th { "delivered" }
                 th { "connect p50 / p99 (ms)" } th { "latency p50 / p99 / max (ms)" } }
            @for u in &report.summary.urls {
                tr {
                    td { code { (u.url) } }
                    td.num { (u.connections_opened) }
                    td.num { (u.connections_failed) }
                    td.num { (u.frames_delivered) }
                    td.num { (format!("{:.3} / {:.3}", u.connect_ms.p50, u.connect_ms.p99)) }
                    td.num { (format!("{:.3} / {:.3} / {:.3}", u.latency_ms.p50, u.latency_ms.p99, u.latency_ms.max)) }
                }
            }
        }
    }
}

fn thresholds(verdicts: &[Verdict]) -> Markup {
    html! {
        h2 { "Thresholds" }
        table.thresholds {
            tr { th { "rule" } th { "measured" } th { "result" } th { "margin" } }
            @for v in verdicts {
                @let rule = v.threshold.parse::<Threshold>().ok();
                @let unit = rule.as_ref().map_or("", Threshold::unit);
                tr.(if v.ok { "pass" } else { "fail" }) {
                    td { code { (v.threshold) } }
                    td.num { (v.actual.map_or("not measured".into(), |a| format!("{a:.3}{unit}"))) }
                    td class=(if v.ok { "ok" } else { "bad" }) { (if v.ok { "✓ pass" } else { "✗ fail" }) }
                    td.num {
                        (match (rule.as_ref(), v.actual) {
                            (Some(r), Some(a)) => format!("{:+.3}{unit}", r.margin(a)),
                            _ => "-".into(),
                        })
                    }
                }
            }
        }
    }
}

fn baseline(b: &Baseline) -> Markup {
    html! {
        h2 { "Compared with " code { (b.name) } }
        table.baseline {
            tr { th { "figure" } th { "baseline" } th { "this run" } th { "change" } th { "direction" } }
            @for d in &b.deltas {
                @let direction = d.direction();
                tr data-direction=(direction.as_str()) {
                    th { (d.label) }
                    td.num { (format!("{:.3}{}", d.before, d.unit)) }
                    td.num { (format!("{:.3}{}", d.now, d.unit)) }
                    td.num { (text::change_text(d)) }
                    td class=(match direction { Direction::Improved => "ok", Direction::Regressed => "bad", Direction::Same => "" }) {
                        (match direction { Direction::Improved => "▲ improved", Direction::Regressed => "▼ regressed", Direction::Same => "= same" })
                    }
                }
            }
        }
    }
}

/// The charts of a run, each with its one-line caption: open connections, connect
/// time, delivered frames/s, latency percentiles over time, the latency histogram,
/// errors by kind; with several URLs, p99 latency per URL too.
pub fn charts(report: &LoadReport, detail: &Detail) -> Vec<(Chart, &'static str)> {
    let t = &detail.timeline;
    let names: Vec<String> = report.summary.urls.iter().map(|u| u.url.clone()).collect();
    let mut charts = vec![
        (
            open_chart(t, &names),
            "Most connections open during each interval (per URL with several), and the connect failures in it.",
        ),
        (
            histogram_chart(
                "connect",
                "Connect time distribution",
                "connect time, DNS to upgrade (ms, log scale)",
                "connections",
                &detail.connect,
            ),
            "How long each socket took from the DNS query to the completed upgrade, in doubling buckets.",
        ),
        (
            delivered_chart(t, &names),
            "Frames received per second by all subscribers together (per URL with several).",
        ),
        (
            latency_time_chart(t),
            "Fan-out latency (receive time minus publish time) percentiles of the frames received in each interval.",
        ),
        (
            histogram_chart(
                "latency-histogram",
                "Fan-out latency histogram",
                "fan-out latency (ms, log scale)",
                "frames",
                &detail.latency,
            ),
            "How many frames arrived within each latency bucket (doubling from 1 µs).",
        ),
        (
            errors_chart(t),
            "Errors of each kind per interval: refused upgrades, timeouts, server closes, lost connections.",
        ),
    ];
    if names.len() > 1 {
        charts.push((
            latency_per_url_chart(t, &names),
            "p99 fan-out latency per interval of the subscribers of each URL (cross-instance fan-out).",
        ));
    }
    charts
}

/// The middle of each interval, in seconds since the start of the run.
fn times(t: &Timeline) -> Vec<f64> {
    (0..t.intervals.len())
        .map(|i| (i as f64 + 0.5) * t.width_secs())
        .collect()
}

fn time_axis(t: &Timeline) -> Axis {
    let end = t.intervals.len().max(1) as f64 * t.width_secs();
    let label = format!("time since start (s; {} s intervals)", t.width_secs());
    Axis::linear(&label, 0.0, end)
}

fn y_axis(label: &str, series: &[Series]) -> Axis {
    let top = series.iter().map(Series::max_y).fold(0.0, f64::max);
    Axis::linear(label, 0.0, if top > 0.0 { top } else { 1.0 })
}

/// The series name of URL `u`: the URL itself when there are several.
fn url_name(prefix: &str, names: &[String], u: usize) -> String {
    match names.get(u) {
        Some(name) if names.len() > 1 => format!("{prefix} {name}"),
        _ => prefix.to_string(),
    }
}

fn open_chart(t: &Timeline, names: &[String]) -> Chart {
    let times = times(t);
    let open = t.open_series();
    let mut series: Vec<Series> = (0..t.urls())
        .map(|u| {
            let points = times
                .iter()
                .zip(&open)
                .map(|(x, o)| (*x, o[u] as f64))
                .collect();
            Series::line(url_name("open", names, u), u, points)
        })
        .collect();
    let failures: Vec<(f64, f64)> = times
        .iter()
        .zip(&t.intervals)
        .map(|(x, i)| (*x, i.urls.iter().map(|u| u.failures).sum::<u64>() as f64))
        .collect();
    if failures.iter().any(|p| p.1 > 0.0) {
        series.push(Series::line("connect failures", 3, failures));
    }
    Chart {
        id: "open".into(),
        title: "Open connections over time".into(),
        x: time_axis(t),
        y: y_axis("connections (count)", &series),
        series,
        empty: "no connection opened".into(),
    }
}

fn delivered_chart(t: &Timeline, names: &[String]) -> Chart {
    let times = times(t);
    let width = t.width_secs();
    let per_url = |u: usize| -> Vec<(f64, f64)> {
        times
            .iter()
            .zip(&t.intervals)
            .map(|(x, i)| (*x, i.urls[u].delivered as f64 / width))
            .collect()
    };
    let mut series = Vec::new();
    if t.urls() > 1 {
        let total = times
            .iter()
            .zip(&t.intervals)
            .map(|(x, i)| {
                (
                    *x,
                    i.urls.iter().map(|u| u.delivered).sum::<u64>() as f64 / width,
                )
            })
            .collect();
        series.push(Series::line("all URLs", 5, total));
    }
    for u in 0..t.urls() {
        series.push(Series::line(url_name("delivered", names, u), u, per_url(u)));
    }
    series.retain(|s| s.max_y() > 0.0);
    Chart {
        id: "delivered".into(),
        title: "Delivered frames per second".into(),
        x: time_axis(t),
        y: y_axis("delivered (frames/s)", &series),
        series,
        empty: "no frame delivered".into(),
    }
}

/// (time, histogram) of each interval with latency samples, from `pick`.
fn latencies<'a>(
    t: &'a Timeline,
    pick: impl Fn(&'a crate::load::timeline::Interval) -> Option<Histogram<u64>>,
) -> Vec<(f64, Histogram<u64>)> {
    times(t)
        .into_iter()
        .zip(&t.intervals)
        .filter_map(|(x, i)| pick(i).map(|h| (x, h)))
        .collect()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn latency_time_chart(t: &Timeline) -> Chart {
    let hs = latencies(t, |i| i.latency());
    let line = |name: &str, colour, q: f64| {
        let points = hs
            .iter()
            .map(|(x, h)| {
                (
                    *x,
                    if q >= 1.0 {
                        ms(h.max())
                    } else {
                        ms(h.value_at_quantile(q))
                    },
                )
            })
            .collect();
        Series::line(name, colour, points)
    };
    let series = vec![
        line("p50", 0, 0.5),
        line("p90", 2, 0.9),
        line("p99", 1, 0.99),
        line("max", 3, 1.0),
    ];
    Chart {
        id: "latency-time".into(),
        title: "Fan-out latency percentiles over time".into(),
        x: time_axis(t),
        y: y_axis("latency (ms)", &series),
        series,
        empty: "no latency samples".into(),
    }
}

fn latency_per_url_chart(t: &Timeline, names: &[String]) -> Chart {
    let series: Vec<Series> = (0..t.urls())
        .map(|u| {
            let hs = latencies(t, |i| i.urls[u].latency.clone());
            let points = hs
                .iter()
                .map(|(x, h)| (*x, ms(h.value_at_quantile(0.99))))
                .collect();
            Series::line(url_name("p99", names, u), u, points)
        })
        .collect();
    Chart {
        id: "latency-url".into(),
        title: "p99 fan-out latency per URL".into(),
        x: time_axis(t),
        y: y_axis("latency (ms)", &series),
        series,
        empty: "no latency samples".into(),
    }
}

/// Doubling buckets of a histogram of µs, as (from ms, to ms, count), without
/// the empty ones at either end.
pub fn buckets(h: &Histogram<u64>) -> Vec<(f64, f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut bars: Vec<(f64, f64, f64)> = h
        .iter_log(1, 2.0)
        .map(|v| {
            let upper = v.value_iterated_to() as f64 / 1000.0;
            (upper / 2.0, upper, v.count_since_last_iteration() as f64)
        })
        .collect();
    while bars.last().is_some_and(|b| b.2 == 0.0) {
        bars.pop();
    }
    let first = bars.iter().position(|b| b.2 > 0.0).unwrap_or(0);
    bars.split_off(first)
}

fn histogram_chart(id: &str, title: &str, x: &str, y: &str, h: &Histogram<u64>) -> Chart {
    let bars = buckets(h);
    let (lo, hi) = match (bars.first(), bars.last()) {
        (Some(f), Some(l)) => (f.0, l.1),
        _ => (0.001, 1.0),
    };
    let series = vec![Series::bars(y, 0, bars)];
    Chart {
        id: id.into(),
        title: title.into(),
        x: Axis::log(x, lo, hi),
        y: y_axis(&format!("{y} (count)"), &series),
        series,
        empty: format!("no {y}"),
    }
}

fn errors_chart(t: &Timeline) -> Chart {
    let kinds: std::collections::BTreeSet<_> =
        t.intervals.iter().flat_map(|i| i.errors.keys()).collect();
    let times = times(t);
    let series: Vec<Series> = kinds
        .iter()
        .enumerate()
        .map(|(n, kind)| {
            let points = times
                .iter()
                .zip(&t.intervals)
                .map(|(x, i)| (*x, i.errors.get(*kind).copied().unwrap_or(0) as f64))
                .collect();
            Series::line(kind.to_string(), (n + 3) % 6, points)
        })
        .collect();
    Chart {
        id: "errors".into(),
        title: "Errors by kind over time".into(),
        x: time_axis(t),
        y: y_axis("errors (count per interval)", &series),
        series,
        empty: "no errors".into(),
    }
}
