//! Bulk import of FHIR JSON, Bundles and NDJSON from files and folders, with a progress bar and
//! a summary; and loading the demo partnership.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use carecircle_record::{Caller, Record, RecordError};
use carecircle_store::{WriteEffect, WriteOutcome};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// How many failures are listed in the summary; the rest are counted.
const MAX_LISTED_FAILURES: usize = 20;

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportSummary {
    /// Resources created.
    pub n_created: usize,
    /// Resources updated (they existed already).
    pub n_updated: usize,
    /// Resources or Bundle entries refused.
    pub n_failed: usize,
    /// Transaction or batch Bundles processed.
    pub n_bundles: usize,
    /// Stored resources by type.
    pub by_type: BTreeMap<String, usize>,
    /// The first failures: where and why.
    pub failures: Vec<String>,
    /// Seconds taken.
    pub seconds: f64,
}

impl ImportSummary {
    fn fail(&mut self, location: String, why: String) {
        self.n_failed += 1;
        if self.failures.len() < MAX_LISTED_FAILURES {
            self.failures.push(format!("{location}: {why}"));
        }
    }

    fn record(&mut self, outcome: &WriteOutcome) {
        match outcome.effect {
            WriteEffect::Created => self.n_created += 1,
            _ => self.n_updated += 1,
        }
        *self.by_type.entry(outcome.stored.resource_type.clone()).or_default() += 1;
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stored = self.n_created + self.n_updated;
        let rate = if self.seconds > 0.0 { stored as f64 / self.seconds } else { 0.0 };
        writeln!(
            f,
            "imported {stored} resources ({} created, {} updated) and {} Bundles in {:.1} s ({rate:.0} resources/s); {} refused",
            self.n_created, self.n_updated, self.n_bundles, self.seconds, self.n_failed
        )?;
        for (resource_type, n) in &self.by_type {
            writeln!(f, "  {resource_type:<28} {n}")?;
        }
        for failure in &self.failures {
            writeln!(f, "  refused: {failure}")?;
        }
        if self.n_failed > self.failures.len() {
            writeln!(f, "  ... and {} more refused", self.n_failed - self.failures.len())?;
        }
        Ok(())
    }
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        children.sort();
        for child in children {
            if child.is_dir() || matches!(child.extension().and_then(|e| e.to_str()), Some("json" | "ndjson")) {
                collect_files(&child, files)?;
            }
        }
    } else if path.exists() {
        files.push(path.to_path_buf());
    } else {
        anyhow::bail!("{} does not exist", path.display());
    }
    Ok(())
}

/// A batch being written while the next one is read and prepared.
type InFlight = tokio::task::JoinHandle<(Vec<String>, Result<Vec<Result<WriteOutcome, RecordError>>, RecordError>)>;

struct Importer<'a> {
    record: &'a Record,
    caller: &'a Caller,
    batch_size: usize,
    pending: Vec<(String, Value)>,
    in_flight: Option<InFlight>,
    summary: ImportSummary,
}

impl Importer<'_> {
    async fn push(&mut self, location: String, resource: Value) -> anyhow::Result<()> {
        self.pending.push((location, resource));
        if self.pending.len() >= self.batch_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Prepares the pending batch here, waits for the batch being written, then starts writing
    /// this one in the background: reading and validation overlap with the database work.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (locations, resources): (Vec<String>, Vec<Value>) = std::mem::take(&mut self.pending).into_iter().unzip();
        let prepared = self.record.prepare_import(self.caller, resources);
        self.wait().await?;
        let record = self.record.clone();
        self.in_flight = Some(tokio::spawn(async move { (locations, record.apply_import(prepared).await) }));
        Ok(())
    }

    /// Waits for the batch being written and counts its results.
    async fn wait(&mut self) -> anyhow::Result<()> {
        let Some(handle) = self.in_flight.take() else { return Ok(()) };
        let (locations, results) = handle.await.context("the import writer stopped")?;
        let results = results.map_err(|e| anyhow::anyhow!("the store refused a batch: {e}"))?;
        for (location, result) in locations.into_iter().zip(results) {
            match result {
                Ok(outcome) => self.summary.record(&outcome),
                Err(error) => self.summary.fail(location, describe(&error)),
            }
        }
        Ok(())
    }

    async fn bundle(&mut self, location: &str, bundle: Value) -> anyhow::Result<()> {
        self.flush().await?;
        self.wait().await?;
        match self.record.process_bundle(self.caller, bundle).await {
            Ok(response) => {
                self.summary.n_bundles += 1;
                for (i, entry) in response["entry"].as_array().into_iter().flatten().enumerate() {
                    let status = entry["response"]["status"].as_str().unwrap_or_default();
                    let resource_type = entry["response"]["location"]
                        .as_str()
                        .and_then(|l| l.split('/').next())
                        .unwrap_or("?")
                        .to_string();
                    match status.split(' ').next() {
                        Some("201") => {
                            self.summary.n_created += 1;
                            *self.summary.by_type.entry(resource_type).or_default() += 1;
                        }
                        Some("200") | Some("204") => self.summary.n_updated += 1,
                        _ => self.summary.fail(format!("{location} entry[{i}]"), status.to_string()),
                    }
                }
            }
            Err(error) => self.summary.fail(location.to_string(), describe(&error)),
        }
        Ok(())
    }

    async fn json_file(&mut self, location: &str, value: Value) -> anyhow::Result<()> {
        let is_bundle = value.get("resourceType").and_then(Value::as_str) == Some("Bundle");
        match (is_bundle, value.get("type").and_then(Value::as_str)) {
            (true, Some("transaction" | "batch")) => self.bundle(location, value).await,
            (true, Some("collection" | "searchset")) => {
                for (i, entry) in value["entry"].as_array().into_iter().flatten().enumerate() {
                    if let Some(resource) = entry.get("resource") {
                        self.push(format!("{location} entry[{i}]"), resource.clone()).await?;
                    }
                }
                Ok(())
            }
            _ => self.push(location.to_string(), value).await,
        }
    }
}

