//! The RFC 6962 tree against the Certificate Transparency reference vectors, and properties of
//! proofs over many tree sizes.

use carecircle_audit::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, node_hash, root_of, verify_consistency, verify_inclusion, Frontier,
    Hash, EMPTY_ROOT,
};
use proptest::prelude::*;

fn h(text: &str) -> Hash {
    hex::decode(text).expect("hex").try_into().expect("32 bytes")
}

/// The eight leaves of the CT reference tree.
fn reference_leaves() -> Vec<Hash> {
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        .iter()
        .map(|data| leaf_hash(&hex::decode(data).expect("hex")))
        .collect()
}

/// The published roots for sizes 0..=8.
const REFERENCE_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn roots_match_the_reference_vectors_directly_and_through_the_frontier() {
    let leaves = reference_leaves();
    assert_eq!(EMPTY_ROOT, h(REFERENCE_ROOTS[0]));
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), EMPTY_ROOT);
    for size in 1..=8 {
        assert_eq!(root_of(&leaves[..size]), h(REFERENCE_ROOTS[size]), "root_of size {size}");
        frontier.push(leaves[size - 1]);
        assert_eq!(frontier.root(), h(REFERENCE_ROOTS[size]), "frontier size {size}");
    }
}

#[test]
fn inclusion_proofs_match_the_reference_vectors() {
    let leaves = reference_leaves();
    let cases: [(u64, u64, &[&str]); 5] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, expected) in cases {
        let proof = inclusion_proof(&leaves, index, size);
        let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
        assert_eq!(proof, expected, "inclusion of {index} in {size}");
        let root = h(REFERENCE_ROOTS[size as usize]);
        assert!(verify_inclusion(&leaves[index as usize], index, size, &proof, &root));
    }
}

#[test]
fn consistency_proofs_match_the_reference_vectors() {
    let leaves = reference_leaves();
    let cases: [(u64, u64, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, new, expected) in cases {
        let proof = consistency_proof(&leaves, old, new);
        let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
        assert_eq!(proof, expected, "consistency {old} -> {new}");
        let (old_root, new_root) = (h(REFERENCE_ROOTS[old as usize]), h(REFERENCE_ROOTS[new as usize]));
        assert!(verify_consistency(old, new, &old_root, &new_root, &proof));
    }
}

#[test]
fn node_hashing_uses_the_0x01_prefix() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    let mut data = vec![1u8];
    data.extend_from_slice(&a);
    data.extend_from_slice(&b);
    use sha2::Digest as _;
    let expected: Hash = sha2::Sha256::digest(&data).into();
    assert_eq!(node_hash(&a, &b), expected);
    assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

#[test]
fn every_proof_verifies_for_every_size_up_to_40() {
    let all = leaves(40);
    let roots: Vec<Hash> = (0..=40).map(|n| root_of(&all[..n])).collect();
    for size in 1..=40u64 {
        for index in 0..size {
            let proof = inclusion_proof(&all, index, size);
            assert!(verify_inclusion(&all[index as usize], index, size, &proof, &roots[size as usize]));
            // A proof for one position never proves another leaf or position.
            let other = (index + 1) % size;
            if other != index {
                assert!(!verify_inclusion(&all[other as usize], index, size, &proof, &roots[size as usize]));
            }
        }
        for old in 0..=size {
            let proof = consistency_proof(&all, old, size);
            assert!(
                verify_consistency(old, size, &roots[old as usize], &roots[size as usize], &proof),
                "{old}->{size}"
            );
        }
    }
}

proptest! {
    #[test]
    fn the_frontier_root_is_the_tree_hash(n in 0usize..300) {
        let all = leaves(n);
        let mut frontier = Frontier::new();
        for leaf in &all {
            frontier.push(*leaf);
        }
        prop_assert_eq!(frontier.root(), root_of(&all));
        let rebuilt = Frontier::from_parts(frontier.size(), frontier.nodes().to_vec()).expect("valid parts");
        prop_assert_eq!(rebuilt.root(), frontier.root());
    }

    #[test]
    fn a_mangled_inclusion_proof_fails(size in 2u64..200, index_seed in any::<u64>(), flip in any::<(usize, usize)>()) {
        let all = leaves(size as usize);
        let index = index_seed % size;
        let root = root_of(&all);
        let mut proof = inclusion_proof(&all, index, size);
        prop_assert!(verify_inclusion(&all[index as usize], index, size, &proof, &root));
        let step = flip.0 % proof.len();
        proof[step][flip.1 % 32] ^= 1;
        prop_assert!(!verify_inclusion(&all[index as usize], index, size, &proof, &root));
        proof[step][flip.1 % 32] ^= 1;
        proof.pop();
        prop_assert!(!verify_inclusion(&all[index as usize], index, size, &proof, &root));
    }

    #[test]
    fn a_mangled_consistency_proof_fails(new in 2u64..200, old_seed in any::<u64>(), flip in any::<(usize, usize)>()) {
        let all = leaves(new as usize);
        let old = 1 + old_seed % (new - 1);
        let (old_root, new_root) = (root_of(&all[..old as usize]), root_of(&all));
        let mut proof = consistency_proof(&all, old, new);
        prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof));
        let step = flip.0 % proof.len();
        proof[step][flip.1 % 32] ^= 1;
        prop_assert!(!verify_consistency(old, new, &old_root, &new_root, &proof));
        // A different old tree is not consistent with the same proof.
        proof[step][flip.1 % 32] ^= 1;
        let mut forged = all.clone();
        forged[0] = leaf_hash(b"forged");
        let forged_old_root = root_of(&forged[..old as usize]);
        prop_assert!(!verify_consistency(old, new, &forged_old_root, &new_root, &proof));
    }
}
