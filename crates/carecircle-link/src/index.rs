//! The incremental index: add, update or remove one record and match it against everything
//! indexed, without a batch run. Uses a model trained by a batch run ([`crate::link`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::blocking::BlockingRule;
use crate::cluster::{Decision, ReviewDecisions};
use crate::features::Features;
use crate::ids::{derive_person_id, PersonId};
use crate::model::Model;
use crate::record::{RecordKey, SourceRecord};

/// How sure a proposed person is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grade {
    /// Shared verified identifier, a reviewer's link, or probability ≥ 0.999.
    Certain,
    /// Probability at or above the link threshold.
    Probable,
    /// Probability at or above the review threshold: worth a reviewer's look.
    Possible,
}

/// A person a record may belong to.
#[derive(Clone, Debug, PartialEq)]
pub struct PersonCandidate {
    /// The person.
    pub person_id: PersonId,
    /// Best match probability against the person's records.
    pub probability: f64,
    /// Grade of that probability.
    pub grade: Grade,
    /// The person's record that matched best.
    pub best_record: RecordKey,
}

/// What [`LinkIndex::upsert`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct UpsertOutcome {
    /// The person the record now belongs to (an existing one when the best candidate was
    /// certain or probable, otherwise a new one).
    pub person_id: PersonId,
    /// Every candidate person, best first (for a review queue).
    pub candidates: Vec<PersonCandidate>,
}

struct Entry {
    key: RecordKey,
    features: Features,
    /// The record's key under each rule that applies, with its refinement key (0 for none).
    block_keys: Vec<(u64, u64)>,
    person: PersonId,
}

/// Records indexed by blocking key, with their persons.
pub struct LinkIndex {
    model: Model,
    entries: Vec<Option<Entry>>,
    free_slots: Vec<u32>,
    slot_of: HashMap<RecordKey, u32>,
    /// Block key → (slot, refinement key) of its records, so an oversized block is split as the
    /// batch run splits it with one contiguous scan.
    blocks: HashMap<u64, Vec<(u32, u64)>>,
    persons: HashMap<PersonId, Vec<u32>>,
    decisions: ReviewDecisions,
    /// Records named in any decision, so most matches skip the decision look-up (which builds
    /// an owned key pair).
    decided_records: HashSet<RecordKey>,
    link_threshold: f64,
    review_threshold: f64,
    max_block_size: usize,
}

impl LinkIndex {
    /// An empty index scoring with `model` (persist the model of a batch run and load it here).
    pub fn new(mut model: Model) -> LinkIndex {
        // Name frequencies are recounted from the records loaded into the index.
        model.term_frequencies = Default::default();
        let defaults = crate::run::LinkOptions::default();
        LinkIndex {
            model,
            entries: Vec::new(),
            free_slots: Vec::new(),
            slot_of: HashMap::new(),
            blocks: HashMap::new(),
            persons: HashMap::new(),
            decisions: ReviewDecisions::new(),
            decided_records: HashSet::new(),
            link_threshold: defaults.link_threshold,
            review_threshold: defaults.review_threshold,
            max_block_size: defaults.max_block_size,
        }
    }

    /// Loads records with the persons a batch run (or storage) assigned, without matching.
    pub fn load(&mut self, record: &SourceRecord, person: PersonId) {
        self.remove(&record.key());
        self.insert(record, person);
    }

    /// Uses remembered review decisions from now on.
    pub fn set_decisions(&mut self, decisions: ReviewDecisions) {
        self.decided_records = decisions.iter().flat_map(|(a, b, _)| [a.clone(), b.clone()]).collect();
        self.decisions = decisions;
    }

    /// Remembers one review decision.
    pub fn record_decision(&mut self, a: RecordKey, b: RecordKey, decision: Decision) {
        self.decided_records.insert(a.clone());
        self.decided_records.insert(b.clone());
        self.decisions.record(a, b, decision);
    }

    /// Number of records indexed.
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    /// The person of an indexed record.
    pub fn person_of(&self, key: &RecordKey) -> Option<&PersonId> {
        self.slot_of.get(key).and_then(|&slot| self.entries[slot as usize].as_ref()).map(|entry| &entry.person)
    }

    /// The match probability of two records (which need not be indexed), as
    /// [`LinkIndex::match_record`] scores them: a reviewer's decision or two verified national
    /// identifiers decide (1 or 0), otherwise the model.
    pub fn pair_probability(&self, a: &SourceRecord, b: &SourceRecord) -> f64 {
        match self.decisions.get(&a.key(), &b.key()) {
            Some(Decision::KeepApart) => return 0.0,
            Some(Decision::Link) => return 1.0,
            None => {}
        }
        let (features_a, features_b) = (Features::of(a), Features::of(b));
        match (features_a.national_id_verified, features_b.national_id_verified) {
            (true, true) if features_a.national_id == features_b.national_id => 1.0,
            (true, true) => 0.0,
            _ => self.model.match_probability(&features_a, &features_b),
        }
    }

    /// Whether some indexed record belongs to `person`.
    pub fn has_person(&self, person: &PersonId) -> bool {
        self.persons.contains_key(person)
    }

