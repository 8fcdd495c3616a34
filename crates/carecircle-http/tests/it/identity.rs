//! The person index at the API: `Patient/$match` and `Patient/$ihe-pix` answer across partners,
//! only with Patients the caller may read, and see Patients written after the index was loaded.

use axum::http::{Method, StatusCode};
use carecircle_access::codes::Purpose;
use carecircle_access::demo_support::{AgreementSpec, ClauseSpec};
use serde_json::{json, Value};

use crate::{assert_outcome, TestApp, TestResponse, PARTNERSHIP};

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
const HOSPITAL_MRN: &str = "https://hospital.example/mrn";
const GP_ID: &str = "https://gp.example/id";
const HOUSING_ID: &str = "https://housing.example/tenant";

fn joe(id: &str, identifiers: Value) -> Value {
    json!({"resourceType": "Patient", "id": id, "identifier": identifiers, "gender": "male",
           "name": [{"family": "Bloggs", "given": ["Joe"]}], "birthDate": "1971-03-14"})
}

/// The hospital and the GP share Patients for direct care; housing has no agreement. Joe is
/// known to all three (the hospital and the GP with his NHS number), Ann only to the GP.
/// Visibility across partners needs both the agreement and the care relationship.
async fn partnership() -> TestApp {
    let app = TestApp::new().await;
    for (id, sector) in [("hospital", "acute"), ("gp", "primary-care"), ("housing", "housing")] {
        app.seed_partner(id, sector).await;
    }
    let agreement = AgreementSpec::active(
        "dsa-health",
        "Direct care between the hospital and the GP",
        &["hospital", "gp"],
        "2024-01-01",
        None,
        vec![ClauseSpec::new("treat", Purpose::Treat, &["hospital", "gp"], &["Patient"])],
    )
    .to_contract();
    app.seed(PARTNERSHIP, agreement).await;
    app.seed(
        "Organization/hospital",
        joe("h-joe", json!([{"system": HOSPITAL_MRN, "value": "H123"}, {"system": NHS, "value": "9434765919"}])),
    )
    .await;
    app.seed(
        "Organization/gp",
        joe("g-joe", json!([{"system": GP_ID, "value": "G9"}, {"system": NHS, "value": "9434765919"}])),
    )
    .await;
    // The hospital is in the care team the GP keeps for Joe (the care relationship the
    // agreement's clause needs); housing is in none.
    app.seed(
        "Organization/gp",
        json!({"resourceType": "CareTeam", "id": "team-g-joe", "status": "active",
               "subject": {"reference": "Patient/g-joe"},
               "participant": [{"member": {"reference": "Organization/hospital"}}]}),
    )
    .await;
    app.seed("Organization/housing", joe("x-joe", json!([{"system": HOUSING_ID, "value": "T5"}]))).await;
    app.seed(
        "Organization/gp",
        json!({"resourceType": "Patient", "id": "g-ann", "name": [{"family": "Lee", "given": ["Ann"]}],
               "birthDate": "1980-01-01", "gender": "female"}),
    )
    .await;
    app
}

fn system(app: &TestApp, organisation: &str) -> String {
    TestApp::bearer(&app.token(TestApp::system_request(organisation)))
}

fn match_request(patient: Value, extra: Value) -> String {
    let mut parameters = vec![json!({"name": "resource", "resource": patient})];
    if let Value::Array(extra) = extra {
        parameters.extend(extra);
    }
    json!({"resourceType": "Parameters", "parameter": parameters}).to_string()
}

async fn post_as(app: &TestApp, bearer: &str, uri: &str, body: String) -> TestResponse {
    app.request(Method::POST, uri, &[("authorization", bearer)], Some(body)).await
}

async fn get_as(app: &TestApp, bearer: &str, uri: &str) -> TestResponse {
    app.request(Method::GET, uri, &[("authorization", bearer)], None).await
}

