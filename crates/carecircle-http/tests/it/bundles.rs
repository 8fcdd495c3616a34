//! Batch and transaction Bundles: reference resolution, all-or-nothing transactions, and
//! independent batch entries.

use axum::http::StatusCode;
use serde_json::json;

use crate::{assert_outcome, TestApp};

fn transaction(entries: serde_json::Value) -> serde_json::Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

#[tokio::test]
async fn a_transaction_resolves_urn_uuid_references() {
    let app = TestApp::new().await;
    let bundle = transaction(json!([
        {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
         "resource": {"resourceType": "Patient", "name": [{"family": "Smith"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:88f151c0-a954-468a-88ce-1c4c5d5a2a61",
         "resource": {"resourceType": "Encounter", "status": "finished", "class": {"code": "EMER"},
                      "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
         "request": {"method": "POST", "url": "Encounter"}},
        {"resource": {"resourceType": "Patient", "id": "known", "active": true}, "request": {"method": "PUT", "url": "Patient/known"}},
        {"request": {"method": "GET", "url": "Patient/known"}}
    ]));
    let response = app.post("/", &bundle).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["type"], "transaction-response");
    let entries = response.body["entry"].as_array().unwrap();
    assert_eq!(entries[0]["response"]["status"], "201 Created");
    let patient_location = entries[0]["response"]["location"].as_str().unwrap();
    let patient_id = patient_location.split('/').nth(1).unwrap();
    let encounter_location = entries[1]["response"]["location"].as_str().unwrap();
    let encounter = app.get(&format!("/{}", encounter_location.split("/_history").next().unwrap())).await;
    assert_eq!(encounter.body["subject"]["reference"], format!("Patient/{patient_id}"));
    assert_eq!(entries[3]["resource"]["active"], true, "reads see the transaction's writes");
}

#[tokio::test]
async fn a_transaction_with_one_bad_entry_stores_nothing() {
    let app = TestApp::new().await;
    let bundle = transaction(json!([
        {"resource": {"resourceType": "Patient", "name": [{"family": "Good"}]}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "birthDate": "1971-02-31"}, "request": {"method": "POST", "url": "Patient"}}
    ]));
    let response = app.post("/", &bundle).await;
    assert_outcome(&response, StatusCode::BAD_REQUEST, Some("Bundle.entry[1].resource.birthDate"), "1971-02-31");
    assert_eq!(app.count("Patient").await, 0);

    let dangling = transaction(json!([
        {"resource": {"resourceType": "Encounter", "status": "finished", "class": {"code": "EMER"}, "subject": {"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"}},
         "request": {"method": "POST", "url": "Encounter"}}
    ]));
    assert_outcome(
        &app.post("/", &dangling).await,
        StatusCode::BAD_REQUEST,
        Some("Bundle.entry[0].resource.subject.reference"),
        "matches no entry",
    );
    assert_eq!(app.count("Encounter").await, 0);
}

#[tokio::test]
async fn a_transaction_rolls_back_on_a_version_conflict() {
    let app = TestApp::new().await;
    app.put("/Patient/p1", &json!({"resourceType": "Patient", "id": "p1"})).await;
    let bundle = transaction(json!([
        {"resource": {"resourceType": "Patient", "name": [{"family": "New"}]}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "id": "p1", "active": false}, "request": {"method": "PUT", "url": "Patient/p1", "ifMatch": "W/\"4\""}}
    ]));
    assert_outcome(
        &app.post("/", &bundle).await,
        StatusCode::PRECONDITION_FAILED,
        Some("Bundle.entry[1].request"),
        "expected version 4",
    );
    assert_eq!(app.count("Patient").await, 1);
    assert!(app.get("/Patient/p1").await.body.get("active").is_none());
}

#[tokio::test]
async fn a_transaction_refuses_two_writes_to_one_resource_and_bad_requests() {
    let app = TestApp::new().await;
    let twice = transaction(json!([
        {"resource": {"resourceType": "Patient", "id": "p1"}, "request": {"method": "PUT", "url": "Patient/p1"}},
        {"resource": {"resourceType": "Patient", "id": "p1"}, "request": {"method": "PUT", "url": "Patient/p1"}}
    ]));
    assert_outcome(
        &app.post("/", &twice).await,
        StatusCode::BAD_REQUEST,
        Some("Bundle.entry[1].request.url"),
        "more than one entry",
    );
    let no_method = transaction(json!([{"resource": {"resourceType": "Patient"}, "request": {"url": "Patient"}}]));
    assert_outcome(
        &app.post("/", &no_method).await,
        StatusCode::BAD_REQUEST,
        Some("Bundle.entry[0].request.method"),
        "method",
    );
    let bad_url = transaction(
        json!([{"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Nonsense"}}]),
    );
    assert_outcome(
        &app.post("/", &bad_url).await,
        StatusCode::BAD_REQUEST,
        Some("Bundle.entry[0].request.url"),
        "resource type",
    );
    let collection = json!({"resourceType": "Bundle", "type": "collection"});
    assert_outcome(
        &app.post("/", &collection).await,
        StatusCode::BAD_REQUEST,
        Some("Bundle.type"),
        "batch and transaction",
    );
    assert_eq!(app.count("Patient").await, 0);
}

