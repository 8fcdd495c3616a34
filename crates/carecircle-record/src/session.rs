//! Requests made on behalf of an authenticated principal. Every read, search and write a
//! session makes goes through the access decision ([`AccessControl`]) and leaves its audit
//! entries in the tamper-evident log, durable before the caller gets an answer.
//!
//! Architecture invariant: the HTTP handlers reach the record only through a [`Session`];
//! the unguarded [`Record`] methods are for the server's own bookkeeping (resolving a token's
//! user, loading agreements) and for the administrator's bulk import, which audits itself.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use carecircle_audit_store::carecircle_audit::{
    AgentKind, AuditAction, AuditAgent, AuditDecision, AuditEntity, AuditOutcome, AuditRecord,
};
use carecircle_audit_store::AuditLog;
use carecircle_fhir::search::{Handling, Summary};
use carecircle_fhir::{Issue, IssueType};
use carecircle_store::{HistoryQuery, Page, StoredResource, WriteOutcome};
use serde_json::Value;

use crate::{Caller, Created, Principal, PrincipalKind, Record, RecordError, SearchResult};

mod coordination;
mod governance;
pub use coordination::{SharedRecordRule, CHANGE_REASON_HEADER};

/// What a principal wants to do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessAction {
    /// Read, vread, search, history, `$everything`.
    Read,
    /// Create.
    Create,
    /// Update.
    Update,
    /// Delete.
    Delete,
}

/// A resource an access decision is asked about: stored, or about to be written.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Its type.
    pub resource_type: &'a str,
    /// Its id.
    pub id: &'a str,
    /// The partner that supplies it, `Organization/{id}`.
    pub custodian: Option<&'a str>,
    /// Its content. For reads of stored resources, only what the read decision looks at:
    /// `meta` and the elements that name the person (`decision_view`); a rule that needs more of
    /// a stored resource must add its element there.
    pub resource: &'a Value,
}

/// The answer of the access decision about one resource, with what decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Permitted.
    pub permit: bool,
    /// Permitted only because of break-glass (emergency access).
    pub break_glass: bool,
    /// Whether the principal's organisation is in the person's care (None: no person involved).
    pub in_care_relationship: Option<bool>,
    /// The policy that decided (agreement clause, consent provision, baseline rule).
    pub policy_id: String,
    /// The clauses and provisions that applied.
    pub clause_ids: Vec<String>,
    /// A sentence for the caller (denials) and the governance lead.
    pub explanation: String,
}

/// The access decision, as the record needs it. The implementation gathers the facts (consent,
/// care relationship, agreements) and asks the policy engine.
#[async_trait]
pub trait AccessControl: Send + Sync {
    /// Decides for each candidate, in order.
    async fn decide(
        &self,
        principal: &Principal,
        action: AccessAction,
        candidates: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, RecordError>;

    /// A governance lead's account of the decision for one candidate: which policies were
    /// considered and matched, which agreement clause and consent provision decided.
    async fn explain(
        &self,
        principal: &Principal,
        action: AccessAction,
        candidate: &Candidate<'_>,
    ) -> Result<String, RecordError> {
        let verdict = self.decide(principal, action, std::slice::from_ref(candidate)).await?;
        Ok(verdict.first().map(|v| v.explanation.clone()).unwrap_or_default())
    }

    /// Rules a write must keep beyond the decision itself (an agreement's lifecycle, say):
    /// `old` is the current version, if any. Refusals are located `Invalid` errors.
    async fn check_write(
        &self,
        _principal: &Principal,
        _resource_type: &str,
        _old: Option<&Value>,
        _new: &Value,
    ) -> Result<(), RecordError> {
        Ok(())
    }

    /// The partnership's organisations as the care-coordination rules need them (teams act for
    /// their partner). Without a directory every organisation is only itself.
    fn org_directory(&self) -> Arc<carecircle_care::OrgDirectory> {
        Arc::new(carecircle_care::OrgDirectory::new())
    }

    /// Called after any write, so cached facts (agreements, consents, care teams) that the
    /// write changes are dropped before the next decision.
    async fn after_write(&self, _resource_type: &str, _resource: Option<&Value>) {}
}

/// The access decision and the audit log a record's sessions use.
#[derive(Clone)]
pub struct Guard {
    /// The access decision.
    pub access: Arc<dyn AccessControl>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
}

/// Where a request came from, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// The request id.
    pub request_id: Option<String>,
    /// The client's address.
    pub client_address: Option<String>,
    /// The query string of a search.
    pub query: Option<String>,
}

