//! Partner lists and the review queue end to end: two partners upload CSVs with their own
//! mappings, the person index links them (`$match`, `$ihe-pix`), departures end list entries,
//! re-uploads are idempotent, review decisions split and survive a reload of the index, and
//! the wrong partner or an unauthorised reviewer is refused.

use axum::http::{Method, StatusCode};
use carecircle_record::lists::{list_entry_of_episode, local_id_system};
use serde_json::{json, Value};

use carecircle_access::codes::Purpose;
use carecircle_access::demo_support::{AgreementSpec, ClauseSpec};

use crate::{assert_outcome, TestApp, TestResponse, PARTNERSHIP};

const GP_MAPPING: &str = r#"
local_id = "patient_no"
given = "forename"
family = "surname"
birth_date = "dob"
birth_date_format = "%d/%m/%Y"
sex = "sex"
postcode = "postcode"
national_id = "nhs_number"
national_id_verified = true
key_worker = "named_gp"
key_worker_contact = "surgery_phone"
service = "service"
"#;

const GP_LIST: &str = "patient_no,forename,surname,dob,sex,postcode,nhs_number,named_gp,surgery_phone,service\n\
G1,Joseph,Smith,14/03/1971,M,LS1 4AP,943 476 5919,Dr Patel,0113 496 0100,General practice\n\
G2,Ann,Lee,01/01/1980,F,LS2 9JT,,Dr Patel,0113 496 0100,General practice\n\
G3,Mary,Jones,12/12/1955,F,LS6 1AA,,Dr Khan,0113 496 0101,General practice\n";

const HOUSING_MAPPING: &str = r#"
local_id = "tenant_ref"
given = "first_name"
family = "last_name"
birth_date = "date_of_birth"
house_number = "house"
address = "street"
city = "town"
postcode = "post_code"
phone = "tel"
key_worker = "support_worker"
key_worker_contact = "worker_email"
service = "scheme"
"#;

const HOUSING_LIST: &str = "tenant_ref,first_name,last_name,date_of_birth,house,street,town,post_code,tel,support_worker,worker_email,scheme\n\
T-5,Joe,Smith,1971-03-14,12,High Street,Leeds,LS1 4AP,07700 900123,Sam Key,sam@housing.example,Tenancy sustainment\n\
T-9,Peter,Wood,1990-05-05,3,Mill Lane,Leeds,LS3 1AB,,Sam Key,sam@housing.example,Tenancy sustainment\n";

async fn partnership() -> TestApp {
    let app = TestApp::new().await;
    for (id, sector) in [("gp", "primary-care"), ("housing", "housing")] {
        app.seed_partner(id, sector).await;
    }
    app
}

fn system(app: &TestApp, organisation: &str) -> String {
    TestApp::bearer(&app.token(TestApp::system_request(organisation)))
}

fn upload_body(mapping: &str, list: &str) -> String {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "mapping", "valueString": mapping},
        {"name": "list", "valueString": list}]})
    .to_string()
}

async fn post_as(app: &TestApp, bearer: &str, uri: &str, body: String) -> TestResponse {
    app.request(Method::POST, uri, &[("authorization", bearer), ("content-type", "application/fhir+json")], Some(body))
        .await
}

async fn get_as(app: &TestApp, bearer: &str, uri: &str) -> TestResponse {
    app.request(Method::GET, uri, &[("authorization", bearer)], None).await
}

async fn upload(app: &TestApp, partner: &str, mapping: &str, list: &str) -> TestResponse {
    let bearer = system(app, &format!("Organization/{partner}"));
    post_as(app, &bearer, &format!("/Organization/{partner}/$upload-list"), upload_body(mapping, list)).await
}

