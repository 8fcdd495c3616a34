//! The linkage engine end to end: whole runs on small generated partnerships, with property
//! tests for symmetry, determinism and id stability, review decisions, and the incremental index.

use std::collections::HashMap;

use carecircle_link::compare::compare;
use carecircle_link::features::Features;
use carecircle_link::{
    link, BirthDate, Decision, Grade, LinkIndex, LinkOptions, NoProgress, RecordKey, ReviewDecisions, SourceRecord,
};
use proptest::prelude::*;

const GIVEN: &[&str] = &["Joseph", "Mary", "Ahmed", "Olga", "Pierre", "Priya", "Sean", "Amara", "Tomasz", "Li"];
const SYLLABLES: &[&str] = &[
    "ash", "bar", "brook", "dale", "den", "field", "ford", "ham", "ley", "mor", "ston", "wick", "worth", "gar", "wood",
];
const FAMILY: &[&str] = &["Smith", "Okafor", "Nowak", "Patel", "Dubois", "Chen", "Murphy", "Khan", "Jones", "Garcia"];

/// A deterministic pseudo-random number for person `p` and field `salt`.
fn mix(p: usize, salt: u64) -> usize {
    let mut x = (p as u64).wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) as usize
}

/// `n_people` people, each with a GP record and a hospital record that differs a little.
fn partnership(n_people: usize) -> (Vec<SourceRecord>, Vec<Option<String>>) {
    let mut records = Vec::new();
    let mut truth = Vec::new();
    let suffixes = ["", "son", "ley", "ford", "wick", "ton", "by", "man"];
    for person in 0..n_people {
        let gp = SourceRecord {
            source: "gp".into(),
            local_id: format!("g{person}"),
            given_names: Some(format!("{}{}", GIVEN[mix(person, 1) % 10], ["", "a", "o", "ie"][mix(person, 2) % 4])),
            family_name: Some(format!(
                "{}{}{}",
                FAMILY[mix(person, 3) % 10],
                SYLLABLES[mix(person, 13) % 15],
                suffixes[mix(person, 4) % 8]
            )),
            birth_date: BirthDate::new(
                1930 + (mix(person, 5) % 80) as i32,
                1 + (mix(person, 6) % 12) as u32,
                1 + (mix(person, 7) % 28) as u32,
            ),
            postcode: Some(format!(
                "LS{} {}A{}",
                mix(person, 8) % 30,
                mix(person, 9) % 9,
                ["B", "D", "E", "F"][mix(person, 10) % 4]
            )),
            address: Some(format!(
                "{} {} Lane",
                mix(person, 11) % 90 + 1,
                ["Mill", "Church", "Station", "Park", "Oak"][mix(person, 12) % 5]
            )),
            ..SourceRecord::default()
        };
        let mut hospital = gp.clone();
        hospital.source = "hospital".into();
        hospital.local_id = format!("h{person}");
        match person % 4 {
            0 => hospital.postcode = None,
            1 => hospital.given_names = hospital.given_names.map(|name| name.to_uppercase()),
            2 => hospital.address = Some("99 Moved Road".into()),
            _ => hospital.birth_date = None,
        }
        records.push(gp);
        records.push(hospital);
        truth.push(Some(person.to_string()));
        truth.push(Some(person.to_string()));
    }
    (records, truth)
}

fn run(
    records: &[SourceRecord],
    decisions: &ReviewDecisions,
    previous: &HashMap<RecordKey, carecircle_link::PersonId>,
) -> carecircle_link::LinkResult {
    link(records, decisions, previous, &LinkOptions::default(), &NoProgress).unwrap()
}

#[test]
fn review_decisions_survive_a_rerun() {
    let (records, _) = partnership(100);
    let first = run(&records, &ReviewDecisions::new(), &HashMap::new());
    let (g0, h0, g1) = (RecordKey::new("gp", "g0"), RecordKey::new("hospital", "h0"), RecordKey::new("gp", "g1"));
    assert_eq!(first.person_of(&g0), first.person_of(&h0));
    let mut decisions = ReviewDecisions::new();
    decisions.record(g0.clone(), h0.clone(), Decision::KeepApart);
    decisions.record(g0.clone(), g1.clone(), Decision::Link);
    let second = run(&records, &decisions, &first.assignments());
    assert_ne!(second.person_of(&g0), second.person_of(&h0));
    assert_eq!(second.person_of(&g0), second.person_of(&g1));
    assert!(
        second.review_pairs.iter().all(|pair| !(pair.a == g0 && pair.b == h0)),
        "kept-apart pairs are not proposed"
    );
    let third = run(&records, &decisions, &second.assignments());
    assert_eq!(second.person_ids, third.person_ids, "ids are stable across re-runs");
}

#[test]
fn verified_identifiers_decide() {
    let base =
        SourceRecord { given_names: Some("Joe".into()), family_name: Some("Smith".into()), ..SourceRecord::default() };
    let record = |source: &str, id: &str, nhs: &str, given: &str| SourceRecord {
        source: source.into(),
        local_id: id.into(),
        given_names: Some(given.into()),
        national_id: Some(nhs.into()),
        national_id_verified: true,
        ..base.clone()
    };
    let records = vec![
        record("gp", "1", "9434765919", "Joe"),
        record("police", "7", "943 476 5919", "Bartholomew"),
        record("housing", "3", "4010232137", "Joe"),
    ];
    let result = run(&records, &ReviewDecisions::new(), &HashMap::new());
    let person = |source: &str, id: &str| result.person_of(&RecordKey::new(source, id)).unwrap().clone();
    assert_eq!(person("gp", "1"), person("police", "7"), "a shared verified NHS number decides");
    assert_ne!(person("gp", "1"), person("housing", "3"), "different verified NHS numbers keep apart");
}

