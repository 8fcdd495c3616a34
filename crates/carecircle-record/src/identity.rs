//! The person index: which partners' `Patient`s are the same person. An in-memory
//! [`carecircle_link::LinkIndex`] over every stored Patient, with each person's membership
//! persisted as one FHIR `Linkage` (`Linkage/person-…`) so person ids survive restarts.
//!
//! A Patient becomes a linkage record (`SourceRecord`) by [`patient_record`]: the source is the
//! Patient's custodian organisation, the local id its resource id. The index catches up with
//! Patient writes from the Patient history ([`PersonIndex::catch_up`]), and writers that want
//! the person at once call [`PersonIndex::patient_written`]. The layout is in
//! `docs/person-index.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use carecircle_fhir::search::{SearchQuery, MAX_PAGE_SIZE};
use carecircle_link::{
    link, BirthDate, Grade, LinkIndex, LinkOptions, Model, NoProgress, PersonCandidate, PersonId, RecordKey, Sex,
    SourceRecord,
};
use carecircle_store::{HistoryQuery, StoredResource};
use serde_json::{json, Value};

use crate::{Caller, Record, RecordError};

mod review;

pub use review::{review_task_id, ReviewDecision, ReviewOutcome, POSSIBLE_MATCH_CODE, REVIEW_CODE_SYSTEM};

/// The identifier system of the NHS number.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// The UK Core extension saying whether an NHS number was verified.
pub const NHS_NUMBER_VERIFICATION_EXTENSION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";

/// The code of that extension meaning "number present and verified".
pub const NHS_NUMBER_VERIFIED_CODE: &str = "01";

/// The extension carrying a partner's key worker for the person (sub-extensions `name` and
/// `contact`, both `valueString`).
pub const KEY_WORKER_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/key-worker";

/// Below this many Patients the index uses [`default_model`] instead of training by EM, which
/// needs a population to learn from.
pub const MIN_TRAINING_RECORDS: usize = 1000;

/// The prefix of a person's `Linkage` id.
pub const PERSON_ID_PREFIX: &str = "person-";

/// How sure a match is, as the FHIR `match-grade` extension says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchGrade {
    /// Shared verified NHS number, a reviewer's link, or probability ≥ 0.999.
    Certain,
    /// At or above the link threshold (0.9).
    Probable,
    /// At or above the review threshold (0.5).
    Possible,
}

impl MatchGrade {
    /// The `match-grade` code.
    pub fn code(self) -> &'static str {
        match self {
            MatchGrade::Certain => "certain",
            MatchGrade::Probable => "probable",
            MatchGrade::Possible => "possible",
        }
    }
}

impl From<Grade> for MatchGrade {
    fn from(grade: Grade) -> MatchGrade {
        match grade {
            Grade::Certain => MatchGrade::Certain,
            Grade::Probable => MatchGrade::Probable,
            Grade::Possible => MatchGrade::Possible,
        }
    }
}

/// A Patient proposed as the same person as a query.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientMatch {
    /// The Patient's id.
    pub patient_id: String,
    /// The person (`Linkage`) id, `person-…`.
    pub person_id: String,
    /// Match probability of the person.
    pub probability: f64,
    /// Its grade.
    pub grade: MatchGrade,
}

/// The in-memory part, behind one lock held only for CPU work.
struct IndexState {
    index: LinkIndex,
    members: BTreeMap<PersonId, BTreeSet<RecordKey>>,
    key_of_patient: HashMap<String, RecordKey>,
    /// The Patient version each indexed Patient was indexed at, so a version already indexed
    /// (by its writer) is not matched again by the catch-up.
    indexed_versions: HashMap<String, i64>,
    /// Patient writes stored at or after this instant (UTC ms) may not be indexed yet.
    synced_from: i64,
}