fn counts(response: &TestResponse) -> Vec<(String, i64)> {
    response.body["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["valueInteger"].as_i64()?)))
        .collect()
}

fn count(response: &TestResponse, name: &str) -> i64 {
    counts(response).into_iter().find(|(n, _)| n == name).map_or(-1, |(_, v)| v)
}

async fn stored(app: &TestApp, resource_type: &str, id: &str) -> Value {
    app.record.read(resource_type, id).await.expect("stored").json().expect("json")
}

async fn linkage_of(app: &TestApp, patient: &str) -> Option<String> {
    let found = app
        .record
        .search(
            Some("Linkage"),
            &[("item".into(), format!("Patient/{patient}"))],
            carecircle_fhir::search::Handling::Strict,
        )
        .await
        .expect("search");
    found.page.entries.first().map(|l| l.id.clone())
}

#[tokio::test]
async fn two_lists_become_patients_linked_into_one_person() {
    let app = partnership().await;
    let gp = upload(&app, "gp", GP_MAPPING, GP_LIST).await;
    assert_eq!(gp.status, StatusCode::OK, "{}", gp.text);
    assert_eq!((count(&gp, "rows"), count(&gp, "new"), count(&gp, "left")), (3, 3, 0), "{}", gp.text);
    let housing = upload(&app, "housing", HOUSING_MAPPING, HOUSING_LIST).await;
    assert_eq!(housing.status, StatusCode::OK, "{}", housing.text);
    assert_eq!(count(&housing, "new"), 2);

    // Each row is the partner's Patient under its local id system, custodian the partner.
    let joe_gp = stored(&app, "Patient", "gp-G1").await;
    assert_eq!(joe_gp["meta"]["source"], "Organization/gp");
    assert_eq!(joe_gp["identifier"][0]["system"], local_id_system("gp"));
    assert_eq!(joe_gp["identifier"][1]["value"], "9434765919");
    assert_eq!(joe_gp["birthDate"], "1971-03-14");
    let joe_housing = stored(&app, "Patient", "housing-T-5").await;
    assert_eq!(joe_housing["address"][0]["line"][0], "12 High Street");
    assert_eq!(joe_housing["telecom"][0]["value"], "07700 900123");

    // The list membership carries key worker, service and contact for the care team.
    let episode = stored(&app, "EpisodeOfCare", "housing-T-5").await;
    assert_eq!(episode["status"], "active");
    assert_eq!(episode["patient"]["reference"], "Patient/housing-T-5");
    let entry = list_entry_of_episode(&episode).expect("a list entry");
    assert_eq!(entry.key_worker.as_deref(), Some("Sam Key"));
    assert_eq!(entry.service.as_deref(), Some("Tenancy sustainment"));
    assert_eq!(entry.email.as_deref(), Some("sam@housing.example"));
    let gp_entry = list_entry_of_episode(&stored(&app, "EpisodeOfCare", "gp-G1").await).expect("a list entry");
    assert_eq!(gp_entry.phone.as_deref(), Some("0113 496 0100"));

    // Joe and Joseph Smith (same birth date and postcode) are one person, before any request.
    let person = linkage_of(&app, "gp-G1").await.expect("a person");
    assert_eq!(linkage_of(&app, "housing-T-5").await.as_deref(), Some(person.as_str()));
    assert_ne!(linkage_of(&app, "gp-G2").await.as_deref(), Some(person.as_str()));

    // $match from the GP finds its own Joe; $ihe-pix from the housing id gives the GP's ids,
    // when the GP asks (housing's Patient is housing's; the GP sees its own).
    let gp_bearer = system(&app, "Organization/gp");
    let matched = post_as(&app, &gp_bearer, "/Patient/$match", match_joseph()).await;
    assert_eq!(matched.status, StatusCode::OK, "{}", matched.text);
    let ids: Vec<&str> =
        matched.body["entry"].as_array().unwrap().iter().filter_map(|e| e["resource"]["id"].as_str()).collect();
    assert_eq!(ids, ["gp-G1"], "housing's Patient is withheld from the GP: {}", matched.text);
    let housing_bearer = system(&app, "Organization/housing");
    let pix = get_as(
        &app,
        &housing_bearer,
        &format!("/Patient/$ihe-pix?sourceIdentifier={}|T-5", local_id_system("housing")),
    )
    .await;
    assert_eq!(pix.status, StatusCode::OK, "{}", pix.text);
    assert_eq!(pix_values(&pix, "targetId"), ["Patient/housing-T-5"], "the GP's Joe is withheld: {}", pix.text);

    // Housing may not see the GP's Joe, nor his care team.
    let hidden = get_as(&app, &housing_bearer, "/Patient/gp-G1/$care-team").await;
    assert_eq!(hidden.status, StatusCode::FORBIDDEN, "{}", hidden.text);

    // Once the two share Joe's care under an agreement, each sees the other's record of him.
    share_joes_care(&app).await;
    let pix = get_as(
        &app,
        &housing_bearer,
        &format!("/Patient/$ihe-pix?sourceIdentifier={}|T-5", local_id_system("housing")),
    )
    .await;
    assert_eq!(pix.status, StatusCode::OK, "{}", pix.text);
    assert_eq!(pix_values(&pix, "targetId"), ["Patient/gp-G1", "Patient/housing-T-5"], "{}", pix.text);
    assert_eq!(
        pix_values(&pix, "targetIdentifier"),
        [format!("{}|G1", local_id_system("gp")), "https://fhir.nhs.uk/Id/nhs-number|9434765919".to_string()],
        "{}",
        pix.text
    );
    let matched = post_as(&app, &gp_bearer, "/Patient/$match", match_joseph()).await;
    let mut ids: Vec<&str> =
        matched.body["entry"].as_array().unwrap().iter().filter_map(|e| e["resource"]["id"].as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["gp-G1", "housing-T-5"], "{}", matched.text);

    // The care team the GP sees for its Joe joins both partners' list entries (key worker,
    // service, contact) and the explicit CareTeams of every record of the person.
    let team = get_as(&app, &gp_bearer, "/Patient/gp-G1/$care-team").await;
    assert_eq!(team.status, StatusCode::OK, "{}", team.text);
    assert_eq!(team.body["resourceType"], "CareTeam");
    assert_eq!(team.body["subject"]["reference"], "Patient/gp-G1");
    let members: Vec<&str> =
        team.body["participant"].as_array().unwrap().iter().filter_map(|p| p["member"]["display"].as_str()).collect();
    assert!(members.contains(&"Sam Key (Tenancy sustainment)"), "{}", team.text);
    assert!(members.contains(&"Dr Patel (General practice)"), "{}", team.text);
    assert!(team.text.contains("sam@housing.example"), "{}", team.text);
}

fn match_joseph() -> String {
    json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {
        "resourceType": "Patient", "name": [{"family": "Smith", "given": ["Joseph"]}],
        "birthDate": "1971-03-14", "gender": "male"}}]})
    .to_string()
}

