//! HL7 v2 ADT into the record: the [`MessageHandler`] that `serve --mllp` runs. It maps the
//! sending facility to its partner organisation, finds or creates the patient among that
//! partner's records, and creates or updates the visit's `Encounter`, every write through a
//! guarded session (access decision and audit log) as the partner's system.
//!
//! Group commit: connection tasks read each message (ADT event, partner, identifiers) and hand it
//! to one writer task. The writer takes every message waiting, up to [`MAX_BATCH`], looks up
//! their patients and visits with one search each, and writes all their Patients and Encounters
//! as one transaction (one store commit, one audit append) before answering any of them. A
//! message that touches an identifier or visit of an earlier waiting message waits for the next
//! round, so messages about the same patient or visit are applied in the order they arrived. If
//! the combined transaction fails, each message of it is retried alone (its own session and
//! transaction), so one bad message is answered `AE`/`AR` without failing the others. An A40
//! merge is always written alone.
//!
//! A message is answered `AA` only after the session's write returned, which is after the store
//! committed it and the audit log made its entries durable. Idempotency on (facility, MSH-10)
//! comes from the writes themselves, not from a marker: the lookup before the write finds the
//! Patient by its identifiers and the Encounter by its visit number (the transaction then
//! creates only what the lookup did not find, without searching again), and a message whose
//! Encounter (or merge) is already in the record as it would write it writes nothing; so a
//! message sent again after a lost ACK changes nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carecircle_auth::Scopes;
use carecircle_fhir::search::Handling;
use carecircle_hl7::fhir;
use carecircle_hl7::{AckCode, AdtEvent, AdtEventType, AdtOptions, ErrorCode, Location, Rejection};
use carecircle_mllp::{HandlerOutcome, Inbound, MessageHandler, PendingOutcome};
use carecircle_record::{new_id, Caller, Principal, PrincipalKind, Record, RecordError, RequestMeta, Session};
use carecircle_store::StoredResource;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// The identifier system under which a partner `Organization` names the HL7 v2 sending facility
/// (MSH-4 namespace id) of its systems.
pub const FACILITY_SYSTEM: &str = "urn:carecircle:hl7v2:facility";

/// How long a facility → partner lookup is reused (found or not), so a new partner registered
/// over HTTP is recognised within this time.
const PARTNER_CACHE_TTL: Duration = Duration::from_secs(10);

/// The most messages written in one transaction. Their patients and visits are looked up with
/// one search each, whose page holds at most `carecircle_fhir::search::MAX_PAGE_SIZE` (1,000)
/// matches: with up to two patient records per message that stays within one page.
pub const MAX_BATCH: usize = 400;

/// Messages waiting for the writer at most; connection tasks wait (backpressure) beyond it.
const QUEUE_CAPACITY: usize = 4096;

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
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
}

/// What the connection tasks and the writer share.
struct Shared {
    record: Record,
    options: AdtOptions,
    partners: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

/// One message, read and resolved to its partner, waiting for the writer.
struct Job {
    event: AdtEvent,
    facility: String,
    partner: String,
    /// The sender's address and port: one connection.
    peer: SocketAddr,
    patient_identifiers: Vec<Value>,
    prior_identifiers: Vec<Value>,
    /// The visit's business key; `None` only for an A40.
    visit: Option<Value>,
    /// `{partner}|{system}|{value}` of every identifier and visit number the message touches.
    keys: Vec<String>,
    answer: oneshot::Sender<Result<(), IngestError>>,
}

impl Job {
    fn is_merge(&self) -> bool {
        self.event.event == AdtEventType::Merge
    }

    fn reply(self, result: Result<(), IngestError>) {
        // The connection may be gone (closed by the peer); its message was handled all the same.
        let _ = self.answer.send(result);
    }
}

impl AdtIngest {
    /// A handler writing into `record`, which must be guarded (sessions need the access
    /// decision and the audit log). Timestamps without an offset are read as UTC. Starts the
    /// writer task, so it must be called inside a Tokio runtime; the writer stops once the
    /// handler is dropped and the messages in hand are written.
    pub fn new(record: Record) -> AdtIngest {
        let shared = Arc::new(Shared { record, options: AdtOptions::default(), partners: Mutex::new(HashMap::new()) });
        let (jobs, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run_writer(shared.clone(), receiver));
        AdtIngest { shared, jobs }
    }

