//! Trigger evaluation: recurring periods (including across the year end), events classified
//! from Encounters, situations, and the alerts they raise.

use std::collections::BTreeSet;

use carecircle_care::codes::{TRIGGER_EVENT_SYSTEM, TRIGGER_SITUATION_SYSTEM};
use carecircle_care::triggers::period_occurrence;
use carecircle_care::{
    alerts_for, evaluate_triggers, parse_care_plan, triggers_for_date, triggers_for_event, triggers_for_situations,
    ActiveSituation, ClassifiedEvent, Code, EncounterFacts, EventClassifier, Firing, MergeRule, MonthRange,
    TriggerInput,
};
use carecircle_demo::well_known as wk;
use proptest::prelude::*;
use serde_json::json;
use time::Date;

use crate::support::{date, demo_resource, directory, joe_plan, org};

fn classify(encounter_id: &str) -> Vec<String> {
    let encounter = demo_resource("Encounter", encounter_id);
    let facts = EncounterFacts::from_encounter(&encounter, None);
    EventClassifier::default_rules().classify(&facts, &directory()).into_iter().map(|c| c.code).collect()
}

/// The months of `start..=end` walking forward through the year, written out the slow way.
fn months_walked(start: u8, end: u8) -> Vec<u8> {
    let mut months = vec![start];
    let mut m = start;
    while m != end {
        m = m % 12 + 1;
        months.push(m);
    }
    months
}

proptest! {
    #[test]
    fn a_month_is_in_a_range_exactly_when_walking_the_range_reaches_it(start in 1u8..=12, end in 1u8..=12, month in 1u8..=12) {
        let range = MonthRange { start, end };
        prop_assert_eq!(range.contains(month), months_walked(start, end).contains(&month));
    }

    #[test]
    fn an_occurrence_starts_on_or_before_the_date_and_less_than_a_year_before(
        start in 1u8..=12, end in 1u8..=12, year in 2000i32..2100, ordinal in 1u16..=365,
    ) {
        let day = Date::from_ordinal_date(year, ordinal).unwrap();
        let range = MonthRange { start, end };
        match period_occurrence(range, day) {
            None => prop_assert!(!range.contains(u8::from(day.month()))),
            Some(occurrence) => {
                let (y, m) = occurrence.split_once('-').unwrap();
                let first = date(y.parse().unwrap(), m.parse().unwrap(), 1);
                prop_assert_eq!(u8::from(first.month()), start);
                prop_assert!(first <= day);
                prop_assert!(day - first < time::Duration::days(366));
                // Every month from the occurrence's first month to the date's is in the range.
                let span = months_walked(start, u8::from(day.month()));
                prop_assert!(span.iter().all(|m| range.contains(*m)));
            }
        }
    }
}

#[test]
fn august_fires_every_day_of_august_and_no_other() {
    let plan = parse_care_plan(&joe_plan()).unwrap();
    for (day, expected) in [
        (date(2026, 7, 31), None),
        (date(2026, 8, 1), Some("2026-08")),
        (date(2026, 8, 19), Some("2026-08")),
        (date(2026, 8, 31), Some("2026-08")),
        (date(2026, 9, 1), None),
        (date(2027, 8, 2), Some("2027-08")),
    ] {
        let fired = triggers_for_date(&plan, day);
        let occurrence = fired.first().map(|f| match &f.firing {
            Firing::Period { occurrence } => occurrence.clone(),
            other => panic!("{other:?}"),
        });
        assert_eq!(occurrence.as_deref(), expected, "{day}");
        assert!(fired.len() <= 1);
    }
}

#[test]
fn a_december_to_january_period_is_one_occurrence_across_the_year_end() {
    let plan = json!({
        "resourceType": "CarePlan", "id": "winter-plan", "status": "active",
        "activity": [{ "id": "winter", "extension": [{ "url": carecircle_care::codes::TRIGGER_EXTENSION, "extension": [
            { "url": "kind", "valueCode": "recurring-period" },
            { "url": "start-month", "valueInteger": 12 }, { "url": "end-month", "valueInteger": 1 },
            { "url": "response", "extension": [
                { "url": "agency", "valueReference": { "reference": "Organization/org-vale-befrienders" } },
                { "url": "text", "valueString": "Christmas visits." } ] } ] }] }],
    });
    let plan = parse_care_plan(&plan).unwrap();
    let occurrence = |d: Date| {
        triggers_for_date(&plan, d).into_iter().next().map(|f| match f.firing {
            Firing::Period { occurrence } => occurrence,
            other => panic!("{other:?}"),
        })
    };
    assert_eq!(occurrence(date(2026, 11, 30)), None);
    assert_eq!(occurrence(date(2026, 12, 1)).as_deref(), Some("2026-12"));
    assert_eq!(occurrence(date(2027, 1, 31)).as_deref(), Some("2026-12"));
    assert_eq!(occurrence(date(2027, 2, 1)), None);
    assert_eq!(occurrence(date(2027, 12, 24)).as_deref(), Some("2027-12"));
    // One key per winter: the January alert merges with December's.
    let december = alerts_for("Patient/p", &plan, &triggers_for_date(&plan, date(2026, 12, 20)));
    let january = alerts_for("Patient/p", &plan, &triggers_for_date(&plan, date(2027, 1, 5)));
    assert_eq!(december[0].dedup_key, january[0].dedup_key);
    assert_eq!(december[0].merge, MergeRule::SameKey);
}

