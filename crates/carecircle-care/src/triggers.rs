//! Trigger evaluation: which of a care plan's triggers fire on a given day (recurring periods),
//! for an incoming event (an Encounter classified into event codes by data-driven rules), or
//! for the situations in effect; and the alert each fired trigger raises for each agreed
//! response.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Date, Duration};

use crate::care_plan::{CarePlanRules, EscalationContact, PlanActivity, TriggerCondition};
use crate::codes;
use crate::flag::ActiveSituation;
use crate::model::{concept_codes, str_at, Code, OrgId};
use crate::organisations::OrgDirectory;

/// One classification rule: an Encounter that matches every condition given is an event with
/// code `event` in [`codes::TRIGGER_EVENT_SYSTEM`]. Within one condition any listed value
/// matches; an empty list places no condition (except `statuses`, see below).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRule {
    /// The event code the rule assigns (`ed-attendance`).
    pub event: String,
    /// Sectors of the custodian (the partner that sent the Encounter).
    #[serde(default)]
    pub custodian_sectors: Vec<String>,
    /// `Encounter.class` codes (v3 ActCode: `EMER`, `IMP`, `FLD`...).
    #[serde(default)]
    pub classes: Vec<String>,
    /// `Encounter.type` codings.
    #[serde(default)]
    pub types: Vec<Code>,
    /// `Encounter.status` values. Empty means any status except `planned`, `cancelled` and
    /// `entered-in-error` (a contact that did not happen is not an event unless a rule says so,
    /// as for a missed appointment).
    #[serde(default)]
    pub statuses: Vec<String>,
    /// `Encounter.serviceProvider` organisations (an emergency department team).
    #[serde(default)]
    pub service_providers: Vec<OrgId>,
    /// `Encounter.location[].location` references (`Location/ed-majors`).
    #[serde(default)]
    pub locations: Vec<String>,
}

/// An Encounter, reduced to what classification rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncounterFacts {
    /// `Type/id` of the Encounter.
    pub reference: Option<String>,
    /// `Encounter.subject.reference`.
    pub subject: Option<String>,
    /// The custodian (`meta.source`, or as given by the caller).
    pub custodian: Option<OrgId>,
    /// `Encounter.status`.
    pub status: Option<String>,
    /// `Encounter.class.code`.
    pub class: Option<String>,
    /// `Encounter.type` codes.
    pub types: Vec<Code>,
    /// `Encounter.serviceProvider`.
    pub service_provider: Option<OrgId>,
    /// `Encounter.location[].location.reference`.
    pub locations: Vec<String>,
}

impl EncounterFacts {
    /// Reads an Encounter. `custodian` overrides `meta.source` when given.
    pub fn from_encounter(encounter: &Value, custodian: Option<&OrgId>) -> EncounterFacts {
        EncounterFacts {
            reference: str_at(encounter, "id").map(|id| format!("Encounter/{id}")),
            subject: encounter.get("subject").and_then(|s| str_at(s, "reference")).map(str::to_string),
            custodian: custodian
                .cloned()
                .or_else(|| encounter.get("meta").and_then(|m| str_at(m, "source")).and_then(OrgId::from_reference)),
            status: str_at(encounter, "status").map(str::to_string),
            class: encounter.get("class").and_then(|c| str_at(c, "code")).map(str::to_string),
            types: encounter
                .get("type")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(concept_codes)
                .collect(),
            service_provider: encounter.get("serviceProvider").and_then(OrgId::from_reference_element),
            locations: encounter
                .get("location")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|l| l.get("location").and_then(|r| str_at(r, "reference")).map(str::to_string))
                .collect(),
        }
    }
}

/// Classifies incoming Encounters into trigger event codes by a list of [`EventRule`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventClassifier {
    /// The rules, all tried (an Encounter may be several events).
    pub rules: Vec<EventRule>,
}

