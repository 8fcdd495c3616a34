//! The audit store test suite, run on both backends: each test on a fresh SQLite file or a
//! fresh PostgreSQL schema (`t_*`, dropped at the end; database from
//! `CARECIRCLE_TEST_DATABASE_URL`, default a local server with trust auth).

mod fixture;
mod suite;

macro_rules! audit_suite {
    ($backend:ident, $make:path; $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fixture = $make().await;
                    crate::suite::$case(&fixture).await;
                    fixture.cleanup().await;
                }
            )*
        }
    };
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        audit_suite!(sqlite, crate::fixture::sqlite; $($case),*);
        audit_suite!(postgres, crate::fixture::postgres; $($case),*);
    };
}

both_backends!(
    concurrent_appends_get_distinct_numbers_and_verify,
    altering_a_row_is_named,
    deleting_a_row_is_named,
    swapping_two_rows_is_named,
    rewriting_content_and_leaf_hash_is_caught_by_the_checkpoint,
    altering_an_index_column_is_named,
    a_large_log_read_in_two_halves_names_the_first_bad_entry,
    removing_the_tail_is_caught_by_the_checkpoint,
    the_log_refuses_updates_and_deletes,
    inclusion_and_consistency_proofs_verify_against_checkpoints,
    the_person_sees_their_access_log_newest_first,
    governance_sees_unusual_access_and_break_glass,
    break_glass_uses_are_reviewed_once_and_the_review_is_kept,
    a_reopened_log_continues_where_it_stopped,
    an_idle_log_signs_a_checkpoint_after_the_interval,
);

// SQLite only: its time summaries (PostgreSQL keeps a `recorded_ms` index).
audit_suite!(sqlite_only, crate::fixture::sqlite;
    altering_a_time_block_summary_is_named,
    a_store_from_before_the_time_blocks_is_upgraded_and_verifies,
);