#[test]
fn joes_encounters_are_classified_by_custodian_sector_and_class() {
    assert_eq!(classify(wk::JOE_ED_ATTENDANCE), vec!["ed-attendance"]);
    assert_eq!(classify(wk::JOE_AMBULANCE_CALLOUT), vec!["ambulance-callout"]);
    assert_eq!(classify(wk::JOE_POLICE_CONTACT), vec!["police-contact"]);
    assert_eq!(classify("enc-joe-crisis-2024-08-20"), vec!["crisis-team-contact"]);
    assert!(classify("enc-joe-gp-2023-01").is_empty());
    assert!(classify("enc-joe-pathways-2025-04-02").is_empty());
}

#[test]
fn classification_rules_are_data() {
    let classifier = EventClassifier::from_json(&json!({ "rules": [
        { "event": "missed-depot-injection", "custodian_sectors": ["mental-health"], "statuses": ["cancelled"],
          "types": [{ "system": "https://carecircle.example.org/fhir/CodeSystem/contact-type", "code": "depot-injection" }] },
        { "event": "ed-attendance", "service_providers": ["org-minsterford-hospital-ed"] },
        { "event": "ed-attendance", "custodian_sectors": ["acute"], "locations": ["Location/ed-majors"] },
    ]}))
    .unwrap();
    let d = directory();
    let encounter = |status: &str, kind: &str, custodian: &str, provider: &str| {
        json!({ "resourceType": "Encounter", "id": "e", "status": status, "class": { "code": "AMB" },
                "type": [{ "coding": [{ "system": "https://carecircle.example.org/fhir/CodeSystem/contact-type", "code": kind }] }],
                "serviceProvider": { "reference": format!("Organization/{provider}") },
                "meta": { "source": format!("Organization/{custodian}") } })
    };
    let codes = |e: serde_json::Value| -> Vec<String> {
        classifier.classify(&EncounterFacts::from_encounter(&e, None), &d).into_iter().map(|c| c.code).collect()
    };
    assert_eq!(
        codes(encounter("cancelled", "depot-injection", "org-vale-mh-trust", "org-vale-mh-trust")),
        vec!["missed-depot-injection"]
    );
    assert!(codes(encounter("finished", "depot-injection", "org-vale-mh-trust", "org-vale-mh-trust")).is_empty());
    assert!(codes(encounter("cancelled", "depot-injection", "org-gp-ashgrove", "org-gp-ashgrove")).is_empty());
    assert_eq!(
        codes(encounter("finished", "x", "org-minsterford-hospital", "org-minsterford-hospital-ed")),
        vec!["ed-attendance"]
    );
    // A contact that did not happen is no event unless a rule names its status.
    assert!(codes(encounter("cancelled", "x", "org-minsterford-hospital", "org-minsterford-hospital-ed")).is_empty());
    let mut at_ed = encounter("finished", "x", "org-minsterford-hospital", "org-minsterford-hospital");
    at_ed["location"] = json!([{ "location": { "reference": "Location/ed-majors" } }]);
    assert_eq!(codes(at_ed.clone()), vec!["ed-attendance"]);
    at_ed["meta"]["source"] = json!("Organization/org-northvale-police");
    assert!(codes(at_ed).is_empty(), "an ED location only counts at an acute partner");
    assert!(EventClassifier::from_json(&json!({ "rules": [{ "event": "x", "sector": ["acute"] }] })).is_err());
    // The custodian given by the caller overrides meta.source.
    let facts = EncounterFacts::from_encounter(
        &encounter("finished", "x", "org-gp-ashgrove", "x"),
        Some(&org("org-northvale-police")),
    );
    assert_eq!(
        EventClassifier::default_rules().classify(&facts, &d),
        vec![Code::new(TRIGGER_EVENT_SYSTEM, "police-contact")]
    );
}