    /// Reads the message into a [`Job`] and queues it for the writer (in call order); the
    /// returned future resolves once the writer has stored or refused it.
    async fn submit(&self, inbound: Inbound<'_>) -> Result<oneshot::Receiver<Result<(), IngestError>>, IngestError> {
        let (job, answered) = self.shared.read_job(inbound).await?;
        self.jobs.send(job).await.map_err(|_| writer_stopped())?;
        Ok(answered)
    }
}

fn writer_stopped() -> IngestError {
    IngestError::Failed("the receiver is not storing messages now; send it again".into())
}

fn to_outcome(result: Result<(), IngestError>) -> HandlerOutcome {
    match result {
        Ok(()) => HandlerOutcome::Stored,
        Err(IngestError::Rejected(rejection)) => HandlerOutcome::Rejected(rejection),
        Err(IngestError::Failed(reason)) => HandlerOutcome::Failed(reason),
    }
}

/// The outcome once the writer answers; a dropped answer means the writer failed (a panic)
/// before answering, and the sender is told to send the message again.
async fn answer_of(answered: oneshot::Receiver<Result<(), IngestError>>) -> HandlerOutcome {
    to_outcome(answered.await.unwrap_or_else(|_| Err(writer_stopped())))
}

impl MessageHandler for AdtIngest {
    async fn handle(&self, inbound: Inbound<'_>) -> HandlerOutcome {
        match self.submit(inbound).await {
            Ok(answered) => answer_of(answered).await,
            Err(error) => to_outcome(Err(error)),
        }
    }

    /// Queues the message and returns at once, so a pipelining sender's next message joins the
    /// same round; the writer keeps each connection's messages in order.
    async fn accept(&self, inbound: Inbound<'_>) -> PendingOutcome {
        match self.submit(inbound).await {
            Ok(answered) => Box::pin(answer_of(answered)),
            Err(error) => Box::pin(std::future::ready(to_outcome(Err(error)))),
        }
    }
}

/// The writer: takes every waiting message (a round), writes the round, answers, repeats. While
/// a round commits, the next one queues up, so the batch grows with the load (group commit)
/// and a lone message is written at once.
async fn run_writer(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Job>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match receiver.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while waiting.len() < QUEUE_CAPACITY {
            match receiver.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => break,
            }
        }
        let round = take_round(&mut waiting);
        // Its own task, so that a panic fails this round's messages (their senders retry)
        // without stopping the writer.
        let shared = shared.clone();
        if let Err(error) = tokio::spawn(async move { shared.write_round(round).await }).await {
            tracing::error!(%error, "hl7 ingest round failed; its messages are answered AE");
        }
    }
}

/// The messages of the next round, taken from the front of `waiting` in order: visits whose
/// identifiers and visit numbers no earlier waiting message touches, up to [`MAX_BATCH`]; or an
/// A40 alone. A message left behind keeps its identifiers and its connection reserved, so no
/// later message about the same patient or visit, and no later message of the same
/// connection, overtakes it.
fn take_round(waiting: &mut VecDeque<Job>) -> Vec<Job> {
    let mut reserved: HashSet<String> = HashSet::new();
    let mut held_connections: HashSet<SocketAddr> = HashSet::new();
    let mut round: Vec<Job> = Vec::new();
    let mut left: VecDeque<Job> = VecDeque::new();
    while let Some(job) = waiting.pop_front() {
        let clashes = held_connections.contains(&job.peer) || job.keys.iter().any(|key| reserved.contains(key));
        reserved.extend(job.keys.iter().cloned());
        let takes = if job.is_merge() {
            round.is_empty() && !clashes
        } else {
            !clashes && round.len() < MAX_BATCH && !round.first().is_some_and(Job::is_merge)
        };
        if takes {
            let merge = job.is_merge();
            round.push(job);
            if merge {
                break;
            }
        } else {
            held_connections.insert(job.peer);
            left.push_back(job);
        }
    }
    left.append(waiting);
    *waiting = left;
    round
}