impl IndexState {
    /// Adds or replaces a Patient's record; returns the persons whose membership changed and
    /// the possible matches it was not linked to (for the review queue).
    fn upsert(&mut self, record: &SourceRecord) -> (Vec<PersonId>, Vec<PersonCandidate>) {
        let mut changed = self.remove_patient(&record.local_id);
        let outcome = self.index.upsert(record);
        self.members.entry(outcome.person_id.clone()).or_default().insert(record.key());
        self.key_of_patient.insert(record.local_id.clone(), record.key());
        let possible = outcome
            .candidates
            .into_iter()
            .filter(|c| c.grade == Grade::Possible && c.person_id != outcome.person_id)
            .collect();
        changed.push(outcome.person_id);
        (changed, possible)
    }

    /// Loads a record with a known person (no matching).
    fn load(&mut self, record: &SourceRecord, person: PersonId) {
        self.index.load(record, person.clone());
        self.members.entry(person).or_default().insert(record.key());
        self.key_of_patient.insert(record.local_id.clone(), record.key());
    }

    /// Moves an indexed record to `person` (no matching).
    fn move_record(&mut self, record: &SourceRecord, person: PersonId) {
        self.remove_patient(&record.local_id);
        self.load(record, person);
    }

    fn remove_patient(&mut self, patient_id: &str) -> Vec<PersonId> {
        self.indexed_versions.remove(patient_id);
        let Some(key) = self.key_of_patient.remove(patient_id) else { return Vec::new() };
        let Some(person) = self.index.remove(&key) else { return Vec::new() };
        if let Some(members) = self.members.get_mut(&person) {
            members.remove(&key);
            if members.is_empty() {
                self.members.remove(&person);
            }
        }
        vec![person]
    }

    fn person_of_patient(&self, patient_id: &str) -> Option<&PersonId> {
        self.key_of_patient.get(patient_id).and_then(|key| self.index.person_of(key))
    }

    /// The Linkage body of a person, `None` when it has no records left.
    fn linkage(&self, person: &PersonId) -> Option<Value> {
        let members = self.members.get(person).filter(|members| !members.is_empty())?;
        let items: Vec<Value> = members
            .iter()
            .map(|key| json!({"type": "source", "resource": {"reference": format!("Patient/{}", key.local_id)}}))
            .collect();
        Some(json!({"resourceType": "Linkage", "id": linkage_id(person), "active": true, "item": items}))
    }
}

/// The persons of every partner's Patients. Cheap to share behind an `Arc`.
pub struct PersonIndex {
    state: Mutex<IndexState>,
    bookkeeper: Caller,
}

/// The `Linkage` id of a person (`P3f9a…` → `person-3f9a…`).
pub fn linkage_id(person: &PersonId) -> String {
    format!("{PERSON_ID_PREFIX}{}", person.0.strip_prefix('P').unwrap_or(&person.0))
}

fn person_of_linkage(id: &str) -> Option<PersonId> {
    id.strip_prefix(PERSON_ID_PREFIX).map(|rest| PersonId(format!("P{rest}")))
}

fn bare_org(reference: &str) -> &str {
    reference.strip_prefix("Organization/").unwrap_or(reference)
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::trim).filter(|text| !text.is_empty()).map(str::to_string)
}