fn describe(error: &RecordError) -> String {
    error
        .issues()
        .iter()
        .map(|i| match i.expression.first() {
            Some(at) => format!("{} (at {at})", i.diagnostics),
            None => i.diagnostics.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Imports every `.json` and `.ndjson` file under `paths` as `caller`.
pub async fn import_paths(
    record: &Record,
    caller: &Caller,
    paths: &[PathBuf],
    batch_size: usize,
) -> anyhow::Result<ImportSummary> {
    let started = Instant::now();
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files)?;
    }
    let total_bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let progress = ProgressBar::new(total_bytes);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:40}] {bytes}/{total_bytes} ({eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut importer = Importer {
        record,
        caller,
        batch_size,
        pending: Vec::new(),
        in_flight: None,
        summary: ImportSummary::default(),
    };
    for file in &files {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) => {
                importer.summary.fail(name, format!("cannot read: {error}"));
                continue;
            }
        };
        let is_ndjson = file.extension().and_then(|e| e.to_str()) == Some("ndjson");
        if is_ndjson {
            for (n, line) in text.lines().enumerate() {
                progress.inc(line.len() as u64 + 1);
                if line.trim().is_empty() {
                    continue;
                }
                let location = format!("{name}:{}", n + 1);
                match serde_json::from_str::<Value>(line) {
                    Ok(value) => importer.json_file(&location, value).await?,
                    Err(error) => importer.summary.fail(location, format!("not valid JSON: {error}")),
                }
            }
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(value) => importer.json_file(&name, value).await?,
                Err(error) => importer.summary.fail(name, format!("not valid JSON: {error}")),
            }
            progress.inc(text.len() as u64);
        }
        progress.set_message(format!("{} stored", importer.summary.n_created + importer.summary.n_updated));
    }
    importer.flush().await?;
    importer.wait().await?;
    progress.finish_and_clear();
    importer.summary.seconds = started.elapsed().as_secs_f64();
    Ok(importer.summary)
}

/// Loads the demo partnership unless it is already there, then links its Patients into persons
/// (the person index's `Linkage`s, written by `bookkeeper`), so that an event at one partner
/// finds the person's records, care plans and care team at the others from the start.
pub async fn ensure_demo(record: &Record, seed: u64, people: usize, bookkeeper: &str) -> anyhow::Result<()> {
    let marker = carecircle_demo::well_known::ORG_HOSPITAL;
    if record.store().read("Organization", marker).await.map_err(|e| anyhow::anyhow!("{e}"))?.is_some() {
        println!("the demo partnership is already loaded");
        return Ok(());
    }
    let started = Instant::now();
    let resources = carecircle_demo::generate(&carecircle_demo::DemoConfig { seed, n_people: people });
    let n_resources = resources.len();
    // Each partner writes its own records, so each is their custodian.
    let mut by_custodian: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for demo in resources {
        by_custodian.entry(demo.custodian_org_id).or_default().push(demo.resource);
    }
    let progress = ProgressBar::new(n_resources as u64);
    let n_partners = by_custodian.len();
    for (org_id, resources) in by_custodian {
        let caller = Caller { custodian: format!("Organization/{org_id}") };
        for chunk in resources.chunks(2000) {
            let results =
                record.import(&caller, chunk.to_vec()).await.map_err(|e| anyhow::anyhow!("loading the demo: {e}"))?;
            if let Some(Err(error)) = results.iter().find(|r| r.is_err()) {
                anyhow::bail!("the demo generator produced an invalid resource: {}", describe(error));
            }
            progress.inc(chunk.len() as u64);
        }
    }
    progress.finish_and_clear();
    println!(
        "created the demo partnership: {n_resources} resources from {n_partners} partners in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let index = carecircle_record::PersonIndex::load(record, Caller { custodian: bookkeeper.to_string() })
        .await
        .map_err(|e| anyhow::anyhow!("linking the demo's records: {e}"))?;
    println!(
        "linked its records into {} persons (the person index) in {:.1} s",
        index.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes the demo partnership as NDJSON to `path`; returns the number of resources.
pub fn write_demo_ndjson(path: &Path, seed: u64, people: usize) -> anyhow::Result<usize> {
    use std::io::Write;
    let resources = carecircle_demo::generate(&carecircle_demo::DemoConfig { seed, n_people: people });
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for demo in &resources {
        serde_json::to_writer(&mut out, &demo.resource)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(resources.len())
}
