//! Care coordination at the API: `Patient/$care-team`, the closed referral loop between two
//! partners (the owner answers the Task its requester holds), shared care-plan edits with their
//! reasons and provenance, and risk flags validated on write.

use axum::http::{Method, StatusCode};
use carecircle_access::codes::Purpose;
use carecircle_access::demo_support::{AgreementSpec, ClauseSpec};
use serde_json::{json, Value};

use crate::access::{get_as, partnership, user};
use crate::{assert_outcome, TestApp, TestResponse, PARTNERSHIP};

const GP: &str = "Organization/gp";
const HOUSING: &str = "Organization/housing";
const HOSPITAL: &str = "Organization/hospital";
const POLICE: &str = "Organization/police";

const ACTIVITY_OWNER: &str = "https://carecircle.example.org/fhir/StructureDefinition/careplan-activity-owner";
const EDIT_PERMISSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/careplan-edit-permission";
const FLAG_CODE: &str = "https://carecircle.example.org/fhir/CodeSystem/flag-code";

fn system(app: &TestApp, organization: &str) -> String {
    TestApp::bearer(&app.token(TestApp::system_request(organization)))
}

async fn put_as(app: &TestApp, bearer: &str, body: &Value, headers: &[(&str, &str)]) -> TestResponse {
    let uri = format!("/{}/{}", body["resourceType"].as_str().unwrap(), body["id"].as_str().unwrap());
    let mut all = vec![("authorization", bearer)];
    all.extend_from_slice(headers);
    app.request(Method::PUT, &uri, &all, Some(body.to_string())).await
}

/// The decisions recorded in the audit log about Joe for updates of `resource`.
async fn update_policies(app: &TestApp, resource: &str) -> Vec<(String, bool)> {
    let log = &app.record.guard().unwrap().audit;
    let entries = log.store().access_log_for_patient("joe", None, 500).await.unwrap();
    entries
        .iter()
        .filter(|e| e.record.action == carecircle_audit_store::carecircle_audit::AuditAction::Update)
        .filter(|e| e.record.entity.as_ref().is_some_and(|x| format!("{}/{}", x.resource_type, x.id) == resource))
        .filter_map(|e| e.record.decision.as_ref().map(|d| (d.policy_id.clone(), d.permit)))
        .collect()
}

#[tokio::test]
async fn the_care_team_is_built_from_care_teams_the_asker_may_see() {
    let app = partnership().await;
    let answer = get_as(&app, &user(&app, "gp-user"), "/Patient/joe/$care-team").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["resourceType"], "CareTeam");
    assert_eq!(answer.body["subject"]["reference"], "Patient/joe");
    let members: Vec<&str> = answer.body["participant"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["member"]["reference"].as_str())
        .collect();
    assert_eq!(members, vec![GP, POLICE, HOUSING], "{}", answer.text);
    assert!(answer.body.get("note").is_none(), "nothing was withheld: {}", answer.text);
    // The police may see Joe but not the hospital's CareTeam: an empty team that says so.
    let police = get_as(&app, &user(&app, "police-user"), "/Patient/joe/$care-team").await;
    assert_eq!(police.status, StatusCode::OK, "{}", police.text);
    assert!(police.body["participant"].as_array().is_none_or(|p| p.is_empty()), "{}", police.text);
    assert!(police.text.contains("withheld"), "{}", police.text);
    // Housing may not see Joe at all.
    assert_outcome(
        &get_as(&app, &user(&app, "housing-user"), "/Patient/joe/$care-team").await,
        StatusCode::FORBIDDEN,
        None,
        "not permitted",
    );
    assert_outcome(
        &get_as(&app, &user(&app, "gp-user"), "/Patient/joe/$care-team?when=now").await,
        StatusCode::BAD_REQUEST,
        Some("when"),
        "does not support",
    );
    // The look is audited as a search of the person's care teams.
    let entries = app.record.guard().unwrap().audit.store().access_log_for_patient("joe", None, 100).await.unwrap();
    assert!(
        entries.iter().any(|e| e.record.agent.user_id == "Practitioner/gp-user"
            && e.record.query.as_deref() == Some("$care-team")
            && e.record.action == carecircle_audit_store::carecircle_audit::AuditAction::Search),
        "the care-team search is in Joe's log"
    );
}

/// The partnership of the access tests, plus an agreement under which the GP, housing and the
/// hospital exchange referrals (Task, ServiceRequest) for direct care.
async fn referral_partnership() -> TestApp {
    let app = partnership().await;
    let referrals = AgreementSpec::active(
        "dsa-referrals",
        "Referrals between the GP, housing and the hospital",
        &["gp", "housing", "hospital"],
        "2024-01-01",
        None,
        vec![ClauseSpec::new(
            "referrals",
            Purpose::Treat,
            &["gp", "housing", "hospital"],
            &["Task", "ServiceRequest", "Patient"],
        )],
    )
    .to_contract();
    app.seed(PARTNERSHIP, referrals).await;
    app
}