impl Shared {
    /// The CPU part of a message, done on its connection's task: the ADT event, the partner,
    /// the identifiers, and the checks that need no storage.
    #[allow(clippy::type_complexity)]
    async fn read_job(
        &self,
        inbound: Inbound<'_>,
    ) -> Result<(Job, oneshot::Receiver<Result<(), IngestError>>), IngestError> {
        let event = AdtEvent::from_message(inbound.message, &self.options)
            .map_err(|error| IngestError::Rejected(error.to_rejection()))?;
        let facility = event.sending_facility.key().to_string();
        let Some(partner) = self.partner_for(&facility).await? else {
            return Err(IngestError::Rejected(Rejection {
                ack_code: AckCode::Reject,
                error_code: ErrorCode::UnknownKeyIdentifier,
                location: Some(Location::field("MSH", 1, 4)),
                reason: format!(
                    "the sending facility (MSH-4) is not registered: no partner Organization has an \
                     identifier with system {FACILITY_SYSTEM} and this value"
                ),
            }));
        };
        let patient_identifiers = fhir::patient_identifiers(&event);
        let prior_identifiers: Vec<Value> =
            event.prior_identifiers.iter().map(|id| fhir::to_fhir_identifier(id, &event.sending_facility)).collect();
        let visit = visit_key(&event);
        if visit.is_none() && event.event != AdtEventType::Merge {
            return Err(IngestError::Rejected(Rejection {
                ack_code: AckCode::Error,
                error_code: ErrorCode::RequiredFieldMissing,
                location: Some(Location::field("PV1", 1, 19)),
                reason: format!("{} needs the visit number (PV1-19) to find the visit it is about", event.event.code()),
            }));
        }
        let keys = patient_identifiers
            .iter()
            .chain(&prior_identifiers)
            .chain(visit.iter())
            .map(|identifier| format!("{partner}|{}", token_list(std::slice::from_ref(identifier))))
            .collect();
        let (answer, answered) = oneshot::channel();
        let job = Job {
            event,
            facility,
            partner,
            peer: inbound.peer,
            patient_identifiers,
            prior_identifiers,
            visit,
            keys,
            answer,
        };
        Ok((job, answered))
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

    /// Writes one round: an A40 alone; visits grouped by partner and sender address (one
    /// principal and client address per audited session), each group in one transaction.
    async fn write_round(&self, round: Vec<Job>) {
        let mut groups: Vec<Vec<Job>> = Vec::new();
        for job in round {
            let group = groups.iter_mut().find(|g| {
                !job.is_merge() && g[0].partner == job.partner && g[0].peer.ip() == job.peer.ip() && !g[0].is_merge()
            });
            match group {
                Some(group) => group.push(job),
                None => groups.push(vec![job]),
            }
        }
        for group in groups {
            let retry = if group.len() > 1 { self.write_batch(group).await } else { group };
            for job in retry {
                let result = self.write_alone(&job).await;
                job.reply(result);
            }
        }
    }

    /// One message in its own session and transaction (audited under its own request id).
    async fn write_alone(&self, job: &Job) -> Result<(), IngestError> {
        let principal = system_principal(&job.facility, &job.partner);
        let meta = RequestMeta {
            request_id: Some(format!("hl7v2:{}:{}", job.facility, job.event.control_id)),
            client_address: Some(job.peer.ip().to_string()),
            query: None,
        };
        let session = self.record.session(&principal, meta)?;
        let caller = Caller { custodian: job.partner.clone() };
        let write = Ingest { session: &session, caller: &caller, partner: &job.partner, event: &job.event };
        match &job.visit {
            _ if job.is_merge() => write.merge(&job.patient_identifiers, &job.prior_identifiers).await,
            Some(visit) => write.visit(&job.patient_identifiers, visit).await,
            // `ingest` refuses a visit event without a visit key before it reaches the writer.
            None => Err(IngestError::Failed("the message has no visit key".into())),
        }
    }

    /// Visits of one partner and sender in one transaction: one Patient search and one Encounter
    /// search for all of them, then one transaction Bundle. Messages refused on their own
    /// content are answered at once; the others are answered `AA` once the transaction is
    /// durable. Returns the messages to retry alone: all of the transaction's when it failed.
    async fn write_batch(&self, jobs: Vec<Job>) -> Vec<Job> {
        let (facility, partner, peer) = (jobs[0].facility.clone(), jobs[0].partner.clone(), jobs[0].peer);
        let batch_id = new_id();
        // The audit entries of a batch carry its request id; this line ties it to the messages.
        tracing::info!(
            batch = %batch_id,
            facility = %facility,
            n = jobs.len(),
            control_ids = %jobs.iter().map(|j| j.event.control_id.as_str()).collect::<Vec<_>>().join(","),
            "hl7 ingest batch"
        );
        let principal = system_principal(&facility, &partner);
        let meta = RequestMeta {
            request_id: Some(format!("hl7v2:{facility}:batch:{batch_id}")),
            client_address: Some(peer.ip().to_string()),
            query: None,
        };
        let Ok(session) = self.record.session(&principal, meta) else { return jobs };
        let caller = Caller { custodian: partner.clone() };

        let patient_tokens: Vec<Value> = unique(jobs.iter().flat_map(|j| j.patient_identifiers.iter()));
        let visit_tokens: Vec<Value> = unique(jobs.iter().filter_map(|j| j.visit.as_ref()));
        // The Patients first, then the Encounters: the access decision reads the facts of the
        // persons the Patients found (consents, care teams) once, and the Encounter search,
        // about the same persons, finds them cached instead of reading them again.
        let started = Instant::now();
        let found = match search_chunked(&session, "Patient", &patient_tokens, &partner).await {
            Ok(Some(patients)) => match search_chunked(&session, "Encounter", &visit_tokens, &partner).await {
                Ok(Some(encounters)) => Ok(Some((patients, encounters))),
                Ok(None) => Ok(None),
                Err(error) => Err(error),
            },
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        };
        let looked_up = started.elapsed();
        let (patients, encounters) = match found {
            Ok(Some(found)) => found,
            Ok(None) => return jobs, // more matches than one page: each message looks up its own
            Err(error) => {
                tracing::warn!(
                    kind = record_error_kind(&error),
                    "hl7 ingest batch lookup failed; its messages are retried alone"
                );
                return jobs;
            }
        };
        // Each body read once: the identifiers to match on, and whether a Patient is active.
        let mut patients: Vec<(StoredResource, Vec<IdentifierPair>, bool)> = patients
            .into_iter()
            .map(|p| {
                let body = p.json().unwrap_or(Value::Null);
                let (ids, active) = (body_identifier_pairs(&body), body_is_active(&body));
                (p, ids, active)
            })
            .collect();
        patients.sort_by_key(|(p, _, active)| (!active, p.last_updated));
        let encounter_ids: Vec<Vec<(String, String)>> = encounters.iter().map(identifier_pairs).collect();

        let mut entries = Vec::new();
        let mut written = Vec::new();
        for job in jobs {
            let Some(visit) = &job.visit else {
                written.push(job); // not reached: merges are written alone
                continue;
            };
            let wanted: Vec<(String, String)> = job.patient_identifiers.iter().map(identifier_pair).collect();
            let patient = patients.iter().find(|(_, ids, _)| ids.iter().any(|id| wanted.contains(id)));
            let visit_id = identifier_pair(visit);
            let existing: Vec<StoredResource> = encounters
                .iter()
                .zip(&encounter_ids)
                .filter(|(_, ids)| ids.contains(&visit_id))
                .map(|(e, _)| e.clone())
                .collect();
            match visit_entries(&job.event, &partner, patient.map(|(p, _, _)| p), &existing, visit) {
                Ok(mut made) => {
                    entries.append(&mut made);
                    written.push(job);
                }
                Err(error) => job.reply(Err(error)),
            }
        }
        let n_entries = entries.len();
        let built = started.elapsed();
        if !entries.is_empty() {
            let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries });
            let committed = session.process_bundle(&caller, bundle).await;
            tracing::debug!(
                batch = %batch_id,
                n_entries,
                lookup_ms = looked_up.as_secs_f64() * 1e3,
                build_ms = (built - looked_up).as_secs_f64() * 1e3,
                commit_ms = (started.elapsed() - built).as_secs_f64() * 1e3,
                "hl7 ingest batch timings"
            );
            if let Err(error) = committed {
                // Logged by kind only: issues can quote content. Each message is retried alone.
                tracing::warn!(
                    batch = %batch_id,
                    kind = record_error_kind(&error),
                    "hl7 ingest batch transaction failed; its messages are retried alone"
                );
                return written;
            }
        }
        for job in written {
            job.reply(Ok(()));
        }
        Vec::new()
    }
}

