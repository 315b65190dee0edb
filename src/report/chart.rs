//! Charts of the HTML report as inline SVG: scales (linear, logarithmic), axis ticks
//! by the "nice numbers" algorithm (Heckbert, Graphics Gems, 1990), line and bar
//! series, labelled axes with units and a legend. No script: what a chart shows is
//! in its markup, and every series has a `<title>` for a hover hint.
//!
//! Colours come from the page's stylesheet (classes `s0` … `s5`, `axis`, `grid`), so
//! light and dark mode are the page's business.

use maud::{Markup, html};

/// Drawing size of every chart (the page scales it to its width).
pub const WIDTH: f64 = 1200.0;
pub const HEIGHT: f64 = 300.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 50.0;
/// Line series with at most this many points get a marker on each.
const MARKED: usize = 40;

/// The "nice" number closest to `x` (`round`) or at least `x`: 1, 2 or 5 (2.5 is not
/// used) times a power of ten.
pub fn nice_number(x: f64, round: bool) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let exponent = x.log10().floor();
    let fraction = x / 10f64.powf(exponent);
    let nice = if round {
        match fraction {
            f if f < 1.5 => 1.0,
            f if f < 3.0 => 2.0,
            f if f < 7.0 => 5.0,
            _ => 10.0,
        }
    } else {
        match fraction {
            f if f <= 1.0 => 1.0,
            f if f <= 2.0 => 2.0,
            f if f <= 5.0 => 5.0,
            _ => 10.0,
        }
    };
    nice * 10f64.powf(exponent)
}

/// About `target` ticks covering `min..=max`, at a nice step, the first at or below
/// `min` and the last at or above `max`.
pub fn nice_ticks(min: f64, max: f64, target: usize) -> Vec<f64> {
    let (min, max) = if max > min {
        (min, max)
    } else {
        (min, min + 1.0)
    };
    let range = nice_number(max - min, false);
    let step = nice_number(range / (target.max(2) - 1) as f64, true);
    let first = (min / step).floor() * step;
    let last = (max / step).ceil() * step;
    let n = ((last - first) / step).round() as usize;
    (0..=n)
        .map(|i| clean(first + i as f64 * step, step))
        .collect()
}

/// Rounds away floating-point dust (0.30000000000000004) at the step's precision.
fn clean(v: f64, step: f64) -> f64 {
    let digits = (-step.log10().floor()).max(0.0) as i32 + 1;
    let factor = 10f64.powi(digits);
    (v * factor).round() / factor
}

/// Ticks of a logarithmic axis over `min..=max` (both > 0): every power of ten from
/// below `min` to above `max`, with 2 and 5 between them when that gives fewer than
/// four ticks.
pub fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let min = min.max(f64::MIN_POSITIVE);
    let max = max.max(min * 10.0);
    let low = min.log10().floor() as i32;
    let high = max.log10().ceil() as i32;
    let decades: Vec<f64> = (low..=high).map(|e| 10f64.powi(e)).collect();
    if decades.len() >= 4 {
        return decades;
    }
    let mut ticks: Vec<f64> = decades
        .iter()
        .flat_map(|d| [*d, d * 2.0, d * 5.0])
        .filter(|v| *v <= 10f64.powi(high))
        .collect();
    ticks.retain(|v| *v >= 10f64.powi(low));
    ticks
}

/// How values map to a 0..1 position along an axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Linear { min: f64, max: f64 },
    Log { min: f64, max: f64 },
}

impl Scale {
    /// A linear scale from nice ticks over the data's range, and those ticks.
    pub fn linear(min: f64, max: f64) -> (Scale, Vec<f64>) {
        let ticks = nice_ticks(min, max, 6);
        let scale = Scale::Linear {
            min: ticks[0],
            max: *ticks.last().unwrap_or(&1.0),
        };
        (scale, ticks)
    }

    /// A log scale from decade ticks around the data's range, and those ticks.
    pub fn log(min: f64, max: f64) -> (Scale, Vec<f64>) {
        let ticks = log_ticks(min, max);
        let scale = Scale::Log {
            min: ticks[0],
            max: *ticks.last().unwrap_or(&10.0),
        };
        (scale, ticks)
    }

    /// Where `v` lies, 0 at the low end and 1 at the high end (clamped).
    pub fn fraction(&self, v: f64) -> f64 {
        let f = match *self {
            Scale::Linear { min, max } => (v - min) / (max - min),
            Scale::Log { min, max } => {
                (v.max(min).log10() - min.log10()) / (max.log10() - min.log10())
            }
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// A tick's label: no more digits than the step needs.
pub fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One axis: its label (with the unit), scale and ticks.
#[derive(Clone, Debug)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    pub ticks: Vec<f64>,
}

impl Axis {
    pub fn linear(label: &str, min: f64, max: f64) -> Axis {
        let (scale, ticks) = Scale::linear(min, max);
        Axis {
            label: label.into(),
            scale,
            ticks,
        }
    }

    pub fn log(label: &str, min: f64, max: f64) -> Axis {
        let (scale, ticks) = Scale::log(min, max);
        Axis {
            label: label.into(),
            scale,
            ticks,
        }
    }
}

/// The marks of a series.
#[derive(Clone, Debug)]
pub enum Marks {
    /// Points joined by a line.
    Line(Vec<(f64, f64)>),
    /// Bars from x0 to x1, of height y (a count, written above the bar).
    Bars(Vec<(f64, f64, f64)>),
}

/// One series: its legend name, colour (0–5) and marks.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub colour: usize,
    pub marks: Marks,
}

impl Series {
    pub fn line(name: impl Into<String>, colour: usize, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            colour,
            marks: Marks::Line(points),
        }
    }

