//! The cases both backends must pass.

use std::time::Duration;

use carecircle_audit::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use carecircle_audit::{AgentKind, AuditAction, AuditAgent, AuditEntity, AuditOutcome, AuditRecord, LogSigner, Tamper};
use carecircle_audit_store::{
    open_checkpoint, AuditLog, AuditLogConfig, BreakGlassReview, Period, ReviewFilter, ReviewOutcome,
};

use crate::fixture::Fixture;

const T0: i64 = 1_700_000_000_000;

fn record(i: u64, user: &str, patient: Option<&str>) -> AuditRecord {
    AuditRecord {
        recorded_ms: T0 + i as i64,
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
        entity: Some(AuditEntity { resource_type: "Observation".into(), id: format!("obs-{i}"), version: Some(1) }),
        patient_id: patient.map(str::to_string),
        query: None,
        decision: None,
        client_address: Some("127.0.0.1".into()),
        request_id: Some(format!("req-{i}")),
    }
}

fn signer() -> LogSigner {
    LogSigner::from_seed("carecircle.test/audit", [42; 32]).expect("signer")
}

/// A log that signs a checkpoint every `every` entries (and never by time).
fn start(fixture: &Fixture, every: u64) -> AuditLog {
    let config = AuditLogConfig {
        checkpoint_every_entries: every,
        checkpoint_interval: Duration::from_secs(3600),
        max_batch: 20_000,
    };
    AuditLog::start(fixture.store.clone(), signer(), config)
}

/// `n` entries appended in batches of `batch`, patients p0..p9 in turn.
async fn fill(log: &AuditLog, n: u64, batch: u64) {
    let mut i = 0;
    while i < n {
        let records: Vec<AuditRecord> =
            (i..(i + batch).min(n)).map(|j| record(j, "dr-a", Some(&format!("p{}", j % 10)))).collect();
        let range = log.append(records).await.expect("append");
        assert_eq!(range.start, i);
        i = range.end;
    }
}

async fn verify_err(fixture: &Fixture) -> Tamper {
    let key = signer().verifier();
    fixture.store.verify(&key).await.expect("storage works").expect_err("tampering is found")
}

pub async fn concurrent_appends_get_distinct_numbers_and_verify(fixture: &Fixture) {
    let log = start(fixture, 1000);
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut ranges = Vec::new();
                for k in 0..10u64 {
                    let records: Vec<AuditRecord> = (0..(1 + (t + k) % 3))
                        .map(|j| record(t * 100 + k * 10 + j, &format!("u{t}"), Some("p1")))
                        .collect();
                    ranges.push((records.clone(), log.append(records).await.expect("append")));
                }
                ranges
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        for (records, range) in task.await.expect("task") {
            assert_eq!(range.end - range.start, records.len() as u64);
            // Each caller's records are stored in order at the numbers it was given.
            for (record, seq) in records.iter().zip(range.clone()) {
                assert_eq!(&log.store().entry(seq).await.expect("read").expect("stored").record, record);
            }
            seen.extend(range);
        }
    }
    seen.sort_unstable();
    let n = seen.len() as u64;
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "numbers are dense and distinct");

    let checkpoint = log.checkpoint_now().await.expect("checkpoint").expect("a checkpoint exists");
    assert_eq!(checkpoint.tree_size, n);
    let report = log.verify().await.expect("storage").expect("intact");
    assert_eq!(report.count, n);
    assert_eq!(report.root, log.store().root(n).await.expect("root"));
    assert_eq!(open_checkpoint(log.verifier(), &checkpoint).expect("signed").root, report.root);
    assert!(report.checkpoints_checked >= 1);
    // Nothing new: no new checkpoint.
    assert_eq!(log.checkpoint_now().await.expect("checkpoint"), Some(checkpoint));
}

pub async fn altering_a_row_is_named(fixture: &Fixture) {
    let log = start(fixture, 100);
    fill(&log, 300, 50).await;
    fixture.drop_append_only_guard().await;
    let (mut content, leaf) = fixture.row(123).await;
    let last = content.len() - 3;
    content[last] ^= 0x20;
    fixture.write_row(123, &content, &leaf).await;
    assert_eq!(verify_err(fixture).await, Tamper::Altered { seq: 123 });
}

