//! Authentication: every refusal a client can meet (no token, expired, forged, `alg: none`,
//! wrong issuer or audience, unknown user, scopes), the principals a token can stand for, SMART
//! discovery, and the Backend Services token exchange.

use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use carecircle_auth::{SigningKey, TokenRequest, DEV_ISSUER};
use carecircle_http::auth::{BREAK_GLASS_EXTENSION, CLIENT_EXTENSION, CLIENT_ID_SYSTEM};
use serde_json::json;

use crate::{assert_outcome, patient, TestApp, TestResponse, BASE, PARTNERSHIP, SECTOR};

async fn get_with(app: &TestApp, uri: &str, token: &str) -> TestResponse {
    let bearer = format!("Bearer {token}");
    app.request(Method::GET, uri, &[("authorization", bearer.as_str())], None).await
}

async fn post_with(app: &TestApp, uri: &str, token: &str, body: &serde_json::Value) -> TestResponse {
    let bearer = format!("Bearer {token}");
    app.request(Method::POST, uri, &[("authorization", bearer.as_str())], Some(body.to_string())).await
}

fn user_request(fhir_user: &str) -> TokenRequest {
    TokenRequest {
        subject: fhir_user.into(),
        fhir_user: Some(fhir_user.into()),
        scope: "openid fhirUser user/*.cruds".into(),
        ttl_seconds: 600,
        ..Default::default()
    }
}

/// A partner with a team, and a practitioner with a role in that team.
async fn seed_staff(app: &TestApp) {
    app.seed_partner("hospital", "acute").await;
    app.seed(
        PARTNERSHIP,
        json!({"resourceType": "Organization", "id": "hospital-ed", "name": "ED", "partOf": {"reference": "Organization/hospital"},
               "type": [{"coding": [{"system": SECTOR, "code": "acute"}]}]}),
    )
    .await;
    app.seed(PARTNERSHIP, json!({"resourceType": "Practitioner", "id": "nurse", "active": true})).await;
    app.seed(
        PARTNERSHIP,
        json!({"resourceType": "PractitionerRole", "id": "role-nurse", "active": true,
               "practitioner": {"reference": "Practitioner/nurse"},
               "organization": {"reference": "Organization/hospital-ed"},
               "code": [{"coding": [{"system": "https://carecircle.example.org/fhir/CodeSystem/staff-role", "code": "ed-nurse"}]}],
               "extension": [{"url": BREAK_GLASS_EXTENSION, "valueBoolean": true}]}),
    )
    .await;
    app.seed(PARTNERSHIP, json!({"resourceType": "Practitioner", "id": "retired", "active": false})).await;
    app.seed(PARTNERSHIP, json!({"resourceType": "Practitioner", "id": "no-role"})).await;
}