#[test]
fn the_index_matches_one_record_and_honours_decisions() {
    let (records, _) = partnership(200);
    let batch = run(&records, &ReviewDecisions::new(), &HashMap::new());
    let mut index = LinkIndex::new(batch.model.clone());
    for record in &records {
        index.load(record, batch.person_of(&record.key()).unwrap().clone());
    }
    assert_eq!(index.len(), 400);
    let mut newcomer = records[10].clone();
    newcomer.source = "police".into();
    newcomer.local_id = "P/1".into();
    newcomer.given_names = Some("Jo".into());
    let candidates = index.match_record(&newcomer);
    assert_eq!(candidates[0].person_id, *batch.person_of(&records[10].key()).unwrap());
    assert!(candidates[0].grade <= Grade::Probable, "{candidates:?}");
    let outcome = index.upsert(&newcomer);
    assert_eq!(outcome.person_id, candidates[0].person_id);
    assert_eq!(index.person_of(&newcomer.key()), Some(&outcome.person_id));

    index.record_decision(newcomer.key(), records[10].key(), Decision::KeepApart);
    index.record_decision(newcomer.key(), records[11].key(), Decision::KeepApart);
    assert!(index.match_record(&newcomer).iter().all(|c| c.person_id != candidates[0].person_id));
    assert_eq!(index.remove(&newcomer.key()), Some(outcome.person_id));
    assert_eq!(index.len(), 400);
}

#[test]
fn the_index_splits_an_oversized_block_by_its_refinement_key() {
    let (records, _) = partnership(200);
    let model = run(&records, &ReviewDecisions::new(), &HashMap::new()).model;
    let mut index = LinkIndex::new(model);
    // 150 namesakes born over 75 years: one "given+family phonetic" block above the cap of
    // 100, whose parts by birth year are small.
    for n in 0..150u32 {
        let namesake = SourceRecord {
            source: "gp".into(),
            local_id: format!("n{n}"),
            given_names: Some("Joseph".into()),
            family_name: Some("Smith".into()),
            birth_date: BirthDate::new(1930 + (n / 2) as i32, 1 + n % 12, 1 + n % 28),
            postcode: Some(format!("LS{} 1AB", n % 30)),
            ..SourceRecord::default()
        };
        index.load(&namesake, carecircle_link::PersonId(format!("P{n}")));
    }
    // Namesake n28 (born 1944-05-01, postcode LS28 1AB) with day and month swapped: only the
    // name rule can find it, through the part of its oversized block born in 1944.
    let mut query = SourceRecord {
        source: "police".into(),
        local_id: "P/9".into(),
        given_names: Some("Joseph".into()),
        family_name: Some("Smith".into()),
        birth_date: BirthDate::new(1944, 1, 5),
        postcode: Some("LS28 1AB".into()),
        ..SourceRecord::default()
    };
    assert_eq!(index.match_record(&query)[0].person_id.0, "P28", "found through the refined block");
    query.birth_date = None;
    assert!(
        index.match_record(&query).iter().all(|candidate| candidate.person_id.0 != "P28"),
        "without a birth year the oversized block is not searched"
    );
}

fn arbitrary_record() -> impl Strategy<Value = SourceRecord> {
    (
        prop::sample::select(GIVEN),
        prop::sample::select(FAMILY),
        prop::option::of((1930i32..2010, 1u32..=12, 1u32..=28)),
        prop::option::of(prop::sample::select(&["LS1 4AB", "ls14ab", "M1 1AE", "4011"][..])),
        prop::option::of("[0-9]{10}"),
        any::<bool>(),
    )
        .prop_map(|(given, family, birth, postcode, nhs, verified)| SourceRecord {
            given_names: Some(given.into()),
            family_name: Some(family.into()),
            birth_date: birth.and_then(|(y, m, d)| BirthDate::new(y, m, d)),
            postcode: postcode.map(str::to_string),
            national_id: nhs,
            national_id_verified: verified,
            ..SourceRecord::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn comparisons_are_symmetric(a in arbitrary_record(), b in arbitrary_record()) {
        let (x, y) = (Features::of(&a), Features::of(&b));
        prop_assert_eq!(compare(&x, &y), compare(&y, &x));
    }

    #[test]
    fn runs_are_deterministic_and_ids_ignore_input_order(seed in any::<u64>()) {
        let (mut records, _) = partnership(60);
        let first = run(&records, &ReviewDecisions::new(), &HashMap::new());
        // Shuffle the input (a different order of files and rows).
        let n = records.len();
        let mut state = seed | 1;
        for i in (1..n).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            records.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let second = run(&records, &ReviewDecisions::new(), &HashMap::new());
        prop_assert_eq!(&first.keys, &second.keys);
        prop_assert_eq!(&first.person_ids, &second.person_ids);
        prop_assert_eq!(first.n_candidate_pairs, second.n_candidate_pairs);
        let rerun = run(&records, &ReviewDecisions::new(), &second.assignments());
        prop_assert_eq!(&rerun.person_ids, &second.person_ids);
    }
}
