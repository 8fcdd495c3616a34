//! The record service: every FHIR interaction the server offers (create, conditional create,
//! read, vread, update, delete, history, search with includes, batch and transaction Bundles,
//! `Patient/$everything`) as plain async functions over the storage trait. The HTTP layer only
//! translates requests and responses; the CLI import uses the same functions.

mod bundle;
mod error;
mod events;
mod identity;
pub mod lists;
mod policy;
mod prepare;
mod principal;
mod session;

use std::sync::Arc;

use carecircle_fhir::search::{parse_search, Handling, SearchQuery, Summary};
use carecircle_fhir::{definitions, Issue, IssueType};
use carecircle_store::{HistoryQuery, Page, Store, StoredResource, WriteOp, WriteOutcome};
use serde_json::Value;

pub use bundle::BundleKind;
pub use error::RecordError;
pub use events::{ChangeEvent, ChangeInteraction, EventBus, PublishingStore};
pub use identity::{
    default_model, linkage_id, patient_record, review_task_id, MatchGrade, PatientMatch, PersonIndex, ReviewDecision,
    ReviewOutcome, KEY_WORKER_EXTENSION, MIN_TRAINING_RECORDS, NHS_NUMBER_SYSTEM, NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFIED_CODE, PERSON_ID_PREFIX, POSSIBLE_MATCH_CODE, REVIEW_CODE_SYSTEM,
};
pub use policy::{with_request_generation, PolicyAccess, NATIONAL_OPT_OUT_EXTENSION};
pub use prepare::{custodian_reference, validate_incoming};
pub use principal::{Principal, PrincipalKind, DEFAULT_PURPOSE};
pub use session::{
    person_of, AccessAction, AccessControl, Candidate, Guard, Guarded, RequestMeta, Session, SharedRecordRule, Verdict,
    CHANGE_REASON_HEADER, COUNT_LIMIT,
};

/// Who is writing: the partner organisation that becomes the custodian of what it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The custodian, `Organization/{id}`.
    pub custodian: String,
}

/// The result of a create.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new resource was stored.
    New(StoredResource),
    /// Conditional create found exactly one match: nothing was stored.
    Existing(StoredResource),
}

/// A search's page, what was included with it, and the notes for the response.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// The parsed query (for building links).
    pub query: SearchQuery,
    /// The matches of this page and the total.
    pub page: Page,
    /// Resources added by `_include` / `_revinclude`, without duplicates of the matches.
    pub included: Vec<StoredResource>,
}

/// The record service.
#[derive(Clone)]
pub struct Record {
    store: Arc<dyn Store>,
    guard: Option<Arc<Guard>>,
}

impl Record {
    /// A service over `store`.
    pub fn new(store: Arc<dyn Store>) -> Record {
        Record { store, guard: None }
    }

    /// A service whose sessions go through `guard` (the access decision and the audit log).
    pub fn with_guard(store: Arc<dyn Store>, guard: Guard) -> Record {
        Record { store, guard: Some(Arc::new(guard)) }
    }