fn pix_values(response: &TestResponse, name: &str) -> Vec<String> {
    let mut values: Vec<String> = response.body["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .filter_map(|p| {
            p["valueReference"]["reference"].as_str().map(str::to_string).or_else(|| {
                Some(format!(
                    "{}|{}",
                    p["valueIdentifier"]["system"].as_str()?,
                    p["valueIdentifier"]["value"].as_str()?
                ))
            })
        })
        .collect();
    values.sort();
    values
}

/// An agreement between the GP and housing for Patients, and each partner's care team for Joe
/// naming the other (the care relationship the clause needs).
async fn share_joes_care(app: &TestApp) {
    let agreement = AgreementSpec::active(
        "dsa-gp-housing",
        "Joint support between the GP and housing",
        &["gp", "housing"],
        "2024-01-01",
        None,
        vec![ClauseSpec::new("treat", Purpose::Treat, &["gp", "housing"], &["Patient", "EpisodeOfCare", "CareTeam"])],
    )
    .to_contract();
    app.seed(PARTNERSHIP, agreement).await;
    for (custodian, patient, other) in [("gp", "gp-G1", "housing"), ("housing", "housing-T-5", "gp")] {
        app.seed(
            &format!("Organization/{custodian}"),
            json!({"resourceType": "CareTeam", "id": format!("team-{patient}"), "status": "active",
                   "subject": {"reference": format!("Patient/{patient}")},
                   "participant": [{"member": {"reference": format!("Organization/{other}")}}]}),
        )
        .await;
    }
}