fn rule(event: &str) -> EventRule {
    EventRule {
        event: event.to_string(),
        custodian_sectors: Vec::new(),
        classes: Vec::new(),
        types: Vec::new(),
        statuses: Vec::new(),
        service_providers: Vec::new(),
        locations: Vec::new(),
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

impl EventClassifier {
    /// The partnership's default rules:
    /// - `ed-attendance`: class `EMER`, or type contact-type `ed-attendance`, at an acute partner;
    /// - `hospital-admission`: class `IMP` or `ACUTE` at an acute partner;
    /// - `police-contact`: any contact recorded by a police partner;
    /// - `ambulance-callout`: any contact recorded by an ambulance partner;
    /// - `crisis-team-contact`: type contact-type `crisis-team-contact` at a mental-health partner;
    /// - `missed-depot-injection`: type contact-type `depot-injection` at a mental-health
    ///   partner with status `cancelled` (the person did not come).
    pub fn default_rules() -> EventClassifier {
        let contact = |code: &str| Code::new(codes::CONTACT_TYPE_SYSTEM, code);
        EventClassifier {
            rules: vec![
                EventRule {
                    custodian_sectors: strings(&["acute"]),
                    classes: strings(&["EMER"]),
                    ..rule("ed-attendance")
                },
                EventRule {
                    custodian_sectors: strings(&["acute"]),
                    types: vec![contact("ed-attendance")],
                    ..rule("ed-attendance")
                },
                EventRule {
                    custodian_sectors: strings(&["acute"]),
                    classes: strings(&["IMP", "ACUTE"]),
                    ..rule("hospital-admission")
                },
                EventRule { custodian_sectors: strings(&["police"]), ..rule("police-contact") },
                EventRule { custodian_sectors: strings(&["ambulance"]), ..rule("ambulance-callout") },
                EventRule {
                    custodian_sectors: strings(&["mental-health"]),
                    types: vec![contact("crisis-team-contact")],
                    ..rule("crisis-team-contact")
                },
                EventRule {
                    custodian_sectors: strings(&["mental-health"]),
                    types: vec![contact("depot-injection")],
                    statuses: strings(&["cancelled"]),
                    ..rule("missed-depot-injection")
                },
            ],
        }
    }

    /// Rules read from JSON (`{"rules": [{"event": "...", "custodian_sectors": [...]}, ...]}`).
    pub fn from_json(value: &Value) -> Result<EventClassifier, serde_json::Error> {
        EventClassifier::deserialize(value)
    }

    /// The event codes an Encounter is, in rule order without repeats.
    pub fn classify(&self, facts: &EncounterFacts, directory: &OrgDirectory) -> Vec<Code> {
        let sector = facts.custodian.as_ref().and_then(|c| directory.sector_of(c));
        let mut out: Vec<Code> = Vec::new();
        for rule in &self.rules {
            let status_ok = if rule.statuses.is_empty() {
                !matches!(facts.status.as_deref(), Some("planned" | "cancelled" | "entered-in-error"))
            } else {
                facts.status.as_ref().is_some_and(|s| rule.statuses.contains(s))
            };
            let matches = status_ok
                && (rule.custodian_sectors.is_empty()
                    || sector.is_some_and(|s| rule.custodian_sectors.iter().any(|r| r == s)))
                && (rule.classes.is_empty() || facts.class.as_ref().is_some_and(|c| rule.classes.contains(c)))
                && (rule.types.is_empty() || facts.types.iter().any(|t| rule.types.contains(t)))
                && (rule.service_providers.is_empty()
                    || facts.service_provider.as_ref().is_some_and(|p| rule.service_providers.contains(p)))
                && (rule.locations.is_empty() || facts.locations.iter().any(|l| rule.locations.contains(l)));
            let code = Code::new(codes::TRIGGER_EVENT_SYSTEM, rule.event.clone());
            if matches && !out.contains(&code) {
                out.push(code);
            }
        }
        out
    }
}

/// An incoming event after classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifiedEvent {
    /// The resource that reported it (`Encounter/x`).
    pub reference: Option<String>,
    /// Its event codes.
    pub codes: Vec<Code>,
}

/// Why a trigger fired, and which occurrence it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firing {
    /// The date falls in a recurring period; `occurrence` names this year's period by its first
    /// month (`2026-12` for December 2026 – January 2027).
    Period {
        /// `YYYY-MM` of the occurrence's first month.
        occurrence: String,
    },
    /// An event with the trigger's code arrived.
    Event {
        /// The resource that reported it.
        reference: Option<String>,
    },
    /// The trigger's situation is in effect.
    Situation {
        /// When it began, if known.
        since: Option<String>,
        /// The resource it was read from, if any.
        source: Option<String>,
    },
}

