//! Partners' lean lists of active clients: a CSV read with a TOML mapping
//! ([`carecircle_link::Mapping`]) becomes, per row, that partner's `Patient` (matched into the
//! person index before the upload returns) and one list-membership `EpisodeOfCare` carrying
//! the key worker, the service and the contact. Rows that left the list end their episode
//! (`status = finished`, `period.end`); nothing is deleted. The layout is in `docs/lists.md`.
//!
//! Ids are derived from the partner and its local id, so re-uploading the same file finds every
//! resource and, when nothing differs, writes nothing.

use std::collections::{BTreeMap, BTreeSet};

use carecircle_care::model::OrgId;
use carecircle_care::PartnerListEntry;
use carecircle_fhir::search::{parse_search, Handling, MAX_PAGE_SIZE};
use carecircle_fhir::{Issue, IssueType};
use carecircle_link::{read_column, read_records, Mapping, Progress, RowIssue, SourceRecord};
use carecircle_store::StoredResource;
use serde_json::{json, Map, Value};

use crate::identity::{KEY_WORKER_EXTENSION, NHS_NUMBER_SYSTEM, NHS_NUMBER_VERIFICATION_EXTENSION};
use crate::{Caller, PersonIndex, Record, RecordError, Session};

/// The identifier system of a partner's local ids is this base followed by `/{organisation id}`.
pub const LOCAL_ID_SYSTEM_BASE: &str = "https://carecircle.example.org/fhir/NamingSystem/local-id";

/// The identifier system of one partner's local ids.
pub fn local_id_system(partner: &str) -> String {
    format!("{LOCAL_ID_SYSTEM_BASE}/{}", bare_org(partner))
}

fn bare_org(reference: &str) -> &str {
    reference.strip_prefix("Organization/").unwrap_or(reference)
}

/// The resource id of a partner's list row, shared by its `Patient` and its `EpisodeOfCare`:
/// `{partner}-{local id}` when that is a valid FHIR id, otherwise `{partner}-` and a 64-bit
/// FNV-1a hash of the local id in hex (a stable, not a secret, digest).
pub fn list_resource_id(partner: &str, local_id: &str) -> String {
    let partner = bare_org(partner);
    let plain = format!("{partner}-{local_id}");
    if carecircle_fhir::search::is_valid_id(&plain) {
        return plain;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in local_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let prefix: String = partner.chars().take(40).collect();
    format!("{prefix}-{hash:016x}")
}

/// How an upload's writes are made: through the uploader's guarded session (API), or directly
/// (the administrator's offline `carecircle lists import`).
pub enum ListWriter<'a, 'b> {
    /// Every write is decided and audited for the session's principal.
    Guarded(&'a Session<'b>),
    /// The administrator's offline import, like `carecircle import`.
    Offline,
}

impl ListWriter<'_, '_> {
    async fn put(
        &self,
        record: &Record,
        caller: &Caller,
        resource_type: &str,
        id: &str,
        body: Value,
    ) -> Result<StoredResource, RecordError> {
        let outcome = match self {
            ListWriter::Guarded(session) => session.update(caller, resource_type, id, body, None).await?,
            ListWriter::Offline => record.update(caller, resource_type, id, body, None).await?,
        };
        Ok(outcome.stored)
    }
}

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListSummary {
    /// Data rows read.
    pub n_rows: usize,
    /// Rows new to the partner's list (a Patient created, or an ended entry back on the list).
    pub n_new: usize,
    /// Rows whose Patient or list entry changed.
    pub n_changed: usize,
    /// Rows already on the list exactly as uploaded (nothing written).
    pub n_unchanged: usize,
    /// Entries that were on the list and are not any more (ended now).
    pub n_left: usize,
    /// Possible matches sent to the review queue.
    pub n_review_proposed: usize,
    /// Values that could not be used (the rest of their row was).
    pub issues: Vec<RowIssue>,
}

/// One partner's list as uploaded: the CSV text and its mapping.
pub struct ListUpload<'a> {
    /// The partner, `Organization/{id}` or its id.
    pub partner: &'a str,
    /// Which column is which.
    pub mapping: &'a Mapping,
    /// The CSV (with a header row).
    pub csv: &'a [u8],
}

fn read_error(error: carecircle_link::ReadError) -> RecordError {
    RecordError::Invalid(vec![Issue::error(IssueType::Invalid, format!("the list cannot be read: {error}")).at("csv")])
}

