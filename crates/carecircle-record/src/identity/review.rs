//! The review queue of the person index: a pair of Patients whose match is only *possible*
//! becomes one `Task` (code `possible-match`, id derived from the pair, so a pair is proposed
//! at most once); a reviewer's decision (`link` or `keep-apart`) completes it, is applied to
//! the index at once (merging or splitting persons) and is loaded again with the index, so it
//! holds after restarts and batch re-runs. The layout is in `docs/person-index.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use carecircle_fhir::{Issue, IssueType};
use carecircle_link::ids::derive_person_id;
use carecircle_link::{Decision, PersonCandidate, PersonId, RecordKey, ReviewDecisions, SourceRecord};
use carecircle_store::StoredResource;
use serde_json::{json, Value};

use super::{linkage_id, record_of, PersonIndex};
use crate::{Record, RecordError};

/// The code system of the person index's review tasks.
pub const REVIEW_CODE_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/identity-review";

/// The `Task.code` of a possible match waiting for review.
pub const POSSIBLE_MATCH_CODE: &str = "possible-match";

/// A reviewer's decision on a pair of Patients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewDecision {
    /// The same person: linked, whatever the scores say.
    Link,
    /// Not the same person: kept apart (split if they were linked) and never proposed again.
    KeepApart,
}

impl ReviewDecision {
    /// The code in `Task.output` and in the API (`link`, `keep-apart`).
    pub fn code(self) -> &'static str {
        match self {
            ReviewDecision::Link => "link",
            ReviewDecision::KeepApart => "keep-apart",
        }
    }

    /// Parses a code.
    pub fn from_code(code: &str) -> Option<ReviewDecision> {
        match code {
            "link" => Some(ReviewDecision::Link),
            "keep-apart" => Some(ReviewDecision::KeepApart),
            _ => None,
        }
    }

    fn engine(self) -> Decision {
        match self {
            ReviewDecision::Link => Decision::Link,
            ReviewDecision::KeepApart => Decision::KeepApart,
        }
    }
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewOutcome {
    /// The review `Task` that records it.
    pub task_id: String,
    /// The person (`Linkage` id) of each of the two Patients afterwards.
    pub persons: [String; 2],
}

/// The id of the review `Task` of a pair of Patients (order-independent):
/// `match-review-` and a 64-bit FNV-1a hash of the sorted ids in hex.
pub fn review_task_id(patient_a: &str, patient_b: &str) -> String {
    let (first, second) = if patient_a <= patient_b { (patient_a, patient_b) } else { (patient_b, patient_a) };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in first.bytes().chain([0u8]).chain(second.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("match-review-{hash:016x}")
}

fn patient_input(id: &str) -> Value {
    json!({"type": {"text": "patient"}, "valueReference": {"reference": format!("Patient/{id}")}})
}

/// The two Patient ids of a review Task.
pub fn review_pair(task: &Value) -> Option<(String, String)> {
    let ids: Vec<String> = task
        .get("input")
        .and_then(Value::as_array)?
        .iter()
        .filter(|i| i.pointer("/type/text").and_then(Value::as_str) == Some("patient"))
        .filter_map(|i| i.pointer("/valueReference/reference").and_then(Value::as_str))
        .filter_map(|r| r.strip_prefix("Patient/"))
        .map(str::to_string)
        .collect();
    match ids.as_slice() {
        [a, b] => Some((a.clone(), b.clone())),
        _ => None,
    }
}

/// The decision a completed review Task records.
pub fn review_decision(task: &Value) -> Option<ReviewDecision> {
    if task.get("status").and_then(Value::as_str) != Some("completed") {
        return None;
    }
    task.get("output")
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o.pointer("/type/text").and_then(Value::as_str) == Some("decision"))
        .and_then(|o| o.get("valueCode").and_then(Value::as_str))
        .and_then(ReviewDecision::from_code)
}

fn now_instant() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

async fn review_tasks(record: &Record, status: Option<&str>) -> Result<Vec<StoredResource>, RecordError> {
    let mut params = vec![("code".to_string(), format!("{REVIEW_CODE_SYSTEM}|{POSSIBLE_MATCH_CODE}"))];
    if let Some(status) = status {
        params.push(("status".to_string(), status.to_string()));
    }
    crate::lists::all_matching(record, "Task", &params).await
}

