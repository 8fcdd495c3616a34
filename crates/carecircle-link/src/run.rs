//! The batch linkage run: normalise, block, compare, train, score, cluster and name persons.
//! Deterministic: records are put in key order first, every parallel step collects in order,
//! and ties are broken by record index.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use crate::blocking::{candidate_pairs, BlockingRule};
use crate::cluster::{cluster, ClusterInput, Decision, ReviewDecisions};
use crate::compare::{compare, pack_levels, unpack_levels};
use crate::features::Features;
use crate::ids::{assign_person_ids, PersonId};
use crate::model::{probability_of_weight, Model, ModelError, TrainingOptions};
use crate::record::{RecordKey, SourceRecord};

/// Settings of a run. The defaults are meant to work on any partnership's data.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    /// Pairs at or above this probability are linked (subject to the cluster checks).
    pub link_threshold: f64,
    /// Pairs at or above this probability that end up apart are proposed for review.
    pub review_threshold: f64,
    /// Mean probability across two clusters needed to merge them.
    pub min_cluster_support: f64,
    /// Largest block compared; larger ones are split by the rule's refinement key
    /// ([`BlockingRule::refinement`]) and parts still larger are skipped as uninformative.
    pub max_block_size: usize,
    /// Model training settings.
    pub training: TrainingOptions,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            link_threshold: 0.9,
            review_threshold: 0.5,
            min_cluster_support: 0.5,
            max_block_size: 100,
            training: TrainingOptions::default(),
        }
    }
}

/// Progress reports of a long run (the CLI shows a progress bar; the server may log).
pub trait Progress: Sync {
    /// A stage starts, with `total` units of work (0 when unknown).
    fn stage(&self, name: &str, total: u64);
    /// `n` more units are done.
    fn advance(&self, n: u64);
}

