//! `load --report`, `--summary-file`, `--baseline`, `--junit` and several `--url`:
//! the page's structure (parsed as XHTML, charts walked as SVG), the thresholds
//! table, the comparison with a baseline, and the page rendered by headless
//! Chromium with every chart's area drawn.

use std::path::{Path, PathBuf};

use roxmltree::{Document, Node};
use syncprobe::load::{LoadSummary, Percentiles};
use syncprobe::report::load::LoadReport;

use crate::support::*;

fn parse(html: &str) -> Document<'_> {
    Document::parse_with_options(
        html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("the page is well-formed XHTML")
}

fn has_class(n: &Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|w| w == class))
}

fn text_of(n: Node) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect()
}

/// The `<figure>` of chart `id`.
fn figure<'a>(doc: &'a Document<'a>, id: &str) -> Node<'a, 'a> {
    doc.descendants()
        .find(|n| n.has_tag_name("figure") && n.attribute("id") == Some(id))
        .unwrap_or_else(|| panic!("no chart {id}"))
}

/// What a chart's SVG holds: tick labels per axis, axis labels, series names.
struct ChartShape {
    x_ticks: Vec<String>,
    y_ticks: Vec<String>,
    labels: Vec<String>,
    series: Vec<String>,
    empty: bool,
}

fn chart_shape(figure: Node) -> ChartShape {
    let svg = figure
        .descendants()
        .find(|n| n.has_tag_name("svg"))
        .expect("an svg");
    let axis = |which: &str| {
        let axis = svg
            .descendants()
            .find(|n| has_class(n, "axis") && has_class(n, which))
            .unwrap_or_else(|| panic!("no {which} axis"));
        assert!(
            axis.descendants().any(|n| n.has_tag_name("line")),
            "the {which} axis has a line"
        );
        axis.descendants()
            .filter(|n| has_class(n, "tick"))
            .map(text_of)
            .collect::<Vec<_>>()
    };
    ChartShape {
        x_ticks: axis("x"),
        y_ticks: axis("y"),
        labels: svg
            .descendants()
            .filter(|n| has_class(n, "label"))
            .map(text_of)
            .collect(),
        series: svg
            .descendants()
            .filter_map(|n| n.attribute("data-series"))
            .map(String::from)
            .collect(),
        empty: svg.descendants().any(|n| has_class(&n, "empty")),
    }
}