/// The partner's system, as which every message of `facility` reads and writes.
fn system_principal(facility: &str, partner: &str) -> Principal {
    Principal {
        kind: PrincipalKind::System,
        subject: format!("mllp:{facility}"),
        organization: Some(partner.to_string()),
        role: None,
        can_break_glass: false,
        purpose: "TREAT".into(),
        reason: None,
        // A constant, valid scope string: parsing cannot fail.
        scopes: Scopes::parse("system/*.cruds").unwrap_or_default(),
        token_id: String::new(),
    }
}

/// Every resource of `resource_type` of the partner carrying one of `identifiers`, through the
/// session (access-checked, audited); `None` when they do not fit one page.
async fn search_every(
    session: &Session<'_>,
    resource_type: &str,
    identifiers: &[Value],
    partner: &str,
) -> Result<Option<Vec<StoredResource>>, RecordError> {
    if identifiers.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let page_size = carecircle_fhir::search::MAX_PAGE_SIZE;
    let params = vec![
        ("identifier".to_string(), token_list(identifiers)),
        ("_source".to_string(), partner.to_string()),
        ("_count".to_string(), page_size.to_string()),
    ];
    let found = session.search(Some(resource_type), &params, Handling::Strict).await?;
    // A page with room left holds every match (kept or withheld by the access decision).
    if found.value.page.entries.len() + found.withheld >= page_size {
        return Ok(None);
    }
    Ok(Some(found.value.page.entries))
}

/// Identifiers looked up by one search of a batch; the chunks of a batch run concurrently (the
/// access decision reads the persons' facts of one search a few at a time).
const LOOKUP_CHUNK: usize = 64;

/// [`search_every`] over chunks of `identifiers`, run concurrently; `None` if any chunk's
/// matches do not fit one page.
async fn search_chunked(
    session: &Session<'_>,
    resource_type: &str,
    identifiers: &[Value],
    partner: &str,
) -> Result<Option<Vec<StoredResource>>, RecordError> {
    let searches = identifiers.chunks(LOOKUP_CHUNK).map(|chunk| search_every(session, resource_type, chunk, partner));
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for chunk in futures_util::future::try_join_all(searches).await? {
        let Some(chunk) = chunk else { return Ok(None) };
        // A resource carrying identifiers of two chunks is found twice.
        found.extend(chunk.into_iter().filter(|r| seen.insert(r.id.clone())));
    }
    Ok(Some(found))
}

/// `(system, value)` of an identifier.
type IdentifierPair = (String, String);

