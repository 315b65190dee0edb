//! `--threshold 'p99<50ms'`: a metric, a comparison, and a value with an optional unit.
//!
//! Metrics (latencies in milliseconds): `p50` `p90` `p95` `p99` `p999` `max` `mean`
//! (fan-out latency), `connect_p50` … `connect_max` (socket open), `connected_p50` …
//! `connected_max` (time to CONNECTED), `loss` (missing deliveries), `loss_pct`,
//! `duplicates`, `reordered`, `errors` (failed connections and errors of every kind),
//! `delivered` (frames), `rate` (frames/s), `connect_rate` (connections/s), `opened`.
//! Comparisons: `<` `<=` `>` `>=` `==` `!=`. Units: `us`, `ms`, `s` for latencies
//! (default ms), `%` for `loss_pct`, `k`/`M` multipliers for counts and rates.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{LoadSummary, Percentiles};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Op::Lt => actual < limit,
            Op::Le => actual <= limit,
            Op::Gt => actual > limit,
            Op::Ge => actual >= limit,
            Op::Eq => actual == limit,
            Op::Ne => actual != limit,
        }
    }
}

/// One parsed threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub text: String,
    pub metric: String,
    pub op: Op,
    /// In the metric's unit (ms for latencies).
    pub value: f64,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const LATENCIES: [&str; 7] = ["p50", "p90", "p95", "p99", "p999", "max", "mean"];
const COUNTS: [&str; 9] = [
    "loss",
    "loss_pct",
    "duplicates",
    "reordered",
    "errors",
    "delivered",
    "rate",
    "connect_rate",
    "opened",
];

fn is_latency(metric: &str) -> bool {
    let base = metric
        .strip_prefix("connected_")
        .or_else(|| metric.strip_prefix("connect_"))
        .unwrap_or(metric);
    LATENCIES.contains(&base) && (metric == base || metric != "connect_rate")
}

impl std::str::FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Threshold, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let at = compact.find(['<', '>', '=', '!']).ok_or_else(|| {
            format!("{text:?} has no comparison: write it like 'p99<50ms' or 'loss==0'")
        })?;
        let (metric, rest) = compact.split_at(at);
        let (op, value) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(sym, op)| rest.strip_prefix(sym).map(|v| (op, v)))
        .ok_or_else(|| format!("{text:?}: the comparison must be one of < <= > >= == !="))?;
        let metric = metric.to_ascii_lowercase();
        let latency = is_latency(&metric);
        if !latency && !COUNTS.contains(&metric.as_str()) {
            return Err(format!(
                "{text:?}: unknown metric {metric:?}; use p50 p90 p95 p99 p999 max mean, connect_… or connected_… of those, or {}",
                COUNTS.join(" ")
            ));
        }
        let split = value
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(value.len());
        let (number, unit) = value.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("{text:?}: {value:?} is not a number"))?;
        let factor = match (latency, unit) {
            (true, "" | "ms") => 1.0,
            (true, "us" | "µs") => 0.001,
            (true, "s") => 1000.0,
            (false, "") => 1.0,
            (false, "%") if metric == "loss_pct" => 1.0,
            (false, "k") => 1e3,
            (false, "M") => 1e6,
            _ => return Err(format!("{text:?}: unit {unit:?} does not fit {metric}")),
        };
        Ok(Threshold {
            text: text.trim().to_string(),
            metric,
            op,
            value: number * factor,
        })
    }
}

impl Threshold {
    /// How far `actual` is inside the limit (negative: past it), in the metric's
    /// unit; `==` and `!=` have no room, only a distance (|actual - limit|).
    pub fn margin(&self, actual: f64) -> f64 {
        match self.op {
            Op::Lt | Op::Le => self.value - actual,
            Op::Gt | Op::Ge => actual - self.value,
            Op::Eq if actual == self.value => 0.0,
            Op::Eq => -(actual - self.value).abs(),
            Op::Ne => (actual - self.value).abs(),
        }
    }

    /// The unit of the metric as shown: ` ms` for latencies, `%` for `loss_pct`,
    /// else nothing.
    pub fn unit(&self) -> &'static str {
        if is_latency(&self.metric) {
            " ms"
        } else if self.metric == "loss_pct" {
            " %"
        } else {
            ""
        }
    }
}

fn latency(p: &Percentiles, which: &str) -> f64 {
    match which {
        "p50" => p.p50,
        "p90" => p.p90,
        "p95" => p.p95,
        "p99" => p.p99,
        "p999" => p.p999,
        "max" => p.max,
        _ => p.mean,
    }
}

