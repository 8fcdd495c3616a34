//! Bad input never loses data and never answers 500: each kind of caller mistake gets a 4xx
//! `OperationOutcome` saying what and where, and nothing is stored.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{assert_outcome, patient, TestApp};

#[tokio::test]
async fn malformed_json_is_refused() {
    let app = TestApp::new().await;
    let response = app.request(Method::POST, "/Patient", &[], Some("{\"resourceType\": \"Patient\", ".into())).await;
    assert_outcome(&response, StatusCode::BAD_REQUEST, None, "not valid JSON");
    assert_outcome(
        &app.request(Method::POST, "/Patient", &[], Some("[1, 2]".into())).await,
        StatusCode::BAD_REQUEST,
        None,
        "JSON object",
    );
    assert_outcome(
        &app.request(Method::POST, "/Patient", &[], Some("  ".into())).await,
        StatusCode::BAD_REQUEST,
        None,
        "no body",
    );
    assert_eq!(app.count("Patient").await, 0);
}

#[tokio::test]
async fn wrong_or_unknown_resource_types_are_refused() {
    let app = TestApp::new().await;
    assert_outcome(
        &app.post("/Patient", &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})).await,
        StatusCode::BAD_REQUEST,
        Some("Observation.resourceType"),
        "URL is for Patient",
    );
    assert_outcome(
        &app.post("/Patient", &json!({"resourceType": "Pateint"})).await,
        StatusCode::BAD_REQUEST,
        Some("resourceType"),
        "not an R4 resource type",
    );
    assert_outcome(
        &app.post("/Patient", &json!({"name": [{"family": "x"}]})).await,
        StatusCode::BAD_REQUEST,
        Some("resourceType"),
        "no resourceType",
    );
    assert_outcome(
        &app.post("/Pateint", &json!({"resourceType": "Pateint"})).await,
        StatusCode::NOT_FOUND,
        None,
        "not an R4 resource type",
    );
    assert_outcome(&app.get("/Pateint?name=x").await, StatusCode::NOT_FOUND, None, "not an R4 resource type");
    assert_eq!(app.count("Patient").await, 0);
}

#[tokio::test]
async fn an_id_that_differs_from_the_url_is_refused() {
    let app = TestApp::new().await;
    assert_outcome(
        &app.put("/Patient/p1", &json!({"resourceType": "Patient", "id": "p2"})).await,
        StatusCode::BAD_REQUEST,
        Some("Patient.id"),
        "differs",
    );
    assert_outcome(
        &app.put("/Patient/p1", &json!({"resourceType": "Patient"})).await,
        StatusCode::BAD_REQUEST,
        Some("Patient.id"),
        "must carry the id",
    );
    assert_outcome(
        &app.put("/Patient/bad_id!", &json!({"resourceType": "Patient", "id": "bad_id!"})).await,
        StatusCode::BAD_REQUEST,
        None,
        "not a valid id",
    );
    assert_eq!(app.count("Patient").await, 0);
}

#[tokio::test]
async fn invalid_content_is_located_precisely() {
    let app = TestApp::new().await;
    let mut body = patient("Smith", "Joe", "1971-13-45", "1");
    body["shoeSize"] = json!(9);
    let response = app.post("/Patient", &body).await;
    assert_outcome(&response, StatusCode::BAD_REQUEST, Some("Patient.birthDate"), "1971-13-45");
    assert_outcome(&response, StatusCode::BAD_REQUEST, Some("Patient.shoeSize"), "shoeSize");
    assert_outcome(
        &app.post("/Patient", &json!({"resourceType": "Patient", "active": "yes"})).await,
        StatusCode::BAD_REQUEST,
        Some("Patient.active"),
        "",
    );
    assert_outcome(
        &app.post("/Patient", &json!({"resourceType": "Patient", "name": [{"family": ""}]})).await,
        StatusCode::BAD_REQUEST,
        Some("Patient.name[0].family"),
        "",
    );
    assert_eq!(app.count("Patient").await, 0);
}

#[tokio::test]
async fn invalid_search_values_are_refused() {
    let app = TestApp::new().await;
    assert_outcome(
        &app.get("/Patient?birthdate=14/03/1971").await,
        StatusCode::BAD_REQUEST,
        Some("birthdate"),
        "not a valid FHIR date",
    );
    assert_outcome(
        &app.get("/Patient?birthdate=ge2021-02-30").await,
        StatusCode::BAD_REQUEST,
        Some("birthdate"),
        "2021-02-30",
    );
    assert_outcome(
        &app.get("/Patient?identifier=a%7Cb%7Cc").await,
        StatusCode::BAD_REQUEST,
        Some("identifier"),
        "not a valid token",
    );
    assert_outcome(
        &app.get("/Patient?_count=lots").await,
        StatusCode::BAD_REQUEST,
        Some("_count"),
        "non-negative integer",
    );
    assert_outcome(
        &app.get("/Observation?value-quantity=heavy").await,
        StatusCode::BAD_REQUEST,
        Some("value-quantity"),
        "not a number",
    );
    assert_outcome(
        &app.get("/Patient?general-practitioner=Nonsense/1").await,
        StatusCode::BAD_REQUEST,
        Some("general-practitioner"),
        "not a resource type",
    );
    assert_outcome(&app.get("/Patient?_sort=shoe-size").await, StatusCode::BAD_REQUEST, Some("_sort"), "cannot sort");
    assert_outcome(
        &app.get("/Patient?_include=Patient:name").await,
        StatusCode::BAD_REQUEST,
        Some("_include"),
        "not a reference parameter",
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = TestApp::with_limit(2_000).await;
    let mut body = patient("Smith", "Joe", "1971-03-14", "1");
    body["name"][0]["text"] = json!("x".repeat(5_000));
    assert_outcome(&app.post("/Patient", &body).await, StatusCode::PAYLOAD_TOO_LARGE, None, "limit of 2000 bytes");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": body, "request": {"method": "POST", "url": "Patient"}}]});
    assert_outcome(&app.post("/", &bundle).await, StatusCode::PAYLOAD_TOO_LARGE, None, "limit");
    assert_eq!(app.count("Patient").await, 0);
}

#[tokio::test]
async fn wrong_media_types_methods_routes_and_headers_are_refused() {
    let app = TestApp::new().await;
    let xml = app
        .request(
            Method::POST,
            "/Patient",
            &[("content-type", "application/fhir+xml")],
            Some("<Patient xmlns=\"http://hl7.org/fhir\"/>".into()),
        )
        .await;
    assert_outcome(&xml, StatusCode::UNSUPPORTED_MEDIA_TYPE, None, "application/fhir+json");
    assert_outcome(
        &app.request(Method::PATCH, "/Patient/p1", &[], Some("{}".into())).await,
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "not allowed",
    );
    assert_outcome(&app.get("/Patient/p1/_history/1/extra").await, StatusCode::NOT_FOUND, None, "nothing is served");
    let bad_etag = app
        .request(
            Method::PUT,
            "/Patient/p1",
            &[("if-match", "yesterday")],
            Some(json!({"resourceType": "Patient", "id": "p1"}).to_string()),
        )
        .await;
    assert_outcome(&bad_etag, StatusCode::BAD_REQUEST, Some("If-Match"), "not an ETag");
    let bad_condition = app
        .request(
            Method::POST,
            "/Patient",
            &[("if-none-exist", "shoe-size=9")],
            Some(json!({"resourceType": "Patient"}).to_string()),
        )
        .await;
    assert_outcome(&bad_condition, StatusCode::BAD_REQUEST, Some("shoe-size"), "unknown search parameter");
    assert_eq!(app.count("Patient").await, 0);
}
