//! The break-glass review queue: every break-glass use (an entry of action break-glass) waits for
//! a governance lead's review, recorded once and never changed (`break_glass_reviews`, guarded by
//! triggers like the log itself). The review is also an audit entry of its own, written by the
//! caller first; its sequence number is stored with the review.

use std::fmt;
use std::str::FromStr;

use carecircle_audit::{AuditEntry, AuditRecord};

use crate::{AuditStore, AuditStoreError};

/// What the governance lead concluded about one break-glass use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// The emergency access was justified.
    Justified,
    /// It was not: the lead follows it up with the user's organisation.
    NotJustified,
    /// Referred on (to the organisation's Caldicott guardian, say) for a decision.
    Referred,
}

impl ReviewOutcome {
    /// Every outcome.
    pub const ALL: [ReviewOutcome; 3] =
        [ReviewOutcome::Justified, ReviewOutcome::NotJustified, ReviewOutcome::Referred];

    /// The code stored and shown: `justified`, `not-justified`, `referred`.
    pub fn code(self) -> &'static str {
        match self {
            ReviewOutcome::Justified => "justified",
            ReviewOutcome::NotJustified => "not-justified",
            ReviewOutcome::Referred => "referred",
        }
    }
}

impl fmt::Display for ReviewOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for ReviewOutcome {
    type Err = String;

    fn from_str(code: &str) -> Result<ReviewOutcome, String> {
        ReviewOutcome::ALL.into_iter().find(|o| o.code() == code).ok_or_else(|| {
            format!(
                "unknown review outcome '{code}' (known: {})",
                ReviewOutcome::ALL.map(ReviewOutcome::code).join(", ")
            )
        })
    }
}

/// A recorded review of one break-glass use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassReview {
    /// The reviewed entry (action break-glass).
    pub entry_seq: u64,
    /// The conclusion.
    pub outcome: ReviewOutcome,
    /// The lead's note (may be empty).
    pub note: String,
    /// The governance lead's user id.
    pub reviewer: String,
    /// The lead's organisation, if any.
    pub organisation: Option<String>,
    /// When it was recorded (UTC ms).
    pub reviewed_ms: i64,
    /// The audit entry that records the review itself.
    pub review_seq: u64,
}

/// One break-glass use in the queue, with its review once recorded.
#[derive(Debug, Clone)]
pub struct QueuedBreakGlass {
    /// The break-glass entry.
    pub entry: AuditEntry,
    /// Its review; `None` while pending.
    pub review: Option<BreakGlassReview>,
}

/// Which uses the queue lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewFilter {
    /// Not reviewed yet.
    Pending,
    /// Reviewed.
    Reviewed,
    /// Both.
    All,
}

impl AuditStore {
    /// Break-glass uses, newest first: `limit` of them before entry `before_seq` (exclusive;
    /// `None` from the newest), with their reviews.
    pub async fn break_glass_queue(
        &self,
        filter: ReviewFilter,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<QueuedBreakGlass>, AuditStoreError> {
        let rows = self.backend.break_glass_uses(filter, before_seq, limit).await?;
        let seqs: Vec<u64> = rows.iter().map(|(seq, _)| *seq).collect();
        let mut reviews = self.backend.reviews(&seqs).await?;
        rows.into_iter()
            .map(|(seq, content)| {
                let entry = AuditRecord::decode(&content)
                    .map_err(|e| AuditStoreError::CorruptState(format!("entry {seq}: {e}")))?;
                let review = reviews.iter().position(|r| r.entry_seq == seq).map(|i| reviews.swap_remove(i));
                Ok(QueuedBreakGlass { entry, review })
            })
            .collect()
    }

    /// The reviews of the given entries (those that have one).
    pub async fn break_glass_reviews(&self, entry_seqs: &[u64]) -> Result<Vec<BreakGlassReview>, AuditStoreError> {
        if entry_seqs.is_empty() {
            return Ok(Vec::new());
        }
        self.backend.reviews(entry_seqs).await
    }

    /// Records a review. `Ok(false)` when the entry already has one (the first review stands;
    /// nothing is changed).
    pub async fn record_break_glass_review(&self, review: &BreakGlassReview) -> Result<bool, AuditStoreError> {
        self.backend.insert_review(review).await
    }
}
