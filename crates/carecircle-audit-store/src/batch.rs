//! What both backends share: the writer's state, turning a batch of records into rows, subtree
//! hashes and (when due) a signed checkpoint, and the check of a row's index columns against
//! its hashed content.

use std::time::Duration;

use carecircle_audit::merkle::{leaf_hash, Frontier, Hash};
use carecircle_audit::{AuditRecord, LogSigner, RecordView, Tamper};

use crate::AuditStoreError;

/// Only complete subtrees whose level is a multiple of this are stored (levels 8, 16, ...): a
/// proof step then needs at most 2^7 stored hashes of the level below.
pub(crate) const STORED_LEVEL_STEP: u32 = 8;

/// The writer's state as kept in `audit_state`.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub frontier: Frontier,
    pub checkpoint_size: u64,
    pub checkpoint_ms: i64,
}

impl State {
    pub fn empty() -> State {
        State { frontier: Frontier::new(), checkpoint_size: 0, checkpoint_ms: 0 }
    }

    pub fn frontier_bytes(&self) -> Vec<u8> {
        self.frontier.nodes().concat()
    }

    pub fn from_stored(
        tree_size: u64,
        frontier: &[u8],
        checkpoint_size: u64,
        checkpoint_ms: i64,
    ) -> Result<State, AuditStoreError> {
        if !frontier.chunks_exact(32).remainder().is_empty() {
            return Err(AuditStoreError::CorruptState("the frontier is not a list of hashes".into()));
        }
        // Every chunk is exactly 32 bytes, so the conversion cannot fail.
        let nodes: Vec<Hash> = frontier.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect();
        let frontier =
            Frontier::from_parts(tree_size, nodes).map_err(|e| AuditStoreError::CorruptState(e.to_string()))?;
        Ok(State { frontier, checkpoint_size, checkpoint_ms })
    }
}

/// When the writer signs a checkpoint, and with which key.
#[derive(Debug, Clone)]
pub(crate) struct Sealer {
    pub signer: LogSigner,
    pub every_entries: u64,
    pub interval: Duration,
}

/// One entry row, borrowing its text from the record.
pub(crate) struct Row<'a> {
    pub seq: u64,
    pub recorded_ms: i64,
    pub action: u8,
    pub user_id: &'a str,
    pub organisation: Option<&'a str>,
    pub patient_id: Option<&'a str>,
    pub break_glass: bool,
    pub in_care: Option<bool>,
    pub content: Vec<u8>,
    pub leaf_hash: Hash,
}

/// A signed checkpoint about to be stored.
#[derive(Debug, Clone)]
pub(crate) struct NewCheckpoint {
    pub tree_size: u64,
    pub created_ms: i64,
    pub note: String,
}

/// Everything one commit writes.
pub(crate) struct Prepared<'a> {
    pub rows: Vec<Row<'a>>,
    pub subtrees: Vec<(u32, u64, Hash)>,
    pub state: State,
    pub checkpoint: Option<NewCheckpoint>,
}

impl Prepared<'_> {
    /// Whether the commit would write nothing.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.checkpoint.is_none()
    }
}

/// The current time in UTC milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        // A clock before 1970 is a broken clock; 0 still orders checkpoints sensibly.
        .unwrap_or(0)
}

/// Places `records` after the entries `state` describes, and signs a checkpoint if one is due
/// (or `force`d and the tree grew since the last one).
pub(crate) fn prepare<'a>(
    mut state: State,
    records: &'a [AuditRecord],
    sealer: &Sealer,
    force: bool,
    now_ms: i64,
) -> Prepared<'a> {
    let mut rows = Vec::with_capacity(records.len());
    let mut subtrees = Vec::new();
    for record in records {
        let seq = state.frontier.size();
        let content = record.encode(seq);
        let leaf = leaf_hash(&content);
        state.frontier.push_with(leaf, |subtree, hash| {
            if subtree.level % STORED_LEVEL_STEP == 0 {
                subtrees.push((subtree.level, subtree.index, *hash));
            }
        });
        rows.push(Row {
            seq,
            recorded_ms: record.recorded_ms,
            action: record.action.code(),
            user_id: &record.agent.user_id,
            organisation: record.agent.organisation.as_deref(),
            patient_id: record.patient_id.as_deref(),
            break_glass: record.break_glass,
            in_care: record.in_care_relationship,
            content,
            leaf_hash: leaf,
        });
    }
    let size = state.frontier.size();
    let pending = size - state.checkpoint_size;
    if state.checkpoint_ms == 0 && pending > 0 {
        // The first entries of a log start the interval clock.
        state.checkpoint_ms = now_ms;
    }
    let elapsed_ms = now_ms.saturating_sub(state.checkpoint_ms);
    let due = pending >= sealer.every_entries.max(1)
        || (pending > 0 && elapsed_ms >= sealer.interval.as_millis() as i64)
        || (force && (pending > 0 || size == 0));
    let checkpoint = due.then(|| {
        let note = sealer.signer.sign(&sealer.signer.checkpoint(size, state.frontier.root()));
        state.checkpoint_size = size;
        state.checkpoint_ms = now_ms;
        NewCheckpoint { tree_size: size, created_ms: now_ms, note }
    });
    Prepared { rows, subtrees, state, checkpoint }
}

/// A row's index columns as read back from storage, raw: text as bytes (no UTF-8 check or
/// copy needed to compare), flags as the stored integers.
pub(crate) struct StoredColumns<'a> {
    pub recorded_ms: i64,
    pub action: i64,
    pub user_id: &'a [u8],
    pub organisation: Option<&'a [u8]>,
    pub patient_id: Option<&'a [u8]>,
    /// 0 or 1.
    pub break_glass: i64,
    /// 0, 1 or absent.
    pub in_care: Option<i64>,
}

/// Checks that a row's index columns say what its hashed content says, so that a report built
/// on the columns (the person's access log, governance reports) cannot be skewed unnoticed.
pub(crate) fn check_columns(seq: u64, content: &[u8], columns: &StoredColumns<'_>) -> Result<(), Tamper> {
    let view = RecordView::decode(content).map_err(|e| Tamper::Undecodable { seq, reason: e.to_string() })?;
    let mismatch = |column| Err(Tamper::IndexMismatch { seq, column });
    if view.recorded_ms != columns.recorded_ms {
        return mismatch("recorded_ms");
    }
    if i64::from(view.action.code()) != columns.action {
        return mismatch("action");
    }
    if view.user_id.as_bytes() != columns.user_id {
        return mismatch("user_id");
    }
    if view.organisation.map(str::as_bytes) != columns.organisation {
        return mismatch("organisation");
    }
    if view.patient_id.map(str::as_bytes) != columns.patient_id {
        return mismatch("patient_id");
    }
    if i64::from(view.break_glass) != columns.break_glass {
        return mismatch("break_glass");
    }
    if view.in_care_relationship.map(i64::from) != columns.in_care {
        return mismatch("in_care");
    }
    Ok(())
}

/// The hash of a perfect subtree of `2^levels` from its `2^levels` hashes at the level below
/// (left to right).
pub(crate) fn fold_perfect(mut hashes: Vec<Hash>) -> Hash {
    while hashes.len() > 1 {
        hashes =
            hashes.chunks(2).map(|pair| carecircle_audit::merkle::node_hash(&pair[0], &pair[pair.len() - 1])).collect();
    }
    hashes.first().copied().unwrap_or(carecircle_audit::merkle::EMPTY_ROOT)
}