#[tokio::test]
async fn reuploads_are_idempotent_and_departures_end_the_entry() {
    let app = partnership().await;
    assert_eq!(upload(&app, "gp", GP_MAPPING, GP_LIST).await.status, StatusCode::OK);
    let version_before = app.record.read("Patient", "gp-G1").await.unwrap().version;
    let again = upload(&app, "gp", GP_MAPPING, GP_LIST).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(
        (count(&again, "new"), count(&again, "changed"), count(&again, "unchanged"), count(&again, "left")),
        (0, 0, 3, 0),
        "{}",
        again.text
    );
    assert_eq!(app.record.read("Patient", "gp-G1").await.unwrap().version, version_before, "nothing rewritten");

    // Ann left; Mary moved; a new patient arrived.
    let next = "patient_no,forename,surname,dob,sex,postcode,nhs_number,named_gp,surgery_phone,service\n\
G1,Joseph,Smith,14/03/1971,M,LS1 4AP,943 476 5919,Dr Patel,0113 496 0100,General practice\n\
G3,Mary,Jones,12/12/1955,F,LS7 2BB,,Dr Khan,0113 496 0101,General practice\n\
G4,Omar,Farah,02/02/2002,M,LS8 3CC,,Dr Khan,0113 496 0101,General practice\n";
    let third = upload(&app, "gp", GP_MAPPING, next).await;
    assert_eq!(
        (count(&third, "new"), count(&third, "changed"), count(&third, "unchanged"), count(&third, "left")),
        (1, 1, 1, 1),
        "{}",
        third.text
    );
    let ann = stored(&app, "EpisodeOfCare", "gp-G2").await;
    assert_eq!(ann["status"], "finished");
    assert!(ann["period"]["end"].is_string(), "{ann}");
    assert!(list_entry_of_episode(&ann).expect("entry").ended.is_some());
    // Ann's Patient is kept, not deleted.
    assert_eq!(stored(&app, "Patient", "gp-G2").await["name"][0]["family"], "Lee");
    assert_eq!(stored(&app, "Patient", "gp-G3").await["address"][0]["postalCode"], "LS7 2BB");
    // The same file again ends nobody twice.
    let fourth = upload(&app, "gp", GP_MAPPING, next).await;
    assert_eq!((count(&fourth, "unchanged"), count(&fourth, "left")), (3, 0), "{}", fourth.text);
    // Ann back on the list is new again, with a fresh start.
    let fifth = upload(&app, "gp", GP_MAPPING, GP_LIST).await;
    assert_eq!(count(&fifth, "new"), 1, "{}", fifth.text);
    assert_eq!(stored(&app, "EpisodeOfCare", "gp-G2").await["status"], "active");
}

#[tokio::test]
async fn uploads_are_refused_to_other_partners_and_bad_input() {
    let app = partnership().await;
    let housing = system(&app, "Organization/housing");
    let refused = post_as(&app, &housing, "/Organization/gp/$upload-list", upload_body(GP_MAPPING, GP_LIST)).await;
    assert_outcome(&refused, StatusCode::FORBIDDEN, None, "only the partner itself");
    assert!(app.record.read("Patient", "gp-G1").await.is_err(), "nothing was written");

    let bad_mapping = upload(&app, "gp", "nickname = \"x\"", GP_LIST).await;
    assert_eq!(bad_mapping.status, StatusCode::BAD_REQUEST, "{}", bad_mapping.text);
    let missing_column = upload(&app, "gp", GP_MAPPING, "patient_no,forename\nG1,Joe\n").await;
    assert_outcome(&missing_column, StatusCode::BAD_REQUEST, Some("csv"), "no column");
    let gp = system(&app, "Organization/gp");
    let no_list = post_as(
        &app,
        &gp,
        "/Organization/gp/$upload-list",
        json!({"resourceType": "Parameters", "parameter": [{"name": "mapping", "valueString": GP_MAPPING}]})
            .to_string(),
    )
    .await;
    assert_outcome(&no_list, StatusCode::BAD_REQUEST, Some("Parameters.parameter"), "'list'");
    let unknown = post_as(&app, &gp, "/Organization/nobody/$upload-list", upload_body(GP_MAPPING, GP_LIST)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);

    // The administrator passes the operation's check, but the access decision's standing rule
    // (administration is not care) refuses its writes of person data: nothing is written.
    let admin = TestApp::bearer(&app.admin_token());
    let by_admin = post_as(&app, &admin, "/Organization/gp/$upload-list", upload_body(GP_MAPPING, GP_LIST)).await;
    assert_outcome(&by_admin, StatusCode::FORBIDDEN, None, "Administration is not care");
    assert!(app.record.read("Patient", "gp-G1").await.is_err(), "nothing was written");
    // The partner's own upload goes through.
    assert_eq!(upload(&app, "gp", GP_MAPPING, GP_LIST).await.status, StatusCode::OK);
}

const REVIEW_HOUSING_LIST: &str = "tenant_ref,first_name,last_name,date_of_birth,house,street,town,post_code,tel,support_worker,worker_email,scheme\n\
T-7,Ann,Lee,1980-02-01,,,,,,Sam Key,sam@housing.example,Tenancy sustainment\n";

fn decision(parameters: Value) -> String {
    json!({"resourceType": "Parameters", "parameter": parameters}).to_string()
}

