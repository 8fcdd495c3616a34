//! Time summaries of the SQLite log: one row per block of [`TIME_BLOCK`] entries holding the
//! least and greatest `recorded_ms` in it, in place of a per-entry index on `recorded_ms`.
//! Reports over a period read the entries of the blocks whose range meets it; verification
//! recomputes every block's range from the entries and compares.

use std::collections::BTreeMap;

use carecircle_audit::Tamper;

/// Entries per block: `seq >> TIME_BLOCK_SHIFT` is an entry's block.
pub(crate) const TIME_BLOCK_SHIFT: u32 = 12;
/// Entries per block (4,096).
pub(crate) const TIME_BLOCK: u64 = 1 << TIME_BLOCK_SHIFT;

/// The name verification gives a block row that disagrees with its entries.
pub(crate) const SUMMARY_COLUMN: &str = "recorded_ms block summary";

/// The least and greatest `recorded_ms` of some entries of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeRange {
    pub min_ms: i64,
    pub max_ms: i64,
}

impl TimeRange {
    fn widen(&mut self, other: TimeRange) {
        self.min_ms = self.min_ms.min(other.min_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    fn covers(&self, other: &TimeRange) -> bool {
        self.min_ms <= other.min_ms && self.max_ms >= other.max_ms
    }
}

/// Block ranges of entries seen in `seq` order (runs of one block are folded as they come).
#[derive(Debug, Default)]
pub(crate) struct TimeBlocks {
    blocks: BTreeMap<i64, TimeRange>,
    current: Option<(i64, TimeRange)>,
}

impl TimeBlocks {
    /// Adds one entry.
    pub(crate) fn add(&mut self, seq: i64, recorded_ms: i64) {
        let block = seq >> TIME_BLOCK_SHIFT;
        let range = TimeRange { min_ms: recorded_ms, max_ms: recorded_ms };
        match &mut self.current {
            Some((current, sum)) if *current == block => sum.widen(range),
            _ => {
                self.flush();
                self.current = Some((block, range));
            }
        }
    }

    /// Adds what another reader saw (blocks cut by a range boundary are merged).
    pub(crate) fn merge(&mut self, mut other: TimeBlocks) {
        other.flush();
        self.flush();
        for (block, range) in other.blocks {
            self.blocks.entry(block).and_modify(|r| r.widen(range)).or_insert(range);
        }
    }

    /// Every block seen, in order.
    pub(crate) fn into_blocks(mut self) -> BTreeMap<i64, TimeRange> {
        self.flush();
        self.blocks
    }

    fn flush(&mut self) {
        if let Some((block, range)) = self.current.take() {
            self.blocks.entry(block).and_modify(|r| r.widen(range)).or_insert(range);
        }
    }
}

/// Checks the stored block rows of a log of `count` verified entries against the ranges
/// computed from those entries. Complete blocks must match exactly; the last, partial block
/// must cover its entries (entries appended while verification ran may have widened it); rows
/// of blocks past the end are entries verification did not see. The finding names the first
/// entry of the first wrong block.
pub(crate) fn check_stored(
    count: u64,
    computed: &BTreeMap<i64, TimeRange>,
    stored: &BTreeMap<i64, TimeRange>,
) -> Result<(), Tamper> {
    let complete = (count >> TIME_BLOCK_SHIFT) as i64;
    let last = count.div_ceil(TIME_BLOCK) as i64;
    let mismatch =
        |block: i64| Tamper::IndexMismatch { seq: (block.max(0) as u64) << TIME_BLOCK_SHIFT, column: SUMMARY_COLUMN };
    let blocks = computed.keys().chain(stored.keys().filter(|&&b| b < last));
    let mut wrong: Option<i64> = None;
    for &block in blocks {
        let sound = match (computed.get(&block), stored.get(&block)) {
            (Some(seen), Some(kept)) if block < complete => seen == kept,
            (Some(seen), Some(kept)) => kept.covers(seen),
            _ => false,
        };
        if !sound {
            wrong = Some(wrong.map_or(block, |w| w.min(block)));
        }
    }
    match wrong {
        Some(block) => Err(mismatch(block)),
        None => Ok(()),
    }
}

/// The block ranges of a batch of rows (`(seq, recorded_ms)`), to merge into the stored rows.
pub(crate) fn of_batch(rows: impl IntoIterator<Item = (u64, i64)>) -> BTreeMap<i64, TimeRange> {
    let mut blocks = TimeBlocks::default();
    for (seq, recorded_ms) in rows {
        blocks.add(seq as i64, recorded_ms);
    }
    blocks.into_blocks()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min_ms: i64, max_ms: i64) -> TimeRange {
        TimeRange { min_ms, max_ms }
    }

    #[test]
    fn a_batch_is_summarised_per_block() {
        let blocks = of_batch([(4094, 50), (4095, 10), (4096, 70), (4097, 60)]);
        assert_eq!(blocks.into_iter().collect::<Vec<_>>(), [(0, range(10, 50)), (1, range(60, 70))]);
    }

    #[test]
    fn readers_cut_inside_a_block_are_merged() {
        let (mut first, mut second) = (TimeBlocks::default(), TimeBlocks::default());
        first.add(4000, 5);
        second.add(4001, 9);
        second.add(5000, 1);
        first.merge(second);
        assert_eq!(first.into_blocks().into_iter().collect::<Vec<_>>(), [(0, range(5, 9)), (1, range(1, 1))]);
    }

    #[test]
    fn stored_rows_must_match_complete_blocks_and_cover_the_last() {
        let computed: BTreeMap<i64, TimeRange> = [(0, range(10, 20)), (1, range(30, 40))].into();
        let check =
            |count, stored: &[(i64, TimeRange)]| check_stored(count, &computed, &stored.iter().copied().collect());
        let wrong = |block: u64| Err(Tamper::IndexMismatch { seq: block * TIME_BLOCK, column: SUMMARY_COLUMN });
        assert_eq!(check(4100, &[(0, range(10, 20)), (1, range(30, 40))]), Ok(()));
        // The last block widened by an entry appended during verification.
        assert_eq!(check(4100, &[(0, range(10, 20)), (1, range(30, 45))]), Ok(()));
        // A row past the end: entries verification did not see.
        assert_eq!(check(4100, &[(0, range(10, 20)), (1, range(30, 40)), (2, range(50, 60))]), Ok(()));
        // A complete block widened, narrowed, or missing.
        assert_eq!(check(4100, &[(0, range(10, 21)), (1, range(30, 40))]), wrong(0));
        assert_eq!(check(4100, &[(0, range(11, 20)), (1, range(30, 40))]), wrong(0));
        assert_eq!(check(4100, &[(1, range(30, 40))]), wrong(0));
        // The last block narrowed so that a report would miss an entry.
        assert_eq!(check(4100, &[(0, range(10, 20)), (1, range(31, 40))]), wrong(1));
        // A row for a block without entries inside the log.
        let computed_gap: BTreeMap<i64, TimeRange> = [(1, range(30, 40))].into();
        assert_eq!(check_stored(4100, &computed_gap, &[(0, range(1, 2)), (1, range(30, 40))].into()), wrong(0));
    }
}