/// Every current resource matching a search (the server's own bookkeeping: unguarded).
pub(crate) async fn all_matching(
    record: &Record,
    resource_type: &str,
    params: &[(String, String)],
) -> Result<Vec<StoredResource>, RecordError> {
    let mut query = parse_search(Some(resource_type), params, Handling::Strict).map_err(RecordError::Invalid)?;
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

/// The local id an identifier list carries in `system`.
fn local_id_in(resource: &Value, system: &str) -> Option<String> {
    resource.get("identifier").and_then(Value::as_array).and_then(|ids| {
        ids.iter()
            .find(|i| i.get("system").and_then(Value::as_str) == Some(system))
            .and_then(|i| i.get("value").and_then(Value::as_str))
            .map(str::to_string)
    })
}

fn without_meta(resource: &Value) -> Value {
    let mut copy = resource.clone();
    if let Some(object) = copy.as_object_mut() {
        object.remove("meta");
    }
    copy
}

fn set_or_remove(object: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(value) => {
            object.insert(key.to_string(), value);
        }
        None => {
            object.remove(key);
        }
    }
}

/// The Patient of a list row: the existing Patient (if any) with the fields a list carries
/// replaced by the row's values; identifiers in other systems are kept.
pub fn patient_of_row(existing: Option<&Value>, id: &str, partner: &str, row: &SourceRecord) -> Value {
    let mut patient = match existing.map(without_meta) {
        Some(Value::Object(object)) => object,
        _ => Map::new(),
    };
    let object = &mut patient;
    object.insert("resourceType".into(), json!("Patient"));
    object.insert("id".into(), json!(id));
    let system = local_id_system(partner);
    let mut identifiers: Vec<Value> = object
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| {
            let s = i.get("system").and_then(Value::as_str);
            s != Some(system.as_str()) && s != Some(NHS_NUMBER_SYSTEM)
        })
        .cloned()
        .collect();
    identifiers.insert(0, json!({"use": "usual", "system": system, "value": row.local_id}));
    if let Some(nhs) = &row.national_id {
        let digits: String = nhs.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        let mut identifier = json!({"system": NHS_NUMBER_SYSTEM, "value": digits});
        if row.national_id_verified {
            identifier["extension"] = json!([{"url": NHS_NUMBER_VERIFICATION_EXTENSION,
                "valueCodeableConcept": {"coding": [{"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland", "code": "01", "display": "Number present and verified"}]}}]);
        }
        identifiers.insert(1, identifier);
    }
    object.insert("identifier".into(), Value::Array(identifiers));
    object.insert("active".into(), json!(true));
    let mut name = Map::new();
    name.insert("use".into(), json!("official"));
    if let Some(family) = &row.family_name {
        name.insert("family".into(), json!(family));
    }
    if let Some(given) = &row.given_names {
        name.insert("given".into(), json!(given.split_whitespace().collect::<Vec<_>>()));
    }
    set_or_remove(object, "name", (name.len() > 1).then(|| json!([name])));
    set_or_remove(
        object,
        "gender",
        row.sex.map(|sex| {
            json!(match sex {
                carecircle_link::Sex::Female => "female",
                carecircle_link::Sex::Male => "male",
                carecircle_link::Sex::Other => "other",
            })
        }),
    );
    set_or_remove(object, "birthDate", row.birth_date.map(|d| json!(d.to_string())));
    let mut address = Map::new();
    let line = match (&row.house_number, &row.address) {
        (Some(number), Some(street)) => Some(format!("{number} {street}")),
        (Some(number), None) => Some(number.clone()),
        (None, Some(street)) => Some(street.clone()),
        (None, None) => None,
    };
    if let Some(line) = line {
        address.insert("line".into(), json!([line]));
    }
    for (key, value) in [("city", &row.city), ("postalCode", &row.postcode), ("state", &row.region)] {
        if let Some(value) = value {
            address.insert(key.into(), json!(value));
        }
    }
    set_or_remove(object, "address", (!address.is_empty()).then(|| json!([address])));
    set_or_remove(object, "telecom", row.phone.as_ref().map(|phone| json!([{"system": "phone", "value": phone}])));
    Value::Object(patient)
}