#[tokio::test]
async fn review_decisions_link_split_and_survive_a_reload() {
    let app = partnership().await;
    assert_eq!(upload(&app, "gp", GP_MAPPING, GP_LIST).await.status, StatusCode::OK);
    let housing = upload(&app, "housing", HOUSING_MAPPING, HOUSING_LIST).await;
    assert_eq!(housing.status, StatusCode::OK);
    let admin = TestApp::bearer(&app.admin_token());

    // Reviewing is for governance leads and the administrator only.
    let gp = system(&app, "Organization/gp");
    assert_outcome(&get_as(&app, &gp, "/Patient/$match-review").await, StatusCode::FORBIDDEN, None, "governance");
    let split = decision(json!([
        {"name": "decision", "valueCode": "keep-apart"},
        {"name": "patient", "valueReference": {"reference": "Patient/gp-G1"}},
        {"name": "patient", "valueReference": {"reference": "Patient/housing-T-5"}}]));
    assert_outcome(
        &post_as(&app, &gp, "/Patient/$match-review", split.clone()).await,
        StatusCode::FORBIDDEN,
        None,
        "governance",
    );
    let person_before = linkage_of(&app, "gp-G1").await.expect("a person");
    assert_eq!(linkage_of(&app, "housing-T-5").await.as_deref(), Some(person_before.as_str()));

    // The administrator keeps the two Smiths apart: the person splits.
    let kept = post_as(&app, &admin, "/Patient/$match-review", split).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
    let gp_person = linkage_of(&app, "gp-G1").await.expect("a person");
    let housing_person = linkage_of(&app, "housing-T-5").await.expect("a person");
    assert_ne!(gp_person, housing_person);

    // Anne Lee at housing is only a possible match for Ann Lee at the GP: queued for review.
    let anne = upload(&app, "housing", HOUSING_MAPPING, REVIEW_HOUSING_LIST).await;
    assert_eq!(anne.status, StatusCode::OK, "{}", anne.text);
    assert_eq!(count(&anne, "reviewProposed"), 1, "{}", anne.text);
    let queue = get_as(&app, &admin, "/Patient/$match-review").await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text);
    let tasks = queue.body["entry"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 1, "{}", queue.text);
    let task_id = tasks[0]["resource"]["id"].as_str().unwrap().to_string();
    assert_ne!(linkage_of(&app, "gp-G2").await, linkage_of(&app, "housing-T-7").await);

    let linked = post_as(
        &app,
        &admin,
        "/Patient/$match-review",
        decision(json!([{"name": "decision", "valueCode": "link"}, {"name": "task", "valueString": task_id}])),
    )
    .await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.text);
    assert_eq!(linkage_of(&app, "gp-G2").await, linkage_of(&app, "housing-T-7").await);
    let queue_after = get_as(&app, &admin, "/Patient/$match-review").await;
    assert_eq!(queue_after.body["total"], 0, "decided pairs leave the queue: {}", queue_after.text);
    let task = stored(&app, "Task", &task_id).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["output"][0]["valueCode"], "link");

    // Re-uploading the lists proposes nothing again and keeps both decisions.
    let again = upload(&app, "housing", HOUSING_MAPPING, REVIEW_HOUSING_LIST).await;
    assert_eq!(count(&again, "reviewProposed"), 0, "{}", again.text);

    // A fresh server (the index reloaded from the record) keeps both decisions, and its
    // first match run does not re-merge the Smiths.
    let reloaded = carecircle_record::PersonIndex::load(
        &app.record,
        carecircle_record::Caller { custodian: crate::PARTNERSHIP.into() },
    )
    .await
    .expect("reload");
    assert_ne!(reloaded.person_of_patient("gp-G1"), reloaded.person_of_patient("housing-T-5"));
    assert_eq!(reloaded.person_of_patient("gp-G2"), reloaded.person_of_patient("housing-T-7"));
    assert_eq!(reloaded.person_of_patient("gp-G1").as_deref(), Some(gp_person.as_str()));
    let candidates = reloaded.match_patient("gp-G1", "Organization/gp", &stored(&app, "Patient", "gp-G1").await);
    assert!(candidates.iter().all(|c| c.patient_id != "housing-T-5"), "{candidates:?}");

    // Bad decisions are refused with a location.
    let bad =
        post_as(&app, &admin, "/Patient/$match-review", decision(json!([{"name": "decision", "valueCode": "maybe"}])))
            .await;
    assert_outcome(&bad, StatusCode::BAD_REQUEST, Some("Parameters.parameter[0]"), "link");
    let unknown = post_as(
        &app,
        &admin,
        "/Patient/$match-review",
        decision(json!([{"name": "decision", "valueCode": "link"}, {"name": "task", "valueString": "nope"}])),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
}
