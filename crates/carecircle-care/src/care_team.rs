//! The care team of one person, built from the partners' lean client lists and from explicit
//! FHIR `CareTeam` resources, and the set of organisations in that person's care (the access
//! engine's "legitimate relationship" input).
//!
//! A list entry says "this organisation is working with this person": it becomes one
//! participant whose `member` is a contained `PractitionerRole` carrying the key worker's name,
//! the organisation, the service and the phone/email (R4 `CareTeam.participant` has no contact
//! element of its own). An entry that has left the list keeps its participant, with
//! `period.end` set to the day it ended, so the team shows who *was* involved too.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use time::Date;

use crate::model::{format_date, parse_fhir_date, str_at, OrgId};
use crate::organisations::OrgDirectory;

/// One row of a partner's list of active clients, already matched to the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerListEntry {
    /// The partner (or team) working with the person.
    pub organisation: OrgId,
    /// The key worker's name as the partner wrote it.
    pub key_worker: Option<String>,
    /// The service the person receives (`Community mental health team`, `Tenancy sustainment`).
    pub service: Option<String>,
    /// Work phone of the key worker or service.
    pub phone: Option<String>,
    /// Work email of the key worker or service.
    pub email: Option<String>,
    /// The day the person joined the list, if known.
    pub since: Option<Date>,
    /// The day the person left the list; `None` while they are still on it.
    pub ended: Option<Date>,
}

/// One participant of the built care team, before it is written as FHIR.
#[derive(Debug, Clone)]
struct Participant {
    organisation: Option<OrgId>,
    start: Option<String>,
    end: Option<String>,
    json: Value,
    contained: Option<Value>,
    /// Lower-cased member name, to spot a list entry that repeats an explicit participant.
    member_name: Option<String>,
}

fn care_team_role(code: &str, display: &str) -> Value {
    json!({
        "coding": [{ "system": format!("{}/CodeSystem/care-team-role", crate::codes::BASE), "code": code, "display": display }],
        "text": display,
    })
}

fn participant_from_entry(entry: &PartnerListEntry, index: usize) -> Participant {
    let contained_id = format!("list-entry-{index}");
    let mut role = json!({
        "resourceType": "PractitionerRole",
        "id": contained_id,
        "active": entry.ended.is_none(),
        "organization": { "reference": entry.organisation.reference() },
        "code": [care_team_role("key-worker", "Key worker")],
    });
    if let Some(name) = &entry.key_worker {
        role["practitioner"] = json!({ "display": name });
    }
    if let Some(service) = &entry.service {
        role["healthcareService"] = json!([{ "display": service }]);
    }
    let mut telecom = Vec::new();
    if let Some(phone) = &entry.phone {
        telecom.push(json!({ "system": "phone", "value": phone, "use": "work" }));
    }
    if let Some(email) = &entry.email {
        telecom.push(json!({ "system": "email", "value": email, "use": "work" }));
    }
    if !telecom.is_empty() {
        role["telecom"] = Value::Array(telecom);
    }
    let start = entry.since.map(format_date);
    let end = entry.ended.map(format_date);
    let period = period_json(start.as_deref(), end.as_deref());
    if let Some(period) = &period {
        role["period"] = period.clone();
    }
    let display = match (&entry.key_worker, &entry.service) {
        (Some(name), Some(service)) => format!("{name} ({service})"),
        (Some(name), None) => name.clone(),
        (None, Some(service)) => service.clone(),
        (None, None) => entry.organisation.to_string(),
    };
    let mut participant = json!({
        "role": [care_team_role("key-worker", "Key worker")],
        "member": { "reference": format!("#{contained_id}"), "display": display },
        "onBehalfOf": { "reference": entry.organisation.reference() },
    });
    if let Some(period) = period {
        participant["period"] = period;
    }
    Participant {
        organisation: Some(entry.organisation.clone()),
        start,
        end,
        json: participant,
        contained: Some(role),
        member_name: entry.key_worker.as_ref().map(|n| n.trim().to_lowercase()),
    }
}

fn period_json(start: Option<&str>, end: Option<&str>) -> Option<Value> {
    match (start, end) {
        (None, None) => None,
        (Some(s), None) => Some(json!({ "start": s })),
        (None, Some(e)) => Some(json!({ "end": e })),
        (Some(s), Some(e)) => Some(json!({ "start": s, "end": e })),
    }
}

/// The organisation a `CareTeam.participant` acts for: `onBehalfOf`, else an Organization member.
fn participant_organisation(participant: &Value) -> Option<OrgId> {
    participant
        .get("onBehalfOf")
        .and_then(OrgId::from_reference_element)
        .or_else(|| participant.get("member").and_then(OrgId::from_reference_element))
}