pub async fn deleting_a_row_is_named(fixture: &Fixture) {
    let log = start(fixture, 100);
    fill(&log, 300, 50).await;
    fixture.drop_append_only_guard().await;
    fixture.exec("DELETE FROM audit_entries WHERE seq = 77").await.expect("delete");
    let tamper = verify_err(fixture).await;
    assert_eq!(tamper, Tamper::Removed { seq: 77, next: 78 });
    assert!(tamper.to_string().contains("entry 77 was removed"), "{tamper}");
}

pub async fn swapping_two_rows_is_named(fixture: &Fixture) {
    let log = start(fixture, 100);
    fill(&log, 300, 50).await;
    fixture.drop_append_only_guard().await;
    fixture
        .exec(
            "UPDATE audit_entries SET seq = -1 WHERE seq = 150; UPDATE audit_entries SET seq = 150 WHERE seq = 151; \
             UPDATE audit_entries SET seq = 151 WHERE seq = -1;",
        )
        .await
        .expect("swap");
    assert_eq!(verify_err(fixture).await, Tamper::Reordered { seq: 150, bound_to: 151 });
}

pub async fn rewriting_content_and_leaf_hash_is_caught_by_the_checkpoint(fixture: &Fixture) {
    let log = start(fixture, 100);
    // Batches of 50: a checkpoint lands exactly at 100, 200 and 300 entries.
    fill(&log, 300, 50).await;
    fixture.drop_append_only_guard().await;
    // Re-encode entry 142 as a read of someone else, with a matching leaf hash.
    let (content, _) = fixture.row(142).await;
    let mut entry = AuditRecord::decode(&content).expect("decodes");
    entry.record.patient_id = Some("p9".into());
    let forged = entry.record.encode(142);
    fixture.write_row(142, &forged, &leaf_hash(&forged)).await;
    fixture.exec("UPDATE audit_entries SET patient_id = 'p9' WHERE seq = 142").await.expect("column");
    let tamper = verify_err(fixture).await;
    assert_eq!(tamper, Tamper::CheckpointMismatch { tree_size: 200, since: 100 });
    assert_eq!(tamper.first_bad_entry(), Some(100));
}

pub async fn a_large_log_read_in_two_halves_names_the_first_bad_entry(fixture: &Fixture) {
    // 70,000 entries: verification reads 0..34,816 and 34,816.. on two readers.
    let log = start(fixture, 10_000);
    fill(&log, 70_000, 10_000).await;
    assert_eq!(log.verify().await.expect("storage").expect("intact").count, 70_000);
    fixture.drop_append_only_guard().await;
    fixture.exec("UPDATE audit_entries SET patient_id = 'nobody' WHERE seq = 60001").await.expect("update");
    assert_eq!(verify_err(fixture).await, Tamper::IndexMismatch { seq: 60_001, column: "patient_id" });
    fixture.exec("DELETE FROM audit_entries WHERE seq = 34816").await.expect("delete at the split");
    assert_eq!(verify_err(fixture).await, Tamper::Removed { seq: 34_816, next: 34_817 });
    let (mut content, leaf) = fixture.row(20_000).await;
    content[30] ^= 1;
    fixture.write_row(20_000, &content, &leaf).await;
    assert_eq!(verify_err(fixture).await, Tamper::Altered { seq: 20_000 });
}

pub async fn altering_an_index_column_is_named(fixture: &Fixture) {
    let log = start(fixture, 100);
    fill(&log, 300, 50).await;
    fixture.drop_append_only_guard().await;
    // Hiding an access from the person's log by moving it to another person.
    fixture.exec("UPDATE audit_entries SET patient_id = 'nobody' WHERE seq = 211").await.expect("update");
    assert_eq!(verify_err(fixture).await, Tamper::IndexMismatch { seq: 211, column: "patient_id" });
}

pub async fn removing_the_tail_is_caught_by_the_checkpoint(fixture: &Fixture) {
    let log = start(fixture, 100);
    fill(&log, 300, 50).await;
    fixture.drop_append_only_guard().await;
    fixture.exec("DELETE FROM audit_entries WHERE seq >= 250").await.expect("truncate");
    assert_eq!(verify_err(fixture).await, Tamper::Truncated { count: 250, tree_size: 300 });
}

pub async fn the_log_refuses_updates_and_deletes(fixture: &Fixture) {
    let log = start(fixture, 100);
    fill(&log, 10, 10).await;
    let update = fixture.exec("UPDATE audit_entries SET user_id = 'x' WHERE seq = 1").await;
    assert!(update.expect_err("refused").contains("append-only"));
    let delete = fixture.exec("DELETE FROM audit_entries WHERE seq = 1").await;
    assert!(delete.expect_err("refused").contains("append-only"));
    assert_eq!(log.verify().await.expect("storage").expect("intact").count, 10);
}

