//! The break-glass review queue: each emergency access waits for a governance lead, who records
//! one outcome; the review is audited and shown to the person in their access log.

use axum::http::{Method, StatusCode};
use carecircle_auth::TokenRequest;
use serde_json::{json, Value};

use crate::access::{get_as, partnership, user};
use crate::{assert_outcome, TestApp, TestResponse, PARTNERSHIP};

fn emergency(app: &TestApp, id: &str) -> String {
    TestApp::bearer(&app.token(TokenRequest {
        subject: format!("Practitioner/{id}"),
        fhir_user: Some(format!("Practitioner/{id}")),
        scope: "user/*.rs".into(),
        purpose_of_use: Some("ETREAT".into()),
        purpose_reason: Some("unconscious in the emergency department".into()),
        ttl_seconds: 600,
        ..Default::default()
    }))
}

async fn post_review(app: &TestApp, bearer: &str, seq: u64, body: &Value) -> TestResponse {
    app.request(
        Method::POST,
        &format!("/audit/break-glass/{seq}/review"),
        &[("authorization", bearer), ("content-type", "application/json")],
        Some(body.to_string()),
    )
    .await
}

/// The partnership of the access tests with an information governance lead at the hospital.
async fn with_governance_lead() -> (TestApp, String) {
    let app = partnership().await;
    app.seed(PARTNERSHIP, json!({"resourceType": "Practitioner", "id": "ig-lead", "active": true})).await;
    app.seed(
        PARTNERSHIP,
        json!({"resourceType": "PractitionerRole", "id": "role-ig-lead", "active": true,
               "practitioner": {"reference": "Practitioner/ig-lead"},
               "organization": {"reference": "Organization/hospital"},
               "code": [{"coding": [{"system": "https://carecircle.example.org/fhir/CodeSystem/staff-role",
                                      "code": "information-governance-lead"}]}]}),
    )
    .await;
    let lead = user(&app, "ig-lead");
    (app, lead)
}

