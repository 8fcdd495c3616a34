//! Care plans: parsing Joe's triggers, who may edit which part, and the change reason.

use carecircle_care::codes::{EDIT_PERMISSION_EXTENSION, PLAN_LEAD_EXTENSION, TRIGGER_EXTENSION};
use carecircle_care::{
    change_provenance, change_reason, check_care_plan_edit, parse_care_plan, MonthRange, Problem, ProblemKind,
    TriggerCondition,
};
use serde_json::{json, Value};

use crate::support::{at, directory, joe_plan, org};

const MH_TRUST: &str = "org-vale-mh-trust";
const CRISIS: &str = "org-vale-mh-crisis-team";
const POLICE: &str = "org-northvale-police";
const HOUSING: &str = "org-kettlebeck-homes";
const GP: &str = "org-gp-ashgrove";

fn edit(old: &Value, new: &Value, editor: &str) -> Result<(), Vec<Problem>> {
    check_care_plan_edit(old, new, &org(editor), &directory())
}

fn locations(result: Result<(), Vec<Problem>>) -> Vec<String> {
    let problems = result.expect_err("the edit should be refused");
    assert!(problems.iter().all(|p| p.kind == ProblemKind::Forbidden || p.kind == ProblemKind::Value), "{problems:?}");
    problems.into_iter().map(|p| p.expression).collect()
}

/// The index of the response of `agency` in activity `a`'s trigger extension.
fn response_index(plan: &Value, a: usize, agency: &str) -> usize {
    plan["activity"][a]["extension"][0]["extension"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| {
            e["url"] == "response"
                && e["extension"][0]["valueReference"]["reference"] == format!("Organization/{agency}")
        })
        .unwrap()
}

fn set_response_text(plan: &mut Value, a: usize, agency: &str, text: &str) {
    let i = response_index(plan, a, agency);
    plan["activity"][a]["extension"][0]["extension"][i]["extension"][1]["valueString"] = json!(text);
}

#[test]
fn joes_plan_parses_into_five_triggers_with_their_responses() {
    let rules = parse_care_plan(&joe_plan()).unwrap();
    assert_eq!(rules.lead, Some(org(MH_TRUST)), "the custodian leads when no lead is named");
    let keys: Vec<&str> = rules.activities.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "recurring-period:8",
            "situation:https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-situation|care-coordinator-on-leave",
            "event:https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-event|police-contact",
            "event:https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-event|ed-attendance",
            "event:https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-event|ambulance-callout",
        ]
    );
    let august = &rules.activities[0];
    let trigger = august.trigger.as_ref().unwrap();
    assert_eq!(trigger.condition, TriggerCondition::RecurringPeriod(MonthRange { start: 8, end: 8 }));
    assert_eq!(trigger.responses.len(), 6);
    assert_eq!(trigger.responses[0].agency, org(CRISIS));
    assert!(trigger.responses[0].text.starts_with("Proactive contact with Joe"));
    assert_eq!(august.owners.len(), 6);
}

#[test]
fn year_end_ranges_contacts_and_deadlines_are_read() {
    let plan = json!({
        "resourceType": "CarePlan", "status": "active", "intent": "plan",
        "extension": [{ "url": PLAN_LEAD_EXTENSION, "valueReference": { "reference": "Organization/org-gp-ashgrove" } }],
        "activity": [{
            "id": "winter",
            "extension": [{ "url": TRIGGER_EXTENSION, "extension": [
                { "url": "kind", "valueCode": "recurring-period" },
                { "url": "start-month", "valueInteger": 12 },
                { "url": "end-month", "valueInteger": 1 },
                { "url": "response", "extension": [
                    { "url": "agency", "valueReference": { "reference": "Organization/org-vale-befrienders" } },
                    { "url": "text", "valueString": "Weekly visit over Christmas." },
                    { "url": "contact", "valueReference": { "reference": "PractitionerRole/a", "display": "Key worker" } },
                    { "url": "contact", "valueContactPoint": { "system": "phone", "value": "01632 960000" } },
                    { "url": "acknowledge-within", "valueDuration": { "value": 2, "code": "h" } },
                ]},
            ]}],
            "detail": { "status": "scheduled", "performer": [{ "reference": "Organization/org-vale-befrienders" }] },
        }],
    });
    let rules = parse_care_plan(&plan).unwrap();
    assert_eq!(rules.lead, Some(org(GP)));
    let activity = &rules.activities[0];
    assert_eq!(activity.key, "winter");
    let trigger = activity.trigger.as_ref().unwrap();
    assert_eq!(trigger.condition, TriggerCondition::RecurringPeriod(MonthRange { start: 12, end: 1 }));
    let response = &trigger.responses[0];
    assert_eq!(response.contacts.len(), 2);
    assert_eq!(response.contacts[0].reference.as_deref(), Some("PractitionerRole/a"));
    assert_eq!(response.contacts[1].telecom.as_deref(), Some("01632 960000"));
    assert_eq!(response.acknowledge_within, Some(time::Duration::hours(2)));
}