/// The value of a metric in a summary (`None` when the run could not measure it).
pub fn metric(summary: &LoadSummary, name: &str) -> Option<f64> {
    if let Some(which) = name.strip_prefix("connected_") {
        return Some(latency(&summary.connected_ms, which));
    }
    if let Some(which) = name.strip_prefix("connect_").filter(|w| *w != "rate") {
        return Some(latency(&summary.connect_ms, which));
    }
    if LATENCIES.contains(&name) {
        return (summary.latency_ms.count > 0).then(|| latency(&summary.latency_ms, name));
    }
    let c = summary.completeness.as_ref();
    Some(match name {
        "loss" => c?.missing as f64,
        "loss_pct" => c.map(|c| {
            if c.expected == 0 {
                0.0
            } else {
                c.missing as f64 * 100.0 / c.expected as f64
            }
        })?,
        "duplicates" => c?.duplicated as f64,
        "reordered" => c?.reordered as f64,
        "errors" => (summary.connections_failed + summary.errors.values().sum::<u64>()) as f64,
        "delivered" => summary.frames_delivered as f64,
        "rate" => summary.delivered_per_sec,
        "connect_rate" => summary.connect_rate,
        "opened" => summary.connections_opened as f64,
        _ => return None,
    })
}

/// How a threshold fared.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub threshold: String,
    pub ok: bool,
    pub actual: Option<f64>,
    pub message: String,
}

pub fn evaluate(thresholds: &[Threshold], summary: &LoadSummary) -> Vec<Verdict> {
    thresholds
        .iter()
        .map(|t| {
            let unit = if is_latency(&t.metric) { " ms" } else { "" };
            match metric(summary, &t.metric) {
                None => Verdict {
                    threshold: t.text.clone(),
                    ok: false,
                    actual: None,
                    message: format!("{}: {} could not be measured in this run", t.text, t.metric),
                },
                Some(actual) => {
                    let ok = t.op.holds(actual, t.value);
                    let by = (actual - t.value).abs();
                    let message = if ok {
                        format!("{} holds: {} = {actual:.3}{unit}", t.text, t.metric)
                    } else {
                        format!(
                            "{} breached: {} = {actual:.3}{unit} ({by:.3}{unit} past the limit)",
                            t.text, t.metric
                        )
                    };
                    Verdict {
                        threshold: t.text.clone(),
                        ok,
                        actual: Some(actual),
                        message,
                    }
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        s.parse().unwrap()
    }

    #[test]
    fn parsing() {
        assert_eq!(
            (
                t("p99<50ms").metric.as_str(),
                t("p99<50ms").op,
                t("p99<50ms").value
            ),
            ("p99", Op::Lt, 50.0)
        );
        assert_eq!(t("connect_p95 < 0.2s").value, 200.0);
        assert_eq!(t("p50<=500us").value, 0.5);
        assert_eq!((t("loss==0").op, t("loss==0").value), (Op::Eq, 0.0));
        assert_eq!(t("rate>=1M").value, 1e6);
        assert_eq!(t("loss_pct<0.1%").value, 0.1);
        assert!(
            "p99"
                .parse::<Threshold>()
                .unwrap_err()
                .contains("no comparison")
        );
        assert!(
            "latency<5"
                .parse::<Threshold>()
                .unwrap_err()
                .contains("unknown metric")
        );
        assert!(
            "p99<fast"
                .parse::<Threshold>()
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            "loss<5ms"
                .parse::<Threshold>()
                .unwrap_err()
                .contains("unit")
        );
        assert!("p99=<5".parse::<Threshold>().is_err());
    }

    #[test]
    fn evaluation_says_by_how_much() {
        let mut s = LoadSummary {
            latency_ms: Percentiles {
                count: 10,
                p99: 63.25,
                ..Default::default()
            },
            completeness: Some(super::super::Completeness {
                expected: 100,
                missing: 0,
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = evaluate(&[t("p99<50ms"), t("loss==0"), t("connected_p99<1s")], &s);
        assert!(!v[0].ok);
        assert!(
            v[0].message.contains("breached") && v[0].message.contains("13.250 ms"),
            "{}",
            v[0].message
        );
        assert!(v[1].ok && v[2].ok);
        s.completeness = None;
        let v = evaluate(&[t("loss==0")], &s);
        assert!(!v[0].ok && v[0].message.contains("could not be measured"));
    }

    #[test]
    fn margins_are_positive_inside_the_limit() {
        assert_eq!(t("p99<50ms").margin(40.0), 10.0);
        assert_eq!(t("p99<50ms").margin(63.0), -13.0);
        assert_eq!(t("rate>=100").margin(150.0), 50.0);
        assert_eq!(t("loss==0").margin(0.0), 0.0);
        assert_eq!(t("loss==0").margin(3.0), -3.0);
        assert_eq!((t("p99<1s").unit(), t("loss==0").unit()), (" ms", ""));
    }
}
