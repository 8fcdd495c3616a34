//! Blocking diagnostics on a set with a truth column: how many true pairs each blocking rule
//! finds, how many the rules find together (the recall ceiling of the whole run), and a sample
//! of the true pairs no rule finds.
//!
//! cargo run --release -p carecircle-link --example blocking_recall -- TRUTH_COLUMN MAPPING.toml CSV [MAPPING.toml CSV]...

use std::collections::HashMap;

use carecircle_link::blocking::{candidate_pairs, BlockingRule};
use carecircle_link::features::Features;
use carecircle_link::{read_column, read_records, LinkOptions, Mapping};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (truth_column, inputs) = args.split_first().ok_or("usage: TRUTH_COLUMN (MAPPING CSV)...")?;
    let (mut records, mut truth) = (Vec::new(), Vec::new());
    for pair in inputs.chunks(2) {
        let [mapping, csv] = pair else { return Err("give a mapping and a CSV each time".into()) };
        let mapping = Mapping::from_toml(&std::fs::read_to_string(mapping)?)?;
        let source =
            std::path::Path::new(csv).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        records.extend(read_records(&mapping, &source, std::fs::File::open(csv)?)?.records);
        truth.extend(read_column(&mapping, std::fs::File::open(csv)?, truth_column)?);
    }
    let features: Vec<Features> = records.iter().map(Features::of).collect();
    let started = std::time::Instant::now();
    let max_block_size = std::env::var("MAX_BLOCK_SIZE")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(LinkOptions::default().max_block_size);
    let candidates = candidate_pairs(&features, max_block_size);
    println!("blocking: {:.2} s, {} candidate pairs", started.elapsed().as_secs_f64(), candidates.pairs.len());

    let mut by_truth: HashMap<&str, Vec<u32>> = HashMap::new();
    for (index, label) in truth.iter().enumerate() {
        if let Some(label) = label {
            by_truth.entry(label.as_str()).or_default().push(index as u32);
        }
    }
    let found: HashMap<(u32, u32), u8> =
        candidates.pairs.iter().copied().zip(candidates.rules.iter().copied()).collect();
    let (mut n_true, mut n_found) = (0u64, 0u64);
    let mut per_rule = vec![0u64; BlockingRule::ALL.len()];
    let mut only_rule = vec![0u64; BlockingRule::ALL.len()];
    let mut missed = Vec::new();
    for members in by_truth.values() {
        for (offset, &i) in members.iter().enumerate() {
            for &j in &members[offset + 1..] {
                n_true += 1;
                match found.get(&(i.min(j), i.max(j))) {
                    Some(&rules) => {
                        n_found += 1;
                        for (k, count) in per_rule.iter_mut().enumerate() {
                            *count += u64::from(rules >> k & 1);
                        }
                        if rules.count_ones() == 1 {
                            only_rule[rules.trailing_zeros() as usize] += 1;
                        }
                    }
                    None if missed.len() < 12 => missed.push((i, j)),
                    None => {}
                }
            }
        }
    }
    println!("true pairs {n_true}, among candidates {n_found} (blocking recall {:.4})", n_found as f64 / n_true as f64);
    for (k, rule) in BlockingRule::ALL.iter().enumerate() {
        println!(
            "  {:<45} pairs {:>10}  true {:>8}  only this rule {:>7}",
            rule.name(),
            candidates.n_pairs_per_rule[k],
            per_rule[k],
            only_rule[k]
        );
    }
    println!(
        "blocks refined: {}, skipped: {} (max block size {max_block_size})",
        candidates.n_refined_blocks, candidates.n_oversized_blocks
    );
    for (i, j) in missed {
        let show = |f: &Features| {
            format!(
                "{} {} | {:?} | {} {} {} | {} | {}",
                f.given,
                f.family,
                f.birth_date.map(|d| d.to_string()),
                f.house_number,
                f.street,
                f.postcode,
                f.phone,
                f.national_id
            )
        };
        println!("missed: {}  <>  {}", show(&features[i as usize]), show(&features[j as usize]));
    }
    Ok(())
}