/// A load run against `serve` with the given extra flags; the page and the output.
async fn run_with_report(extra: &[&str]) -> (String, std::process::Output, tempfile::TempDir) {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("r.html");
    let base = server.base();
    let mut argv = vec![
        "load",
        "--url",
        &base,
        "-c",
        "30",
        "--events",
        "40",
        "--rate",
        "200",
        "--report",
        page.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let output = run_cli(&argv).await;
    let html = std::fs::read_to_string(&page).unwrap_or_default();
    (html, output, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_has_run_facts_and_six_charts_with_axes_and_series() {
    let dir = tempfile::tempdir().unwrap();
    let summary_file = dir.path().join("s.json");
    let (html, output, _d) = run_with_report(&[
        "--token",
        "tok-hidden-1",
        "--summary-file",
        summary_file.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = parse(&html);
    let verdict = doc
        .descendants()
        .find(|n| has_class(n, "verdict"))
        .expect("a verdict");
    assert!(has_class(&verdict, "ok"), "coloured as passed");
    assert!(text_of(verdict).contains("passed"), "and says it in a word");
    let facts: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("table") && has_class(n, "facts"))
        .flat_map(|t| t.children().filter(|r| r.has_tag_name("tr")))
        .map(|r| {
            let cells: Vec<String> = r
                .children()
                .filter(|c| c.is_element())
                .map(text_of)
                .collect();
            (cells[0].clone(), cells[1].clone())
        })
        .collect();
    let fact = |k: &str| {
        facts
            .iter()
            .find(|f| f.0 == k)
            .map(|f| f.1.clone())
            .unwrap_or_else(|| panic!("no fact {k}: {facts:?}"))
    };
    assert_eq!(fact("syncprobe"), env!("CARGO_PKG_VERSION"));
    assert!(
        fact("command").contains("--token ***"),
        "{}",
        fact("command")
    );
    assert!(
        !html.contains("tok-hidden-1"),
        "the token never reaches the page"
    );
    assert!(fact("target URL").starts_with("ws://127.0.0.1:"));
    assert!(fact("started").ends_with('Z'), "{}", fact("started"));
    for phase in ["connect", "events", "drain"] {
        assert!(fact("phases").contains(phase), "{}", fact("phases"));
    }
    assert!(fact("load").contains("C = 30 over 1 organization"));
    assert!(fact("event source").contains("40 events per organization at 200/s"));
    for (id, series) in [
        ("open", &["open"][..]),
        ("connect", &["connections"][..]),
        ("delivered", &["delivered"][..]),
        ("latency-time", &["p50", "p90", "p99", "max"][..]),
        ("latency-histogram", &["frames"][..]),
    ] {
        let shape = chart_shape(figure(&doc, id));
        assert!(
            shape.x_ticks.len() >= 2 && shape.y_ticks.len() >= 2,
            "{id} has ticks"
        );
        assert!(
            shape.x_ticks.iter().all(|t| !t.is_empty()),
            "{id}: tick labels"
        );
        assert_eq!(shape.labels.len(), 2, "{id}: two axis labels");
        assert!(
            shape.labels.iter().all(|l| l.contains('(')),
            "{id}: units {:?}",
            shape.labels
        );
        assert_eq!(shape.series, series, "{id}");
        assert!(!shape.empty, "{id}");
    }
    let histogram = chart_shape(figure(&doc, "latency-histogram"));
    assert!(histogram.labels[0].contains("log scale"));
    let errors = chart_shape(figure(&doc, "errors"));
    assert!(
        errors.empty && errors.series.is_empty(),
        "no errors: said, not drawn"
    );
    // No threshold given: no Thresholds section.
    assert!(!doc.descendants().any(|n| has_class(&n, "thresholds")));
    assert!(!html.contains("Thresholds"));
    self_contained(&doc, &html);
    // The summary file is the --json summary.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_file).unwrap()).unwrap();
    let records = records(&output);
    let from_json = data_of(&records, "summary")[0];
    assert_eq!(&saved, from_json);
}

/// No script, no external resource: every URL in the page is a fragment, or an
/// XML namespace.
fn self_contained(doc: &Document, html: &str) {
    assert!(!html.to_ascii_lowercase().contains("<script"));
    for node in doc.descendants().filter(|n| n.is_element()) {
        assert!(!node.has_tag_name("script") && !node.has_tag_name("link"));
        for a in node.attributes() {
            let external = a.value().contains("://") && a.name() != "xmlns";
            assert!(
                !external || a.value().starts_with("ws://"),
                "{}={}",
                a.name(),
                a.value()
            );
            assert!(!matches!(a.name(), "src" | "srcset"), "{}", a.name());
            if a.name() == "href" {
                assert!(a.value().starts_with('#'), "{}", a.value());
            }
        }
    }
    assert!(!html.contains("url("), "no CSS resources");
    assert!(!html.contains("@import"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_are_a_table_of_pass_and_fail_and_junit_has_a_case_each() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("j.xml");
    let (html, output, _d) = run_with_report(&[
        "--threshold",
        "p99<30s",
        "--threshold",
        "opened>=31",
        "--junit",
        junit.to_str().unwrap(),
        "-q",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let doc = parse(&html);
    let verdict = doc.descendants().find(|n| has_class(n, "verdict")).unwrap();
    assert!(has_class(&verdict, "bad") && text_of(verdict).contains("failed thresholds"));
    let rows: Vec<Vec<String>> = doc
        .descendants()
        .filter(|n| n.has_tag_name("tr") && (has_class(n, "pass") || has_class(n, "fail")))
        .map(|r| {
            r.children()
                .filter(|c| c.is_element())
                .map(text_of)
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], "p99<30s");
    assert!(
        rows[0][1].ends_with(" ms") && rows[0][2].contains("pass") && rows[0][3].starts_with('+')
    );
    assert_eq!(rows[1], ["opened>=31", "30.000", "✗ fail", "-1.000"]);

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = Document::parse(&xml).unwrap();
    let cases: Vec<(String, bool)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let failed = c.children().any(|f| f.has_tag_name("failure"));
            (c.attribute("name").unwrap().to_string(), failed)
        })
        .collect();
    assert_eq!(
        cases,
        [
            ("threshold p99<30s".to_string(), false),
            ("threshold opened>=31".to_string(), true),
            ("completeness".to_string(), false),
        ]
    );
}

fn baseline_file(dir: &Path) -> PathBuf {
    // An earlier run that was faster (p99) and delivered less, with failures.
    let before = LoadSummary {
        connections_requested: 30,
        connections_opened: 25,
        connections_failed: 5,
        latency_ms: Percentiles {
            count: 1,
            p99: 0.000_1,
            ..Default::default()
        },
        delivered_per_sec: 0.001,
        frames_delivered: 1200,
        ..Default::default()
    };
    let report = LoadReport::finished(before, vec![], false);
    let path = dir.join("before.json");
    std::fs::write(&path, serde_json::to_string(&report).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_shows_improved_and_regressed_figures_in_the_page_and_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = baseline_file(dir.path());
    let (html, output, _d) = run_with_report(&["--baseline", baseline.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = parse(&html);
    let directions: Vec<(String, String)> = doc
        .descendants()
        .filter_map(|r| r.attribute("data-direction").map(|d| (r, d)))
        .map(|(r, d)| (text_of(r.first_element_child().unwrap()), d.to_string()))
        .collect();
    let of = |label: &str| {
        directions
            .iter()
            .find(|d| d.0 == label)
            .map(|d| d.1.as_str())
            .unwrap_or_else(|| panic!("no {label}: {directions:?}"))
    };
    assert_eq!(of("latency p99"), "regressed");
    assert_eq!(of("delivery rate"), "improved");
    assert_eq!(of("connections failed"), "improved");
    assert_eq!(of("frames delivered"), "same");
    assert!(directions.len() >= 14, "every figure: {directions:?}");
    let out = stdout(&output);
    assert!(out.contains("Compared with"), "{out}");
    let line = |label: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in {out}"))
            .to_string()
    };
    assert!(
        line("latency p99").ends_with("regressed"),
        "{}",
        line("latency p99")
    );
    assert!(line("delivery rate").ends_with("improved"));
    assert!(line("connections failed").contains("-5.000 (-100.0 %)"));
}

#[tokio::test]
async fn a_baseline_that_is_not_a_load_summary_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "count.json",
            r#"{"type":"summary","data":{"outcome":"count"}}"#,
        ),
        ("text.json", "hello"),
        ("open.json", r#"{"type":"open","data":{}}"#),
    ];
    for (name, content) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let out = run_cli(&["load", "-c", "1", "--baseline", path.to_str().unwrap()]).await;
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is not a load summary"),
            "{}",
            stderr(&out)
        );
    }
    let missing = dir.path().join("missing.json");
    let out = run_cli(&["load", "-c", "1", "--baseline", missing.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_urls_share_the_connections_and_are_reported_each() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("r.html");
    // Two spellings of one server: every event reaches both URLs' subscribers.
    let first = server.base();
    let second = first.replace("127.0.0.1", "localhost");
    let output = run_cli(&[
        "load",
        "--url",
        &first,
        "--url",
        &second,
        "-c",
        "20",
        "--orgs",
        "2",
        "--events",
        "10",
        "--report",
        page.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let r: LoadReport = summary_of(&records(&output));
    // As shown: parsed, so with the path's slash.
    let (first, second) = (format!("{first}/"), format!("{second}/"));
    let urls: Vec<(&str, u64, u64)> = r
        .summary
        .urls
        .iter()
        .map(|u| (u.url.as_str(), u.connections_opened, u.frames_delivered))
        .collect();
    assert_eq!(
        urls,
        [(first.as_str(), 10, 100), (second.as_str(), 10, 100)]
    );
    assert!(r.summary.urls.iter().all(|u| u.latency_ms.count == 100));
    let html = std::fs::read_to_string(&page).unwrap();
    let doc = parse(&html);
    let rows = doc
        .descendants()
        .filter(|n| n.has_tag_name("table") && has_class(n, "urls"))
        .flat_map(|t| t.children().filter(|r| r.has_tag_name("tr")))
        .count();
    assert_eq!(rows, 3, "a header and a row per URL");
    let open = chart_shape(figure(&doc, "open"));
    assert_eq!(
        open.series,
        [format!("open {first}"), format!("open {second}")]
    );
    let per_url = chart_shape(figure(&doc, "latency-url"));
    assert_eq!(per_url.series.len(), 2);
}

// ---- headless Chromium ----

/// Chromium, or `None` (the test is skipped) when it is not installed and this is
/// not CI; on CI its absence fails.
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").ok().as_deref() != Some("true"),
            "chromium is not installed, and CI=true: .ci/run installs it"
        );
        eprintln!("SKIPPED: the headless Chromium test, /usr/bin/chromium is not installed");
    }
    found
}

/// A screenshot of `url` at 1300 × 460, decoded to RGB rows.
fn screenshot(chromium: &Path, url: &str, dir: &Path, name: &str) -> (u32, u32, Vec<u8>) {
    let png = dir.join(format!("{name}.png"));
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            "--window-size=1300,460",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success() && png.exists(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb: Vec<u8> = buf[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, rgb)
}

/// Rows of the screenshot where a chart shown alone is drawn: below its heading
/// (about 50 px) and above its caption (about 380 px, at 1300 px wide).
const CHART_ROWS: std::ops::Range<u32> = 80..360;

/// What was drawn in the chart's rows: the share of pixels unlike the background
/// (the top-left pixel), and the count of coloured ones (series, not black or grey
/// text and axes).
fn ink((w, h, rgb): &(u32, u32, Vec<u8>)) -> (f64, usize) {
    let bg = [rgb[0], rgb[1], rgb[2]];
    let mut inked = 0usize;
    let mut coloured = 0usize;
    let rows = CHART_ROWS.start.min(*h)..CHART_ROWS.end.min(*h);
    let band = &rgb[(rows.start * w * 3) as usize..(rows.end * w * 3) as usize];
    for p in band.chunks(3) {
        let far = p.iter().zip(bg).any(|(a, b)| a.abs_diff(b) > 40);
        if far {
            inked += 1;
            let (max, min) = (p.iter().max().unwrap(), p.iter().min().unwrap());
            if max - min > 80 {
                coloured += 1;
            }
        }
    }
    let area = (*w as f64 * rows.len() as f64).max(1.0);
    (inked as f64 / area, coloured)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_draws_every_chart() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (html, output, dir) = run_with_report(&["-q"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!html.is_empty());
    let page = dir.path().join("r.html");
    // The check can fail: a blank page is found blank.
    let blank = dir.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let (share, coloured) = ink(&screenshot(
        &chromium,
        &format!("file://{}", blank.display()),
        dir.path(),
        "blank",
    ));
    assert!(
        share < 0.001 && coloured == 0,
        "a blank page: {share} {coloured}"
    );
    // Each chart, shown alone by its fragment (`figure:target` fills the window).
    for (id, series) in [
        ("open", true),
        ("connect", true),
        ("delivered", true),
        ("latency-time", true),
        ("latency-histogram", true),
        ("errors", false),
    ] {
        let shot = screenshot(
            &chromium,
            &format!("file://{}#{id}", page.display()),
            dir.path(),
            id,
        );
        let (share, coloured) = ink(&shot);
        assert!(
            share > 0.01,
            "{id}: the chart's area is blank ({share:.4} inked)"
        );
        if series {
            assert!(
                coloured > 40,
                "{id}: no series drawn ({coloured} coloured pixels)"
            );
        }
    }
}
