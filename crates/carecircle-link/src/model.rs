//! The Fellegi-Sunter model: for every comparison level, m (how often true matches show it) and
//! u (how often non-matches do). u is estimated from random record pairs; m and the share of
//! matches among candidate pairs are then estimated by expectation-maximisation on the candidate
//! pairs with u held fixed (no labelled data). Exact name agreements are adjusted for how common the name is.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compare::{compare, field, pack_levels, unpack_levels, Levels, COMPARISONS, EXACT, MISSING, N_COMPARISONS};
use crate::features::Features;

/// Why a model could not be trained or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Fewer than two records: nothing to learn from.
    #[error("at least two records are needed to train a linkage model")]
    TooFewRecords,
    /// The serialised model does not have one row of parameters per comparison level.
    #[error("the model's parameters do not match the comparisons of this version")]
    Shape,
}

/// How often each first given name and family name occurs, for term-frequency adjustments.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TermFrequencies {
    /// Records counted.
    pub n_records: u64,
    /// Count of each folded first given name.
    pub given: HashMap<String, u32>,
    /// Count of each folded family name.
    pub family: HashMap<String, u32>,
}

impl TermFrequencies {
    /// Counts the names of `features`.
    pub fn of(features: &[Features]) -> TermFrequencies {
        let mut frequencies = TermFrequencies::default();
        for record in features {
            frequencies.add(record);
        }
        frequencies
    }

    /// Counts one more record.
    pub fn add(&mut self, record: &Features) {
        self.n_records += 1;
        if !record.given.is_empty() {
            *self.given.entry(record.given.to_string()).or_default() += 1;
        }
        if !record.family.is_empty() {
            *self.family.entry(record.family.to_string()).or_default() += 1;
        }
    }

    /// Forgets one record counted before.
    pub fn remove(&mut self, record: &Features) {
        self.n_records = self.n_records.saturating_sub(1);
        for (table, value) in [(&mut self.given, &record.given), (&mut self.family, &record.family)] {
            if let Some(count) = table.get_mut(&**value) {
                *count -= 1;
                if *count == 0 {
                    table.remove(&**value);
                }
            }
        }
    }

    /// Share of records with this value (at least one record's worth).
    fn share(&self, table: &HashMap<String, u32>, value: &str) -> f64 {
        let count = table.get(value).copied().unwrap_or(1).max(1);
        f64::from(count) / (self.n_records.max(1) as f64)
    }
}

/// A trained Fellegi-Sunter model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// m probabilities, `[comparison][level]` (level 0, missing, is unused).
    pub m: Vec<Vec<f64>>,
    /// u probabilities, `[comparison][level]`.
    pub u: Vec<Vec<f64>>,
    /// u of exact agreement on given and family name among random pairs (the average a name's
    /// own frequency is set against).
    pub u_exact_random: [f64; 2],
    /// Share of true matches among all record pairs (the prior odds of any two records).
    pub prior: f64,
    /// Name frequencies.
    pub term_frequencies: TermFrequencies,
    /// EM iterations run.
    pub n_iterations: usize,
}

/// Largest change of a term-frequency adjustment, in bits, so one rare or common name cannot
/// outweigh the rest of the evidence.
const MAX_TF_ADJUSTMENT_BITS: f64 = 3.0;

/// Training settings.
#[derive(Clone, Debug)]
pub struct TrainingOptions {
    /// Random pairs drawn to estimate u.
    pub n_u_samples: usize,
    /// Most EM iterations.
    pub max_iterations: usize,
    /// Seed of the random pair sampler (training is deterministic for a seed).
    pub seed: u64,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        TrainingOptions { n_u_samples: 50_000, max_iterations: 100, seed: 0x6361_7265 }
    }
}

/// Probabilities per level from counts, with half a count added to each level so none is 0.
fn smoothed(counts: &[f64]) -> Vec<f64> {
    let observed: f64 = counts[1..].iter().sum::<f64>() + 0.5 * (counts.len() - 1) as f64;
    let mut probabilities = vec![0.0; counts.len()];
    for level in 1..counts.len() {
        probabilities[level] = (counts[level] + 0.5) / observed;
    }
    probabilities
}

/// Fewest candidate pairs a blocking rule must have found for its own training session.
const MIN_SESSION_PAIRS: u64 = 20;

/// Bits of a packed levels vector (four per comparison); the rules that found a pair are kept
/// above them when patterns are counted.
const PATTERN_BITS: u32 = 4 * N_COMPARISONS as u32;