    pub fn bars(name: impl Into<String>, colour: usize, bars: Vec<(f64, f64, f64)>) -> Series {
        Series {
            name: name.into(),
            colour,
            marks: Marks::Bars(bars),
        }
    }

    fn is_empty(&self) -> bool {
        match &self.marks {
            Marks::Line(p) => p.is_empty(),
            Marks::Bars(b) => b.is_empty(),
        }
    }

    /// The largest y of the series.
    pub fn max_y(&self) -> f64 {
        match &self.marks {
            Marks::Line(p) => p.iter().map(|p| p.1).fold(0.0, f64::max),
            Marks::Bars(b) => b.iter().map(|b| b.2).fold(0.0, f64::max),
        }
    }
}

/// A chart: an id (the page's anchor), a title, two axes and its series. With no
/// series (or only empty ones) it draws its axes and `empty` instead.
#[derive(Clone, Debug)]
pub struct Chart {
    pub id: String,
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    pub empty: String,
}

impl Chart {
    fn px(&self, x: f64) -> f64 {
        LEFT + self.x.scale.fraction(x) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - self.y.scale.fraction(y) * (HEIGHT - TOP - BOTTOM)
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> Markup {
        let drawn: Vec<&Series> = self.series.iter().filter(|s| !s.is_empty()).collect();
        html! {
            svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart=(self.id)
                viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(self.title) {
                title { (self.title) }
                (self.axes())
                @for s in &drawn { (self.series_svg(s)) }
                @if drawn.is_empty() {
                    text class="empty" x=(WIDTH / 2.0) y=(HEIGHT / 2.0) text-anchor="middle" { (self.empty) }
                }
                (legend(&drawn))
            }
        }
    }

    fn axes(&self) -> Markup {
        let (x0, x1) = (LEFT, WIDTH - RIGHT);
        let (y0, y1) = (HEIGHT - BOTTOM, TOP);
        html! {
            g class="axis x" {
                line class="grid" x1=(x0) y1=(y0) x2=(x1) y2=(y0) {}
                @for t in &self.x.ticks {
                    g class="tick" {
                        line x1=(r(self.px(*t))) y1=(y0) x2=(r(self.px(*t))) y2=(y0 + 5.0) {}
                        text x=(r(self.px(*t))) y=(y0 + 18.0) text-anchor="middle" { (tick_label(*t)) }
                    }
                }
                text class="label" x=((x0 + x1) / 2.0) y=(HEIGHT - 8.0) text-anchor="middle" { (self.x.label) }
            }
            g class="axis y" {
                line class="grid" x1=(x0) y1=(y0) x2=(x0) y2=(y1) {}
                @for t in &self.y.ticks {
                    g class="tick" {
                        line class="grid" x1=(x0) y1=(r(self.py(*t))) x2=(x1) y2=(r(self.py(*t))) {}
                        text x=(x0 - 8.0) y=(r(self.py(*t) + 4.0)) text-anchor="end" { (tick_label(*t)) }
                    }
                }
                text class="label" x="16" y=((y0 + y1) / 2.0) text-anchor="middle"
                    transform={ "rotate(-90 16 " ((y0 + y1) / 2.0) ")" } { (self.y.label) }
            }
        }
    }

    fn series_svg(&self, s: &Series) -> Markup {
        let class = format!("series s{}", s.colour % 6);
        match &s.marks {
            Marks::Line(points) => {
                let path: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{},{}", r(self.px(*x)), r(self.py(*y))))
                    .collect();
                // Few points get a marker each: a lone point would draw nothing.
                let markers = if points.len() <= MARKED {
                    &points[..]
                } else {
                    &[][..]
                };
                html! {
                    polyline class=(class) data-series=(s.name) points=(path.join(" ")) {
                        title { (s.name) }
                    }
                    @if !markers.is_empty() {
                        g class={ "markers s" (s.colour % 6) } {
                            @for (x, y) in markers {
                                circle cx=(r(self.px(*x))) cy=(r(self.py(*y))) r="3.5" {}
                            }
                        }
                    }
                }
            }
            Marks::Bars(bars) => html! {
                g class=(class) data-series=(s.name) {
                    @for (x0, x1, y) in bars {
                        @let (left, right) = (self.px(*x0), self.px(*x1));
                        @let top = self.py(*y);
                        rect x=(r(left + 1.0)) y=(r(top)) width=(r((right - left - 2.0).max(1.0)))
                            height=(r(self.py(self.y.ticks[0]) - top)) {
                            title { (s.name) " " (tick_label(*x0)) "–" (tick_label(*x1)) ": " (tick_label(*y)) }
                        }
                        @if *y > 0.0 {
                            text class="count" x=(r((left + right) / 2.0)) y=(r(top - 4.0)) text-anchor="middle" { (*y as u64) }
                        }
                    }
                }
            },
        }
    }
}

/// The legend, one swatch and name per series, left to right (the x of each item
/// from the length of the names before it).
fn legend(series: &[&Series]) -> Markup {
    let mut x = LEFT;
    let at: Vec<f64> = series
        .iter()
        .map(|s| {
            let here = x;
            x += 36.0 + 7.5 * s.name.chars().count() as f64;
            here
        })
        .collect();
    html! {
        g class="legend" {
            @for (s, x) in series.iter().zip(at) {
                g class={ "s" (s.colour % 6) } {
                    rect class="swatch" x=(x) y="10" width="14" height="14" {}
                    text x=(x + 20.0) y="22" { (s.name) }
                }
            }
        }
    }
}

/// Rounds a coordinate to 0.1 px.
fn r(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_numbers_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_number(0.8, true), 1.0);
        assert_eq!(nice_number(2.4, true), 2.0);
        assert_eq!(nice_number(4.0, true), 5.0);
        assert_eq!(nice_number(8.0, true), 10.0);
        assert_eq!(nice_number(130.0, false), 200.0);
        assert_eq!(nice_number(0.031, false), 0.05);
        assert_eq!(nice_number(0.0, true), 1.0);
    }

    #[test]
    fn ticks_cover_the_range_at_a_nice_step() {
        assert_eq!(
            nice_ticks(0.0, 100.0, 6),
            [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(0.0, 12.36, 6), [0.0, 5.0, 10.0, 15.0]);
        assert_eq!(nice_ticks(0.0, 9.0, 6), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(nice_ticks(0.0, 0.7, 6), [0.0, 0.2, 0.4, 0.6, 0.8]);
        assert_eq!(
            nice_ticks(3.0, 497.0, 5),
            [0.0, 100.0, 200.0, 300.0, 400.0, 500.0]
        );
        // An empty range still gets an axis.
        let flat = nice_ticks(5.0, 5.0, 6);
        assert!(flat.len() >= 2 && flat[0] <= 5.0 && *flat.last().unwrap() >= 6.0);
    }

    #[test]
    fn log_ticks_are_decades_or_one_two_five() {
        assert_eq!(
            log_ticks(0.02, 300.0),
            [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
        );
        assert_eq!(
            log_ticks(1.5, 40.0),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        let s = Scale::Log {
            min: 0.01,
            max: 1000.0,
        };
        assert_eq!(s.fraction(0.01), 0.0);
        assert!((s.fraction(1.0) - 0.4).abs() < 1e-9);
        assert_eq!(s.fraction(1e9), 1.0);
        assert_eq!(s.fraction(0.0), 0.0, "zero sits at the low end");
    }

    #[test]
    fn linear_scales_map_and_clamp() {
        let (s, ticks) = Scale::linear(0.0, 9.0);
        assert_eq!(ticks.last(), Some(&10.0));
        assert_eq!(s.fraction(5.0), 0.5);
        assert_eq!(s.fraction(-1.0), 0.0);
        assert_eq!(s.fraction(20.0), 1.0);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(2.0), "2");
        assert_eq!(tick_label(25_000.0), "25k");
        assert_eq!(tick_label(2_000_000.0), "2M");
        assert_eq!(tick_label(0.001), "0.001");
    }

    #[test]
    fn a_chart_has_axes_ticks_labels_and_its_series() {
        let chart = Chart {
            id: "c".into(),
            title: "t".into(),
            x: Axis::linear("time (s)", 0.0, 10.0),
            y: Axis::log("latency (ms)", 0.1, 50.0),
            series: vec![
                Series::line("p50", 0, vec![(0.0, 1.0), (10.0, 2.0)]),
                Series::bars("n", 1, vec![(1.0, 2.0, 3.0)]),
                Series::line("none", 2, vec![]),
            ],
            empty: "nothing".into(),
        };
        let svg = chart.svg().into_string();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let count = |class: &str| {
            doc.descendants()
                .filter(|n| n.attribute("class") == Some(class))
                .count()
        };
        assert_eq!(count("axis x") + count("axis y"), 2);
        assert_eq!(count("tick"), chart.x.ticks.len() + chart.y.ticks.len());
        let labels: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("label"))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(labels, ["time (s)", "latency (ms)"]);
        let series: Vec<&str> = doc
            .descendants()
            .filter_map(|n| n.attribute("data-series"))
            .collect();
        assert_eq!(series, ["p50", "n"], "empty series are not drawn");
        assert_eq!(count("empty"), 0);
        let empty = Chart {
            series: vec![],
            ..chart
        };
        let svg = empty.svg().into_string();
        assert!(svg.contains("nothing"), "{svg}");
    }
}
