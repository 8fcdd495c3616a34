//! The canonical URLs carecircle defines for care coordination: code systems, extensions and
//! subscription topics. Each is documented in `docs/care-coordination.md`.

/// Base of every carecircle-defined canonical URL.
pub const BASE: &str = "https://carecircle.example.org/fhir";

/// Code system of `Organization.type` saying which sector a partner is in (`acute`, `police`...).
pub const SECTOR_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/partner-sector";
/// Code system of `Encounter.type` saying what kind of contact it was (`ed-attendance`...).
pub const CONTACT_TYPE_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/contact-type";
/// HL7 v3 ActCode: the system of `Encounter.class` (`EMER`, `IMP`, `AMB`, `FLD`, `HH`, `VR`).
pub const ACT_CODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

/// Extension on `CarePlan.activity` carrying a trigger and its agreed responses.
pub const TRIGGER_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/careplan-trigger";
/// Code system of trigger events (`ed-attendance`, `police-contact`, `ambulance-callout`, ...).
pub const TRIGGER_EVENT_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-event";
/// Code system of trigger situations (`care-coordinator-on-leave`, ...).
pub const TRIGGER_SITUATION_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-situation";
/// Extension on `CarePlan` naming the plan's lead organisation (`valueReference` to an Organization).
pub const PLAN_LEAD_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/careplan-lead";
/// Extension on `CarePlan` by which the lead opens the whole plan, or some activities, to an agency.
pub const EDIT_PERMISSION_EXTENSION: &str =
    "https://carecircle.example.org/fhir/StructureDefinition/careplan-edit-permission";
/// Extension on `CarePlan.activity` naming the organisation(s) that own it (instead of
/// `detail.performer`).
pub const ACTIVITY_OWNER_EXTENSION: &str =
    "https://carecircle.example.org/fhir/StructureDefinition/careplan-activity-owner";
/// HTTP header carrying the reason for a change to a care plan.
pub const CHANGE_REASON_HEADER: &str = "X-Change-Reason";

/// Code system of `Flag.code` (risk categories, markers and situations shared as flags).
pub const FLAG_CODE_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/flag-code";

/// Code system of `Communication.category` for referral notifications.
pub const COMMUNICATION_CATEGORY_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/communication-category";
/// HL7 task code system (`fulfill`).
pub const TASK_CODE_SYSTEM: &str = "http://hl7.org/fhir/CodeSystem/task-code";
/// Code system of `Task.statusReason` codes carecircle suggests (free text is also accepted).
pub const REFERRAL_STATUS_REASON_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/referral-status-reason";

/// Subscriptions R5 Backport IG: filter criteria extension on `Subscription.criteria`.
pub const BACKPORT_FILTER_CRITERIA: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";
/// Subscriptions R5 Backport IG: payload content extension on `Subscription.channel.payload`.
pub const BACKPORT_PAYLOAD_CONTENT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
/// Subscriptions R5 Backport IG: heartbeat period (seconds) on `Subscription.channel`.
pub const BACKPORT_HEARTBEAT_PERIOD: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period";
/// Subscriptions R5 Backport IG: delivery timeout (seconds) on `Subscription.channel`.
pub const BACKPORT_TIMEOUT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout";
/// Subscriptions R5 Backport IG: maximum triggering resources per notification.
pub const BACKPORT_MAX_COUNT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count";
/// Subscriptions R5 Backport IG: the profile of topic-based `Subscription`s.
pub const BACKPORT_SUBSCRIPTION_PROFILE: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription";
/// Subscriptions R5 Backport IG: the profile of the R4 notification status `Parameters`.
pub const BACKPORT_STATUS_PROFILE: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";
/// Subscriptions R5 Backport IG: the profile of the R4 notification `Bundle`.
pub const BACKPORT_NOTIFICATION_PROFILE: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4";