/// What one expectation-maximisation session estimated.
struct Session {
    /// m per comparison; rows of comparisons left out of the session are not estimated.
    m: Vec<Vec<f64>>,
    /// Comparisons left out (those the session's blocking rule makes agree).
    left_out: [bool; N_COMPARISONS],
    /// Expected number of matches among the session's pairs.
    expected_matches: f64,
    /// Iterations run.
    n_iterations: usize,
}

/// The starting m: matches mostly agree exactly and rarely disagree.
fn starting_m() -> Vec<Vec<f64>> {
    COMPARISONS
        .iter()
        .map(|spec| {
            let n_levels = spec.levels.len();
            let mut start = vec![0.0; n_levels];
            start[1] = 0.9;
            for value in start.iter_mut().skip(2) {
                *value = 0.1 / (n_levels - 2) as f64;
            }
            start
        })
        .collect()
}

/// Expectation-maximisation of m and of the share of matches over `patterns` (packed levels and
/// their counts), u held fixed, ignoring the comparisons in `left_out`.
fn em_session(
    patterns: &[(u64, u64)],
    u: &[Vec<f64>],
    left_out: [bool; N_COMPARISONS],
    max_iterations: usize,
) -> Session {
    let mut m = starting_m();
    let mut prior: f64 = 0.1;
    let mut expected_matches = 0.0;
    let mut n_iterations = 0;
    for _ in 0..max_iterations {
        n_iterations += 1;
        let mut match_counts: Vec<Vec<f64>> = COMPARISONS.iter().map(|spec| vec![0.0; spec.levels.len()]).collect();
        let (mut matches, mut total) = (0.0, 0.0);
        for &(pattern, count) in patterns {
            let mut levels = unpack_levels(pattern);
            for (comparison, level) in levels.iter_mut().enumerate() {
                if left_out[comparison] {
                    *level = MISSING;
                }
            }
            let weight = log2_bayes_factor(&m, u, &levels) + (prior / (1.0 - prior)).log2();
            let posterior = probability_of_weight(weight);
            let count = count as f64;
            matches += posterior * count;
            total += count;
            for (comparison, &level) in levels.iter().enumerate() {
                match_counts[comparison][level as usize] += posterior * count;
            }
        }
        let new_prior = (matches / total).clamp(1e-6, 1.0 - 1e-6);
        let new_m: Vec<Vec<f64>> = match_counts
            .iter()
            .zip(&m)
            .zip(left_out)
            .map(|((counts, old), skip)| if skip { old.clone() } else { smoothed(counts) })
            .collect();
        let change = (new_prior - prior).abs().max(max_difference(&new_m, &m));
        (m, prior, expected_matches) = (new_m, new_prior, matches);
        if change < 1e-6 {
            break;
        }
    }
    Session { m, left_out, expected_matches, n_iterations }
}