/// A trigger of the plan that fired.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredTrigger {
    /// The activity's key ([`PlanActivity::key`]).
    pub activity_key: String,
    /// The activity's position in the plan.
    pub activity_index: usize,
    /// The trigger's condition.
    pub condition: TriggerCondition,
    /// Why it fired.
    pub firing: Firing,
}

/// The occurrence of `range` that `date` falls in, named `YYYY-MM` by its first month.
pub fn period_occurrence(range: crate::care_plan::MonthRange, date: Date) -> Option<String> {
    let month = u8::from(date.month());
    if !range.contains(month) {
        return None;
    }
    let year = if range.start <= range.end || month >= range.start { date.year() } else { date.year() - 1 };
    Some(format!("{year:04}-{:02}", range.start))
}

/// True when the activity's triggers are live: the plan is active and the activity is not
/// cancelled, stopped, completed or entered in error.
fn live_activities(plan: &CarePlanRules) -> impl Iterator<Item = &PlanActivity> {
    let plan_active = plan.status.as_deref() == Some("active");
    plan.activities.iter().filter(move |a| {
        plan_active
            && !matches!(
                a.json.get("detail").and_then(|d| str_at(d, "status")),
                Some("cancelled" | "stopped" | "completed" | "entered-in-error")
            )
    })
}

fn fired(activity: &PlanActivity, condition: &TriggerCondition, firing: Firing) -> FiredTrigger {
    FiredTrigger {
        activity_key: activity.key.clone(),
        activity_index: activity.index,
        condition: condition.clone(),
        firing,
    }
}

/// The recurring-period triggers in effect on `date` (a calendar date in the partnership's own
/// time zone: no time zone conversion happens here).
pub fn triggers_for_date(plan: &CarePlanRules, date: Date) -> Vec<FiredTrigger> {
    live_activities(plan)
        .filter_map(|a| {
            let condition = &a.trigger.as_ref()?.condition;
            let TriggerCondition::RecurringPeriod(range) = condition else { return None };
            let occurrence = period_occurrence(*range, date)?;
            Some(fired(a, condition, Firing::Period { occurrence }))
        })
        .collect()
}

/// The event triggers `event` sets off.
pub fn triggers_for_event(plan: &CarePlanRules, event: &ClassifiedEvent) -> Vec<FiredTrigger> {
    live_activities(plan)
        .filter_map(|a| {
            let condition = &a.trigger.as_ref()?.condition;
            let TriggerCondition::Event(code) = condition else { return None };
            event
                .codes
                .contains(code)
                .then(|| fired(a, condition, Firing::Event { reference: event.reference.clone() }))
        })
        .collect()
}

/// The situation triggers in effect given the active situations.
pub fn triggers_for_situations(plan: &CarePlanRules, situations: &BTreeSet<ActiveSituation>) -> Vec<FiredTrigger> {
    live_activities(plan)
        .flat_map(|a| {
            let condition = a.trigger.as_ref().map(|t| &t.condition);
            situations
                .iter()
                .filter(move |s| matches!(condition, Some(TriggerCondition::Situation(code)) if *code == s.code))
                .filter_map(move |s| {
                    let condition = condition?;
                    Some(fired(a, condition, Firing::Situation { since: s.since.clone(), source: s.source.clone() }))
                })
        })
        .collect()
}

