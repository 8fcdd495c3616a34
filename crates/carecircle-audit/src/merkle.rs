//! The RFC 6962 Merkle tree over the audit log: leaf and node hashing with the 0x00/0x01 prefixes,
//! an append-only frontier, and inclusion and consistency proofs with their verification
//! (the algorithms of RFC 9162 §2.1.3 and §2.1.4).
//!
//! Proofs are built in two steps so that storage can answer them without reading every leaf:
//! a *plan* names the complete subtrees whose hashes the proof needs, and [`assemble`] combines
//! their hashes once the caller has fetched them.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The hash of a leaf: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The Merkle Tree Hash (RFC 6962 §2.1) of a list of leaf hashes, computed directly; for tests,
/// small trees and reference.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// The largest power of two smaller than `n` (`n >= 2`): where RFC 6962 splits a tree of `n`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// A complete (perfect) subtree: the `index`-th run of `2^level` leaves, starting at leaf
/// `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subtree {
    /// Height: 0 is a single leaf.
    pub level: u32,
    /// Position among the subtrees of this level, from the left.
    pub index: u64,
}

impl Subtree {
    /// The first leaf covered.
    pub fn first_leaf(&self) -> u64 {
        self.index << self.level
    }

    /// The number of leaves covered.
    pub fn width(&self) -> u64 {
        1 << self.level
    }
}

/// The compact state of an append-only tree: its size and the roots of the complete subtrees
/// that make it up, one per set bit of the size, largest (leftmost) first. Appending and
/// computing the root are O(log n).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

/// Why a stored frontier was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a frontier of size {size} needs {expected} subtree hashes, got {got}")]
pub struct FrontierError {
    /// The claimed tree size.
    pub size: u64,
    /// How many hashes that size needs.
    pub expected: usize,
    /// How many were given.
    pub got: usize,
}

/// Why [`Frontier::push_subtree`] refused a subtree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a subtree of 2^{level} leaves cannot follow a tree of {size} leaves")]
pub struct UnalignedSubtree {
    /// The tree's size.
    pub size: u64,
    /// The subtree's level.
    pub level: u32,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Rebuilds a frontier from its size and its subtree hashes (largest first), as returned by
    /// [`Frontier::nodes`].
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Frontier, FrontierError> {
        let expected = size.count_ones() as usize;
        if nodes.len() != expected {
            return Err(FrontierError { size, expected, got: nodes.len() });
        }
        Ok(Frontier { size, nodes })
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the complete subtrees making up the tree, largest first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_with(leaf, |_, _| {});
    }

