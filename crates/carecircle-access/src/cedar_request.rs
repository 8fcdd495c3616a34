//! Cedar's inputs for one request (the `User` and `Record` entities and the context), built
//! directly from Cedar's core values: no JSON and no restricted expressions to evaluate, with
//! the entity types, actions, organisation references and label sets made once per engine.
//!
//! This uses `cedar-policy-core`, the crate `cedar-policy` is built on (pinned to the same
//! version), because `cedar-policy`'s own constructors evaluate every attribute as an
//! expression and recompute the entity hierarchy, which cost more than the decision itself.
//! What is built here is checked against the Cedar schema by
//! [`crate::AccessEngine::request_conforms_to_schema`] and its tests.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cedar_policy::{EntityTypeName, EntityUid};
use cedar_policy_core::ast::{self, Eid, EntityUID, EntityUIDEntry, PartialValue, Value};
use cedar_policy_core::entities::{NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use smol_str::SmolStr;

use crate::codes::{LabelSet, Purpose};
use crate::engine::{Action, EngineError, Requester};
use crate::organisation::Organisation;

/// The id of the `Record` entity every request is about (the policies only read its
/// attributes, never its id).
const TARGET_RECORD: &str = "target";

/// The facts of the `Record` entity.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordFacts<'a> {
    /// The FHIR resource type.
    pub resource_type: &'a str,
    /// The custodian partner.
    pub custodian: &'a Organisation,
    /// The person the resource is about.
    pub subject: Option<&'a str>,
    /// The resource's sensitivity labels.
    pub labels: LabelSet,
}

/// The facts of the request context (see `policy::CEDAR_SCHEMA`, `AccessContext`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ContextFacts {
    pub purpose: Purpose,
    pub today: i64,
    pub break_glass: bool,
    pub break_glass_reason_given: bool,
    pub relationship: bool,
    pub consent_permits: bool,
    pub consent_refuses_emergency: bool,
    pub national_opt_out: bool,
}

/// Distinguishes engines in the per-thread caches (their organisations may differ).
static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

/// The most contexts a thread keeps (a day's requests need at most 5 purposes × 64).
const MAX_CACHED_CONTEXTS: usize = 1024;

thread_local! {
    /// The last `User` entity built on this thread, with its inputs (engine and requester):
    /// consecutive decisions for one user (a page of results, a session) reuse it.
    static LAST_USER: RefCell<Option<(u64, Requester, Arc<ast::Entity>)>> = const { RefCell::new(None) };
    /// Contexts built on this thread, by their inputs (a context holds nothing else).
    static CONTEXTS: RefCell<HashMap<(i64, u16), ast::Context>> = RefCell::new(HashMap::new());
}

/// Everything about Cedar's inputs that is the same for every request of one engine.
pub(crate) struct CedarInputs {
    /// This engine's number, for the per-thread caches.
    engine_id: u64,
    user_type: ast::EntityType,
    organization_type: ast::EntityType,
    read: Arc<EntityUID>,
    write: Arc<EntityUID>,
    target: Arc<EntityUID>,
    /// `CareCircle::Organization` references by organisation id.
    organisations: HashMap<String, Value>,
    /// The `labels` attribute for each [`LabelSet`], by its bits.
    label_sets: Vec<Value>,
}

fn cedar_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Cedar(e.to_string())
}

fn entity_type(name: &str) -> Result<ast::EntityType, EngineError> {
    let name = EntityTypeName::from_str(name).map_err(cedar_err)?;
    Ok(AsRef::<ast::EntityType>::as_ref(&name).clone())
}

fn string(s: &str) -> Value {
    Value::from(SmolStr::new(s))
}

fn static_string(s: &'static str) -> Value {
    Value::from(SmolStr::new_static(s))
}

