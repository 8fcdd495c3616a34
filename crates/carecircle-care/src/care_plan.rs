//! Shared care plans: the triggers and agreed responses carried on `CarePlan.activity`, the
//! plan's lead and the permissions it grants, the rule "each agency edits only its own parts
//! unless the plan's lead says otherwise", and the reason every change must give.
//!
//! Parts and owners:
//! - plan-level elements (title, status, period, lead, permissions...) belong to the lead;
//!   anyone may append a `note`;
//! - an activity belongs to the organisations of its owner extension, or else of its
//!   `detail.performer`: they may change it (description, trigger, schedule);
//! - each agreed response belongs to its `agency`: only that agency changes, adds or removes
//!   it, and it may add or remove itself in `detail.performer` while doing so.
//!
//! The lead edits everything. An edit-permission extension lets the lead open the whole plan,
//! or named activities, to another agency. Lead and permissions are read from the current
//! (old) version, so nobody grants themselves rights in the same edit.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::codes;
use crate::model::{extensions, format_instant, str_at, Code, OrgId, Problem};
use crate::organisations::OrgDirectory;

/// A month range that comes round every year: `start` to `end` inclusive, 1–12. When `start` is
/// after `end` the range crosses the year end (December–January is `12..=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MonthRange {
    /// First month (1–12).
    pub start: u8,
    /// Last month (1–12), inclusive.
    pub end: u8,
}

impl MonthRange {
    /// True when month `m` (1–12) is inside the range.
    pub fn contains(self, m: u8) -> bool {
        if self.start <= self.end {
            (self.start..=self.end).contains(&m)
        } else {
            m >= self.start || m <= self.end
        }
    }
}

/// What sets a trigger off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerCondition {
    /// A period that comes round every year (every August; December–January).
    RecurringPeriod(MonthRange),
    /// An event code from [`codes::TRIGGER_EVENT_SYSTEM`] (`ed-attendance`, `police-contact`...).
    Event(Code),
    /// A situation code from [`codes::TRIGGER_SITUATION_SYSTEM`] (`care-coordinator-on-leave`).
    Situation(Code),
}

impl TriggerCondition {
    /// A stable text naming the condition (`recurring-period:8`, `event:<system>|ed-attendance`).
    pub fn signature(&self) -> String {
        match self {
            TriggerCondition::RecurringPeriod(r) if r.start == r.end => format!("recurring-period:{}", r.start),
            TriggerCondition::RecurringPeriod(r) => format!("recurring-period:{}-{}", r.start, r.end),
            TriggerCondition::Event(code) => format!("event:{code}"),
            TriggerCondition::Situation(code) => format!("situation:{code}"),
        }
    }
}

/// A person or service to contact for an agreed response, in escalation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationContact {
    /// A literal reference (`PractitionerRole/x`, `Organization/y`), if given.
    pub reference: Option<String>,
    /// Who, in words.
    pub display: Option<String>,
    /// A phone number or address, if given as a ContactPoint.
    pub telecom: Option<String>,
}

/// One agreed response: what one agency does when the trigger fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreedResponse {
    /// The agency that responds.
    pub agency: OrgId,
    /// What it agreed to do.
    pub text: String,
    /// Whom to alert, first to last; an unacknowledged alert escalates down this list.
    pub contacts: Vec<EscalationContact>,
    /// How long an alert may stay unacknowledged before escalating, when the plan says.
    pub acknowledge_within: Option<Duration>,
    /// Index of this response's sub-extension in the trigger extension (for locating problems).
    pub extension_index: usize,
}

/// A trigger and the agreed responses to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// What sets it off.
    pub condition: TriggerCondition,
    /// What each agency does.
    pub responses: Vec<AgreedResponse>,
}

/// One `CarePlan.activity`, as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanActivity {
    /// Position in `CarePlan.activity`.
    pub index: usize,
    /// Identity across versions: the element `id`, else the trigger signature (with `#n` for a
    /// repeat), else `activity[i]`.
    pub key: String,
    /// The organisations that own it (owner extension, else `detail.performer`).
    pub owners: Vec<OrgId>,
    /// `detail.description`.
    pub description: Option<String>,
    /// The trigger, when the activity carries one.
    pub trigger: Option<Trigger>,
    /// The activity as written, for alert excerpts.
    pub json: Value,
}

/// A permission the lead granted: to the whole plan, or to named activities (by key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditPermission {
    /// The agency granted.
    pub agency: OrgId,
    /// Activity keys opened to it; empty means the whole plan (except lead and permissions).
    pub activities: Vec<String>,
}

