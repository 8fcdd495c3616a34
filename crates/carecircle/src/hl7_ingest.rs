//! HL7 v2 ADT into the record: the [`MessageHandler`] that `serve --mllp` runs. It maps the
//! sending facility to its partner organisation, finds or creates the patient among that
//! partner's records, and creates or updates the visit's `Encounter`, every write through a
//! guarded session (access decision and audit log) as the partner's system.
//!
//! A message is answered `AA` only after the session's write returned, which is after the store
//! committed it and the audit log made its entries durable. Idempotency on (facility, MSH-10)
//! comes from the writes themselves, not from a marker: the Patient is a conditional create, the
//! Encounter a conditional update keyed by its visit number, and a message whose Encounter (or
//! merge) is already in the record as it would write it writes nothing; so a message sent again
//! after a lost ACK changes nothing.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use carecircle_auth::Scopes;
use carecircle_fhir::search::Handling;
use carecircle_hl7::fhir;
use carecircle_hl7::{AckCode, AdtEvent, AdtEventType, AdtOptions, ErrorCode, Location, Rejection};
use carecircle_mllp::{HandlerOutcome, Inbound, MessageHandler};
use carecircle_record::{new_id, Caller, Principal, PrincipalKind, Record, RecordError, RequestMeta, Session};
use carecircle_store::StoredResource;
use serde_json::{json, Value};

/// The identifier system under which a partner `Organization` names the HL7 v2 sending facility
/// (MSH-4 namespace id) of its systems.
pub const FACILITY_SYSTEM: &str = "urn:carecircle:hl7v2:facility";

/// How long a facility → partner lookup is reused (found or not), so a new partner registered
/// over HTTP is recognised within this time.
const PARTNER_CACHE_TTL: Duration = Duration::from_secs(10);

/// Messages about the same identifiers are processed one at a time across connections (an A01
/// and its A03 on two connections must not both create the Encounter); lock stripes keep that
/// cheap. Fixed, so the memory is bounded.
const N_LOCK_STRIPES: usize = 256;

/// Encounters re-pointed by one A40 at most; a merge with more is refused (`AE`) rather than
/// done in part.
const MAX_MERGED_ENCOUNTERS: usize = 500;

/// Why a message was not stored.
enum IngestError {
    /// The message cannot be processed as it is.
    Rejected(Rejection),
    /// The receiver failed; the sender should send it again.
    Failed(String),
}

impl From<RecordError> for IngestError {
    fn from(error: RecordError) -> Self {
        // Issues can quote the message's content: the log gets them, the sender a sentence.
        match error {
            RecordError::Forbidden(issue) => {
                tracing::warn!(reason = %issue.diagnostics, "hl7 ingest write refused by the access decision");
                IngestError::Rejected(Rejection {
                    ack_code: AckCode::Reject,
                    error_code: ErrorCode::ApplicationInternalError,
                    location: None,
                    reason: "the sending facility's partner organisation may not write this record \
                             (no agreement or registration permits it)"
                        .into(),
                })
            }
            RecordError::Invalid(issues) => {
                let paths: Vec<&str> = issues.iter().filter_map(|i| i.expression.first().map(String::as_str)).collect();
                tracing::warn!(?paths, "hl7 ingest content refused by the record");
                IngestError::Rejected(Rejection {
                    ack_code: AckCode::Error,
                    error_code: ErrorCode::DataTypeError,
                    location: None,
                    reason: "the record refused the Patient or Encounter made from this message as invalid".into(),
                })
            }
            other => {
                tracing::error!(error = %other, "hl7 ingest write failed");
                IngestError::Failed("the record could not store the message; send it again".into())
            }
        }
    }
}