#[test]
fn an_ed_attendance_alerts_every_agency_that_agreed_a_response() {
    let plan = parse_care_plan(&joe_plan()).unwrap();
    let encounter = demo_resource("Encounter", wk::JOE_ED_ATTENDANCE);
    let codes =
        EventClassifier::default_rules().classify(&EncounterFacts::from_encounter(&encounter, None), &directory());
    let event = ClassifiedEvent { reference: Some(format!("Encounter/{}", wk::JOE_ED_ATTENDANCE)), codes };
    let fired = triggers_for_event(&plan, &event);
    assert_eq!(fired.len(), 1);
    let alerts = alerts_for("Patient/pat-vale-mh-trust-joe", &plan, &fired);
    let agencies: Vec<&str> = alerts.iter().map(|a| a.agency.as_str()).collect();
    assert_eq!(agencies, vec![wk::ORG_HOSPITAL_ED, wk::ORG_MH_TRUST, wk::ORG_CRISIS_TEAM, wk::ORG_POLICE_MH_LIAISON]);
    let crisis = &alerts[2];
    assert!(crisis.response_text.starts_with("Assess Joe in the emergency department"), "{}", crisis.response_text);
    let contacts: Vec<Option<&str>> = crisis.contacts.iter().map(|c| c.reference.as_deref()).collect();
    assert_eq!(
        contacts,
        vec![Some("PractitionerRole/role-vale-mh-trust-04"), Some("PractitionerRole/role-vale-mh-trust-06"), None]
    );
    assert_eq!(crisis.acknowledge_within, Some(time::Duration::minutes(30)));
    let coordinator = &alerts[1];
    assert_eq!(coordinator.contacts[0].reference.as_deref(), Some("PractitionerRole/role-vale-mh-trust-01"));
    assert_eq!(crisis.event_ref.as_deref(), Some("Encounter/enc-joe-ed-2024-08"));
    assert_eq!(crisis.plan.as_deref(), Some("CarePlan/careplan-joe-crisis"));
    assert_eq!(crisis.plan_excerpt, joe_plan()["activity"][3]);
    assert_eq!(crisis.merge, MergeRule::Window);
    assert_eq!(
        crisis.dedup_key,
        "Patient/pat-vale-mh-trust-joe|CarePlan/careplan-joe-crisis|event:https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-event|ed-attendance|org-vale-mh-crisis-team|event"
    );
    // A GP appointment fires nothing.
    let gp = ClassifiedEvent {
        reference: Some("Encounter/enc-joe-gp-2023-01".into()),
        codes: classify("enc-joe-gp-2023-01").into_iter().map(|c| Code::new(TRIGGER_EVENT_SYSTEM, c)).collect(),
    };
    assert!(triggers_for_event(&plan, &gp).is_empty());
}

#[test]
fn the_care_coordinators_leave_fires_the_situation_trigger() {
    let plan = parse_care_plan(&joe_plan()).unwrap();
    let leave = ActiveSituation {
        code: Code::new(TRIGGER_SITUATION_SYSTEM, "care-coordinator-on-leave"),
        since: Some("2026-08-03".into()),
        source: Some("Flag/leave-1".into()),
    };
    let fired = triggers_for_situations(&plan, &BTreeSet::from([leave.clone()]));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].activity_index, 1);
    let alerts = alerts_for("Patient/p", &plan, &fired);
    assert_eq!(alerts.len(), 5);
    assert!(alerts[0].dedup_key.ends_with("|since:2026-08-03"));
    let other =
        ActiveSituation { code: Code::new(TRIGGER_SITUATION_SYSTEM, "housing-crisis"), since: None, source: None };
    assert!(triggers_for_situations(&plan, &BTreeSet::from([other])).is_empty());
}

#[test]
fn nothing_fires_from_a_plan_or_activity_that_is_not_live() {
    let mut revoked = joe_plan();
    revoked["status"] = json!("revoked");
    let plan = parse_care_plan(&revoked).unwrap();
    assert!(triggers_for_date(&plan, date(2026, 8, 10)).is_empty());
    let mut stopped = joe_plan();
    stopped["activity"][0]["detail"]["status"] = json!("stopped");
    let plan = parse_care_plan(&stopped).unwrap();
    assert!(triggers_for_date(&plan, date(2026, 8, 10)).is_empty());
}

#[test]
fn one_evaluation_collects_periods_events_and_situations() {
    let plan = parse_care_plan(&joe_plan()).unwrap();
    let police = ClassifiedEvent {
        reference: Some(format!("Encounter/{}", wk::JOE_POLICE_CONTACT)),
        codes: vec![Code::new(TRIGGER_EVENT_SYSTEM, "police-contact")],
    };
    let leave = BTreeSet::from([ActiveSituation {
        code: Code::new(TRIGGER_SITUATION_SYSTEM, "care-coordinator-on-leave"),
        since: None,
        source: None,
    }]);
    let fired = evaluate_triggers(
        &plan,
        &TriggerInput { date: Some(date(2025, 8, 23)), event: Some(&police), situations: &leave },
    );
    let indexes: Vec<usize> = fired.iter().map(|f| f.activity_index).collect();
    assert_eq!(indexes, vec![0, 2, 1]);
    let alerts = alerts_for("Patient/p", &plan, &fired);
    assert_eq!(alerts.len(), 6 + 3 + 5);
    let none = evaluate_triggers(
        &plan,
        &TriggerInput { date: Some(date(2025, 3, 11)), event: None, situations: &BTreeSet::new() },
    );
    assert!(none.is_empty());
}
