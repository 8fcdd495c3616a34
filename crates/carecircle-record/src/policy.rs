//! The access decision as the record applies it: gathers the facts a decision needs from the
//! record (the partnership's organisations and agreements, the person's consents, whether the
//! asking organisation is in the person's care) and asks the Cedar engine of
//! `carecircle-access`, one verdict per resource.
//!
//! Freshness: agreements and organisations are rebuilt into the engine after any write of a
//! `Contract` or `Organization` through this process. Person facts (consents, care teams,
//! national opt-out) are read from the record for every request; with `cache_person_facts`
//! (safe only when this process is the only writer, as with the embedded SQLite store) they are
//! cached and dropped synchronously by any write that could change them, before that write is
//! answered, so a withdrawn consent governs the very next request.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use carecircle_access::engine::{
    AccessEngine, AccessRequest, Action, Effect, Relationship, Requester, Scheme, Target, UserKind,
};
use carecircle_access::{Agreement, Organisation, PersonConsent, Purpose, SensitivityLabel};
use carecircle_fhir::search::Handling;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::Value;

use crate::session::{AccessAction, AccessControl, Candidate, Verdict};
use crate::{Principal, PrincipalKind, Record, RecordError};

/// The Patient extension that records a national data opt-out (secondary uses only).
pub const NATIONAL_OPT_OUT_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/national-opt-out";

/// Types whose writes change what the engine was built from.
const ENGINE_TYPES: [&str; 2] = ["Contract", "Organization"];
/// Persons whose facts one decision reads at the same time.
const CONCURRENT_FACTS: usize = 8;
/// Types whose writes change a person's facts.
const PERSON_TYPES: [&str; 3] = ["Consent", "CareTeam", "Patient"];

/// What the record knows about one person that decisions depend on.
#[derive(Debug, Clone)]
struct PersonFacts {
    consent: Arc<PersonConsent>,
    /// A Consent of the person could not be read: other organisations' staff are refused until
    /// it is corrected (an unreadable objection must not turn into sharing).
    consent_unreadable: bool,
    /// Partner organisations in the person's care team.
    care_orgs: BTreeSet<String>,
    /// Partner organisations holding a record of the person (on their list).
    list_orgs: BTreeSet<String>,
}

/// The Cedar-backed access decision over a record.
pub struct PolicyAccess {
    record: Record,
    scheme: Scheme,
    home: String,
    engine: RwLock<Arc<AccessEngine>>,
    organisations: RwLock<Arc<HashMap<String, Organisation>>>,
    /// The partnership's organisations as stored, for the care-coordination rules.
    directory: RwLock<Arc<carecircle_care::OrgDirectory>>,
    cache_person_facts: bool,
    person_cache: Mutex<HashMap<String, PersonFacts>>,
    generation: AtomicU64,
    /// The store's write generation the person cache agrees with (`u64::MAX`: none yet). Any
    /// write since (this process's, announced or not, or another process's, such as
    /// `carecircle import` beside `serve`) drops the whole cache before it is used again: the
    /// store cannot say whose write it was, and a stale permit is never acceptable.
    store_seen: AtomicU64,
}

fn bare(reference: &str, resource_type: &str) -> String {
    reference.strip_prefix(resource_type).and_then(|r| r.strip_prefix('/')).unwrap_or(reference).to_string()
}

fn labels_of(resource: &Value) -> Vec<SensitivityLabel> {
    resource
        .pointer("/meta/security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| SensitivityLabel::from_coding(c.get("system")?.as_str()?, c.get("code")?.as_str()?))
        .collect()
}

async fn all_of(
    record: &Record,
    resource_type: &str,
    params: Vec<(String, String)>,
) -> Result<Vec<Value>, RecordError> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    loop {
        let mut query = params.clone();
        query.push(("_count".into(), "1000".into()));
        query.push(("_offset".into(), offset.to_string()));
        let result = record.search(Some(resource_type), &query, Handling::Strict).await?;
        let n = result.page.entries.len();
        out.extend(result.page.entries.iter().filter_map(|r| r.json()));
        if n < 1000 {
            return Ok(out);
        }
        offset += n;
    }
}

