//! Referrals with a closed loop, after the HL7 Gravity SDOH Clinical Care pattern: a
//! `ServiceRequest` says what is asked for, and a `Task` (`focus` → the ServiceRequest,
//! `requester` and `owner` organisations, `for` the person) carries its progress. Every change
//! of `Task.status` is checked against one table of allowed transitions, each made by one party,
//! and the other party is told ([`referral_notification`]).
//!
//! ```text
//!  requested ──owner──▶ received ──owner──▶ accepted ──owner──▶ in-progress ──owner──▶ completed
//!      │  └──owner──▶ accepted        │                              │  ▲
//!      │  └──owner──▶ rejected*  ◀────┘ owner                        ▼  │ owner
//!      │                                                           on-hold
//!      └─ requested, received, accepted, in-progress, on-hold ──requester──▶ cancelled*
//!         in-progress, on-hold ──owner──▶ failed*                (* statusReason required)
//! ```

use std::fmt;

use serde_json::{json, Value};
use time::OffsetDateTime;

use carecircle_fhir::{Issue, IssueType};

use crate::codes;
use crate::model::{format_instant, str_at, OrgId, Problem};
use crate::organisations::OrgDirectory;

/// `Task.status` (R4 task-status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskStatus {
    /// Not yet ready to act on.
    Draft,
    /// Sent: the owner is asked to act.
    Requested,
    /// The owner has seen it and is deciding.
    Received,
    /// The owner agreed to do it.
    Accepted,
    /// The owner declined.
    Rejected,
    /// Ready to be performed (not used by referrals).
    Ready,
    /// Withdrawn by the requester.
    Cancelled,
    /// Work has started.
    InProgress,
    /// Work is paused.
    OnHold,
    /// Work was attempted but could not be completed.
    Failed,
    /// Done.
    Completed,
    /// Should never have existed.
    EnteredInError,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [TaskStatus; 12] = [
        TaskStatus::Draft,
        TaskStatus::Requested,
        TaskStatus::Received,
        TaskStatus::Accepted,
        TaskStatus::Rejected,
        TaskStatus::Ready,
        TaskStatus::Cancelled,
        TaskStatus::InProgress,
        TaskStatus::OnHold,
        TaskStatus::Failed,
        TaskStatus::Completed,
        TaskStatus::EnteredInError,
    ];

    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            TaskStatus::Draft => "draft",
            TaskStatus::Requested => "requested",
            TaskStatus::Received => "received",
            TaskStatus::Accepted => "accepted",
            TaskStatus::Rejected => "rejected",
            TaskStatus::Ready => "ready",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::InProgress => "in-progress",
            TaskStatus::OnHold => "on-hold",
            TaskStatus::Failed => "failed",
            TaskStatus::Completed => "completed",
            TaskStatus::EnteredInError => "entered-in-error",
        }
    }

    /// The status for a FHIR code.
    pub fn from_code(code: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// True when the referral is finished: nothing may change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Rejected
                | TaskStatus::Cancelled
                | TaskStatus::Failed
                | TaskStatus::Completed
                | TaskStatus::EnteredInError
        )
    }

    /// Words for notifications ("accepted the referral").
    fn verb(self) -> &'static str {
        match self {
            TaskStatus::Received => "received the referral",
            TaskStatus::Accepted => "accepted the referral",
            TaskStatus::Rejected => "declined the referral",
            TaskStatus::InProgress => "started work on the referral",
            TaskStatus::OnHold => "paused work on the referral",
            TaskStatus::Failed => "could not complete the referral",
            TaskStatus::Completed => "completed the referral",
            TaskStatus::Cancelled => "cancelled the referral",
            TaskStatus::Requested => "sent a referral",
            TaskStatus::Draft | TaskStatus::Ready | TaskStatus::EnteredInError => "updated the referral",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The statuses in which a referral is still open (the owner's inbox).
pub const OPEN_STATUSES: [TaskStatus; 5] =
    [TaskStatus::Requested, TaskStatus::Received, TaskStatus::Accepted, TaskStatus::InProgress, TaskStatus::OnHold];

/// The two parties of a referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The organisation that referred (`Task.requester`).
    Requester,
    /// The organisation asked to act (`Task.owner`).
    Owner,
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Party::Requester => "the requester",
            Party::Owner => "the owner",
        })
    }
}