/// A `CarePlan` parsed into what the coordination rules use.
#[derive(Debug, Clone, PartialEq)]
pub struct CarePlanRules {
    /// `CarePlan.id`.
    pub id: Option<String>,
    /// `CarePlan.subject.reference`.
    pub subject: Option<String>,
    /// `CarePlan.status`.
    pub status: Option<String>,
    /// The lead organisation: the lead extension, else an Organization author, else the custodian
    /// (`meta.source`).
    pub lead: Option<OrgId>,
    /// Permissions the lead granted.
    pub permissions: Vec<EditPermission>,
    /// The activities, in order.
    pub activities: Vec<PlanActivity>,
}

impl CarePlanRules {
    /// The `CarePlan/{id}` reference, when the plan has an id.
    pub fn reference(&self) -> Option<String> {
        self.id.as_ref().map(|id| format!("CarePlan/{id}"))
    }
}

/// Parses a `CarePlan`, refusing malformed triggers, leads and permissions with located problems.
pub fn parse_care_plan(plan: &Value) -> Result<CarePlanRules, Vec<Problem>> {
    let (rules, problems) = parse_lenient(plan);
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(problems)
    }
}

/// Parses as much as can be read, with the problems found on the way.
fn parse_lenient(plan: &Value) -> (CarePlanRules, Vec<Problem>) {
    let mut problems = Vec::new();
    if str_at(plan, "resourceType") != Some("CarePlan") {
        problems.push(Problem::value("CarePlan.resourceType", "expected a CarePlan"));
    }
    let lead = plan_lead(plan, &mut problems);
    let permissions = permissions(plan, &mut problems);
    let mut activities = Vec::new();
    let mut seen_signatures: BTreeMap<String, usize> = BTreeMap::new();
    for (index, activity) in plan.get("activity").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let path = format!("CarePlan.activity[{index}]");
        let trigger = parse_trigger(activity, &path, &mut problems);
        let key = match (str_at(activity, "id"), &trigger) {
            (Some(id), _) => id.to_string(),
            (None, Some(t)) => {
                let signature = t.condition.signature();
                let n = seen_signatures.entry(signature.clone()).or_insert(0);
                *n += 1;
                if *n == 1 {
                    signature
                } else {
                    format!("{signature}#{n}")
                }
            }
            (None, None) => format!("activity[{index}]"),
        };
        let detail = activity.get("detail");
        let mut owners: Vec<OrgId> = Vec::new();
        for (i, ext) in extensions(activity, codes::ACTIVITY_OWNER_EXTENSION) {
            match ext.get("valueReference").and_then(OrgId::from_reference_element) {
                Some(org) => owners.push(org),
                None => problems.push(Problem::value(
                    format!("{path}.extension[{i}]"),
                    "an activity owner must be a valueReference to an Organization",
                )),
            }
        }
        if owners.is_empty() {
            owners = detail
                .and_then(|d| d.get("performer"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(OrgId::from_reference_element)
                .collect();
        }
        activities.push(PlanActivity {
            index,
            key,
            owners,
            description: detail.and_then(|d| str_at(d, "description")).map(str::to_string),
            trigger,
            json: activity.clone(),
        });
    }
    let rules = CarePlanRules {
        id: str_at(plan, "id").map(str::to_string),
        subject: plan.get("subject").and_then(|s| str_at(s, "reference")).map(str::to_string),
        status: str_at(plan, "status").map(str::to_string),
        lead,
        permissions,
        activities,
    };
    (rules, problems)
}

fn plan_lead(plan: &Value, problems: &mut Vec<Problem>) -> Option<OrgId> {
    let mut lead = None;
    for (i, ext) in extensions(plan, codes::PLAN_LEAD_EXTENSION) {
        match ext.get("valueReference").and_then(OrgId::from_reference_element) {
            Some(org) if lead.is_none() => lead = Some(org),
            Some(_) => {
                problems.push(Problem::value(format!("CarePlan.extension[{i}]"), "a care plan has at most one lead"))
            }
            None => problems.push(Problem::value(
                format!("CarePlan.extension[{i}]"),
                "the plan lead must be a valueReference to an Organization",
            )),
        }
    }
    lead.or_else(|| plan.get("author").and_then(OrgId::from_reference_element))
        .or_else(|| plan.get("meta").and_then(|m| str_at(m, "source")).and_then(OrgId::from_reference))
}

fn permissions(plan: &Value, problems: &mut Vec<Problem>) -> Vec<EditPermission> {
    let mut out = Vec::new();
    for (i, ext) in extensions(plan, codes::EDIT_PERMISSION_EXTENSION) {
        let path = format!("CarePlan.extension[{i}]");
        let agency = extensions(ext, "agency")
            .find_map(|(_, e)| e.get("valueReference").and_then(OrgId::from_reference_element));
        let activities: Vec<String> =
            extensions(ext, "activity").filter_map(|(_, e)| str_at(e, "valueString").map(str::to_string)).collect();
        match agency {
            Some(agency) => out.push(EditPermission { agency, activities }),
            None => problems.push(Problem::required(
                format!("{path}.extension"),
                "an edit permission needs an 'agency' valueReference to an Organization",
            )),
        }
    }
    out
}

fn parse_duration(value: &Value) -> Option<Duration> {
    let amount = value.get("value")?.as_f64()?;
    let unit = str_at(value, "code").or_else(|| str_at(value, "unit"))?;
    let seconds = match unit {
        "s" => amount,
        "min" => amount * 60.0,
        "h" => amount * 3600.0,
        "d" => amount * 86_400.0,
        _ => return None,
    };
    (seconds > 0.0 && seconds.is_finite()).then(|| Duration::seconds_f64(seconds))
}

fn parse_trigger(activity: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<Trigger> {
    let mut found = extensions(activity, codes::TRIGGER_EXTENSION);
    let (ext_index, ext) = found.next()?;
    if found.next().is_some() {
        problems.push(Problem::value(format!("{path}.extension"), "an activity carries at most one trigger"));
    }
    let at = format!("{path}.extension[{ext_index}]");
    let kind = extensions(ext, "kind").find_map(|(_, e)| str_at(e, "valueCode"));
    let month = |name: &str| {
        extensions(ext, name).next().map(|(i, e)| {
            let value = e.get("valueInteger").and_then(Value::as_u64).and_then(|m| u8::try_from(m).ok());
            (i, value.filter(|m| (1..=12).contains(m)))
        })
    };
    let coding = |name: &str, system: &str| {
        extensions(ext, name).next().map(|(i, e)| {
            let code = e.get("valueCoding").and_then(Code::from_coding).filter(|c| c.system == system);
            (i, code)
        })
    };
    let condition = match kind {
        Some("recurring-period") => {
            let single = month("month");
            let start = month("start-month");
            let end = month("end-month");
            let mut bad_month = |i: usize| {
                problems.push(Problem::value(
                    format!("{at}.extension[{i}].valueInteger"),
                    "a month is a valueInteger from 1 to 12",
                ))
            };
            match (single, start, end) {
                (Some((_, Some(m))), None, None) => {
                    Some(TriggerCondition::RecurringPeriod(MonthRange { start: m, end: m }))
                }
                (None, Some((_, Some(s))), Some((_, Some(e)))) => {
                    Some(TriggerCondition::RecurringPeriod(MonthRange { start: s, end: e }))
                }
                (Some((i, None)), _, _) | (_, Some((i, None)), _) | (_, _, Some((i, None))) => {
                    bad_month(i);
                    None
                }
                _ => {
                    problems.push(Problem::required(
                        format!("{at}.extension"),
                        "a recurring-period trigger needs either 'month' or both 'start-month' and 'end-month'",
                    ));
                    None
                }
            }
        }
        Some("event") => match coding("event", codes::TRIGGER_EVENT_SYSTEM) {
            Some((_, Some(code))) => Some(TriggerCondition::Event(code)),
            Some((i, None)) => {
                problems.push(Problem::value(
                    format!("{at}.extension[{i}].valueCoding"),
                    format!("an event trigger needs a valueCoding in {}", codes::TRIGGER_EVENT_SYSTEM),
                ));
                None
            }
            None => {
                problems.push(Problem::required(format!("{at}.extension"), "an event trigger needs an 'event' coding"));
                None
            }
        },
        Some("situation") => match coding("situation", codes::TRIGGER_SITUATION_SYSTEM) {
            Some((_, Some(code))) => Some(TriggerCondition::Situation(code)),
            Some((i, None)) => {
                problems.push(Problem::value(
                    format!("{at}.extension[{i}].valueCoding"),
                    format!("a situation trigger needs a valueCoding in {}", codes::TRIGGER_SITUATION_SYSTEM),
                ));
                None
            }
            None => {
                problems.push(Problem::required(
                    format!("{at}.extension"),
                    "a situation trigger needs a 'situation' coding",
                ));
                None
            }
        },
        Some(other) => {
            problems.push(Problem::value(
                format!("{at}.extension"),
                format!("unknown trigger kind '{other}' (expected recurring-period, event or situation)"),
            ));
            None
        }
        None => {
            problems.push(Problem::required(format!("{at}.extension"), "a trigger needs a 'kind' valueCode"));
            None
        }
    };
    let mut responses = Vec::new();
    for (i, response) in extensions(ext, "response") {
        let response_at = format!("{at}.extension[{i}]");
        let agency = extensions(response, "agency")
            .find_map(|(_, e)| e.get("valueReference").and_then(OrgId::from_reference_element));
        let text = extensions(response, "text").find_map(|(_, e)| str_at(e, "valueString")).map(str::trim);
        let contacts = extensions(response, "contact")
            .map(|(_, e)| match (e.get("valueReference"), e.get("valueContactPoint")) {
                (Some(r), _) => EscalationContact {
                    reference: str_at(r, "reference").map(str::to_string),
                    display: str_at(r, "display").map(str::to_string),
                    telecom: None,
                },
                (None, Some(cp)) => EscalationContact {
                    reference: None,
                    display: None,
                    telecom: str_at(cp, "value").map(str::to_string),
                },
                (None, None) => EscalationContact { reference: None, display: None, telecom: None },
            })
            .collect();
        let acknowledge_within = extensions(response, "acknowledge-within").next().map(|(j, e)| {
            let parsed = e.get("valueDuration").and_then(parse_duration);
            if parsed.is_none() {
                problems.push(Problem::value(
                    format!("{response_at}.extension[{j}].valueDuration"),
                    "acknowledge-within is a positive valueDuration in s, min, h or d",
                ));
            }
            parsed
        });
        match (agency, text) {
            (Some(agency), Some(text)) if !text.is_empty() => responses.push(AgreedResponse {
                agency,
                text: text.to_string(),
                contacts,
                acknowledge_within: acknowledge_within.flatten(),
                extension_index: i,
            }),
            (None, _) => problems.push(Problem::required(
                format!("{response_at}.extension"),
                "a response needs an 'agency' valueReference to an Organization",
            )),
            _ => problems.push(Problem::required(
                format!("{response_at}.extension"),
                "a response needs a non-empty 'text' valueString",
            )),
        }
    }
    condition.map(|condition| Trigger { condition, responses })
}

/// Why a care plan changed: required on every update, carried into the audit record and a
/// `Provenance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeReason(String);

impl ChangeReason {
    /// The reason, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Longest change reason accepted, in characters.
pub const MAX_CHANGE_REASON_CHARS: usize = 1000;

/// Reads the reason for a care-plan change from the [`codes::CHANGE_REASON_HEADER`] header value
/// (`None` when the header is absent). Refuses a missing, blank or overlong reason.
pub fn change_reason(header: Option<&str>) -> Result<ChangeReason, Problem> {
    let text = header.map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Err(Problem::required(
            "CarePlan",
            format!(
                "a change to a care plan must say why: send the reason in the {} header",
                codes::CHANGE_REASON_HEADER
            ),
        ));
    }
    if text.chars().count() > MAX_CHANGE_REASON_CHARS {
        return Err(Problem::value(
            "CarePlan",
            format!("the change reason is longer than {MAX_CHANGE_REASON_CHARS} characters"),
        ));
    }
    Ok(ChangeReason(text.to_string()))
}

/// The `Provenance` recording a care-plan change: its target version, when, why and by which
/// organisation.
pub fn change_provenance(
    target_version_ref: &str,
    reason: &ChangeReason,
    editor: &OrgId,
    recorded: OffsetDateTime,
) -> Value {
    serde_json::json!({
        "resourceType": "Provenance",
        "target": [{ "reference": target_version_ref }],
        "recorded": format_instant(recorded),
        "reason": [{ "text": reason.as_str() }],
        "activity": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE", "display": "revise" }] },
        "agent": [{ "who": { "reference": editor.reference() } }],
    })
}

/// What the editor may change, from the current version of the plan.
struct Authority {
    is_lead: bool,
    whole_plan: bool,
    activities: Vec<String>,
}

/// Checks that `editor_org` may turn care plan `old` into `new`: each agency edits only its own
/// parts (see the module documentation) unless it is the plan's lead or the lead opened the part
/// to it. Every refused change is reported, located in `new` (or in `old` for a removed
/// activity). `new` must also parse ([`parse_care_plan`]).
pub fn check_care_plan_edit(
    old: &Value,
    new: &Value,
    editor_org: &OrgId,
    directory: &OrgDirectory,
) -> Result<(), Vec<Problem>> {
    let (old_rules, _) = parse_lenient(old);
    let (new_rules, mut problems) = parse_lenient(new);
    if str_at(old, "id") != str_at(new, "id") {
        problems.push(Problem::value("CarePlan.id", "the id of a care plan cannot change"));
    }
    let same = |org: &OrgId| directory.same_agency(org, editor_org);
    let authority = Authority {
        is_lead: old_rules.lead.as_ref().is_some_and(same),
        whole_plan: old_rules.permissions.iter().any(|p| same(&p.agency) && p.activities.is_empty()),
        activities: old_rules
            .permissions
            .iter()
            .filter(|p| same(&p.agency))
            .flat_map(|p| p.activities.iter().cloned())
            .collect(),
    };
    if !authority.is_lead {
        check_plan_level(old, new, &authority, &mut problems);
        check_activities(&old_rules, &new_rules, &authority, editor_org, directory, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

const LEAD_ONLY_EXTENSIONS: [&str; 2] = [codes::PLAN_LEAD_EXTENSION, codes::EDIT_PERMISSION_EXTENSION];

fn extension_split(plan: &Value) -> (Vec<Value>, Vec<Value>) {
    plan.get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .cloned()
        .partition(|e| str_at(e, "url").is_some_and(|url| LEAD_ONLY_EXTENSIONS.contains(&url)))
}

fn check_plan_level(old: &Value, new: &Value, authority: &Authority, problems: &mut Vec<Problem>) {
    let empty = Map::new();
    let old_obj = old.as_object().unwrap_or(&empty);
    let new_obj = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = old_obj.keys().chain(new_obj.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (a, b) = (old_obj.get(key), new_obj.get(key));
        match key.as_str() {
            "activity" | "meta" | "text" | "id" => {}
            "note" => {
                let old_notes = a.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                let new_notes = b.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                if !new_notes.starts_with(old_notes) && !authority.whole_plan {
                    problems.push(Problem::forbidden(
                        "CarePlan.note",
                        "notes may be added, but only the plan's lead may change or remove existing notes",
                    ));
                }
            }
            "extension" => {
                let (old_lead_only, old_other) = extension_split(old);
                let (new_lead_only, new_other) = extension_split(new);
                if old_lead_only != new_lead_only {
                    problems.push(Problem::forbidden(
                        "CarePlan.extension",
                        "only the plan's lead may change the lead or the edit permissions",
                    ));
                }
                if old_other != new_other && !authority.whole_plan {
                    problems.push(Problem::forbidden(
                        "CarePlan.extension",
                        "only the plan's lead may change the plan's extensions",
                    ));
                }
            }
            _ if a != b && !authority.whole_plan => problems.push(Problem::forbidden(
                format!("CarePlan.{key}"),
                format!("only the plan's lead may change CarePlan.{key}"),
            )),
            _ => {}
        }
    }
}

/// The activity without its agreed responses and without the editor's own performer entries:
/// the part its owners control.
fn activity_frame(activity: &Value, is_editor: &dyn Fn(&OrgId) -> bool) -> Value {
    let mut frame = activity.clone();
    if let Some(exts) = frame.get_mut("extension").and_then(Value::as_array_mut) {
        for ext in exts.iter_mut() {
            if str_at(ext, "url") == Some(codes::TRIGGER_EXTENSION) {
                if let Some(parts) = ext.get_mut("extension").and_then(Value::as_array_mut) {
                    parts.retain(|p| str_at(p, "url") != Some("response"));
                }
            }
        }
    }
    if let Some(performers) = frame.get_mut("detail").and_then(|d| d.get_mut("performer")).and_then(Value::as_array_mut)
    {
        performers.retain(|p| !OrgId::from_reference_element(p).is_some_and(|org| is_editor(&org)));
        if performers.is_empty() {
            if let Some(detail) = frame.get_mut("detail").and_then(Value::as_object_mut) {
                detail.remove("performer");
            }
        }
    }
    frame
}

/// The agreed responses of an activity as written, keyed by the responding agency.
fn responses_by_agency(activity: &Value) -> BTreeMap<Option<OrgId>, Vec<Value>> {
    let mut out: BTreeMap<Option<OrgId>, Vec<Value>> = BTreeMap::new();
    for (_, ext) in extensions(activity, codes::TRIGGER_EXTENSION) {
        for (_, response) in extensions(ext, "response") {
            let agency = extensions(response, "agency")
                .find_map(|(_, e)| e.get("valueReference").and_then(OrgId::from_reference_element));
            out.entry(agency).or_default().push(response.clone());
        }
    }
    out
}

/// True when the activity involves nobody but the editor: its owners and every response agency.
fn editor_only(activity: &PlanActivity, is_editor: &dyn Fn(&OrgId) -> bool) -> bool {
    !activity.owners.is_empty()
        && activity.owners.iter().all(is_editor)
        && responses_by_agency(&activity.json).keys().all(|a| a.as_ref().is_some_and(is_editor))
}

fn check_activities(
    old: &CarePlanRules,
    new: &CarePlanRules,
    authority: &Authority,
    editor: &OrgId,
    directory: &OrgDirectory,
    problems: &mut Vec<Problem>,
) {
    let is_editor = |org: &OrgId| directory.same_agency(org, editor);
    let granted = |key: &str| authority.whole_plan || authority.activities.iter().any(|k| k == key);
    let old_by_key: BTreeMap<&str, &PlanActivity> = old.activities.iter().map(|a| (a.key.as_str(), a)).collect();
    let new_by_key: BTreeMap<&str, &PlanActivity> = new.activities.iter().map(|a| (a.key.as_str(), a)).collect();

    for activity in &new.activities {
        let path = format!("CarePlan.activity[{}]", activity.index);
        match old_by_key.get(activity.key.as_str()) {
            None => {
                if !granted(&activity.key) && !editor_only(activity, &is_editor) {
                    problems.push(Problem::forbidden(
                        path,
                        format!(
                            "{editor} may add an activity only for itself (as its only owner and responding agency); \
                             ask the plan's lead to add activities involving other agencies"
                        ),
                    ));
                }
            }
            Some(before) => {
                if granted(&activity.key) {
                    continue;
                }
                let owns = before.owners.iter().any(is_editor);
                if !owns && activity_frame(&before.json, &is_editor) != activity_frame(&activity.json, &is_editor) {
                    problems.push(Problem::forbidden(
                        path.clone(),
                        format!(
                            "activity '{}' belongs to {}; {editor} may change only its own responses",
                            activity.key,
                            owner_list(&before.owners)
                        ),
                    ));
                }
                let old_responses = responses_by_agency(&before.json);
                let new_responses = responses_by_agency(&activity.json);
                let mut agencies: Vec<&Option<OrgId>> = old_responses.keys().chain(new_responses.keys()).collect();
                agencies.sort();
                agencies.dedup();
                for agency in agencies {
                    if agency.as_ref().is_some_and(is_editor) {
                        continue;
                    }
                    if old_responses.get(agency) != new_responses.get(agency) {
                        let who = agency.as_ref().map_or_else(|| "an unnamed agency".to_string(), OrgId::to_string);
                        let at = response_location(activity, agency.as_ref()).unwrap_or_else(|| path.clone());
                        problems.push(Problem::forbidden(
                            at,
                            format!("the agreed response of {who} in activity '{}' may be changed only by {who} or the plan's lead", activity.key),
                        ));
                    }
                }
            }
        }
    }
    for activity in &old.activities {
        if new_by_key.contains_key(activity.key.as_str()) {
            continue;
        }
        if !granted(&activity.key) && !editor_only(activity, &is_editor) {
            problems.push(Problem::forbidden(
                format!("CarePlan.activity[{}]", activity.index),
                format!(
                    "activity '{}' of the current version involves other agencies; only the plan's lead may remove it",
                    activity.key
                ),
            ));
        }
    }
}

fn owner_list(owners: &[OrgId]) -> String {
    if owners.is_empty() {
        "the plan's lead".to_string()
    } else {
        owners.iter().map(OrgId::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// Where an agency's response sits in an activity (`CarePlan.activity[i].extension[j].extension[k]`).
fn response_location(activity: &PlanActivity, agency: Option<&OrgId>) -> Option<String> {
    let (ext_index, ext) = extensions(&activity.json, codes::TRIGGER_EXTENSION).next()?;
    let (k, _) = extensions(ext, "response").find(|(_, r)| {
        extensions(r, "agency")
            .find_map(|(_, e)| e.get("valueReference").and_then(OrgId::from_reference_element))
            .as_ref()
            == agency
    })?;
    Some(format!("CarePlan.activity[{}].extension[{ext_index}].extension[{k}]", activity.index))
}
