//! Audit log benchmarks (a plain binary: `harness = false`).
//!
//! ```text
//! cargo bench -p carecircle-audit-store --bench audit -- append [sqlite|postgres] [entries] [tasks] [per-call]
//! cargo bench -p carecircle-audit-store --bench audit -- verify [sqlite|postgres] [entries] [dir]
//! ```
//!
//! `append`: `tasks` concurrent callers each append `per-call` records per call until `entries`
//! are durable; prints entries/s. `verify`: fills a log with `entries` records (100,000 per
//! call; reused from `dir` when it already holds them) and times `AuditStore::verify`.
//! PostgreSQL uses `CARECIRCLE_TEST_DATABASE_URL` (default local trust auth) and a `t_bench_*`
//! schema dropped at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use carecircle_audit::{AgentKind, AuditAction, AuditAgent, AuditEntity, AuditOutcome, AuditRecord, LogSigner};
use carecircle_audit_store::{AuditLog, AuditLogConfig, AuditStore};

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        recorded_ms: 1_700_000_000_000 + i as i64,
        action: if i.rem_euclid(5) == 0 { AuditAction::Search } else { AuditAction::Read },
        outcome: AuditOutcome::Success,
        agent: AuditAgent {
            user_id: format!("user-{}", i % 5_000),
            kind: AgentKind::Practitioner,
            organisation: Some(format!("org-{}", i % 40)),
            role: Some("care-coordinator".into()),
        },
        purpose_of_use: Some("TREAT".into()),
        break_glass: i.rem_euclid(1000) == 0,
        break_glass_reason: None,
        in_care_relationship: Some(i.rem_euclid(50) != 0),
        entity: Some(AuditEntity {
            resource_type: "Observation".into(),
            id: format!("{:08x}-1c2d-4e5f-8a9b-{:012x}", i, i * 7),
            version: Some(1),
        }),
        patient_id: Some(format!("{:08x}-7b4d-4e59-9a0c-{:012x}", i % 200_000, i % 200_000)),
        query: None,
        decision: None,
        client_address: Some("10.1.2.3".into()),
        request_id: Some(format!("{:032x}", i)),
    }
}

fn signer() -> LogSigner {
    LogSigner::from_seed("carecircle.bench/audit", [7; 32]).expect("signer")
}

fn database_url() -> String {
    std::env::var("CARECIRCLE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

struct Target {
    store: AuditStore,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

async fn open(backend: &str, dir: Option<PathBuf>) -> Target {
    match backend {
        "postgres" => {
            let schema = format!("t_bench_{}", std::process::id());
            let store = AuditStore::connect_postgres(&database_url(), Some(&schema)).await.expect("connect");
            Target { store, schema: Some(schema), _dir: None }
        }
        _ => match dir {
            Some(dir) => {
                Target { store: AuditStore::open_sqlite_dir(&dir).await.expect("open"), schema: None, _dir: None }
            }
            None => {
                let temp = tempfile::tempdir().expect("temp dir");
                let store = AuditStore::open_sqlite_dir(temp.path()).await.expect("open");
                Target { store, schema: None, _dir: Some(temp) }
            }
        },
    }
}

async fn drop_schema(target: &Target) {
    if let Some(schema) = &target.schema {
        use sqlx::Executor as _;
        let pool = sqlx::PgPool::connect(&database_url()).await.expect("connect");
        pool.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str()).await.expect("drop schema");
    }
}

fn config() -> AuditLogConfig {
    AuditLogConfig { checkpoint_every_entries: 100_000, checkpoint_interval: Duration::from_secs(1), max_batch: 20_000 }
}

async fn append(backend: &str, entries: u64, tasks: u64, per_call: u64) {
    let target = open(backend, None).await;
    let log = AuditLog::start(target.store.clone(), signer(), config());
    let calls_per_task = entries / tasks / per_call;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                for c in 0..calls_per_task {
                    let base = (t * calls_per_task + c) * per_call;
                    let records = (base..base + per_call).map(record).collect();
                    log.append(records).await.expect("append");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
    let elapsed = started.elapsed();
    let total = calls_per_task * tasks * per_call;
    println!(
        "append {backend}: {total} entries, {tasks} concurrent callers x {per_call} per call: {:.2} s, {:.0} entries/s (each call returned only after its commit)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    let report = log.verify().await.expect("storage").expect("intact");
    assert_eq!(report.count, total);
    drop_schema(&target).await;
}

async fn verify(backend: &str, entries: u64, dir: Option<PathBuf>) {
    let target = open(backend, dir).await;
    let have = target.store.tree_size().await.expect("size");
    if have < entries {
        let log = AuditLog::start(target.store.clone(), signer(), config());
        let started = Instant::now();
        let mut at = have;
        while at < entries {
            let end = (at + 100_000).min(entries);
            log.append((at..end).map(record).collect()).await.expect("append");
            at = end;
        }
        log.checkpoint_now().await.expect("checkpoint");
        let elapsed = started.elapsed();
        println!(
            "fill {backend}: {} entries in {:.1} s ({:.0} entries/s, 100,000 per call)",
            entries - have,
            elapsed.as_secs_f64(),
            (entries - have) as f64 / elapsed.as_secs_f64()
        );
    }
    let started = Instant::now();
    let report = target.store.verify(&signer().verifier()).await.expect("storage").expect("intact");
    let elapsed = started.elapsed();
    println!(
        "verify {backend}: {} entries, {} checkpoints, root {} in {:.2} s ({:.0} entries/s)",
        report.count,
        report.checkpoints_checked,
        carecircle_audit::hex(&report.root),
        elapsed.as_secs_f64(),
        report.count as f64 / elapsed.as_secs_f64()
    );
    let started = Instant::now();
    let proof = target.store.inclusion_proof(report.count / 3, report.count).await.expect("proof");
    println!(
        "inclusion proof of entry {} in {}: {} hashes in {:?}",
        proof.seq,
        proof.tree_size,
        proof.hashes.len(),
        started.elapsed()
    );
    drop_schema(&target).await;
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; ignore flags.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let number = |i: usize, default: u64| arg(i, &default.to_string()).parse::<u64>().expect("a number");
    match arg(0, "append").as_str() {
        "append" => append(&arg(1, "sqlite"), number(2, 200_000), number(3, 64), number(4, 1)).await,
        "verify" => verify(&arg(1, "sqlite"), number(2, 1_000_000), args.get(3).map(PathBuf::from)).await,
        other => eprintln!("unknown benchmark {other}: use append or verify"),
    }
}