impl PolicyAccess {
    /// Loads the partnership's organisations and agreements from `record` and builds the engine.
    /// `home` is the partnership's own organisation (`Organization/{id}`, the custodian of what
    /// persons and the administrator write, such as agreements): it takes part in decisions even
    /// when it is not a care partner with a sector of its own.
    pub async fn load(
        record: Record,
        scheme: Scheme,
        cache_person_facts: bool,
        home: &str,
    ) -> Result<PolicyAccess, RecordError> {
        let home = bare(home, "Organization");
        let (engine, organisations, directory) = PolicyAccess::build(&record, &scheme, &home).await?;
        Ok(PolicyAccess {
            record,
            scheme,
            home,
            engine: RwLock::new(Arc::new(engine)),
            organisations: RwLock::new(Arc::new(organisations)),
            directory: RwLock::new(Arc::new(directory)),
            cache_person_facts,
            person_cache: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            store_seen: AtomicU64::new(u64::MAX),
        })
    }

    async fn build(
        record: &Record,
        scheme: &Scheme,
        home: &str,
    ) -> Result<(AccessEngine, HashMap<String, Organisation>, carecircle_care::OrgDirectory), RecordError> {
        let mut organisations = Vec::new();
        let organization_resources = all_of(record, "Organization", Vec::new()).await?;
        let directory = carecircle_care::OrgDirectory::from_organizations(organization_resources.iter());
        for resource in organization_resources {
            match Organisation::from_resource(&resource) {
                Ok(org) => organisations.push(org),
                Err(e) => {
                    tracing::debug!(error = %e, "an Organization without a partner sector takes no part in agreements")
                }
            }
        }
        if !organisations.iter().any(|o| o.id == home) {
            // The partnership itself holds governance data (agreements, consents people record
            // themselves). Only administrators and persons act for it, and sector rules apply to
            // staff alone, so the sector given here decides nothing; it is registered so that
            // decisions about its data can be made at all.
            organisations.push(Organisation {
                id: home.to_string(),
                name: "the partnership".into(),
                sector: carecircle_access::Sector::Voluntary,
                part_of: None,
            });
        }
        let mut agreements = Vec::new();
        // Only Contracts that claim the agreement profile are agreements; other Contracts are
        // ordinary records.
        let profile = vec![("_profile".to_string(), carecircle_access::agreement::AGREEMENT_PROFILE.to_string())];
        let home_reference = format!("Organization/{home}");
        for resource in all_of(record, "Contract", profile).await? {
            // Agreements are the partnership's: a Contract any partner wrote itself grants nothing.
            if resource.pointer("/meta/source").and_then(Value::as_str) != Some(home_reference.as_str()) {
                tracing::warn!("a Contract claiming the agreement profile was not written by the partnership; ignored");
                continue;
            }
            match Agreement::from_contract(&resource) {
                Ok(agreement) => agreements.push(agreement),
                Err(e) => {
                    tracing::warn!(error = %e, "a Contract that does not follow the agreement profile is ignored")
                }
            }
        }
        // An agreement naming an unknown organisation would fail the whole build; leave it out
        // (it cannot grant anything) and say so.
        let known: BTreeSet<&str> = organisations.iter().map(|o| o.id.as_str()).collect();
        agreements.retain(|a: &Agreement| {
            let unknown: Vec<&str> = a.parties.iter().map(String::as_str).filter(|p| !known.contains(p)).collect();
            if !unknown.is_empty() {
                tracing::warn!(agreement = %a.id, ?unknown, "an agreement names organisations that are not registered; ignored");
            }
            unknown.is_empty()
        });
        let engine = AccessEngine::new(&agreements, &organisations, scheme.clone())
            .map_err(|e| RecordError::Internal(format!("building the access engine: {e}")))?;
        Ok((engine, organisations.into_iter().map(|o| (o.id.clone(), o)).collect(), directory))
    }

