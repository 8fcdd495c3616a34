//! The canonical encoding: round trips, canonical bytes and size.

use carecircle_audit::record::encoded_seq;
use carecircle_audit::{
    AgentKind, AuditAction, AuditAgent, AuditDecision, AuditEntity, AuditOutcome, AuditRecord, RecordView,
};
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9/._ é-]{0,40}"
}

fn record() -> impl Strategy<Value = AuditRecord> {
    let agent =
        (text(), 0usize..5, option::of(text()), option::of(text())).prop_map(|(user_id, kind, organisation, role)| {
            AuditAgent { user_id, kind: AgentKind::ALL[kind], organisation, role }
        });
    let entity = option::of((text(), text(), option::of(0u64..=i64::MAX as u64)))
        .prop_map(|e| e.map(|(resource_type, id, version)| AuditEntity { resource_type, id, version }));
    let decision = option::of((any::<bool>(), text(), proptest::collection::vec(text(), 0..4)))
        .prop_map(|d| d.map(|(permit, policy_id, clause_ids)| AuditDecision { permit, policy_id, clause_ids }));
    (
        (any::<i64>(), 0usize..13, 0usize..4, agent, option::of(text()), any::<bool>(), option::of(text())),
        (option::of(any::<bool>()), entity, option::of(text()), option::of(text()), decision),
        (option::of(text()), option::of(text())),
    )
        .prop_map(
            |(
                (recorded_ms, action, outcome, agent, purpose_of_use, break_glass, break_glass_reason),
                (in_care_relationship, entity, patient_id, query, decision),
                (client_address, request_id),
            )| AuditRecord {
                recorded_ms,
                action: AuditAction::ALL[action],
                outcome: [
                    AuditOutcome::Success,
                    AuditOutcome::MinorFailure,
                    AuditOutcome::SeriousFailure,
                    AuditOutcome::MajorFailure,
                ][outcome],
                agent,
                purpose_of_use,
                break_glass,
                break_glass_reason,
                in_care_relationship,
                entity,
                patient_id,
                query,
                decision,
                client_address,
                request_id,
            },
        )
}

proptest! {
    #[test]
    fn records_round_trip_through_the_encoding(record in record(), seq in any::<u64>()) {
        let bytes = record.encode(seq);
        let entry = AuditRecord::decode(&bytes).expect("decodes");
        prop_assert_eq!(entry.seq, seq);
        prop_assert_eq!(&entry.record, &record);
        prop_assert_eq!(encoded_seq(&bytes), Some(seq));
        // The encoding is canonical: decoding and encoding again gives the same bytes.
        prop_assert_eq!(entry.record.encode(seq), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(view) = RecordView::decode(&bytes) {
            // Whatever decodes is canonical.
            prop_assert_eq!(view.to_entry().record.encode(view.seq), bytes);
        }
    }

    #[test]
    fn any_single_byte_change_changes_or_breaks_the_record(record in record(), at in any::<usize>(), xor in 1u8..) {
        let bytes = record.encode(9);
        let mut changed = bytes.clone();
        let at = at % changed.len();
        changed[at] ^= xor;
        if let Ok(entry) = AuditRecord::decode(&changed) {
            prop_assert!(entry.seq != 9 || entry.record != record);
        }
    }
}

#[test]
fn a_typical_read_is_compact() {
    let bytes = super::read_record("dr-okafor", "3f2c9a1e-7b4d-4e59-9a0c-2d8f6b1e4c77").encode(123_456);
    assert!(bytes.len() < 150, "{} bytes", bytes.len());
}
