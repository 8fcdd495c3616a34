//! Decision latency: criterion benchmarks of `AccessEngine::decide` on representative
//! requests, then p50/p99 over many timed single decisions (criterion reports means and
//! medians; the bar is a p99).

use std::hint::black_box;
use std::time::Instant;

use carecircle_access::codes::SensitivityLabel::{MentalHealth as PSY, SubstanceUse as ETH};
use carecircle_access::demo_support::{AgreementSpec, ClauseSpec, ConsentSpec, ProvisionSpec};
use carecircle_access::{
    AccessEngine, AccessRequest, Action, Agreement, ConsentModel, Organisation, PersonConsent, Purpose, Relationship,
    Requester, Scheme, Sector, Target, UserKind,
};
use carecircle_demo::well_known as wk;
use carecircle_demo::{generate, DemoConfig};
use criterion::{criterion_group, Criterion};
use time::macros::date;

fn engine() -> AccessEngine {
    let orgs: Vec<Organisation> = generate(&DemoConfig { seed: 7, n_people: 2 })
        .iter()
        .filter(|r| r.resource["resourceType"] == "Organization")
        .filter_map(|r| Organisation::from_resource(&r.resource).ok())
        .collect();
    let partners = wk::PARTNER_ORGS;
    let health = [
        wk::ORG_HOSPITAL,
        wk::ORG_GP_ASHGROVE,
        wk::ORG_GP_RIVERSIDE,
        wk::ORG_GP_MILLFIELD,
        wk::ORG_MH_TRUST,
        wk::ORG_AMBULANCE,
    ];
    let others = [wk::ORG_SOCIAL_CARE, wk::ORG_POLICE, wk::ORG_HOUSING, wk::ORG_PATHWAYS, wk::ORG_BEFRIENDERS];
    let types = ["Patient", "Condition", "Encounter", "CarePlan", "Flag", "CareTeam", "EpisodeOfCare", "Observation"];
    let mut specs = vec![AgreementSpec::active(
        "dsa-main",
        "Shared care record",
        &partners,
        "2026-01-01",
        Some("2028-12-31"),
        vec![
            ClauseSpec::new("health-direct-care", Purpose::Treat, &health, &types).labels(&[PSY, ETH]),
            ClauseSpec::new(
                "care-plan-partners",
                Purpose::Treat,
                &others,
                &["Patient", "CarePlan", "CareTeam", "Flag"],
            ),
            ClauseSpec::new(
                "emergency",
                Purpose::EmergencyTreat,
                &[wk::ORG_HOSPITAL, wk::ORG_AMBULANCE, wk::ORG_MH_TRUST],
                &types,
            )
            .labels(&[PSY, ETH])
            .lawful_basis(&["6(1)(d)", "9(2)(c)"]),
            ClauseSpec::new("operations", Purpose::Operations, &[wk::ORG_HOSPITAL], &["Encounter"]),
        ],
    )];
    // Bilateral agreements too, so the policy set is the size of a real partnership's.
    for (i, a) in partners.iter().enumerate() {
        for b in partners.iter().skip(i + 1) {
            specs.push(AgreementSpec::active(
                &format!("dsa-{a}-{b}"),
                "Bilateral",
                &[a, b],
                "2026-01-01",
                None,
                vec![ClauseSpec::new("referrals", Purpose::Treat, &[a, b], &["ServiceRequest", "Task"])],
            ));
        }
    }
    let agreements: Vec<Agreement> =
        specs.iter().filter_map(|s| Agreement::from_contract(&s.to_contract()).ok()).collect();
    AccessEngine::new(&agreements, &orgs, Scheme::new(ConsentModel::OptIn)).unwrap_or_else(|e| panic!("engine: {e}"))
}

fn request(user: &str, org: &str, role: &str, labels: &[carecircle_access::SensitivityLabel]) -> AccessRequest {
    AccessRequest {
        who: Requester {
            user_id: user.to_string(),
            organisation_id: org.to_string(),
            kind: UserKind::Practitioner,
            role: role.to_string(),
            person_id: None,
        },
        purpose: Purpose::Treat,
        break_glass_reason: None,
        what: Target {
            resource_type: "Condition".to_string(),
            action: Action::Read,
            custodian_id: wk::ORG_MH_TRUST.to_string(),
            subject_person: Some("person-joe".to_string()),
            labels: Some(labels.to_vec()),
        },
        relationship: Relationship { in_care_team: true, on_partner_list: false },
        today: date!(2026 - 11 - 01),
    }
}

fn consent() -> PersonConsent {
    let spec = ConsentSpec::new(
        "c-joe",
        "pat-vale-mh-trust-joe",
        wk::ORG_MH_TRUST,
        "2026-06-18",
        ProvisionSpec::deny()
            .except(ProvisionSpec::permit().except(ProvisionSpec::deny().sectors(&[Sector::Housing])))
            .except(ProvisionSpec::permit().labels(&[PSY]).sectors(&[Sector::PrimaryCare, Sector::Acute])),
    );
    PersonConsent::from_resources(&[spec.to_resource()], false).unwrap_or_else(|e| panic!("consent: {e}"))
}