/// The decisions of every completed review Task whose Patients are still indexed.
pub(super) async fn load_decisions(
    record: &Record,
    keys: &HashMap<String, RecordKey>,
) -> Result<ReviewDecisions, RecordError> {
    let mut decisions = ReviewDecisions::new();
    for task in review_tasks(record, Some("completed")).await? {
        let Some(body) = task.json() else { continue };
        let (Some((a, b)), Some(decision)) = (review_pair(&body), review_decision(&body)) else { continue };
        if let (Some(a), Some(b)) = (keys.get(&a), keys.get(&b)) {
            decisions.record(a.clone(), b.clone(), decision.engine());
        }
    }
    Ok(decisions)
}

fn not_found(what: String) -> RecordError {
    RecordError::NotFound(Issue::error(IssueType::NotFound, what))
}

impl PersonIndex {
    /// Proposes each possible match of a Patient for review, unless its pair was proposed (or
    /// decided) before; returns how many Tasks were created.
    pub(super) async fn propose_reviews(
        &self,
        record: &Record,
        patient_id: &str,
        possible: &[PersonCandidate],
    ) -> Result<usize, RecordError> {
        let mut n_created = 0;
        for candidate in possible {
            let other = &candidate.best_record.local_id;
            let id = review_task_id(patient_id, other);
            match record.store().read("Task", &id).await? {
                Some(_) => continue,
                None => {
                    let task = json!({
                        "resourceType": "Task",
                        "id": id,
                        "status": "requested",
                        "intent": "proposal",
                        "priority": "routine",
                        "code": {"coding": [{"system": REVIEW_CODE_SYSTEM, "code": POSSIBLE_MATCH_CODE,
                                             "display": "Possible match for review"}]},
                        "description": "Are these two records the same person?",
                        "focus": {"reference": format!("Patient/{patient_id}")},
                        "authoredOn": now_instant(),
                        "input": [
                            patient_input(patient_id),
                            patient_input(other),
                            {"type": {"text": "score"}, "valueDecimal": (candidate.probability * 10_000.0).round() / 10_000.0},
                        ],
                    });
                    record.update(&self.bookkeeper, "Task", &id, task, None).await?;
                    n_created += 1;
                }
            }
        }
        Ok(n_created)
    }

    /// The review Tasks still waiting for a decision, oldest first.
    pub async fn open_reviews(&self, record: &Record) -> Result<Vec<StoredResource>, RecordError> {
        let mut open = review_tasks(record, Some("requested")).await?;
        open.sort_by(|a, b| a.last_updated.cmp(&b.last_updated).then_with(|| a.id.cmp(&b.id)));
        Ok(open)
    }

    /// The two Patients of a review Task (404 when there is no such review Task).
    pub async fn review_task_pair(&self, record: &Record, task_id: &str) -> Result<(String, String), RecordError> {
        let task = record.read("Task", task_id).await.map_err(|_| not_found(format!("no review Task {task_id}")))?;
        task.json()
            .filter(|t| {
                t.pointer("/code/coding/0/code").and_then(Value::as_str) == Some(POSSIBLE_MATCH_CODE)
                    && t.pointer("/code/coding/0/system").and_then(Value::as_str) == Some(REVIEW_CODE_SYSTEM)
            })
            .and_then(|t| review_pair(&t))
            .ok_or_else(|| not_found(format!("Task/{task_id} is not a match review")))
    }

