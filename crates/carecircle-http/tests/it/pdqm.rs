//! IHE PDQm (ITI-78) on `GET /Patient`: every parameter PDQm names finds the demographics it
//! should, with R4 string semantics (case- and accent-insensitive prefix), and the access
//! decision filters the answers like any search.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{TestApp, TestResponse};

async fn search_as(app: &TestApp, bearer: &str, query: &str) -> TestResponse {
    app.request(Method::GET, &format!("/Patient?{query}"), &[("authorization", bearer)], None).await
}

fn ids(response: &TestResponse) -> Vec<String> {
    let mut ids: Vec<String> = response.body["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] != "outcome")
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn pdqm_parameters_find_patients_the_caller_may_see() {
    let app = TestApp::new().await;
    for (id, sector) in [("gp", "primary-care"), ("housing", "housing")] {
        app.seed_partner(id, sector).await;
    }
    app.seed(
        "Organization/gp",
        json!({"resourceType": "Patient", "id": "g-zoe", "active": true,
               "identifier": [{"system": "https://gp.example/id", "value": "G7"}],
               "name": [{"family": "Ó Briain", "given": ["Zoë", "Ann"]}], "gender": "female", "birthDate": "1984-06-02",
               "telecom": [{"system": "phone", "value": "01134960000"}],
               "address": [{"line": ["4 Mill Lane"], "city": "Leeds", "postalCode": "LS3 1AB", "state": "West Yorkshire", "country": "GB"}]}),
    )
    .await;
    app.seed(
        "Organization/gp",
        json!({"resourceType": "Patient", "id": "g-tom", "name": [{"family": "Brown", "given": ["Tom"]}],
               "gender": "male", "birthDate": "1950-01-01", "address": [{"city": "York", "postalCode": "YO1 7HH"}]}),
    )
    .await;
    app.seed(
        "Organization/housing",
        json!({"resourceType": "Patient", "id": "h-zoe", "name": [{"family": "O Briain", "given": ["Zoe"]}],
               "gender": "female", "birthDate": "1984-06-02"}),
    )
    .await;
    let gp = TestApp::bearer(&app.token(TestApp::system_request("Organization/gp")));
    for (query, expected) in [
        ("family=o%20briain", vec!["g-zoe"]),
        ("family=O%20BRI", vec!["g-zoe"]),
        ("given=zoe", vec!["g-zoe"]),
        ("given=ann", vec!["g-zoe"]),
        ("given:exact=Zo%C3%AB", vec!["g-zoe"]),
        ("birthdate=1984-06-02", vec!["g-zoe"]),
        ("birthdate=ge1980", vec!["g-zoe"]),
        ("identifier=https://gp.example/id|G7", vec!["g-zoe"]),
        ("gender=male", vec!["g-tom"]),
        ("address=leeds", vec!["g-zoe"]),
        ("address:contains=mill", vec!["g-zoe"]),
        ("address-city=leeds", vec!["g-zoe"]),
        ("address-postalcode=YO1", vec!["g-tom"]),
        ("address-state=west%20yorkshire", vec!["g-zoe"]),
        ("address-country=GB", vec!["g-zoe"]),
        ("telecom=01134960000", vec!["g-zoe"]),
        ("_id=g-tom", vec!["g-tom"]),
        ("active=true", vec!["g-zoe"]),
        ("family=brown&gender=female", vec![]),
    ] {
        let response = search_as(&app, &gp, query).await;
        assert_eq!(response.status, StatusCode::OK, "{query}: {}", response.text);
        assert_eq!(ids(&response), expected, "{query}: {}", response.text);
    }
    // Housing's Zoe matches the same demographics but is not the GP's to see.
    let housing = TestApp::bearer(&app.token(TestApp::system_request("Organization/housing")));
    assert_eq!(ids(&search_as(&app, &housing, "birthdate=1984-06-02").await), ["h-zoe"]);
    // An unknown parameter is refused, as PDQm expects of a strict server.
    let unknown = search_as(&app, &gp, "mothersMaidenName=x").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
}