fn scenarios() -> Vec<(&'static str, AccessRequest)> {
    let mut glass = request(wk::PARAMEDIC, wk::ORG_AMBULANCE, "paramedic", &[PSY]);
    glass.purpose = Purpose::EmergencyTreat;
    glass.break_glass_reason = Some("unresponsive".to_string());
    let mut search = request(wk::JOE_GP, wk::ORG_GP_ASHGROVE, "gp", &[]);
    search.what.labels = None;
    vec![
        ("cross-org permit, consent provision releases PSY", request(wk::JOE_GP, wk::ORG_GP_ASHGROVE, "gp", &[PSY])),
        (
            "cross-org deny by consent (housing)",
            request(wk::HOUSING_CASEWORKER, wk::ORG_HOUSING, "housing-caseworker", &[]),
        ),
        (
            "cross-org deny, label withheld (re-evaluated unlabelled)",
            request(wk::JOE_GP, wk::ORG_GP_ASHGROVE, "gp", &[ETH]),
        ),
        ("custodian's own data", request(wk::JOE_CARE_COORDINATOR, wk::ORG_MH_TRUST, "care-coordinator", &[PSY])),
        ("break-glass", glass),
        ("search with filtering", search),
    ]
}

/// A search page: one user's reads of 20 resources of several types and labels, about one
/// person, held by two custodians.
fn page() -> Vec<AccessRequest> {
    let types = ["Condition", "Encounter", "CarePlan", "Observation", "Flag"];
    let labels: [&[carecircle_access::SensitivityLabel]; 4] = [&[], &[PSY], &[], &[ETH]];
    (0..20)
        .map(|i| {
            let mut r = request(wk::JOE_GP, wk::ORG_GP_ASHGROVE, "gp", labels[i % labels.len()]);
            r.what.resource_type = types[i % types.len()].to_string();
            if i % 3 == 0 {
                r.what.custodian_id = wk::ORG_HOSPITAL.to_string();
            }
            r
        })
        .collect()
}

fn bench_decide(c: &mut Criterion) {
    let engine = engine();
    let consent = consent();
    let mut group = c.benchmark_group("decide");
    for (name, req) in scenarios() {
        group.bench_function(name, |b| b.iter(|| engine.decide(black_box(&req), black_box(&consent))));
    }
    let page = page();
    group.bench_function("decide_many, a page of 20", |b| {
        b.iter(|| engine.decide_many(black_box(&page).iter().map(|r| (r, &consent))))
    });
    group.finish();
}

fn quantile(samples: &mut [u128], q: f64) -> f64 {
    samples.sort_unstable();
    let index = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[index] as f64 / 1000.0
}

/// p50/p99 of single decisions, by wall clock and by the thread's CPU time (the machine is
/// shared: wall-clock tails include time the thread was not running).
fn percentiles() {
    let started = Instant::now();
    let engine = engine();
    let built = started.elapsed();
    let consent = consent();
    println!("\nengine build ({} policies, validated): {built:?}", engine.policies().count());
    for (name, req) in scenarios() {
        for _ in 0..2_000 {
            black_box(engine.decide(&req, &consent));
        }
        let mut wall = Vec::with_capacity(50_000);
        let mut cpu = Vec::with_capacity(50_000);
        for _ in 0..50_000 {
            let (t, c) = (Instant::now(), cpu_time::ThreadTime::now());
            black_box(engine.decide(black_box(&req), black_box(&consent)));
            cpu.push(c.elapsed().as_nanos());
            wall.push(t.elapsed().as_nanos());
        }
        println!(
            "{name:<56} wall p50 {:>6.1} µs p99 {:>6.1} µs | cpu p50 {:>6.1} µs p99 {:>6.1} µs",
            quantile(&mut wall, 0.5),
            quantile(&mut wall, 0.99),
            quantile(&mut cpu, 0.5),
            quantile(&mut cpu, 0.99)
        );
    }
    // A page through decide_many, per decision.
    let page = page();
    let mut cpu = Vec::with_capacity(5_000);
    for i in 0..5_500 {
        let c = cpu_time::ThreadTime::now();
        black_box(engine.decide_many(black_box(&page).iter().map(|r| (r, &consent))));
        if i >= 500 {
            cpu.push(c.elapsed().as_nanos() / page.len() as u128);
        }
    }
    println!(
        "{:<56} cpu per decision p50 {:>6.1} µs p99 {:>6.1} µs",
        "decide_many, a page of 20",
        quantile(&mut cpu, 0.5),
        quantile(&mut cpu, 0.99)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench_decide
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--list") {
        percentiles();
    }
}