    /// Appends a leaf hash, calling `completed` with every complete subtree of height one or
    /// more that this leaf finishes (smallest first), so storage can keep some of them.
    pub fn push_with(&mut self, leaf: Hash, mut completed: impl FnMut(Subtree, &Hash)) {
        let mut hash = leaf;
        let mut level = 0;
        while self.size & (1 << level) != 0 {
            // The size has this bit set, so the stack holds a subtree of this level on top.
            let Some(left) = self.nodes.pop() else { break };
            hash = node_hash(&left, &hash);
            level += 1;
            completed(Subtree { level, index: self.size >> level }, &hash);
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// Appends a complete subtree of `2^level` leaves given its hash (e.g. computed by another
    /// thread), as if its leaves were pushed one by one. The tree's size must be a multiple of
    /// `2^level`, so that the subtree sits where RFC 6962 puts it; otherwise nothing changes.
    pub fn push_subtree(&mut self, level: u32, subtree_hash: Hash) -> Result<(), UnalignedSubtree> {
        if level >= 63 || self.size & ((1u64 << level) - 1) != 0 {
            return Err(UnalignedSubtree { size: self.size, level });
        }
        let mut hash = subtree_hash;
        let mut at = level;
        while self.size & (1 << at) != 0 {
            // The size has this bit set, so the stack holds a subtree of this level on top.
            let Some(left) = self.nodes.pop() else { break };
            hash = node_hash(&left, &hash);
            at += 1;
        }
        self.nodes.push(hash);
        self.size += 1 << level;
        Ok(())
    }

    /// The Merkle Tree Hash of the leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else { return EMPTY_ROOT };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// The complete subtrees, left to right, whose right fold is the Merkle Tree Hash of the leaves
/// `start..end`. `start` must be aligned as RFC 6962's recursion aligns it (a multiple of the
/// largest power of two not above `end - start`), which every range of a proof is.
pub fn range_subtrees(start: u64, end: u64) -> Vec<Subtree> {
    let mut subtrees = Vec::new();
    let mut at = start;
    while at < end {
        let remaining = end - at;
        let mut level = 63 - remaining.leading_zeros();
        while at & ((1u64 << level) - 1) != 0 {
            level -= 1;
        }
        subtrees.push(Subtree { level, index: at >> level });
        at += 1 << level;
    }
    subtrees
}

/// What one hash of a proof is made of: the complete subtrees whose right fold it is.
pub type ProofStep = Vec<Subtree>;

/// The plan of the inclusion proof of leaf `index` in the tree of `size` leaves (RFC 6962
/// PATH), nearest the leaf first. Empty when `index >= size`.
pub fn inclusion_plan(index: u64, size: u64) -> Vec<ProofStep> {
    let mut steps = Vec::new();
    if index < size {
        inclusion_steps(index, 0, size, &mut steps);
    }
    steps
}

fn inclusion_steps(index: u64, start: u64, end: u64, steps: &mut Vec<ProofStep>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if index - start < k {
        inclusion_steps(index, start, start + k, steps);
        steps.push(range_subtrees(start + k, end));
    } else {
        inclusion_steps(index, start + k, end, steps);
        steps.push(range_subtrees(start, start + k));
    }
}

/// The plan of the consistency proof between the trees of `old_size` and `new_size` leaves
/// (RFC 6962 PROOF). Empty when `old_size` is 0, equal to `new_size`, or larger.
pub fn consistency_plan(old_size: u64, new_size: u64) -> Vec<ProofStep> {
    let mut steps = Vec::new();
    if old_size > 0 && old_size < new_size {
        consistency_steps(old_size, 0, new_size, true, &mut steps);
    }
    steps
}

fn consistency_steps(m: u64, start: u64, end: u64, whole: bool, steps: &mut Vec<ProofStep>) {
    let n = end - start;
    if m == n {
        if !whole {
            steps.push(range_subtrees(start, end));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        consistency_steps(m, start, start + k, whole, steps);
        steps.push(range_subtrees(start + k, end));
    } else {
        consistency_steps(m - k, start + k, end, false, steps);
        steps.push(range_subtrees(start, start + k));
    }
}

/// Combines fetched subtree hashes into proof hashes: `hash_of` answers each subtree a plan
/// names (it may fail, e.g. on a storage error).
pub fn assemble<E>(plan: &[ProofStep], mut hash_of: impl FnMut(Subtree) -> Result<Hash, E>) -> Result<Vec<Hash>, E> {
    plan.iter()
        .map(|step| {
            let mut hashes = step.iter().rev();
            let Some(last) = hashes.next() else { return Ok(EMPTY_ROOT) };
            let mut acc = hash_of(*last)?;
            for subtree in hashes {
                acc = node_hash(&hash_of(*subtree)?, &acc);
            }
            Ok(acc)
        })
        .collect()
}

/// The hash of a complete subtree computed from all leaf hashes (for in-memory trees).
pub fn subtree_hash(leaves: &[Hash], subtree: Subtree) -> Hash {
    let start = subtree.first_leaf() as usize;
    root_of(&leaves[start..start + subtree.width() as usize])
}

/// The inclusion proof of leaf `index` in the tree made of the first `size` of `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Vec<Hash> {
    let plan = inclusion_plan(index, size);
    assemble::<()>(&plan, |s| Ok(subtree_hash(leaves, s))).unwrap_or_default()
}

/// The consistency proof between the trees of the first `old_size` and `new_size` of `leaves`.
pub fn consistency_proof(leaves: &[Hash], old_size: u64, new_size: u64) -> Vec<Hash> {
    let plan = consistency_plan(old_size, new_size);
    assemble::<()>(&plan, |s| Ok(subtree_hash(leaves, s))).unwrap_or_default()
}

/// Whether `proof` shows the leaf hash `leaf` at `index` in the tree of `size` leaves whose root
/// is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && &r == root
}

/// Whether `proof` shows the tree of `old_size` leaves with root `old_root` to be a prefix of
/// the tree of `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut f_r, mut s_r) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && &f_r == old_root && &s_r == new_root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        let cases = [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (1 << 40, 1 << 39), ((1 << 40) + 1, 1 << 40)];
        for (n, k) in cases {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn range_subtrees_follow_the_binary_decomposition() {
        assert_eq!(
            range_subtrees(0, 7),
            [Subtree { level: 2, index: 0 }, Subtree { level: 1, index: 2 }, Subtree { level: 0, index: 6 }]
        );
        assert_eq!(range_subtrees(8, 12), [Subtree { level: 2, index: 2 }]);
        assert!(range_subtrees(5, 5).is_empty());
    }

    #[test]
    fn frontier_reports_completed_subtrees() {
        let mut frontier = Frontier::new();
        let mut completed = Vec::new();
        for i in 0..8u8 {
            frontier.push_with(leaf_hash(&[i]), |s, _| completed.push(s));
        }
        let levels: Vec<(u32, u64)> = completed.iter().map(|s| (s.level, s.index)).collect();
        assert_eq!(levels, [(1, 0), (1, 1), (2, 0), (1, 2), (1, 3), (2, 1), (3, 0)]);
        assert_eq!(frontier.nodes().len(), 1);
        assert!(Frontier::from_parts(5, vec![EMPTY_ROOT]).is_err());
    }

    #[test]
    fn pushing_a_subtree_equals_pushing_its_leaves() {
        let leaves: Vec<Hash> = (0..40u8).map(|i| leaf_hash(&[i])).collect();
        let mut by_leaf = Frontier::new();
        let mut by_subtree = Frontier::new();
        for leaf in &leaves[..8] {
            by_leaf.push(*leaf);
            by_subtree.push(*leaf);
        }
        // 8 leaves, then a subtree of 8, one of 16, then single leaves.
        for (start, level) in [(8usize, 3u32), (16, 4)] {
            let hash = root_of(&leaves[start..start + (1 << level)]);
            by_subtree.push_subtree(level, hash).expect("aligned");
            for leaf in &leaves[start..start + (1 << level)] {
                by_leaf.push(*leaf);
            }
            assert_eq!(by_subtree, by_leaf);
        }
        for leaf in &leaves[32..35] {
            by_leaf.push(*leaf);
            by_subtree.push(*leaf);
        }
        assert_eq!(by_subtree.root(), root_of(&leaves[..35]));
        assert_eq!(by_subtree.push_subtree(2, EMPTY_ROOT), Err(UnalignedSubtree { size: 35, level: 2 }));
        assert_eq!(by_subtree, by_leaf);
    }
}