/// A principal's requests against the record.
pub struct Session<'a> {
    record: &'a Record,
    guard: &'a Guard,
    principal: &'a Principal,
    meta: RequestMeta,
}

/// The elements that say which person a resource is about, in the order [`person_of`] tries them.
const PERSON_FIELDS: [&str; 7] = ["subject", "patient", "for", "beneficiary", "individual", "who", "owner"];

/// The id of the person (`Patient`) a resource is about: the Patient itself, or the first
/// `Patient/` reference among the elements the patient compartment is mostly defined by.
pub fn person_of(resource_type: &str, id: &str, resource: &Value) -> Option<String> {
    if resource_type == "Patient" {
        return Some(id.to_string());
    }
    for field in PERSON_FIELDS {
        let reference = match resource.get(field) {
            Some(Value::Array(items)) => items.first().and_then(|i| i.get("reference")),
            Some(item) => item.get("reference"),
            None => None,
        };
        if let Some(id) = reference.and_then(Value::as_str).and_then(|r| r.strip_prefix("Patient/")) {
            return Some(id.split('/').next().unwrap_or(id).to_string());
        }
    }
    None
}

/// What a read decision looks at in a stored resource (see [`Candidate::resource`]), parsed
/// without building the rest of the body: `meta` (its security labels) and the
/// [`PERSON_FIELDS`]. Parsing a whole body into a `Value` was most of a read's decision cost.
/// A body that does not parse this way (it always should) is parsed whole.
fn decision_view(stored: &StoredResource) -> Value {
    use serde_json::value::RawValue;
    #[derive(serde::Deserialize)]
    struct Fields<'a> {
        #[serde(borrow, default)]
        meta: Option<&'a RawValue>,
        #[serde(borrow, default)]
        subject: Option<&'a RawValue>,
        #[serde(borrow, default)]
        patient: Option<&'a RawValue>,
        #[serde(borrow, default, rename = "for")]
        for_: Option<&'a RawValue>,
        #[serde(borrow, default)]
        beneficiary: Option<&'a RawValue>,
        #[serde(borrow, default)]
        individual: Option<&'a RawValue>,
        #[serde(borrow, default)]
        who: Option<&'a RawValue>,
        #[serde(borrow, default)]
        owner: Option<&'a RawValue>,
    }
    let Some(body) = stored.body.as_deref() else { return Value::Null };
    let view = serde_json::from_str::<Fields>(body).ok().and_then(|fields| {
        let mut view = serde_json::Map::new();
        let named = [
            ("meta", fields.meta),
            ("subject", fields.subject),
            ("patient", fields.patient),
            ("for", fields.for_),
            ("beneficiary", fields.beneficiary),
            ("individual", fields.individual),
            ("who", fields.who),
            ("owner", fields.owner),
        ];
        for (name, raw) in named {
            if let Some(raw) = raw {
                view.insert(name.to_string(), serde_json::from_str(raw.get()).ok()?);
            }
        }
        Some(Value::Object(view))
    });
    view.or_else(|| stored.json()).unwrap_or(Value::Null)
}

fn bare_org(reference: &str) -> String {
    reference.strip_prefix("Organization/").unwrap_or(reference).to_string()
}

impl Record {
    /// A session for `principal`, or an internal error when the record was built without a guard.
    pub fn session<'a>(&'a self, principal: &'a Principal, meta: RequestMeta) -> Result<Session<'a>, RecordError> {
        let guard = self.guard.as_deref().ok_or_else(|| {
            RecordError::Internal("the record has no access decision and audit log; sessions need both".into())
        })?;
        Ok(Session { record: self, guard, principal, meta })
    }
}