#[test]
fn malformed_triggers_are_located() {
    let trigger = |parts: Value| {
        json!({ "resourceType": "CarePlan", "status": "active",
                "activity": [{ "extension": [{ "url": TRIGGER_EXTENSION, "extension": parts }] }] })
    };
    let cases = [
        (
            json!([{ "url": "kind", "valueCode": "recurring-period" }, { "url": "month", "valueInteger": 13 }]),
            "CarePlan.activity[0].extension[0].extension[1].valueInteger",
        ),
        (
            json!([{ "url": "kind", "valueCode": "recurring-period" }, { "url": "start-month", "valueInteger": 12 }]),
            "CarePlan.activity[0].extension[0].extension",
        ),
        (json!([{ "url": "kind", "valueCode": "weekly" }]), "CarePlan.activity[0].extension[0].extension"),
        (json!([{ "url": "month", "valueInteger": 8 }]), "CarePlan.activity[0].extension[0].extension"),
        (
            json!([{ "url": "kind", "valueCode": "event" }, { "url": "event", "valueCoding": { "system": "http://other", "code": "x" } }]),
            "CarePlan.activity[0].extension[0].extension[1].valueCoding",
        ),
        (json!([{ "url": "kind", "valueCode": "situation" }]), "CarePlan.activity[0].extension[0].extension"),
        (
            json!([{ "url": "kind", "valueCode": "recurring-period" }, { "url": "month", "valueInteger": 8 },
                { "url": "response", "extension": [{ "url": "text", "valueString": "no agency" }] }]),
            "CarePlan.activity[0].extension[0].extension[2].extension",
        ),
        (
            json!([{ "url": "kind", "valueCode": "recurring-period" }, { "url": "month", "valueInteger": 8 },
                { "url": "response", "extension": [{ "url": "agency", "valueReference": { "reference": "Organization/x" } }] }]),
            "CarePlan.activity[0].extension[0].extension[2].extension",
        ),
    ];
    for (parts, location) in cases {
        let problems = parse_care_plan(&trigger(parts.clone())).unwrap_err();
        assert_eq!(problems.len(), 1, "{parts}: {problems:?}");
        assert_eq!(problems[0].expression, location, "{parts}");
    }
}

#[test]
fn an_agency_edits_its_own_response() {
    let old = joe_plan();
    let mut new = old.clone();
    set_response_text(
        &mut new,
        0,
        "org-northvale-police-mh-liaison",
        "Flag Joe's address and call the crisis team first.",
    );
    // The police force acts for its mental-health liaison team, and the team for itself.
    assert_eq!(edit(&old, &new, POLICE), Ok(()));
    assert_eq!(edit(&old, &new, "org-northvale-police-mh-liaison"), Ok(()));
}

#[test]
fn an_agency_may_not_edit_another_agencys_response() {
    let old = joe_plan();
    let mut new = old.clone();
    set_response_text(&mut new, 0, CRISIS, "No contact needed.");
    let i = response_index(&old, 0, CRISIS);
    assert_eq!(locations(edit(&old, &new, POLICE)), vec![format!("CarePlan.activity[0].extension[0].extension[{i}]")]);
}

#[test]
fn plan_level_elements_belong_to_the_lead() {
    let old = joe_plan();
    let mut new = old.clone();
    new["title"] = json!("Joe's plan (police version)");
    new["status"] = json!("revoked");
    assert_eq!(locations(edit(&old, &new, POLICE)), vec!["CarePlan.status".to_string(), "CarePlan.title".to_string()]);
    assert_eq!(edit(&old, &new, MH_TRUST), Ok(()));
    assert_eq!(edit(&old, &new, CRISIS), Ok(()), "a team of the lead acts for the lead");
}

