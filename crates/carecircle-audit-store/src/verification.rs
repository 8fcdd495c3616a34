//! Verification split over ranges of the log, so that two threads (or two database connections)
//! share the work: each range's rows are checked on their own ([`RangeChecker`]: content
//! against leaf hash, position, index columns) and folded into subtree hashes, and [`combine`]
//! hands the results to the [`Verifier`] in log order, which keeps the sequence, the tree and
//! the checkpoints. The first problem reported is the one a single pass in order would report.

use std::sync::mpsc::Receiver;

use carecircle_audit::merkle::{node_hash, Hash};
use carecircle_audit::{check_entry, Tamper, Verifier, VerifyReport};

use crate::batch::{check_columns, StoredColumns};
use crate::AuditStoreError;

/// Checked entries are handed over as complete subtrees of `2^BLOCK_LEVEL` entries (one hash
/// per 256 entries), except where a checkpoint falls inside one or a range starts or ends.
pub(crate) const BLOCK_LEVEL: u32 = 8;
const BLOCK: u64 = 1 << BLOCK_LEVEL;

/// What a range checker found, in log order.
pub(crate) enum Piece {
    /// Checked entries from `first_seq` on, handed over one by one.
    Leaves { first_seq: u64, leaves: Vec<Hash> },
    /// A complete, aligned run of `2^BLOCK_LEVEL` checked entries, as its subtree hash.
    Block { first_seq: u64, hash: Hash },
    /// The first problem in the range, found at the row numbered `seq`; `after_leaf`: the row's
    /// own leaf was sound and is in the pieces before (its index columns are not).
    Tamper { seq: u64, after_leaf: bool, tamper: Tamper },
    /// Reading the range failed.
    Failure(AuditStoreError),
}

/// Checks the rows of one range of the log in `seq` order.
pub(crate) struct RangeChecker {
    /// The sizes of the signed checkpoints, sorted: a block with one inside goes leaf by leaf.
    checkpoints: Vec<u64>,
    pieces: Vec<Piece>,
    block: Vec<Hash>,
    block_first: u64,
}

impl RangeChecker {
    pub(crate) fn new(checkpoints: Vec<u64>) -> RangeChecker {
        RangeChecker { checkpoints, pieces: Vec::new(), block: Vec::with_capacity(BLOCK as usize), block_first: 0 }
    }

    /// Checks one row. `false`: a problem was found and queued; stop reading this range.
    pub(crate) fn row(&mut self, seq: u64, content: &[u8], stored_leaf: &[u8], columns: &StoredColumns<'_>) -> bool {
        if !self.block.is_empty() && seq != self.block_first.wrapping_add(self.block.len() as u64) {
            // A gap or a step back: hand over what came before, so the verifier sees it here.
            self.flush_leaves();
        }
        if self.block.is_empty() {
            self.block_first = seq;
        }
        let leaf = match check_entry(seq, content, stored_leaf) {
            Ok(leaf) => leaf,
            Err(tamper) => {
                self.flush_leaves();
                self.pieces.push(Piece::Tamper { seq, after_leaf: false, tamper });
                return false;
            }
        };
        self.block.push(leaf);
        if let Err(tamper) = check_columns(seq, content, columns) {
            self.flush_leaves();
            self.pieces.push(Piece::Tamper { seq, after_leaf: true, tamper });
            return false;
        }
        if self.block.len() as u64 == BLOCK {
            let first = self.block_first;
            let checkpoint_inside = self.checkpoints.iter().any(|&size| size > first && size < first + BLOCK);
            if first.is_multiple_of(BLOCK) && !checkpoint_inside {
                let hash = fold_in_place(&mut self.block);
                self.pieces.push(Piece::Block { first_seq: first, hash });
                self.block.clear();
            } else {
                self.flush_leaves();
            }
        }
        true
    }

    /// Records a storage failure after the rows checked so far.
    pub(crate) fn fail(&mut self, error: AuditStoreError) {
        self.flush_leaves();
        self.pieces.push(Piece::Failure(error));
    }

    /// The pieces completed so far (a block being filled stays).
    pub(crate) fn take_pieces(&mut self) -> Vec<Piece> {
        std::mem::take(&mut self.pieces)
    }

    /// Everything left, at the end of the range.
    pub(crate) fn finish(mut self) -> Vec<Piece> {
        self.flush_leaves();
        self.pieces
    }

    fn flush_leaves(&mut self) {
        if !self.block.is_empty() {
            let leaves = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK as usize));
            self.pieces.push(Piece::Leaves { first_seq: self.block_first, leaves });
        }
    }
}

