//! The audit log verifier: consumes stored entries in sequence order, from any source, with the
//! log's signed checkpoints, and reports the first sign of tampering: an entry altered, removed
//! or moved, or a run of entries rewritten together with their hashes (which no longer matches
//! a signed checkpoint).

use crate::checkpoint::{Checkpoint, CheckpointError, LogVerifier};
use crate::merkle::{leaf_hash, Frontier, Hash, EMPTY_ROOT};
use crate::record::encoded_seq;

/// The first problem found in a log.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Tamper {
    /// The entry's content no longer hashes to its stored leaf hash.
    #[error("entry {seq} was altered: its content does not match its leaf hash")]
    Altered {
        /// The entry.
        seq: u64,
    },
    /// The entry's content is not a valid encoded record.
    #[error("entry {seq} was altered: {reason}")]
    Undecodable {
        /// The entry.
        seq: u64,
        /// Why it does not decode.
        reason: String,
    },
    /// A stored index column disagrees with the entry's hashed content.
    #[error("entry {seq} was altered: its {column} column does not match its content")]
    IndexMismatch {
        /// The entry.
        seq: u64,
        /// The column.
        column: &'static str,
    },
    /// The entry is missing: the next one present has a later number.
    #[error("entry {seq} was removed (the next entry present is {next})")]
    Removed {
        /// The first missing entry.
        seq: u64,
        /// The next entry present.
        next: u64,
    },
    /// The entry at this position was written for another position.
    #[error("entry {seq} was reordered: the row at this position was written as entry {bound_to}")]
    Reordered {
        /// The position.
        seq: u64,
        /// The position its content was written for.
        bound_to: u64,
    },
    /// Entries came out of sequence (a repeated or decreasing number).
    #[error("entry {seq} appears after entry {after}: the log is out of order")]
    OutOfOrder {
        /// The misplaced number.
        seq: u64,
        /// The number before it.
        after: u64,
    },
    /// The entries up to a signed checkpoint no longer hash to its root: some entry in
    /// `since..tree_size` was rewritten with its leaf hash recomputed.
    #[error(
        "the signed checkpoint at size {tree_size} does not match: an entry in {since}..{tree_size} was rewritten \
         with its hash (first suspect: entry {since})"
    )]
    CheckpointMismatch {
        /// The checkpoint's size.
        tree_size: u64,
        /// The size of the last checkpoint that matched (0 if none).
        since: u64,
    },
    /// Fewer entries than a signed checkpoint covers: the tail was removed.
    #[error("entries from {count} on were removed: a signed checkpoint covers {tree_size} entries")]
    Truncated {
        /// The entries present.
        count: u64,
        /// The checkpoint's size.
        tree_size: u64,
    },
    /// A stored checkpoint whose signature or text does not verify.
    #[error("a stored checkpoint does not verify: {0}")]
    BadCheckpoint(CheckpointError),
}

impl Tamper {
    /// The first entry the problem concerns, when it concerns one.
    pub fn first_bad_entry(&self) -> Option<u64> {
        match self {
            Tamper::Altered { seq }
            | Tamper::Undecodable { seq, .. }
            | Tamper::IndexMismatch { seq, .. }
            | Tamper::Removed { seq, .. }
            | Tamper::Reordered { seq, .. }
            | Tamper::OutOfOrder { seq, .. } => Some(*seq),
            Tamper::CheckpointMismatch { since, .. } => Some(*since),
            Tamper::Truncated { count, .. } => Some(*count),
            Tamper::BadCheckpoint(_) => None,
        }
    }
}

/// What an intact log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The number of entries.
    pub count: u64,
    /// The RFC 6962 root over them.
    pub root: Hash,
    /// How many signed checkpoints were checked against the entries.
    pub checkpoints_checked: usize,
}

/// Checks one stored entry on its own: its content against its stored leaf hash, and the
/// position bound into its content against `seq`; returns its leaf hash. This is the part of
/// [`Verifier::push`] that needs no other entry, so several threads can do it in parallel and
/// hand the leaves to [`Verifier::push_checked`] in order.
pub fn check_entry(seq: u64, content: &[u8], stored_leaf_hash: &[u8]) -> Result<Hash, Tamper> {
    let leaf = leaf_hash(content);
    if leaf.as_slice() != stored_leaf_hash {
        return Err(Tamper::Altered { seq });
    }
    match encoded_seq(content) {
        Some(bound_to) if bound_to == seq => Ok(leaf),
        Some(bound_to) => Err(Tamper::Reordered { seq, bound_to }),
        None => Err(Tamper::Undecodable { seq, reason: "the entry ends early".into() }),
    }
}

/// Checks a log entry by entry; see the module documentation.
#[derive(Debug, Clone)]
pub struct Verifier {
    frontier: Frontier,
    checkpoints: Vec<Checkpoint>,
    next_checkpoint: usize,
    last_matched: u64,
}

