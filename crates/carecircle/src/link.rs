//! `carecircle link`: links partner CSV lists into persons with the linkage engine and writes
//! `source,record_id,person_id`, with a report of the model and, given a truth column, quality.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use carecircle_link::{
    link, pairwise_quality, read_column, read_records, write_person_ids, LinkOptions, Mapping, Progress,
    ReviewDecisions,
};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `carecircle link`.
#[derive(Args)]
pub struct LinkArgs {
    /// Mapping file (TOML): one for all inputs, or one per input in the same order.
    #[arg(long, required = true)]
    mapping: Vec<PathBuf>,
    /// Where to write `source,record_id,person_id`.
    #[arg(long)]
    out: PathBuf,
    /// A column whose equal values mark the same person: print pairwise precision, recall, F1.
    #[arg(long)]
    truth: Option<String>,
    /// Pairs at or above this match probability are linked.
    #[arg(long, default_value_t = LinkOptions::default().link_threshold)]
    link_threshold: f64,
    /// Partner lists (CSV with a header row).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

/// An indicatif bar on stderr showing the current stage; remembers when each stage started.
struct Bar(ProgressBar, std::sync::Mutex<Vec<(String, Instant)>>);

impl Progress for Bar {
    fn stage(&self, name: &str, total: u64) {
        if let Ok(mut stages) = self.1.lock() {
            stages.push((name.to_string(), Instant::now()));
        }
        self.0.set_position(0);
        self.0.set_length(total);
        self.0.set_message(name.to_string());
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

fn source_name(path: &Path) -> String {
    path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into())
}

/// Runs the subcommand.
pub fn run(args: &LinkArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.mapping.len() != 1 && args.mapping.len() != args.inputs.len() {
        bail!(
            "give one --mapping for all inputs or one per input ({} inputs, {} mappings)",
            args.inputs.len(),
            args.mapping.len()
        );
    }
    let mut records = Vec::new();
    let mut truth = Vec::new();
    for (index, input) in args.inputs.iter().enumerate() {
        let mapping_path = &args.mapping[if args.mapping.len() == 1 { 0 } else { index }];
        let mapping_text =
            std::fs::read_to_string(mapping_path).with_context(|| format!("reading {}", mapping_path.display()))?;
        let mapping = Mapping::from_toml(&mapping_text).with_context(|| format!("in {}", mapping_path.display()))?;
        let open = || std::fs::File::open(input).with_context(|| format!("opening {}", input.display()));
        let set = read_records(&mapping, &source_name(input), std::io::BufReader::new(open()?))
            .with_context(|| format!("reading {}", input.display()))?;
        for issue in set.issues.iter().take(5) {
            eprintln!("{}:{}: {}: {}", input.display(), issue.row, issue.field, issue.message);
        }
        if set.issues.len() > 5 {
            eprintln!("{}: {} more unusable values", input.display(), set.issues.len() - 5);
        }
        if let Some(column) = &args.truth {
            truth.extend(
                read_column(&mapping, std::io::BufReader::new(open()?), column)
                    .with_context(|| format!("reading {}", input.display()))?,
            );
        }
        records.extend(set.records);
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let options = LinkOptions { link_threshold: args.link_threshold, ..LinkOptions::default() };
    let read_seconds = started.elapsed().as_secs_f64();
    let progress = Bar(bar.clone(), Default::default());
    let result = link(&records, &ReviewDecisions::new(), &Default::default(), &options, &progress)?;
    let linked = Instant::now();
    bar.finish_and_clear();

    let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let person_of_record: Vec<&str> =
        records.iter().map(|record| result.person_of(&record.key()).map_or("", |id| id.0.as_str())).collect();
    write_person_ids(
        std::io::BufWriter::new(file),
        records
            .iter()
            .zip(&person_of_record)
            .map(|(record, person)| (record.source.as_str(), record.local_id.as_str(), *person)),
    )
    .with_context(|| format!("writing {}", args.out.display()))?;

    println!("records: {}", records.len());
    println!("candidate pairs: {}", result.n_candidate_pairs);
    for (rule, n_pairs) in &result.n_pairs_per_rule {
        println!("  {rule}: {n_pairs}");
    }
    if result.n_refined_blocks > 0 {
        println!("  blocks split by their refinement key as too large: {}", result.n_refined_blocks);
    }
    if result.n_oversized_blocks > 0 {
        println!("  blocks skipped as too large: {}", result.n_oversized_blocks);
    }
    println!("model (EM, {} iterations):", result.model.n_iterations);
    print!("{}", result.model.describe());
    println!("persons: {}", result.n_persons);
    println!("pairs for review: {}", result.review_pairs.len());
    if args.truth.is_some() {
        let quality = pairwise_quality(&person_of_record, &truth);
        println!(
            "pairwise precision {:.4} recall {:.4} F1 {:.4} (true pairs {}, predicted {}, correct {})",
            quality.precision,
            quality.recall,
            quality.f1,
            quality.true_pairs,
            quality.predicted_pairs,
            quality.true_positives
        );
    }
    let mut times = format!("reading {read_seconds:.2}");
    if let Ok(stages) = progress.1.lock() {
        for (index, (name, start)) in stages.iter().enumerate() {
            let end = stages.get(index + 1).map_or(linked, |next| next.1);
            times.push_str(&format!(", {name} {:.2}", (end - *start).as_secs_f64()));
        }
    }
    println!("stage times (s): {times}");
    println!("elapsed: {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
