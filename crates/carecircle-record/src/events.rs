//! Change events: what the record's write path announces after a write has been committed, and
//! the bus it announces them on. [`PublishingStore`] wraps any [`Store`] so that every successful
//! `apply` (single writes, Bundle entries, HL7 ingest: all of them reach the store through it)
//! publishes one [`ChangeEvent`] per resource it changed. The runtime that turns events into
//! notifications and alerts lives in `carecircle-notify`.

use std::sync::Arc;

use async_trait::async_trait;
use carecircle_fhir::search::{Include, SearchQuery};
use carecircle_store::{HistoryQuery, Page, Store, StoreError, StoredResource, WriteEffect, WriteOp, WriteOutcome};

/// What a write did to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeInteraction {
    /// A new resource (or one re-created after deletion).
    Create,
    /// A new version of an existing resource.
    Update,
    /// The resource was deleted.
    Delete,
}

impl ChangeInteraction {
    /// `create`, `update` or `delete`.
    pub fn code(self) -> &'static str {
        match self {
            ChangeInteraction::Create => "create",
            ChangeInteraction::Update => "update",
            ChangeInteraction::Delete => "delete",
        }
    }

    /// The interaction with this code.
    pub fn from_code(code: &str) -> Option<ChangeInteraction> {
        match code {
            "create" => Some(ChangeInteraction::Create),
            "update" => Some(ChangeInteraction::Update),
            "delete" => Some(ChangeInteraction::Delete),
            _ => None,
        }
    }
}

/// One committed change to one resource. It names the version, not the content: whoever acts on
/// it reads the version through the access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The resource type.
    pub resource_type: String,
    /// The logical id.
    pub id: String,
    /// The version the write produced.
    pub version: i64,
    /// What happened.
    pub interaction: ChangeInteraction,
    /// The custodian of the new version, `Organization/{id}`.
    pub custodian: Option<String>,
    /// When it was stored, UTC milliseconds.
    pub last_updated: i64,
}

impl ChangeEvent {
    /// The event for one write outcome; `None` when the write changed nothing.
    pub fn from_outcome(outcome: &WriteOutcome) -> Option<ChangeEvent> {
        let interaction = match outcome.effect {
            WriteEffect::Created => ChangeInteraction::Create,
            WriteEffect::Updated => ChangeInteraction::Update,
            WriteEffect::Deleted => ChangeInteraction::Delete,
            WriteEffect::Unchanged => return None,
        };
        Some(ChangeEvent {
            resource_type: outcome.stored.resource_type.clone(),
            id: outcome.stored.id.clone(),
            version: outcome.stored.version,
            interaction,
            custodian: outcome.stored.custodian.clone(),
            last_updated: outcome.stored.last_updated,
        })
    }
}

/// Where change events go. `publish` is called after the store committed the write and before
/// the write is answered; an implementation must not block for long (the in-process bus queues,
/// the NATS bus waits for the server's acknowledgement).
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Announces committed changes, in commit order.
    async fn publish(&self, events: Vec<ChangeEvent>);
}

/// A [`Store`] that publishes a [`ChangeEvent`] for every resource a successful `apply` changed.
/// Everything else is passed through unchanged.
pub struct PublishingStore {
    inner: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
}

impl PublishingStore {
    /// Wraps `inner`, publishing on `bus`.
    pub fn new(inner: Arc<dyn Store>, bus: Arc<dyn EventBus>) -> PublishingStore {
        PublishingStore { inner, bus }
    }

    /// The wrapped store (for writes that must not be announced).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}

#[async_trait]
impl Store for PublishingStore {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    fn write_generation(&self) -> Option<u64> {
        self.inner.write_generation()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }

    async fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>, StoreError> {
        self.inner.read(resource_type, id).await
    }

    async fn read_version(
        &self,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredResource>, StoreError> {
        self.inner.read_version(resource_type, id, version).await
    }

    async fn apply(&self, writes: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError> {
        let outcomes = self.inner.apply(writes).await?;
        let events: Vec<ChangeEvent> = outcomes.iter().filter_map(ChangeEvent::from_outcome).collect();
        if !events.is_empty() {
            self.bus.publish(events).await;
        }
        Ok(outcomes)
    }

    async fn search(&self, query: &SearchQuery) -> Result<Page, StoreError> {
        self.inner.search(query).await
    }

    async fn include(&self, sources: &[StoredResource], include: &Include) -> Result<Vec<StoredResource>, StoreError> {
        self.inner.include(sources, include).await
    }

    async fn revinclude(
        &self,
        targets: &[StoredResource],
        include: &Include,
    ) -> Result<Vec<StoredResource>, StoreError> {
        self.inner.revinclude(targets, include).await
    }

    async fn patient_compartment(&self, patient_id: &str, count: usize, offset: usize) -> Result<Page, StoreError> {
        self.inner.patient_compartment(patient_id, count, offset).await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Page, StoreError> {
        self.inner.history(query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carecircle_store_sqlite::SqliteStore;
    use serde_json::json;

    struct Discard;

    #[async_trait]
    impl EventBus for Discard {
        async fn publish(&self, _events: Vec<ChangeEvent>) {}
    }

    fn patient_write(id: &str) -> WriteOp {
        WriteOp::Put {
            resource_type: "Patient".into(),
            id: id.into(),
            resource: json!({"resourceType": "Patient", "id": id}),
            index: Vec::new(),
            custodian: Some("Organization/gp".into()),
            expected_version: None,
        }
    }

    /// The caches keyed by the write generation (principals, person facts) see the wrapped
    /// store's counter through the wrapper, and it moves for writes made beside the wrapper.
    #[tokio::test]
    async fn the_wrapper_reports_the_wrapped_stores_write_generation() {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open_dir(dir.path()).unwrap();
        inner.migrate().await.unwrap();
        let publishing = PublishingStore::new(Arc::new(inner), Arc::new(Discard));
        let before = publishing.write_generation().expect("the embedded store has a write generation");
        let beside = SqliteStore::open_dir(dir.path()).unwrap();
        beside.apply(vec![patient_write("p1")]).await.unwrap();
        let after = publishing.write_generation().expect("still known");
        assert_ne!(before, after, "a commit by another connection moves the generation seen through the wrapper");
        assert_eq!(after, publishing.write_generation().unwrap(), "and nothing else does");
    }
}
