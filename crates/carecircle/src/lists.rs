//! `carecircle lists import`: the administrator's offline upload of one partner's list of
//! active clients (CSV + TOML mapping) into the record and the person index, with a progress
//! bar and a summary of new, changed and departed entries.

use std::path::PathBuf;

use anyhow::Context;
use carecircle_link::{Mapping, Progress};
use carecircle_record::lists::{upload_list, ListUpload, ListWriter};
use carecircle_record::{custodian_reference, Caller, PersonIndex, Record};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// `carecircle lists …`.
#[derive(Subcommand)]
pub enum ListsCommand {
    /// Upload one partner's list of active clients.
    ///
    /// Example: carecircle lists import --partner housing --mapping housing.toml housing.csv
    Import(ImportArgs),
}

/// Arguments of `carecircle lists import`.
#[derive(Args)]
pub struct ImportArgs {
    /// The partner whose list it is (`Organization/{id}` or the id).
    #[arg(long)]
    partner: String,
    /// The mapping file (TOML) naming the CSV's columns.
    #[arg(long)]
    mapping: PathBuf,
    /// Written as the custodian of the person index's own records (`Linkage`, review `Task`s).
    #[arg(long, default_value = "Organization/carecircle-partnership")]
    default_custodian: String,
    /// The list (CSV with a header row).
    csv: PathBuf,
}

/// An indicatif bar on stderr, one step per row.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn stage(&self, name: &str, total: u64) {
        self.0.set_position(0);
        self.0.set_length(total);
        self.0.set_message(name.to_string());
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

/// Runs `carecircle lists import`.
pub async fn import(record: &Record, args: &ImportArgs) -> anyhow::Result<()> {
    let partner =
        custodian_reference(&args.partner).map_err(|issue| anyhow::anyhow!("--partner: {}", issue.diagnostics))?;
    let bookkeeper = custodian_reference(&args.default_custodian)
        .map_err(|issue| anyhow::anyhow!("--default-custodian: {}", issue.diagnostics))?;
    let partner_id = partner.strip_prefix("Organization/").unwrap_or(&partner).to_string();
    record.read("Organization", &partner_id).await.with_context(|| format!("the partner {partner} is not known"))?;
    let mapping_text =
        std::fs::read_to_string(&args.mapping).with_context(|| format!("reading {}", args.mapping.display()))?;
    let mapping = Mapping::from_toml(&mapping_text).with_context(|| format!("in {}", args.mapping.display()))?;
    let csv = std::fs::read(&args.csv).with_context(|| format!("reading {}", args.csv.display()))?;
    let index =
        PersonIndex::load(record, Caller { custodian: bookkeeper }).await.context("loading the person index")?;
    index.catch_up(record).await.context("catching up the person index")?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:>6} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let upload = ListUpload { partner: &partner, mapping: &mapping, csv: &csv };
    let summary = upload_list(record, &ListWriter::Offline, &index, &upload, &Bar(bar.clone()))
        .await
        .with_context(|| format!("uploading {}", args.csv.display()))?;
    bar.finish_and_clear();
    for issue in summary.issues.iter().take(5) {
        eprintln!("{}:{}: {}: {}", args.csv.display(), issue.row, issue.field, issue.message);
    }
    if summary.issues.len() > 5 {
        eprintln!("{}: {} more unusable values", args.csv.display(), summary.issues.len() - 5);
    }
    println!("rows: {}", summary.n_rows);
    println!("new: {}", summary.n_new);
    println!("changed: {}", summary.n_changed);
    println!("unchanged: {}", summary.n_unchanged);
    println!("left the list: {}", summary.n_left);
    println!("possible matches for review: {}", summary.n_review_proposed);
    Ok(())
}
