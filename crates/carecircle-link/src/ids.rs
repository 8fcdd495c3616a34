//! Stable person ids: a person keeps its id across re-runs and whatever the order of the input.
//! With earlier assignments, each new cluster takes the earlier id most of its records carried
//! (when a person splits, the part with most records keeps the id); otherwise the id is derived
//! from the cluster's smallest record key.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::record::RecordKey;

/// A person's id, e.g. `P3f9a0c1d2e4b5a69`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PersonId(pub String);

impl std::fmt::Display for PersonId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// 64-bit FNV-1a: a fixed, documented hash, so ids are the same on every machine and version.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hash = (hash ^ 0x1f).wrapping_mul(0x0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The id derived from a cluster's smallest record key (`salt` > 0 only on a collision).
pub fn derive_person_id(smallest: &RecordKey, salt: u32) -> PersonId {
    let salt_text = salt.to_string();
    let parts: Vec<&str> = if salt == 0 {
        vec![&smallest.source, &smallest.local_id]
    } else {
        vec![&smallest.source, &smallest.local_id, &salt_text]
    };
    PersonId(format!("P{:016x}", fnv1a(&parts)))
}

/// Gives every cluster (a list of record keys) a person id. `previous` holds the ids of an
/// earlier run; a cluster takes the earlier id held by most of its records unless a cluster
/// holding more of that id's records takes it (ties go to the cluster with the smaller smallest
/// key). Clusters without an earlier id get one derived from their smallest key. Ids are unique.
pub fn assign_person_ids(clusters: &[Vec<RecordKey>], previous: &HashMap<RecordKey, PersonId>) -> Vec<PersonId> {
    let smallest: Vec<Option<&RecordKey>> = clusters.iter().map(|cluster| cluster.iter().min()).collect();
    // (count, cluster, id) claims, best first.
    let mut claims: Vec<(usize, usize, &PersonId)> = Vec::new();
    for (cluster_index, cluster) in clusters.iter().enumerate() {
        let mut counts: BTreeMap<&PersonId, usize> = BTreeMap::new();
        for key in cluster {
            if let Some(id) = previous.get(key) {
                *counts.entry(id).or_default() += 1;
            }
        }
        claims.extend(counts.into_iter().map(|(id, count)| (count, cluster_index, id)));
    }
    claims.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| smallest[a.1].cmp(&smallest[b.1])).then_with(|| a.2.cmp(b.2)));
    let mut assigned: Vec<Option<PersonId>> = vec![None; clusters.len()];
    let mut taken: HashSet<PersonId> = HashSet::new();
    for (_, cluster_index, id) in claims {
        if assigned[cluster_index].is_none() && !taken.contains(id) {
            taken.insert(id.clone());
            assigned[cluster_index] = Some(id.clone());
        }
    }
    // Earlier ids not kept by anyone stay reserved: they must not come back for another person.
    let reserved: HashSet<&PersonId> = previous.values().collect();
    assigned
        .into_iter()
        .enumerate()
        .map(|(cluster_index, id)| {
            id.unwrap_or_else(|| {
                let key = smallest[cluster_index].cloned().unwrap_or_else(|| RecordKey::new("", ""));
                let mut salt = 0;
                loop {
                    let candidate = derive_person_id(&key, salt);
                    if !taken.contains(&candidate) && !reserved.contains(&candidate) {
                        taken.insert(candidate.clone());
                        return candidate;
                    }
                    salt += 1;
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> RecordKey {
        RecordKey::new("gp", id)
    }

    #[test]
    fn ids_derive_from_the_smallest_key_whatever_the_order() {
        let a = assign_person_ids(&[vec![key("2"), key("1")]], &HashMap::new());
        let b = assign_person_ids(&[vec![key("1"), key("2")]], &HashMap::new());
        assert_eq!(a, b);
        assert_eq!(a[0], derive_person_id(&key("1"), 0));
    }

    #[test]
    fn the_larger_part_of_a_split_keeps_the_id() {
        let old = PersonId("P-old".into());
        let previous: HashMap<RecordKey, PersonId> =
            [key("1"), key("2"), key("3")].into_iter().map(|k| (k, old.clone())).collect();
        let ids = assign_person_ids(&[vec![key("1")], vec![key("2"), key("3")]], &previous);
        assert_eq!(ids[1], old);
        assert_ne!(ids[0], old);
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn a_merge_keeps_the_id_of_the_larger_person_and_ids_stay_unique() {
        let (big, small) = (PersonId("P-big".into()), PersonId("P-small".into()));
        let previous: HashMap<RecordKey, PersonId> =
            [(key("1"), small.clone()), (key("2"), big.clone()), (key("3"), big.clone())].into_iter().collect();
        let ids = assign_person_ids(&[vec![key("1"), key("2"), key("3")], vec![key("4")]], &previous);
        assert_eq!(ids[0], big);
        assert_ne!(ids[1], small, "a retired id is not handed to someone else");
    }
}