#[test]
fn owners_of_an_activity_change_its_frame_and_others_may_not() {
    let old = joe_plan();
    // Housing performs the police-contact activity (index 2), not the August one (index 0).
    let mut new = old.clone();
    new["activity"][2]["detail"]["description"] = json!("Police are called to Joe's home or meet him anywhere.");
    assert_eq!(edit(&old, &new, HOUSING), Ok(()));
    let mut new = old.clone();
    new["activity"][0]["detail"]["description"] = json!("August.");
    assert_eq!(locations(edit(&old, &new, HOUSING)), vec!["CarePlan.activity[0]".to_string()]);
    let mut new = old.clone();
    new["activity"][0]["extension"][0]["extension"][1]["valueInteger"] = json!(9);
    let refused = locations(edit(&old, &new, HOUSING));
    assert!(refused.contains(&"CarePlan.activity[0]".to_string()), "{refused:?}");
}

#[test]
fn an_agency_joins_an_activity_with_its_own_response() {
    let old = joe_plan();
    let mut new = old.clone();
    new["activity"][0]["extension"][0]["extension"].as_array_mut().unwrap().push(json!({
        "url": "response",
        "extension": [
            { "url": "agency", "valueReference": { "reference": "Organization/org-kettlebeck-homes" } },
            { "url": "text", "valueString": "Tenancy officer visits once in August." },
        ],
    }));
    new["activity"][0]["detail"]["performer"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "reference": "Organization/org-kettlebeck-homes" }));
    assert_eq!(edit(&old, &new, HOUSING), Ok(()));
    // Adding someone else as performer is not joining.
    new["activity"][0]["detail"]["performer"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "reference": "Organization/org-vale-befrienders" }));
    assert_eq!(locations(edit(&old, &new, HOUSING)), vec!["CarePlan.activity[0]".to_string()]);
}

fn housing_activity(with_police_response: bool) -> Value {
    let mut parts = vec![
        json!({ "url": "kind", "valueCode": "event" }),
        json!({ "url": "event", "valueCoding": { "system": "https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-event", "code": "eviction-notice" } }),
        json!({ "url": "response", "extension": [
            { "url": "agency", "valueReference": { "reference": "Organization/org-kettlebeck-homes" } },
            { "url": "text", "valueString": "Tenancy sustainment review within a week." } ] }),
    ];
    if with_police_response {
        parts.push(json!({ "url": "response", "extension": [
            { "url": "agency", "valueReference": { "reference": "Organization/org-northvale-police" } },
            { "url": "text", "valueString": "Attend the eviction." } ] }));
    }
    json!({
        "extension": [{ "url": TRIGGER_EXTENSION, "extension": parts }],
        "detail": { "status": "in-progress", "performer": [{ "reference": "Organization/org-kettlebeck-homes" }], "description": "Eviction notice served." },
    })
}

#[test]
fn an_agency_adds_activities_only_for_itself() {
    let old = joe_plan();
    let mut new = old.clone();
    new["activity"].as_array_mut().unwrap().push(housing_activity(false));
    assert_eq!(edit(&old, &new, HOUSING), Ok(()));
    let mut new = old.clone();
    new["activity"].as_array_mut().unwrap().push(housing_activity(true));
    assert_eq!(locations(edit(&old, &new, HOUSING)), vec!["CarePlan.activity[5]".to_string()]);
    assert_eq!(edit(&old, &new, MH_TRUST), Ok(()));
}

#[test]
fn removing_a_multi_agency_activity_is_for_the_lead() {
    let old = joe_plan();
    let mut new = old.clone();
    new["activity"].as_array_mut().unwrap().remove(2);
    assert_eq!(locations(edit(&old, &new, POLICE)), vec!["CarePlan.activity[2]".to_string()]);
    assert_eq!(edit(&old, &new, MH_TRUST), Ok(()));
    // An agency removes an activity that is only its own.
    let mut with_own = old.clone();
    with_own["activity"].as_array_mut().unwrap().push(housing_activity(false));
    assert_eq!(edit(&with_own, &old, HOUSING), Ok(()));
}

