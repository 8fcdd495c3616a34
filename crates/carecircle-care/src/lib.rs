//! Care coordination for carecircle, as pure functions over FHIR R4 JSON: who is in a person's
//! care team, what their shared care plan says and who may change which part of it, risk flags,
//! referrals with a closed loop, which triggers fire and whom to alert (and when to escalate),
//! and topic-based subscriptions. No I/O, no clock, no async: the server feeds it resources and
//! the current time, and carries out what it returns. The formats are documented in
//! `docs/care-coordination.md`.

pub mod alerts;
pub mod care_plan;
pub mod care_team;
pub mod codes;
pub mod flag;
pub mod model;
pub mod organisations;
pub mod referral;
pub mod subscriptions;
pub mod triggers;

pub use alerts::{AlertAction, AlertBook, AlertError, AlertInput, AlertPolicy, AlertState, AlertStatus, SendReason};
pub use care_plan::{
    change_provenance, change_reason, check_care_plan_edit, parse_care_plan, AgreedResponse, CarePlanRules,
    ChangeReason, EditPermission, EscalationContact, MonthRange, PlanActivity, Trigger, TriggerCondition,
};
pub use care_team::{build_care_team, organisations_in_care, PartnerListEntry};
pub use flag::{active_situations, parse_flag, ActiveSituation, FlagCode, FlagStatus, ParsedFlag};
pub use model::{Code, OrgId, Problem, ProblemKind};
pub use organisations::{OrgDirectory, OrganisationInfo};
pub use referral::{
    check_new_referral, check_task_transition, inbox_query, outbox_query, parse_referral_task, referral_notification,
    AllowedTransition, Party, ReferralTask, TaskStatus, Transition, TransitionError, TRANSITIONS,
};
pub use subscriptions::{
    handshake_bundle, heartbeat_bundle, matching_subscriptions, notification_bundle, parse_subscription,
    subscription_matches, DeliveryOutcome, DeliveryRecord, Interaction, NotificationEvent, NotificationTarget,
    ParsedSubscription, PayloadContent, ResourceChange, RetryPolicy, Topic,
};
pub use triggers::{
    alerts_for, evaluate_triggers, triggers_for_date, triggers_for_event, triggers_for_situations, Alert,
    ClassifiedEvent, EncounterFacts, EventClassifier, EventRule, FiredTrigger, Firing, MergeRule, TriggerInput,
};