fn matched_ids(bundle: &Value) -> Vec<String> {
    let mut ids: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

fn query_joe() -> Value {
    json!({"resourceType": "Patient", "name": [{"family": "Bloggs", "given": ["Joe"]}], "birthDate": "1971-03-14",
           "gender": "male"})
}

#[tokio::test]
async fn match_finds_the_person_at_every_partner_the_caller_may_see() {
    let app = partnership().await;
    let hospital = system(&app, "Organization/hospital");
    let response = post_as(&app, &hospital, "/Patient/$match", match_request(query_joe(), json!([]))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["type"], "searchset");
    assert_eq!(matched_ids(&response.body), ["g-joe", "h-joe"], "housing's record is withheld: {}", response.text);
    for entry in response.body["entry"].as_array().expect("entries") {
        assert_eq!(entry["search"]["mode"], "match");
        assert!(entry["search"]["score"].as_f64().is_some_and(|s| s > 0.99), "{entry}");
        assert_eq!(entry["search"]["extension"][0]["url"], "http://hl7.org/fhir/StructureDefinition/match-grade");
        assert_eq!(entry["search"]["extension"][0]["valueCode"], "certain");
    }
    // Housing has no agreement: it sees only its own record of Joe.
    let housing = system(&app, "Organization/housing");
    let response = post_as(&app, &housing, "/Patient/$match", match_request(query_joe(), json!([]))).await;
    assert_eq!(matched_ids(&response.body), ["x-joe"], "{}", response.text);
    // Someone else is not proposed.
    let nobody = json!({"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Chidi"]}], "birthDate": "2001-07-07"});
    let response = post_as(&app, &hospital, "/Patient/$match", match_request(nobody, json!([]))).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(matched_ids(&response.body).is_empty(), "{}", response.text);
    // count limits the answer.
    let response = post_as(
        &app,
        &hospital,
        "/Patient/$match",
        match_request(
            query_joe(),
            json!([{"name": "count", "valueInteger": 1}, {"name": "onlyCertainMatches", "valueBoolean": true}]),
        ),
    )
    .await;
    assert_eq!(response.body["entry"].as_array().map(Vec::len), Some(1), "{}", response.text);
}

#[tokio::test]
async fn the_person_is_persisted_as_one_linkage() {
    let app = partnership().await;
    let hospital = system(&app, "Organization/hospital");
    let response = post_as(&app, &hospital, "/Patient/$match", match_request(query_joe(), json!([]))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let linkages = app.get("/Linkage?item=Patient/g-joe").await;
    assert_eq!(linkages.body["total"], 1, "{}", linkages.text);
    let linkage = &linkages.body["entry"][0]["resource"];
    assert!(linkage["id"].as_str().is_some_and(|id| id.starts_with("person-")), "{linkage}");
    let mut items: Vec<&str> =
        linkage["item"].as_array().expect("items").iter().filter_map(|i| i["resource"]["reference"].as_str()).collect();
    items.sort();
    assert_eq!(items, ["Patient/g-joe", "Patient/h-joe", "Patient/x-joe"]);
    let ann = app.get("/Linkage?item=Patient/g-ann").await;
    assert_eq!(ann.body["total"], 1);
    assert_eq!(ann.body["entry"][0]["resource"]["item"].as_array().map(Vec::len), Some(1), "Ann is her own person");
}

#[tokio::test]
async fn a_patient_written_after_loading_is_matched() {
    let app = partnership().await;
    let hospital = system(&app, "Organization/hospital");
    let first = post_as(&app, &hospital, "/Patient/$match", match_request(query_joe(), json!([]))).await;
    assert_eq!(matched_ids(&first.body), ["g-joe", "h-joe"]);
    let created = app
        .request(
            Method::PUT,
            "/Patient/h-joe-2",
            &[("authorization", hospital.as_str())],
            Some(joe("h-joe-2", json!([{"system": HOSPITAL_MRN, "value": "H124"}])).to_string()),
        )
        .await;
    assert!(created.status.is_success(), "{}", created.text);
    let again = post_as(&app, &hospital, "/Patient/$match", match_request(query_joe(), json!([]))).await;
    assert_eq!(matched_ids(&again.body), ["g-joe", "h-joe", "h-joe-2"], "{}", again.text);
}

/// Real-time matching: once the index is loaded, a Patient written over the API, on its own or
/// in a transaction Bundle, is in its person's `Linkage` when the write is answered, with no
/// identity request in between.
#[tokio::test]
async fn a_patient_write_is_linked_before_it_is_answered() {
    let app = partnership().await;
    let hospital = system(&app, "Organization/hospital");
    let loaded = post_as(&app, &hospital, "/Patient/$match", match_request(query_joe(), json!([]))).await;
    assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.text);
    let person_of = |linkages: &Value| linkages["entry"][0]["resource"]["id"].as_str().map(str::to_string);
    let joe_person = person_of(&app.get("/Linkage?item=Patient/g-joe").await.body).expect("Joe is linked");

    let created = app
        .request(
            Method::PUT,
            "/Patient/h-joe-3",
            &[("authorization", hospital.as_str())],
            Some(joe("h-joe-3", json!([{"system": NHS, "value": "9434765919"}])).to_string()),
        )
        .await;
    assert!(created.status.is_success(), "{}", created.text);
    let linked = app.get("/Linkage?item=Patient/h-joe-3").await;
    assert_eq!(linked.body["total"], 1, "{}", linked.text);
    assert_eq!(person_of(&linked.body), Some(joe_person.clone()), "the same NHS number joins Joe at once");

    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": joe("h-joe-4", json!([{"system": NHS, "value": "9434765919"}])),
        "request": {"method": "PUT", "url": "Patient/h-joe-4"}}]});
    let answered = post_as(&app, &hospital, "/", bundle.to_string()).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.text);
    let linked = app.get("/Linkage?item=Patient/h-joe-4").await;
    assert_eq!(person_of(&linked.body), Some(joe_person), "{}", linked.text);
}