impl Model {
    /// Trains a model on the records `features` and their candidate pairs, given as the packed
    /// comparison levels of each pair (`candidate_levels`, see [`pack_levels`]) and the
    /// blocking rules that found it (`candidate_rules`, bit sets in
    /// [`crate::blocking::BlockingRule::ALL`] order, same length).
    ///
    /// 1. u comes from random record pairs.
    /// 2. m is estimated by expectation-maximisation once per blocking rule, on the pairs that
    ///    rule found, leaving out the comparisons the rule makes agree (they would look like
    ///    evidence of a match even among that rule's non-matches, and EM would then call every
    ///    candidate pair a match). Each comparison's m is the average over the sessions that
    ///    estimated it, weighted by their expected number of matches.
    /// 3. The prior, the share of matches among all record pairs, is then estimated with m and
    ///    u fixed from every comparison of the candidate pairs (pairs outside the candidates
    ///    are taken as non-matches).
    pub fn train(
        features: &[Features],
        candidate_levels: &[u64],
        candidate_rules: &[u8],
        options: &TrainingOptions,
    ) -> Result<Model, ModelError> {
        let n = features.len();
        if n < 2 {
            return Err(ModelError::TooFewRecords);
        }
        let u = estimate_u(features, options);
        let u_exact_random = [u[field::GIVEN][EXACT as usize], u[field::FAMILY][EXACT as usize]];

        // Patterns with the rules that found them: a few thousand distinct keys however many
        // pairs there are, so every EM iteration below is cheap.
        let patterns = count_patterns(
            candidate_levels
                .par_iter()
                .zip(candidate_rules.par_iter())
                .map(|(&levels, &rules)| levels | (u64::from(rules) << PATTERN_BITS)),
        );
        let pattern_mask = (1u64 << PATTERN_BITS) - 1;
        let sessions: Vec<Session> = crate::blocking::BlockingRule::ALL
            .par_iter()
            .enumerate()
            .filter_map(|(rule_index, rule)| {
                let rule_patterns: Vec<(u64, u64)> = patterns
                    .iter()
                    .filter(|(key, _)| (key >> PATTERN_BITS) & (1 << rule_index) != 0)
                    .map(|&(key, count)| (key & pattern_mask, count))
                    .collect();
                let n_pairs: u64 = rule_patterns.iter().map(|(_, count)| count).sum();
                if n_pairs < MIN_SESSION_PAIRS {
                    return None;
                }
                let mut left_out = [false; N_COMPARISONS];
                for &comparison in rule.blocked_comparisons() {
                    left_out[comparison] = true;
                }
                Some(em_session(&rule_patterns, &u, left_out, options.max_iterations))
            })
            .collect();
        let mut m = starting_m();
        for (comparison, row) in m.iter_mut().enumerate() {
            let estimating: Vec<&Session> = sessions
                .iter()
                .filter(|session| !session.left_out[comparison] && session.expected_matches > 0.0)
                .collect();
            let total_weight: f64 = estimating.iter().map(|session| session.expected_matches).sum();
            if total_weight > 0.0 {
                for (level, value) in row.iter_mut().enumerate() {
                    *value = estimating
                        .iter()
                        .map(|session| session.expected_matches * session.m[comparison][level])
                        .sum::<f64>()
                        / total_weight;
                }
            }
        }

        // The prior over all record pairs, m and u fixed.
        let n_all_pairs = (n as f64) * (n as f64 - 1.0) / 2.0;
        let weights: Vec<(f64, f64)> = patterns
            .iter()
            .map(|&(key, count)| (log2_bayes_factor(&m, &u, &unpack_levels(key & pattern_mask)), count as f64))
            .collect();
        let mut prior = (1.0 / n as f64).min(0.5);
        let mut n_iterations = sessions.iter().map(|session| session.n_iterations).max().unwrap_or(0);
        for _ in 0..options.max_iterations {
            n_iterations += 1;
            let log_odds = (prior / (1.0 - prior)).log2();
            let matches: f64 =
                weights.iter().map(|&(weight, count)| probability_of_weight(weight + log_odds) * count).sum();
            let new_prior = (matches / n_all_pairs).clamp(1e-12, 0.5);
            let change = (new_prior.ln() - prior.ln()).abs();
            prior = new_prior;
            if change < 1e-6 {
                break;
            }
        }
        Ok(Model { m, u, u_exact_random, prior, term_frequencies: TermFrequencies::of(features), n_iterations })
    }

    /// Checks a deserialised model has the shape of this version's comparisons.
    pub fn check_shape(&self) -> Result<(), ModelError> {
        let fits = |table: &Vec<Vec<f64>>| {
            table.len() == N_COMPARISONS
                && table.iter().zip(COMPARISONS).all(|(row, spec)| row.len() == spec.levels.len())
        };
        if fits(&self.m) && fits(&self.u) {
            Ok(())
        } else {
            Err(ModelError::Shape)
        }
    }

    /// Match weight (log2 odds) of a pair, prior included, with term-frequency adjustments.
    pub fn match_weight(&self, levels: &Levels, a: &Features, b: &Features) -> f64 {
        let mut weight = log2_bayes_factor(&self.m, &self.u, levels) + (self.prior / (1.0 - self.prior)).log2();
        let frequencies = &self.term_frequencies;
        if levels[field::GIVEN] == EXACT && a.given == b.given {
            let share = frequencies.share(&frequencies.given, &a.given);
            weight += (self.u_exact_random[0] / share).log2().clamp(-MAX_TF_ADJUSTMENT_BITS, MAX_TF_ADJUSTMENT_BITS);
        }
        if levels[field::FAMILY] == EXACT && a.family == b.family {
            let share = frequencies.share(&frequencies.family, &a.family);
            weight += (self.u_exact_random[1] / share).log2().clamp(-MAX_TF_ADJUSTMENT_BITS, MAX_TF_ADJUSTMENT_BITS);
        }
        weight
    }