/// `(system, value)` of an identifier, as token search matches it (exactly).
fn identifier_pair(identifier: &Value) -> (String, String) {
    let text = |field: &str| identifier.get(field).and_then(Value::as_str).unwrap_or_default().to_string();
    (text("system"), text("value"))
}

/// `(system, value)` of every identifier of a stored resource.
fn identifier_pairs(resource: &StoredResource) -> Vec<(String, String)> {
    body_identifier_pairs(&resource.json().unwrap_or(Value::Null))
}

/// `(system, value)` of every identifier of a resource body.
fn body_identifier_pairs(body: &Value) -> Vec<(String, String)> {
    body.get("identifier")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().map(identifier_pair).collect())
        .unwrap_or_default()
}

/// The identifiers in order, each once (by system and value).
fn unique<'a>(identifiers: impl Iterator<Item = &'a Value>) -> Vec<Value> {
    let mut seen = HashSet::new();
    identifiers.filter(|i| seen.insert(identifier_pair(i))).cloned().collect()
}

/// The kind of a record error, for logs that must not quote content.
fn record_error_kind(error: &RecordError) -> &'static str {
    match error {
        RecordError::Invalid(_) => "invalid",
        RecordError::NotFound(_) => "not found",
        RecordError::Gone(_) => "gone",
        RecordError::PreconditionFailed(_) => "precondition failed",
        RecordError::NotSupported(_) => "not supported",
        RecordError::Forbidden(_) => "forbidden",
        RecordError::Internal(_) => "internal",
    }
}