#[tokio::test]
async fn discovery_metadata_and_health_need_no_token_and_everything_else_does() {
    let app = TestApp::new().await;
    for path in ["/metadata", "/healthz", "/.well-known/smart-configuration", "/.well-known/jwks.json"] {
        let response = app.request(Method::GET, path, &[("authorization", "")], None).await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
    }
    let smart = app.request(Method::GET, "/.well-known/smart-configuration", &[("authorization", "")], None).await;
    assert_eq!(smart.body["token_endpoint"], format!("{BASE}/auth/token"));
    assert!(smart.body["capabilities"].as_array().unwrap().iter().any(|c| c == "client-confidential-asymmetric"));
    let jwks = app.request(Method::GET, "/.well-known/jwks.json", &[("authorization", "")], None).await;
    assert!(jwks.body["keys"].as_array().unwrap().iter().all(|k| k["kty"] == "OKP" && k.get("d").is_none()));

    for path in ["/Patient", "/Patient/x", "/", "/_history", "/metrics", "/nothing-here"] {
        let response = app.request(Method::GET, path, &[("authorization", "")], None).await;
        assert_outcome(&response, StatusCode::UNAUTHORIZED, None, "bearer token");
        assert_eq!(response.body["issue"][0]["code"], "login");
        assert!(response.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    }
    let basic = app.request(Method::GET, "/Patient", &[("authorization", "Basic YTpi")], None).await;
    assert_outcome(&basic, StatusCode::UNAUTHORIZED, None, "bearer token");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_reason() {
    let app = TestApp::new().await;
    let good = TestApp::system_request(PARTNERSHIP);
    // Signed by a key the server does not trust, under the development issuer's name.
    let forged = good.mint(&SigningKey::generate(), DEV_ISSUER, BASE).unwrap();
    assert_outcome(&get_with(&app, "/Patient", &forged).await, StatusCode::UNAUTHORIZED, None, "signature");
    // An issuer the server does not know.
    let elsewhere = good.mint(&SigningKey::generate(), "https://idp.elsewhere.example", BASE).unwrap();
    assert_outcome(&get_with(&app, "/Patient", &elsewhere).await, StatusCode::UNAUTHORIZED, None, "issuer");
    // alg: none, with the payload of a genuine token.
    let payload = app.token(good.clone()).split('.').nth(1).unwrap().to_string();
    let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#));
    assert_outcome(&get_with(&app, "/Patient", &none).await, StatusCode::UNAUTHORIZED, None, "algorithm 'none'");
    // Garbage and an expired token.
    assert_outcome(&get_with(&app, "/Patient", "not-a-jwt").await, StatusCode::UNAUTHORIZED, None, "well-formed");
    assert_outcome(&get_with(&app, "/Patient", "").await, StatusCode::UNAUTHORIZED, None, "bearer token");
}

#[tokio::test]
async fn expired_and_misaddressed_tokens_from_the_trusted_issuer_are_refused() {
    let app = TestApp::new().await;
    let now = carecircle_auth::now_seconds();
    let claims = |aud: &str, exp: u64| {
        json!({"iss": DEV_ISSUER, "sub": "s", "aud": aud, "exp": exp, "iat": now - 3600, "jti": "t",
               "scope": "system/*.cruds", "organization": PARTNERSHIP})
    };
    assert_eq!(get_with(&app, "/Patient", &app.sign(&claims(BASE, now + 60))).await.status, StatusCode::OK);
    let expired = app.sign(&claims(BASE, now - 120));
    assert_outcome(&get_with(&app, "/Patient", &expired).await, StatusCode::UNAUTHORIZED, None, "expired");
    let misdirected = app.sign(&claims("https://other.example/fhir", now + 60));
    assert_outcome(&get_with(&app, "/Patient", &misdirected).await, StatusCode::UNAUTHORIZED, None, "audience");
    let mut no_expiry = claims(BASE, now);
    no_expiry.as_object_mut().unwrap().remove("exp");
    assert_outcome(&get_with(&app, "/Patient", &app.sign(&no_expiry)).await, StatusCode::UNAUTHORIZED, None, "exp");
}

#[tokio::test]
async fn tokens_resolve_to_known_active_users_with_a_role() {
    let app = TestApp::new().await;
    seed_staff(&app).await;
    // A practitioner with a role in a team writes as the team's partner organisation.
    let nurse = app.token(user_request("Practitioner/nurse"));
    let created = post_with(&app, "/Patient", &nurse, &patient("Smith", "Jo", "1971-03-14", "9434765919")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["meta"]["source"], "Organization/hospital");
    // Unknown, inactive and role-less users are refused.
    for (user, words) in [
        ("Practitioner/ghost", "not known"),
        ("Practitioner/retired", "not active"),
        ("Practitioner/no-role", "no active role"),
        ("Patient/ghost", "not known"),
        ("Organization/hospital", "fhirUser must be"),
    ] {
        let token = app.token(user_request(user));
        assert_outcome(&get_with(&app, "/Patient", &token).await, StatusCode::UNAUTHORIZED, None, words);
    }
    // A system token for an organisation the record does not hold.
    let stranger = app.token(TestApp::system_request("Organization/nowhere"));
    assert_outcome(&get_with(&app, "/Patient", &stranger).await, StatusCode::UNAUTHORIZED, None, "not known");
    // A purpose of use that is not one of the partnership's.
    let odd_purpose =
        app.token(TokenRequest { purpose_of_use: Some("MARKETING".into()), ..user_request("Practitioner/nurse") });
    assert_outcome(&get_with(&app, "/Patient", &odd_purpose).await, StatusCode::UNAUTHORIZED, None, "purpose of use");
}

#[tokio::test]
async fn a_user_deactivated_while_their_token_is_in_use_is_refused_on_the_next_request() {
    let app = TestApp::new().await;
    seed_staff(&app).await;
    let nurse = app.token(user_request("Practitioner/nurse"));
    for _ in 0..3 {
        assert_eq!(get_with(&app, "/Patient", &nurse).await.status, StatusCode::OK);
    }
    // The role ends: the very next request with the same token is refused.
    app.seed(
        PARTNERSHIP,
        json!({"resourceType": "PractitionerRole", "id": "role-nurse", "active": false,
               "practitioner": {"reference": "Practitioner/nurse"},
               "organization": {"reference": "Organization/hospital-ed"}}),
    )
    .await;
    assert_outcome(&get_with(&app, "/Patient", &nurse).await, StatusCode::UNAUTHORIZED, None, "no active role");
}

#[tokio::test]
async fn scopes_narrow_what_a_token_may_do() {
    let app = TestApp::new().await;
    seed_staff(&app).await;
    let read_patients =
        app.token(TokenRequest { scope: "user/Patient.rs".into(), ..user_request("Practitioner/nurse") });
    assert_eq!(get_with(&app, "/Patient", &read_patients).await.status, StatusCode::OK);
    let refused = post_with(
        &app,
        "/Observation",
        &read_patients,
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
    )
    .await;
    assert_outcome(&refused, StatusCode::FORBIDDEN, None, "scopes do not allow 'c' on Observation");
    assert_eq!(refused.body["issue"][0]["code"], "security");
    assert_outcome(&get_with(&app, "/Condition", &read_patients).await, StatusCode::FORBIDDEN, None, "scopes");
    assert_outcome(&get_with(&app, "/?_id=x", &read_patients).await, StatusCode::FORBIDDEN, None, "all resource types");
    // A transaction is checked entry by entry before anything runs.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient("A", "B", "1990-01-01", "1"), "request": {"method": "POST", "url": "Patient"}}]});
    let creating = post_with(&app, "/", &read_patients, &bundle).await;
    assert_outcome(&creating, StatusCode::FORBIDDEN, None, "'c' on Patient");
    assert_eq!(app.count("Patient").await, 0);
}

async fn exchange(app: &TestApp, assertion: String, scope: &str) -> TestResponse {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        .append_pair("client_assertion", &assertion)
        .append_pair("scope", scope)
        .finish();
    app.request(
        Method::POST,
        "/auth/token",
        &[("authorization", ""), ("content-type", "application/x-www-form-urlencoded")],
        Some(form),
    )
    .await
}

#[tokio::test]
async fn a_partner_system_exchanges_a_signed_assertion_for_a_system_token() {
    let app = TestApp::new().await;
    seed_staff(&app).await;
    let client_key = SigningKey::generate();
    let device = json!({
        "resourceType": "Device", "id": "ed-feed", "status": "active",
        "identifier": [{"system": CLIENT_ID_SYSTEM, "value": "ed-feed"}],
        "owner": {"reference": "Organization/hospital"},
        "extension": [{"url": CLIENT_EXTENSION, "extension": [
            {"url": "jwks", "valueString": json!({"keys": [client_key.public_jwk()]}).to_string()},
            {"url": "scope", "valueString": "system/Patient.cruds system/Encounter.cruds"}]}]
    });
    app.seed(PARTNERSHIP, device).await;

    let endpoint = format!("{BASE}/auth/token");
    let assertion = |jti: &str, key: &SigningKey, client: &str| {
        let now = carecircle_auth::now_seconds();
        key.sign(&json!({"iss": client, "sub": client, "aud": endpoint, "exp": now + 60, "jti": jti})).unwrap()
    };
    let granted = exchange(&app, assertion("j1", &client_key, "ed-feed"), "system/*.cruds").await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    assert_eq!(granted.body["token_type"], "bearer");
    assert_eq!(granted.body["scope"], "system/Patient.cruds system/Encounter.cruds", "never more than registered");
    let token = granted.body["access_token"].as_str().unwrap().to_string();
    let created = post_with(&app, "/Patient", &token, &patient("Jones", "Al", "1980-05-05", "1")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["meta"]["source"], "Organization/hospital", "the client's organisation is the custodian");
    assert_eq!(get_with(&app, "/Observation", &token).await.status, StatusCode::FORBIDDEN);

    let replayed = exchange(&app, assertion("j1", &client_key, "ed-feed"), "system/Patient.rs").await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replayed.body["error"], "invalid_client");
    let forged = exchange(&app, assertion("j2", &SigningKey::generate(), "ed-feed"), "system/Patient.rs").await;
    assert_eq!(forged.body["error"], "invalid_client");
    let unknown = exchange(&app, assertion("j3", &client_key, "someone-else"), "system/Patient.rs").await;
    assert_eq!(unknown.body["error"], "invalid_client");
    let no_scope = exchange(&app, assertion("j4", &client_key, "ed-feed"), "system/Observation.rs").await;
    assert_eq!(no_scope.body["error"], "invalid_scope");
    let wrong_grant = app
        .request(
            Method::POST,
            "/auth/token",
            &[("authorization", ""), ("content-type", "application/x-www-form-urlencoded")],
            Some("grant_type=password".into()),
        )
        .await;
    assert_eq!(wrong_grant.body["error"], "unsupported_grant_type");
}