/// The list-membership `EpisodeOfCare` of a row: active, for the partner's Patient, with the
/// service as `type.text`, the key worker as `careManager.display` and the key-worker
/// extension (name, contact). `period.start` is the day the person first joined the list, kept
/// from `existing`; an ended entry that is back on the list starts again `today`.
pub fn episode_of_row(
    existing: Option<&Value>,
    id: &str,
    partner: &str,
    row: &SourceRecord,
    service: Option<&str>,
    today: &str,
) -> Value {
    let was_active = existing.is_some_and(|e| e.get("status").and_then(Value::as_str) == Some("active"));
    let start = existing
        .filter(|_| was_active)
        .and_then(|e| e.pointer("/period/start"))
        .and_then(Value::as_str)
        .unwrap_or(today)
        .to_string();
    let mut episode = json!({
        "resourceType": "EpisodeOfCare",
        "id": id,
        "identifier": [{"system": local_id_system(partner), "value": row.local_id}],
        "status": "active",
        "patient": {"reference": format!("Patient/{id}")},
        "managingOrganization": {"reference": format!("Organization/{}", bare_org(partner))},
        "period": {"start": start},
    });
    if let Some(service) = service {
        episode["type"] = json!([{"text": service}]);
    }
    if let Some(name) = &row.key_worker {
        episode["careManager"] = json!({"display": name});
    }
    let mut parts = Vec::new();
    if let Some(name) = &row.key_worker {
        parts.push(json!({"url": "name", "valueString": name}));
    }
    if let Some(contact) = &row.key_worker_contact {
        parts.push(json!({"url": "contact", "valueString": contact}));
    }
    if !parts.is_empty() {
        episode["extension"] = json!([{"url": KEY_WORKER_EXTENSION, "extension": parts}]);
    }
    episode
}