#[test]
fn the_lead_opens_the_whole_plan_or_named_activities() {
    let mut old = joe_plan();
    old["extension"] = json!([
        { "url": EDIT_PERMISSION_EXTENSION, "extension": [
            { "url": "agency", "valueReference": { "reference": "Organization/org-kettlebeck-homes" } } ] },
        { "url": EDIT_PERMISSION_EXTENSION, "extension": [
            { "url": "agency", "valueReference": { "reference": "Organization/org-gp-ashgrove" } },
            { "url": "activity", "valueString": "event:https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-event|ed-attendance" } ] },
    ]);
    let mut new = old.clone();
    new["title"] = json!("Joe's shared plan");
    set_response_text(&mut new, 0, CRISIS, "Twice-weekly contact through August.");
    assert_eq!(edit(&old, &new, HOUSING), Ok(()));

    let mut new = old.clone();
    set_response_text(&mut new, 3, "org-minsterford-hospital-ed", "Refer to liaison psychiatry.");
    assert_eq!(edit(&old, &new, GP), Ok(()));
    set_response_text(&mut new, 0, CRISIS, "Twice-weekly contact through August.");
    let i = response_index(&old, 0, CRISIS);
    assert_eq!(locations(edit(&old, &new, GP)), vec![format!("CarePlan.activity[0].extension[0].extension[{i}]")]);
}

#[test]
fn nobody_but_the_lead_changes_lead_or_permissions() {
    let old = joe_plan();
    let mut new = old.clone();
    new["extension"] = json!([{ "url": EDIT_PERMISSION_EXTENSION, "extension": [
        { "url": "agency", "valueReference": { "reference": "Organization/org-northvale-police" } } ] }]);
    new["title"] = json!("Police may edit everything");
    assert_eq!(
        locations(edit(&old, &new, POLICE)),
        vec!["CarePlan.extension".to_string(), "CarePlan.title".to_string()],
        "permissions are read from the current version, so granting oneself does not help"
    );
    let mut new = old.clone();
    new["extension"] =
        json!([{ "url": PLAN_LEAD_EXTENSION, "valueReference": { "reference": "Organization/org-northvale-police" } }]);
    assert_eq!(locations(edit(&old, &new, POLICE)), vec!["CarePlan.extension".to_string()]);
    assert_eq!(edit(&old, &new, MH_TRUST), Ok(()));
    // Once the police lead, the trust no longer does.
    let mut after = new.clone();
    after["title"] = json!("Trust edit");
    assert_eq!(locations(edit(&new, &after, MH_TRUST)), vec!["CarePlan.title".to_string()]);
}

#[test]
fn anyone_adds_notes_but_only_the_lead_rewrites_them() {
    let old = joe_plan();
    let mut new = old.clone();
    new["note"].as_array_mut().unwrap().push(json!({ "text": "Police: address flag reviewed." }));
    assert_eq!(edit(&old, &new, POLICE), Ok(()));
    let mut new = old.clone();
    new["note"] = json!([{ "text": "Rewritten." }]);
    assert_eq!(locations(edit(&old, &new, POLICE)), vec!["CarePlan.note".to_string()]);
}

#[test]
fn the_id_cannot_change_and_the_new_version_must_parse() {
    let old = joe_plan();
    let mut new = old.clone();
    new["id"] = json!("other");
    new["activity"][0]["extension"][0]["extension"][1]["valueInteger"] = json!(0);
    let problems = edit(&old, &new, MH_TRUST).unwrap_err();
    let at: Vec<&str> = problems.iter().map(|p| p.expression.as_str()).collect();
    assert_eq!(at, vec!["CarePlan.activity[0].extension[0].extension[1].valueInteger", "CarePlan.id"]);
}

#[test]
fn a_change_must_give_its_reason() {
    assert!(change_reason(None).is_err());
    assert!(change_reason(Some("   ")).is_err());
    assert!(change_reason(Some(&"x".repeat(1001))).is_err());
    let reason = change_reason(Some("  Agreed at the October review ")).unwrap();
    assert_eq!(reason.as_str(), "Agreed at the October review");
    let missing = change_reason(None).unwrap_err();
    assert_eq!(missing.kind, ProblemKind::Required);
    assert!(missing.message.contains("X-Change-Reason"));
    let provenance =
        change_provenance("CarePlan/careplan-joe-crisis/_history/4", &reason, &org(POLICE), at(2026, 10, 15, 11, 0));
    assert_eq!(
        provenance,
        json!({
            "resourceType": "Provenance",
            "target": [{ "reference": "CarePlan/careplan-joe-crisis/_history/4" }],
            "recorded": "2026-10-15T11:00:00.000Z",
            "reason": [{ "text": "Agreed at the October review" }],
            "activity": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE", "display": "revise" }] },
            "agent": [{ "who": { "reference": "Organization/org-northvale-police" } }],
        })
    );
}