/// The linkage record of a Patient held by `custodian` (`Organization/{id}` or a bare id):
/// the official (else first) name, birth date, gender, first address (a leading number of the
/// first line is the house number), first phone, the NHS number (verified when the UK Core
/// verification extension says `01`) and the key-worker extension.
pub fn patient_record(patient_id: &str, custodian: &str, patient: &Value) -> SourceRecord {
    let names = patient.get("name").and_then(Value::as_array).cloned().unwrap_or_default();
    let name = names.iter().find(|n| n.get("use").and_then(Value::as_str) == Some("official")).or(names.first());
    let given_names = name
        .and_then(|n| n.get("given"))
        .and_then(Value::as_array)
        .map(|given| given.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
        .filter(|given| !given.trim().is_empty());
    let family_name = text(name.and_then(|n| n.get("family")));
    let birth_date = patient.get("birthDate").and_then(Value::as_str).and_then(|date| {
        let mut parts = date.splitn(3, '-');
        let year = parts.next()?.parse().ok()?;
        let month = parts.next()?.parse().ok()?;
        let day = parts.next()?.get(..2)?.parse().ok()?;
        BirthDate::new(year, month, day)
    });
    let sex = match patient.get("gender").and_then(Value::as_str) {
        Some("female") => Some(Sex::Female),
        Some("male") => Some(Sex::Male),
        Some("other") => Some(Sex::Other),
        _ => None,
    };
    let address = patient.get("address").and_then(Value::as_array).and_then(|a| a.first());
    let lines: Vec<&str> = address
        .and_then(|a| a.get("line"))
        .and_then(Value::as_array)
        .map(|lines| lines.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let (house_number, street) = match lines.first().map(|line| line.trim()) {
        Some(line) => match line.split_once(' ') {
            Some((number, rest)) if number.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                (Some(number.to_string()), Some(rest.trim().to_string()))
            }
            _ => (None, Some(line.to_string())),
        },
        None => (None, None),
    };
    let phone = patient
        .get("telecom")
        .and_then(Value::as_array)
        .and_then(|telecom| telecom.iter().find(|t| t.get("system").and_then(Value::as_str) == Some("phone")))
        .and_then(|t| text(t.get("value")));
    let nhs = patient
        .get("identifier")
        .and_then(Value::as_array)
        .and_then(|ids| ids.iter().find(|i| i.get("system").and_then(Value::as_str) == Some(NHS_NUMBER_SYSTEM)));
    let national_id_verified = nhs.is_some_and(|identifier| {
        identifier.get("extension").and_then(Value::as_array).is_some_and(|extensions| {
            extensions.iter().any(|e| {
                e.get("url").and_then(Value::as_str) == Some(NHS_NUMBER_VERIFICATION_EXTENSION)
                    && e.pointer("/valueCodeableConcept/coding")
                        .and_then(Value::as_array)
                        .is_some_and(|c| c.iter().any(|c| c.get("code").and_then(Value::as_str) == Some("01")))
            })
        })
    });
    let key_worker = patient
        .get("extension")
        .and_then(Value::as_array)
        .and_then(|e| e.iter().find(|e| e.get("url").and_then(Value::as_str) == Some(KEY_WORKER_EXTENSION)));
    let key_worker_part = |part: &str| {
        key_worker
            .and_then(|k| k.get("extension"))
            .and_then(Value::as_array)
            .and_then(|e| e.iter().find(|e| e.get("url").and_then(Value::as_str) == Some(part)))
            .and_then(|e| text(e.get("valueString")))
    };
    SourceRecord {
        source: bare_org(custodian).to_string(),
        local_id: patient_id.to_string(),
        given_names,
        family_name,
        birth_date,
        sex,
        house_number,
        address: street.filter(|s| !s.is_empty()),
        city: text(address.and_then(|a| a.get("city"))),
        postcode: text(address.and_then(|a| a.get("postalCode"))),
        region: text(address.and_then(|a| a.get("state"))),
        phone,
        national_id: nhs.and_then(|i| text(i.get("value"))),
        national_id_verified,
        key_worker: key_worker_part("name"),
        key_worker_contact: key_worker_part("contact"),
    }
}

/// The model used until there are [`MIN_TRAINING_RECORDS`] Patients: m and u set by hand from
/// published UK linkage figures (agreement rates among true matches, chance agreement among
/// random pairs), with a prior of 1 in 1,000 candidate pairs. Same name and date of birth is
/// certain; same name and birth year only is probable at best.
pub fn default_model() -> Model {
    let rows: [(&[f64], &[f64]); 10] = [
        // given: exact, typo, nickname, middle name, phonetic, initial, similar, different
        (
            &[1.0, 0.86, 0.04, 0.02, 0.01, 0.02, 0.02, 0.01, 0.02],
            &[1.0, 0.01, 0.002, 0.002, 0.002, 0.005, 0.05, 0.02, 0.909],
        ),
        // family: exact, typo, phonetic, similar, different
        (&[1.0, 0.88, 0.04, 0.03, 0.02, 0.03], &[1.0, 0.005, 0.001, 0.002, 0.01, 0.982]),
        // birth date: exact, swapped, one digit, same year, different
        (&[1.0, 0.93, 0.01, 0.03, 0.025, 0.005], &[1.0, 0.0001, 0.00005, 0.002, 0.015, 0.98285]),
        // sex: same, different
        (&[1.0, 0.98, 0.02], &[1.0, 0.5, 0.5]),
        // house number: exact, different
        (&[1.0, 0.85, 0.15], &[1.0, 0.05, 0.95]),
        // street: exact, typo, similar, different
        (&[1.0, 0.8, 0.05, 0.05, 0.1], &[1.0, 0.002, 0.001, 0.01, 0.987]),
        // city: exact, typo, different
        (&[1.0, 0.9, 0.03, 0.07], &[1.0, 0.2, 0.01, 0.79]),
        // postcode: exact, typo, same outward code, different
        (&[1.0, 0.8, 0.03, 0.07, 0.1], &[1.0, 0.0005, 0.001, 0.01, 0.9885]),
        // phone: exact, typo, different
        (&[1.0, 0.7, 0.03, 0.27], &[1.0, 0.0001, 0.0005, 0.9994]),
        // national id: exact valid NHS number, exact, typo, different
        (&[1.0, 0.96, 0.01, 0.01, 0.02], &[1.0, 0.00001, 0.00001, 0.0001, 0.99988]),
    ];
    Model {
        m: rows.iter().map(|(m, _)| m.to_vec()).collect(),
        u: rows.iter().map(|(_, u)| u.to_vec()).collect(),
        u_exact_random: [0.01, 0.005],
        prior: 0.001,
        term_frequencies: Default::default(),
        n_iterations: 0,
    }
}

/// Every current resource of a type, page by page (the server's own bookkeeping: unguarded).
pub(crate) async fn all_of_type(record: &Record, resource_type: &str) -> Result<Vec<StoredResource>, RecordError> {
    let mut query = SearchQuery::all(Some(resource_type));
    query.count = MAX_PAGE_SIZE;
    let mut all = Vec::new();
    loop {
        let page = record.run_search(query.clone()).await?.page;
        let n = page.entries.len();
        all.extend(page.entries);
        if n < query.count {
            return Ok(all);
        }
        query.offset += query.count;
    }
}

pub(crate) fn record_of(stored: &StoredResource) -> Option<SourceRecord> {
    let body = stored.json()?;
    Some(patient_record(&stored.id, stored.custodian.as_deref().unwrap_or_default(), &body))
}

impl PersonIndex {
    /// Loads every Patient and every person `Linkage`. Patients already in a Linkage keep
    /// their person; with at least [`MIN_TRAINING_RECORDS`] Patients the model is trained by a
    /// batch run (which also links Patients not yet in a Linkage, keeping stored ids),
    /// otherwise [`default_model`] is used and new Patients are matched one by one. Changed
    /// persons are written back as `Linkage`s by `bookkeeper` (the partnership).
    pub async fn load(record: &Record, bookkeeper: Caller) -> Result<PersonIndex, RecordError> {
        let synced_from = carecircle_store::now_millis();
        let patients = all_of_type(record, "Patient").await?;
        let records: Vec<SourceRecord> = patients.iter().filter_map(record_of).collect();
        let mut previous: HashMap<String, PersonId> = HashMap::new();
        let mut stored_members: BTreeMap<PersonId, BTreeSet<String>> = BTreeMap::new();
        for linkage in all_of_type(record, "Linkage").await? {
            let Some(person) = person_of_linkage(&linkage.id) else { continue };
            let body = linkage.json().unwrap_or(Value::Null);
            for item in body.get("item").and_then(Value::as_array).into_iter().flatten() {
                if let Some(id) = item.pointer("/resource/reference").and_then(Value::as_str) {
                    if let Some(patient_id) = id.strip_prefix("Patient/") {
                        previous.insert(patient_id.to_string(), person.clone());
                        stored_members.entry(person.clone()).or_default().insert(patient_id.to_string());
                    }
                }
            }
        }
        let patient_keys: HashMap<String, RecordKey> = records.iter().map(|r| (r.local_id.clone(), r.key())).collect();
        let decisions = review::load_decisions(record, &patient_keys).await?;
        let state = if records.len() >= MIN_TRAINING_RECORDS {
            let previous_by_key: HashMap<RecordKey, PersonId> = records
                .iter()
                .filter_map(|r| previous.get(&r.local_id).map(|person| (r.key(), person.clone())))
                .collect();
            let options = LinkOptions::default();
            let result = link(&records, &decisions, &previous_by_key, &options, &NoProgress)
                .map_err(|e| RecordError::Internal(format!("training the linkage model: {e}")))?;
            let mut index = LinkIndex::new(result.model.clone());
            index.set_decisions(decisions);
            let mut state = IndexState::new(index, synced_from);
            for record in &records {
                if let Some(person) = result.person_of(&record.key()) {
                    state.load(record, person.clone());
                }
            }
            state
        } else {
            let mut index = LinkIndex::new(default_model());
            index.set_decisions(decisions);
            let mut state = IndexState::new(index, synced_from);
            let mut unplaced = Vec::new();
            for record in &records {
                match previous.get(&record.local_id) {
                    Some(person) => state.load(record, person.clone()),
                    None => unplaced.push(record),
                }
            }
            for record in unplaced {
                let _ = state.upsert(record);
            }
            state
        };
        let changed: Vec<PersonId> = state
            .members
            .iter()
            .filter(|(person, members)| {
                let ids: BTreeSet<String> = members.iter().map(|k| k.local_id.clone()).collect();
                stored_members.get(*person) != Some(&ids)
            })
            .map(|(person, _)| person.clone())
            .chain(stored_members.keys().filter(|p| !state.members.contains_key(*p)).cloned())
            .collect();
        let index = PersonIndex { state: Mutex::new(state), bookkeeper };
        index.persist(record, changed).await?;
        Ok(index)
    }

    fn lock(&self) -> MutexGuard<'_, IndexState> {
        // A panic while the lock was held leaves a consistent-enough index (every mutation is a
        // few map operations); carrying on beats refusing every identity request afterwards.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes the `Linkage` of each person (deleting those with no records left).
    async fn persist(&self, record: &Record, persons: Vec<PersonId>) -> Result<(), RecordError> {
        let unique: BTreeSet<PersonId> = persons.into_iter().collect();
        let bodies: Vec<(PersonId, Option<Value>)> = {
            let state = self.lock();
            unique.into_iter().map(|person| (person.clone(), state.linkage(&person))).collect()
        };
        for (person, body) in bodies {
            let id = linkage_id(&person);
            match body {
                Some(body) => {
                    record.update(&self.bookkeeper, "Linkage", &id, body, None).await?;
                }
                None => {
                    record.delete("Linkage", &id, None).await?;
                }
            }
        }
        Ok(())
    }

    /// Indexes a stored Patient at once (matching it against everyone indexed), persists the
    /// persons it joined or left and sends its possible matches to the review queue; returns
    /// its person's `Linkage` id.
    pub async fn patient_written(&self, record: &Record, stored: &StoredResource) -> Result<String, RecordError> {
        Ok(self.index_patient(record, stored).await?.0)
    }

    /// [`PersonIndex::patient_written`], answering how many review proposals it made.
    pub async fn patient_written_with_review(
        &self,
        record: &Record,
        stored: &StoredResource,
    ) -> Result<usize, RecordError> {
        Ok(self.index_patient(record, stored).await?.1)
    }

    async fn index_patient(&self, record: &Record, stored: &StoredResource) -> Result<(String, usize), RecordError> {
        let (changed, person, possible) = {
            let mut state = self.lock();
            if !stored.deleted && state.indexed_versions.get(&stored.id) == Some(&stored.version) {
                let person = state.person_of_patient(&stored.id).map(linkage_id);
                return Ok((person.unwrap_or_default(), 0));
            }
            if stored.deleted {
                (state.remove_patient(&stored.id), None, Vec::new())
            } else {
                match record_of(stored) {
                    Some(source) => {
                        let (changed, possible) = state.upsert(&source);
                        state.indexed_versions.insert(stored.id.clone(), stored.version);
                        let person = state.person_of_patient(&stored.id).map(linkage_id);
                        (changed, person, possible)
                    }
                    None => (state.remove_patient(&stored.id), None, Vec::new()),
                }
            }
        };
        self.persist(record, changed).await?;
        let n_proposed = self.propose_reviews(record, &stored.id, &possible).await?;
        Ok((person.unwrap_or_default(), n_proposed))
    }

    /// Indexes every Patient version stored since the last catch-up (creates, updates and
    /// deletes through any path); returns how many Patients were re-indexed.
    pub async fn catch_up(&self, record: &Record) -> Result<usize, RecordError> {
        let since = self.lock().synced_from;
        let next_sync = carecircle_store::now_millis();
        let mut newest: BTreeMap<String, StoredResource> = BTreeMap::new();
        let mut offset = 0;
        loop {
            let query = HistoryQuery {
                resource_type: Some("Patient".into()),
                id: None,
                since: Some(since),
                count: MAX_PAGE_SIZE,
                offset,
            };
            let page = record.history(query).await?;
            let n = page.entries.len();
            for version in page.entries {
                // Newest first: the first version seen of a Patient is its current one.
                newest.entry(version.id.clone()).or_insert(version);
            }
            if n < MAX_PAGE_SIZE {
                break;
            }
            offset += n;
        }
        let n_patients = newest.len();
        for stored in newest.values() {
            self.patient_written(record, stored).await?;
        }
        self.lock().synced_from = next_sync;
        Ok(n_patients)
    }

    /// Patients of the persons a Patient (not necessarily stored) may be, best first: every
    /// Patient of each candidate person, with the person's probability and grade. The
    /// Patient itself, when indexed under `patient_id`, is left out.
    pub fn match_patient(&self, patient_id: &str, custodian: &str, patient: &Value) -> Vec<PatientMatch> {
        let source = patient_record(patient_id, custodian, patient);
        let state = self.lock();
        let mut matches = Vec::new();
        for candidate in state.index.match_record(&source) {
            for key in state.members.get(&candidate.person_id).into_iter().flatten() {
                if key.local_id == patient_id {
                    continue;
                }
                matches.push(PatientMatch {
                    patient_id: key.local_id.clone(),
                    person_id: linkage_id(&candidate.person_id),
                    probability: candidate.probability,
                    grade: candidate.grade.into(),
                });
            }
        }
        matches
    }

    /// The person (`Linkage` id) of an indexed Patient.
    pub fn person_of_patient(&self, patient_id: &str) -> Option<String> {
        self.lock().person_of_patient(patient_id).map(linkage_id)
    }

    /// Every Patient id of a person, sorted by (custodian, id).
    pub fn patients_of_person(&self, linkage_id: &str) -> Vec<String> {
        let Some(person) = person_of_linkage(linkage_id) else { return Vec::new() };
        self.lock().members.get(&person).map(|m| m.iter().map(|k| k.local_id.clone()).collect()).unwrap_or_default()
    }

    /// Number of Patients indexed.
    pub fn len(&self) -> usize {
        self.lock().index.len()
    }

    /// Whether no Patient is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl IndexState {
    fn new(index: LinkIndex, synced_from: i64) -> IndexState {
        IndexState {
            index,
            members: BTreeMap::new(),
            key_of_patient: HashMap::new(),
            indexed_versions: HashMap::new(),
            synced_from,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patient_becomes_a_linkage_record() {
        let patient = json!({
            "resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765919", "extension": [{
                "url": NHS_NUMBER_VERIFICATION_EXTENSION,
                "valueCodeableConcept": {"coding": [{"code": "01"}]}}]}],
            "name": [{"use": "usual", "given": ["Jo"]}, {"use": "official", "family": "Bloggs", "given": ["Joseph", "Ian"]}],
            "gender": "male",
            "birthDate": "1971-03-14",
            "address": [{"line": ["12 High Street"], "city": "Leeds", "postalCode": "LS1 4AP"}],
            "telecom": [{"system": "email", "value": "a@b"}, {"system": "phone", "value": "0113 496 0000"}],
            "extension": [{"url": KEY_WORKER_EXTENSION, "extension": [
                {"url": "name", "valueString": "Sam Key"}, {"url": "contact", "valueString": "0113 496 0001"}]}]
        });
        let record = patient_record("p1", "Organization/gp", &patient);
        assert_eq!(record.source, "gp");
        assert_eq!(record.local_id, "p1");
        assert_eq!(record.given_names.as_deref(), Some("Joseph Ian"));
        assert_eq!(record.family_name.as_deref(), Some("Bloggs"));
        assert_eq!(record.birth_date, BirthDate::new(1971, 3, 14));
        assert_eq!(record.sex, Some(Sex::Male));
        assert_eq!(record.house_number.as_deref(), Some("12"));
        assert_eq!(record.address.as_deref(), Some("High Street"));
        assert_eq!(record.postcode.as_deref(), Some("LS1 4AP"));
        assert_eq!(record.phone.as_deref(), Some("0113 496 0000"));
        assert_eq!(record.national_id.as_deref(), Some("9434765919"));
        assert!(record.national_id_verified);
        assert_eq!(record.key_worker.as_deref(), Some("Sam Key"));
        assert_eq!(record.key_worker_contact.as_deref(), Some("0113 496 0001"));
    }

    #[test]
    fn the_default_model_grades_name_and_birth_date() {
        let model = default_model();
        model.check_shape().expect("one row per comparison level");
        let mut index = LinkIndex::new(model);
        let base = |source: &str, id: &str, birth: &str| {
            patient_record(
                id,
                source,
                &json!({"name": [{"family": "Okafor", "given": ["Adaeze"]}], "birthDate": birth, "gender": "female"}),
            )
        };
        index.upsert(&base("gp", "a", "1984-06-02"));
        index.upsert(&patient_record(
            "x",
            "gp",
            &json!({"name": [{"family": "Brown", "given": ["Tom"]}], "birthDate": "1950-01-01"}),
        ));
        let same = index.match_record(&base("hospital", "b", "1984-06-02"));
        assert_eq!(same.first().map(|c| c.grade), Some(Grade::Certain), "{same:?}");
        let other_year = index.match_record(&base("hospital", "c", "1990-11-20"));
        assert!(other_year.is_empty(), "{other_year:?}");
    }

    #[test]
    fn linkage_ids_round_trip() {
        let person = PersonId("P3f9a0c1d2e4b5a69".into());
        assert_eq!(linkage_id(&person), "person-3f9a0c1d2e4b5a69");
        assert_eq!(person_of_linkage(&linkage_id(&person)), Some(person));
    }
}