/// The ADT handler of the MLLP listener.
pub struct AdtIngest {
    record: Record,
    options: AdtOptions,
    partners: Mutex<HashMap<String, (Instant, Option<String>)>>,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl AdtIngest {
    /// A handler writing into `record`, which must be guarded (sessions need the access
    /// decision and the audit log). Timestamps without an offset are read as UTC.
    pub fn new(record: Record) -> AdtIngest {
        AdtIngest {
            record,
            options: AdtOptions::default(),
            partners: Mutex::new(HashMap::new()),
            stripes: (0..N_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    /// The partner organisation (`Organization/{id}`) whose `identifier` says it sends as
    /// `facility`, or `None`. This is the server's own bookkeeping (like resolving a token's
    /// organisation), so it reads the record without a session.
    async fn partner_for(&self, facility: &str) -> Result<Option<String>, RecordError> {
        if let Some((at, partner)) = self.partners.lock().unwrap_or_else(|e| e.into_inner()).get(facility) {
            if at.elapsed() < PARTNER_CACHE_TTL {
                return Ok(partner.clone());
            }
        }
        let params = vec![
            ("identifier".to_string(), format!("{FACILITY_SYSTEM}|{}", escape_token(facility))),
            ("_count".to_string(), "2".to_string()),
        ];
        let result = self.record.search(Some("Organization"), &params, Handling::Strict).await?;
        let partner = match result.page.entries.as_slice() {
            [] => None,
            [one] => Some(format!("Organization/{}", one.id)),
            several => {
                // Ambiguous registrations are a governance mistake: refuse rather than guess.
                tracing::warn!(facility, n = several.len(), "several Organizations claim one HL7 sending facility");
                None
            }
        };
        self.partners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(facility.to_string(), (Instant::now(), partner.clone()));
        Ok(partner)
    }

    fn stripes_for(&self, keys: &[String]) -> Vec<usize> {
        let mut stripes: Vec<usize> = keys
            .iter()
            .map(|key| {
                let mut hasher = DefaultHasher::new();
                key.hash(&mut hasher);
                // The remainder is below N_LOCK_STRIPES, so it fits a usize.
                (hasher.finish() % N_LOCK_STRIPES as u64) as usize
            })
            .collect();
        // Always taken in ascending order, so two messages never wait on each other.
        stripes.sort_unstable();
        stripes.dedup();
        stripes
    }

    async fn ingest(&self, inbound: Inbound<'_>) -> Result<(), IngestError> {
        let event = AdtEvent::from_message(inbound.message, &self.options)
            .map_err(|error| IngestError::Rejected(error.to_rejection()))?;
        let facility = event.sending_facility.key().to_string();
        let partner = match self.partner_for(&facility).await? {
            Some(partner) => partner,
            None => {
                return Err(IngestError::Rejected(Rejection {
                    ack_code: AckCode::Reject,
                    error_code: ErrorCode::UnknownKeyIdentifier,
                    location: Some(Location::field("MSH", 1, 4)),
                    reason: format!(
                        "the sending facility (MSH-4) is not registered: no partner Organization has an \
                         identifier with system {FACILITY_SYSTEM} and this value"
                    ),
                }))
            }
        };
        let principal = Principal {
            kind: PrincipalKind::System,
            subject: format!("mllp:{facility}"),
            organization: Some(partner.clone()),
            role: None,
            can_break_glass: false,
            purpose: "TREAT".into(),
            reason: None,
            // A constant, valid scope string: parsing cannot fail.
            scopes: Scopes::parse("system/*.cruds").unwrap_or_default(),
            token_id: String::new(),
        };
        let meta = RequestMeta {
            request_id: Some(format!("hl7v2:{facility}:{}", event.control_id)),
            client_address: Some(inbound.peer.ip().to_string()),
            query: None,
        };
        let session = self.record.session(&principal, meta)?;
        let caller = Caller { custodian: partner.clone() };

        let patient_identifiers = fhir::patient_identifiers(&event);
        let prior_identifiers: Vec<Value> =
            event.prior_identifiers.iter().map(|id| fhir::to_fhir_identifier(id, &event.sending_facility)).collect();
        let visit_identifier = visit_key(&event)?;
        let mut lock_keys: Vec<String> =
            patient_identifiers.iter().chain(&prior_identifiers).map(|i| format!("{partner}|{i}")).collect();
        if let Some(visit) = &visit_identifier {
            lock_keys.push(format!("{partner}|{visit}"));
        }
        let mut guards = Vec::new();
        for stripe in self.stripes_for(&lock_keys) {
            guards.push(self.stripes[stripe].lock().await);
        }

        let write = Ingest { session: &session, caller: &caller, partner: &partner, event: &event };
        match (event.event, visit_identifier) {
            (AdtEventType::Merge, _) => write.merge(&patient_identifiers, &prior_identifiers).await,
            (_, Some(visit)) => write.visit(&patient_identifiers, &visit).await,
            (_, None) => Err(IngestError::Rejected(Rejection {
                ack_code: AckCode::Error,
                error_code: ErrorCode::RequiredFieldMissing,
                location: Some(Location::field("PV1", 1, 19)),
                reason: format!("{} needs the visit number (PV1-19) to find the visit it is about", event.event.code()),
            })),
        }
    }
}

impl MessageHandler for AdtIngest {
    async fn handle(&self, inbound: Inbound<'_>) -> HandlerOutcome {
        match self.ingest(inbound).await {
            Ok(()) => HandlerOutcome::Stored,
            Err(IngestError::Rejected(rejection)) => HandlerOutcome::Rejected(rejection),
            Err(IngestError::Failed(reason)) => HandlerOutcome::Failed(reason),
        }
    }
}

/// The Encounter's business key: the visit number (PV1-19); for an A01 or A04 without one, an
/// identifier made from the message (facility and MSH-10), so a resent message finds the
/// Encounter it created. Other events need the visit number.
fn visit_key(event: &AdtEvent) -> Result<Option<Value>, IngestError> {
    if event.event == AdtEventType::Merge {
        return Ok(None);
    }
    if let Some(identifier) = fhir::visit_identifier(event) {
        return Ok(Some(identifier));
    }
    match event.event {
        AdtEventType::Admit | AdtEventType::Register => Ok(Some(json!({
            "use": "secondary",
            "system": format!("urn:carecircle:hl7v2:{}:message", urn_segment(event.sending_facility.key())),
            "value": event.control_id,
        }))),
        _ => Ok(None),
    }
}

/// One message's writes, as one partner's system.
struct Ingest<'a> {
    session: &'a Session<'a>,
    caller: &'a Caller,
    partner: &'a str,
    event: &'a AdtEvent,
}

impl Ingest<'_> {
    /// The patient a message is about among the partner's records, found by any of its
    /// identifiers; an active record is preferred over one retired by a merge.
    ///
    /// This is the one place that decides who a message is about: the person index (issue 4)
    /// will replace it, linking across partners.
    async fn find_patients(&self, identifiers: &[Value]) -> Result<Vec<StoredResource>, RecordError> {
        if identifiers.is_empty() {
            return Ok(Vec::new());
        }
        let params = vec![
            ("identifier".to_string(), token_list(identifiers)),
            ("_source".to_string(), self.partner.to_string()),
            ("_count".to_string(), "50".to_string()),
        ];
        let found = self.session.search(Some("Patient"), &params, Handling::Strict).await?;
        let mut patients = found.value.page.entries;
        patients.sort_by_key(|p| (!is_active(p), p.last_updated));
        Ok(patients)
    }

    /// A01, A02, A03, A04, A08, A11, A13: the Patient (created when unknown) and the
    /// Encounter of the visit, in one transaction.
    async fn visit(&self, patient_identifiers: &[Value], visit: &Value) -> Result<(), IngestError> {
        let patient = self.find_patients(patient_identifiers).await?.into_iter().next();
        let visit_token = token_list(std::slice::from_ref(visit));
        let params = vec![
            ("identifier".to_string(), visit_token.clone()),
            ("_source".to_string(), self.partner.to_string()),
            ("_count".to_string(), "2".to_string()),
        ];
        let existing = self.session.search(Some("Encounter"), &params, Handling::Strict).await?.value.page.entries;
        if existing.len() > 1 {
            return Err(IngestError::Rejected(Rejection {
                ack_code: AckCode::Error,
                error_code: ErrorCode::DuplicateKeyIdentifier,
                location: Some(Location::field("PV1", 1, 19)),
                reason: "several Encounters of this partner carry this visit number".into(),
            }));
        }
        let existing = existing.into_iter().next();

        let mut entries = Vec::new();
        let subject = match &patient {
            Some(patient) => format!("Patient/{}", patient.id),
            None => {
                let full_url = format!("urn:uuid:{}", new_id());
                entries.push(json!({
                    "fullUrl": full_url,
                    "resource": fhir::to_patient(self.event),
                    "request": {
                        "method": "POST",
                        "url": "Patient",
                        "ifNoneExist": format!(
                            "identifier={}&_source={}",
                            query_escape(&token_list(patient_identifiers)),
                            query_escape(self.partner)
                        ),
                    },
                }));
                full_url
            }
        };
        let Some(mut encounter) = fhir::to_encounter(self.event, &subject, self.partner) else {
            return Err(IngestError::Rejected(Rejection {
                ack_code: AckCode::Error,
                error_code: ErrorCode::SegmentSequenceError,
                location: None,
                reason: "the message has no visit (PV1)".into(),
            }));
        };
        if fhir::visit_identifier(self.event).is_none() {
            encounter["identifier"] = json!([visit]);
        }
        match &existing {
            Some(existing) => {
                let current = existing.json().unwrap_or(Value::Null);
                keep_from_current(&mut encounter, &current);
                if patient.is_some() && same_content(&encounter, &current) {
                    // Already recorded as this message would record it (a message sent again).
                    return Ok(());
                }
                encounter["id"] = Value::String(existing.id.clone());
                entries.push(json!({
                    "resource": encounter,
                    "request": { "method": "PUT", "url": format!("Encounter/{}", existing.id), "ifMatch": format!("W/\"{}\"", existing.version) },
                }));
            }
            None => entries.push(json!({
                "resource": encounter,
                "request": {
                    "method": "PUT",
                    "url": format!("Encounter?identifier={}&_source={}", query_escape(&visit_token), query_escape(self.partner)),
                },
            })),
        }
        self.commit(entries).await
    }

    /// A40: the prior patient records (MRG-1) are retired into the surviving one (PID-3).
    ///
    /// Each prior record the partner holds gets `active: false` and a `replaced-by` link to the
    /// survivor; the survivor gains the prior identifiers and a `replaces` link (so later
    /// messages under an old number find it); the partner's Encounters of a prior record are
    /// re-pointed to the survivor. The survivor is created from PID when the partner has none.
    /// Other partners' records are left alone: they are theirs to merge.
    async fn merge(&self, patient_identifiers: &[Value], prior_identifiers: &[Value]) -> Result<(), IngestError> {
        let survivor = self.find_patients(patient_identifiers).await?.into_iter().next();
        let survivor_id = survivor.as_ref().map(|s| s.id.clone());
        let priors: Vec<StoredResource> = self
            .find_patients(prior_identifiers)
            .await?
            .into_iter()
            .filter(|p| Some(&p.id) != survivor_id.as_ref())
            .collect();

        let mut entries = Vec::new();
        let survivor_reference = match &survivor {
            Some(survivor) => format!("Patient/{}", survivor.id),
            None => format!("urn:uuid:{}", new_id()),
        };
        let mut survivor_body = match &survivor {
            Some(survivor) => survivor.json().unwrap_or(Value::Null),
            None => fhir::to_patient(self.event),
        };
        let survivor_before = survivor_body.clone();
        for identifier in prior_identifiers {
            add_unique(&mut survivor_body, "identifier", identifier.clone());
        }
        for prior in &priors {
            let prior_reference = format!("Patient/{}", prior.id);
            add_unique(
                &mut survivor_body,
                "link",
                json!({ "other": { "reference": prior_reference }, "type": "replaces" }),
            );
            let mut prior_body = prior.json().unwrap_or(Value::Null);
            let before = prior_body.clone();
            prior_body["active"] = Value::Bool(false);
            add_unique(
                &mut prior_body,
                "link",
                json!({ "other": { "reference": survivor_reference }, "type": "replaced-by" }),
            );
            if prior_body != before {
                strip_meta(&mut prior_body);
                entries.push(json!({
                    "resource": prior_body,
                    "request": { "method": "PUT", "url": prior_reference, "ifMatch": format!("W/\"{}\"", prior.version) },
                }));
            }
            let params = vec![
                ("subject".to_string(), prior_reference.clone()),
                ("_source".to_string(), self.partner.to_string()),
                ("_count".to_string(), (MAX_MERGED_ENCOUNTERS + 1).to_string()),
            ];
            let encounters =
                self.session.search(Some("Encounter"), &params, Handling::Strict).await?.value.page.entries;
            if encounters.len() > MAX_MERGED_ENCOUNTERS {
                return Err(IngestError::Rejected(Rejection {
                    ack_code: AckCode::Error,
                    error_code: ErrorCode::ApplicationInternalError,
                    location: None,
                    reason: format!(
                        "the prior patient has more than {MAX_MERGED_ENCOUNTERS} Encounters; this merge needs an administrator"
                    ),
                }));
            }
            for encounter in encounters {
                let mut body = encounter.json().unwrap_or(Value::Null);
                body["subject"] = json!({ "reference": survivor_reference });
                strip_meta(&mut body);
                entries.push(json!({
                    "resource": body,
                    "request": { "method": "PUT", "url": format!("Encounter/{}", encounter.id), "ifMatch": format!("W/\"{}\"", encounter.version) },
                }));
            }
        }
        match &survivor {
            Some(survivor) if survivor_body != survivor_before => {
                strip_meta(&mut survivor_body);
                entries.push(json!({
                    "resource": survivor_body,
                    "request": { "method": "PUT", "url": format!("Patient/{}", survivor.id), "ifMatch": format!("W/\"{}\"", survivor.version) },
                }));
            }
            Some(_) => {}
            None => entries.push(json!({
                "fullUrl": survivor_reference,
                "resource": survivor_body,
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": format!(
                        "identifier={}&_source={}",
                        query_escape(&token_list(patient_identifiers)),
                        query_escape(self.partner)
                    ),
                },
            })),
        }
        if entries.is_empty() {
            return Ok(()); // merged already (a message sent again)
        }
        self.commit(entries).await
    }

