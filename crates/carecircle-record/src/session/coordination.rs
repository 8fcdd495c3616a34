//! Updates of records that partners share under the care-coordination rules of
//! `carecircle-care`: a referral `Task` held by its requester and answered by its owner, and the
//! multi-agency `CarePlan` held by one partner and edited by each agency for its own parts.
//!
//! The access engine lets a partner write only as itself, so without these rules the owner of a
//! referral could not move the Task its requester holds, and an agency could not add its own
//! response to the plan the lead holds. Here such an update is decided by the coordination rule
//! instead (the referral state machine, the care-plan edit rights), on top of the access
//! decision's permit to read the version it replaces; the record keeps its custodian, and the
//! write is audited with the rule as the deciding policy. Refusals are audited too. Every
//! update of a care plan states its reason (`X-Change-Reason`), kept as a `Provenance`.

use carecircle_audit_store::carecircle_audit::AuditAction;
use carecircle_care::{OrgDirectory, OrgId, Problem, ProblemKind, TransitionError};
use carecircle_fhir::{Issue, IssueType};
use carecircle_store::{StoredResource, WriteOutcome};
use serde_json::Value;

use super::{entity_of, person_of, Session, Verdict};
use crate::policy::is_referral;
use crate::{Caller, RecordError};

/// The header a change to a care plan states its reason in.
pub const CHANGE_REASON_HEADER: &str = carecircle_care::codes::CHANGE_REASON_HEADER;

/// The coordination rule that decided a shared record's update, named in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedRecordRule {
    /// A referral Task's transition by one of its parties (`referral:closed-loop`).
    Referral,
    /// An agency's edit of a shared care plan (`care-plan:agency-edit`).
    CarePlan,
}

impl SharedRecordRule {
    /// The policy id recorded for writes this rule decides.
    pub fn policy_id(self) -> &'static str {
        match self {
            SharedRecordRule::Referral => "referral:closed-loop",
            SharedRecordRule::CarePlan => "care-plan:agency-edit",
        }
    }

    fn of(resource_type: &str, old: &Value, new: &Value) -> Option<SharedRecordRule> {
        match resource_type {
            "Task" if is_referral(old) || is_referral(new) => Some(SharedRecordRule::Referral),
            "CarePlan" => Some(SharedRecordRule::CarePlan),
            _ => None,
        }
    }
}

/// One error for the problems `check_care_plan_edit` or `change_reason` found: 403 when any is
/// a refusal (with every refused part located), 400 otherwise.
fn problems_error(problems: &[Problem]) -> RecordError {
    let refused: Vec<&Problem> = problems.iter().filter(|p| p.kind == ProblemKind::Forbidden).collect();
    if refused.is_empty() {
        return RecordError::Invalid(problems.iter().map(Problem::to_issue).collect());
    }
    let mut issue = Issue::error(
        IssueType::Forbidden,
        refused.iter().map(|p| format!("{}: {}", p.expression, p.message)).collect::<Vec<_>>().join("; "),
    );
    issue.expression = refused.iter().map(|p| p.expression.clone()).collect();
    RecordError::Forbidden(issue)
}

fn transition_error(error: TransitionError) -> RecordError {
    match error {
        TransitionError::NotAParty { .. } => RecordError::Forbidden(error.to_issue()),
        other => RecordError::Invalid(other.to_issues()),
    }
}

