//! The `carecircle` binary as a data engineer uses it: import files (with a bad line and a
//! transaction Bundle among them), migrate, and write demo data.

mod audit;
mod demo_joe;
mod link;
mod lists;
mod mllp;
mod nats;

use std::path::Path;
use std::process::Command;

pub(crate) fn carecircle(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_carecircle"));
    command.arg("--data-dir").arg(data_dir).env("RUST_LOG", "warn");
    command
}

#[test]
fn import_reports_what_it_stored_and_what_it_refused() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("input");
    std::fs::create_dir_all(input.join("nested")).unwrap();
    std::fs::write(
        input.join("people.ndjson"),
        concat!(
            r#"{"resourceType":"Patient","id":"p1","name":[{"family":"Smith"}]}"#,
            "\n",
            r#"{"resourceType":"Patient","id":"p2","birthDate":"1971-02-30"}"#,
            "\n",
            "not json\n",
            r#"{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"weight"},"subject":{"reference":"Patient/p1"}}"#,
            "\n"
        ),
    )
    .unwrap();
    std::fs::write(
        input.join("nested/bundle.json"),
        r#"{"resourceType":"Bundle","type":"transaction","entry":[
            {"fullUrl":"urn:uuid:1d2b7f4e-5c1a-4c55-9d3c-0a8f7f1e9b11","resource":{"resourceType":"Patient","name":[{"family":"Jones"}]},"request":{"method":"POST","url":"Patient"}},
            {"resource":{"resourceType":"Encounter","status":"finished","class":{"code":"EMER"},"subject":{"reference":"urn:uuid:1d2b7f4e-5c1a-4c55-9d3c-0a8f7f1e9b11"}},"request":{"method":"POST","url":"Encounter"}}]}"#,
    )
    .unwrap();
    std::fs::write(input.join("ignored.txt"), "not FHIR").unwrap();

    let data = work.path().join("data");
    let output = carecircle(&data).args(["import", "--custodian", "Organization/gp-1"]).arg(&input).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "refusals make the exit code 2: {stdout}");
    assert!(stdout.contains("imported 4 resources (4 created, 0 updated) and 1 Bundles"), "{stdout}");
    assert!(stdout.contains("2 refused"), "{stdout}");
    assert!(
        stdout.contains("people.ndjson:2") && stdout.contains("1971-02-30"),
        "the refusal names the line and why: {stdout}"
    );
    assert!(stdout.contains("people.ndjson:3") && stdout.contains("not valid JSON"), "{stdout}");

    // Importing the same file again updates rather than duplicates.
    let again = carecircle(&data)
        .args(["import", "--custodian", "Organization/gp-1"])
        .arg(input.join("people.ndjson"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("(0 created, 2 updated)"));

    let migrate = carecircle(&data).arg("migrate").output().unwrap();
    assert!(migrate.status.success());
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("sqlite database schema is up to date"));
}

#[test]
fn import_refuses_a_bad_custodian_and_missing_paths() {
    let work = tempfile::tempdir().unwrap();
    let bad_custodian = carecircle(work.path()).args(["import", "--custodian", "gp-1", "x.json"]).output().unwrap();
    assert!(!bad_custodian.status.success());
    assert!(String::from_utf8_lossy(&bad_custodian.stderr).contains("Organization/{id}"));
    let missing = carecircle(work.path()).args(["import", "/nonexistent/file.ndjson"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    let bad_database = carecircle(work.path()).args(["--database", "mysql://x", "migrate"]).output().unwrap();
    assert!(String::from_utf8_lossy(&bad_database.stderr).contains("postgres://"));
}

#[test]
fn demo_data_is_deterministic_and_importable() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a.ndjson"), work.path().join("b.ndjson"));
    for path in [&a, &b] {
        let output = carecircle(work.path()).args(["demo-data", "--people", "50", "--out"]).arg(path).output().unwrap();
        assert!(output.status.success());
    }
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text, std::fs::read_to_string(&b).unwrap());
    assert!(text.lines().count() > 100);
    let import = carecircle(&work.path().join("data")).arg("import").arg(&a).output().unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stdout));
    assert!(String::from_utf8_lossy(&import.stdout).contains("0 refused"));
}

#[test]
fn token_mints_development_tokens_and_refuses_bad_requests() {
    let work = tempfile::tempdir().unwrap();
    let user = carecircle(work.path()).args(["token", "--user", "prac-1", "--ttl", "30m"]).output().unwrap();
    assert!(user.status.success(), "{}", String::from_utf8_lossy(&user.stderr));
    let token = String::from_utf8_lossy(&user.stdout).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a compact JWT: {token}");
    assert!(work.path().join("keys/dev-issuer.pem").exists(), "the issuer's key is kept in the data directory");
    let system = carecircle(work.path()).args(["token", "--system", "--org", "org-vale-hospital"]).output().unwrap();
    assert!(system.status.success());
    for (args, words) in [
        (vec!["token", "--user", "p", "--purpose", "ETREAT"], "needs --reason"),
        (vec!["token", "--user", "p", "--purpose", "SELLING"], "--purpose must be one of"),
        (vec!["token", "--user", "p", "--scope", "user/Patient.x"], "--scope"),
        (vec!["token", "--system"], "--org"),
        (vec!["token"], "required"),
        (vec!["token", "--admin", "--ttl", "9d"], "--ttl"),
    ] {
        let output = carecircle(work.path()).args(&args).output().unwrap();
        assert!(!output.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    }
}
