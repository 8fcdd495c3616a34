//! Audit records of governance work on the audit log itself: reading the break-glass review
//! queue and recording a review. The caller (the HTTP layer) has checked that the principal is a
//! governance lead; these only write what happened to the log, durable before they return.

use carecircle_audit_store::carecircle_audit::{AuditAction, AuditEntity, AuditOutcome};

use super::Session;
use crate::RecordError;

impl Session<'_> {
    /// Audits a look at the break-glass review queue (one search record, no person).
    pub async fn audit_review_queue(&self) -> Result<(), RecordError> {
        let mut record = self.audit_record(AuditAction::Search, AuditOutcome::Success);
        record.entity = Some(AuditEntity { resource_type: "AuditEvent".into(), id: String::new(), version: None });
        record.query = Some(self.meta.query.clone().unwrap_or_else(|| "$break-glass-queue".into()));
        self.append(vec![record]).await
    }

    /// Audits a review of break-glass entry `entry_seq` concerning `person`, with its outcome
    /// code (`justified`…) in the query field; `recorded` false for a refused attempt (already
    /// reviewed, say). Returns the sequence number of the audit entry.
    pub async fn audit_break_glass_review(
        &self,
        entry_seq: u64,
        person: Option<String>,
        outcome: &str,
        recorded: bool,
    ) -> Result<u64, RecordError> {
        let status = if recorded { AuditOutcome::Success } else { AuditOutcome::MinorFailure };
        let mut record = self.audit_record(AuditAction::Update, status);
        record.entity =
            Some(AuditEntity { resource_type: "AuditEvent".into(), id: entry_seq.to_string(), version: None });
        record.patient_id = person;
        record.query = Some(format!("$break-glass-review?outcome={outcome}"));
        self.guard
            .audit
            .append(vec![record])
            .await
            .map(|range| range.start)
            .map_err(|e| RecordError::Internal(format!("audit append: {e}")))
    }
}
