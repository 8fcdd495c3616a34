//! Pairwise precision, recall and F1 of a clustering against known truth (for benchmarks and
//! tests; the product never has the truth).

use std::collections::HashMap;
use std::hash::Hash;

/// Pairwise quality: a pair of records counts as a true positive when both the clustering and
/// the truth put them together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairwiseQuality {
    /// Pairs together in both.
    pub true_positives: u64,
    /// Pairs the clustering put together.
    pub predicted_pairs: u64,
    /// Pairs the truth puts together.
    pub true_pairs: u64,
    /// true positives / predicted pairs (1 when nothing was predicted).
    pub precision: f64,
    /// true positives / true pairs (1 when there are none).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
}

fn pairs_within<K: Hash + Eq>(labels: impl Iterator<Item = K>) -> u64 {
    let mut sizes: HashMap<K, u64> = HashMap::new();
    for label in labels {
        *sizes.entry(label).or_default() += 1;
    }
    sizes.values().map(|size| size * (size - 1) / 2).sum()
}

/// Compares `predicted` labels (one per record) with `truth` labels; records without a truth
/// label are their own group.
pub fn pairwise_quality<P: Hash + Eq, T: Hash + Eq>(predicted: &[P], truth: &[Option<T>]) -> PairwiseQuality {
    let truth_labels = || truth.iter().enumerate().map(|(index, label)| label.as_ref().ok_or(index));
    let predicted_pairs = pairs_within(predicted.iter());
    let true_pairs = pairs_within(truth_labels());
    let true_positives = pairs_within(predicted.iter().zip(truth_labels()));
    let precision = if predicted_pairs == 0 { 1.0 } else { true_positives as f64 / predicted_pairs as f64 };
    let recall = if true_pairs == 0 { 1.0 } else { true_positives as f64 / true_pairs as f64 };
    let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    PairwiseQuality { true_positives, predicted_pairs, true_pairs, precision, recall, f1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_counts() {
        let truth = [Some("a"), Some("a"), Some("a"), Some("b"), None];
        let quality = pairwise_quality(&[1, 1, 2, 2, 3], &truth);
        assert_eq!((quality.true_positives, quality.predicted_pairs, quality.true_pairs), (1, 2, 3));
        assert!((quality.f1 - 0.4).abs() < 1e-9);
        let perfect = pairwise_quality(&[1, 1, 1, 2, 3], &truth);
        assert_eq!(perfect.f1, 1.0);
    }
}