#[tokio::test]
async fn match_refuses_bad_input() {
    let app = partnership().await;
    let hospital = system(&app, "Organization/hospital");
    let not_parameters = post_as(&app, &hospital, "/Patient/$match", query_joe().to_string()).await;
    assert_outcome(&not_parameters, StatusCode::BAD_REQUEST, None, "Parameters");
    let no_resource = post_as(
        &app,
        &hospital,
        "/Patient/$match",
        json!({"resourceType": "Parameters", "parameter": [{"name": "count", "valueInteger": 3}]}).to_string(),
    )
    .await;
    assert_outcome(&no_resource, StatusCode::BAD_REQUEST, None, "resource");
    let not_a_patient = post_as(
        &app,
        &hospital,
        "/Patient/$match",
        match_request(json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}), json!([])),
    )
    .await;
    assert_outcome(&not_a_patient, StatusCode::BAD_REQUEST, None, "must be a Patient");
    let bad_count = post_as(
        &app,
        &hospital,
        "/Patient/$match",
        match_request(query_joe(), json!([{"name": "count", "valueInteger": 0}])),
    )
    .await;
    assert_outcome(&bad_count, StatusCode::BAD_REQUEST, Some("Parameters.parameter[1]"), "count");
    let bad_patient = post_as(
        &app,
        &hospital,
        "/Patient/$match",
        match_request(json!({"resourceType": "Patient", "birthDate": "14/03/1971"}), json!([])),
    )
    .await;
    assert_eq!(bad_patient.status, StatusCode::BAD_REQUEST, "{}", bad_patient.text);
}

fn pix(response: &TestResponse, name: &str) -> Vec<String> {
    let mut values: Vec<String> = response.body["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .map(|p| match name {
            "targetId" => p["valueReference"]["reference"].as_str().unwrap_or_default().to_string(),
            _ => format!(
                "{}|{}",
                p["valueIdentifier"]["system"].as_str().unwrap_or_default(),
                p["valueIdentifier"]["value"].as_str().unwrap_or_default()
            ),
        })
        .collect();
    values.sort();
    values.dedup();
    values
}

#[tokio::test]
async fn ihe_pix_cross_references_the_identifiers_the_caller_may_see() {
    let app = partnership().await;
    let hospital = system(&app, "Organization/hospital");
    let response = get_as(&app, &hospital, &format!("/Patient/$ihe-pix?sourceIdentifier={HOSPITAL_MRN}|H123")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["resourceType"], "Parameters");
    assert_eq!(pix(&response, "targetIdentifier"), [format!("{NHS}|9434765919"), format!("{GP_ID}|G9")]);
    assert_eq!(pix(&response, "targetId"), ["Patient/g-joe", "Patient/h-joe"], "housing is withheld");

    let only_gp = get_as(
        &app,
        &hospital,
        &format!("/Patient/$ihe-pix?sourceIdentifier={HOSPITAL_MRN}|H123&targetSystem={GP_ID}"),
    )
    .await;
    assert_eq!(pix(&only_gp, "targetIdentifier"), [format!("{GP_ID}|G9")]);
    assert_eq!(pix(&only_gp, "targetId"), ["Patient/g-joe"]);

    let housing = system(&app, "Organization/housing");
    let from_housing = get_as(&app, &housing, &format!("/Patient/$ihe-pix?sourceIdentifier={HOUSING_ID}|T5")).await;
    assert_eq!(from_housing.status, StatusCode::OK, "{}", from_housing.text);
    assert_eq!(pix(&from_housing, "targetId"), ["Patient/x-joe"], "{}", from_housing.text);
    // The hospital's identifier names a Patient housing may not see: unknown to housing.
    let hidden = get_as(&app, &housing, &format!("/Patient/$ihe-pix?sourceIdentifier={HOSPITAL_MRN}|H123")).await;
    assert_outcome(&hidden, StatusCode::NOT_FOUND, Some("sourceIdentifier"), "no Patient");

    let unknown = get_as(&app, &hospital, &format!("/Patient/$ihe-pix?sourceIdentifier={HOSPITAL_MRN}|nobody")).await;
    assert_outcome(&unknown, StatusCode::NOT_FOUND, Some("sourceIdentifier"), "no Patient");
    let missing = get_as(&app, &hospital, "/Patient/$ihe-pix").await;
    assert_outcome(&missing, StatusCode::BAD_REQUEST, Some("sourceIdentifier"), "needs a sourceIdentifier");
    let malformed = get_as(&app, &hospital, "/Patient/$ihe-pix?sourceIdentifier=H123").await;
    assert_outcome(&malformed, StatusCode::BAD_REQUEST, Some("sourceIdentifier"), "system|value");
}
