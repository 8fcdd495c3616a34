//! The storage test suite: one story about versioning, atomicity, search, includes, the Patient
//! compartment, custodians and history that every backend must pass. Each backend instantiates it
//! with [`store_test_suite!`], giving a constructor that returns a fresh, migrated, empty store
//! (its own file or its own PostgreSQL schema) for every test.

use std::sync::Arc;

use carecircle_fhir::extract_index;
use carecircle_fhir::search::{parse_search, Handling, Include};
use carecircle_store::{HistoryQuery, Store, StoreError, StoredResource, WriteEffect, WriteOp};
use serde_json::{json, Value};

/// A store under test.
pub type TestStore = Arc<dyn Store>;

/// Expands to one `#[tokio::test]` per suite case, each calling `$make().await` for a fresh store.
#[macro_export]
macro_rules! store_test_suite {
    ($make:path) => {
        $crate::store_test_suite!(@cases $make;
            create_then_read_returns_the_stamped_resource,
            updates_keep_every_previous_version,
            version_preconditions_refuse_stale_writes,
            deletion_hides_the_resource_but_keeps_history,
            a_failed_write_rolls_back_the_whole_batch,
            search_matches_each_parameter_type,
            search_pages_sorts_and_counts,
            includes_and_revincludes_follow_references,
            references_match_by_id_and_by_url,
            one_batch_may_write_a_resource_twice,
            a_large_batch_mixes_creates_updates_and_deletes,
            patient_compartment_holds_linked_resources,
            custodian_filter_lists_one_partners_data,
            history_lists_versions_newest_first
        );
    };
    (@cases $make:path; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make().await;
                $crate::$case(store).await;
            }
        )*
    };
}

/// A `Put` of `resource` (which must carry `resourceType` and `id`) by `custodian`.
pub fn put(resource: Value, custodian: &str) -> WriteOp {
    let resource_type = resource["resourceType"].as_str().unwrap_or_default().to_string();
    let id = resource["id"].as_str().unwrap_or_default().to_string();
    let index = extract_index(&resource);
    WriteOp::Put { resource_type, id, resource, index, custodian: Some(custodian.to_string()), expected_version: None }
}

async fn search(store: &TestStore, resource_type: &str, query: &str) -> (Vec<String>, usize) {
    let params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let query = parse_search(Some(resource_type), &params, Handling::Strict).expect("valid search");
    let page = store.search(&query).await.expect("search runs");
    (page.entries.iter().map(|r| r.id.clone()).collect(), page.total)
}

fn patient(id: &str, family: &str, given: &str, birth_date: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "id": id,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": format!("999{id}")}],
        "name": [{"family": family, "given": [given]}],
        "gender": "male",
        "birthDate": birth_date,
        "generalPractitioner": [{"reference": "Organization/gp-1"}]
    })
}

async fn seed_people(store: &TestStore) {
    store
        .apply(vec![
            put(json!({"resourceType": "Organization", "id": "gp-1", "name": "Ashgrove Surgery"}), "Organization/gp-1"),
            put(patient("p1", "Smith", "Joseph", "1971-03-14"), "Organization/gp-1"),
            put(patient("p2", "Smyth", "Joe", "1971-03-14"), "Organization/hospital"),
            put(patient("p3", "Jones", "Zoë", "1985-11-02"), "Organization/hospital"),
            put(
                json!({"resourceType": "Observation", "id": "o1", "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                    "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-08-03T10:00:00Z",
                    "valueQuantity": {"value": 81.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}),
                "Organization/hospital",
            ),
            put(
                json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
                    "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-08-03T09:00:00Z", "end": "2026-08-03T13:00:00Z"}}),
                "Organization/hospital",
            ),
        ])
        .await
        .expect("seed data is stored");
}