#[tokio::test]
async fn a_governance_lead_reviews_each_break_glass_use_once() {
    let (app, lead) = with_governance_lead().await;
    // Ann is known only to the first GP; the ED nurse breaks the glass to read her condition.
    assert_eq!(get_as(&app, &emergency(&app, "ed-nurse"), "/Condition/c-ann").await.status, StatusCode::OK);

    let queue = get_as(&app, &lead, "/audit/break-glass/queue").await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text);
    let uses = queue.body["uses"].as_array().unwrap();
    assert_eq!(uses.len(), 1, "{}", queue.text);
    let pending = &uses[0];
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["user"], "Practitioner/ed-nurse");
    assert_eq!(pending["patient"], "ann");
    assert_eq!(pending["reason"], "unconscious in the emergency department");
    assert_eq!(pending["entity"], "Condition/c-ann");
    assert_eq!(pending["event"]["resourceType"], "AuditEvent");
    let seq = pending["seq"].as_u64().unwrap();

    // Refusals: bad outcomes, entries that are not break-glass uses, unknown entries.
    assert_outcome(
        &post_review(&app, &lead, seq, &json!({"outcome": "fine"})).await,
        StatusCode::BAD_REQUEST,
        Some("outcome"),
        "unknown review outcome",
    );
    assert_outcome(
        &post_review(&app, &lead, seq, &json!({"note": "no outcome"})).await,
        StatusCode::BAD_REQUEST,
        Some("outcome"),
        "needs an outcome",
    );
    assert_outcome(
        &post_review(&app, &lead, 0, &json!({"outcome": "justified"})).await,
        StatusCode::NOT_FOUND,
        None,
        "not a break-glass use",
    );
    assert_outcome(
        &post_review(&app, &lead, 9_999_999, &json!({"outcome": "justified"})).await,
        StatusCode::NOT_FOUND,
        None,
        "not a break-glass use",
    );

    let recorded =
        post_review(&app, &lead, seq, &json!({"outcome": "justified", "note": "Seen in resus; consultant confirmed."}))
            .await;
    assert_eq!(recorded.status, StatusCode::CREATED, "{}", recorded.text);
    assert_eq!(recorded.body["review"]["outcome"], "justified");
    assert_eq!(recorded.body["review"]["reviewer"], "Practitioner/ig-lead");
    // Once only: a second outcome is refused, and the first stands.
    assert_outcome(
        &post_review(&app, &TestApp::bearer(&app.admin_token()), seq, &json!({"outcome": "not-justified"})).await,
        StatusCode::CONFLICT,
        None,
        "already been reviewed",
    );

    assert!(get_as(&app, &lead, "/audit/break-glass/queue").await.body["uses"].as_array().unwrap().is_empty());
    let reviewed = get_as(&app, &lead, "/audit/break-glass/queue?status=reviewed").await;
    let item = &reviewed.body["uses"][0];
    assert_eq!(item["status"], "reviewed", "{}", reviewed.text);
    assert_eq!(item["review"]["outcome"], "justified");
    assert_eq!(item["review"]["note"], "Seen in resus; consultant confirmed.");
    assert_outcome(
        &get_as(&app, &lead, "/audit/break-glass/queue?status=maybe").await,
        StatusCode::BAD_REQUEST,
        Some("status"),
        "pending, reviewed or all",
    );

    // The review is audited: the lead's entry about Ann, after the first and the refused second.
    let entries = app.record.guard().unwrap().audit.store().access_log_for_patient("ann", None, 100).await.unwrap();
    let reviews: Vec<_> = entries
        .iter()
        .filter(|e| e.record.query.as_deref().is_some_and(|q| q.starts_with("$break-glass-review")))
        .map(|e| (e.record.agent.user_id.clone(), e.record.query.clone().unwrap(), e.record.outcome))
        .collect();
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    assert!(reviews.iter().any(|(u, q, _)| u == "Practitioner/ig-lead" && q.ends_with("outcome=justified")));

    // Ann sees the outcome (not the lead's note) beside the use in her own access log.
    let ann = TestApp::bearer(&app.token(TokenRequest {
        subject: "Patient/ann".into(),
        fhir_user: Some("Patient/ann".into()),
        scope: "openid fhirUser patient/*.rs".into(),
        ttl_seconds: 600,
        ..Default::default()
    }));
    let log = get_as(&app, &ann, "/Patient/ann/$access-log").await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let annotated: Vec<&Value> = log.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| {
            r["extension"]
                .as_array()
                .is_some_and(|x| x.iter().any(|x| x["url"].as_str().unwrap().ends_with("break-glass-review")))
        })
        .collect();
    assert_eq!(annotated.len(), 1, "{}", log.text);
    assert_eq!(annotated[0]["extension"][0]["extension"][0]["valueCode"], "justified");
    assert!(!log.text.contains("consultant confirmed"), "the note stays with governance");
}

#[tokio::test]
async fn only_governance_leads_see_and_review_the_queue() {
    let (app, _lead) = with_governance_lead().await;
    assert_eq!(get_as(&app, &emergency(&app, "ed-nurse"), "/Condition/c-ann").await.status, StatusCode::OK);
    let admin = TestApp::bearer(&app.admin_token());
    let seq = get_as(&app, &admin, "/audit/break-glass/queue").await.body["uses"][0]["seq"].as_u64().unwrap();
    for bearer in [user(&app, "gp-user"), user(&app, "ed-nurse"), emergency(&app, "ed-nurse")] {
        assert_outcome(
            &get_as(&app, &bearer, "/audit/break-glass/queue").await,
            StatusCode::FORBIDDEN,
            None,
            "governance",
        );
        assert_outcome(
            &post_review(&app, &bearer, seq, &json!({"outcome": "justified"})).await,
            StatusCode::FORBIDDEN,
            None,
            "governance",
        );
    }
    // The administrator may review too; the use is then off the pending queue.
    let by_admin =
        post_review(&app, &admin, seq, &json!({"outcome": "referred", "note": "to the Caldicott guardian"})).await;
    assert_eq!(by_admin.status, StatusCode::CREATED, "{}", by_admin.text);
    let all = get_as(&app, &admin, "/audit/break-glass/queue?status=all").await;
    assert_eq!(all.body["uses"][0]["review"]["outcome"], "referred", "{}", all.text);
}
