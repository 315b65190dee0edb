//! The run over time, for the report's charts: per interval ([`FIRST_WIDTH_MS`] at
//! first) the open connections (at the end and at the most), connect failures,
//! delivered frames, a latency histogram and errors by kind, in all and per URL.
//! Memory is bounded: past [`MAX_INTERVALS`] intervals, adjacent pairs are merged
//! and the interval doubles, so a run of hours keeps as many intervals as a run of
//! thirty seconds (each latency histogram is about 25 KiB, made only for an
//! interval with samples).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::{ErrorKind, MAX_LATENCY_US};

/// Most intervals kept; a longer run merges adjacent pairs.
pub const MAX_INTERVALS: usize = 120;
/// The first length of an interval, in milliseconds.
pub const FIRST_WIDTH_MS: u64 = 250;

/// The histogram of one interval: two significant digits (about 25 KiB), made only
/// when the interval has a sample.
fn interval_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds")
}

/// What one URL saw during one interval.
#[derive(Clone, Debug, Default)]
pub struct UrlSlice {
    /// Connections open at the end of the interval (`None`: no change during it,
    /// the previous interval's value holds).
    pub open: Option<u64>,
    /// Most connections open at once during the interval.
    pub peak: u64,
    pub failures: u64,
    pub delivered: u64,
    pub latency: Option<Histogram<u64>>,
}

impl UrlSlice {
    fn absorb(&mut self, later: UrlSlice) {
        self.open = later.open.or(self.open);
        self.peak = self.peak.max(later.peak);
        self.failures += later.failures;
        self.delivered += later.delivered;
        match (&mut self.latency, later.latency) {
            (Some(mine), Some(theirs)) => {
                let _ = mine.add(&theirs);
            }
            (None, Some(theirs)) => self.latency = Some(theirs),
            _ => {}
        }
    }

    fn record(&mut self, us: u64) {
        self.latency
            .get_or_insert_with(interval_histogram)
            .saturating_record(us.clamp(1, MAX_LATENCY_US));
    }
}

/// One interval of the run.
#[derive(Clone, Debug, Default)]
pub struct Interval {
    /// Per URL, in the order of the plan's targets.
    pub urls: Vec<UrlSlice>,
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl Interval {
    fn new(urls: usize) -> Interval {
        Interval {
            urls: vec![UrlSlice::default(); urls],
            errors: BTreeMap::new(),
        }
    }

    fn absorb(&mut self, later: Interval) {
        for (mine, theirs) in self.urls.iter_mut().zip(later.urls) {
            mine.absorb(theirs);
        }
        for (kind, n) in later.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }

    /// The latency histogram of every URL together (`None`: no sample).
    pub fn latency(&self) -> Option<Histogram<u64>> {
        let mut all: Option<Histogram<u64>> = None;
        for h in self.urls.iter().filter_map(|u| u.latency.as_ref()) {
            match &mut all {
                Some(a) => {
                    let _ = a.add(h);
                }
                None => all = Some(h.clone()),
            }
        }
        all
    }
}

/// The intervals of a run.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Length of one interval, in milliseconds (250, 500, 1000, …).
    pub width_ms: u64,
    pub intervals: Vec<Interval>,
    urls: usize,
}

impl Timeline {
    pub fn new(urls: usize) -> Timeline {
        Timeline {
            width_ms: FIRST_WIDTH_MS,
            intervals: Vec::new(),
            urls: urls.max(1),
        }
    }

    /// The interval `at` (time since the start of the run) falls in, merging pairs
    /// first when it would be past the cap.
    fn at(&mut self, at: Duration) -> &mut Interval {
        let ms = at.as_millis() as u64;
        let mut index = (ms / self.width_ms) as usize;
        while index >= MAX_INTERVALS {
            self.halve();
            index = (ms / self.width_ms) as usize;
        }
        while self.intervals.len() <= index {
            self.intervals.push(Interval::new(self.urls));
        }
        &mut self.intervals[index]
    }

    /// Merges adjacent pairs of intervals and doubles the width.
    fn halve(&mut self) {
        let old = std::mem::take(&mut self.intervals);
        let mut pairs = old.into_iter();
        while let Some(mut first) = pairs.next() {
            if let Some(second) = pairs.next() {
                first.absorb(second);
            }
            self.intervals.push(first);
        }
        self.width_ms *= 2;
    }