    fn block_keys(features: &Features) -> Vec<(u64, u64)> {
        BlockingRule::ALL
            .iter()
            .filter_map(|rule| Some((rule.key(features)?, rule.refinement(features).unwrap_or(0))))
            .collect()
    }

    /// Candidate persons for a record (which need not be indexed), best first. The record
    /// itself, if indexed, is left out; pairs a reviewer kept apart are never proposed.
    pub fn match_record(&self, record: &SourceRecord) -> Vec<PersonCandidate> {
        let features = Features::of(record);
        let key = record.key();
        let mut seen: HashSet<u32> = HashSet::new();
        let mut best: BTreeMap<&PersonId, (f64, &RecordKey)> = BTreeMap::new();
        let mut apart: HashSet<&PersonId> = HashSet::new();
        let query_decided = self.decided_records.contains(&key);
        for (block_key, refinement) in Self::block_keys(&features) {
            let Some(slots) = self.blocks.get(&block_key) else { continue };
            // As in the batch run: an oversized block is split by the refinement key, and a
            // part still too large is skipped.
            let refined = slots.len() > self.max_block_size;
            if refined
                && (refinement == 0
                    || slots.iter().filter(|&&(_, other)| other == refinement).count() > self.max_block_size)
            {
                continue;
            }
            for &(slot, other) in slots {
                if refined && other != refinement {
                    continue;
                }
                if !seen.insert(slot) {
                    continue;
                }
                let Some(entry) = &self.entries[slot as usize] else { continue };
                if entry.key == key {
                    continue;
                }
                let decision = if query_decided && self.decided_records.contains(&entry.key) {
                    self.decisions.get(&key, &entry.key)
                } else {
                    None
                };
                let probability = match decision {
                    Some(Decision::KeepApart) => {
                        apart.insert(&entry.person);
                        continue;
                    }
                    Some(Decision::Link) => 1.0,
                    None => match (features.national_id_verified, entry.features.national_id_verified) {
                        (true, true) if features.national_id == entry.features.national_id => 1.0,
                        (true, true) => {
                            apart.insert(&entry.person);
                            continue;
                        }
                        _ => self.model.match_probability(&features, &entry.features),
                    },
                };
                let current = best.entry(&entry.person).or_insert((probability, &entry.key));
                if probability > current.0 || (probability == current.0 && &entry.key < current.1) {
                    *current = (probability, &entry.key);
                }
            }
        }
        let mut candidates: Vec<PersonCandidate> = best
            .into_iter()
            .filter(|(person, (probability, _))| !apart.contains(person) && *probability >= self.review_threshold)
            .map(|(person, (probability, record))| PersonCandidate {
                person_id: person.clone(),
                probability,
                grade: if probability >= 0.999 {
                    Grade::Certain
                } else if probability >= self.link_threshold {
                    Grade::Probable
                } else {
                    Grade::Possible
                },
                best_record: record.clone(),
            })
            .collect();
        candidates.sort_by(|a, b| b.probability.total_cmp(&a.probability).then_with(|| a.person_id.cmp(&b.person_id)));
        candidates
    }

    /// Adds or replaces a record, attaching it to the best certain or probable person, or to a
    /// new person derived from its key.
    pub fn upsert(&mut self, record: &SourceRecord) -> UpsertOutcome {
        let candidates = self.match_record(record);
        let person_id = candidates
            .iter()
            .find(|candidate| candidate.grade <= Grade::Probable)
            .map(|candidate| candidate.person_id.clone())
            .unwrap_or_else(|| {
                let mut salt = 0;
                loop {
                    let id = derive_person_id(&record.key(), salt);
                    if !self.persons.contains_key(&id) || self.person_of(&record.key()) == Some(&id) {
                        break id;
                    }
                    salt += 1;
                }
            });
        self.remove(&record.key());
        self.insert(record, person_id.clone());
        UpsertOutcome { person_id, candidates }
    }

    fn insert(&mut self, record: &SourceRecord, person: PersonId) {
        let features = Features::of(record);
        let block_keys = Self::block_keys(&features);
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                self.entries.push(None);
                (self.entries.len() - 1) as u32
            }
        };
        for &(block_key, refinement) in &block_keys {
            self.blocks.entry(block_key).or_default().push((slot, refinement));
        }
        self.model.term_frequencies.add(&features);
        self.persons.entry(person.clone()).or_default().push(slot);
        self.slot_of.insert(record.key(), slot);
        self.entries[slot as usize] = Some(Entry { key: record.key(), features, block_keys, person });
    }

    /// Removes a record; returns the person it belonged to.
    pub fn remove(&mut self, key: &RecordKey) -> Option<PersonId> {
        let slot = self.slot_of.remove(key)?;
        let entry = self.entries[slot as usize].take()?;
        for (block_key, _) in &entry.block_keys {
            if let Some(slots) = self.blocks.get_mut(block_key) {
                slots.retain(|&(other, _)| other != slot);
                if slots.is_empty() {
                    self.blocks.remove(block_key);
                }
            }
        }
        if let Some(members) = self.persons.get_mut(&entry.person) {
            members.retain(|&other| other != slot);
            if members.is_empty() {
                self.persons.remove(&entry.person);
            }
        }
        self.model.term_frequencies.remove(&entry.features);
        self.free_slots.push(slot);
        Some(entry.person)
    }
}