/// A created resource reads back with `id`, `meta.versionId`, `meta.lastUpdated` and custodian.
pub async fn create_then_read_returns_the_stamped_resource(store: TestStore) {
    let outcomes =
        store.apply(vec![put(patient("p1", "Smith", "Joseph", "1971-03-14"), "Organization/gp-1")]).await.unwrap();
    assert_eq!(outcomes[0].effect, WriteEffect::Created);
    let stored = store.read("Patient", "p1").await.unwrap().expect("stored");
    assert_eq!(stored.version, 1);
    assert!(!stored.deleted);
    assert_eq!(stored.custodian.as_deref(), Some("Organization/gp-1"));
    let body = stored.json().unwrap();
    assert_eq!(body["meta"]["versionId"], "1");
    assert!(body["meta"]["lastUpdated"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["name"][0]["family"], "Smith");
    assert!(store.read("Patient", "nobody").await.unwrap().is_none());
    assert!(store.read("Observation", "p1").await.unwrap().is_none());
}

/// Every update keeps the previous version readable.
pub async fn updates_keep_every_previous_version(store: TestStore) {
    store.apply(vec![put(patient("p1", "Smith", "Joseph", "1971-03-14"), "Organization/gp-1")]).await.unwrap();
    let outcomes =
        store.apply(vec![put(patient("p1", "Smith", "Joe", "1971-03-14"), "Organization/gp-1")]).await.unwrap();
    assert_eq!(outcomes[0].effect, WriteEffect::Updated);
    assert_eq!(outcomes[0].stored.version, 2);
    let v1 = store.read_version("Patient", "p1", 1).await.unwrap().unwrap();
    let v2 = store.read_version("Patient", "p1", 2).await.unwrap().unwrap();
    assert_eq!(v1.json().unwrap()["name"][0]["given"][0], "Joseph");
    assert_eq!(v2.json().unwrap()["name"][0]["given"][0], "Joe");
    assert!(store.read_version("Patient", "p1", 3).await.unwrap().is_none());
    // The index follows the current version only.
    assert_eq!(search(&store, "Patient", "given=joe").await.1, 1);
    assert_eq!(search(&store, "Patient", "given=joseph").await.1, 0);
}

/// `If-Match` style preconditions refuse stale writes and change nothing.
pub async fn version_preconditions_refuse_stale_writes(store: TestStore) {
    store.apply(vec![put(patient("p1", "Smith", "Joseph", "1971-03-14"), "Organization/gp-1")]).await.unwrap();
    let mut stale = put(patient("p1", "Smith", "Joe", "1971-03-14"), "Organization/gp-1");
    if let WriteOp::Put { expected_version, .. } = &mut stale {
        *expected_version = Some(7);
    }
    match store.apply(vec![stale]).await {
        Err(StoreError::VersionConflict { expected: 7, current: 1, .. }) => {}
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let mut create_only = put(patient("p1", "Smith", "Joe", "1971-03-14"), "Organization/gp-1");
    if let WriteOp::Put { expected_version, .. } = &mut create_only {
        *expected_version = Some(0);
    }
    assert!(matches!(store.apply(vec![create_only]).await, Err(StoreError::VersionConflict { .. })));
    let mut current = put(patient("p1", "Smith", "Joe", "1971-03-14"), "Organization/gp-1");
    if let WriteOp::Put { expected_version, .. } = &mut current {
        *expected_version = Some(1);
    }
    assert_eq!(store.apply(vec![current]).await.unwrap()[0].stored.version, 2);
}

/// A deletion is a new version: reads see it deleted, search never returns it, history keeps it.
pub async fn deletion_hides_the_resource_but_keeps_history(store: TestStore) {
    seed_people(&store).await;
    let delete = WriteOp::Delete { resource_type: "Patient".into(), id: "p1".into(), expected_version: None };
    let outcomes = store.apply(vec![delete.clone()]).await.unwrap();
    assert_eq!(outcomes[0].effect, WriteEffect::Deleted);
    let current = store.read("Patient", "p1").await.unwrap().unwrap();
    assert!(current.deleted && current.body.is_none() && current.version == 2);
    assert!(!search(&store, "Patient", "family=smith").await.0.contains(&"p1".to_string()));
    assert!(store.read_version("Patient", "p1", 1).await.unwrap().unwrap().body.is_some());
    assert_eq!(store.apply(vec![delete]).await.unwrap()[0].effect, WriteEffect::Unchanged);
    // Re-creating after deletion continues the version sequence.
    let outcomes =
        store.apply(vec![put(patient("p1", "Smith", "Joseph", "1971-03-14"), "Organization/gp-1")]).await.unwrap();
    assert_eq!((outcomes[0].effect.clone(), outcomes[0].stored.version), (WriteEffect::Created, 3));
}

/// When one write of a batch fails, none of the batch is stored.
pub async fn a_failed_write_rolls_back_the_whole_batch(store: TestStore) {
    store.apply(vec![put(patient("p1", "Smith", "Joseph", "1971-03-14"), "Organization/gp-1")]).await.unwrap();
    let mut conflicting = put(patient("p1", "Smith", "Joe", "1971-03-14"), "Organization/gp-1");
    if let WriteOp::Put { expected_version, .. } = &mut conflicting {
        *expected_version = Some(9);
    }
    let result =
        store.apply(vec![put(patient("p9", "New", "Person", "2000-01-01"), "Organization/gp-1"), conflicting]).await;
    assert!(result.is_err());
    assert!(store.read("Patient", "p9").await.unwrap().is_none());
    assert_eq!(search(&store, "Patient", "family=new").await.1, 0);
    assert_eq!(store.read("Patient", "p1").await.unwrap().unwrap().version, 1);
}

/// String, token, date, reference, quantity and `_id` searches find what they should.
pub async fn search_matches_each_parameter_type(store: TestStore) {
    seed_people(&store).await;
    let ids = |v: (Vec<String>, usize)| {
        let mut ids = v.0;
        ids.sort();
        ids
    };
    assert_eq!(ids(search(&store, "Patient", "family=sm").await), ["p1", "p2"]);
    assert_eq!(ids(search(&store, "Patient", "family:exact=Smyth").await), ["p2"]);
    assert_eq!(ids(search(&store, "Patient", "family:exact=smyth").await), Vec::<String>::new());
    assert_eq!(ids(search(&store, "Patient", "given=zoe").await), ["p3"]);
    assert_eq!(ids(search(&store, "Patient", "name:contains=myt").await), ["p2"]);
    assert_eq!(ids(search(&store, "Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|999p2").await), ["p2"]);
    assert_eq!(ids(search(&store, "Patient", "identifier=999p3").await), ["p3"]);
    assert_eq!(ids(search(&store, "Patient", "identifier=http://other|999p3").await), Vec::<String>::new());
    assert_eq!(ids(search(&store, "Patient", "birthdate=1971-03-14").await), ["p1", "p2"]);
    assert_eq!(ids(search(&store, "Patient", "birthdate=1971").await), ["p1", "p2"]);
    assert_eq!(ids(search(&store, "Patient", "birthdate=gt1980").await), ["p3"]);
    assert_eq!(ids(search(&store, "Patient", "birthdate=lt1971-03-14").await), Vec::<String>::new());
    assert_eq!(ids(search(&store, "Patient", "birthdate=ge1971-03-14&family=smith").await), ["p1"]);
    assert_eq!(ids(search(&store, "Patient", "general-practitioner=Organization/gp-1").await), ["p1", "p2", "p3"]);
    assert_eq!(ids(search(&store, "Patient", "general-practitioner=gp-1").await), ["p1", "p2", "p3"]);
    assert_eq!(ids(search(&store, "Patient", "family=smith,jones").await), ["p1", "p3"]);
    assert_eq!(ids(search(&store, "Patient", "gender:not=male").await), Vec::<String>::new());
    assert_eq!(ids(search(&store, "Patient", "_id=p2,p3").await), ["p2", "p3"]);
    assert_eq!(ids(search(&store, "Observation", "subject=Patient/p1&code=http://loinc.org|29463-7").await), ["o1"]);
    assert_eq!(ids(search(&store, "Observation", "value-quantity=81.5").await), ["o1"]);
    assert_eq!(ids(search(&store, "Observation", "value-quantity=gt80|http://unitsofmeasure.org|kg").await), ["o1"]);
    assert_eq!(ids(search(&store, "Observation", "value-quantity=lt80").await), Vec::<String>::new());
    assert_eq!(ids(search(&store, "Encounter", "date=2026-08-03").await), ["e1"]);
    assert_eq!(ids(search(&store, "Encounter", "date=2026-08-04").await), Vec::<String>::new());
    assert_eq!(ids(search(&store, "Encounter", "class=EMER").await), ["e1"]);
    assert_eq!(ids(search(&store, "Patient", "telecom:missing=true&family=jones").await), ["p3"]);
    assert_eq!(ids(search(&store, "Patient", "birthdate:missing=false&family=jones").await), ["p3"]);
}

/// Pages are stable, totals count every match, and sorting follows the requested keys.
pub async fn search_pages_sorts_and_counts(store: TestStore) {
    let mut writes = Vec::new();
    for i in 0..25 {
        writes.push(put(
            patient(&format!("p{i:02}"), &format!("Family{}", 24 - i), "A", &format!("19{:02}-01-01", 50 + i)),
            "Organization/gp-1",
        ));
    }
    store.apply(writes).await.unwrap();
    let (first, total) = search(&store, "Patient", "_count=10").await;
    assert_eq!((first.len(), total), (10, 25));
    let (third, _) = search(&store, "Patient", "_count=10&_offset=20").await;
    assert_eq!(third.len(), 5);
    let (second, _) = search(&store, "Patient", "_count=10&_offset=10").await;
    assert!(first.iter().chain(&second).chain(&third).collect::<std::collections::HashSet<_>>().len() == 25);
    let (by_birth_desc, _) = search(&store, "Patient", "_sort=-birthdate&_count=3").await;
    assert_eq!(by_birth_desc, ["p24", "p23", "p22"]);
    let (by_family, _) = search(&store, "Patient", "_sort=family&_count=2").await;
    assert_eq!(by_family, ["p24", "p23"]); // "family0" < "family1" < "family10" ...
    let (by_id_desc, _) = search(&store, "Patient", "_sort=-_id&_count=1").await;
    assert_eq!(by_id_desc, ["p24"]);
    let (none, total) = search(&store, "Patient", "_summary=count").await;
    assert_eq!((none.len(), total), (0, 25));
}

/// `_include` brings referenced resources, `_revinclude` the referencing ones.
pub async fn includes_and_revincludes_follow_references(store: TestStore) {
    seed_people(&store).await;
    let observation = store.read("Observation", "o1").await.unwrap().unwrap();
    let include = Include { source_type: "Observation".into(), param: "subject".into(), target_type: None };
    let included = store.include(std::slice::from_ref(&observation), &include).await.unwrap();
    assert_eq!(keys(&included), ["Patient/p1"]);
    let wildcard =
        Include { source_type: "Observation".into(), param: "*".into(), target_type: Some("Organization".into()) };
    assert!(store.include(&[observation], &wildcard).await.unwrap().is_empty());
    let p1 = store.read("Patient", "p1").await.unwrap().unwrap();
    let rev = Include { source_type: "Encounter".into(), param: "subject".into(), target_type: None };
    assert_eq!(keys(&store.revinclude(&[p1], &rev).await.unwrap()), ["Encounter/e1"]);
}

/// A reference search matches by id (with or without type) and by the url exactly as written,
/// whether or not the url ends in a `Type/id`; `_revinclude` with any parameter finds every
/// referencing resource.
pub async fn references_match_by_id_and_by_url(store: TestStore) {
    seed_people(&store).await;
    let observation = |id: &str, reference: &str| {
        put(
            json!({"resourceType": "Observation", "id": id, "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": reference}}),
            "Organization/hospital",
        )
    };
    store
        .apply(vec![
            observation("o-history", "http://example.org/fhir/Patient/p9/_history/2"),
            observation("o-urn", "urn:uuid:6c1a5d0e-39a3-4b8e-9d7e-0f1f8a0b2c3d"),
            observation("o-absolute", "http://example.org/fhir/Patient/p8"),
            observation("o-group", "Group/g1"),
        ])
        .await
        .unwrap();
    let ids = |v: (Vec<String>, usize)| {
        let mut ids = v.0;
        ids.sort();
        ids
    };
    let cases: &[(&str, &[&str])] = &[
        ("subject=http://example.org/fhir/Patient/p9/_history/2", &["o-history"]),
        ("subject=urn:uuid:6c1a5d0e-39a3-4b8e-9d7e-0f1f8a0b2c3d", &["o-urn"]),
        ("subject=urn:uuid:00000000-0000-0000-0000-000000000000", &[]),
        ("subject=p9", &["o-history"]),
        ("subject=Patient/p9", &["o-history"]),
        ("subject=http://example.org/fhir/Patient/p8", &["o-absolute"]),
        ("subject=http://elsewhere.org/Patient/p8", &["o-absolute"]),
        ("subject=Patient/p8,Group/g1", &["o-absolute", "o-group"]),
        ("subject=Group/p8", &[]),
        ("subject=Patient/p1", &["o1"]),
        ("subject:missing=false&code=29463-7&subject=http://example.org/fhir/Patient/p9/_history/2", &["o-history"]),
    ];
    for (query, expected) in cases {
        assert_eq!(ids(search(&store, "Observation", query).await), *expected, "{query}");
    }
    let p1 = store.read("Patient", "p1").await.unwrap().unwrap();
    let gp = store.read("Organization", "gp-1").await.unwrap().unwrap();
    let any_param = Include { source_type: "Observation".into(), param: "*".into(), target_type: None };
    assert_eq!(keys(&store.revinclude(std::slice::from_ref(&p1), &any_param).await.unwrap()), ["Observation/o1"]);
    let any_type = Include { source_type: "*".into(), param: "*".into(), target_type: None };
    let mut referencing = keys(&store.revinclude(&[p1, gp], &any_type).await.unwrap());
    referencing.sort();
    assert_eq!(referencing, ["Encounter/e1", "Observation/o1", "Patient/p1", "Patient/p2", "Patient/p3"]);
    let encounter = store.read("Encounter", "e1").await.unwrap().unwrap();
    let observation = store.read("Observation", "o1").await.unwrap().unwrap();
    let subject = Include { source_type: "*".into(), param: "*".into(), target_type: Some("Patient".into()) };
    assert_eq!(keys(&store.include(&[encounter, observation], &subject).await.unwrap()), ["Patient/p1"]);
}

/// Writes in one call apply in order, even to one resource twice: each sees the one before.
pub async fn one_batch_may_write_a_resource_twice(store: TestStore) {
    let outcomes = store
        .apply(vec![
            put(patient("p1", "Smith", "Joseph", "1971-03-14"), "Organization/gp-1"),
            put(patient("p2", "Jones", "Ann", "1980-01-01"), "Organization/gp-1"),
            put(patient("p1", "Smith", "Joe", "1971-03-14"), "Organization/gp-1"),
            WriteOp::Delete { resource_type: "Patient".into(), id: "p2".into(), expected_version: Some(1) },
        ])
        .await
        .unwrap();
    let summary: Vec<(WriteEffect, i64)> = outcomes.iter().map(|o| (o.effect.clone(), o.stored.version)).collect();
    assert_eq!(
        summary,
        [(WriteEffect::Created, 1), (WriteEffect::Created, 1), (WriteEffect::Updated, 2), (WriteEffect::Deleted, 2)]
    );
    let v1 = store.read_version("Patient", "p1", 1).await.unwrap().unwrap();
    assert_eq!(v1.json().unwrap()["name"][0]["given"][0], "Joseph");
    assert_eq!(store.read("Patient", "p1").await.unwrap().unwrap().json().unwrap()["meta"]["versionId"], "2");
    assert!(store.read("Patient", "p2").await.unwrap().unwrap().deleted);
    assert_eq!(search(&store, "Patient", "given=joe").await.0, ["p1"]);
    assert_eq!(search(&store, "Patient", "given=joseph").await.1, 0);
    assert_eq!(search(&store, "Patient", "family=jones").await.1, 0);
}

/// A batch large enough for the backends' bulk paths creates, updates, re-creates and deletes
/// with the same results as single writes: versions, bodies, index rows and history.
pub async fn a_large_batch_mixes_creates_updates_and_deletes(store: TestStore) {
    let first: Vec<WriteOp> = (0..600)
        .map(|i| put(patient(&format!("p{i}"), &format!("Family{i}"), "Before", "1971-03-14"), "Organization/gp-1"))
        .collect();
    store.apply(first).await.unwrap();
    store
        .apply(vec![WriteOp::Delete { resource_type: "Patient".into(), id: "p5".into(), expected_version: None }])
        .await
        .unwrap();
    let mut second = Vec::new();
    for i in 0..900 {
        if i % 100 == 7 {
            second.push(WriteOp::Delete {
                resource_type: "Patient".into(),
                id: format!("p{i}"),
                expected_version: None,
            });
        } else {
            second.push(put(
                patient(&format!("p{i}"), &format!("Family{i}"), "After", "1980-05-06"),
                "Organization/gp-2",
            ));
        }
    }
    let outcomes = store.apply(second).await.unwrap();
    let effect = |i: usize| outcomes[i].effect.clone();
    assert_eq!((effect(1), outcomes[1].stored.version), (WriteEffect::Updated, 2));
    assert_eq!((effect(5), outcomes[5].stored.version), (WriteEffect::Created, 3));
    assert_eq!((effect(7), outcomes[7].stored.version), (WriteEffect::Deleted, 2));
    assert_eq!((effect(707), outcomes[707].stored.version), (WriteEffect::Unchanged, 0));
    assert_eq!((effect(650), outcomes[650].stored.version), (WriteEffect::Created, 1));
    assert_eq!(outcomes[650].stored.json().unwrap()["meta"]["versionId"], "1");
    let p1 = store.read("Patient", "p1").await.unwrap().unwrap();
    assert_eq!((p1.version, p1.custodian.as_deref()), (2, Some("Organization/gp-2")));
    assert_eq!(p1.json().unwrap()["meta"]["versionId"], "2");
    assert_eq!(
        store.read_version("Patient", "p1", 1).await.unwrap().unwrap().json().unwrap()["name"][0]["given"][0],
        "Before"
    );
    assert_eq!(search(&store, "Patient", "given=before").await.1, 0);
    // 900 written, minus the 9 deletions (p7, p107, …, p807).
    assert_eq!(search(&store, "Patient", "given=after").await.1, 891);
    assert_eq!(search(&store, "Patient", "birthdate=1980-05-06&family:exact=Family65").await.0, ["p65"]);
    assert_eq!(search(&store, "Patient", "family:exact=Family7").await.1, 0);
    assert_eq!(search(&store, "Patient", "family:exact=Family70").await.0, ["p70"]);
}

fn keys(resources: &[StoredResource]) -> Vec<String> {
    resources.iter().map(|r| format!("{}/{}", r.resource_type, r.id)).collect()
}

/// The compartment holds the patient first, then resources linked through compartment params.
pub async fn patient_compartment_holds_linked_resources(store: TestStore) {
    seed_people(&store).await;
    let page = store.patient_compartment("p1", 10, 0).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(keys(&page.entries)[0], "Patient/p1");
    let mut rest = keys(&page.entries[1..]);
    rest.sort();
    assert_eq!(rest, ["Encounter/e1", "Observation/o1"]);
    let second = store.patient_compartment("p1", 2, 2).await.unwrap();
    assert_eq!(second.entries.len(), 1);
    // The GP organisation is referenced by p1 but is not in p1's compartment.
    assert!(!keys(&page.entries).contains(&"Organization/gp-1".to_string()));
    assert_eq!(store.patient_compartment("nobody", 10, 0).await.unwrap().total, 0);
}

/// `_source` restricts any search to one custodian's resources.
pub async fn custodian_filter_lists_one_partners_data(store: TestStore) {
    seed_people(&store).await;
    let (mut ids, total) = search(&store, "Patient", "_source=Organization/hospital").await;
    ids.sort();
    assert_eq!((ids, total), (vec!["p2".to_string(), "p3".to_string()], 2));
    let params =
        vec![("_source".to_string(), "Organization/hospital".to_string()), ("_count".to_string(), "100".to_string())];
    let all_types = parse_search(None, &params, Handling::Strict).unwrap();
    let page = store.search(&all_types).await.unwrap();
    assert_eq!(page.total, 4);
    assert!(page.entries.iter().all(|r| r.custodian.as_deref() == Some("Organization/hospital")));
}

/// History lists every version, newest first, filtered by type, id and time.
pub async fn history_lists_versions_newest_first(store: TestStore) {
    seed_people(&store).await;
    store.apply(vec![put(patient("p1", "Smith", "Joe", "1971-03-14"), "Organization/gp-1")]).await.unwrap();
    store
        .apply(vec![WriteOp::Delete { resource_type: "Patient".into(), id: "p1".into(), expected_version: None }])
        .await
        .unwrap();
    let instance = store
        .history(&HistoryQuery {
            resource_type: Some("Patient".into()),
            id: Some("p1".into()),
            since: None,
            count: 10,
            offset: 0,
        })
        .await
        .unwrap();
    assert_eq!(instance.total, 3);
    assert_eq!(instance.entries.iter().map(|r| r.version).collect::<Vec<_>>(), [3, 2, 1]);
    assert!(instance.entries[0].deleted);
    let all = store
        .history(&HistoryQuery { resource_type: None, id: None, since: None, count: 100, offset: 0 })
        .await
        .unwrap();
    assert_eq!(all.total, 8);
    let patients = store
        .history(&HistoryQuery { resource_type: Some("Patient".into()), id: None, since: None, count: 2, offset: 0 })
        .await
        .unwrap();
    assert_eq!((patients.total, patients.entries.len()), (5, 2));
    let future = store
        .history(&HistoryQuery { resource_type: None, id: None, since: Some(i64::MAX / 2), count: 10, offset: 0 })
        .await
        .unwrap();
    assert_eq!(future.total, 0);
}
