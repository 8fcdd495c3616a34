//! Single-record matching against a large [`LinkIndex`]: the service's per-request cost.
//! `LINK_BENCH_RECORDS` sets the index size (default 1,000,000). Criterion reports the mean;
//! the p99 is printed from a separate timed loop over 2,000 distinct queries.

use std::time::Instant;

use carecircle_link::features::Features;
use carecircle_link::{BirthDate, LinkIndex, Model, PersonId, SourceRecord};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const GIVEN: &[&str] = &[
    "joseph",
    "mary",
    "ahmed",
    "olga",
    "pierre",
    "priya",
    "sean",
    "amara",
    "tomasz",
    "li",
    "william",
    "elizabeth",
    "john",
    "sarah",
    "david",
    "fatima",
    "james",
    "emma",
    "mohammed",
    "grace",
];
const SYLLABLES: &[&str] = &[
    "ash", "bar", "brook", "dale", "den", "field", "ford", "ham", "ley", "mor", "ston", "wick", "worth", "ton", "wood",
];

fn record(rng: &mut ChaCha8Rng, id: usize) -> SourceRecord {
    let family: String = (0..3).map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())]).collect();
    SourceRecord {
        source: ["gp", "hospital", "police", "housing"][id % 4].into(),
        local_id: id.to_string(),
        given_names: Some(GIVEN[rng.random_range(0..GIVEN.len())].into()),
        family_name: Some(family),
        birth_date: BirthDate::new(rng.random_range(1930..2012), rng.random_range(1..=12), rng.random_range(1..=28)),
        postcode: Some(format!("LS{} {}AB", rng.random_range(1..30), rng.random_range(1..10))),
        house_number: Some(rng.random_range(1..200).to_string()),
        ..SourceRecord::default()
    }
}

fn index_and_queries() -> (LinkIndex, Vec<SourceRecord>) {
    let n: usize = std::env::var("LINK_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let sample: Vec<SourceRecord> = (0..20_000).map(|id| record(&mut rng, id)).collect();
    let features: Vec<Features> = sample.iter().map(Features::of).collect();
    let candidates = carecircle_link::blocking::candidate_pairs(&features, 1000);
    let candidate_levels: Vec<u64> = candidates
        .pairs
        .iter()
        .map(|&(i, j)| {
            carecircle_link::compare::pack_levels(&carecircle_link::compare::compare(
                &features[i as usize],
                &features[j as usize],
            ))
        })
        .collect();
    // The sample has no duplicates, so training cannot go wrong in an interesting way; the bench
    // measures lookup cost, which the parameters barely change.
    let model = Model::train(&features, &candidate_levels, &candidates.rules, &Default::default())
        .expect("training on 20,000 records");
    let mut index = LinkIndex::new(model);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for id in 0..n {
        let record = record(&mut rng, id);
        index.load(&record, PersonId(format!("P{id}")));
    }
    let queries: Vec<SourceRecord> = (0..2000)
        .map(|q| {
            let mut query = record(&mut rng, n + q);
            query.source = "query".into();
            query
        })
        .collect();
    (index, queries)
}

fn bench(c: &mut Criterion) {
    let (index, queries) = index_and_queries();
    let mut timings: Vec<f64> = queries
        .iter()
        .map(|query| {
            let started = Instant::now();
            std::hint::black_box(index.match_record(query));
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    timings.sort_by(f64::total_cmp);
    println!(
        "index of {} records: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms per single-record match",
        index.len(),
        timings[timings.len() / 2],
        timings[timings.len() * 99 / 100],
        timings[timings.len() - 1]
    );
    let mut next = 0;
    c.bench_function("match_record", |b| {
        b.iter(|| {
            next = (next + 1) % queries.len();
            std::hint::black_box(index.match_record(&queries[next]))
        })
    });
}

criterion_group! { name = benches; config = Criterion::default().sample_size(50); targets = bench }
criterion_main!(benches);