impl Session<'_> {
    fn agent(&self) -> AuditAgent {
        let kind = match self.principal.kind {
            PrincipalKind::Practitioner => AgentKind::Practitioner,
            PrincipalKind::Patient => AgentKind::Patient,
            PrincipalKind::System => AgentKind::System,
            PrincipalKind::Admin => AgentKind::Admin,
        };
        AuditAgent {
            user_id: self.principal.subject.clone(),
            kind,
            organisation: self.principal.organization.as_deref().map(bare_org),
            role: self.principal.role.clone(),
        }
    }

    fn audit_record(&self, action: AuditAction, outcome: AuditOutcome) -> AuditRecord {
        AuditRecord {
            recorded_ms: carecircle_store::now_millis(),
            action,
            outcome,
            agent: self.agent(),
            purpose_of_use: Some(self.principal.purpose.clone()),
            break_glass: false,
            break_glass_reason: None,
            in_care_relationship: None,
            entity: None,
            patient_id: None,
            query: None,
            decision: None,
            client_address: self.meta.client_address.clone(),
            request_id: self.meta.request_id.clone(),
        }
    }

    /// The records of one decided access: the access itself, a decision event when it was
    /// refused, and a break-glass event when emergency access was used.
    fn access_records(
        &self,
        action: AuditAction,
        entity: Option<AuditEntity>,
        person: Option<String>,
        verdict: &Verdict,
    ) -> Vec<AuditRecord> {
        let outcome = if verdict.permit { AuditOutcome::Success } else { AuditOutcome::MinorFailure };
        let decision = AuditDecision {
            permit: verdict.permit,
            policy_id: verdict.policy_id.clone(),
            clause_ids: verdict.clause_ids.clone(),
        };
        let mut record = self.audit_record(action, outcome);
        record.entity = entity;
        record.patient_id = person;
        record.in_care_relationship = verdict.in_care_relationship;
        record.decision = Some(decision);
        record.break_glass = verdict.break_glass;
        record.break_glass_reason = verdict.break_glass.then(|| self.principal.reason.clone()).flatten();
        record.query = self.meta.query.clone();
        let mut records = vec![record.clone()];
        if !verdict.permit {
            records.push(AuditRecord { action: AuditAction::Decision, ..record.clone() });
        }
        if verdict.break_glass {
            records.push(AuditRecord { action: AuditAction::BreakGlass, ..record });
        }
        records
    }

    async fn append(&self, records: Vec<AuditRecord>) -> Result<(), RecordError> {
        self.guard
            .audit
            .append(records)
            .await
            .map(|_| ())
            .map_err(|e| RecordError::Internal(format!("audit append: {e}")))
    }

    async fn decide_stored(&self, resources: &[StoredResource]) -> Result<Vec<(Verdict, Option<String>)>, RecordError> {
        let bodies: Vec<Value> = resources.iter().map(decision_view).collect();
        let candidates: Vec<Candidate> = resources
            .iter()
            .zip(&bodies)
            .map(|(r, body)| Candidate {
                resource_type: &r.resource_type,
                id: &r.id,
                custodian: r.custodian.as_deref(),
                resource: body,
            })
            .collect();
        let verdicts = self.guard.access.decide(self.principal, AccessAction::Read, &candidates).await?;
        Ok(verdicts
            .into_iter()
            .zip(resources.iter().zip(&bodies))
            .map(|(v, (r, body))| (v, person_of(&r.resource_type, &r.id, body)))
            .collect())
    }

    fn refused(verdict: &Verdict, what: &str) -> RecordError {
        RecordError::Forbidden(Issue::error(
            IssueType::Forbidden,
            format!("access to {what} is not permitted: {}", verdict.explanation),
        ))
    }

    async fn guarded_one(
        &self,
        action: AuditAction,
        found: Result<StoredResource, RecordError>,
    ) -> Result<StoredResource, RecordError> {
        let stored = match found {
            Ok(stored) => stored,
            Err(error) => {
                let mut record = self.audit_record(action, AuditOutcome::MinorFailure);
                record.query = self.meta.query.clone();
                self.append(vec![record]).await?;
                return Err(error);
            }
        };
        let (verdict, person) = self.decide_stored(std::slice::from_ref(&stored)).await?.remove(0);
        let entity = AuditEntity {
            resource_type: stored.resource_type.clone(),
            id: stored.id.clone(),
            version: u64::try_from(stored.version).ok(),
        };
        self.append(self.access_records(action, Some(entity), person, &verdict)).await?;
        if verdict.permit {
            Ok(stored)
        } else {
            Err(Session::refused(&verdict, &format!("{}/{}", stored.resource_type, stored.id)))
        }
    }

    /// Reads the current version, if the principal may see it.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<StoredResource, RecordError> {
        self.guarded_one(AuditAction::Read, self.record.read(resource_type, id).await).await
    }

    /// Reads one version, if the principal may see it.
    pub async fn vread(&self, resource_type: &str, id: &str, version: &str) -> Result<StoredResource, RecordError> {
        self.guarded_one(AuditAction::Vread, self.record.vread(resource_type, id, version).await).await
    }

    /// Keeps the permitted resources of a page (and of what it included), audits one search
    /// record per person whose data is returned, and says how many were withheld.
    async fn filter_page(
        &self,
        action: AuditAction,
        entries: Vec<StoredResource>,
    ) -> Result<(Vec<StoredResource>, usize, Vec<AuditRecord>), RecordError> {
        let decided = self.decide_stored(&entries).await?;
        let mut kept = Vec::with_capacity(entries.len());
        let mut withheld = 0;
        let mut persons: HashMap<Option<String>, (bool, Option<bool>)> = HashMap::new();
        let mut records = Vec::new();
        for (resource, (verdict, person)) in entries.into_iter().zip(decided) {
            if verdict.permit {
                let seen = persons.entry(person.clone()).or_insert((false, verdict.in_care_relationship));
                seen.0 |= verdict.break_glass;
                if verdict.break_glass {
                    let entity = AuditEntity {
                        resource_type: resource.resource_type.clone(),
                        id: resource.id.clone(),
                        version: u64::try_from(resource.version).ok(),
                    };
                    records.extend(
                        self.access_records(AuditAction::BreakGlass, Some(entity), person, &verdict)
                            .into_iter()
                            .take(1),
                    );
                }
                kept.push(resource);
            } else {
                withheld += 1;
                let entity = AuditEntity {
                    resource_type: resource.resource_type.clone(),
                    id: resource.id.clone(),
                    version: u64::try_from(resource.version).ok(),
                };
                let mut decision = self.access_records(AuditAction::Decision, Some(entity), person, &verdict);
                decision.truncate(1);
                records.extend(decision);
            }
        }
        let people: BTreeSet<Option<String>> = persons.keys().cloned().collect();
        for person in people {
            let (break_glass, in_care) = persons[&person];
            let mut record = self.audit_record(action, AuditOutcome::Success);
            record.patient_id = person;
            record.query = self.meta.query.clone();
            record.break_glass = break_glass;
            record.in_care_relationship = in_care;
            records.push(record);
        }
        if records.is_empty() {
            let mut record = self.audit_record(action, AuditOutcome::Success);
            record.query = self.meta.query.clone();
            records.push(record);
        }
        Ok((kept, withheld, records))
    }

    /// A search, filtered entry by entry. When entries were withheld the total is adjusted if
    /// the whole result fits this page, and left out otherwise (FHIR allows an absent total).
    pub async fn search(
        &self,
        resource_type: Option<&str>,
        params: &[(String, String)],
        handling: Handling,
    ) -> Result<Guarded<SearchResult>, RecordError> {
        let mut result = self.record.search(resource_type, params, handling).await?;
        if result.query.summary == Some(Summary::Count) {
            // Counting needs the matches themselves, to count only what the principal may see.
            let mut query = result.query.clone();
            query.summary = None;
            query.count = COUNT_LIMIT;
            query.offset = 0;
            query.includes.clear();
            query.revincludes.clear();
            let all = self.record.run_search(query).await?;
            let complete = all.page.total <= COUNT_LIMIT;
            let (kept, withheld, records) = self.filter_page(AuditAction::Search, all.page.entries).await?;
            self.append(records).await?;
            result.page = Page { entries: Vec::new(), total: if complete { kept.len() } else { all.page.total } };
            return Ok(Guarded { value: result, withheld, total_known: complete || withheld == 0 });
        }
        let (kept, withheld, mut records) =
            self.filter_page(AuditAction::Search, std::mem::take(&mut result.page.entries)).await?;
        let (included, withheld_included, included_records) =
            self.filter_page(AuditAction::Search, std::mem::take(&mut result.included)).await?;
        if withheld_included > 0 || !included.is_empty() {
            records.extend(
                included_records.into_iter().filter(|r| r.patient_id.is_some() || r.action != AuditAction::Search),
            );
        }
        self.append(records).await?;
        let whole_result_here = result.query.offset == 0 && result.page.total <= kept.len() + withheld;
        let total_known = withheld == 0 || whole_result_here;
        if withheld > 0 && whole_result_here {
            result.page.total = kept.len();
        }
        result.page.entries = kept;
        result.included = included;
        Ok(Guarded { value: result, withheld: withheld + withheld_included, total_known })
    }

    /// `Patient/{id}/$everything`, filtered entry by entry; the Patient itself must be visible.
    pub async fn everything(
        &self,
        patient_id: &str,
        count: usize,
        offset: usize,
    ) -> Result<Guarded<Page>, RecordError> {
        let patient = self.record.read("Patient", patient_id).await;
        self.guarded_one(AuditAction::Read, patient).await?;
        let mut page = self.record.everything(patient_id, count, offset).await?;
        let (kept, withheld, records) =
            self.filter_page(AuditAction::Search, std::mem::take(&mut page.entries)).await?;
        self.append(records).await?;
        let whole = offset == 0 && page.total <= kept.len() + withheld;
        if withheld > 0 && whole {
            page.total = kept.len();
        }
        page.entries = kept;
        Ok(Guarded { value: page, withheld, total_known: withheld == 0 || whole })
    }

    /// History, filtered entry by entry (deleted versions carry no content and are kept only
    /// when the principal may see the resource's current custodian's data).
    pub async fn history(&self, query: HistoryQuery) -> Result<Guarded<Page>, RecordError> {
        let mut page = self.record.history(query).await?;
        let (kept, withheld, records) =
            self.filter_page(AuditAction::History, std::mem::take(&mut page.entries)).await?;
        self.append(records).await?;
        page.entries = kept;
        Ok(Guarded { value: page, withheld, total_known: withheld == 0 })
    }

    async fn decide_write(
        &self,
        action: AccessAction,
        caller: &Caller,
        resource_type: &str,
        id: &str,
        body: &Value,
    ) -> Result<Verdict, RecordError> {
        let candidate = Candidate { resource_type, id, custodian: Some(&caller.custodian), resource: body };
        let mut verdicts = self.guard.access.decide(self.principal, action, &[candidate]).await?;
        verdicts.pop().ok_or_else(|| RecordError::Internal("the access decision returned nothing".into()))
    }

    async fn audit_write(
        &self,
        action: AuditAction,
        verdict: &Verdict,
        entity: AuditEntity,
        person: Option<String>,
        failed: bool,
    ) -> Result<(), RecordError> {
        let mut records = self.access_records(action, Some(entity), person, verdict);
        if failed {
            records[0].outcome = AuditOutcome::SeriousFailure;
        }
        self.append(records).await
    }

    /// Creates a resource if the principal may write it.
    pub async fn create(
        &self,
        caller: &Caller,
        resource_type: &str,
        body: Value,
        if_none_exist: Option<&str>,
    ) -> Result<Created, RecordError> {
        let verdict = self.decide_write(AccessAction::Create, caller, resource_type, "", &body).await?;
        let person = person_of(resource_type, "", &body);
        if !verdict.permit {
            self.audit_write(AuditAction::Create, &verdict, entity_of(resource_type, "", None), person, false).await?;
            return Err(Session::refused(&verdict, &format!("writing a {resource_type}")));
        }
        self.guard.access.check_write(self.principal, resource_type, None, &body).await?;
        let result = self.record.create(caller, resource_type, body, if_none_exist).await;
        let (id, version) = match &result {
            Ok(Created::New(s)) | Ok(Created::Existing(s)) => (s.id.clone(), Some(s.version)),
            Err(_) => (String::new(), None),
        };
        self.audit_write(
            AuditAction::Create,
            &verdict,
            entity_of(resource_type, &id, version),
            person,
            result.is_err(),
        )
        .await?;
        if let Ok(Created::New(stored)) = &result {
            self.guard.access.after_write(resource_type, stored.json().as_ref()).await;
        }
        result
    }

    /// Updates (or creates with the client's id) if the principal may write it, and may see
    /// the version it replaces.
    pub async fn update(
        &self,
        caller: &Caller,
        resource_type: &str,
        id: &str,
        body: Value,
        if_match: Option<i64>,
    ) -> Result<WriteOutcome, RecordError> {
        let current = self.record.store().read(resource_type, id).await?.filter(|r| !r.deleted);
        if let Some(existing) = &current {
            let (verdict, person) = self.decide_stored(std::slice::from_ref(existing)).await?.remove(0);
            if !verdict.permit {
                self.audit_write(
                    AuditAction::Update,
                    &verdict,
                    entity_of(resource_type, id, Some(existing.version)),
                    person,
                    false,
                )
                .await?;
                return Err(Session::refused(&verdict, &format!("{resource_type}/{id}")));
            }
            // Reading a record is not holding it: an update by anyone but its custodian is decided
            // as a change to the custodian's record (which the policies refuse to other partners),
            // never as a write of the caller's own data that would take the record over.
            if let Some(holder) = existing.custodian.as_deref().filter(|holder| *holder != caller.custodian) {
                let old = existing.json().unwrap_or(Value::Null);
                let candidate = Candidate { resource_type, id, custodian: Some(holder), resource: &old };
                let verdict =
                    self.guard.access.decide(self.principal, AccessAction::Update, &[candidate]).await?.remove(0);
                if !verdict.permit {
                    let person = person_of(resource_type, id, &old);
                    self.audit_write(
                        AuditAction::Update,
                        &verdict,
                        entity_of(resource_type, id, Some(existing.version)),
                        person,
                        false,
                    )
                    .await?;
                    return Err(Session::refused(&verdict, &format!("{resource_type}/{id}")));
                }
            }
        }
        let verdict = self.decide_write(AccessAction::Update, caller, resource_type, id, &body).await?;
        let person = person_of(resource_type, id, &body);
        if !verdict.permit {
            self.audit_write(AuditAction::Update, &verdict, entity_of(resource_type, id, None), person, false).await?;
            return Err(Session::refused(&verdict, &format!("{resource_type}/{id}")));
        }
        let old = current.as_ref().and_then(StoredResource::json);
        self.guard.access.check_write(self.principal, resource_type, old.as_ref(), &body).await?;
        let result = self.record.update(caller, resource_type, id, body, if_match).await;
        let version = result.as_ref().ok().map(|o| o.stored.version);
        self.audit_write(AuditAction::Update, &verdict, entity_of(resource_type, id, version), person, result.is_err())
            .await?;
        if let Ok(outcome) = &result {
            self.guard.access.after_write(resource_type, outcome.stored.json().as_ref()).await;
        }
        result
    }

    /// Deletes if the principal may delete the current version.
    pub async fn delete(
        &self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<WriteOutcome, RecordError> {
        let existing = self.record.store().read(resource_type, id).await?.filter(|r| !r.deleted);
        let mut verdict_person = None;
        if let Some(existing) = &existing {
            let body = existing.json().unwrap_or(Value::Null);
            let candidate = Candidate { resource_type, id, custodian: existing.custodian.as_deref(), resource: &body };
            let verdict = self.guard.access.decide(self.principal, AccessAction::Delete, &[candidate]).await?.remove(0);
            let person = person_of(resource_type, id, &body);
            if !verdict.permit {
                self.audit_write(
                    AuditAction::Delete,
                    &verdict,
                    entity_of(resource_type, id, Some(existing.version)),
                    person,
                    false,
                )
                .await?;
                return Err(Session::refused(&verdict, &format!("{resource_type}/{id}")));
            }
            verdict_person = Some((verdict, person));
        }
        let result = self.record.delete(resource_type, id, if_match).await;
        let (verdict, person) = verdict_person.unwrap_or_else(|| {
            (
                Verdict {
                    permit: true,
                    break_glass: false,
                    in_care_relationship: None,
                    policy_id: "no-resource".into(),
                    clause_ids: Vec::new(),
                    explanation: "nothing to delete".into(),
                },
                None,
            )
        });
        let version = result.as_ref().ok().map(|o| o.stored.version);
        self.audit_write(AuditAction::Delete, &verdict, entity_of(resource_type, id, version), person, result.is_err())
            .await?;
        if result.is_ok() {
            self.guard.access.after_write(resource_type, None).await;
        }
        result
    }

    /// A batch or transaction Bundle: each write entry is decided before anything runs (a
    /// transaction with one refused entry is refused whole); what read entries return is
    /// decided afterwards, resource by resource, like any read or search.
    pub async fn process_bundle(&self, caller: &Caller, bundle: Value) -> Result<Value, RecordError> {
        let entries = bundle.get("entry").and_then(Value::as_array).cloned().unwrap_or_default();
        for (index, entry) in entries.iter().enumerate() {
            let method = entry.pointer("/request/method").and_then(Value::as_str).unwrap_or_default();
            let url = entry.pointer("/request/url").and_then(Value::as_str).unwrap_or_default();
            let resource_type = url.split(['/', '?']).next().unwrap_or_default();
            let action = match method {
                "POST" => AccessAction::Create,
                "PUT" | "PATCH" => AccessAction::Update,
                "DELETE" => AccessAction::Delete,
                "GET" | "HEAD" => continue,
                _ => continue,
            };
            let body = entry.get("resource").cloned().unwrap_or(Value::Null);
            let id = url.split('/').nth(1).unwrap_or_default();
            let verdict = self.decide_write(action, caller, resource_type, id, &body).await?;
            if !verdict.permit {
                let audit_action = match action {
                    AccessAction::Create => AuditAction::Create,
                    AccessAction::Delete => AuditAction::Delete,
                    _ => AuditAction::Update,
                };
                self.audit_write(
                    audit_action,
                    &verdict,
                    entity_of(resource_type, id, None),
                    person_of(resource_type, id, &body),
                    false,
                )
                .await?;
                return Err(RecordError::Forbidden(
                    Issue::error(
                        IssueType::Forbidden,
                        format!("entry {index} is not permitted: {}", verdict.explanation),
                    )
                    .at(format!("Bundle.entry[{index}]")),
                ));
            }
        }
        let mut response = self.record.process_bundle(caller, bundle).await?;
        self.filter_bundle_reads(&entries, &mut response).await?;
        let mut records = Vec::new();
        if let Some(results) = response.get("entry").and_then(Value::as_array) {
            for (entry, result) in entries.iter().zip(results) {
                let method = entry.pointer("/request/method").and_then(Value::as_str).unwrap_or_default();
                if method == "GET" || method == "HEAD" {
                    continue;
                }
                let location = result.pointer("/response/location").and_then(Value::as_str).unwrap_or_default();
                let status = result.pointer("/response/status").and_then(Value::as_str).unwrap_or_default();
                let mut parts = location.split('/');
                let (resource_type, id) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                let action = match method {
                    "POST" => AuditAction::Create,
                    "DELETE" => AuditAction::Delete,
                    _ => AuditAction::Update,
                };
                let outcome =
                    if status.starts_with('2') { AuditOutcome::Success } else { AuditOutcome::SeriousFailure };
                let mut record = self.audit_record(action, outcome);
                let body = entry.get("resource").cloned().unwrap_or(Value::Null);
                record.patient_id = person_of(resource_type, id, &body);
                if !resource_type.is_empty() {
                    record.entity = Some(AuditEntity {
                        resource_type: resource_type.into(),
                        id: id.into(),
                        version: parts.nth(1).and_then(|v| v.parse().ok()),
                    });
                }
                records.push(record);
                self.guard.access.after_write(resource_type, Some(&body)).await;
            }
        }
        if !records.is_empty() {
            self.append(records).await?;
        }
        Ok(response)
    }

    /// Decides on what the read entries of a processed Bundle returned: a refused resource
    /// becomes a 403 entry, a searchset keeps only what may be seen (with a `suppressed` note).
    async fn filter_bundle_reads(&self, entries: &[Value], response: &mut Value) -> Result<(), RecordError> {
        let Some(results) = response.get_mut("entry").and_then(Value::as_array_mut) else { return Ok(()) };
        for (entry, result) in entries.iter().zip(results.iter_mut()) {
            let method = entry.pointer("/request/method").and_then(Value::as_str).unwrap_or_default();
            if method != "GET" && method != "HEAD" {
                continue;
            }
            let Some(resource) = result.get_mut("resource") else { continue };
            if resource.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
                let inner: Vec<Value> = resource.get("entry").and_then(Value::as_array).cloned().unwrap_or_default();
                let stored: Vec<StoredResource> =
                    inner.iter().filter_map(|e| e.get("resource")).map(stored_view).collect();
                let (kept, withheld, records) = self.filter_page(AuditAction::Search, stored).await?;
                self.append(records).await?;
                let kept_keys: BTreeSet<(String, String)> =
                    kept.iter().map(|r| (r.resource_type.clone(), r.id.clone())).collect();
                let filtered: Vec<Value> = inner
                    .into_iter()
                    .filter(|e| match e.get("resource") {
                        Some(r) if r.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome") => {
                            let key = (
                                r.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_string(),
                                r.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                            );
                            kept_keys.contains(&key)
                        }
                        _ => true,
                    })
                    .collect();
                resource["entry"] = Value::Array(filtered);
                if withheld > 0 {
                    if let Some(object) = resource.as_object_mut() {
                        object.remove("total");
                    }
                }
            } else {
                let stored = stored_view(resource);
                let (verdict, person) = self.decide_stored(std::slice::from_ref(&stored)).await?.remove(0);
                let entity = AuditEntity {
                    resource_type: stored.resource_type.clone(),
                    id: stored.id.clone(),
                    version: u64::try_from(stored.version).ok(),
                };
                self.append(self.access_records(AuditAction::Read, Some(entity), person, &verdict)).await?;
                if !verdict.permit {
                    let error = Session::refused(&verdict, &format!("{}/{}", stored.resource_type, stored.id));
                    *result = serde_json::json!({"response": {"status": "403 Forbidden", "outcome": carecircle_fhir::outcome::operation_outcome(&error.issues())}});
                }
            }
        }
        Ok(())
    }

    /// Audits a governance lead's look at who may see a resource (`$explain`).
    pub async fn audit_explain(
        &self,
        resource_type: &str,
        id: &str,
        person: Option<String>,
    ) -> Result<(), RecordError> {
        let mut record = self.audit_record(AuditAction::Read, AuditOutcome::Success);
        record.entity = Some(AuditEntity { resource_type: resource_type.into(), id: id.into(), version: None });
        record.patient_id = person;
        record.query = Some("$explain".into());
        self.append(vec![record]).await
    }

    /// Audits an export of one partner's data (the caller checked who may export).
    pub async fn audit_export(&self, organisation: &str) -> Result<(), RecordError> {
        let mut record = self.audit_record(AuditAction::Export, AuditOutcome::Success);
        record.entity =
            Some(AuditEntity { resource_type: "Organization".into(), id: bare_org(organisation), version: None });
        record.query = self.meta.query.clone();
        self.append(vec![record]).await
    }

    /// Audits an act on the person index the caller was checked for (reading the match review
    /// queue, a review decision): `action` on `resource_type/id`, about `person` when one.
    pub async fn audit_identity(
        &self,
        action: AuditAction,
        resource_type: &str,
        id: &str,
        person: Option<String>,
    ) -> Result<(), RecordError> {
        let mut record = self.audit_record(action, AuditOutcome::Success);
        record.entity = Some(AuditEntity { resource_type: resource_type.into(), id: id.into(), version: None });
        record.patient_id = person;
        record.query = self.meta.query.clone();
        self.append(vec![record]).await
    }

    /// The principal.
    pub fn principal(&self) -> &Principal {
        self.principal
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.guard.audit
    }
}

