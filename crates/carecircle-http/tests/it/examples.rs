//! Every official FHIR R4 example is accepted and returned unchanged apart from `id` and `meta`
//! (whose `versionId`, `lastUpdated` and `source` the server sets). Bundles of type
//! `transaction` and `batch` are processed, as FHIR says they are, instead of stored; every
//! other Bundle is stored like any resource. R4's Subscription examples are query-based and are
//! refused: the server runs topic-based Subscriptions only (`docs/subscriptions.md`).

use std::path::Path;

use axum::http::StatusCode;
use serde_json::Value;

use crate::TestApp;

fn examples_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir-r4-examples"))
}

/// The resource without the parts the server manages.
fn comparable(mut resource: Value) -> Value {
    if let Some(object) = resource.as_object_mut() {
        object.remove("id");
        if let Some(meta) = object.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("versionId");
            meta.remove("lastUpdated");
            meta.remove("source");
            if meta.is_empty() {
                object.remove("meta");
            }
        }
    }
    resource
}

#[tokio::test]
async fn every_official_example_round_trips() {
    let app = TestApp::new().await;
    let mut files: Vec<_> = std::fs::read_dir(examples_dir())
        .expect("the examples folder beside the repository")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 500, "expected the official examples, found {}", files.len());
    let (mut stored, mut processed) = (0, 0);
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "json")) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let original: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let resource_type = original["resourceType"].as_str().unwrap().to_string();
        if resource_type == "Bundle" && matches!(original["type"].as_str(), Some("transaction" | "batch")) {
            let response = app.post("/", &original).await;
            assert_eq!(response.status, StatusCode::OK, "{name}: {}", response.text);
            assert!(response.body["type"].as_str().unwrap().ends_with("-response"), "{name}");
            processed += 1;
            continue;
        }
        if resource_type == "Subscription" {
            // R4's own examples are query-based subscriptions; the server runs only topic-based
            // ones (Subscriptions Backport IG) and says so instead of storing an inert one.
            let response = app.post("/Subscription", &original).await;
            assert_eq!(response.status, StatusCode::BAD_REQUEST, "{name}: {}", response.text);
            assert!(response.text.contains("Subscription.criteria"), "{name}: {}", response.text);
            continue;
        }
        let response = match original["id"].as_str() {
            Some(id) => app.put(&format!("/{resource_type}/{id}"), &original).await,
            None => app.post(&format!("/{resource_type}"), &original).await,
        };
        assert!(response.status.is_success(), "{name}: {} {}", response.status, response.text);
        let location = response.headers["location"].to_str().unwrap().to_string();
        let path = location.split("/_history").next().unwrap().strip_prefix(crate::BASE).unwrap().to_string();
        let read = app.get(&path).await;
        assert_eq!(read.status, StatusCode::OK, "{name}");
        assert_eq!(comparable(read.body.clone()), comparable(original.clone()), "{name} did not come back unchanged");
        if let Some(id) = original["id"].as_str() {
            assert_eq!(read.body["id"], id, "{name} keeps its id");
        }
        stored += 1;
    }
    assert!(stored > 500 && processed > 0, "stored {stored}, processed {processed}");
}
