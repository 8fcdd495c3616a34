//! `carecircle audit verify` against a real audit log: intact, then with a row altered, removed
//! and two rows reordered behind the server's back.

use std::path::Path;

use carecircle_audit_store::carecircle_audit::{AgentKind, AuditAction, AuditAgent, AuditOutcome, AuditRecord};
use carecircle_audit_store::{load_or_create_signer, AuditLog, AuditLogConfig, AuditStore};

use crate::carecircle;

fn record(i: usize) -> AuditRecord {
    AuditRecord {
        recorded_ms: 1_700_000_000_000 + i as i64,
        action: AuditAction::Read,
        outcome: AuditOutcome::Success,
        agent: AuditAgent {
            user_id: format!("Practitioner/p{i}"),
            kind: AgentKind::Practitioner,
            organisation: Some("gp".into()),
            role: Some("gp".into()),
        },
        purpose_of_use: Some("TREAT".into()),
        break_glass: false,
        break_glass_reason: None,
        in_care_relationship: Some(true),
        entity: None,
        patient_id: Some(format!("person-{}", i % 3)),
        query: None,
        decision: None,
        client_address: None,
        request_id: Some(format!("r{i}")),
    }
}

async fn write_log(data: &Path, n: usize) {
    let store = AuditStore::open_sqlite_dir(data).await.unwrap();
    let signer = load_or_create_signer(&data.join("keys/audit-log.key"), "carecircle.test/audit").unwrap();
    let log = AuditLog::start(store, signer, AuditLogConfig::default());
    log.append((0..n).map(record).collect()).await.unwrap();
    log.checkpoint_now().await.unwrap();
}

fn tamper(data: &Path, sql: &str) {
    let db = rusqlite::Connection::open(data.join("audit.db")).unwrap();
    db.execute_batch("DROP TRIGGER IF EXISTS audit_entries_no_update; DROP TRIGGER IF EXISTS audit_entries_no_delete;")
        .unwrap();
    db.execute_batch(sql).unwrap();
}

fn verify(data: &Path) -> (Option<i32>, String) {
    let output = carecircle(data).args(["audit", "verify"]).output().unwrap();
    (
        output.status.code(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

#[tokio::test]
async fn audit_verify_passes_an_intact_log_and_names_the_first_bad_entry() {
    let work = tempfile::tempdir().unwrap();
    let cases = [
        ("intact", ""),
        ("altered", "UPDATE audit_entries SET content = CAST(substr(content, 1, 20) || X'FF' || substr(content, 22) AS BLOB) WHERE seq = 4;"),
        ("removed", "DELETE FROM audit_entries WHERE seq = 6;"),
        ("reordered", "UPDATE audit_entries SET seq = -1 WHERE seq = 2; UPDATE audit_entries SET seq = 2 WHERE seq = 3; UPDATE audit_entries SET seq = 3 WHERE seq = -1;"),
    ];
    for (name, sql) in cases {
        let data = work.path().join(name);
        write_log(&data, 10).await;
        if !sql.is_empty() {
            tamper(&data, sql);
        }
        let (code, output) = verify(&data);
        match name {
            "intact" => {
                assert_eq!(code, Some(0), "{output}");
                assert!(output.contains("10 entries"), "{output}");
            }
            "altered" => {
                assert_eq!(code, Some(1), "{output}");
                assert!(output.contains("entry 4"), "{output}");
            }
            "removed" => {
                assert_eq!(code, Some(1), "{output}");
                assert!(output.contains("entry 6"), "{output}");
            }
            _ => {
                assert_eq!(code, Some(1), "{output}");
                assert!(output.contains("entry 2"), "{output}");
            }
        }
    }
    // Without the key that signed it, verify refuses rather than trusting the log.
    let keyless = work.path().join("keyless");
    std::fs::create_dir_all(&keyless).unwrap();
    let (code, output) = verify(&keyless);
    assert_ne!(code, Some(0));
    assert!(output.contains("key"), "{output}");
}