fn referral(id: &str, status: &str) -> Value {
    json!({"resourceType": "Task", "id": id, "status": status, "intent": "order",
           "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
           "focus": {"reference": "ServiceRequest/sr1"}, "for": {"reference": "Patient/joe"},
           "requester": {"reference": GP}, "owner": {"reference": HOUSING}})
}

#[tokio::test]
async fn the_owner_answers_the_referral_its_requester_holds_through_the_whole_loop() {
    let app = referral_partnership().await;
    let gp = system(&app, GP);
    let housing = system(&app, HOUSING);
    let hospital = system(&app, HOSPITAL);
    let request = json!({"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
                         "subject": {"reference": "Patient/joe"}, "code": {"text": "tenancy support"}});
    assert_eq!(put_as(&app, &gp, &request, &[]).await.status, StatusCode::CREATED);
    let sent = put_as(&app, &gp, &referral("t1", "requested"), &[]).await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.text);

    // The owner sees it in its inbox.
    let inbox = get_as(&app, &housing, "/Task?owner=Organization/housing&status=requested").await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.text);
    assert_eq!(inbox.body["entry"][0]["resource"]["id"], "t1", "{}", inbox.text);

    // Owner transitions, each on the Task the GP holds.
    for status in ["received", "accepted", "in-progress"] {
        let answer = put_as(&app, &housing, &referral("t1", status), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{status}: {}", answer.text);
        assert_eq!(answer.body["status"], status);
        assert_eq!(answer.body["meta"]["source"], GP, "the requester still holds the referral");
    }
    // The requester cannot make the owner's transition; the owner cannot skip back.
    assert_outcome(
        &put_as(&app, &gp, &referral("t1", "completed"), &[]).await,
        StatusCode::BAD_REQUEST,
        Some("Task.status"),
        "owner",
    );
    assert_outcome(
        &put_as(&app, &housing, &referral("t1", "requested"), &[]).await,
        StatusCode::BAD_REQUEST,
        Some("Task.status"),
        "in-progress",
    );
    // An organisation that may read the referral but is not a party to it is refused.
    assert_outcome(
        &put_as(&app, &hospital, &referral("t1", "completed"), &[]).await,
        StatusCode::FORBIDDEN,
        Some("Task"),
        "neither the requester",
    );
    // The owner re-routing the referral is refused: owner and requester never change.
    let mut rerouted = referral("t1", "in-progress");
    rerouted["owner"] = json!({"reference": HOSPITAL});
    assert_eq!(put_as(&app, &housing, &rerouted, &[]).await.status, StatusCode::BAD_REQUEST);
    let done = put_as(&app, &housing, &referral("t1", "completed"), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let held = get_as(&app, &gp, "/Task/t1").await;
    assert_eq!(held.body["status"], "completed");
    assert_eq!(held.body["meta"]["versionId"], "5");
    assert_eq!(held.body["meta"]["source"], GP);

    // The requester cancels its own referral after the owner accepted it (with a reason).
    assert_eq!(put_as(&app, &gp, &referral("t2", "requested"), &[]).await.status, StatusCode::CREATED);
    assert_eq!(put_as(&app, &housing, &referral("t2", "accepted"), &[]).await.status, StatusCode::OK);
    let mut cancelled = referral("t2", "cancelled");
    cancelled["statusReason"] = json!({"text": "Joe moved out of the area"});
    let cancel = put_as(&app, &gp, &cancelled, &[]).await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.text);
    // Final: the owner can no longer start work on it.
    assert_eq!(put_as(&app, &housing, &referral("t2", "in-progress"), &[]).await.status, StatusCode::BAD_REQUEST);

    // The owner's writes are audited under the referral rule, refusals too.
    let decided = update_policies(&app, "Task/t1").await;
    assert_eq!(
        decided.iter().filter(|(policy, permit)| policy == "referral:closed-loop" && *permit).count(),
        4,
        "{decided:?}"
    );
    assert!(decided.iter().any(|(policy, permit)| policy == "referral:closed-loop" && !*permit), "{decided:?}");
}

/// Joe's crisis plan, held (and so led) by the hospital: one activity owned by the police, one
/// by the hospital.
fn shared_plan() -> Value {
    json!({"resourceType": "CarePlan", "id": "cp-shared", "status": "active", "intent": "plan",
           "title": "Joe's crisis plan", "subject": {"reference": "Patient/joe"},
           "activity": [
               {"id": "police-response",
                "extension": [{"url": ACTIVITY_OWNER, "valueReference": {"reference": POLICE}}],
                "detail": {"status": "scheduled", "description": "Police liaison checks on Joe after any contact.",
                           "performer": [{"reference": POLICE}]}},
               {"id": "hospital-review",
                "extension": [{"url": ACTIVITY_OWNER, "valueReference": {"reference": HOSPITAL}}],
                "detail": {"status": "scheduled", "description": "Crisis review within 72 hours.",
                           "performer": [{"reference": HOSPITAL}]}}]})
}