/// The care-team input ([`PartnerListEntry`]) of a list-membership `EpisodeOfCare`; `None`
/// for other episodes. A contact with an `@` is the email, anything else the phone.
pub fn list_entry_of_episode(episode: &Value) -> Option<PartnerListEntry> {
    let is_list_episode = episode
        .get("identifier")
        .and_then(Value::as_array)?
        .iter()
        .any(|i| i.get("system").and_then(Value::as_str).is_some_and(|s| s.starts_with(LOCAL_ID_SYSTEM_BASE)));
    if !is_list_episode {
        return None;
    }
    let organisation = episode.pointer("/managingOrganization/reference").and_then(Value::as_str)?;
    let key_worker_part = |part: &str| {
        episode
            .get("extension")
            .and_then(Value::as_array)?
            .iter()
            .find(|e| e.get("url").and_then(Value::as_str) == Some(KEY_WORKER_EXTENSION))?
            .get("extension")
            .and_then(Value::as_array)?
            .iter()
            .find(|e| e.get("url").and_then(Value::as_str) == Some(part))?
            .get("valueString")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let contact = key_worker_part("contact");
    let (email, phone) = match contact {
        Some(c) if c.contains('@') => (Some(c), None),
        other => (None, other),
    };
    let date = |pointer: &str| {
        episode.pointer(pointer).and_then(Value::as_str).and_then(carecircle_care::model::parse_fhir_date)
    };
    Some(PartnerListEntry {
        organisation: OrgId::new(bare_org(organisation)),
        key_worker: key_worker_part("name"),
        service: episode.pointer("/type/0/text").and_then(Value::as_str).map(str::to_string),
        phone,
        email,
        since: date("/period/start"),
        ended: date("/period/end").filter(|_| episode.get("status").and_then(Value::as_str) != Some("active")),
    })
}

fn today_text() -> String {
    let today = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", today.year(), u8::from(today.month()), today.day())
}

/// Uploads one partner's list: every row becomes (or updates) the partner's `Patient`, matched
/// into `index` at once, and its list-membership `EpisodeOfCare`; entries no longer on the
/// list are ended. Writes go through `writer`; `progress` advances once per row.
pub async fn upload_list(
    record: &Record,
    writer: &ListWriter<'_, '_>,
    index: &PersonIndex,
    upload: &ListUpload<'_>,
    progress: &dyn Progress,
) -> Result<ListSummary, RecordError> {
    let partner = bare_org(upload.partner).to_string();
    let caller = Caller { custodian: format!("Organization/{partner}") };
    let set = read_records(upload.mapping, &partner, upload.csv).map_err(read_error)?;
    let services: Vec<Option<String>> = match &upload.mapping.service {
        Some(column) => read_column(upload.mapping, upload.csv, column).map_err(read_error)?,
        None => vec![None; set.records.len()],
    };
    let system = local_id_system(&partner);
    let identifier_param = vec![("identifier".to_string(), format!("{system}|"))];
    let mut patients: BTreeMap<String, StoredResource> = BTreeMap::new();
    for stored in all_matching(record, "Patient", &identifier_param).await? {
        if let Some(local) = stored.json().and_then(|body| local_id_in(&body, &system)) {
            patients.insert(local, stored);
        }
    }
    let mut episodes: BTreeMap<String, StoredResource> = BTreeMap::new();
    for stored in all_matching(record, "EpisodeOfCare", &identifier_param).await? {
        if let Some(local) = stored.json().and_then(|body| local_id_in(&body, &system)) {
            episodes.insert(local, stored);
        }
    }
    let today = today_text();
    let mut summary = ListSummary { n_rows: set.records.len(), issues: set.issues.clone(), ..Default::default() };
    progress.stage("rows", set.records.len() as u64);
    let mut on_list = BTreeSet::new();
    for (row, service) in set.records.iter().zip(services) {
        on_list.insert(row.local_id.clone());
        let existing_patient = patients.get(&row.local_id);
        let id = existing_patient.map(|p| p.id.clone()).unwrap_or_else(|| list_resource_id(&partner, &row.local_id));
        let old_patient = existing_patient.and_then(StoredResource::json);
        let new_patient = patient_of_row(old_patient.as_ref(), &id, &partner, row);
        let patient_changed = old_patient.as_ref().map(without_meta) != Some(new_patient.clone());
        if patient_changed {
            let stored = writer.put(record, &caller, "Patient", &id, new_patient).await?;
            summary.n_review_proposed += index.patient_written_with_review(record, &stored).await?;
        }
        let old_episode = episodes.get(&row.local_id).and_then(StoredResource::json);
        let episode_id = episodes.get(&row.local_id).map(|e| e.id.clone()).unwrap_or_else(|| id.clone());
        let mut new_episode =
            episode_of_row(old_episode.as_ref(), &episode_id, &partner, row, service.as_deref(), &today);
        new_episode["patient"] = json!({"reference": format!("Patient/{id}")});
        let was_active =
            old_episode.as_ref().is_some_and(|e| e.get("status").and_then(Value::as_str) == Some("active"));
        let episode_changed = old_episode.as_ref().map(without_meta) != Some(new_episode.clone());
        if episode_changed {
            writer.put(record, &caller, "EpisodeOfCare", &episode_id, new_episode).await?;
        }
        if existing_patient.is_none() || !was_active {
            summary.n_new += 1;
        } else if patient_changed || episode_changed {
            summary.n_changed += 1;
        } else {
            summary.n_unchanged += 1;
        }
        progress.advance(1);
    }
    for (local_id, stored) in &episodes {
        let Some(mut episode) = stored.json() else { continue };
        if on_list.contains(local_id) || episode.get("status").and_then(Value::as_str) != Some("active") {
            continue;
        }
        episode = without_meta(&episode);
        episode["status"] = json!("finished");
        episode["period"]["end"] = json!(today);
        writer.put(record, &caller, "EpisodeOfCare", &stored.id, episode).await?;
        summary.n_left += 1;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_ids_are_plain_when_valid_and_hashed_otherwise() {
        assert_eq!(list_resource_id("Organization/gp", "G-17"), "gp-G-17");
        let hashed = list_resource_id("gp", "17/b 3");
        assert!(hashed.starts_with("gp-") && hashed.len() == 19, "{hashed}");
        assert_eq!(hashed, list_resource_id("gp", "17/b 3"));
        assert_ne!(hashed, list_resource_id("gp", "17/b 4"));
    }

    #[test]
    fn an_episode_becomes_a_care_team_list_entry() {
        let row = SourceRecord {
            local_id: "H1".into(),
            key_worker: Some("Sam Key".into()),
            key_worker_contact: Some("sam@housing.example".into()),
            ..Default::default()
        };
        let episode = episode_of_row(None, "housing-H1", "housing", &row, Some("Tenancy sustainment"), "2026-01-02");
        let entry = list_entry_of_episode(&episode).expect("a list episode");
        assert_eq!(entry.organisation, OrgId::new("housing"));
        assert_eq!(entry.key_worker.as_deref(), Some("Sam Key"));
        assert_eq!(entry.service.as_deref(), Some("Tenancy sustainment"));
        assert_eq!(entry.email.as_deref(), Some("sam@housing.example"));
        assert_eq!(entry.phone, None);
        assert_eq!(entry.since.map(carecircle_care::model::format_date).as_deref(), Some("2026-01-02"));
        assert_eq!(entry.ended, None);
        assert!(list_entry_of_episode(&json!({"resourceType": "EpisodeOfCare", "status": "active"})).is_none());
    }
}