/// The audited entity of a write.
fn entity_of(resource_type: &str, id: &str, version: Option<i64>) -> AuditEntity {
    AuditEntity {
        resource_type: resource_type.into(),
        id: id.into(),
        version: version.and_then(|v| u64::try_from(v).ok()),
    }
}

/// A stored-resource view of a resource returned inside a Bundle (its custodian is its
/// `meta.source`, as the store writes it).
fn stored_view(resource: &Value) -> StoredResource {
    StoredResource {
        resource_type: resource.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_string(),
        id: resource.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
        version: resource.pointer("/meta/versionId").and_then(Value::as_str).and_then(|v| v.parse().ok()).unwrap_or(0),
        last_updated: 0,
        deleted: false,
        custodian: resource.pointer("/meta/source").and_then(Value::as_str).map(str::to_string),
        body: Some(resource.to_string()),
    }
}

/// How many matches `_summary=count` examines to count only what the principal may see.
pub const COUNT_LIMIT: usize = 10_000;

/// A filtered answer: the value, how many entries were withheld, and whether the total is exact.
#[derive(Debug, Clone)]
pub struct Guarded<T> {
    /// What the principal may see.
    pub value: T,
    /// How many entries were withheld.
    pub withheld: usize,
    /// Whether the total still counts exactly what the principal may see.
    pub total_known: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(resource_type: &str, body: &Value) -> StoredResource {
        StoredResource {
            resource_type: resource_type.into(),
            id: body["id"].as_str().unwrap_or("x").into(),
            version: 1,
            last_updated: 0,
            deleted: false,
            custodian: Some("Organization/gp".into()),
            body: Some(body.to_string()),
        }
    }