    /// The guard, when there is one.
    pub fn guard(&self) -> Option<&Arc<Guard>> {
        self.guard.as_ref()
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates a resource with a server-assigned id. With `if_none_exist` (a search query string)
    /// nothing is stored when exactly one resource matches, and the request fails when several do.
    pub async fn create(
        &self,
        caller: &Caller,
        resource_type: &str,
        body: Value,
        if_none_exist: Option<&str>,
    ) -> Result<Created, RecordError> {
        validate_incoming(&body, resource_type, None)?;
        if let Some(condition) = if_none_exist {
            if let Some(existing) = self.conditional_match(resource_type, condition, "If-None-Exist").await? {
                return Ok(Created::Existing(existing));
            }
        }
        let id = new_id();
        let write = prepare::put(caller, resource_type, &id, body, Some(0));
        let outcome = self.apply_one(write).await?;
        Ok(Created::New(outcome.stored))
    }

    /// Creates or updates `resource_type/id`. `if_match` is the version the caller last saw.
    pub async fn update(
        &self,
        caller: &Caller,
        resource_type: &str,
        id: &str,
        body: Value,
        if_match: Option<i64>,
    ) -> Result<WriteOutcome, RecordError> {
        validate_incoming(&body, resource_type, Some(id))?;
        self.apply_one(prepare::put(caller, resource_type, id, body, if_match)).await
    }

    /// Deletes `resource_type/id` (idempotent).
    pub async fn delete(
        &self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<WriteOutcome, RecordError> {
        prepare::check_type_and_id(resource_type, id)?;
        self.apply_one(WriteOp::Delete {
            resource_type: resource_type.into(),
            id: id.into(),
            expected_version: if_match,
        })
        .await
    }

    /// The current version; `NotFound` when it never existed, `Gone` when deleted.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<StoredResource, RecordError> {
        prepare::check_type_and_id(resource_type, id)?;
        match self.store.read(resource_type, id).await? {
            None => Err(RecordError::not_found(format!("{resource_type}/{id} is not known"))),
            Some(r) if r.deleted => Err(RecordError::Gone(r)),
            Some(r) => Ok(r),
        }
    }

    /// One version.
    pub async fn vread(&self, resource_type: &str, id: &str, version: &str) -> Result<StoredResource, RecordError> {
        prepare::check_type_and_id(resource_type, id)?;
        let number: i64 = version.parse().map_err(|_| {
            RecordError::invalid(
                Issue::error(IssueType::Value, format!("'{version}' is not a version id")).at("_history"),
            )
        })?;
        match self.store.read_version(resource_type, id, number).await? {
            None => Err(RecordError::not_found(format!("{resource_type}/{id} has no version {version}"))),
            Some(r) if r.deleted => Err(RecordError::Gone(r)),
            Some(r) => Ok(r),
        }
    }

    /// A search on one type (or on all types when `resource_type` is `None`).
    pub async fn search(
        &self,
        resource_type: Option<&str>,
        params: &[(String, String)],
        handling: Handling,
    ) -> Result<SearchResult, RecordError> {
        if let Some(t) = resource_type {
            prepare::check_type(t)?;
        }
        let query = parse_search(resource_type, params, handling).map_err(RecordError::Invalid)?;
        self.run_search(query).await
    }

    /// Runs a parsed search with its includes.
    pub async fn run_search(&self, query: SearchQuery) -> Result<SearchResult, RecordError> {
        let page = self.store.search(&query).await?;
        let mut included: Vec<StoredResource> = Vec::new();
        if query.summary != Some(Summary::Count) && !page.entries.is_empty() {
            for include in &query.includes {
                included.extend(self.store.include(&page.entries, include).await?);
            }
            for include in &query.revincludes {
                included.extend(self.store.revinclude(&page.entries, include).await?);
            }
            let mut seen: std::collections::HashSet<(String, String)> =
                page.entries.iter().map(|r| (r.resource_type.clone(), r.id.clone())).collect();
            included.retain(|r| seen.insert((r.resource_type.clone(), r.id.clone())));
        }
        Ok(SearchResult { query, page, included })
    }

    /// History, newest first.
    pub async fn history(&self, query: HistoryQuery) -> Result<Page, RecordError> {
        if let Some(t) = &query.resource_type {
            prepare::check_type(t)?;
        }
        if let (Some(t), Some(id)) = (&query.resource_type, &query.id) {
            if self.store.read(t, id).await?.is_none() {
                return Err(RecordError::not_found(format!("{t}/{id} is not known")));
            }
        }
        Ok(self.store.history(&query).await?)
    }

    /// `Patient/{id}/$everything`: the patient and their compartment, paged.
    pub async fn everything(&self, patient_id: &str, count: usize, offset: usize) -> Result<Page, RecordError> {
        self.read("Patient", patient_id).await?;
        Ok(self.store.patient_compartment(patient_id, count, offset).await?)
    }

    /// Processes a `batch` or `transaction` Bundle, returning the response Bundle.
    pub async fn process_bundle(&self, caller: &Caller, bundle: Value) -> Result<Value, RecordError> {
        bundle::process(self, caller, bundle).await
    }

    /// Stores resources as they are (ids kept; missing ids assigned) for bulk import. Each
    /// resource is validated on its own; the valid ones are written together, atomically, and
    /// each invalid one is reported in its place with why.
    pub async fn import(
        &self,
        caller: &Caller,
        resources: Vec<Value>,
    ) -> Result<Vec<Result<WriteOutcome, RecordError>>, RecordError> {
        self.apply_import(self.prepare_import(caller, resources)).await
    }

    /// The CPU half of [`Record::import`]: validation and index extraction, no I/O. Callers that
    /// pipeline prepare the next batch while the previous one is applied.
    pub fn prepare_import(&self, caller: &Caller, resources: Vec<Value>) -> PreparedImport {
        let mut slots = Vec::with_capacity(resources.len());
        let mut writes = Vec::with_capacity(resources.len());
        let mut seen = std::collections::HashSet::new();
        for resource in resources {
            let resource_type = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_string();
            let id = match resource.get("id").and_then(Value::as_str) {
                Some(id) => id.to_string(),
                None => new_id(),
            };
            let checked = if !seen.insert((resource_type.clone(), id.clone())) {
                Err(RecordError::invalid(
                    Issue::error(IssueType::Invalid, format!("{resource_type}/{id} appears twice in one import batch"))
                        .at(format!("{resource_type}.id")),
                ))
            } else if !definitions().is_resource_type(&resource_type) {
                prepare::validate_incoming(&resource, "Basic", None)
            } else {
                prepare::validate_incoming(&resource, &resource_type, Some(&id))
            };
            match checked {
                Ok(()) => {
                    writes.push(prepare::put(caller, &resource_type, &id, resource, None));
                    slots.push(None);
                }
                Err(error) => slots.push(Some(error)),
            }
        }
        PreparedImport { slots, writes }
    }

    /// The I/O half of [`Record::import`]: one atomic write of the valid resources.
    pub async fn apply_import(
        &self,
        prepared: PreparedImport,
    ) -> Result<Vec<Result<WriteOutcome, RecordError>>, RecordError> {
        let mut outcomes = self.store.apply(prepared.writes).await?.into_iter();
        Ok(prepared
            .slots
            .into_iter()
            .map(|slot| match slot {
                Some(error) => Err(error),
                None => outcomes.next().ok_or_else(|| RecordError::Internal("missing write outcome".into())),
            })
            .collect())
    }

    async fn apply_one(&self, write: WriteOp) -> Result<WriteOutcome, RecordError> {
        let mut outcomes = self.store.apply(vec![write]).await?;
        outcomes.pop().ok_or_else(|| RecordError::Internal("the store returned no outcome for a write".into()))
    }

    /// The one resource matching a conditional search, `None` when none does; several matches
    /// are an error (412), as FHIR specifies for conditional create and update.
    async fn conditional_match(
        &self,
        resource_type: &str,
        condition: &str,
        header: &str,
    ) -> Result<Option<StoredResource>, RecordError> {
        // The condition is a query string; some senders (including HL7's own examples) prefix it
        // with `Type?`, which is accepted when the type is the one being written.
        let query = match condition.split_once('?') {
            Some((prefix, query))
                if prefix.is_empty() || prefix == resource_type || prefix.ends_with(&format!("/{resource_type}")) =>
            {
                query
            }
            Some((prefix, _)) => {
                return Err(RecordError::invalid(
                    Issue::error(
                        IssueType::Invalid,
                        format!("{header} names '{prefix}' but the resource is a {resource_type}"),
                    )
                    .at(header),
                ))
            }
            None => condition,
        };
        let params = parse_query_string(query);
        if params.is_empty() {
            return Err(RecordError::invalid(
                Issue::error(IssueType::Invalid, format!("{header} has no search parameters")).at(header),
            ));
        }
        let mut query = parse_search(Some(resource_type), &params, Handling::Strict).map_err(RecordError::Invalid)?;
        query.count = 2;
        let page = self.store.search(&query).await?;
        match page.entries.len() {
            0 => Ok(None),
            1 => Ok(page.entries.into_iter().next()),
            _ => Err(RecordError::PreconditionFailed(
                Issue::error(
                    IssueType::MultipleMatches,
                    format!("{header} '{condition}' matches {} resources", page.total),
                )
                .at(header),
            )),
        }
    }
}

/// A validated, indexed import batch, ready to write.
#[derive(Debug)]
pub struct PreparedImport {
    /// Per input resource: `None` when it is among `writes`, else why it was refused.
    slots: Vec<Option<RecordError>>,
    /// The writes of the valid resources, in input order.
    writes: Vec<WriteOp>,
}

/// A new server-assigned id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Splits a query string (`a=1&b=2`, `application/x-www-form-urlencoded`) into pairs.
pub fn parse_query_string(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
