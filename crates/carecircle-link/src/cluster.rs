//! Clustering scored pairs into persons without chaining strangers together.
//!
//! Edges are taken strongest first (forced links, then pairs by falling probability). Two
//! clusters merge only when (1) no cannot-link separates them: two different verified national
//! identifiers, or a reviewer's "keep apart" between any of their records; and (2) for ordinary
//! edges, the mean match probability over *all* pairs across the two clusters (scored on the
//! fly, not only the blocked ones) reaches the support threshold. So one strong edge from a
//! twin or a namesake cannot pull a whole person in: the other records must agree too.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::record::RecordKey;

/// A reviewer's decision on a pair of records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Never the same person: the pair is never proposed again and never clustered together.
    KeepApart,
    /// The same person: always linked (unless two different verified identifiers forbid it).
    Link,
}

/// Remembered review decisions, keyed by record pair (order-independent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewDecisions {
    decisions: BTreeMap<(RecordKey, RecordKey), Decision>,
}

impl ReviewDecisions {
    /// No decisions.
    pub fn new() -> Self {
        Self::default()
    }

    fn ordered(a: RecordKey, b: RecordKey) -> (RecordKey, RecordKey) {
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    }

    /// Records a decision (replacing an earlier one on the same pair).
    pub fn record(&mut self, a: RecordKey, b: RecordKey, decision: Decision) {
        self.decisions.insert(Self::ordered(a, b), decision);
    }

    /// Forgets the decision on a pair.
    pub fn forget(&mut self, a: RecordKey, b: RecordKey) {
        self.decisions.remove(&Self::ordered(a, b));
    }

    /// The decision on a pair, if any.
    pub fn get(&self, a: &RecordKey, b: &RecordKey) -> Option<Decision> {
        self.decisions.get(&Self::ordered(a.clone(), b.clone())).copied()
    }

    /// Every decision, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&RecordKey, &RecordKey, Decision)> {
        self.decisions.iter().map(|((a, b), decision)| (a, b, *decision))
    }

    /// Number of decisions.
    pub fn len(&self) -> usize {
        self.decisions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty()
    }
}

/// What the clustering needs to know about the records, by index.
pub struct ClusterInput<'a> {
    /// Number of records.
    pub n_records: usize,
    /// The verified national identifier of each record, if any.
    pub verified_ids: &'a [Option<&'a str>],
    /// Pairs that must be linked (shared verified identifier, reviewer's "link").
    pub forced_links: &'a [(u32, u32)],
    /// Pairs that must never be in one cluster (reviewer's "keep apart").
    pub keep_apart: &'a [(u32, u32)],
    /// Probabilistic edges at or above the link threshold: `(i, j, probability)`.
    pub edges: &'a [(u32, u32, f64)],
    /// Minimum mean probability across two clusters for them to merge.
    pub min_support: f64,
    /// Most cross pairs scored for the support check (the first records of each side).
    pub max_support_pairs: usize,
}

struct Clusters<'a> {
    parent: Vec<u32>,
    members: Vec<Vec<u32>>,
    verified: Vec<Option<&'a str>>,
    keep_apart: HashMap<u32, Vec<u32>>,
}

impl<'a> Clusters<'a> {
    fn find(&mut self, mut node: u32) -> u32 {
        while self.parent[node as usize] != node {
            let grandparent = self.parent[self.parent[node as usize] as usize];
            self.parent[node as usize] = grandparent;
            node = grandparent;
        }
        node
    }

    fn cannot_link(&mut self, a: u32, b: u32) -> bool {
        if let (Some(x), Some(y)) = (self.verified[a as usize], self.verified[b as usize]) {
            if x != y {
                return true;
            }
        }
        let (small, other) =
            if self.members[a as usize].len() <= self.members[b as usize].len() { (a, b) } else { (b, a) };
        let partners: Vec<u32> = self.members[small as usize]
            .iter()
            .filter_map(|member| self.keep_apart.get(member))
            .flatten()
            .copied()
            .collect();
        partners.into_iter().any(|partner| self.find(partner) == other)
    }

    fn merge(&mut self, a: u32, b: u32) {
        let (keep, gone) =
            if self.members[a as usize].len() >= self.members[b as usize].len() { (a, b) } else { (b, a) };
        self.parent[gone as usize] = keep;
        let moved = std::mem::take(&mut self.members[gone as usize]);
        self.members[keep as usize].extend(moved);
        if self.verified[keep as usize].is_none() {
            self.verified[keep as usize] = self.verified[gone as usize];
        }
    }
}