    /// The partial parse keeps exactly what the decision reads: the person and the labels come
    /// out the same as from the whole body, for every person element and both shapes.
    #[test]
    fn the_decision_view_names_the_same_person_and_labels_as_the_whole_body() {
        let labels =
            json!({"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]});
        let mut cases = vec![json!({"resourceType": "Observation", "id": "o", "meta": labels, "status": "final",
                                    "code": {"text": "x"}, "valueString": "{\"subject\": \"not me\"}"})];
        for field in PERSON_FIELDS {
            cases.push(json!({"resourceType": "X", "id": "a", "meta": labels, field: {"reference": "Patient/p1"}}));
            cases.push(json!({"resourceType": "X", "id": "b", field: [{"reference": "Patient/p2/_history/3"}]}));
            cases.push(json!({"resourceType": "X", "id": "c", field: {"reference": "Group/g"}, "owner": {"reference": "Patient/p3"}}));
        }
        for body in cases {
            let whole = body.clone();
            let view = decision_view(&stored("X", &body));
            assert_eq!(person_of("X", "id", &view), person_of("X", "id", &whole), "{body}");
            assert_eq!(view.get("meta"), whole.get("meta"), "{body}");
            assert!(view.get("valueString").is_none() && view.get("code").is_none(), "only what the decision reads");
        }
        // A body the partial parse refuses (a duplicated element) is still decided on, whole.
        let mut duplicated = stored("Observation", &json!({}));
        duplicated.body = Some(
            r#"{"resourceType":"Observation","subject":{"reference":"Patient/a"},"subject":{"reference":"Patient/a"}}"#
                .into(),
        );
        assert_eq!(person_of("Observation", "o", &decision_view(&duplicated)).as_deref(), Some("a"));
        assert_eq!(decision_view(&StoredResource { body: None, ..duplicated }), Value::Null);
    }
}