    /// Probability that two records are the same person.
    pub fn match_probability(&self, a: &Features, b: &Features) -> f64 {
        probability_of_weight(self.match_weight(&compare(a, b), a, b))
    }

    /// A table of the parameters: comparison, level, m, u, weight in bits.
    pub fn describe(&self) -> String {
        let mut text = format!("prior (share of matches among all record pairs): {:.3e}\n", self.prior);
        text.push_str(&format!("{:<14} {:<24} {:>9} {:>9} {:>8}\n", "comparison", "level", "m", "u", "weight"));
        for (comparison, spec) in COMPARISONS.iter().enumerate() {
            for (level, name) in spec.levels.iter().enumerate().skip(1) {
                let (m, u) = (self.m[comparison][level], self.u[comparison][level]);
                text.push_str(&format!(
                    "{:<14} {:<24} {:>9.5} {:>9.5} {:>8.2}\n",
                    spec.name,
                    name,
                    m,
                    u,
                    (m / u).log2()
                ));
            }
        }
        text
    }
}

/// u per comparison level from random record pairs (a handful are true matches, which barely
/// moves u). Deterministic for a seed: pairs are drawn in order and counted order-free.
fn estimate_u(features: &[Features], options: &TrainingOptions) -> Vec<Vec<f64>> {
    let n = features.len();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let n_possible = (n as u128) * (n as u128 - 1) / 2;
    let n_samples = (options.n_u_samples as u128).min(n_possible) as usize;
    let sample_pairs: Vec<(usize, usize)> = (0..n_samples)
        .map(|_| loop {
            let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
            if i != j {
                break (i, j);
            }
        })
        .collect();
    let random_counts =
        count_patterns(sample_pairs.par_iter().map(|&(i, j)| pack_levels(&compare(&features[i], &features[j]))));
    level_counts(&random_counts).iter().map(|counts| smoothed(counts)).collect()
}