impl Session<'_> {
    /// Updates a resource like [`Session::update`], except that a referral Task and a care plan
    /// follow the care-coordination rules: their parties (the referral's owner and requester; the
    /// agencies of the plan) may update them although another partner holds them, each change
    /// checked by the rule, and a care plan's update must give `change_reason` (the
    /// `X-Change-Reason` header), stored as a `Provenance` of the new version.
    pub async fn update_coordinated(
        &self,
        caller: &Caller,
        resource_type: &str,
        id: &str,
        body: Value,
        if_match: Option<i64>,
        change_reason: Option<&str>,
    ) -> Result<WriteOutcome, RecordError> {
        let current = self.record.store().read(resource_type, id).await?.filter(|r| !r.deleted);
        let (Some(existing), Some(old)) = (current.as_ref(), current.as_ref().and_then(StoredResource::json)) else {
            return self.update(caller, resource_type, id, body, if_match).await;
        };
        let Some(rule) = SharedRecordRule::of(resource_type, &old, &body) else {
            return self.update(caller, resource_type, id, body, if_match).await;
        };
        let directory = self.guard.access.org_directory();
        let Some(editor) = OrgId::from_reference(&caller.custodian) else {
            return self.update(caller, resource_type, id, body, if_match).await;
        };
        let person = person_of(resource_type, id, &old);
        let version = Some(existing.version);

        // The party must see what it changes: the access decision on the current version.
        let (read_verdict, _) = self.decide_stored(std::slice::from_ref(existing)).await?.remove(0);
        if !read_verdict.permit {
            self.audit_write(AuditAction::Update, &read_verdict, entity_of(resource_type, id, version), person, false)
                .await?;
            return Err(Session::refused(&read_verdict, &format!("{resource_type}/{id}")));
        }

        let checked = self.check_shared(rule, &old, &body, &editor, &directory, change_reason);
        let (explanation, reason) = match checked {
            Ok(ok) => ok,
            Err(error) => {
                let refusal = Verdict {
                    permit: false,
                    explanation: error.issues().iter().map(|i| i.diagnostics.clone()).collect::<Vec<_>>().join("; "),
                    ..shared_verdict(rule, &read_verdict, String::new())
                };
                self.audit_write(AuditAction::Update, &refusal, entity_of(resource_type, id, version), person, false)
                    .await?;
                return Err(error);
            }
        };

        let holder = existing.custodian.clone().unwrap_or_else(|| caller.custodian.clone());
        let own_record = OrgId::from_reference(&holder).is_some_and(|h| directory.same_agency(&h, &editor));
        let outcome = if own_record {
            // The holder's own update: the ordinary path (access decision, write rules) applies.
            self.update(caller, resource_type, id, body, if_match).await?
        } else {
            let verdict = shared_verdict(rule, &read_verdict, explanation);
            let result = self.record.update(&Caller { custodian: holder }, resource_type, id, body, if_match).await;
            let written = result.as_ref().ok().map(|o| o.stored.version);
            self.audit_write(
                AuditAction::Update,
                &verdict,
                entity_of(resource_type, id, written),
                person,
                result.is_err(),
            )
            .await?;
            if let Ok(outcome) = &result {
                self.guard.access.after_write(resource_type, outcome.stored.json().as_ref()).await;
            }
            result?
        };
        if let Some(reason) = reason {
            let target = format!("{resource_type}/{id}/_history/{}", outcome.stored.version);
            let provenance =
                carecircle_care::change_provenance(&target, &reason, &editor, time::OffsetDateTime::now_utc());
            self.create(caller, "Provenance", provenance, None).await?;
        }
        Ok(outcome)
    }

    /// Applies the rule to the change: the sentence explaining why it is allowed, and for a care
    /// plan the stated reason.
    fn check_shared(
        &self,
        rule: SharedRecordRule,
        old: &Value,
        new: &Value,
        editor: &OrgId,
        directory: &OrgDirectory,
        change_reason: Option<&str>,
    ) -> Result<(String, Option<carecircle_care::ChangeReason>), RecordError> {
        match rule {
            SharedRecordRule::Referral => {
                let transition =
                    carecircle_care::check_task_transition(old, new, editor, directory).map_err(transition_error)?;
                let from = transition.from.map(|s| s.to_string()).unwrap_or_else(|| "new".into());
                Ok((
                    format!(
                        "{} is {} of this referral, and {from} → {} is a transition {} may make (referral state machine)",
                        editor.reference(),
                        transition.by,
                        transition.to,
                        transition.by
                    ),
                    None,
                ))
            }
            SharedRecordRule::CarePlan => {
                let reason = carecircle_care::change_reason(change_reason)
                    .map_err(|p| RecordError::Invalid(vec![p.to_issue().at(CHANGE_REASON_HEADER)]))?;
                carecircle_care::check_care_plan_edit(old, new, editor, directory).map_err(|p| problems_error(&p))?;
                Ok((
                    format!(
                        "{} changed only the parts of the shared care plan it owns or was opened to by the plan's lead",
                        editor.reference()
                    ),
                    Some(reason),
                ))
            }
        }
    }
}

/// The verdict recorded for a write a coordination rule decided: the rule first, then what
/// permitted reading the current version.
fn shared_verdict(rule: SharedRecordRule, read: &Verdict, explanation: String) -> Verdict {
    let mut clause_ids = vec![rule.policy_id().to_string()];
    clause_ids.extend(read.clause_ids.iter().cloned());
    Verdict {
        permit: true,
        break_glass: read.break_glass,
        in_care_relationship: read.in_care_relationship,
        policy_id: rule.policy_id().to_string(),
        clause_ids,
        explanation,
    }
}