impl CedarInputs {
    /// Names and values for the engine's organisations.
    pub(crate) fn new<'a>(
        organisations: impl IntoIterator<Item = &'a Organisation>,
    ) -> Result<CedarInputs, EngineError> {
        let action_type = entity_type("CareCircle::Action")?;
        let record_type = entity_type("CareCircle::Record")?;
        let organization_type = entity_type("CareCircle::Organization")?;
        let uid = |t: &ast::EntityType, id: &str| Arc::new(EntityUID::from_components(t.clone(), Eid::new(id), None));
        let label_sets = (0..=LabelSet::ALL.bits())
            .map(|bits| {
                let labels = LabelSet::from_bits(bits);
                Value::set(labels.to_vec().into_iter().map(|l| static_string(l.code())), None)
            })
            .collect();
        let organisations =
            organisations.into_iter().map(|o| (o.id.clone(), Value::from(uid(&organization_type, &o.id)))).collect();
        Ok(CedarInputs {
            engine_id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            user_type: entity_type("CareCircle::User")?,
            read: uid(&action_type, "read"),
            write: uid(&action_type, "write"),
            target: uid(&record_type, TARGET_RECORD),
            organization_type,
            organisations,
            label_sets,
        })
    }

    fn organisation(&self, id: &str) -> Value {
        match self.organisations.get(id) {
            Some(value) => value.clone(),
            None => Value::from(EntityUID::from_components(self.organization_type.clone(), Eid::new(id), None)),
        }
    }

    /// The `User` entity, reused from this thread's last one when its inputs are the same.
    pub(crate) fn user(
        &self,
        who: &Requester,
        organisation: &Organisation,
        partner: &Organisation,
    ) -> Arc<ast::Entity> {
        let cached = LAST_USER.with_borrow(|last| match last {
            Some((engine, requester, entity)) if *engine == self.engine_id && requester == who => {
                Some(Arc::clone(entity))
            }
            _ => None,
        });
        if let Some(entity) = cached {
            return entity;
        }
        let entity = Arc::new(self.build_user(who, organisation, partner));
        LAST_USER.set(Some((self.engine_id, who.clone(), Arc::clone(&entity))));
        entity
    }

    /// The `User` entity, built.
    pub(crate) fn build_user(
        &self,
        who: &Requester,
        organisation: &Organisation,
        partner: &Organisation,
    ) -> ast::Entity {
        let uid = EntityUID::from_components(self.user_type.clone(), Eid::new(who.user_id.as_str()), None);
        let attrs: [(&'static str, Value); 6] = [
            ("kind", static_string(who.kind.code())),
            ("role", string(&who.role)),
            ("organization", self.organisation(&organisation.id)),
            ("partner", self.organisation(&partner.id)),
            ("sector", static_string(partner.sector.code())),
            ("person", string(who.person_id.as_deref().unwrap_or(""))),
        ];
        ast::Entity::new_with_attr_partial_value(
            uid,
            attrs.into_iter().map(|(k, v)| (SmolStr::new_static(k), PartialValue::Value(v))),
            HashSet::new(),
            HashSet::new(),
            [],
        )
    }

    /// The `Record` entity.
    pub(crate) fn record(&self, facts: &RecordFacts<'_>) -> ast::Entity {
        let labels =
            self.label_sets.get(usize::from(facts.labels.bits())).cloned().unwrap_or_else(|| {
                Value::set(facts.labels.to_vec().into_iter().map(|l| static_string(l.code())), None)
            });
        let attrs: [(&'static str, Value); 5] = [
            ("resource_type", string(facts.resource_type)),
            ("labels", labels),
            ("custodian", self.organisation(&facts.custodian.id)),
            ("custodian_sector", static_string(facts.custodian.sector.code())),
            ("subject", string(facts.subject.unwrap_or(""))),
        ];
        ast::Entity::new_with_attr_partial_value(
            (*self.target).clone(),
            attrs.into_iter().map(|(k, v)| (SmolStr::new_static(k), PartialValue::Value(v))),
            HashSet::new(),
            HashSet::new(),
            [],
        )
    }

    /// The request context, reused from this thread's cache when its inputs are the same.
    pub(crate) fn context(&self, f: &ContextFacts) -> ast::Context {
        let purpose = Purpose::ALL.iter().position(|p| *p == f.purpose).unwrap_or(0);
        let flags = [
            f.break_glass,
            f.break_glass_reason_given,
            f.relationship,
            f.consent_permits,
            f.consent_refuses_emergency,
            f.national_opt_out,
        ];
        let bits = flags.iter().fold(purpose as u16, |acc, flag| (acc << 1) | u16::from(*flag));
        let key = (f.today, bits);
        if let Some(context) = CONTEXTS.with_borrow(|cache| cache.get(&key).cloned()) {
            return context;
        }
        let context = Self::build_context(f);
        CONTEXTS.with_borrow_mut(|cache| {
            if cache.len() >= MAX_CACHED_CONTEXTS {
                cache.clear();
            }
            cache.insert(key, context.clone());
        });
        context
    }

    /// The request context, built.
    fn build_context(f: &ContextFacts) -> ast::Context {
        let pairs: [(&'static str, Value); 8] = [
            ("purpose", static_string(f.purpose.code())),
            ("today", Value::from(f.today)),
            ("break_glass", Value::from(f.break_glass)),
            ("break_glass_reason_given", Value::from(f.break_glass_reason_given)),
            ("relationship", Value::from(f.relationship)),
            ("consent_permits", Value::from(f.consent_permits)),
            ("consent_refuses_emergency", Value::from(f.consent_refuses_emergency)),
            ("national_opt_out", Value::from(f.national_opt_out)),
        ];
        ast::Context::Value(Arc::new(
            pairs.into_iter().map(|(k, v)| (SmolStr::new_static(k), v)).collect::<BTreeMap<_, _>>(),
        ))
    }

    /// The action's uid.
    pub(crate) fn action(&self, action: Action) -> EntityUid {
        EntityUid::from(match action {
            Action::Read => (*self.read).clone(),
            Action::Write => (*self.write).clone(),
        })
    }

    /// The Cedar request of `user` for the target record.
    pub(crate) fn core_request(&self, user: &ast::Entity, action: Action, context: ast::Context) -> ast::Request {
        let action = match action {
            Action::Read => &self.read,
            Action::Write => &self.write,
        };
        ast::Request::new_unchecked(
            EntityUIDEntry::known(user.uid().clone(), None),
            EntityUIDEntry::Known { euid: Arc::clone(action), loc: None },
            EntityUIDEntry::Known { euid: Arc::clone(&self.target), loc: None },
            Some(context),
        )
    }

    /// The uid of the target record.
    pub(crate) fn target(&self) -> EntityUid {
        EntityUid::from((*self.target).clone())
    }

    /// The entity store of one request: the user and the record. Neither has parents, so
    /// there is no hierarchy to compute.
    pub(crate) fn core_entities(
        &self,
        user: Arc<ast::Entity>,
        record: ast::Entity,
    ) -> Result<cedar_policy_core::entities::Entities, EngineError> {
        cedar_policy_core::entities::Entities::new()
            .add_entities(
                [user, Arc::new(record)],
                None::<&NoEntitiesSchema>,
                TCComputation::AssumeAlreadyComputed,
                Extensions::none(),
            )
            .map_err(cedar_err)
    }
}