#[tokio::test]
async fn each_agency_edits_its_own_part_of_the_shared_plan_and_says_why() {
    let app = partnership().await;
    app.seed(HOSPITAL, shared_plan()).await;
    let police = system(&app, POLICE);
    let hospital = system(&app, HOSPITAL);
    let reason = ("x-change-reason", "Liaison officer changed after the August review");

    // The police change their own activity.
    let mut own = shared_plan();
    own["activity"][0]["detail"]["description"] = json!("Police liaison calls Joe within a day of any contact.");
    let edited = put_as(&app, &police, &own, &[reason]).await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    assert_eq!(edited.body["meta"]["source"], HOSPITAL, "the lead still holds the plan");
    assert_eq!(edited.body["meta"]["versionId"], "2");
    // Who and why: a Provenance of the new version.
    let provenance = get_as(&app, &police, "/Provenance?target=CarePlan/cp-shared/_history/2").await;
    assert_eq!(provenance.status, StatusCode::OK, "{}", provenance.text);
    let record = &provenance.body["entry"][0]["resource"];
    assert_eq!(record["reason"][0]["text"], reason.1, "{}", provenance.text);
    assert_eq!(record["agent"][0]["who"]["reference"], POLICE);

    // Without a reason, refused and located at the header.
    own["activity"][0]["detail"]["description"] = json!("Something else.");
    assert_outcome(&put_as(&app, &police, &own, &[]).await, StatusCode::BAD_REQUEST, Some("X-Change-Reason"), "why");
    // Another agency's activity and the plan's title belong to others: 403 naming each part.
    let mut theirs = edited.body.clone();
    theirs["activity"][1]["detail"]["description"] = json!("No review needed.");
    theirs["title"] = json!("Police plan");
    let refused = put_as(&app, &police, &theirs, &[reason]).await;
    assert_outcome(&refused, StatusCode::FORBIDDEN, Some("CarePlan.title"), "CarePlan.title");
    assert!(
        refused.body["issue"][0]["expression"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("CarePlan.activity[1]")),
        "{}",
        refused.text
    );
    // The lead changes the title; then opens the whole plan to the police, who may now too.
    let mut retitled = edited.body.clone();
    retitled["title"] = json!("Joe's crisis and relapse plan");
    let by_lead = put_as(&app, &hospital, &retitled, &[reason]).await;
    assert_eq!(by_lead.status, StatusCode::OK, "{}", by_lead.text);
    let mut opened = by_lead.body.clone();
    opened["extension"] =
        json!([{"url": EDIT_PERMISSION, "extension": [{"url": "agency", "valueReference": {"reference": POLICE}}]}]);
    assert_eq!(put_as(&app, &hospital, &opened, &[reason]).await.status, StatusCode::OK);
    let mut now_allowed = get_as(&app, &hospital, "/CarePlan/cp-shared").await.body;
    now_allowed["title"] = json!("Joe's plan (police edit)");
    let allowed = put_as(&app, &police, &now_allowed, &[reason]).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);
    // ... but not the permission itself, which is the lead's alone.
    let mut grab = allowed.body.clone();
    grab["extension"] = json!([]);
    assert_eq!(put_as(&app, &police, &grab, &[reason]).await.status, StatusCode::FORBIDDEN);
    // Housing may not even see the plan.
    assert_eq!(put_as(&app, &system(&app, HOUSING), &own, &[reason]).await.status, StatusCode::FORBIDDEN);

    let decided = update_policies(&app, "CarePlan/cp-shared").await;
    assert!(decided.contains(&("care-plan:agency-edit".to_string(), true)), "{decided:?}");
    assert!(decided.contains(&("care-plan:agency-edit".to_string(), false)), "{decided:?}");
}

#[tokio::test]
async fn risk_flags_are_validated_on_write() {
    let app = partnership().await;
    let hospital = system(&app, HOSPITAL);
    let flag = |code: &str, start: &str, end: &str| {
        json!({"resourceType": "Flag", "id": "f-risk", "status": "active", "subject": {"reference": "Patient/joe"},
               "code": {"coding": [{"system": FLAG_CODE, "code": code}]}, "period": {"start": start, "end": end}})
    };
    assert_outcome(
        &put_as(&app, &hospital, &flag("risk-to-pets", "2026-08-01", "2026-08-31"), &[]).await,
        StatusCode::BAD_REQUEST,
        Some("Flag.code.coding[0].code"),
        "unknown flag code",
    );
    assert_outcome(
        &put_as(&app, &hospital, &flag("risk-to-self", "2026-08-31", "2026-08-01"), &[]).await,
        StatusCode::BAD_REQUEST,
        Some("Flag.period"),
        "starts after it ends",
    );
    let mut no_status = flag("risk-to-self", "2026-08-01", "2026-08-31");
    no_status.as_object_mut().unwrap().remove("status");
    assert_eq!(put_as(&app, &hospital, &no_status, &[]).await.status, StatusCode::BAD_REQUEST);
    let stored = put_as(&app, &hospital, &flag("risk-to-self", "2026-08-01", "2026-08-31"), &[]).await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text);
}