/// What a trigger evaluation looks at: today's date, the event that arrived (if any) and the
/// situations in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerInput<'a> {
    /// The partnership's local date, for recurring periods (`None` skips them).
    pub date: Option<Date>,
    /// The incoming event, classified.
    pub event: Option<&'a ClassifiedEvent>,
    /// The situations in effect.
    pub situations: &'a BTreeSet<ActiveSituation>,
}

/// Every trigger of the plan that fires for `input`: periods, then the event, then situations.
pub fn evaluate_triggers(plan: &CarePlanRules, input: &TriggerInput<'_>) -> Vec<FiredTrigger> {
    let mut out = Vec::new();
    if let Some(date) = input.date {
        out.extend(triggers_for_date(plan, date));
    }
    if let Some(event) = input.event {
        out.extend(triggers_for_event(plan, event));
    }
    out.extend(triggers_for_situations(plan, input.situations));
    out
}

/// How repeats of an alert are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeRule {
    /// Repeats within the configured window of the first are counted, not re-sent (events).
    Window,
    /// Every repeat with the same key is counted, not re-sent: the key already names one
    /// occurrence (this year's August, this leave).
    SameKey,
}

/// An alert for one agency, raised by one fired trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The person (`Patient/x`, as the caller names them).
    pub person: String,
    /// The plan (`CarePlan/x`), if it has an id.
    pub plan: Option<String>,
    /// The trigger's condition.
    pub trigger: TriggerCondition,
    /// The trigger's activity key.
    pub activity_key: String,
    /// The agency to alert.
    pub agency: OrgId,
    /// What it agreed to do.
    pub response_text: String,
    /// The plan activity the response belongs to, as written.
    pub plan_excerpt: Value,
    /// The resource that reported the event, for event triggers.
    pub event_ref: Option<String>,
    /// Repeats with the same key are merged ([`MergeRule`]).
    pub dedup_key: String,
    /// How repeats merge.
    pub merge: MergeRule,
    /// Whom to alert, in escalation order (empty: the agency itself).
    pub contacts: Vec<EscalationContact>,
    /// The plan's own acknowledgement deadline for this response, if it sets one.
    pub acknowledge_within: Option<Duration>,
}

/// One alert per agreed response of every fired trigger, for `person`.
pub fn alerts_for(person: &str, plan: &CarePlanRules, fired: &[FiredTrigger]) -> Vec<Alert> {
    let plan_ref = plan.reference();
    let mut out = Vec::new();
    for f in fired {
        let Some(activity) = plan.activities.iter().find(|a| a.key == f.activity_key) else { continue };
        let Some(trigger) = &activity.trigger else { continue };
        let (occurrence, merge, event_ref) = match &f.firing {
            Firing::Period { occurrence } => (occurrence.clone(), MergeRule::SameKey, None),
            Firing::Event { reference } => ("event".to_string(), MergeRule::Window, reference.clone()),
            Firing::Situation { since, .. } => {
                (format!("since:{}", since.as_deref().unwrap_or("unknown")), MergeRule::SameKey, None)
            }
        };
        for response in &trigger.responses {
            let dedup_key = format!(
                "{person}|{}|{}|{}|{occurrence}",
                plan_ref.as_deref().unwrap_or("-"),
                activity.key,
                response.agency
            );
            out.push(Alert {
                person: person.to_string(),
                plan: plan_ref.clone(),
                trigger: trigger.condition.clone(),
                activity_key: activity.key.clone(),
                agency: response.agency.clone(),
                response_text: response.text.clone(),
                plan_excerpt: activity.json.clone(),
                event_ref: event_ref.clone(),
                dedup_key,
                merge,
                contacts: response.contacts.clone(),
                acknowledge_within: response.acknowledge_within,
            });
        }
    }
    out
}