/// The participants of explicit CareTeams (skipping teams entered in error). A participant of an
/// inactive team without an end date ends when the team did.
fn participants_from_care_teams(care_teams: &[Value]) -> Vec<Participant> {
    let mut out = Vec::new();
    for team in care_teams {
        if str_at(team, "resourceType") != Some("CareTeam") {
            continue;
        }
        let status = str_at(team, "status").unwrap_or("active");
        if status == "entered-in-error" {
            continue;
        }
        let team_end = team.get("period").and_then(|p| str_at(p, "end")).map(str::to_string);
        for participant in team.get("participant").and_then(Value::as_array).into_iter().flatten() {
            let mut json = participant.clone();
            let start = participant.get("period").and_then(|p| str_at(p, "start")).map(str::to_string);
            let mut end = participant.get("period").and_then(|p| str_at(p, "end")).map(str::to_string);
            if end.is_none() && status == "inactive" {
                end = team_end.clone();
                if let Some(end) = &end {
                    json["period"] = period_json(start.as_deref(), Some(end)).unwrap_or_else(|| json!({}));
                }
            }
            let member_name = participant
                .get("member")
                .and_then(|m| str_at(m, "display"))
                .map(|d| d.split(" (").next().unwrap_or(d).trim().to_lowercase());
            out.push(Participant {
                organisation: participant_organisation(participant),
                start,
                end,
                json,
                contained: None,
                member_name,
            });
        }
    }
    out
}

/// One FHIR `CareTeam` for the person `person_ref` (`Patient/x`, as the caller names the
/// person), joining the partners' list entries and the explicit `CareTeam`s held about them.
///
/// Explicit participants come first, in the order written except that ended ones move after
/// current ones; then list entries, current before ended, each group ordered by organisation. A
/// list entry is left out when an explicit participant of the same organisation already names
/// the same key worker. Participants that ended carry `period.end`; the team is `active` while anyone
/// is still current.
pub fn build_care_team(person_ref: &str, list_entries: &[PartnerListEntry], care_teams: &[Value]) -> Value {
    let explicit = participants_from_care_teams(care_teams);
    let mut from_lists: Vec<Participant> = Vec::new();
    for (index, entry) in list_entries.iter().enumerate() {
        let candidate = participant_from_entry(entry, index);
        let repeats_explicit = explicit.iter().any(|p| {
            p.organisation == candidate.organisation
                && p.member_name.is_some()
                && p.member_name == candidate.member_name
        });
        if !repeats_explicit {
            from_lists.push(candidate);
        }
    }
    let mut explicit = explicit;
    explicit.sort_by_key(|p| p.end.is_some());
    from_lists.sort_by_key(|p| (p.end.is_some(), p.organisation.clone(), p.start.clone()));
    let all: Vec<Participant> = explicit.into_iter().chain(from_lists).collect();

    let any_current = all.iter().any(|p| p.end.is_none());
    let earliest_start = all.iter().filter_map(|p| p.start.clone()).min();
    let mut team = json!({
        "resourceType": "CareTeam",
        "status": if all.is_empty() || any_current { "active" } else { "inactive" },
        "category": [{
            "coding": [{ "system": format!("{}/CodeSystem/care-team-category", crate::codes::BASE),
                         "code": "multi-agency", "display": "Multi-agency care team" }],
            "text": "Multi-agency care team",
        }],
        "subject": { "reference": person_ref },
    });
    let contained: Vec<Value> = all.iter().filter_map(|p| p.contained.clone()).collect();
    if !contained.is_empty() {
        team["contained"] = Value::Array(contained);
    }
    if let Some(start) = earliest_start {
        team["period"] = json!({ "start": start });
    }
    team["participant"] = Value::Array(all.into_iter().map(|p| p.json).collect());
    team
}

/// The organisations in the person's care on day `on`: every organisation of a list entry that
/// has not ended by then, every `onBehalfOf` (or Organization member) of a current participant
/// of an active `CareTeam`, and its `managingOrganization`; each with the partner it belongs to
/// (so a crisis-team membership makes the mental-health trust's staff part of the relationship).
pub fn organisations_in_care(
    list_entries: &[PartnerListEntry],
    care_teams: &[Value],
    on: Date,
    directory: &OrgDirectory,
) -> BTreeSet<OrgId> {
    let mut out = BTreeSet::new();
    let current = |start: Option<Date>, end: Option<Date>| start.is_none_or(|s| s <= on) && end.is_none_or(|e| e >= on);
    for entry in list_entries {
        if current(entry.since, entry.ended) {
            out.insert(entry.organisation.clone());
        }
    }
    for team in care_teams {
        if str_at(team, "resourceType") != Some("CareTeam") || str_at(team, "status").unwrap_or("active") != "active" {
            continue;
        }
        let team_period = team.get("period");
        let team_start = team_period.and_then(|p| str_at(p, "start")).and_then(parse_fhir_date);
        let team_end = team_period.and_then(|p| str_at(p, "end")).and_then(parse_fhir_date);
        if !current(team_start, team_end) {
            continue;
        }
        for managing in team.get("managingOrganization").and_then(Value::as_array).into_iter().flatten() {
            if let Some(org) = OrgId::from_reference_element(managing) {
                out.insert(org);
            }
        }
        for participant in team.get("participant").and_then(Value::as_array).into_iter().flatten() {
            let period = participant.get("period");
            let start = period.and_then(|p| str_at(p, "start")).and_then(parse_fhir_date);
            let end = period.and_then(|p| str_at(p, "end")).and_then(parse_fhir_date);
            if let (Some(org), true) = (participant_organisation(participant), current(start, end)) {
                out.insert(org);
            }
        }
    }
    let partners: Vec<OrgId> = out.iter().map(|org| directory.partner_of(org)).collect();
    out.extend(partners);
    out
}