    fn engine(&self) -> Arc<AccessEngine> {
        self.engine.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn partner_of(&self, org_id: &str) -> String {
        let organisations = self.organisations.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut current = org_id.to_string();
        for _ in 0..4 {
            match organisations.get(&current).and_then(|o| o.part_of.clone()) {
                Some(parent) => current = parent,
                None => break,
            }
        }
        current
    }

    /// Drops the person cache when the store was written since it was filled (see
    /// `store_seen`). Without a write generation nothing may be cached.
    fn forget_unannounced_writes(&self) -> bool {
        let reading = REQUEST_GENERATION.try_with(|generation| *generation).ok().flatten();
        let Some(now) = reading.or_else(|| self.record.store().write_generation()) else { return false };
        if self.store_seen.swap(now, Ordering::SeqCst) != now {
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.person_cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        true
    }

    async fn person_facts(&self, person: &str) -> Result<PersonFacts, RecordError> {
        if self.cache_person_facts && self.forget_unannounced_writes() {
            if let Some(facts) = self.person_cache.lock().unwrap_or_else(|e| e.into_inner()).get(person) {
                return Ok(facts.clone());
            }
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let patient_ref = format!("Patient/{person}");
        // The three reads are independent: made together, they wait for one turn of the store.
        let (consents, patient, teams) = futures_util::future::try_join3(
            all_of(&self.record, "Consent", vec![("patient".into(), patient_ref.clone())]),
            async { Ok(self.record.store().read("Patient", person).await?) },
            all_of(&self.record, "CareTeam", vec![("subject".into(), patient_ref.clone())]),
        )
        .await?;
        let patient = patient.filter(|r| !r.deleted);
        let national_opt_out = patient
            .as_ref()
            .and_then(|p| p.json())
            .and_then(|p| p.get("extension").cloned())
            .and_then(|e| e.as_array().cloned())
            .is_some_and(|exts| {
                exts.iter().any(|e| e["url"] == NATIONAL_OPT_OUT_EXTENSION && e["valueBoolean"] == true)
            });
        let (consent, consent_unreadable) = match PersonConsent::from_resources(&consents, national_opt_out) {
            Ok(consent) => (consent, false),
            Err(e) => {
                tracing::warn!(person, error = %e, "a Consent could not be read; other organisations are refused");
                (PersonConsent::none(), true)
            }
        };
        let mut care_orgs = BTreeSet::new();
        for team in teams {
            if team.get("status").and_then(Value::as_str).is_some_and(|s| s != "active" && s != "proposed") {
                continue;
            }
            for participant in team.get("participant").and_then(Value::as_array).into_iter().flatten() {
                if participant
                    .pointer("/period/end")
                    .and_then(Value::as_str)
                    .is_some_and(|end| end < today_text().as_str())
                {
                    continue;
                }
                for field in ["onBehalfOf", "member"] {
                    if let Some(reference) = participant.pointer(&format!("/{field}/reference")).and_then(Value::as_str)
                    {
                        if reference.starts_with("Organization/") {
                            care_orgs.insert(self.partner_of(&bare(reference, "Organization")));
                        }
                    }
                }
            }
        }
        let mut list_orgs = BTreeSet::new();
        if let Some(custodian) = patient.as_ref().and_then(|p| p.custodian.as_deref()) {
            list_orgs.insert(self.partner_of(&bare(custodian, "Organization")));
        }
        let facts = PersonFacts { consent: Arc::new(consent), consent_unreadable, care_orgs, list_orgs };
        if self.cache_person_facts && self.generation.load(Ordering::SeqCst) == generation {
            self.person_cache.lock().unwrap_or_else(|e| e.into_inner()).insert(person.to_string(), facts.clone());
        }
        Ok(facts)
    }

    fn requester(&self, principal: &Principal) -> Requester {
        let (kind, person_id) = match principal.kind {
            PrincipalKind::Practitioner => (UserKind::Practitioner, None),
            PrincipalKind::Patient => (UserKind::Person, Some(bare(&principal.subject, "Patient"))),
            PrincipalKind::System => (UserKind::SystemClient, None),
            PrincipalKind::Admin => (UserKind::Administrator, None),
        };
        Requester {
            user_id: principal.subject.clone(),
            organisation_id: principal
                .organization
                .as_deref()
                .map(|o| self.partner_of(&bare(o, "Organization")))
                .unwrap_or_default(),
            kind,
            role: principal.role.clone().unwrap_or_default(),
            person_id,
        }
    }

    /// The request the engine is asked for one candidate, with the person's consent.
    async fn request_for(
        &self,
        principal: &Principal,
        action: AccessAction,
        candidate: &Candidate<'_>,
        facts_cache: &mut HashMap<String, PersonFacts>,
    ) -> Result<(AccessRequest, Arc<PersonConsent>, Option<bool>, bool), RecordError> {
        let requester = self.requester(principal);
        let person =
            crate::person_of(candidate.resource_type, candidate.id, candidate.resource).filter(|p| !p.is_empty());
        let mut unreadable = false;
        let (consent, relationship) = match &person {
            Some(person) => {
                let facts = match facts_cache.get(person) {
                    Some(f) => f.clone(),
                    None => {
                        let f = self.person_facts(person).await?;
                        facts_cache.insert(person.clone(), f.clone());
                        f
                    }
                };
                let org = &requester.organisation_id;
                let relationship = Relationship {
                    in_care_team: !org.is_empty() && facts.care_orgs.contains(org),
                    on_partner_list: !org.is_empty() && facts.list_orgs.contains(org),
                };
                unreadable = facts.consent_unreadable;
                (facts.consent.clone(), relationship)
            }
            None => (Arc::new(PersonConsent::none()), Relationship::default()),
        };
        let in_care = person.as_ref().map(|_| relationship.in_care_team || relationship.on_partner_list);
        let purpose = Purpose::from_code(&principal.purpose)
            .unwrap_or(Purpose::from_code(crate::DEFAULT_PURPOSE).unwrap_or(Purpose::ALL[0]));
        let custodian = candidate.custodian.map(|c| self.partner_of(&bare(c, "Organization"))).unwrap_or_default();
        let request = AccessRequest {
            who: requester,
            purpose,
            break_glass_reason: principal.reason.clone().filter(|_| principal.purpose == "ETREAT"),
            what: Target {
                resource_type: candidate.resource_type.to_string(),
                action: if action == AccessAction::Read { Action::Read } else { Action::Write },
                custodian_id: custodian,
                subject_person: person,
                labels: Some(labels_of(candidate.resource)),
            },
            relationship,
            today: today(),
        };
        Ok((request, consent, in_care, unreadable))
    }
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

fn today_text() -> String {
    let d = today();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Whether a Task is a closed-loop referral between partners (Gravity pattern): it fulfils a
/// `ServiceRequest`, is requested by one organisation and owned by another. Other Tasks
/// (including a practitioner's own worklist items) are ordinary records.
pub(crate) fn is_referral(task: &Value) -> bool {
    let organisation =
        |pointer: &str| task.pointer(pointer).and_then(Value::as_str).is_some_and(|r| r.starts_with("Organization/"));
    task.pointer("/focus/reference").and_then(Value::as_str).is_some_and(|r| r.starts_with("ServiceRequest/"))
        && organisation("/owner/reference")
        && organisation("/requester/reference")
}

impl PolicyAccess {
    /// The referral state machine: a new referral starts as requested by its requester; each
    /// change is a transition the table in `carecircle-care` allows for the party making it.
    fn check_referral(&self, principal: &Principal, old: Option<&Value>, new: &Value) -> Result<(), RecordError> {
        if !is_referral(new) && !old.is_some_and(is_referral) {
            return Ok(());
        }
        let Some(actor) = principal.organization.as_deref().and_then(carecircle_care::OrgId::from_reference) else {
            return Err(RecordError::Forbidden(carecircle_fhir::Issue::error(
                carecircle_fhir::IssueType::Forbidden,
                "referrals are made and answered by partner organisations' staff and systems",
            )));
        };
        let directory = self.directory.read().unwrap_or_else(|e| e.into_inner()).clone();
        let checked = match old {
            None => carecircle_care::check_new_referral(new, &actor, &directory),
            Some(old) => carecircle_care::check_task_transition(old, new, &actor, &directory),
        };
        checked.map(|_| ()).map_err(|error| match error {
            carecircle_care::TransitionError::NotAParty { .. } => RecordError::Forbidden(error.to_issue()),
            other => RecordError::Invalid(other.to_issues()),
        })
    }
}

tokio::task_local! {
    /// The store's write generation read when the current request arrived.
    static REQUEST_GENERATION: Option<u64>;
}

/// Runs one request's `work` with the store's write generation as read after the request
/// arrived (by authentication, which needs it for the principal), so that the person-facts check
/// reuses that reading instead of asking the store again. Any reading taken after the request
/// arrived sees every write committed before it, which is what "a withdrawal governs the very
/// next request" needs; work outside such a scope (the notifier, the HL7 v2 ingest, spawned
/// tasks) asks the store itself.
pub async fn with_request_generation<F: std::future::Future>(generation: Option<u64>, work: F) -> F::Output {
    REQUEST_GENERATION.scope(generation, work).await
}

#[async_trait]
impl AccessControl for PolicyAccess {
    async fn decide(
        &self,
        principal: &Principal,
        action: AccessAction,
        candidates: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, RecordError> {
        let engine = self.engine();
        // The facts of every person the candidates are about, read a few persons at a time
        // (each takes three store reads): a page of search results about many persons waits for
        // a few rounds of reads, not one per person.
        let persons: BTreeSet<String> = candidates
            .iter()
            .filter_map(|c| crate::person_of(c.resource_type, c.id, c.resource).filter(|p| !p.is_empty()))
            .collect();
        let mut facts_cache = HashMap::new();
        if persons.len() > 1 {
            let mut reads = Vec::with_capacity(persons.len());
            for person in &persons {
                reads.push(self.person_facts(person));
            }
            let facts: Vec<PersonFacts> =
                futures_util::stream::iter(reads).buffered(CONCURRENT_FACTS).try_collect().await?;
            facts_cache.extend(persons.into_iter().zip(facts));
        }
        let mut verdicts = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let (request, consent, in_care, unreadable) =
                self.request_for(principal, action, candidate, &mut facts_cache).await?;
            let staff = matches!(principal.kind, PrincipalKind::Practitioner | PrincipalKind::System);
            if unreadable && staff && request.who.organisation_id != request.what.custodian_id {
                verdicts.push(Verdict {
                    permit: false,
                    break_glass: false,
                    in_care_relationship: in_care,
                    policy_id: "consent:unreadable".into(),
                    clause_ids: vec!["consent:unreadable".into()],
                    explanation: "the person's consent could not be read, so nothing is shared with other organisations until it is corrected".into(),
                });
                continue;
            }
            let decision = engine.decide(&request, &consent);
            let labels = request.what.labels.clone().unwrap_or_default();
            let permit = match decision.effect {
                Effect::Permit => true,
                Effect::PermitWithFiltering => !labels.iter().any(|l| decision.withheld_labels.contains(l)),
                Effect::Deny => false,
            };
            let explanation = if decision.reasons.is_empty() {
                "no agreement or consent provision permits it (deny by default)".to_string()
            } else {
                decision.reasons.iter().map(|r| r.text.clone()).collect::<Vec<_>>().join("; ")
            };
            verdicts.push(Verdict {
                permit,
                break_glass: decision.break_glass && permit,
                in_care_relationship: in_care,
                policy_id: decision
                    .reasons
                    .first()
                    .map(|r| r.policy_id.clone())
                    .unwrap_or_else(|| "default-deny".into()),
                clause_ids: decision.reasons.iter().map(|r| r.policy_id.clone()).collect(),
                explanation,
            });
        }
        Ok(verdicts)
    }

    async fn explain(
        &self,
        principal: &Principal,
        action: AccessAction,
        candidate: &Candidate<'_>,
    ) -> Result<String, RecordError> {
        let (request, consent, _, _) = self.request_for(principal, action, candidate, &mut HashMap::new()).await?;
        Ok(self.engine().explain(&request, &consent))
    }

    async fn check_write(
        &self,
        principal: &Principal,
        resource_type: &str,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<(), RecordError> {
        let claims_profile = |r: &Value| {
            r.pointer("/meta/profile")
                .and_then(Value::as_array)
                .is_some_and(|p| p.iter().any(|p| p == carecircle_access::agreement::AGREEMENT_PROFILE))
        };
        if resource_type == "Task" {
            return self.check_referral(principal, old, new);
        }
        if resource_type == "Flag" {
            // Risk flags feed alerts and situations: their codes, status and period must hold.
            return carecircle_care::parse_flag(new).map(|_| ()).map_err(|problems| {
                RecordError::Invalid(problems.iter().map(carecircle_care::Problem::to_issue).collect())
            });
        }
        if resource_type != "Contract" || !(claims_profile(new) || old.is_some_and(claims_profile)) {
            return Ok(());
        }
        if !principal.is_admin() {
            return Err(RecordError::Forbidden(carecircle_fhir::Issue::error(
                carecircle_fhir::IssueType::Forbidden,
                "data-sharing agreements are managed by the partnership's administrator",
            )));
        }
        carecircle_access::check_transition(old.filter(|o| claims_profile(o)), new).map_err(|problems| {
            RecordError::Invalid(
                problems
                    .into_iter()
                    .map(|p| {
                        carecircle_fhir::Issue::error(carecircle_fhir::IssueType::BusinessRule, p.message)
                            .at(p.expression)
                    })
                    .collect(),
            )
        })
    }

    fn org_directory(&self) -> Arc<carecircle_care::OrgDirectory> {
        self.directory.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn after_write(&self, resource_type: &str, resource: Option<&Value>) {
        if PERSON_TYPES.contains(&resource_type) || resource.is_none() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            let mut cache = self.person_cache.lock().unwrap_or_else(|e| e.into_inner());
            match resource.and_then(|r| {
                crate::person_of(resource_type, r.get("id").and_then(Value::as_str).unwrap_or_default(), r)
            }) {
                Some(person) => {
                    cache.remove(&person);
                }
                None => cache.clear(),
            }
        }
        if ENGINE_TYPES.contains(&resource_type) {
            match PolicyAccess::build(&self.record, &self.scheme, &self.home).await {
                Ok((engine, organisations, directory)) => {
                    *self.engine.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(engine);
                    *self.organisations.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(organisations);
                    *self.directory.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(directory);
                }
                Err(e) => {
                    tracing::error!(error = %e, "rebuilding the access engine failed; the previous agreements stay in force")
                }
            }
        }
    }
}