/// The Encounter's business key: the visit number (PV1-19); for an A01 or A04 without one, an
/// identifier made from the message (facility and MSH-10), so a resent message finds the
/// Encounter it created. Other events need the visit number.
fn visit_key(event: &AdtEvent) -> Option<Value> {
    if event.event == AdtEventType::Merge {
        return None;
    }
    if let Some(identifier) = fhir::visit_identifier(event) {
        return Some(identifier);
    }
    match event.event {
        AdtEventType::Admit | AdtEventType::Register => Some(json!({
            "use": "secondary",
            "system": format!("urn:carecircle:hl7v2:{}:message", urn_segment(event.sending_facility.key())),
            "value": event.control_id,
        })),
        _ => None,
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
        patients.sort_by_cached_key(|p| (!p.json().as_ref().is_none_or(body_is_active), p.last_updated));
        Ok(patients)
    }

    /// A01, A02, A03, A04, A08, A11, A13: the Patient (created when unknown) and the
    /// Encounter of the visit, in one transaction.
    async fn visit(&self, patient_identifiers: &[Value], visit: &Value) -> Result<(), IngestError> {
        let patient = self.find_patients(patient_identifiers).await?.into_iter().next();
        let params = vec![
            ("identifier".to_string(), token_list(std::slice::from_ref(visit))),
            ("_source".to_string(), self.partner.to_string()),
            ("_count".to_string(), "2".to_string()),
        ];
        let existing = self.session.search(Some("Encounter"), &params, Handling::Strict).await?.value.page.entries;
        let entries = visit_entries(self.event, self.partner, patient.as_ref(), &existing, visit)?;
        if entries.is_empty() {
            return Ok(()); // recorded already (a message sent again)
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

/// The transaction entries of one visit message: the Patient when the partner has none (a
/// create, referenced by its `fullUrl`) and the Encounter, an update of `existing` (the
/// partner's Encounters with the visit number) or a create. Empty when the record already says
/// what the message says (a message sent again).
///
/// `patient` and `existing` come from the lookup made just before, so the creates carry no
/// condition (a conditional create would search again inside the transaction, one search per
/// entry): the writer task is the only MLLP writer and a round never holds two messages
/// touching one identifier or visit, so nothing the lookup missed can appear in between except
/// an HTTP write of the same identifiers in those milliseconds, which a conditional create
/// (its search is not part of the store's transaction either) would not exclude.
fn visit_entries(
    event: &AdtEvent,
    partner: &str,
    patient: Option<&StoredResource>,
    existing: &[StoredResource],
    visit: &Value,
) -> Result<Vec<Value>, IngestError> {
    if existing.len() > 1 {
        return Err(IngestError::Rejected(Rejection {
            ack_code: AckCode::Error,
            error_code: ErrorCode::DuplicateKeyIdentifier,
            location: Some(Location::field("PV1", 1, 19)),
            reason: "several Encounters of this partner carry this visit number".into(),
        }));
    }
    let existing = existing.first();
    let mut entries = Vec::new();
    let subject = match patient {
        Some(patient) => format!("Patient/{}", patient.id),
        None => {
            let full_url = format!("urn:uuid:{}", new_id());
            entries.push(json!({
                "fullUrl": full_url,
                "resource": fhir::to_patient(event),
                "request": { "method": "POST", "url": "Patient" },
            }));
            full_url
        }
    };
    let Some(mut encounter) = fhir::to_encounter(event, &subject, partner) else {
        return Err(IngestError::Rejected(Rejection {
            ack_code: AckCode::Error,
            error_code: ErrorCode::SegmentSequenceError,
            location: None,
            reason: "the message has no visit (PV1)".into(),
        }));
    };
    if fhir::visit_identifier(event).is_none() {
        encounter["identifier"] = json!([visit]);
    }
    match existing {
        Some(existing) => {
            let current = existing.json().unwrap_or(Value::Null);
            keep_from_current(&mut encounter, &current);
            if patient.is_some() && same_content(&encounter, &current) {
                return Ok(Vec::new());
            }
            encounter["id"] = Value::String(existing.id.clone());
            entries.push(json!({
                "resource": encounter,
                "request": { "method": "PUT", "url": format!("Encounter/{}", existing.id), "ifMatch": format!("W/\"{}\"", existing.version) },
            }));
        }
        None => entries.push(json!({ "resource": encounter, "request": { "method": "POST", "url": "Encounter" } })),
    }
    Ok(entries)
}

/// Whether a Patient body is active (absent `active` counts as active).
fn body_is_active(patient: &Value) -> bool {
    patient.get("active").and_then(Value::as_bool).unwrap_or(true)
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
    use std::net::SocketAddr;
    use std::path::Path;

    use carecircle_record::Caller as RecordCaller;
    use carecircle_store::Store;

    const PARTNER: &str = "Organization/org-rxx";

    /// A guarded record (SQLite store, audit log, access decision) in `dir` with the partner
    /// registered as sending facility RXX01.
    async fn guarded_record(dir: &Path) -> Record {
        let store: Arc<dyn Store> = Arc::new(carecircle_store_sqlite::SqliteStore::open_dir(dir).unwrap());
        store.migrate().await.unwrap();
        let organization = json!({"resourceType": "Organization", "id": "org-rxx", "name": "Riverside Hospital",
            "identifier": [{"system": FACILITY_SYSTEM, "value": "RXX01"}],
            "type": [{"coding": [{"system": "https://carecircle.example.org/fhir/CodeSystem/partner-sector", "code": "acute"}]}]});
        let imported = Record::new(store.clone())
            .import(&RecordCaller { custodian: PARTNER.into() }, vec![organization])
            .await
            .unwrap();
        assert!(imported[0].is_ok());
        let storage = crate::StorageArgs { data_dir: dir.to_path_buf(), database: None, key_dir: None };
        crate::guard::guarded_record(
            store,
            &storage,
            &dir.join("keys"),
            "test/audit",
            crate::guard::ConsentScheme::OptOut,
            "Organization/home",
        )
        .await
        .unwrap()
    }

    fn shared(record: Record) -> Shared {
        Shared { record, options: AdtOptions::default(), partners: Mutex::new(HashMap::new()) }
    }

    fn adt(event: &str, control_id: &str, mrn: &str, visit: &str, family: &str) -> String {
        format!(
            "MSH|^~\\&|PAS|RXX01|CARECIRCLE|CC|20240301101502||ADT^{event}^ADT_A01|{control_id}|P|2.5.1\r\
EVN|{event}|20240301101500\r\
PID|1||{mrn}^^^RXX^MR||{family}^JOHN^^^MR^^L||19700101|M\r\
PV1|1|I|WARD1^BAY2^1^RXX01||||||||||||||||{visit}^^^RXX^VN\r"
        )
    }

    fn merge(control_id: &str, mrn: &str, prior: &str) -> String {
        format!(
            "MSH|^~\\&|PAS|RXX01|CC|CC|20240302101502||ADT^A40^ADT_A39|{control_id}|P|2.5.1\r\
EVN|A40|20240302101500\r\
PID|1||{mrn}^^^RXX^MR||SMITH^JOHN^^^MR^^L||19700101|M\r\
MRG|{prior}^^^RXX^MR\r"
        )
    }

    type Answer = oneshot::Receiver<Result<(), IngestError>>;

    /// The message as connection `port` of 127.0.0.1 would hand it over.
    async fn job_from(shared: &Shared, text: &str, port: u16) -> (Job, Answer) {
        let message = carecircle_hl7::parse_message(text.as_bytes()).unwrap();
        let peer = SocketAddr::from(([127, 0, 0, 1], port));
        let inbound = Inbound { raw: text.as_bytes(), message: &message, peer };
        match shared.read_job(inbound).await {
            Ok(read) => read,
            Err(_) => panic!("the message was refused before storage"),
        }
    }

    async fn job(shared: &Shared, text: &str) -> (Job, Answer) {
        job_from(shared, text, 40000).await
    }

    fn control_ids(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|j| j.event.control_id.as_str()).collect()
    }

    /// Each message from its own connection.
    async fn jobs(shared: &Shared, texts: &[String]) -> VecDeque<Job> {
        let mut waiting = VecDeque::new();
        for (port, text) in (41000..).zip(texts) {
            waiting.push_back(job_from(shared, text, port).await.0);
        }
        waiting
    }

    fn rounds(mut waiting: VecDeque<Job>) -> Vec<Vec<String>> {
        std::iter::from_fn(|| {
            let round = take_round(&mut waiting);
            (!round.is_empty()).then(|| round.iter().map(|j| j.event.control_id.clone()).collect())
        })
        .collect()
    }

    #[tokio::test]
    async fn rounds_keep_messages_about_one_patient_or_visit_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(guarded_record(dir.path()).await);
        let waiting = jobs(
            &shared,
            &[
                adt("A01", "1", "P1", "V1", "SMITH"),
                adt("A01", "2", "P2", "V2", "JONES"),
                adt("A03", "3", "P1", "V1", "SMITH"), // same patient and visit as 1: next round
                adt("A01", "4", "P3", "V3", "BROWN"),
                adt("A08", "5", "P9", "V3", "BROWN"), // same visit as 4 (other patient number)
                merge("6", "P4", "P2"),               // an A40 is written alone
                adt("A01", "7", "P2", "V7", "JONES"), // behind the merge that touches P2
                adt("A01", "8", "P8", "V8", "GREEN"),
            ],
        )
        .await;
        assert_eq!(rounds(waiting), vec![vec!["1", "2", "4", "8"], vec!["3", "5"], vec!["6"], vec!["7"]]);
    }

    #[tokio::test]
    async fn a_connection_s_pipelined_messages_never_overtake_one_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(guarded_record(dir.path()).await);
        let mut waiting = VecDeque::new();
        for (text, port) in [
            (adt("A01", "1", "P1", "V1", "SMITH"), 1),
            (adt("A01", "2", "P2", "V2", "JONES"), 2), // connection 2's messages in one round
            (adt("A01", "3", "P3", "V3", "BROWN"), 2),
            (adt("A03", "4", "P1", "V1", "SMITH"), 2), // waits for message 1's round…
            (adt("A01", "5", "P5", "V5", "GREEN"), 2), // …and so does the rest of connection 2
            (adt("A01", "6", "P6", "V6", "WHITE"), 3),
        ] {
            waiting.push_back(job_from(&shared, &text, port).await.0);
        }
        assert_eq!(rounds(waiting), vec![vec!["1", "2", "3", "6"], vec!["4", "5"]]);
    }

    #[tokio::test]
    async fn a_round_is_capped_at_max_batch_messages() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(guarded_record(dir.path()).await);
        let texts: Vec<String> = (0..MAX_BATCH + 3)
            .map(|i| adt("A01", &i.to_string(), &format!("P{i}"), &format!("V{i}"), "SMITH"))
            .collect();
        let mut waiting = jobs(&shared, &texts).await;
        assert_eq!(take_round(&mut waiting).len(), MAX_BATCH);
        let rest: Vec<String> = (MAX_BATCH..MAX_BATCH + 3).map(|i| i.to_string()).collect();
        assert_eq!(control_ids(&take_round(&mut waiting)), rest);
    }

    async fn encounters_of(record: &Record, visit: &str) -> Vec<Value> {
        let params = vec![("identifier".to_string(), format!("urn:carecircle:hl7v2:RXX01:RXX|{visit}"))];
        let found = record.search(Some("Encounter"), &params, Handling::Strict).await.unwrap();
        found.page.entries.iter().filter_map(StoredResource::json).collect()
    }

    #[tokio::test]
    async fn a_bad_message_in_a_batch_is_answered_alone_and_the_others_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let record = guarded_record(dir.path()).await;
        let shared = shared(record.clone());
        let mut round = Vec::new();
        let mut answers = Vec::new();
        for i in 0..6 {
            // Message 3's family name holds a control character (HL7 escape \X01\): the record
            // refuses the Patient made from it, which fails the combined transaction.
            let family = if i == 3 { "SM\\X01\\ITH" } else { "SMITH" };
            let (job, answer) =
                job(&shared, &adt("A01", &format!("B{i}"), &format!("MRN{i}"), &format!("V{i}"), family)).await;
            round.push(job);
            answers.push(answer);
        }
        shared.write_round(round).await;
        for (i, answer) in answers.into_iter().enumerate() {
            match (i, answer.await.unwrap()) {
                (3, Err(IngestError::Rejected(rejection))) => {
                    assert_eq!((rejection.ack_code, rejection.error_code), (AckCode::Error, ErrorCode::DataTypeError))
                }
                (3, _) => panic!("the bad message was not refused"),
                (_, Ok(())) => {}
                (i, Err(_)) => panic!("message {i} was refused with the bad one"),
            }
        }
        for i in 0..6 {
            let found = encounters_of(&record, &format!("V{i}")).await;
            assert_eq!(found.len(), usize::from(i != 3), "visit {i}: {found:?}");
        }
    }

    #[tokio::test]
    async fn answers_come_after_the_batch_is_stored_and_audited_and_a_resend_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let record = guarded_record(dir.path()).await;
        let shared = Arc::new(shared(record.clone()));
        let audit = record.guard().unwrap().audit.clone();
        let before = audit.store().tree_size().await.unwrap();
        let texts: Vec<String> =
            (0..5).map(|i| adt("A01", &format!("D{i}"), &format!("MRN{i}"), &format!("V{i}"), "SMITH")).collect();
        let mut round = Vec::new();
        let mut answers = Vec::new();
        for text in &texts {
            let (job, answer) = job(&shared, text).await;
            round.push(job);
            answers.push(answer);
        }
        let writer = shared.clone();
        tokio::spawn(async move { writer.write_round(round).await });
        // As soon as the first answer arrives, everything of the batch is readable and audited.
        answers.remove(0).await.unwrap().unwrap_or_else(|_| panic!("refused"));
        for i in 0..5 {
            assert_eq!(encounters_of(&record, &format!("V{i}")).await.len(), 1, "visit {i} is stored");
        }
        let audited = audit.store().tree_size().await.unwrap() - before;
        assert!(audited >= 5 + 5, "one entry per Patient and Encounter written, and the searches: {audited}");
        for answer in answers {
            assert!(answer.await.unwrap().is_ok());
        }

        // The same messages again (their ACKs lost): answered, nothing new written.
        let mut round = Vec::new();
        let mut answers = Vec::new();
        for text in &texts {
            let (job, answer) = job(&shared, text).await;
            round.push(job);
            answers.push(answer);
        }
        shared.write_round(round).await;
        for answer in answers {
            assert!(answer.await.unwrap().is_ok());
        }
        for i in 0..5 {
            let found = encounters_of(&record, &format!("V{i}")).await;
            assert_eq!(found.len(), 1);
            assert_eq!(found[0]["meta"]["versionId"], "1", "visit {i} was not written again");
        }
        let patients = record.search(Some("Patient"), &[], Handling::Strict).await.unwrap();
        assert_eq!(patients.page.total, 5, "one Patient per person");
    }

    /// Writes `texts` as one round (each from its own connection) and checks every answer is AA.
    async fn write_accepted(shared: &Shared, texts: &[String]) {
        let mut round = Vec::new();
        let mut answers = Vec::new();
        for (port, text) in (42000..).zip(texts) {
            let (job, answer) = job_from(shared, text, port).await;
            round.push(job);
            answers.push(answer);
        }
        shared.write_round(round).await;
        for (text, answer) in texts.iter().zip(answers) {
            assert!(answer.await.unwrap().is_ok(), "refused: {text}");
        }
    }

    #[tokio::test]
    async fn a_round_creates_what_its_lookup_did_not_find_without_searching_again() {
        let dir = tempfile::tempdir().unwrap();
        let record = guarded_record(dir.path()).await;
        let shared = shared(record.clone());

        // What the lookup did not find is created as such: no condition to search for again.
        let (unknown, _) = job(&shared, &adt("A01", "U1", "P0", "V0", "SMITH")).await;
        let entries = visit_entries(&unknown.event, PARTNER, None, &[], unknown.visit.as_ref().unwrap())
            .unwrap_or_else(|_| panic!("the message was refused"));
        let requests: Vec<&Value> = entries.iter().map(|e| &e["request"]).collect();
        assert_eq!(
            requests,
            [&json!({"method": "POST", "url": "Patient"}), &json!({"method": "POST", "url": "Encounter"})]
        );
        assert_eq!(entries[1]["resource"]["subject"]["reference"], entries[0]["fullUrl"]);

        write_accepted(&shared, &[adt("A01", "R1", "P1", "V1", "SMITH"), adt("A01", "R2", "P2", "V2", "JONES")]).await;
        let first = encounters_of(&record, "V1").await;
        let p2 = encounters_of(&record, "V2").await[0]["subject"]["reference"].clone();
        // A later round: a discharge of a known visit, a new visit of a known patient, a new patient.
        write_accepted(
            &shared,
            &[
                adt("A03", "R3", "P1", "V1", "SMITH"),
                adt("A01", "R4", "P2", "V3", "JONES"),
                adt("A01", "R5", "P3", "V4", "BROWN"),
            ],
        )
        .await;
        let discharged = encounters_of(&record, "V1").await;
        assert_eq!(discharged.len(), 1);
        assert_eq!(discharged[0]["id"], first[0]["id"], "the visit's Encounter is updated, not created again");
        assert_eq!(discharged[0]["meta"]["versionId"], "2");
        assert_eq!(discharged[0]["subject"], first[0]["subject"]);
        assert_eq!(encounters_of(&record, "V3").await[0]["subject"]["reference"], p2, "the known patient is found");
        let patients = record.search(Some("Patient"), &[], Handling::Strict).await.unwrap();
        assert_eq!(patients.page.total, 3, "one Patient per person");
        let p3 = encounters_of(&record, "V4").await[0]["subject"]["reference"].clone();
        assert!(p3.as_str().is_some_and(|r| r.starts_with("Patient/")) && p3 != p2, "{p3}");
    }

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
