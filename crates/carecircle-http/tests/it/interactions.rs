//! Create, read, vread, update with optimistic locking, delete, history, conditional create,
//! custodianship, `$everything`, metadata, health and metrics.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{assert_outcome, patient, TestApp, BASE};

#[tokio::test]
async fn create_assigns_an_id_and_answers_with_location_and_etag() {
    let app = TestApp::new().await;
    let mut body = patient("Smith", "Joseph", "1971-03-14", "9434765919");
    body["id"] = json!("client-chosen");
    let created = app.post("/Patient", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_ne!(id, "client-chosen", "POST ignores a client id");
    assert_eq!(created.headers["etag"], "W/\"1\"");
    assert_eq!(created.headers["location"].to_str().unwrap(), format!("{BASE}/Patient/{id}/_history/1"));
    assert!(created.headers.contains_key("last-modified"));
    assert_eq!(created.body["meta"]["versionId"], "1");
    let read = app.get(&format!("/Patient/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created.body);
    assert_eq!(read.headers["content-type"], "application/fhir+json; charset=utf-8");
}

#[tokio::test]
async fn every_write_records_its_custodian() {
    let app = TestApp::new().await;
    app.seed_partner("gp-ashgrove", "primary-care").await;
    let by_default = app.post("/Patient", &patient("A", "B", "1990-01-01", "1")).await;
    assert_eq!(by_default.body["meta"]["source"], "Organization/partnership");
    // A partner's system writes as its organisation.
    let gp = TestApp::bearer(&app.token(TestApp::system_request("Organization/gp-ashgrove")));
    let by_gp = app
        .request(
            Method::POST,
            "/Patient",
            &[("authorization", gp.as_str())],
            Some(patient("C", "D", "1990-01-01", "2").to_string()),
        )
        .await;
    assert_eq!(by_gp.status, StatusCode::CREATED, "{}", by_gp.text);
    assert_eq!(by_gp.body["meta"]["source"], "Organization/gp-ashgrove");
    // Nobody but the administrator may name another custodian, and the administrator only
    // with a real Organization reference.
    let impostor = app
        .request(
            Method::POST,
            "/Patient",
            &[("x-custodian", "Organization/gp-ashgrove")],
            Some(patient("G", "H", "1990-01-01", "4").to_string()),
        )
        .await;
    assert_outcome(&impostor, StatusCode::FORBIDDEN, Some("X-Custodian"), "own organisation");
    let admin = TestApp::bearer(&app.admin_token());
    let refused = app
        .request(
            Method::POST,
            "/Patient",
            &[("x-custodian", "Practitioner/1"), ("authorization", admin.as_str())],
            Some(patient("E", "F", "1990-01-01", "3").to_string()),
        )
        .await;
    assert_outcome(&refused, StatusCode::BAD_REQUEST, Some("X-Custodian"), "custodian");
    assert_eq!(app.count("Patient").await, 1, "the partnership sees its own Patient only");

    let listed = app
        .request(Method::GET, "/Patient?_source=Organization/gp-ashgrove", &[("authorization", gp.as_str())], None)
        .await;
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["entry"][0]["resource"]["name"][0]["family"], "C");
    // A partner's data exported as that partner's alone, by the partner itself.
    let export = app
        .request(Method::GET, "/Organization/gp-ashgrove/$custodian-export", &[("authorization", gp.as_str())], None)
        .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text);
    assert_eq!(export.headers["content-type"], "application/fhir+ndjson");
    let lines: Vec<serde_json::Value> = export.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert!(lines.iter().all(|r| r["meta"]["source"] == "Organization/gp-ashgrove"));
    // Another partner may not export it.
    let other = app.get("/Organization/gp-ashgrove/$custodian-export").await;
    assert_outcome(&other, StatusCode::FORBIDDEN, None, "only the partner itself");
}

#[tokio::test]
async fn update_is_versioned_and_refuses_stale_if_match() {
    let app = TestApp::new().await;
    let created = app.put("/Patient/p1", &json!({"resourceType": "Patient", "id": "p1", "gender": "male"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let updated = app
        .request(
            Method::PUT,
            "/Patient/p1",
            &[("if-match", "W/\"1\"")],
            Some(json!({"resourceType": "Patient", "id": "p1", "gender": "female"}).to_string()),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.headers["etag"], "W/\"2\"");
    let stale = app
        .request(
            Method::PUT,
            "/Patient/p1",
            &[("if-match", "W/\"1\"")],
            Some(json!({"resourceType": "Patient", "id": "p1", "gender": "other"}).to_string()),
        )
        .await;
    assert_outcome(&stale, StatusCode::PRECONDITION_FAILED, None, "version 2");
    assert_eq!(app.get("/Patient/p1").await.body["gender"], "female");
    let v1 = app.get("/Patient/p1/_history/1").await;
    assert_eq!((v1.status, v1.body["gender"].as_str()), (StatusCode::OK, Some("male")));
    assert_eq!(app.get("/Patient/p1/_history/9").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/Patient/p1/_history/x").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delete_answers_gone_and_history_keeps_every_version() {
    let app = TestApp::new().await;
    app.put("/Patient/p1", &json!({"resourceType": "Patient", "id": "p1"})).await;
    app.put("/Patient/p1", &json!({"resourceType": "Patient", "id": "p1", "active": true})).await;
    let deleted = app.request(Method::DELETE, "/Patient/p1", &[], None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_outcome(&app.get("/Patient/p1").await, StatusCode::GONE, None, "deleted");
    assert_eq!(app.request(Method::DELETE, "/Patient/p1", &[], None).await.status, StatusCode::NO_CONTENT);
    let history = app.get("/Patient/p1/_history").await;
    assert_eq!(history.body["type"], "history");
    assert_eq!(history.body["total"], 3);
    let methods: Vec<&str> =
        history.body["entry"].as_array().unwrap().iter().map(|e| e["request"]["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["DELETE", "PUT", "POST"]);
    assert_eq!(app.get("/Patient/_history").await.body["total"], 3);
    assert_eq!(app.get("/_history?_count=1").await.body["entry"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/Patient/nobody/_history").await.status, StatusCode::NOT_FOUND);
    assert_outcome(&app.get("/_history?_since=yesterday").await, StatusCode::BAD_REQUEST, Some("_since"), "instant");
}

#[tokio::test]
async fn conditional_create_finds_existing_matches() {
    let app = TestApp::new().await;
    let body = patient("Smith", "Joseph", "1971-03-14", "9434765919").to_string();
    let condition = [("if-none-exist", "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919")];
    let first = app.request(Method::POST, "/Patient", &condition, Some(body.clone())).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = app.request(Method::POST, "/Patient", &condition, Some(body.clone())).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(app.count("Patient").await, 1);
    app.post("/Patient", &patient("Smith", "Joe", "1971-03-14", "9434765919")).await;
    let ambiguous = app.request(Method::POST, "/Patient", &condition, Some(body)).await;
    assert_outcome(&ambiguous, StatusCode::PRECONDITION_FAILED, Some("If-None-Exist"), "matches 2");
    assert_eq!(app.count("Patient").await, 2);
}

#[tokio::test]
async fn everything_returns_the_patient_compartment_in_pages() {
    let app = TestApp::new().await;
    app.put("/Patient/joe", &json!({"resourceType": "Patient", "id": "joe"})).await;
    app.put("/Patient/other", &json!({"resourceType": "Patient", "id": "other"})).await;
    for i in 0..5 {
        app.post("/Encounter", &json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "EMER"}, "subject": {"reference": "Patient/joe"}, "id": format!("{i}")}))
            .await;
    }
    app.post("/Encounter", &json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "EMER"}, "subject": {"reference": "Patient/other"}})).await;
    let page = app.get("/Patient/joe/$everything?_count=4").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["total"], 6);
    assert_eq!(page.body["entry"][0]["resource"]["id"], "joe");
    let next = page.body["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let second = app.get(next.strip_prefix(BASE).unwrap()).await;
    assert_eq!(second.body["entry"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/Patient/nobody/$everything").await.status, StatusCode::NOT_FOUND);
    assert_outcome(
        &app.get("/Patient/joe/$everything?start=2020").await,
        StatusCode::BAD_REQUEST,
        Some("start"),
        "not support",
    );
    assert_eq!(app.get("/Patient/joe/$unknown-op").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metadata_lists_what_is_supported() {
    let app = TestApp::new().await;
    let metadata = app.get("/metadata").await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(metadata.body["resourceType"], "CapabilityStatement");
    assert_eq!(metadata.body["fhirVersion"], "4.0.1");
    let resources = metadata.body["rest"][0]["resource"].as_array().unwrap();
    assert_eq!(resources.len(), 147);
    let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
    let params: Vec<&str> =
        patient["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(params.contains(&"birthdate") && params.contains(&"identifier") && params.contains(&"_lastUpdated"));
    assert!(!params.contains(&"_text"), "unsupported parameters are not advertised");
    let observation = resources.iter().find(|r| r["type"] == "Observation").unwrap();
    assert!(observation["searchParam"].as_array().unwrap().iter().all(|p| p["type"] != "composite"));
    assert_eq!(patient["operation"][0]["name"], "everything");
}

#[tokio::test]
async fn health_and_metrics_are_served() {
    let app = TestApp::new().await;
    let health = app.get("/healthz").await;
    assert_eq!((health.status, health.body["status"].as_str()), (StatusCode::OK, Some("ok")));
    app.get("/Patient/x").await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.text.contains("http_requests_total"), "{}", metrics.text);
    assert!(metrics.text.contains("route=\"/{resource_type}/{id}\""));
    assert!(!metrics.text.contains("Patient/x"), "metrics carry route templates, not paths");
}
