//! The storage trait of the carecircle record store: versioned FHIR resources with their
//! custodian and search index, implemented by the SQLite and PostgreSQL backends.

pub mod sql;

use async_trait::async_trait;
use carecircle_fhir::date::format_instant;
use carecircle_fhir::search::{Include, SearchQuery};
use carecircle_fhir::IndexEntry;
use serde_json::Value;

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    /// The resource type.
    pub resource_type: String,
    /// The logical id.
    pub id: String,
    /// The version, counting from 1.
    pub version: i64,
    /// When this version was stored, in UTC milliseconds since the epoch.
    pub last_updated: i64,
    /// Whether this version is a deletion (then `body` is `None`).
    pub deleted: bool,
    /// The partner organisation that supplied it, as `Organization/{id}`.
    pub custodian: Option<String>,
    /// The resource JSON as stored, with `id` and `meta` set by the server.
    pub body: Option<String>,
}

impl StoredResource {
    /// The body parsed as JSON; `None` for deletions.
    pub fn json(&self) -> Option<Value> {
        // Bodies are written by the store from serde_json values, so they always parse; a
        // corrupt row is reported as absent rather than crashing the request.
        self.body.as_deref().and_then(|b| serde_json::from_str(b).ok())
    }
}

/// A write to apply. Several writes given together are applied atomically.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Create or update `resource_type/id` with `resource` (its `meta.versionId` and
    /// `meta.lastUpdated` are set by the store).
    Put {
        /// The resource type.
        resource_type: String,
        /// The logical id.
        id: String,
        /// The resource, with `id` set and `meta.source` already set by the caller.
        resource: Value,
        /// Its search index, extracted by the caller.
        index: Vec<IndexEntry>,
        /// The supplying organisation, `Organization/{id}`.
        custodian: Option<String>,
        /// When set, the write fails with [`StoreError::VersionConflict`] unless the current
        /// version is this one (`If-Match`); `Some(0)` requires that the resource does not exist.
        expected_version: Option<i64>,
    },
    /// Delete `resource_type/id` (a new version marked deleted); a no-op when absent or deleted.
    Delete {
        /// The resource type.
        resource_type: String,
        /// The logical id.
        id: String,
        /// As for `Put`.
        expected_version: Option<i64>,
    },
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteEffect {
    /// A new resource was created (version 1, or a re-creation after deletion).
    Created,
    /// An existing resource got a new version.
    Updated,
    /// The resource was deleted.
    Deleted,
    /// Nothing was changed (deleting what does not exist or is already deleted).
    Unchanged,
}

/// The result of one write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    /// What happened.
    pub effect: WriteEffect,
    /// The version now current (for `Unchanged` deletes of absent resources, version 0).
    pub stored: StoredResource,
}

impl WriteOutcome {
    /// The outcome of deleting `resource_type/id`, whose deletion is version `version`.
    pub fn deleted(
        resource_type: String,
        id: String,
        version: i64,
        last_updated: i64,
        custodian: Option<String>,
    ) -> WriteOutcome {
        WriteOutcome {
            effect: WriteEffect::Deleted,
            stored: StoredResource { resource_type, id, version, last_updated, deleted: true, custodian, body: None },
        }
    }

    /// The outcome of deleting what is absent or already deleted (`current_version` 0: absent).
    pub fn unchanged(resource_type: String, id: String, current_version: i64, last_updated: i64) -> WriteOutcome {
        WriteOutcome {
            effect: WriteEffect::Unchanged,
            stored: StoredResource {
                resource_type,
                id,
                version: current_version,
                last_updated,
                deleted: true,
                custodian: None,
                body: None,
            },
        }
    }
}

/// A page of results and, when counted, how many match in all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The resources of this page.
    pub entries: Vec<StoredResource>,
    /// The number of matches in all.
    pub total: usize,
}

