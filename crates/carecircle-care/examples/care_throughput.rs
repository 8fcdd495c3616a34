//! Measures the engine's per-event cost on the demo partnership: classifying every Encounter,
//! evaluating Joe's plan for it and raising the alerts, and matching every change against a
//! thousand subscriptions. Run with `cargo run -p carecircle-care --release --example care_throughput`.

use std::collections::BTreeSet;
use std::time::Instant;

use carecircle_care::codes::{BACKPORT_FILTER_CRITERIA, BACKPORT_PAYLOAD_CONTENT};
use carecircle_care::{
    alerts_for, evaluate_triggers, matching_subscriptions, parse_care_plan, parse_subscription, AlertBook, AlertInput,
    AlertPolicy, ClassifiedEvent, EncounterFacts, EventClassifier, Interaction, OrgDirectory, OrgId, ResourceChange,
    Topic, TriggerInput,
};
use carecircle_demo::{generate, DemoConfig};
use serde_json::{json, Value};
use time::OffsetDateTime;

fn main() {
    let resources: Vec<Value> = generate(&DemoConfig::default())
        .into_iter()
        .map(|r| {
            let mut resource = r.resource;
            resource["meta"] = json!({ "source": format!("Organization/{}", r.custodian_org_id) });
            resource
        })
        .collect();
    let directory = OrgDirectory::from_organizations(&resources);
    let encounters: Vec<&Value> = resources.iter().filter(|r| r["resourceType"] == "Encounter").collect();
    let plan_json = resources.iter().find(|r| r["resourceType"] == "CarePlan").cloned().unwrap_or_default();
    let plan = match parse_care_plan(&plan_json) {
        Ok(plan) => plan,
        Err(problems) => panic!("demo plan does not parse: {problems:?}"),
    };
    let classifier = EventClassifier::default_rules();
    let situations = BTreeSet::new();
    let now = OffsetDateTime::UNIX_EPOCH;

    let start = Instant::now();
    let mut book = AlertBook::new(AlertPolicy::default());
    let (mut n_fired, mut n_actions) = (0usize, 0usize);
    for encounter in &encounters {
        let facts = EncounterFacts::from_encounter(encounter, None);
        let event =
            ClassifiedEvent { reference: facts.reference.clone(), codes: classifier.classify(&facts, &directory) };
        let fired =
            evaluate_triggers(&plan, &TriggerInput { date: None, event: Some(&event), situations: &situations });
        n_fired += fired.len();
        for alert in alerts_for("Patient/p", &plan, &fired) {
            n_actions += book.on_input(AlertInput::Raise(Box::new(alert)), now).map_or(0, |a| a.len());
        }
    }
    let elapsed = start.elapsed();
    println!(
        "classify + evaluate + alert: {} encounters in {:.1} ms ({:.1} µs each); {n_fired} triggers fired, {n_actions} alert actions",
        encounters.len(),
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / encounters.len() as f64
    );

    let patients: Vec<String> = resources
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .filter_map(|r| r["id"].as_str().map(|id| format!("Patient/{id}")))
        .take(1000)
        .collect();
    let subscriptions: Vec<_> = patients
        .iter()
        .filter_map(|patient| {
            parse_subscription(&json!({
                "resourceType": "Subscription", "status": "active", "criteria": Topic::CareTeamEncounter.url(),
                "meta": { "source": "Organization/org-vale-mh-crisis-team" },
                "_criteria": { "extension": [{ "url": BACKPORT_FILTER_CRITERIA, "valueString": format!("Encounter?patient={patient}") }] },
                "channel": { "type": "rest-hook", "endpoint": "https://example.org/hook",
                             "_payload": { "extension": [{ "url": BACKPORT_PAYLOAD_CONTENT, "valueCode": "id-only" }] } },
            }))
            .ok()
        })
        .collect();
    let sample: Vec<&&Value> = encounters.iter().take(200).collect();
    let care_organisations = BTreeSet::from([OrgId::new("org-vale-mh-crisis-team")]);
    let start = Instant::now();
    let mut n_matches = 0usize;
    for encounter in &sample {
        let change = ResourceChange {
            interaction: Interaction::Create,
            current: Some(encounter),
            previous: None,
            care_organisations: Some(&care_organisations),
        };
        n_matches += matching_subscriptions(&subscriptions, &change).len();
    }
    let elapsed = start.elapsed();
    let checks = sample.len() * subscriptions.len();
    println!(
        "subscription matching: {checks} (change, subscription) checks in {:.1} ms ({:.2} µs each); {n_matches} matched",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / checks as f64
    );
}
