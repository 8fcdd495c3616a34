//! The tamper-evident audit log engine: audit records and their canonical encoding, FHIR
//! `AuditEvent` rendering (IHE BALP), the RFC 6962 Merkle tree with inclusion and consistency
//! proofs, signed checkpoints (C2SP tlog-checkpoint, Ed25519) and the verifier. Pure: no I/O, no
//! async runtime, no database; storage lives in `carecircle-audit-store`.

pub mod checkpoint;
pub mod fhir;
pub mod merkle;
pub mod record;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, LogSigner, LogVerifier};
pub use merkle::{Frontier, Hash, Subtree, UnalignedSubtree};
pub use record::{
    AgentKind, AuditAction, AuditAgent, AuditDecision, AuditEntity, AuditEntry, AuditOutcome, AuditRecord, DecodeError,
    RecordView,
};
pub use verify::{check_entry, Tamper, Verifier, VerifyReport};

/// A hash as lowercase hex, for reports and logs.
pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