/// Which history to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Limit to one resource type.
    pub resource_type: Option<String>,
    /// Limit to one resource (requires `resource_type`).
    pub id: Option<String>,
    /// Only versions stored at or after this instant (UTC ms).
    pub since: Option<i64>,
    /// Page size.
    pub count: usize,
    /// Index of the first version of the page (newest first).
    pub offset: usize,
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `If-Match` or create-only precondition failed.
    #[error("version conflict on {resource_type}/{id}: expected version {expected}, current version {current}")]
    VersionConflict {
        /// The resource type.
        resource_type: String,
        /// The id.
        id: String,
        /// The version the caller expected (0: must not exist).
        expected: i64,
        /// The current version (0: does not exist).
        current: i64,
    },
    /// The database failed; the message is for logs, not for callers.
    #[error("database error: {0}")]
    Backend(String),
}

/// The record store. Implementations must make every `apply` call atomic and must never return a
/// deleted resource from `search`.
#[async_trait]
pub trait Store: Send + Sync {
    /// A short name for logs and metrics (`sqlite`, `postgres`).
    fn backend_name(&self) -> &'static str;

    /// A counter that changes after every committed write to the stored data, whoever made it
    /// (this object, another connection, another process): callers may keep what they derived
    /// from stored data for as long as the counter is unchanged. `None` when the backend cannot
    /// tell (PostgreSQL), so nothing may be kept. Required, not defaulted: a wrapper that
    /// forgot to forward it would silently switch every cache off (or, worse, on).
    fn write_generation(&self) -> Option<u64>;

    /// Brings the schema up to date. Idempotent.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// The current version of a resource (possibly a deletion), or `None` if it never existed.
    async fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>, StoreError>;

    /// One version of a resource.
    async fn read_version(
        &self,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredResource>, StoreError>;

    /// Applies the writes in order, all or nothing.
    async fn apply(&self, writes: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError>;

    /// Runs a search: the requested page (sorted, offset, counted) and the total.
    async fn search(&self, query: &SearchQuery) -> Result<Page, StoreError>;

    /// The resources referenced from `sources` through `include` (`_include`).
    async fn include(&self, sources: &[StoredResource], include: &Include) -> Result<Vec<StoredResource>, StoreError>;

    /// The resources referencing `targets` through `include` (`_revinclude`).
    async fn revinclude(
        &self,
        targets: &[StoredResource],
        include: &Include,
    ) -> Result<Vec<StoredResource>, StoreError>;

    /// The Patient compartment of `patient_id` (the patient first, then every resource linked to
    /// them through the R4 compartment definition), paged.
    async fn patient_compartment(&self, patient_id: &str, count: usize, offset: usize) -> Result<Page, StoreError>;

    /// Versions, newest first.
    async fn history(&self, query: &HistoryQuery) -> Result<Page, StoreError>;
}

/// Sets the server-managed parts of a resource about to be stored: `id`, `meta.versionId` and
/// `meta.lastUpdated`. Every backend calls this so that stored bodies agree.
pub fn stamp_resource(resource: &mut Value, id: &str, version: i64, last_updated: i64) {
    if let Some(object) = resource.as_object_mut() {
        object.insert("id".into(), Value::String(id.to_string()));
        let meta = object.entry("meta").or_insert_with(|| Value::Object(Default::default()));
        if !meta.is_object() {
            *meta = Value::Object(Default::default());
        }
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("versionId".into(), Value::String(version.to_string()));
            meta.insert("lastUpdated".into(), Value::String(format_instant(last_updated)));
        }
    }
}

/// Checks a write's expected version against the current state (`current` is 0 when the
/// resource does not exist; a deleted resource counts as absent for create-only writes).
pub fn check_expected_version(
    resource_type: &str,
    id: &str,
    expected: Option<i64>,
    current: i64,
    current_deleted: bool,
) -> Result<(), StoreError> {
    let ok = match expected {
        None => true,
        Some(0) => current == 0 || current_deleted,
        Some(v) => v == current && !current_deleted,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::VersionConflict {
            resource_type: resource_type.into(),
            id: id.into(),
            expected: expected.unwrap_or(0),
            current,
        })
    }
}

/// The current time in UTC milliseconds, for `last_updated`.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_millis() as i64
}