/// One allowed status change: from, to, who makes it, and whether `statusReason` is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedTransition {
    /// Status before.
    pub from: TaskStatus,
    /// Status after.
    pub to: TaskStatus,
    /// The party that may make it.
    pub by: Party,
    /// True when `Task.statusReason` must say why.
    pub reason_required: bool,
}

const fn allow(from: TaskStatus, to: TaskStatus, by: Party, reason_required: bool) -> AllowedTransition {
    AllowedTransition { from, to, by, reason_required }
}

/// Every allowed referral status change. Anything not listed is refused.
pub const TRANSITIONS: [AllowedTransition; 15] = {
    use Party::{Owner, Requester};
    use TaskStatus::*;
    [
        allow(Requested, Received, Owner, false),
        allow(Requested, Accepted, Owner, false),
        allow(Requested, Rejected, Owner, true),
        allow(Received, Accepted, Owner, false),
        allow(Received, Rejected, Owner, true),
        allow(Accepted, InProgress, Owner, false),
        allow(InProgress, OnHold, Owner, false),
        allow(OnHold, InProgress, Owner, false),
        allow(InProgress, Completed, Owner, false),
        allow(InProgress, Failed, Owner, true),
        allow(Requested, Cancelled, Requester, true),
        allow(Received, Cancelled, Requester, true),
        allow(Accepted, Cancelled, Requester, true),
        allow(InProgress, Cancelled, Requester, true),
        allow(OnHold, Cancelled, Requester, true),
    ]
};

/// The allowed transition from `from` to `to`, if there is one.
pub fn allowed_transition(from: TaskStatus, to: TaskStatus) -> Option<AllowedTransition> {
    TRANSITIONS.into_iter().find(|t| t.from == from && t.to == to)
}

/// A referral `Task` read into what the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralTask {
    /// `Task.id`.
    pub id: Option<String>,
    /// `Task.status`.
    pub status: TaskStatus,
    /// `Task.statusReason` in words (its text, else its first coding's display or code).
    pub status_reason: Option<String>,
    /// `Task.focus.reference` (the ServiceRequest).
    pub focus: String,
    /// `Task.for.reference` (the person).
    pub subject: Option<String>,
    /// `Task.requester` organisation.
    pub requester: OrgId,
    /// `Task.owner` organisation.
    pub owner: OrgId,
}

/// Reads a referral Task, with located problems: status, `focus` (a ServiceRequest), `requester`
/// and `owner` (Organizations) are required.
pub fn parse_referral_task(task: &Value) -> Result<ReferralTask, Vec<Problem>> {
    let mut problems = Vec::new();
    if str_at(task, "resourceType") != Some("Task") {
        problems.push(Problem::value("Task.resourceType", "expected a Task"));
    }
    let status = match str_at(task, "status") {
        Some(code) => {
            let status = TaskStatus::from_code(code);
            if status.is_none() {
                problems.push(Problem::value("Task.status", format!("unknown task status '{code}'")));
            }
            status
        }
        None => {
            problems.push(Problem::required("Task.status", "a referral Task needs a status"));
            None
        }
    };
    let focus = task.get("focus").and_then(|f| str_at(f, "reference"));
    let focus = match focus {
        Some(reference) if crate::model::reference_parts(reference).is_some_and(|(t, _)| t == "ServiceRequest") => {
            Some(reference.to_string())
        }
        _ => {
            problems.push(Problem::required("Task.focus", "a referral Task's focus must reference its ServiceRequest"));
            None
        }
    };
    let mut org = |element: &str| {
        let org = task.get(element).and_then(OrgId::from_reference_element);
        if org.is_none() {
            problems.push(Problem::required(
                format!("Task.{element}"),
                format!("a referral Task's {element} must reference an Organization"),
            ));
        }
        org
    };
    let requester = org("requester");
    let owner = org("owner");
    let status_reason = task.get("statusReason").and_then(|r| {
        str_at(r, "text")
            .or_else(|| {
                r.get("coding")
                    .and_then(Value::as_array)
                    .and_then(|c| c.first())
                    .and_then(|c| str_at(c, "display").or_else(|| str_at(c, "code")))
            })
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    });
    match (status, focus, requester, owner) {
        (Some(status), Some(focus), Some(requester), Some(owner)) if problems.is_empty() => Ok(ReferralTask {
            id: str_at(task, "id").map(str::to_string),
            status,
            status_reason,
            focus,
            subject: task.get("for").and_then(|f| str_at(f, "reference")).map(str::to_string),
            requester,
            owner,
        }),
        _ => Err(problems),
    }
}