#[tokio::test]
async fn conditional_entries_in_a_transaction() {
    let app = TestApp::new().await;
    app.put(
        "/Patient/p1",
        &json!({"resourceType": "Patient", "id": "p1", "identifier": [{"system": "urn:x", "value": "1"}]}),
    )
    .await;
    let bundle = transaction(json!([
        {"fullUrl": "urn:uuid:5b0b2b9e-7c35-4f87-8e8d-7b1d3c5a9e01", "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "1"}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:x|1"}},
        {"resource": {"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"}, "subject": {"reference": "urn:uuid:5b0b2b9e-7c35-4f87-8e8d-7b1d3c5a9e01"}},
         "request": {"method": "POST", "url": "Encounter"}},
        {"resource": {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "2"}], "active": true},
         "request": {"method": "PUT", "url": "Patient?identifier=urn:x|2"}}
    ]));
    let response = app.post("/", &bundle).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["entry"][0]["response"]["status"], "200 OK");
    let encounters = app.get("/Encounter?subject=Patient/p1").await;
    assert_eq!(encounters.body["total"], 1, "the reference resolved to the existing patient");
    assert_eq!(app.count("Patient").await, 2);
}

#[tokio::test]
async fn a_batch_runs_each_entry_on_its_own() {
    let app = TestApp::new().await;
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Fine"}]}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "gender": 12}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/missing"}},
        {"request": {"method": "GET", "url": "Patient?family=fine"}}
    ]});
    let response = app.post("/", &bundle).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["type"], "batch-response");
    let entries = response.body["entry"].as_array().unwrap();
    assert_eq!(entries[0]["response"]["status"], "201 Created");
    assert_eq!(entries[1]["response"]["status"], "400 Bad Request");
    assert_eq!(entries[1]["response"]["outcome"]["issue"][0]["expression"][0], "Bundle.entry[1].resource.gender");
    assert_eq!(entries[2]["response"]["status"], "404 Not Found");
    assert_eq!(entries[3]["resource"]["total"], 1);
    assert_eq!(app.count("Patient").await, 1);
}

#[tokio::test]
async fn one_failing_write_in_a_batch_leaves_the_others_stored() {
    let app = TestApp::new().await;
    app.put("/Patient/p1", &json!({"resourceType": "Patient", "id": "p1"})).await;
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p2", "active": true}, "request": {"method": "PUT", "url": "Patient/p2"}},
        {"resource": {"resourceType": "Patient", "id": "p1", "active": false}, "request": {"method": "PUT", "url": "Patient/p1", "ifMatch": "W/\"7\""}},
        {"resource": {"resourceType": "Patient", "name": [{"family": "Posted"}]}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "id": "p2", "active": false}, "request": {"method": "PUT", "url": "Patient/p2"}},
        {"request": {"method": "DELETE", "url": "Patient/absent"}}
    ]});
    let response = app.post("/", &bundle).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let statuses: Vec<&str> =
        response.body["entry"].as_array().unwrap().iter().map(|e| e["response"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["201 Created", "412 Precondition Failed", "201 Created", "200 OK", "204 No Content"]);
    assert_eq!(app.count("Patient").await, 3);
    let p2 = app.get("/Patient/p2").await;
    assert_eq!((p2.body["active"].as_bool(), p2.body["meta"]["versionId"].as_str()), (Some(false), Some("2")));
    assert!(app.get("/Patient/p1").await.body.get("active").is_none());
}