pub async fn inclusion_and_consistency_proofs_verify_against_checkpoints(fixture: &Fixture) {
    let log = start(fixture, 1_000_000);
    fill(&log, 700, 100).await;
    let old = log.checkpoint_now().await.expect("checkpoint").expect("exists");
    fill_more(&log, 700, 1100).await;
    let new = log.checkpoint_now().await.expect("checkpoint").expect("exists");
    let old_head = open_checkpoint(log.verifier(), &old).expect("old signed");
    let new_head = open_checkpoint(log.verifier(), &new).expect("new signed");
    assert_eq!((old_head.tree_size, new_head.tree_size), (700, 1100));

    for seq in [0, 1, 255, 256, 511, 512, 600, 699, 700, 1024, 1099] {
        for head in [&old_head, &new_head] {
            if seq >= head.tree_size {
                continue;
            }
            let proof = log.store().inclusion_proof(seq, head.tree_size).await.expect("proof");
            let (content, _) = fixture.row(seq).await;
            assert_eq!(proof.leaf_hash, leaf_hash(&content));
            assert!(
                verify_inclusion(&proof.leaf_hash, seq, head.tree_size, &proof.hashes, &head.root),
                "entry {seq} in {}",
                head.tree_size
            );
            assert!(!verify_inclusion(&leaf_hash(b"other"), seq, head.tree_size, &proof.hashes, &head.root));
        }
    }
    let consistency = log.store().consistency_proof(700, 1100).await.expect("consistency");
    assert!(verify_consistency(700, 1100, &old_head.root, &new_head.root, &consistency));
    assert!(log.store().inclusion_proof(1100, 1100).await.is_err());
    assert!(log.store().inclusion_proof(5, 1101).await.is_err());
}

async fn fill_more(log: &AuditLog, from: u64, to: u64) {
    let records: Vec<AuditRecord> = (from..to).map(|j| record(j, "dr-b", Some("p2"))).collect();
    assert_eq!(log.append(records).await.expect("append"), from..to);
}

pub async fn the_person_sees_their_access_log_newest_first(fixture: &Fixture) {
    let log = start(fixture, 100);
    fill(&log, 95, 20).await;
    let first = log.store().access_log_for_patient("p3", None, 4).await.expect("page 1");
    let seqs: Vec<u64> = first.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [93, 83, 73, 63]);
    assert!(first.iter().all(|e| e.record.patient_id.as_deref() == Some("p3")));
    let second = log.store().access_log_for_patient("p3", Some(63), 100).await.expect("page 2");
    assert_eq!(second.iter().map(|e| e.seq).collect::<Vec<_>>(), [53, 43, 33, 23, 13, 3]);
    let event = first[0].to_audit_event();
    assert_eq!(event["id"], "93");
    assert_eq!(event["entity"][0]["what"]["reference"], "Patient/p3");
    assert!(log.store().access_log_for_patient("nobody", None, 10).await.expect("empty").is_empty());
}

pub async fn governance_sees_unusual_access_and_break_glass(fixture: &Fixture) {
    let log = start(fixture, 1000);
    let mut records = Vec::new();
    // dr-snoop reads 6 people outside any care relationship, one of them twice.
    for (i, patient) in ["a", "b", "c", "d", "e", "f", "a"].iter().enumerate() {
        let mut r = record(i as u64, "dr-snoop", Some(patient));
        r.in_care_relationship = Some(false);
        records.push(r);
    }
    // dr-care reads 3 people in care and 1 outside.
    for (i, patient) in ["a", "b", "c"].iter().enumerate() {
        records.push(record(10 + i as u64, "dr-care", Some(patient)));
    }
    let mut outside = record(20, "dr-care", Some("z"));
    outside.in_care_relationship = Some(false);
    records.push(outside);
    // A paramedic breaks the glass twice out of three accesses, in another organisation.
    for i in 0..3u64 {
        let mut r = record(30 + i, "medic-1", Some("q"));
        r.agent.organisation = Some("ambulance".into());
        r.break_glass = i < 2;
        r.in_care_relationship = None;
        records.push(r);
    }
    // Outside the period: not counted.
    let mut late = record(1_000_000, "dr-late", Some("x"));
    late.in_care_relationship = Some(false);
    late.break_glass = true;
    records.push(late);
    log.append(records).await.expect("append");

    let period = Period { from_ms: T0, until_ms: T0 + 1000 };
    let unusual = log.store().unusual_access(period, 1).await.expect("unusual");
    let summary: Vec<(&str, u64)> = unusual.iter().map(|u| (u.user_id.as_str(), u.persons_outside_care)).collect();
    assert_eq!(summary, [("dr-snoop", 6), ("dr-care", 1)]);
    assert_eq!(unusual[0].organisation.as_deref(), Some("gp-1"));
    let only_many = log.store().unusual_access(period, 5).await.expect("unusual");
    assert_eq!(only_many.len(), 1);

    let break_glass = log.store().break_glass_by_user(period).await.expect("break-glass");
    assert_eq!(break_glass.len(), 1);
    assert_eq!(
        (break_glass[0].user_id.as_str(), break_glass[0].organisation.as_deref()),
        ("medic-1", Some("ambulance"))
    );
    assert_eq!((break_glass[0].break_glass_entries, break_glass[0].person_entries), (2, 3));
}

