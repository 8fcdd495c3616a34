//! Search over the API: parameter types, paging links, sorting, includes, counts, and the
//! strict/lenient handling of unknown parameters.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{assert_outcome, patient, TestApp, BASE};

async fn seeded() -> TestApp {
    let app = TestApp::new().await;
    app.put("/Organization/gp", &json!({"resourceType": "Organization", "id": "gp", "name": "Ashgrove Surgery"})).await;
    for (i, (family, given, born, nhs)) in [
        ("Smith", "Joseph", "1971-03-14", "9434765919"),
        ("Smyth", "Joe", "1971-03-14", "9434765870"),
        ("Jones", "Zoë", "1985-11-02", "9434765829"),
    ]
    .iter()
    .enumerate()
    {
        let mut body = patient(family, given, born, nhs);
        body["id"] = json!(format!("p{i}"));
        body["generalPractitioner"] = json!([{"reference": "Organization/gp"}]);
        assert_eq!(app.put(&format!("/Patient/p{i}"), &body).await.status, StatusCode::CREATED);
    }
    app.put(
        "/Observation/o1",
        &json!({"resourceType": "Observation", "id": "o1", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": "Patient/p0"}, "valueQuantity": {"value": 81.5, "system": "http://unitsofmeasure.org", "code": "kg"}}),
    )
    .await;
    app
}

fn ids(bundle: &Value, mode: &str) -> Vec<String> {
    let mut ids: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| {
            format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap())
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn finds_by_identifier_name_and_birth_date() {
    let app = seeded().await;
    let by_identifier = app.get("/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C9434765870").await;
    assert_eq!(by_identifier.status, StatusCode::OK, "{}", by_identifier.text);
    assert_eq!(by_identifier.body["type"], "searchset");
    assert_eq!(ids(&by_identifier.body, "match"), ["Patient/p1"]);
    assert_eq!(by_identifier.body["entry"][0]["fullUrl"], format!("{BASE}/Patient/p1"));
    assert_eq!(ids(&app.get("/Patient?family=sm&birthdate=1971-03").await.body, "match"), ["Patient/p0", "Patient/p1"]);
    assert_eq!(ids(&app.get("/Patient?name=zoe").await.body, "match"), ["Patient/p2"]);
    assert_eq!(ids(&app.get("/Patient?birthdate=ge1980-01-01").await.body, "match"), ["Patient/p2"]);
    assert_eq!(ids(&app.get("/Observation?subject=p0").await.body, "match"), ["Observation/o1"]);
    assert_eq!(
        ids(&app.get("/Observation?subject:Patient=p0&value-quantity=ge80||kg").await.body, "match"),
        ["Observation/o1"]
    );
    assert_eq!(ids(&app.get("/Observation?code=http://loinc.org%7C29463-7").await.body, "match"), ["Observation/o1"]);
    let posted = app
        .request(
            Method::POST,
            "/Patient/_search",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some("family=jones".into()),
        )
        .await;
    assert_eq!(ids(&posted.body, "match"), ["Patient/p2"]);
}

#[tokio::test]
async fn pages_follow_next_and_previous_links() {
    let app = seeded().await;
    let first = app.get("/Patient?_count=2&_sort=birthdate").await;
    assert_eq!(first.body["total"], 3);
    let link = |bundle: &Value, relation: &str| {
        bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == relation)
            .map(|l| l["url"].as_str().unwrap().to_string())
    };
    assert!(link(&first.body, "previous").is_none());
    let next = link(&first.body, "next").expect("a next link");
    assert!(next.starts_with(BASE));
    let second = app.get(next.strip_prefix(BASE).unwrap()).await;
    assert_eq!(ids(&second.body, "match"), ["Patient/p2"]);
    assert!(link(&second.body, "next").is_none());
    assert!(link(&second.body, "previous").is_some());
    let count = app.get("/Patient?_summary=count").await;
    assert_eq!((count.body["total"].as_u64(), count.body.get("entry")), (Some(3), None));
}

#[tokio::test]
async fn includes_and_revincludes_are_marked_as_such() {
    let app = seeded().await;
    let included = app.get("/Observation?_include=Observation:subject").await;
    assert_eq!(ids(&included.body, "match"), ["Observation/o1"]);
    assert_eq!(ids(&included.body, "include"), ["Patient/p0"]);
    assert_eq!(included.body["total"], 1, "included resources do not count as matches");
    let rev = app.get("/Patient?_id=p0&_revinclude=Observation:subject").await;
    assert_eq!(ids(&rev.body, "include"), ["Observation/o1"]);
    let gp = app.get("/Patient?family=smith&_include=Patient:general-practitioner").await;
    assert_eq!(ids(&gp.body, "include"), ["Organization/gp"]);
}

#[tokio::test]
async fn elements_and_summary_reduce_resources() {
    let app = seeded().await;
    let reduced = app.get("/Patient?_id=p0&_elements=birthDate").await;
    let resource = &reduced.body["entry"][0]["resource"];
    assert_eq!(resource["birthDate"], "1971-03-14");
    assert!(resource.get("name").is_none());
    assert_eq!(resource["meta"]["tag"][0]["code"], "SUBSETTED");
}

#[tokio::test]
async fn unknown_parameters_are_refused_unless_lenient() {
    let app = seeded().await;
    assert_outcome(
        &app.get("/Patient?shoe-size=9").await,
        StatusCode::BAD_REQUEST,
        Some("shoe-size"),
        "unknown search parameter",
    );
    let lenient =
        app.request(Method::GET, "/Patient?shoe-size=9&family=jones", &[("prefer", "handling=lenient")], None).await;
    assert_eq!(lenient.status, StatusCode::OK);
    assert_eq!(ids(&lenient.body, "match"), ["Patient/p2"]);
    let outcome = lenient.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .expect("an outcome entry");
    assert!(outcome["resource"]["issue"][0]["diagnostics"].as_str().unwrap().contains("shoe-size"));
    assert_outcome(&app.get("/Patient?general-practitioner.name=x").await, StatusCode::BAD_REQUEST, None, "chained");
    assert_outcome(&app.get("/Patient?family:sounds-like=x").await, StatusCode::BAD_REQUEST, None, "modifier");
}

#[tokio::test]
async fn system_search_filters_by_custodian() {
    let app = seeded().await;
    app.seed_partner("hospital", "acute").await;
    let hospital = TestApp::bearer(&app.token(TestApp::system_request("Organization/hospital")));
    let stored = app
        .request(
            Method::PUT,
            "/Patient/hx",
            &[("authorization", hospital.as_str())],
            Some(json!({"resourceType": "Patient", "id": "hx"}).to_string()),
        )
        .await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text);
    let listed = app
        .request(Method::GET, "/?_source=Organization/hospital", &[("authorization", hospital.as_str())], None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(ids(&listed.body, "match"), ["Patient/hx"]);
    assert_outcome(
        &app.get("/?family=smith").await,
        StatusCode::BAD_REQUEST,
        Some("family"),
        "unknown search parameter",
    );
}
