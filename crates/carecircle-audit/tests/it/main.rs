//! Integration tests of the audit engine: Merkle vectors and properties, record encoding,
//! AuditEvent rendering, signed checkpoints and the verifier.

mod checkpoint;
mod fhir;
mod merkle;
mod record;
mod verify;

use carecircle_audit::{AgentKind, AuditAction, AuditAgent, AuditEntity, AuditOutcome, AuditRecord};

/// A practitioner's read of a patient's resource, the most common event.
pub fn read_record(user: &str, patient: &str) -> AuditRecord {
    AuditRecord {
        recorded_ms: 1_700_000_000_000,
        action: AuditAction::Read,
        outcome: AuditOutcome::Success,
        agent: AuditAgent {
            user_id: user.into(),
            kind: AgentKind::Practitioner,
            organisation: Some("gp-1".into()),
            role: Some("gp".into()),
        },
        purpose_of_use: Some("TREAT".into()),
        break_glass: false,
        break_glass_reason: None,
        in_care_relationship: Some(true),
        entity: Some(AuditEntity { resource_type: "Observation".into(), id: "obs-1".into(), version: Some(3) }),
        patient_id: Some(patient.into()),
        query: None,
        decision: None,
        client_address: Some("127.0.0.1".into()),
        request_id: Some("req-1".into()),
    }
}