    /// Applies a reviewer's decision on two Patients (whether or not they were proposed):
    /// remembered in the index, applied at once (linking merges the two persons, the one with
    /// more records keeping its id; keeping apart splits a shared person, the part with more
    /// records keeping its id), persisted as the pair's completed review Task.
    pub async fn decide(
        &self,
        record: &Record,
        patient_a: &str,
        patient_b: &str,
        decision: ReviewDecision,
        reviewer: &str,
    ) -> Result<ReviewOutcome, RecordError> {
        if patient_a == patient_b {
            return Err(RecordError::invalid(
                Issue::error(IssueType::Invalid, "the two Patients of a review must differ").at("patient"),
            ));
        }
        let (key_a, key_b, person_a, person_b) = {
            let state = self.lock();
            let key = |id: &str| {
                state.key_of_patient.get(id).cloned().ok_or_else(|| not_found(format!("Patient/{id} is not indexed")))
            };
            let (key_a, key_b) = (key(patient_a)?, key(patient_b)?);
            let person = |k: &RecordKey| state.index.person_of(k).cloned();
            let (person_a, person_b) = (person(&key_a), person(&key_b));
            (key_a, key_b, person_a, person_b)
        };
        let (Some(person_a), Some(person_b)) = (person_a, person_b) else {
            return Err(RecordError::Internal("an indexed Patient has no person".into()));
        };
        // The records that may move, read before taking the lock.
        let involved: BTreeSet<PersonId> = [person_a.clone(), person_b.clone()].into_iter().collect();
        let member_ids: Vec<String> = {
            let state = self.lock();
            involved
                .iter()
                .flat_map(|p| state.members.get(p).into_iter().flatten().map(|k| k.local_id.clone()))
                .collect()
        };
        let mut records: BTreeMap<RecordKey, SourceRecord> = BTreeMap::new();
        for id in member_ids {
            if let Ok(stored) = record.read("Patient", &id).await {
                if let Some(source) = record_of(&stored) {
                    records.insert(source.key(), source);
                }
            }
        }
        let changed = {
            let mut state = self.lock();
            state.index.record_decision(key_a.clone(), key_b.clone(), decision.engine());
            match decision {
                ReviewDecision::Link if person_a != person_b => {
                    let size = |p: &PersonId| state.members.get(p).map_or(0, BTreeSet::len);
                    let (keep, gone) = if (size(&person_a), &person_b) >= (size(&person_b), &person_a) {
                        (person_a.clone(), person_b.clone())
                    } else {
                        (person_b.clone(), person_a.clone())
                    };
                    let moving: Vec<RecordKey> = state.members.get(&gone).into_iter().flatten().cloned().collect();
                    for key in moving {
                        if let Some(source) = records.get(&key) {
                            state.move_record(source, keep.clone());
                        }
                    }
                    vec![keep, gone]
                }
                ReviewDecision::KeepApart if person_a == person_b => {
                    let members: Vec<RecordKey> = state.members.get(&person_a).into_iter().flatten().cloned().collect();
                    let mut side_a = vec![key_a.clone()];
                    let mut side_b = vec![key_b.clone()];
                    for key in members.iter().filter(|k| **k != key_a && **k != key_b) {
                        let Some(source) = records.get(key) else { continue };
                        let best = |side: &[RecordKey]| {
                            side.iter()
                                .filter_map(|k| records.get(k))
                                .map(|other| state.index.pair_probability(source, other))
                                .fold(0.0, f64::max)
                        };
                        if best(&side_a) >= best(&side_b) {
                            side_a.push(key.clone());
                        } else {
                            side_b.push(key.clone());
                        }
                    }
                    // The larger part keeps the id; on a tie, the part holding the smaller key.
                    let a_keeps = (side_a.len(), std::cmp::Reverse(side_a.iter().min()))
                        >= (side_b.len(), std::cmp::Reverse(side_b.iter().min()));
                    let mut split_off = if a_keeps { side_b } else { side_a };
                    split_off.sort();
                    let mut salt = 0;
                    let new_person = loop {
                        let candidate = derive_person_id(&split_off[0], salt);
                        if !state.members.contains_key(&candidate) && !state.index.has_person(&candidate) {
                            break candidate;
                        }
                        salt += 1;
                    };
                    for key in &split_off {
                        if let Some(source) = records.get(key) {
                            state.move_record(source, new_person.clone());
                        }
                    }
                    vec![person_a.clone(), new_person]
                }
                _ => Vec::new(),
            }
        };
        self.persist(record, changed).await?;
        let task_id = review_task_id(patient_a, patient_b);
        let mut task = match record.store().read("Task", &task_id).await?.filter(|t| !t.deleted) {
            Some(stored) => stored.json().unwrap_or_else(|| json!({})),
            None => json!({
                "resourceType": "Task",
                "code": {"coding": [{"system": REVIEW_CODE_SYSTEM, "code": POSSIBLE_MATCH_CODE,
                                     "display": "Possible match for review"}]},
                "intent": "proposal",
                "focus": {"reference": format!("Patient/{patient_a}")},
                "authoredOn": now_instant(),
                "input": [patient_input(patient_a), patient_input(patient_b)],
            }),
        };
        if let Some(object) = task.as_object_mut() {
            object.remove("meta");
        }
        task["resourceType"] = json!("Task");
        task["id"] = json!(task_id);
        task["status"] = json!("completed");
        task["lastModified"] = json!(now_instant());
        task["output"] = json!([
            {"type": {"text": "decision"}, "valueCode": decision.code()},
            {"type": {"text": "reviewer"}, "valueString": reviewer},
        ]);
        record.update(&self.bookkeeper, "Task", &task_id, task, None).await?;
        let persons = {
            let state = self.lock();
            let person = |k: &RecordKey| state.index.person_of(k).map(linkage_id).unwrap_or_default();
            [person(&key_a), person(&key_b)]
        };
        Ok(ReviewOutcome { task_id, persons })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use carecircle_store::Store;
    use carecircle_store_sqlite::SqliteStore;

    use super::*;
    use crate::Caller;

    fn joe(id: &str, given: &str, postcode: &str) -> Value {
        json!({"resourceType": "Patient", "id": id, "name": [{"family": "Bloggs", "given": [given]}],
               "birthDate": "1971-03-14", "gender": "male", "address": [{"postalCode": postcode}]})
    }

    #[tokio::test]
    async fn keeping_apart_splits_a_person_and_the_larger_part_keeps_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        store.migrate().await.unwrap();
        let record = Record::new(Arc::new(store));
        let partnership = Caller { custodian: "Organization/partnership".into() };
        let index = PersonIndex::load(&record, partnership).await.unwrap();
        let mut person = String::new();
        for (custodian, id, given) in [("gp", "a", "Joe"), ("hospital", "b", "Joseph"), ("housing", "c", "Joe")] {
            let caller = Caller { custodian: format!("Organization/{custodian}") };
            let stored = record.update(&caller, "Patient", id, joe(id, given, "LS1 4AP"), None).await.unwrap().stored;
            person = index.patient_written(&record, &stored).await.unwrap();
        }
        assert_eq!(index.patients_of_person(&person), ["a", "b", "c"]);

        // b is not Joe: a and c (the larger part) keep the person, b gets a new one.
        let outcome = index.decide(&record, "c", "b", ReviewDecision::KeepApart, "admin").await.unwrap();
        assert_eq!(outcome.persons[0], person);
        assert_ne!(outcome.persons[1], person);
        assert_eq!(index.patients_of_person(&person), ["a", "c"]);
        assert_eq!(index.patients_of_person(&outcome.persons[1]), ["b"]);
        let task = record.read("Task", &outcome.task_id).await.unwrap().json().unwrap();
        assert_eq!(review_decision(&task), Some(ReviewDecision::KeepApart));
        assert_eq!(review_pair(&task), Some(("c".to_string(), "b".to_string())));

        // b written again is not pulled back into a and c's person.
        let stored = record.read("Patient", "b").await.unwrap();
        let again = record
            .update(
                &Caller { custodian: "Organization/hospital".into() },
                "Patient",
                "b",
                joe("b", "Joseph", "LS1 4AP")
                    .as_object()
                    .map(|o| {
                        let mut o = o.clone();
                        o.insert("active".into(), json!(true));
                        Value::Object(o)
                    })
                    .unwrap(),
                Some(stored.version),
            )
            .await
            .unwrap();
        assert_ne!(index.patient_written(&record, &again.stored).await.unwrap(), person);

        // Linking them again merges b back into the larger person.
        let linked = index.decide(&record, "a", "b", ReviewDecision::Link, "admin").await.unwrap();
        assert_eq!(linked.persons, [person.clone(), person.clone()]);
        assert_eq!(index.patients_of_person(&person), ["a", "b", "c"]);
        assert!(index.decide(&record, "a", "a", ReviewDecision::Link, "admin").await.is_err());
        assert!(matches!(
            index.decide(&record, "a", "nobody", ReviewDecision::Link, "admin").await,
            Err(RecordError::NotFound(_))
        ));
    }

    #[test]
    fn review_task_ids_ignore_the_order_of_the_pair() {
        assert_eq!(review_task_id("a", "b"), review_task_id("b", "a"));
        assert_ne!(review_task_id("a", "b"), review_task_id("a", "c"));
        assert_ne!(review_task_id("ab", "c"), review_task_id("a", "bc"));
        assert!(crate::lists::list_resource_id("x", "y").len() <= 64);
    }
}
