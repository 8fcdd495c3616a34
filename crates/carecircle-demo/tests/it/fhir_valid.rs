//! Every generated resource passes the workspace's structural FHIR R4 validator.

use carecircle_demo::{generate, DemoConfig};

#[test]
fn every_resource_is_structurally_valid_fhir_r4() {
    let all = generate(&DemoConfig { seed: 11, n_people: 400 });
    let mut failures = Vec::new();
    for r in &all {
        let issues = carecircle_fhir::validate::validate_resource(&r.resource);
        if !issues.is_empty() {
            failures.push(format!("{}/{}: {issues:?}", r.resource["resourceType"], r.resource["id"]));
        }
    }
    // The validator does catch a wrong shape (so the check above means something).
    let mut bad = all.iter().find(|r| r.resource["resourceType"] == "Encounter").unwrap().resource.clone();
    bad["class"] = serde_json::json!([bad["class"].clone()]);
    bad["birthDate"] = serde_json::json!("1970-01-01");
    assert!(!carecircle_fhir::validate::validate_resource(&bad).is_empty());
    assert!(failures.is_empty(), "{} invalid, e.g. {:#?}", failures.len(), &failures[..failures.len().min(5)]);
}