/// Clusters the records; returns each record's cluster label (the smallest record index in its
/// cluster, so labels do not depend on the order edges were merged in). `probability(i, j)`
/// scores any pair for the support check.
pub fn cluster(input: &ClusterInput<'_>, probability: impl Fn(u32, u32) -> f64) -> Vec<u32> {
    let n = input.n_records;
    let mut keep_apart: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(a, b) in input.keep_apart {
        keep_apart.entry(a).or_default().push(b);
        keep_apart.entry(b).or_default().push(a);
    }
    let mut clusters = Clusters {
        parent: (0..n as u32).collect(),
        members: (0..n as u32).map(|index| vec![index]).collect(),
        verified: input.verified_ids.to_vec(),
        keep_apart,
    };
    let mut forced = input.forced_links.to_vec();
    forced.sort_unstable();
    for (i, j) in forced {
        let (a, b) = (clusters.find(i), clusters.find(j));
        if a != b && !clusters.cannot_link(a, b) {
            clusters.merge(a, b);
        }
    }
    let mut edges = input.edges.to_vec();
    edges.sort_by(|x, y| y.2.total_cmp(&x.2).then_with(|| (x.0, x.1).cmp(&(y.0, y.1))));
    for (i, j, _) in edges {
        let (a, b) = (clusters.find(i), clusters.find(j));
        if a == b || clusters.cannot_link(a, b) {
            continue;
        }
        let (left, right) = (&clusters.members[a as usize], &clusters.members[b as usize]);
        if left.len() + right.len() > 2 {
            let mut left_sorted = left.clone();
            let mut right_sorted = right.clone();
            left_sorted.sort_unstable();
            right_sorted.sort_unstable();
            let per_side = (input.max_support_pairs as f64).sqrt().ceil() as usize;
            let (mut total, mut count) = (0.0, 0usize);
            for &x in left_sorted.iter().take(per_side) {
                for &y in right_sorted.iter().take(per_side) {
                    total += probability(x.min(y), x.max(y));
                    count += 1;
                }
            }
            if count > 0 && total / (count as f64) < input.min_support {
                continue;
            }
        }
        clusters.merge(a, b);
    }
    let mut labels = vec![0u32; n];
    for root in 0..n as u32 {
        if let Some(label) = clusters.members[root as usize].iter().min().copied() {
            for &member in &clusters.members[root as usize] {
                labels[member as usize] = label;
            }
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        n: usize,
        edges: &[(u32, u32, f64)],
        verified: &[Option<&str>],
        forced: &[(u32, u32)],
        apart: &[(u32, u32)],
    ) -> Vec<u32> {
        let input = ClusterInput {
            n_records: n,
            verified_ids: verified,
            forced_links: forced,
            keep_apart: apart,
            edges,
            min_support: 0.5,
            max_support_pairs: 400,
        };
        let scores: HashMap<(u32, u32), f64> = edges.iter().map(|&(i, j, p)| ((i, j), p)).collect();
        cluster(&input, |i, j| scores.get(&(i, j)).copied().unwrap_or(0.0))
    }

    #[test]
    fn one_weak_bridge_does_not_chain_two_people() {
        // 0-1-2 are one person, 3-4 another; 2-3 is a single strong-looking bridge.
        let edges = [(0, 1, 0.99), (0, 2, 0.98), (1, 2, 0.99), (3, 4, 0.99), (2, 3, 0.97)];
        let labels = run(5, &edges, &[None; 5], &[], &[]);
        assert_eq!(labels, vec![0, 0, 0, 3, 3]);
    }

    #[test]
    fn verified_identifiers_and_decisions_are_honoured() {
        let verified = [Some("9434765919"), None, Some("4010232137"), Some("9434765919")];
        let edges = [(0, 1, 0.99), (1, 2, 0.99)];
        let labels = run(4, &edges, &verified, &[(0, 3)], &[]);
        assert_eq!(labels[0], labels[3], "a shared verified id links");
        assert_ne!(labels[0], labels[2], "different verified ids never meet");
        let labels = run(2, &[(0, 1, 0.999)], &[None, None], &[], &[(0, 1)]);
        assert_ne!(labels[0], labels[1], "keep apart wins over the score");
        let labels = run(2, &[], &[None, None], &[(0, 1)], &[]);
        assert_eq!(labels[0], labels[1], "a reviewer's link forces the merge");
    }

    #[test]
    fn decisions_are_order_independent() {
        let mut decisions = ReviewDecisions::new();
        decisions.record(RecordKey::new("b", "1"), RecordKey::new("a", "1"), Decision::KeepApart);
        assert_eq!(decisions.get(&RecordKey::new("a", "1"), &RecordKey::new("b", "1")), Some(Decision::KeepApart));
        decisions.forget(RecordKey::new("a", "1"), RecordKey::new("b", "1"));
        assert!(decisions.is_empty());
    }
}