    /// Writes the entries as one transaction through the session; returns once it is durable.
    async fn commit(&self, entries: Vec<Value>) -> Result<(), IngestError> {
        let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries });
        self.session.process_bundle(self.caller, bundle).await?;
        Ok(())
    }
}

fn is_active(patient: &StoredResource) -> bool {
    patient.json().and_then(|p| p.get("active").and_then(Value::as_bool)).unwrap_or(true)
}

/// Keeps what an event does not carry but an earlier one recorded: the start of the visit.
fn keep_from_current(encounter: &mut Value, current: &Value) {
    let start = current.pointer("/period/start").cloned();
    if let (Some(start), None) = (start, encounter.pointer("/period/start")) {
        match encounter.get_mut("period").and_then(Value::as_object_mut) {
            Some(period) => {
                period.insert("start".into(), start);
            }
            None => encounter["period"] = json!({ "start": start }),
        }
    }
}

/// Whether `new` says what `current` (a stored version) says, ignoring id and meta.
fn same_content(new: &Value, current: &Value) -> bool {
    let mut current = current.clone();
    strip_meta(&mut current);
    if let Some(object) = current.as_object_mut() {
        object.remove("id");
    }
    &current == new
}

fn strip_meta(resource: &mut Value) {
    if let Some(object) = resource.as_object_mut() {
        object.remove("meta");
    }
}