/// Probability from a match weight in bits.
pub fn probability_of_weight(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

/// Comparisons of where a person lives and how to call them: people living together share all
/// of them, and a move changes them together, so they are one piece of evidence, not five.
pub const HOUSEHOLD_COMPARISONS: [usize; 5] =
    [field::HOUSE_NUMBER, field::STREET, field::CITY, field::POSTCODE, field::PHONE];

/// log2(m/u) summed over the comparisons that are not missing, except that the household
/// comparisons ([`HOUSEHOLD_COMPARISONS`]) count once: the strongest agreement among them, or,
/// when none agrees, the strongest disagreement.
///
/// Why: conditional independence, which lets Fellegi-Sunter add weights, fails for these fields.
/// Among non-matches, members of one household agree on all of them, so summed they gave about
/// 50 bits (postcode, street, phone about 14 each) and a parent and child with different names
/// and birth dates were linked. Treating the group as fully dependent keeps the weight of the
/// most specific field, which is the group's own likelihood ratio if the fields are redundant.
pub fn log2_bayes_factor(m: &[Vec<f64>], u: &[Vec<f64>], levels: &Levels) -> f64 {
    let weight = |comparison: usize| -> Option<f64> {
        let level = levels[comparison];
        (level != MISSING).then(|| (m[comparison][level as usize] / u[comparison][level as usize]).log2())
    };
    let mut total = 0.0;
    let (mut strongest_for, mut strongest_against) = (f64::NEG_INFINITY, 0.0f64);
    for comparison in 0..N_COMPARISONS {
        let Some(weight) = weight(comparison) else { continue };
        if HOUSEHOLD_COMPARISONS.contains(&comparison) {
            if weight > 0.0 {
                strongest_for = strongest_for.max(weight);
            } else {
                strongest_against = strongest_against.min(weight);
            }
        } else {
            total += weight;
        }
    }
    total + if strongest_for > 0.0 { strongest_for } else { strongest_against }
}

fn max_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Counts packed patterns; the result is sorted so sums over it are deterministic.
fn count_patterns(patterns: impl ParallelIterator<Item = u64>) -> Vec<(u64, u64)> {
    let counts = patterns
        .fold(HashMap::new, |mut counts: HashMap<u64, u64>, pattern| {
            *counts.entry(pattern).or_default() += 1;
            counts
        })
        .reduce(HashMap::new, |mut a, b| {
            for (pattern, count) in b {
                *a.entry(pattern).or_default() += count;
            }
            a
        });
    let mut sorted: Vec<(u64, u64)> = counts.into_iter().collect();
    sorted.sort_unstable();
    sorted
}

/// Per comparison, how many pairs showed each level.
fn level_counts(patterns: &[(u64, u64)]) -> Vec<Vec<f64>> {
    let mut counts: Vec<Vec<f64>> = COMPARISONS.iter().map(|spec| vec![0.0; spec.levels.len()]).collect();
    for &(pattern, count) in patterns {
        for (comparison, &level) in unpack_levels(pattern).iter().enumerate() {
            counts[comparison][level as usize] += count as f64;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BirthDate, SourceRecord};

    /// 200 people, each with an exact and a slightly altered second record.
    fn duplicated_people() -> Vec<Features> {
        let given = ["joseph", "mary", "ahmed", "olga", "pierre", "li", "amara", "sean", "priya", "tomasz"];
        let family = ["smith", "okafor", "nowak", "patel", "dubois", "chen", "murphy", "khan", "jones", "garcia"];
        let mut records = Vec::new();
        for person in 0..200usize {
            let record = SourceRecord {
                given_names: Some(given[person % 10].into()),
                family_name: Some(format!("{}{}", family[(person / 10) % 10], person / 100)),
                birth_date: BirthDate::new(
                    1940 + (person % 60) as i32,
                    1 + (person % 12) as u32,
                    1 + (person % 28) as u32,
                ),
                postcode: Some(format!("LS{} {}AB", person % 30, person % 9)),
                ..SourceRecord::default()
            };
            let mut altered = record.clone();
            if person % 2 == 0 {
                altered.postcode = None;
            }
            records.push(Features::of(&record));
            records.push(Features::of(&altered));
        }
        records
    }

    /// Candidate pairs of `features` as training takes them: levels and the rules that found them.
    fn candidates(features: &[Features]) -> (Vec<u64>, Vec<u8>) {
        let candidates = crate::blocking::candidate_pairs(features, 1000);
        let levels = candidates
            .pairs
            .iter()
            .map(|&(i, j)| pack_levels(&compare(&features[i as usize], &features[j as usize])))
            .collect();
        (levels, candidates.rules)
    }

    #[test]
    fn em_learns_that_agreement_is_evidence_of_a_match() {
        let features = duplicated_people();
        let (levels, rules) = candidates(&features);
        let model = Model::train(&features, &levels, &rules, &TrainingOptions::default()).unwrap();
        model.check_shape().unwrap();
        let exact_dob = model.m[field::BIRTH_DATE][1] / model.u[field::BIRTH_DATE][1];
        let different_dob = model.m[field::BIRTH_DATE][5] / model.u[field::BIRTH_DATE][5];
        assert!(exact_dob > 10.0 && different_dob < 0.5, "{}", model.describe());
        assert!(model.match_probability(&features[0], &features[1]) > 0.99);
        assert!(model.match_probability(&features[0], &features[2]) < 0.01);
        let n = features.len() as f64;
        let expected_prior = 200.0 / (n * (n - 1.0) / 2.0);
        assert!((model.prior - expected_prior).abs() < expected_prior * 0.5, "{} vs {expected_prior}", model.prior);
    }

    /// 300 people, two records each, 10 given names and family names that all share one
    /// four-letter Double Metaphone code ("Stanford", "Stanfield"...): nearly every candidate
    /// pair agrees on the phonetic name blocks, and most are not matches.
    fn namesakes() -> (Vec<Features>, Vec<usize>) {
        let given = ["james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "david", "susan"];
        let endings = [
            "ord", "ield", "orth", "ell", "ington", "ley", "ham", "ton", "by", "wick", "more", "ridge", "wood", "all",
            "er", "ing", "ett", "ard", "ock", "ill",
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut records, mut truth) = (Vec::new(), Vec::new());
        for person in 0..300 {
            let record = SourceRecord {
                given_names: Some(given[rng.random_range(0..given.len())].into()),
                family_name: Some(format!("stanf{}", endings[rng.random_range(0..endings.len())])),
                birth_date: BirthDate::new(
                    rng.random_range(1940..2000),
                    rng.random_range(1..=12),
                    rng.random_range(1..=28),
                ),
                postcode: Some(format!(
                    "LS{} {}A{}",
                    rng.random_range(1..20),
                    rng.random_range(1..10),
                    ["B", "D", "E"][person % 3]
                )),
                ..SourceRecord::default()
            };
            let mut other = record.clone();
            match person % 3 {
                0 => other.postcode = None,
                1 => other.birth_date = record.birth_date.and_then(|d| BirthDate::new(d.year, d.month, d.day % 28 + 1)),
                _ => {}
            }
            for record in [record, other] {
                records.push(Features::of(&record));
                truth.push(person);
            }
        }
        (records, truth)
    }

    #[test]
    fn em_is_not_fooled_by_pairs_that_agree_only_on_their_blocking_fields() {
        let (features, truth) = namesakes();
        let codes: std::collections::HashSet<u32> = features.iter().map(|f| f.family_phonetic[0]).collect();
        assert_eq!(codes.len(), 1, "the family names share one code");
        let (levels, rules) = candidates(&features);
        let blocked = crate::blocking::candidate_pairs(&features, 1000);
        let n_true = blocked.pairs.iter().filter(|&&(i, j)| truth[i as usize] == truth[j as usize]).count();
        assert!(n_true * 10 < blocked.pairs.len(), "mostly non-matches: {n_true} of {}", blocked.pairs.len());

        let model = Model::train(&features, &levels, &rules, &TrainingOptions::default()).unwrap();
        let n = features.len() as f64;
        let expected_prior = 300.0 / (n * (n - 1.0) / 2.0);
        assert!((model.prior - expected_prior).abs() < expected_prior * 0.5, "{} vs {expected_prior}", model.prior);
        let linked: Vec<bool> = blocked
            .pairs
            .iter()
            .map(|&(i, j)| model.match_probability(&features[i as usize], &features[j as usize]) >= 0.9)
            .collect();
        let correct = blocked
            .pairs
            .iter()
            .zip(&linked)
            .filter(|(&(i, j), &l)| l && truth[i as usize] == truth[j as usize])
            .count();
        let predicted = linked.iter().filter(|&&l| l).count();
        let (precision, recall) = (correct as f64 / predicted.max(1) as f64, correct as f64 / 300.0);
        assert!(precision > 0.95 && recall > 0.95, "precision {precision}, recall {recall}\n{}", model.describe());
    }

    #[test]
    fn common_names_weigh_less_than_rare_ones() {
        let mut features = duplicated_people();
        let model =
            Model::train(&features, &[], &[], &TrainingOptions { n_u_samples: 1000, ..Default::default() }).unwrap();
        features[0].family = "smith0".into();
        let smith = Features { family: "smith0".into(), ..Features::default() };
        let rare = Features { family: "zebedee".into(), ..Features::default() };
        let mut levels = [MISSING; N_COMPARISONS];
        levels[field::FAMILY] = EXACT;
        assert!(model.match_weight(&levels, &rare, &rare) > model.match_weight(&levels, &smith, &smith));
        assert_eq!(
            Model::train(&features[..1], &[], &[], &TrainingOptions::default()).unwrap_err().to_string(),
            ModelError::TooFewRecords.to_string()
        );
    }

    #[test]
    fn household_fields_count_once() {
        // m/u of 16 on every agreeing level (4 bits), 1/4 on disagreement (−2 bits).
        let m: Vec<Vec<f64>> = COMPARISONS
            .iter()
            .map(|spec| (0..spec.levels.len()).map(|level| if level == 1 { 0.8 } else { 0.05 }).collect())
            .collect();
        let u: Vec<Vec<f64>> = COMPARISONS
            .iter()
            .map(|spec| (0..spec.levels.len()).map(|level| if level == 1 { 0.05 } else { 0.2 }).collect())
            .collect();
        let mut levels = [MISSING; N_COMPARISONS];
        for comparison in HOUSEHOLD_COMPARISONS {
            levels[comparison] = EXACT;
        }
        assert!(
            (log2_bayes_factor(&m, &u, &levels) - 4.0).abs() < 1e-9,
            "five agreeing household fields: one 4-bit agreement"
        );
        levels[field::POSTCODE] = 2;
        assert!(
            (log2_bayes_factor(&m, &u, &levels) - 4.0).abs() < 1e-9,
            "a disagreement beside an agreement adds nothing"
        );
        for comparison in HOUSEHOLD_COMPARISONS {
            levels[comparison] = 2;
        }
        assert!((log2_bayes_factor(&m, &u, &levels) + 2.0).abs() < 1e-9, "a move counts once");
        levels[field::GIVEN] = EXACT;
        levels[field::BIRTH_DATE] = 2;
        assert!((log2_bayes_factor(&m, &u, &levels) - (4.0 - 2.0 - 2.0)).abs() < 1e-9, "other fields add up as before");
    }
}