    fn url(&mut self, at: Duration, url: usize) -> &mut UrlSlice {
        let urls = self.urls;
        &mut self.at(at).urls[url.min(urls - 1)]
    }

    /// `url` has `open` connections open now.
    pub fn open(&mut self, at: Duration, url: usize, open: u64) {
        let slice = self.url(at, url);
        slice.open = Some(open);
        slice.peak = slice.peak.max(open);
    }

    pub fn failure(&mut self, at: Duration, url: usize) {
        self.url(at, url).failures += 1;
    }

    pub fn error(&mut self, at: Duration, kind: ErrorKind) {
        *self.at(at).errors.entry(kind).or_default() += 1;
    }

    pub fn delivered(&mut self, at: Duration, url: usize, frames: u64) {
        self.url(at, url).delivered += frames;
    }

    pub fn latency(&mut self, at: Duration, url: usize, us: u64) {
        self.url(at, url).record(us);
    }

    /// Most connections open during each interval, per URL: the interval's peak,
    /// or the value it started with (the previous interval's last) when higher.
    pub fn open_series(&self) -> Vec<Vec<u64>> {
        let mut last = vec![0u64; self.urls];
        self.intervals
            .iter()
            .map(|i| {
                i.urls
                    .iter()
                    .enumerate()
                    .map(|(u, slice)| {
                        let most = slice.peak.max(last[u]);
                        if let Some(open) = slice.open {
                            last[u] = open;
                        }
                        most
                    })
                    .collect()
            })
            .collect()
    }

    /// The length of an interval, in seconds.
    pub fn width_secs(&self) -> f64 {
        self.width_ms as f64 / 1000.0
    }

    pub fn urls(&self) -> usize {
        self.urls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn one_interval_per_quarter_second_until_the_cap() {
        let mut t = Timeline::new(1);
        for i in 0..MAX_INTERVALS as u64 {
            t.delivered(Duration::from_millis(i * FIRST_WIDTH_MS), 0, 1);
        }
        assert_eq!(
            (t.width_ms, t.intervals.len()),
            (FIRST_WIDTH_MS, MAX_INTERVALS)
        );
    }

    #[test]
    fn a_long_run_merges_pairs_and_keeps_every_count() {
        let mut t = Timeline::new(2);
        for s in 0..10_000u64 {
            t.delivered(secs(s), (s % 2) as usize, 3);
            t.latency(secs(s), 0, 1000 + s);
            if s % 100 == 0 {
                t.error(secs(s), ErrorKind::Timeout);
            }
        }
        assert!(t.intervals.len() <= MAX_INTERVALS, "{}", t.intervals.len());
        assert!(t.width_ms >= 10_000_000 / MAX_INTERVALS as u64);
        let delivered: u64 = t
            .intervals
            .iter()
            .flat_map(|i| &i.urls)
            .map(|u| u.delivered)
            .sum();
        assert_eq!(delivered, 30_000);
        let samples: u64 = t
            .intervals
            .iter()
            .filter_map(|i| i.latency())
            .map(|h| h.len())
            .sum();
        assert_eq!(samples, 10_000);
        let errors: u64 = t.intervals.iter().flat_map(|i| i.errors.values()).sum();
        assert_eq!(errors, 100);
    }

    #[test]
    fn open_connections_are_the_most_open_in_each_interval() {
        let mut t = Timeline::new(1);
        let ms = Duration::from_millis;
        t.open(ms(0), 0, 5);
        t.open(ms(100), 0, 0);
        t.delivered(ms(700), 0, 1);
        // The peak of the first interval, then nothing open.
        assert_eq!(t.open_series(), vec![vec![5], vec![0], vec![0]]);
        t.open(ms(300), 0, 7);
        t.open(ms(400), 0, 2);
        assert_eq!(t.open_series(), vec![vec![5], vec![7], vec![2]]);
        t.halve();
        assert_eq!(t.open_series(), vec![vec![7], vec![2]]);
        assert_eq!(t.width_ms, 2 * FIRST_WIDTH_MS);
    }
}