/// A change to a referral Task that the rules accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Status before; `None` for a new referral.
    pub from: Option<TaskStatus>,
    /// Status after (equal to `from` for an update that only adds notes or output).
    pub to: TaskStatus,
    /// Which party made it.
    pub by: Party,
    /// The organisation that made it.
    pub actor: OrgId,
}

impl Transition {
    /// True when the status changed.
    pub fn changes_status(&self) -> bool {
        self.from.is_some_and(|from| from != self.to)
    }
}

/// Why a change to a referral Task was refused. Each says what and why, where
/// ([`TransitionError::expression`]) and as which `OperationOutcome` issue ([`TransitionError::to_issue`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The old or new Task is not a valid referral Task.
    #[error("the Task is not a valid referral: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    /// The actor is neither the requester nor the owner.
    #[error("{actor} is neither the requester ({requester}) nor the owner ({owner}) of this referral")]
    NotAParty {
        /// Who tried.
        actor: OrgId,
        /// The requester.
        requester: OrgId,
        /// The owner.
        owner: OrgId,
    },
    /// An element that identifies the referral was changed.
    #[error("Task.{element} cannot change once a referral is sent (start a new referral instead)")]
    Immutable {
        /// The element (`focus`, `for`, `requester`, `owner`).
        element: &'static str,
    },
    /// The referral is finished.
    #[error("the referral is {status}, which is final: it cannot change any more")]
    Finished {
        /// Its status.
        status: TaskStatus,
    },
    /// No such transition exists.
    #[error("a referral cannot go from {from} to {to}")]
    NotAllowed {
        /// Status before.
        from: TaskStatus,
        /// Status asked for.
        to: TaskStatus,
    },
    /// The transition exists but the other party makes it.
    #[error("only {allowed} may move a referral from {from} to {to}; {actor} is {actual}")]
    WrongParty {
        /// Status before.
        from: TaskStatus,
        /// Status asked for.
        to: TaskStatus,
        /// Who tried.
        actor: OrgId,
        /// The party the actor is.
        actual: Party,
        /// The party that may.
        allowed: Party,
    },
    /// The transition needs a reason and none was given.
    #[error("moving a referral to {to} needs a reason in Task.statusReason")]
    ReasonRequired {
        /// Status asked for.
        to: TaskStatus,
    },
}

impl TransitionError {
    /// Where the problem is, as a FHIRPath expression.
    pub fn expression(&self) -> String {
        match self {
            TransitionError::Invalid(problems) => {
                problems.first().map_or_else(|| "Task".to_string(), |p| p.expression.clone())
            }
            TransitionError::NotAParty { .. } => "Task".to_string(),
            TransitionError::Immutable { element } => format!("Task.{element}"),
            TransitionError::Finished { .. }
            | TransitionError::NotAllowed { .. }
            | TransitionError::WrongParty { .. } => "Task.status".to_string(),
            TransitionError::ReasonRequired { .. } => "Task.statusReason".to_string(),
        }
    }