impl Verifier {
    /// A verifier for the log whose key is `key`, given its stored signed checkpoints (notes);
    /// every note must verify.
    pub fn new<'a>(key: &LogVerifier, notes: impl IntoIterator<Item = &'a str>) -> Result<Verifier, Tamper> {
        let mut checkpoints = notes
            .into_iter()
            .map(|note| key.open(note))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Tamper::BadCheckpoint)?;
        checkpoints.sort_by_key(|c| c.tree_size);
        let mut verifier = Verifier { frontier: Frontier::new(), checkpoints, next_checkpoint: 0, last_matched: 0 };
        verifier.check_checkpoints()?;
        Ok(verifier)
    }

    /// A verifier that checks entries against their leaf hashes and positions only.
    pub fn without_checkpoints() -> Verifier {
        Verifier { frontier: Frontier::new(), checkpoints: Vec::new(), next_checkpoint: 0, last_matched: 0 }
    }

    /// The number of entries accepted so far.
    pub fn count(&self) -> u64 {
        self.frontier.size()
    }

    /// Checks the next stored entry: its number, its content against its stored leaf hash, the
    /// position bound into its content, and any checkpoint it completes.
    pub fn push(&mut self, seq: u64, content: &[u8], stored_leaf_hash: &[u8]) -> Result<(), Tamper> {
        self.expect_next(seq)?;
        let leaf = check_entry(seq, content, stored_leaf_hash)?;
        self.frontier.push(leaf);
        self.check_checkpoints()
    }

    /// Takes the next entry already checked with [`check_entry`] (e.g. on another thread): its
    /// number must be the next one; its leaf joins the tree and any checkpoint it completes is
    /// checked.
    pub fn push_checked(&mut self, seq: u64, leaf: Hash) -> Result<(), Tamper> {
        self.expect_next(seq)?;
        self.frontier.push(leaf);
        self.check_checkpoints()
    }

    /// Takes the `2^level` entries from `first_seq` on, all already checked with [`check_entry`],
    /// as the hash of their complete subtree (computed from their leaf hashes, RFC 6962); any
    /// checkpoint at their end is checked. `Ok(false)`: not taken, nothing changed, because the
    /// subtree is not aligned in the tree or a checkpoint falls strictly inside it (use
    /// [`Verifier::subtree_fits`] first, or push those leaves one by one).
    pub fn push_checked_subtree(&mut self, first_seq: u64, level: u32, subtree_hash: &Hash) -> Result<bool, Tamper> {
        self.expect_next(first_seq)?;
        if !self.subtree_fits(first_seq, level) || self.frontier.push_subtree(level, *subtree_hash).is_err() {
            return Ok(false);
        }
        self.check_checkpoints()?;
        Ok(true)
    }

    /// Whether [`Verifier::push_checked_subtree`] can take the subtree of `2^level` entries from
    /// `first_seq`: aligned, and no checkpoint falls strictly inside it.
    pub fn subtree_fits(&self, first_seq: u64, level: u32) -> bool {
        level < 63
            && first_seq & ((1u64 << level) - 1) == 0
            && !self.checkpoint_sizes().any(|size| size > first_seq && size < first_seq + (1u64 << level))
    }

    /// The sizes of the checkpoints still to be reached, smallest first.
    pub fn checkpoint_sizes(&self) -> impl Iterator<Item = u64> + '_ {
        self.checkpoints[self.next_checkpoint..].iter().map(|c| c.tree_size)
    }

    fn expect_next(&self, seq: u64) -> Result<(), Tamper> {
        let expected = self.frontier.size();
        if seq == expected {
            Ok(())
        } else if seq > expected {
            Err(Tamper::Removed { seq: expected, next: seq })
        } else {
            Err(Tamper::OutOfOrder { seq, after: expected.saturating_sub(1) })
        }
    }

    fn check_checkpoints(&mut self) -> Result<(), Tamper> {
        while let Some(checkpoint) = self.checkpoints.get(self.next_checkpoint) {
            if checkpoint.tree_size != self.frontier.size() {
                break;
            }
            if checkpoint.root != self.frontier.root() {
                return Err(Tamper::CheckpointMismatch { tree_size: checkpoint.tree_size, since: self.last_matched });
            }
            self.last_matched = checkpoint.tree_size;
            self.next_checkpoint += 1;
        }
        Ok(())
    }

    /// Ends the check: every checkpoint must have been reached.
    pub fn finish(self) -> Result<VerifyReport, Tamper> {
        if let Some(checkpoint) = self.checkpoints.get(self.next_checkpoint) {
            return Err(Tamper::Truncated { count: self.frontier.size(), tree_size: checkpoint.tree_size });
        }
        let root = if self.frontier.size() == 0 { EMPTY_ROOT } else { self.frontier.root() };
        Ok(VerifyReport { count: self.frontier.size(), root, checkpoints_checked: self.next_checkpoint })
    }
}