/// Appends `item` to the array `field` of `resource` unless an equal item is there.
fn add_unique(resource: &mut Value, field: &str, item: Value) {
    let Some(object) = resource.as_object_mut() else { return };
    let list = object.entry(field.to_string()).or_insert_with(|| Value::Array(Vec::new()));
    if let Some(items) = list.as_array_mut() {
        if !items.contains(&item) {
            items.push(item);
        }
    }
}

/// `system|value,system|value` for a token search, each part escaped.
fn token_list(identifiers: &[Value]) -> String {
    identifiers
        .iter()
        .map(|i| {
            let system = i.get("system").and_then(Value::as_str).unwrap_or_default();
            let value = i.get("value").and_then(Value::as_str).unwrap_or_default();
            format!("{}|{}", escape_token(system), escape_token(value))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Escapes FHIR search's special characters (`\`, `,`, `|`, `$`) in a value.
fn escape_token(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | ',' | '|' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Percent-encodes a query-string value (everything but unreserved characters).
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URN segment: unreserved characters kept, the rest percent-encoded (as carecircle-hl7 does).
fn urn_segment(text: &str) -> String {
    let encoded = query_escape(text).replace('~', "%7E");
    if encoded.is_empty() {
        "-".into()
    } else {
        encoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lists_escape_search_syntax_and_queries_round_trip() {
        let ids = [json!({"system": "urn:a", "value": "1,2|3"}), json!({"system": "urn:b", "value": "x$y\\"})];
        let list = token_list(&ids);
        assert_eq!(list, r"urn:a|1\,2\|3,urn:b|x\$y\\");
        let query = format!("identifier={}", query_escape(&list));
        let parsed = carecircle_record::parse_query_string(&query);
        assert_eq!(parsed, vec![("identifier".to_string(), list)]);
    }

    #[test]
    fn the_visit_start_survives_an_event_without_it() {
        let mut encounter = json!({"resourceType": "Encounter", "status": "entered-in-error"});
        keep_from_current(&mut encounter, &json!({"period": {"start": "2024-03-01T10:00:00Z"}}));
        assert_eq!(encounter["period"]["start"], "2024-03-01T10:00:00Z");
        let mut ended = json!({"period": {"end": "2024-03-02"}});
        keep_from_current(&mut ended, &json!({"period": {"start": "2024-03-01"}}));
        assert_eq!(ended["period"], json!({"end": "2024-03-02", "start": "2024-03-01"}));
    }

    #[test]
    fn same_content_ignores_id_and_meta_only() {
        let new = json!({"resourceType": "Encounter", "status": "finished"});
        let stored = json!({"resourceType": "Encounter", "id": "e1", "meta": {"versionId": "2"}, "status": "finished"});
        assert!(same_content(&new, &stored));
        let other = json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress"});
        assert!(!same_content(&new, &other));
    }
}