/// Progress that reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _name: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Two input records share a (source, local id).
    #[error("record {0} appears twice")]
    DuplicateRecord(RecordKey),
    /// More records than the engine indexes (about four billion).
    #[error("too many records for one run")]
    TooManyRecords,
    /// The model could not be trained.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A pair proposed to a reviewer: likely the same person, but not linked.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewPair {
    /// One record.
    pub a: RecordKey,
    /// The other.
    pub b: RecordKey,
    /// Match probability.
    pub probability: f64,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct LinkResult {
    /// Every record's key, sorted.
    pub keys: Vec<RecordKey>,
    /// The person of each record (same order as `keys`).
    pub person_ids: Vec<PersonId>,
    /// Candidate pairs compared.
    pub n_candidate_pairs: u64,
    /// Pairs each blocking rule produced, before deduplication.
    pub n_pairs_per_rule: Vec<(&'static str, u64)>,
    /// Blocks larger than the maximum block size, split by their rule's refinement key.
    pub n_refined_blocks: u64,
    /// Blocks skipped as too large even after refinement.
    pub n_oversized_blocks: u64,
    /// Number of distinct persons.
    pub n_persons: usize,
    /// The trained model (to persist, and to build a [`crate::LinkIndex`]).
    pub model: Model,
    /// Pairs in different persons with probability at or above the review threshold, minus
    /// those a reviewer already kept apart; strongest first.
    pub review_pairs: Vec<ReviewPair>,
}

impl LinkResult {
    /// The person of a record.
    pub fn person_of(&self, key: &RecordKey) -> Option<&PersonId> {
        self.keys.binary_search(key).ok().map(|index| &self.person_ids[index])
    }

    /// Record → person, for the next run's `previous`.
    pub fn assignments(&self) -> HashMap<RecordKey, PersonId> {
        self.keys.iter().cloned().zip(self.person_ids.iter().cloned()).collect()
    }
}

/// Links a batch of records into persons. `decisions` are remembered review decisions;
/// `previous` the assignments of an earlier run (empty for a first run), used to keep ids.
pub fn link(
    records: &[SourceRecord],
    decisions: &ReviewDecisions,
    previous: &HashMap<RecordKey, PersonId>,
    options: &LinkOptions,
    progress: &dyn Progress,
) -> Result<LinkResult, LinkError> {
    if records.len() >= u32::MAX as usize {
        return Err(LinkError::TooManyRecords);
    }
    // Key order makes indices, ties and ids independent of input order.
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.par_sort_by(|&a, &b| {
        (&records[a].source, &records[a].local_id).cmp(&(&records[b].source, &records[b].local_id))
    });
    let keys: Vec<RecordKey> = order.iter().map(|&index| records[index].key()).collect();
    if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(LinkError::DuplicateRecord(pair[0].clone()));
    }
    progress.stage("normalising", records.len() as u64);
    let features: Vec<Features> = order
        .par_iter()
        .map(|&index| {
            let features = Features::of(&records[index]);
            progress.advance(1);
            features
        })
        .collect();

    progress.stage("blocking", 0);
    let candidates = candidate_pairs(&features, options.max_block_size);
    let n_candidate_pairs = candidates.pairs.len() as u64;

    progress.stage("comparing", n_candidate_pairs);
    // Allocated once at its final size: growing a vector of tens of millions of entries
    // costs copies and fresh zeroed pages.
    let mut levels: Vec<u64> = vec![0; candidates.pairs.len()];
    levels.par_chunks_mut(4096).zip(candidates.pairs.par_chunks(4096)).for_each(|(out, chunk)| {
        for (packed, &(i, j)) in out.iter_mut().zip(chunk) {
            *packed = pack_levels(&compare(&features[i as usize], &features[j as usize]));
        }
        progress.advance(chunk.len() as u64);
    });

    progress.stage("training", 0);
    let model = if features.len() >= 2 {
        Model::train(&features, &levels, &candidates.rules, &options.training)?
    } else {
        untrained_model()
    };

    progress.stage("scoring", n_candidate_pairs);
    let probabilities: Vec<f64> = candidates
        .pairs
        .par_iter()
        .zip(levels.par_iter())
        .map(|(&(i, j), &packed)| {
            probability_of_weight(model.match_weight(
                &unpack_levels(packed),
                &features[i as usize],
                &features[j as usize],
            ))
        })
        .collect();
    progress.advance(n_candidate_pairs);

    progress.stage("clustering", 0);
    let index_of = |key: &RecordKey| keys.binary_search(key).ok().map(|index| index as u32);
    let (mut forced_links, mut keep_apart) = (Vec::new(), Vec::new());
    for (a, b, decision) in decisions.iter() {
        if let (Some(i), Some(j)) = (index_of(a), index_of(b)) {
            match decision {
                Decision::Link => forced_links.push((i.min(j), i.max(j))),
                Decision::KeepApart => keep_apart.push((i.min(j), i.max(j))),
            }
        }
    }
    let verified_ids: Vec<Option<&str>> =
        features.iter().map(|f| f.national_id_verified.then_some(&*f.national_id)).collect();
    let mut by_verified_id: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (index, id) in verified_ids.iter().enumerate() {
        if let Some(id) = id {
            by_verified_id.entry(id).or_default().push(index as u32);
        }
    }
    for group in by_verified_id.values() {
        forced_links.extend(group.windows(2).map(|pair| (pair[0], pair[1])));
    }
    let edges: Vec<(u32, u32, f64)> = candidates
        .pairs
        .iter()
        .zip(&probabilities)
        .filter(|(_, &p)| p >= options.link_threshold)
        .map(|(&(i, j), &p)| (i, j, p))
        .collect();
    let input = ClusterInput {
        n_records: features.len(),
        verified_ids: &verified_ids,
        forced_links: &forced_links,
        keep_apart: &keep_apart,
        edges: &edges,
        min_support: options.min_cluster_support,
        max_support_pairs: 400,
    };
    let labels = cluster(&input, |i, j| pair_probability(&model, &features, &verified_ids, i, j));

    let mut clusters: BTreeMap<u32, Vec<RecordKey>> = BTreeMap::new();
    for (index, &label) in labels.iter().enumerate() {
        clusters.entry(label).or_default().push(keys[index].clone());
    }
    let cluster_labels: Vec<u32> = clusters.keys().copied().collect();
    let cluster_keys: Vec<Vec<RecordKey>> = clusters.into_values().collect();
    let ids = assign_person_ids(&cluster_keys, previous);
    let id_of_label: HashMap<u32, &PersonId> = cluster_labels.iter().copied().zip(ids.iter()).collect();
    let person_ids: Vec<PersonId> = labels.iter().map(|label| id_of_label[label].clone()).collect();

    let mut review_pairs: Vec<ReviewPair> = candidates
        .pairs
        .iter()
        .zip(&probabilities)
        .filter(|(&(i, j), &p)| p >= options.review_threshold && labels[i as usize] != labels[j as usize])
        .filter(|(&(i, j), _)| decisions.get(&keys[i as usize], &keys[j as usize]) != Some(Decision::KeepApart))
        .map(|(&(i, j), &probability)| ReviewPair {
            a: keys[i as usize].clone(),
            b: keys[j as usize].clone(),
            probability,
        })
        .collect();
    review_pairs.sort_by(|x, y| y.probability.total_cmp(&x.probability).then_with(|| (&x.a, &x.b).cmp(&(&y.a, &y.b))));

    Ok(LinkResult {
        n_persons: cluster_keys.len(),
        keys,
        person_ids,
        n_candidate_pairs,
        n_pairs_per_rule: BlockingRule::ALL.iter().map(|rule| rule.name()).zip(candidates.n_pairs_per_rule).collect(),
        n_refined_blocks: candidates.n_refined_blocks,
        n_oversized_blocks: candidates.n_oversized_blocks,
        model,
        review_pairs,
    })
}

/// Probability of any pair, with the identifier rule: a shared verified identifier is certain,
/// two different verified identifiers are impossible.
pub fn pair_probability(model: &Model, features: &[Features], verified_ids: &[Option<&str>], i: u32, j: u32) -> f64 {
    match (verified_ids[i as usize], verified_ids[j as usize]) {
        (Some(x), Some(y)) if x == y => 1.0,
        (Some(_), Some(_)) => 0.0,
        _ => model.match_probability(&features[i as usize], &features[j as usize]),
    }
}

/// A neutral model for runs with fewer than two records (nothing is compared).
fn untrained_model() -> Model {
    let flat: Vec<Vec<f64>> = crate::compare::COMPARISONS
        .iter()
        .map(|spec| vec![1.0 / spec.levels.len() as f64; spec.levels.len()])
        .collect();
    Model {
        m: flat.clone(),
        u: flat,
        u_exact_random: [1.0, 1.0],
        prior: 0.5,
        term_frequencies: crate::model::TermFrequencies::default(),
        n_iterations: 0,
    }
}
