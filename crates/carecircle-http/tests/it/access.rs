//! The access decision at the API: each refusal (no agreement, consent withdrawn, sensitive
//! label, outside the care relationship), filtered search and `$everything`, break-glass, the
//! person's own access log, `$explain`, and one audit entry per access.

use axum::http::{Method, StatusCode};
use carecircle_access::codes::{Purpose, Sector, SensitivityLabel};
use carecircle_access::demo_support::{AgreementSpec, ClauseSpec, ConsentSpec, ProvisionSpec};
use carecircle_auth::TokenRequest;
use serde_json::{json, Value};

use crate::{assert_outcome, TestApp, TestResponse, PARTNERSHIP};

const HOSPITAL: &str = "Organization/hospital";
const GP: &str = "Organization/gp";
const POLICE: &str = "Organization/police";
const HOUSING: &str = "Organization/housing";

const CLINICAL: [&str; 7] = ["Patient", "Condition", "Observation", "Encounter", "CarePlan", "Flag", "CareTeam"];

/// Hospital, two GP practices, police and housing; agreements: the hospital and the first GP
/// share clinical records for direct care (and in emergencies); the police receive only the
/// Patient, Flags and crisis plans; housing has no agreement. Joe's record at the hospital,
/// with a condition, a mental-health-labelled observation, a flag and a crisis plan, and a care
/// team of the first GP, the police and housing.
pub(crate) async fn partnership() -> TestApp {
    let app = TestApp::new().await;
    for (id, sector) in [
        ("hospital", "acute"),
        ("gp", "primary-care"),
        ("gp2", "primary-care"),
        ("police", "police"),
        ("housing", "housing"),
    ] {
        app.seed_partner(id, sector).await;
    }
    let health = AgreementSpec::active(
        "dsa-health",
        "Direct care between the hospital and GPs",
        &["hospital", "gp", "gp2"],
        "2024-01-01",
        None,
        vec![
            ClauseSpec::new("treat", Purpose::Treat, &["hospital", "gp", "gp2"], &CLINICAL),
            ClauseSpec::new("emergency", Purpose::EmergencyTreat, &["hospital"], &CLINICAL)
                .labels(&[SensitivityLabel::MentalHealth]),
        ],
    )
    .to_contract();
    let police = AgreementSpec::active(
        "dsa-police",
        "Crisis plans and flags for police liaison",
        &["hospital", "police"],
        "2024-01-01",
        None,
        vec![ClauseSpec::new("crisis", Purpose::Treat, &["police"], &["Patient", "Flag", "CarePlan"])
            .disclosers(&["hospital"])],
    )
    .to_contract();
    app.seed(PARTNERSHIP, health).await;
    app.seed(PARTNERSHIP, police).await;
    for (id, org, role) in [
        ("gp-user", "gp", "gp"),
        ("gp2-user", "gp2", "gp"),
        ("police-user", "police", "police-liaison-officer"),
        ("housing-user", "housing", "housing-officer"),
        ("ed-nurse", "hospital", "ed-nurse"),
        ("porter", "hospital", "porter"),
    ] {
        app.seed(PARTNERSHIP, json!({"resourceType": "Practitioner", "id": id, "active": true})).await;
        app.seed(
            PARTNERSHIP,
            json!({"resourceType": "PractitionerRole", "id": format!("role-{id}"), "active": true,
                   "practitioner": {"reference": format!("Practitioner/{id}")},
                   "organization": {"reference": format!("Organization/{org}")},
                   "code": [{"coding": [{"system": "https://carecircle.example.org/fhir/CodeSystem/staff-role", "code": role}]}]}),
        )
        .await;
    }
    app.seed(
        HOSPITAL,
        json!({"resourceType": "Patient", "id": "joe", "name": [{"family": "Smith", "given": ["Joe"]}]}),
    )
    .await;
    app.seed(HOSPITAL, json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/joe"}, "code": {"text": "asthma"}})).await;
    app.seed(
        HOSPITAL,
        json!({"resourceType": "Observation", "id": "o-psy", "status": "final", "code": {"text": "mood assessment"},
               "subject": {"reference": "Patient/joe"},
               "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]}}),
    )
    .await;
    app.seed(HOSPITAL, json!({"resourceType": "Flag", "id": "f1", "status": "active", "code": {"text": "risk to self"}, "subject": {"reference": "Patient/joe"}})).await;
    app.seed(
        HOSPITAL,
        json!({"resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan", "subject": {"reference": "Patient/joe"}}),
    )
    .await;
    app.seed(
        HOSPITAL,
        json!({"resourceType": "CareTeam", "id": "team-joe", "status": "active", "subject": {"reference": "Patient/joe"},
               "participant": [
                   {"member": {"reference": GP}}, {"member": {"reference": POLICE}}, {"member": {"reference": HOUSING}}]}),
    )
    .await;
    // A second person known only to the first GP.
    app.seed(GP, json!({"resourceType": "Patient", "id": "ann", "name": [{"family": "Lee"}]})).await;
    app.seed(GP, json!({"resourceType": "Condition", "id": "c-ann", "subject": {"reference": "Patient/ann"}, "code": {"text": "epilepsy"}})).await;
    app
}

pub(crate) fn user(app: &TestApp, id: &str) -> String {
    TestApp::bearer(&app.token(TokenRequest {
        subject: format!("Practitioner/{id}"),
        fhir_user: Some(format!("Practitioner/{id}")),
        scope: "openid fhirUser user/*.cruds".into(),
        ttl_seconds: 600,
        ..Default::default()
    }))
}

pub(crate) async fn get_as(app: &TestApp, bearer: &str, uri: &str) -> TestResponse {
    app.request(Method::GET, uri, &[("authorization", bearer)], None).await
}

fn entry_ids(bundle: &Value, mode: &str) -> Vec<String> {
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

fn suppressed(bundle: &Value) -> bool {
    bundle["entry"].as_array().into_iter().flatten().any(|e| {
        e["search"]["mode"] == "outcome"
            && e["resource"]["issue"].as_array().is_some_and(|i| i.iter().any(|i| i["code"] == "suppressed"))
    })
}

#[tokio::test]
async fn agreements_decide_what_each_partner_sees() {
    let app = partnership().await;
    let gp = user(&app, "gp-user");
    assert_eq!(get_as(&app, &gp, "/Condition/c1").await.status, StatusCode::OK);
    let police = user(&app, "police-user");
    assert_eq!(get_as(&app, &police, "/Flag/f1").await.status, StatusCode::OK);
    assert_eq!(get_as(&app, &police, "/CarePlan/cp1").await.status, StatusCode::OK);
    // Never clinical detail for the police.
    let refused = get_as(&app, &police, "/Condition/c1").await;
    assert_outcome(&refused, StatusCode::FORBIDDEN, None, "not permitted");
    // No agreement at all with housing, though it is in the care team.
    assert_outcome(
        &get_as(&app, &user(&app, "housing-user"), "/Patient/joe").await,
        StatusCode::FORBIDDEN,
        None,
        "not permitted",
    );
    // The second GP has an agreement but no care relationship with Joe.
    assert_outcome(
        &get_as(&app, &user(&app, "gp2-user"), "/Condition/c1").await,
        StatusCode::FORBIDDEN,
        None,
        "not permitted",
    );
    // A mental-health-labelled record is withheld unless a clause and consent release it.
    assert_outcome(&get_as(&app, &gp, "/Observation/o-psy").await, StatusCode::FORBIDDEN, None, "not permitted");
    // The custodian sees its own data.
    assert_eq!(
        app.get("/Observation/o-psy").await.status,
        StatusCode::FORBIDDEN,
        "the partnership is not the custodian"
    );
    let hospital = TestApp::bearer(&app.token(TestApp::system_request(HOSPITAL)));
    assert_eq!(get_as(&app, &hospital, "/Observation/o-psy").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_partner_that_may_read_a_record_cannot_take_it_over_by_updating_it() {
    let app = partnership().await;
    let gp = user(&app, "gp-user");
    let condition = get_as(&app, &gp, "/Condition/c1").await;
    assert_eq!(condition.status, StatusCode::OK, "the GP may read the hospital's record");
    let mut changed = condition.body.clone();
    changed["code"] = json!({"text": "rewritten by the GP"});
    let attempt =
        app.request(Method::PUT, "/Condition/c1", &[("authorization", gp.as_str())], Some(changed.to_string())).await;
    assert_outcome(&attempt, StatusCode::FORBIDDEN, None, "not permitted");
    // Nothing changed: still the hospital's, still version 1.
    let hospital = TestApp::bearer(&app.token(TestApp::system_request(HOSPITAL)));
    let stored = get_as(&app, &hospital, "/Condition/c1").await;
    assert_eq!(stored.body["meta"]["source"], HOSPITAL);
    assert_eq!(stored.body["meta"]["versionId"], "1");
    assert_eq!(stored.body["code"]["text"], "asthma");
    // The custodian itself still maintains it.
    let mut fixed = stored.body.clone();
    fixed["code"] = json!({"text": "asthma, well controlled"});
    let own = app
        .request(Method::PUT, "/Condition/c1", &[("authorization", hospital.as_str())], Some(fixed.to_string()))
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
}

#[tokio::test]
async fn search_and_everything_are_filtered_entry_by_entry() {
    let app = partnership().await;
    let police = user(&app, "police-user");
    let everything = get_as(&app, &police, "/Patient/joe/$everything").await;
    assert_eq!(everything.status, StatusCode::OK, "{}", everything.text);
    assert_eq!(entry_ids(&everything.body, "match"), ["CarePlan/cp1", "Flag/f1", "Patient/joe"]);
    assert_eq!(everything.body["total"], 3, "the total counts only what may be seen");
    assert!(suppressed(&everything.body), "the response says entries were withheld: {}", everything.text);
    assert!(!everything.text.contains("asthma") && !everything.text.contains("mood"), "nothing withheld leaks");

    let gp = user(&app, "gp-user");
    let search = get_as(&app, &gp, "/Observation?subject=Patient/joe").await;
    assert_eq!(search.status, StatusCode::OK);
    assert!(entry_ids(&search.body, "match").is_empty());
    assert_eq!(search.body["total"], 0);
    assert!(suppressed(&search.body));
    let conditions = get_as(&app, &gp, "/Condition").await;
    assert_eq!(entry_ids(&conditions.body, "match"), ["Condition/c-ann", "Condition/c1"]);
    assert!(!suppressed(&conditions.body));
    let counted = get_as(&app, &police, "/Condition?_summary=count").await;
    assert_eq!(counted.body["total"], 0, "{}", counted.text);
}

#[tokio::test]
async fn a_withdrawn_consent_governs_the_very_next_request() {
    let app = partnership().await;
    let gp = user(&app, "gp-user");
    assert_eq!(get_as(&app, &gp, "/Condition/c1").await.status, StatusCode::OK);
    let objection = ConsentSpec::new(
        "consent-joe",
        "joe",
        "hospital",
        "2026-01-05T10:00:00Z",
        ProvisionSpec::deny().sectors(&[Sector::PrimaryCare]),
    )
    .to_resource();
    let hospital = TestApp::bearer(&app.token(TestApp::system_request(HOSPITAL)));
    let recorded = app
        .request(
            Method::PUT,
            "/Consent/consent-joe",
            &[("authorization", hospital.as_str())],
            Some(objection.to_string()),
        )
        .await;
    assert!(recorded.status.is_success(), "{}", recorded.text);
    assert_outcome(&get_as(&app, &gp, "/Condition/c1").await, StatusCode::FORBIDDEN, None, "not permitted");
    // The objection is lifted: the next request is permitted again.
    let mut lifted = objection.clone();
    lifted["status"] = json!("inactive");
    let recorded = app
        .request(Method::PUT, "/Consent/consent-joe", &[("authorization", hospital.as_str())], Some(lifted.to_string()))
        .await;
    assert!(recorded.status.is_success(), "{}", recorded.text);
    assert_eq!(get_as(&app, &gp, "/Condition/c1").await.status, StatusCode::OK);
}

/// A consent recorded by another process on the same embedded store (`carecircle import` while
/// `serve` runs) is not announced to the server's caches, and still governs the next request.
#[tokio::test]
async fn a_consent_written_by_another_process_governs_the_very_next_request() {
    use carecircle_record::{Caller, Record};
    use carecircle_store::Store;
    let app = partnership().await;
    let gp = user(&app, "gp-user");
    for _ in 0..2 {
        assert_eq!(get_as(&app, &gp, "/Condition/c1").await.status, StatusCode::OK, "facts now cached");
    }
    let other = carecircle_store_sqlite::SqliteStore::open_dir(app.data_dir()).expect("a second process's store");
    other.migrate().await.expect("migrate");
    let elsewhere = Record::new(std::sync::Arc::new(other));
    let objection = ConsentSpec::new(
        "consent-joe-import",
        "joe",
        "hospital",
        "2026-01-05T10:00:00Z",
        ProvisionSpec::deny().sectors(&[Sector::PrimaryCare]),
    )
    .to_resource();
    elsewhere
        .update(&Caller { custodian: HOSPITAL.into() }, "Consent", "consent-joe-import", objection, None)
        .await
        .expect("written by another process");
    assert_outcome(&get_as(&app, &gp, "/Condition/c1").await, StatusCode::FORBIDDEN, None, "not permitted");
}

#[tokio::test]
async fn break_glass_widens_access_as_the_agreement_allows_and_is_flagged() {
    let app = partnership().await;
    let nurse = user(&app, "ed-nurse");
    // Ann is known only to the first GP: the hospital has no care relationship with her.
    assert_outcome(&get_as(&app, &nurse, "/Condition/c-ann").await, StatusCode::FORBIDDEN, None, "not permitted");
    let emergency = |id: &str| {
        TestApp::bearer(&app.token(TokenRequest {
            subject: format!("Practitioner/{id}"),
            fhir_user: Some(format!("Practitioner/{id}")),
            scope: "user/*.rs".into(),
            purpose_of_use: Some("ETREAT".into()),
            purpose_reason: Some("unconscious in the emergency department".into()),
            ttl_seconds: 600,
            ..Default::default()
        }))
    };
    assert_eq!(get_as(&app, &emergency("ed-nurse"), "/Condition/c-ann").await.status, StatusCode::OK);
    // A role that may not break the glass is refused.
    assert_outcome(
        &get_as(&app, &emergency("porter"), "/Condition/c-ann").await,
        StatusCode::FORBIDDEN,
        None,
        "not permitted",
    );
    let admin = TestApp::bearer(&app.admin_token());
    let report = get_as(&app, &admin, "/audit/break-glass?days=1").await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    let users = report.body["users"].as_array().unwrap();
    assert!(
        users.iter().any(|u| u["user"] == "Practitioner/ed-nurse" && u["break_glass_entries"].as_u64().unwrap() >= 1),
        "{}",
        report.text
    );
    assert_outcome(
        &get_as(&app, &user(&app, "gp-user"), "/audit/break-glass").await,
        StatusCode::FORBIDDEN,
        None,
        "governance",
    );
}

#[tokio::test]
async fn a_person_sees_who_accessed_their_record_and_nobody_else_does() {
    let app = partnership().await;
    let gp = user(&app, "gp-user");
    get_as(&app, &gp, "/Condition/c1").await;
    get_as(&app, &user(&app, "police-user"), "/Condition/c1").await;
    let joe = TestApp::bearer(&app.token(TokenRequest {
        subject: "Patient/joe".into(),
        fhir_user: Some("Patient/joe".into()),
        scope: "openid fhirUser patient/*.rs".into(),
        ttl_seconds: 600,
        ..Default::default()
    }));
    // A person always sees their own record.
    assert_eq!(get_as(&app, &joe, "/Condition/c1").await.status, StatusCode::OK);
    let log = get_as(&app, &joe, "/Patient/joe/$access-log").await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let events: Vec<&Value> = log.body["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).collect();
    assert!(events.iter().all(|e| e["resourceType"] == "AuditEvent"));
    let who = |e: &Value| e.to_string();
    assert!(events.iter().any(|e| who(e).contains("Practitioner/gp-user")), "{}", log.text);
    assert!(
        events.iter().any(|e| who(e).contains("Practitioner/police-user") && e["outcome"] != "0"),
        "refusals are in the log too"
    );
    // Someone else may not read Joe's access log.
    let ann = TestApp::bearer(&app.token(TokenRequest {
        subject: "Patient/ann".into(),
        fhir_user: Some("Patient/ann".into()),
        scope: "patient/*.rs".into(),
        ttl_seconds: 600,
        ..Default::default()
    }));
    assert_outcome(
        &get_as(&app, &ann, "/Patient/joe/$access-log").await,
        StatusCode::FORBIDDEN,
        None,
        "only the person",
    );
    assert_outcome(&get_as(&app, &ann, "/Condition/c1").await, StatusCode::FORBIDDEN, None, "not permitted");
    // The checkpoint is public and signed.
    let checkpoint = app.request(Method::GET, "/audit/checkpoint", &[("authorization", "")], None).await;
    assert_eq!(checkpoint.status, StatusCode::OK);
    assert!(checkpoint.text.contains("\n\u{2014} "), "a signed note: {}", checkpoint.text);
    let size: u64 = checkpoint.text.lines().nth(1).unwrap().parse().unwrap();
    let key = app.request(Method::GET, "/audit/key", &[("authorization", "")], None).await;
    assert_eq!(key.status, StatusCode::OK);
    assert!(key.text.starts_with(checkpoint.text.lines().next().unwrap()), "the key names the log: {}", key.text);
    let grew =
        app.request(Method::GET, &format!("/audit/consistency?old=1&new={size}"), &[("authorization", "")], None).await;
    assert_eq!(grew.status, StatusCode::OK, "{}", grew.text);
    assert!(!grew.body["hashes"].as_array().unwrap().is_empty());
    let backwards = app
        .request(Method::GET, &format!("/audit/consistency?old={}&new=1", size + 5), &[("authorization", "")], None)
        .await;
    assert_eq!(backwards.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_governance_lead_can_ask_why() {
    let app = partnership().await;
    let admin = TestApp::bearer(&app.admin_token());
    let why = get_as(&app, &admin, "/Condition/c1/$explain?user=Practitioner/police-user").await;
    assert_eq!(why.status, StatusCode::OK, "{}", why.text);
    let param =
        |name: &str| why.body["parameter"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap();
    assert_eq!(param("permit")["valueBoolean"], false);
    assert_eq!(param("organization")["valueString"], "Organization/police");
    assert!(!param("explanation")["valueString"].as_str().unwrap().is_empty());
    let allowed = get_as(&app, &admin, "/Condition/c1/$explain?user=Practitioner/gp-user").await;
    let permit = allowed.body["parameter"].as_array().unwrap().iter().find(|p| p["name"] == "permit").cloned().unwrap();
    assert_eq!(permit["valueBoolean"], true, "{}", allowed.text);
    assert!(allowed.text.contains("dsa-health"), "the deciding agreement is named: {}", allowed.text);
    assert_outcome(
        &get_as(&app, &user(&app, "gp-user"), "/Condition/c1/$explain?user=Practitioner/gp-user").await,
        StatusCode::FORBIDDEN,
        None,
        "governance",
    );
}

/// One request of a scenario: request id, bearer, method, path, body, audit entries expected.
type Step<'a> = (&'a str, &'a str, Method, &'a str, Option<Value>, usize);

#[tokio::test]
async fn every_access_leaves_exactly_one_audit_entry() {
    let app = partnership().await;
    let gp = user(&app, "gp-user");
    let police = user(&app, "police-user");
    // (request id, bearer, method, uri, body, entries expected: one per person returned, or one)
    let steps: Vec<Step> = vec![
        ("r1", gp.as_str(), Method::GET, "/Condition/c1", None, 1),
        ("r2", police.as_str(), Method::GET, "/Condition/c1", None, 1),
        ("r3", gp.as_str(), Method::GET, "/Condition", None, 2),
        ("r4", gp.as_str(), Method::GET, "/Observation?code=nothing", None, 1),
        (
            "r5",
            gp.as_str(),
            Method::POST,
            "/Observation",
            Some(
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "bp"}, "subject": {"reference": "Patient/joe"}}),
            ),
            1,
        ),
        ("r6", gp.as_str(), Method::GET, "/Condition/nope", None, 1),
        ("r7", police.as_str(), Method::GET, "/Patient/joe/$everything", None, 2),
    ];
    for (request_id, bearer, method, uri, body, _) in &steps {
        let response = app
            .request(
                method.clone(),
                uri,
                &[("authorization", bearer), ("x-request-id", request_id)],
                body.as_ref().map(Value::to_string),
            )
            .await;
        assert!(response.status.as_u16() < 500, "{uri}: {}", response.text);
    }
    let log = app.record.guard().unwrap().audit.clone();
    let size = log.store().tree_size().await.unwrap();
    let mut per_request: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for seq in 0..size {
        let entry = log.store().entry(seq).await.unwrap().unwrap();
        let action = entry.record.action;
        use carecircle_audit_store::carecircle_audit::AuditAction;
        if matches!(action, AuditAction::Decision | AuditAction::BreakGlass) {
            continue;
        }
        if let Some(id) = entry.record.request_id {
            *per_request.entry(id).or_default() += 1;
        }
    }
    for (request_id, _, _, uri, _, expected) in &steps {
        assert_eq!(per_request.get(*request_id).copied().unwrap_or(0), *expected, "{uri} ({request_id})");
    }
}

#[tokio::test]
async fn the_administrator_manages_agreements_and_a_new_one_takes_effect_at_once() {
    let app = partnership().await;
    let admin = TestApp::bearer(&app.admin_token());
    let housing = user(&app, "housing-user");
    assert_eq!(get_as(&app, &housing, "/Patient/joe").await.status, StatusCode::FORBIDDEN);
    let spec = |clauses: Vec<ClauseSpec>| {
        AgreementSpec::active(
            "dsa-housing",
            "Tenancy sustainment",
            &["hospital", "housing"],
            "2024-01-01",
            None,
            clauses,
        )
    };
    // No lawful basis: it cannot be active.
    let unlawful = spec(vec![ClauseSpec::new("tenancy", Purpose::Treat, &["housing"], &["Patient"]).lawful_basis(&[])])
        .to_contract();
    let refused = app
        .request(Method::PUT, "/Contract/dsa-housing", &[("authorization", admin.as_str())], Some(unlawful.to_string()))
        .await;
    assert_outcome(&refused, StatusCode::BAD_REQUEST, None, "lawful basis");
    // Not signed by every party: it cannot be active either.
    let unsigned = spec(vec![ClauseSpec::new("tenancy", Purpose::Treat, &["housing"], &["Patient"])])
        .signed_only_by(&["hospital"])
        .to_contract();
    let refused = app
        .request(Method::PUT, "/Contract/dsa-housing", &[("authorization", admin.as_str())], Some(unsigned.to_string()))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(get_as(&app, &housing, "/Patient/joe").await.status, StatusCode::FORBIDDEN);
    // A complete agreement is accepted and governs the next request.
    let agreed = spec(vec![ClauseSpec::new("tenancy", Purpose::Treat, &["housing"], &["Patient"])]).to_contract();
    let stored = app
        .request(Method::PUT, "/Contract/dsa-housing", &[("authorization", admin.as_str())], Some(agreed.to_string()))
        .await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text);
    assert_eq!(get_as(&app, &housing, "/Patient/joe").await.status, StatusCode::OK);
    assert_eq!(
        get_as(&app, &housing, "/Condition/c1").await.status,
        StatusCode::FORBIDDEN,
        "only what the clause names"
    );
    // A partner's system may not write agreements; the administrator never reads clinical data.
    let hospital = TestApp::bearer(&app.token(TestApp::system_request(HOSPITAL)));
    let by_partner = app
        .request(
            Method::PUT,
            "/Contract/dsa-housing",
            &[("authorization", hospital.as_str())],
            Some(agreed.to_string()),
        )
        .await;
    assert_eq!(by_partner.status, StatusCode::FORBIDDEN, "{}", by_partner.text);
    assert_eq!(get_as(&app, &admin, "/Condition/c1").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn referrals_follow_their_state_machine() {
    let app = partnership().await;
    let gp = TestApp::bearer(&app.token(TestApp::system_request(GP)));
    let put = |id: &str, body: Value| {
        let uri = format!("/{}/{id}", body["resourceType"].as_str().unwrap());
        let gp = gp.clone();
        let app = &app;
        async move { app.request(Method::PUT, &uri, &[("authorization", gp.as_str())], Some(body.to_string())).await }
    };
    let request = json!({"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
                         "subject": {"reference": "Patient/joe"}, "code": {"text": "tenancy support"}});
    assert_eq!(put("sr1", request).await.status, StatusCode::CREATED);
    let task = |status: &str| {
        json!({"resourceType": "Task", "id": "t1", "status": status, "intent": "order",
               "focus": {"reference": "ServiceRequest/sr1"}, "for": {"reference": "Patient/joe"},
               "requester": {"reference": GP}, "owner": {"reference": HOUSING}})
    };
    // A referral cannot start finished.
    assert_outcome(&put("t1", task("completed")).await, StatusCode::BAD_REQUEST, None, "requested");
    assert_eq!(put("t1", task("requested")).await.status, StatusCode::CREATED);
    // Only the owner completes; the requester cannot.
    assert_eq!(put("t1", task("completed")).await.status, StatusCode::BAD_REQUEST);
    // Cancelling needs a reason.
    assert_outcome(&put("t1", task("cancelled")).await, StatusCode::BAD_REQUEST, Some("Task.statusReason"), "reason");
    let mut cancelled = task("cancelled");
    cancelled["statusReason"] = json!({"text": "moved out of the area"});
    let done = put("t1", cancelled).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    // Final: nothing changes any more.
    assert_eq!(put("t1", task("requested")).await.status, StatusCode::BAD_REQUEST);
}