/// The RFC 6962 hash of a complete subtree from its leaf hashes (a power of two of them),
/// overwriting them.
fn fold_in_place(hashes: &mut [Hash]) -> Hash {
    let mut n = hashes.len();
    while n > 1 {
        for i in 0..n / 2 {
            hashes[i] = node_hash(&hashes[2 * i], &hashes[2 * i + 1]);
        }
        n /= 2;
    }
    hashes.first().copied().unwrap_or(carecircle_audit::merkle::EMPTY_ROOT)
}

/// The ranges `from <= seq < until` verification reads in parallel, in log order: two halves
/// split on a block boundary, or one range for a log too small to be worth two. The first range
/// starts at the lowest possible number, so a row stored with a negative number is seen.
pub(crate) fn verify_ranges(max_seq: Option<i64>) -> Vec<(i64, i64)> {
    let count = max_seq.map_or(0, |max| max.saturating_add(1));
    if count < 1 << 16 {
        return vec![(i64::MIN, i64::MAX)];
    }
    let split = (count / 2) & !(BLOCK as i64 - 1);
    vec![(i64::MIN, split), (split, i64::MAX)]
}

/// Hands the pieces of each range, ranges in log order, to `verifier`, and finishes it. The
/// outer error is a storage failure; the inner one the first sign of tampering.
pub(crate) fn combine(
    mut verifier: Verifier,
    ranges: Vec<Receiver<Vec<Piece>>>,
) -> Result<Result<VerifyReport, Tamper>, AuditStoreError> {
    for range in ranges {
        for pieces in range {
            for piece in pieces {
                let step = match piece {
                    Piece::Leaves { first_seq, leaves } => {
                        leaves.into_iter().zip(first_seq..).try_for_each(|(leaf, seq)| verifier.push_checked(seq, leaf))
                    }
                    Piece::Block { first_seq, hash } => {
                        match verifier.push_checked_subtree(first_seq, BLOCK_LEVEL, &hash) {
                            Ok(true) => Ok(()),
                            Ok(false) => {
                                return Err(AuditStoreError::Backend(format!(
                                    "verification handed over a misplaced block at entry {first_seq}"
                                )))
                            }
                            Err(tamper) => Err(tamper),
                        }
                    }
                    Piece::Tamper { seq, after_leaf, tamper } => {
                        if !after_leaf && verifier.count() != seq {
                            // The row is not the next one: that is the first problem (a removed
                            // or repeated entry), whatever else is wrong with it.
                            verifier.push_checked(seq, [0; 32]).and(Err(tamper))
                        } else {
                            Err(tamper)
                        }
                    }
                    Piece::Failure(error) => return Err(error),
                };
                if let Err(tamper) = step {
                    return Ok(Err(tamper));
                }
            }
        }
    }
    Ok(verifier.finish())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use carecircle_audit::merkle::{leaf_hash, Frontier};
    use carecircle_audit::{AgentKind, AuditAction, AuditAgent, AuditOutcome, AuditRecord, LogSigner};

    use super::*;

    /// A stored row: number, content, leaf hash and the patient column.
    #[derive(Clone)]
    struct Row {
        seq: u64,
        content: Vec<u8>,
        leaf: Vec<u8>,
        patient_id: String,
    }

    fn record(seq: u64) -> AuditRecord {
        AuditRecord {
            recorded_ms: 1_700_000_000_000 + seq as i64,
            action: AuditAction::Read,
            outcome: AuditOutcome::Success,
            agent: AuditAgent { user_id: "u1".into(), kind: AgentKind::Practitioner, organisation: None, role: None },
            purpose_of_use: None,
            break_glass: false,
            break_glass_reason: None,
            in_care_relationship: Some(seq.is_multiple_of(3)),
            entity: None,
            patient_id: Some(format!("p{}", seq % 17)),
            query: None,
            decision: None,
            client_address: None,
            request_id: None,
        }
    }

    /// `n` rows with a signed checkpoint every `every` entries.
    fn log(n: u64, every: u64) -> (Vec<Row>, Vec<String>, LogSigner) {
        let signer = LogSigner::from_seed("test/audit", [3; 32]).expect("signer");
        let mut frontier = Frontier::new();
        let (mut rows, mut notes) = (Vec::new(), Vec::new());
        for seq in 0..n {
            let content = record(seq).encode(seq);
            let leaf = leaf_hash(&content);
            frontier.push(leaf);
            rows.push(Row { seq, content, leaf: leaf.to_vec(), patient_id: format!("p{}", seq % 17) });
            if (seq + 1) % every == 0 {
                notes.push(signer.sign(&signer.checkpoint(frontier.size(), frontier.root())));
            }
        }
        (rows, notes, signer)
    }

    /// The index columns stored with a row (from the row as written, except the patient).
    fn columns(row: &Row) -> StoredColumns<'_> {
        let written = record(row.seq);
        StoredColumns {
            recorded_ms: written.recorded_ms,
            action: 1,
            user_id: b"u1",
            organisation: None,
            patient_id: Some(row.patient_id.as_bytes()),
            break_glass: 0,
            in_care: written.in_care_relationship.map(i64::from),
        }
    }

    fn check(verifier: &Verifier, rows: &[Row]) -> Vec<Piece> {
        let mut checker = RangeChecker::new(verifier.checkpoint_sizes().collect());
        for row in rows {
            if !checker.row(row.seq, &row.content, &row.leaf, &columns(row)) {
                break;
            }
        }
        checker.finish()
    }

    /// Verifies `rows` split in two ranges at `split`, as the backends do.
    fn verify_split(rows: &[Row], notes: &[String], signer: &LogSigner, split: u64) -> Result<VerifyReport, Tamper> {
        let verifier = Verifier::new(&signer.verifier(), notes.iter().map(String::as_str))?;
        let at = rows.iter().position(|r| r.seq >= split).unwrap_or(rows.len());
        let mut receivers = Vec::new();
        for range in [&rows[..at], &rows[at..]] {
            let (sender, receiver) = channel();
            sender.send(check(&verifier, range)).expect("send");
            receivers.push(receiver);
        }
        combine(verifier, receivers).expect("no storage failure")
    }

    /// Verifies `rows` one by one with the plain verifier, each row's columns after its entry.
    fn verify_plain(rows: &[Row], notes: &[String], signer: &LogSigner) -> Result<VerifyReport, Tamper> {
        let mut verifier = Verifier::new(&signer.verifier(), notes.iter().map(String::as_str))?;
        for row in rows {
            verifier.push(row.seq, &row.content, &row.leaf)?;
            check_columns(row.seq, &row.content, &columns(row))?;
        }
        verifier.finish()
    }

    #[test]
    fn split_verification_finds_what_a_single_pass_finds() {
        // 2000 entries, checkpoints every 100 (many inside blocks of 256), split at 1024.
        let (rows, notes, signer) = log(2000, 100);
        type Tamperer = fn(&mut Vec<Row>);
        let cases: [(&str, Tamperer, Option<Tamper>); 9] = [
            ("intact", |_| {}, None),
            ("altered in the first half", |rows| rows[700].content[25] ^= 1, Some(Tamper::Altered { seq: 700 })),
            ("altered in the second half", |rows| rows[1500].content[25] ^= 1, Some(Tamper::Altered { seq: 1500 })),
            ("removed at the split", |rows| drop(rows.remove(1023)), Some(Tamper::Removed { seq: 1023, next: 1024 })),
            (
                "removed after the split",
                |rows| drop(rows.remove(1024)),
                Some(Tamper::Removed { seq: 1024, next: 1025 }),
            ),
            (
                "column altered in the second half",
                |rows| rows[1700].patient_id = "nobody".into(),
                Some(Tamper::IndexMismatch { seq: 1700, column: "patient_id" }),
            ),
            (
                "rehashed, then altered later",
                |rows| {
                    rows[1210].content[25] ^= 1;
                    rows[1210].leaf = leaf_hash(&rows[1210].content).to_vec();
                    rows[1900].content[25] ^= 1;
                },
                Some(Tamper::CheckpointMismatch { tree_size: 1300, since: 1200 }),
            ),
            (
                "swapped in the second half",
                |rows| {
                    rows[1800].seq = 1801;
                    rows[1801].seq = 1800;
                    rows.swap(1800, 1801);
                },
                Some(Tamper::Reordered { seq: 1800, bound_to: 1801 }),
            ),
            ("tail removed", |rows| rows.truncate(1950), Some(Tamper::Truncated { count: 1950, tree_size: 2000 })),
        ];
        for (name, tamper, expected) in cases {
            let mut changed = rows.clone();
            tamper(&mut changed);
            let plain = verify_plain(&changed, &notes, &signer);
            let split = verify_split(&changed, &notes, &signer, 1024);
            assert_eq!(split, plain, "{name}: the split pass disagrees with the single pass");
            match expected {
                None => assert_eq!(split.map(|r| r.count), Ok(2000), "{name}"),
                Some(tamper) => assert_eq!(split, Err(tamper), "{name}"),
            }
        }
    }

    #[test]
    fn small_logs_are_read_in_one_range() {
        assert_eq!(verify_ranges(None), [(i64::MIN, i64::MAX)]);
        assert_eq!(verify_ranges(Some(1000)), [(i64::MIN, i64::MAX)]);
        let ranges = verify_ranges(Some(10_000_000 - 1));
        assert_eq!(ranges, [(i64::MIN, 4_999_936), (4_999_936, i64::MAX)]);
        assert_eq!(ranges[0].1 % BLOCK as i64, 0);
    }
}