    /// The `OperationOutcome` issues for this refusal (one per problem for an invalid Task).
    pub fn to_issues(&self) -> Vec<Issue> {
        match self {
            TransitionError::Invalid(problems) => problems.iter().map(Problem::to_issue).collect(),
            _ => vec![self.to_issue()],
        }
    }

    /// The main `OperationOutcome` issue for this refusal.
    pub fn to_issue(&self) -> Issue {
        let code = match self {
            TransitionError::Invalid(_) => IssueType::Invalid,
            TransitionError::NotAParty { .. } | TransitionError::WrongParty { .. } => IssueType::Forbidden,
            TransitionError::Immutable { .. }
            | TransitionError::NotAllowed { .. }
            | TransitionError::Finished { .. } => IssueType::Invalid,
            TransitionError::ReasonRequired { .. } => IssueType::Required,
        };
        Issue::error(code, self.to_string()).at(self.expression())
    }
}

fn party_of(task: &ReferralTask, actor: &OrgId, directory: &OrgDirectory) -> Option<Party> {
    // Exact ids first, so a referral between two teams of one partner keeps its two parties.
    if *actor == task.owner {
        Some(Party::Owner)
    } else if *actor == task.requester {
        Some(Party::Requester)
    } else if directory.same_agency(actor, &task.owner) {
        Some(Party::Owner)
    } else if directory.same_agency(actor, &task.requester) {
        Some(Party::Requester)
    } else {
        None
    }
}

/// Checks a new referral Task sent by `actor_org`: it must be a valid referral Task in status
/// `requested` (or `draft`), and the actor must be its requester.
pub fn check_new_referral(
    task: &Value,
    actor_org: &OrgId,
    directory: &OrgDirectory,
) -> Result<Transition, TransitionError> {
    let parsed = parse_referral_task(task).map_err(TransitionError::Invalid)?;
    if !matches!(parsed.status, TaskStatus::Requested | TaskStatus::Draft) {
        return Err(TransitionError::Invalid(vec![Problem::value(
            "Task.status",
            format!("a new referral starts as requested (or draft), not {}", parsed.status),
        )]));
    }
    if !directory.same_agency(actor_org, &parsed.requester) {
        return Err(TransitionError::Invalid(vec![Problem::forbidden(
            "Task.requester",
            format!("{actor_org} may send referrals only as itself, not on behalf of {}", parsed.requester),
        )]));
    }
    Ok(Transition { from: None, to: parsed.status, by: Party::Requester, actor: actor_org.clone() })
}

/// Checks that `actor_org` may change referral Task `old_task` into `new_task`: both must be
/// valid, `focus`, `for`, `requester` and `owner` must not change, a finished referral never
/// changes, and a status change must be in [`TRANSITIONS`], made by its party, with a
/// `statusReason` where required. An update that keeps the status (a note, an output) is
/// allowed to either party while the referral is open; the draft → requested step is the
/// requester's.
pub fn check_task_transition(
    old_task: &Value,
    new_task: &Value,
    actor_org: &OrgId,
    directory: &OrgDirectory,
) -> Result<Transition, TransitionError> {
    let old = parse_referral_task(old_task).map_err(TransitionError::Invalid)?;
    let new = parse_referral_task(new_task).map_err(TransitionError::Invalid)?;
    let by = party_of(&old, actor_org, directory).ok_or_else(|| TransitionError::NotAParty {
        actor: actor_org.clone(),
        requester: old.requester.clone(),
        owner: old.owner.clone(),
    })?;
    if old.status.is_terminal() {
        return Err(TransitionError::Finished { status: old.status });
    }
    for (element, changed) in [
        ("focus", old.focus != new.focus),
        ("for", old.subject != new.subject),
        ("requester", old.requester != new.requester),
        ("owner", old.owner != new.owner),
    ] {
        if changed {
            return Err(TransitionError::Immutable { element });
        }
    }
    let transition = Transition { from: Some(old.status), to: new.status, by, actor: actor_org.clone() };
    if old.status == new.status {
        return Ok(transition);
    }
    if old.status == TaskStatus::Draft && new.status == TaskStatus::Requested {
        return match by {
            Party::Requester => Ok(transition),
            Party::Owner => Err(TransitionError::WrongParty {
                from: old.status,
                to: new.status,
                actor: actor_org.clone(),
                actual: by,
                allowed: Party::Requester,
            }),
        };
    }
    let allowed = allowed_transition(old.status, new.status)
        .ok_or(TransitionError::NotAllowed { from: old.status, to: new.status })?;
    if allowed.by != by {
        return Err(TransitionError::WrongParty {
            from: old.status,
            to: new.status,
            actor: actor_org.clone(),
            actual: by,
            allowed: allowed.by,
        });
    }
    if allowed.reason_required && new.status_reason.is_none() {
        return Err(TransitionError::ReasonRequired { to: new.status });
    }
    Ok(transition)
}

