//! Continuity of `seq` numbers (Part 2 servers): one tracker for every client that
//! checks them (`watch-sync`'s stream check, each `load` subscriber). It counts
//! gaps, late arrivals of missing numbers, and duplicates, remembering a bounded
//! number of missing numbers so a hostile jump cannot grow memory.

use std::collections::BTreeSet;

/// Most missing numbers one tracker remembers individually (to recognise late
/// arrivals), unless told otherwise; past it, a late arrival counts as a duplicate.
pub const MAX_TRACKED_MISSING: usize = 100_000;

/// What one arriving `seq` was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The next one expected (or the first seen, when nothing was expected).
    InOrder,
    /// It jumped: `from..=to` did not arrive (yet).
    Gap { from: u64, to: u64 },
    /// A missing number arrived out of order.
    Late,
    /// It had arrived already.
    Duplicate,
}

/// The running view of one numbered stream.
#[derive(Clone, Debug)]
pub struct SeqTracker {
    expected: Option<u64>,
    last: Option<u64>,
    missing: BTreeSet<u64>,
    remember: usize,
    /// Distinct numbers received.
    pub unique: u64,
    pub gaps: u64,
    pub late: u64,
    pub duplicates: u64,
}

impl SeqTracker {
    /// A tracker expecting `next` first (`None`: whatever comes first).
    pub fn expecting(next: Option<u64>) -> SeqTracker {
        SeqTracker {
            expected: next,
            last: None,
            missing: BTreeSet::new(),
            remember: MAX_TRACKED_MISSING,
            unique: 0,
            gaps: 0,
            late: 0,
            duplicates: 0,
        }
    }

    /// Remembers at most `limit` missing numbers (many trackers at once: `load`).
    pub fn remembering(mut self, limit: usize) -> SeqTracker {
        self.remember = limit;
        self
    }

    /// Counts `seq`.
    pub fn on(&mut self, seq: u64) -> Arrival {
        self.last = Some(self.last.map_or(seq, |l| l.max(seq)));
        let expected = self.expected.unwrap_or(seq);
        if seq >= expected {
            self.unique += 1;
            self.expected = Some(seq.saturating_add(1));
            if seq == expected {
                return Arrival::InOrder;
            }
            self.gaps += 1;
            let room = self.remember.saturating_sub(self.missing.len()) as u64;
            self.missing
                .extend(expected..seq.min(expected.saturating_add(room)));
            Arrival::Gap {
                from: expected,
                to: seq - 1,
            }
        } else if self.missing.remove(&seq) {
            self.unique += 1;
            self.late += 1;
            Arrival::Late
        } else {
            self.duplicates += 1;
            Arrival::Duplicate
        }
    }

    /// Expect `next` from now on (a resume or a new CONNECTED); with `forget`, the
    /// numbers still missing are dropped (the numbering started afresh).
    pub fn restart(&mut self, next: Option<u64>, forget: bool) {
        self.expected = next;
        if forget {
            self.missing.clear();
        }
    }

    /// The next number expected.
    pub fn expected(&self) -> Option<u64> {
        self.expected
    }

    /// The highest number seen.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Numbers still missing (as far as they are remembered).
    pub fn missing(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.missing.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_late_arrivals_and_duplicates() {
        let mut s = SeqTracker::expecting(Some(1));
        let arrivals: Vec<Arrival> = [1, 2, 5, 3, 3, 6].into_iter().map(|n| s.on(n)).collect();
        assert_eq!(
            arrivals,
            [
                Arrival::InOrder,
                Arrival::InOrder,
                Arrival::Gap { from: 3, to: 4 },
                Arrival::Late,
                Arrival::Duplicate,
                Arrival::InOrder
            ]
        );
        assert_eq!((s.unique, s.duplicates, s.late, s.gaps), (5, 1, 1, 1));
        assert_eq!(s.missing().collect::<Vec<_>>(), [4]);
        assert_eq!((s.expected(), s.last()), (Some(7), Some(6)));
    }

    #[test]
    fn the_first_number_sets_the_start_when_none_is_expected() {
        let mut s = SeqTracker::expecting(None);
        assert_eq!(s.on(40), Arrival::InOrder);
        assert_eq!(s.on(39), Arrival::Duplicate);
        s.restart(Some(1), true);
        assert_eq!(s.on(3), Arrival::Gap { from: 1, to: 2 });
        assert_eq!(s.last(), Some(40));
    }

    #[test]
    fn a_hostile_jump_keeps_memory_bounded() {
        let mut s = SeqTracker::expecting(Some(1)).remembering(MAX_TRACKED_MISSING);
        assert_eq!(
            s.on(u64::MAX - 1),
            Arrival::Gap {
                from: 1,
                to: u64::MAX - 2
            }
        );
        assert_eq!(s.missing().len(), MAX_TRACKED_MISSING);
        assert_eq!(s.on(5), Arrival::Late);
        assert_eq!(s.on(MAX_TRACKED_MISSING as u64 + 5), Arrival::Duplicate);
    }
}