pub async fn a_reopened_log_continues_where_it_stopped(fixture: &Fixture) {
    let log = start(fixture, 50);
    fill(&log, 120, 30).await;
    drop(log);
    let store = fixture.reopen().await;
    assert_eq!(store.tree_size().await.expect("size"), 120);
    let config = AuditLogConfig { checkpoint_every_entries: 50, ..AuditLogConfig::default() };
    let log = AuditLog::start(store, signer(), config);
    assert_eq!(log.append(vec![record(120, "dr-c", None)]).await.expect("append"), 120..121);
    let report = log.verify().await.expect("storage").expect("intact");
    assert_eq!((report.count, report.checkpoints_checked), (121, 2));
}

pub async fn an_idle_log_signs_a_checkpoint_after_the_interval(fixture: &Fixture) {
    let config = AuditLogConfig {
        checkpoint_every_entries: 1_000_000,
        checkpoint_interval: Duration::from_millis(100),
        max_batch: 100,
    };
    let log = AuditLog::start(fixture.store.clone(), signer(), config);
    log.append(vec![record(0, "u", None), record(1, "u", None)]).await.expect("append");
    let mut waited = 0;
    loop {
        if let Some(checkpoint) = log.store().latest_checkpoint().await.expect("latest") {
            assert_eq!(checkpoint.tree_size, 2);
            break;
        }
        assert!(waited < 50, "no checkpoint after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
}

pub async fn break_glass_uses_are_reviewed_once_and_the_review_is_kept(fixture: &Fixture) {
    let log = start(fixture, 1000);
    // Entries 0..6: reads, with break-glass uses at 2 and 4 (the access record and the use).
    let records: Vec<AuditRecord> = (0..6u64)
        .map(|i| {
            let mut r = record(i, "medic-1", Some("q"));
            if i == 2 || i == 4 {
                r.action = AuditAction::BreakGlass;
                r.break_glass = true;
                r.break_glass_reason = Some("collapsed in the street".into());
            }
            r
        })
        .collect();
    log.append(records).await.expect("append");
    let store = log.store();
    let pending = store.break_glass_queue(ReviewFilter::Pending, None, 10).await.expect("queue");
    assert_eq!(pending.iter().map(|q| q.entry.seq).collect::<Vec<_>>(), vec![4, 2]);
    assert!(pending.iter().all(|q| q.review.is_none()));

    let review = BreakGlassReview {
        entry_seq: 4,
        outcome: ReviewOutcome::NotJustified,
        note: "no emergency recorded".into(),
        reviewer: "Practitioner/ig-lead".into(),
        organisation: Some("Organization/hospital".into()),
        reviewed_ms: T0 + 100,
        review_seq: 6,
    };
    assert!(store.record_break_glass_review(&review).await.expect("record"));
    let second = BreakGlassReview { outcome: ReviewOutcome::Justified, ..review.clone() };
    assert!(!store.record_break_glass_review(&second).await.expect("second"), "a use has one review");

    // Kept across a restart, unchanged, and the queue follows it.
    let reopened = fixture.reopen().await;
    assert_eq!(reopened.break_glass_reviews(&[2, 4]).await.expect("reviews"), vec![review.clone()]);
    let pending = reopened.break_glass_queue(ReviewFilter::Pending, None, 10).await.expect("pending");
    assert_eq!(pending.iter().map(|q| q.entry.seq).collect::<Vec<_>>(), vec![2]);
    let reviewed = reopened.break_glass_queue(ReviewFilter::Reviewed, None, 10).await.expect("reviewed");
    assert_eq!(reviewed.len(), 1);
    assert_eq!(reviewed[0].review.as_ref(), Some(&review));
    let page = reopened.break_glass_queue(ReviewFilter::All, Some(4), 10).await.expect("page");
    assert_eq!(page.iter().map(|q| q.entry.seq).collect::<Vec<_>>(), vec![2], "paged before entry 4");
    // A review cannot be rewritten or removed.
    assert!(fixture.exec("UPDATE break_glass_reviews SET outcome = 'justified'").await.is_err());
    assert!(fixture.exec("DELETE FROM break_glass_reviews").await.is_err());
}

/// SQLite keeps `recorded_ms` as one (least, greatest) row per 4,096 entries instead of a
/// per-entry index: narrowing, widening or removing a block's row is found by `audit verify`.
pub async fn altering_a_time_block_summary_is_named(fixture: &Fixture) {
    let log = start(fixture, 1000);
    fill(&log, 5000, 500).await;
    let key = signer().verifier();
    fixture.store.verify(&key).await.expect("storage").expect("intact before");
    let summary = |seq| Tamper::IndexMismatch { seq, column: "recorded_ms block summary" };
    let cases = [
        // Narrowed so that a period report would skip the block's first entry.
        ("UPDATE audit_time_blocks SET min_ms = min_ms + 1 WHERE block = 0", summary(0)),
        ("UPDATE audit_time_blocks SET max_ms = max_ms + 1 WHERE block = 0", summary(0)),
        ("DELETE FROM audit_time_blocks WHERE block = 0", summary(0)),
        // The last, partial block: narrowing its end hides entry 4999 from reports.
        ("UPDATE audit_time_blocks SET max_ms = max_ms - 1 WHERE block = 1", summary(4096)),
        ("DELETE FROM audit_time_blocks WHERE block = 1", summary(4096)),
    ];
    for (sql, expected) in cases {
        fixture.exec(sql).await.expect("tamper");
        assert_eq!(verify_err(fixture).await, expected, "{sql}");
        // Put the summaries back as they were written.
        fixture
            .exec(
                "DELETE FROM audit_time_blocks; INSERT INTO audit_time_blocks (block, min_ms, max_ms) \
                 SELECT seq >> 12, MIN(recorded_ms), MAX(recorded_ms) FROM audit_entries GROUP BY seq >> 12;",
            )
            .await
            .expect("restore");
        fixture.store.verify(&key).await.expect("storage").expect("intact again");
    }
}

/// A store written before the time blocks (schema version 1: a `recorded_ms` index, no
/// `audit_time_blocks`) is upgraded when opened: the rows are built from its entries, the index
/// is dropped, the log verifies with the same root and the reports see the same entries.
pub async fn a_store_from_before_the_time_blocks_is_upgraded_and_verifies(fixture: &Fixture) {
    let log = start(fixture, 1000);
    fill(&log, 9000, 1000).await;
    let mut outside = record(9000, "dr-snoop", Some("p-outside"));
    outside.in_care_relationship = Some(false);
    log.append(vec![outside]).await.expect("append");
    let before = log.verify().await.expect("storage").expect("intact");
    drop(log);
    // Back to version 1, as a store written by the previous release looks.
    fixture
        .exec(
            "DROP TABLE audit_time_blocks; CREATE INDEX audit_entries_time ON audit_entries (recorded_ms); \
             DELETE FROM audit_schema_migrations WHERE version = 3;",
        )
        .await
        .expect("downgrade");
    let store = fixture.reopen().await;
    let after = store.verify(&signer().verifier()).await.expect("storage").expect("intact after the upgrade");
    assert_eq!(
        (after.count, after.root, after.checkpoints_checked),
        (before.count, before.root, before.checkpoints_checked)
    );
    let unusual = store.unusual_access(Period { from_ms: T0 + 8999, until_ms: T0 + 9001 }, 1).await.expect("report");
    assert_eq!(unusual.len(), 1);
    assert_eq!((unusual[0].user_id.as_str(), unusual[0].persons_outside_care), ("dr-snoop", 1));
    assert!(fixture.exec("DROP INDEX audit_entries_time").await.is_err(), "the per-entry time index is gone");
    // Appending continues into the upgraded store.
    let log = AuditLog::start(store, signer(), AuditLogConfig::default());
    assert_eq!(log.append(vec![record(9001, "dr-a", None)]).await.expect("append"), 9001..9002);
    assert_eq!(log.verify().await.expect("storage").expect("intact").count, 9002);
}