/// The notification for a referral change, as a FHIR `Communication` from the acting party to
/// the other one: the owner is told of a new referral, the requester of everything the owner
/// does (the closed loop), and the owner of a cancellation. `task` is the Task after the change
/// (with its id); `directory` gives organisation names.
pub fn referral_notification(
    task: &ReferralTask,
    transition: &Transition,
    directory: &OrgDirectory,
    sent: OffsetDateTime,
) -> Value {
    let (sender, recipient) = match transition.by {
        Party::Owner => (&task.owner, &task.requester),
        Party::Requester => (&task.requester, &task.owner),
    };
    let actor_name = directory.display_name(&transition.actor);
    let mut text = match transition.from {
        None => format!("{actor_name} sent a referral"),
        Some(from) if from != transition.to => format!("{actor_name} {} (was {from})", transition.to.verb()),
        Some(_) => format!("{actor_name} updated the referral"),
    };
    if let Some(reason) = task.status_reason.as_ref().filter(|_| transition.changes_status()) {
        text.push_str(&format!(". Reason: {reason}"));
    }
    text.push('.');
    let mut about = Vec::new();
    if let Some(id) = &task.id {
        about.push(json!({ "reference": format!("Task/{id}") }));
    }
    about.push(json!({ "reference": task.focus }));
    let mut communication = json!({
        "resourceType": "Communication",
        "status": "completed",
        "category": [{ "coding": [{ "system": codes::COMMUNICATION_CATEGORY_SYSTEM, "code": "referral-status", "display": "Referral status" }] }],
        "about": about,
        "sent": format_instant(sent),
        "recipient": [{ "reference": recipient.reference(), "display": directory.display_name(recipient) }],
        "sender": { "reference": sender.reference(), "display": directory.display_name(sender) },
        "payload": [{ "contentString": text }],
    });
    if let Some(subject) = &task.subject {
        communication["subject"] = json!({ "reference": subject });
    }
    let mut transition_parts = Vec::new();
    if let Some(from) = transition.from {
        transition_parts.push(json!({ "url": "from", "valueCode": from.code() }));
    }
    transition_parts.push(json!({ "url": "to", "valueCode": transition.to.code() }));
    communication["extension"] = json!([{
        "url": format!("{}/StructureDefinition/referral-transition", codes::BASE),
        "extension": transition_parts,
    }]);
    communication
}

/// The search that lists `org`'s referral inbox: open Tasks it owns, most recently changed first.
pub fn inbox_query(org: &OrgId) -> String {
    let statuses: Vec<&str> = OPEN_STATUSES.iter().map(|s| s.code()).collect();
    format!("Task?owner={}&status={}&_sort=-_lastUpdated", org.reference(), statuses.join(","))
}

/// The search that lists the referrals `org` sent that are still open (its outbox).
pub fn outbox_query(org: &OrgId) -> String {
    let statuses: Vec<&str> = OPEN_STATUSES.iter().map(|s| s.code()).collect();
    format!("Task?requester={}&status={}&_sort=-_lastUpdated", org.reference(), statuses.join(","))
}
