//! The access decision: one [`AccessEngine::decide`] call for every read and write, combining
//! the baseline policies and the agreements (in Cedar) with the person's consent (evaluated
//! in Rust, its answer passed to Cedar's consent gate), with reasons and an explanation.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use cedar_policy::{Authorizer, Context, Entities, Entity, EntityUid, PolicySet, Schema};
use cedar_policy_core::ast::{self, Literal, SlotEnv, ValueKind};
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;
use time::Date;

use crate::agreement::{Agreement, AgreementState};
use crate::cedar_request::{CedarInputs, ContextFacts, RecordFacts};
use crate::codes::{LabelSet, Purpose, Sector, SensitivityLabel};
use crate::consent::{
    verdict, ConsentAnswer, ConsentModel, ConsentQuery, ConsentSource, ConsentVerdict, PersonConsent,
};
use crate::organisation::Organisation;
use crate::policy::{
    baseline_policies, build_policy_set, clause_policy, schema, PolicyBuildError, PolicyIndex, PolicyInfo,
    PolicySource, RequestKey,
};
use crate::policy_sets::PolicySets;
use crate::profile::date_number;

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserKind {
    /// Staff of a partner organisation.
    Practitioner,
    /// The person the record is about (or a carer acting as them through the portal).
    Person,
    /// A partner's system, authenticated as that organisation.
    SystemClient,
    /// A partnership administrator (governance data only).
    Administrator,
}

impl UserKind {
    /// Every kind of user.
    pub const ALL: [UserKind; 4] =
        [UserKind::Practitioner, UserKind::Person, UserKind::SystemClient, UserKind::Administrator];

    /// The code policies compare `principal.kind` with.
    pub const fn code(self) -> &'static str {
        match self {
            UserKind::Practitioner => "practitioner",
            UserKind::Person => "person",
            UserKind::SystemClient => "system",
            UserKind::Administrator => "administrator",
        }
    }
}

/// The user making a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    /// User id (Practitioner id, person id, client id...).
    pub user_id: String,
    /// The organisation (partner or team) the user acts for.
    pub organisation_id: String,
    /// The kind of user.
    pub kind: UserKind,
    /// The user's role code (for example `paramedic`); decides who may break the glass.
    pub role: String,
    /// For [`UserKind::Person`]: the person's (master) id.
    pub person_id: Option<String>,
}

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read (read, vread, search, history).
    Read,
    /// Create, update or delete.
    Write,
}

/// What the request is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The FHIR resource type.
    pub resource_type: String,
    /// Read or write.
    pub action: Action,
    /// The custodian organisation (a team maps to its partner).
    pub custodian_id: String,
    /// The person the resource is about (master person id), if any.
    pub subject_person: Option<String>,
    /// The resource's sensitivity labels (`meta.security`); `None` for a search over the type
    /// before the results are known, answered with [`Effect::PermitWithFiltering`] when some
    /// labels must be withheld.
    pub labels: Option<Vec<SensitivityLabel>>,
}

/// The user's organisation's relationship with the person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relationship {
    /// The user's organisation is in the person's care team.
    pub in_care_team: bool,
    /// The person is on the user's organisation's list (registered, open episode, caseload).
    pub on_partner_list: bool,
}

/// One request for access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRequest {
    /// Who.
    pub who: Requester,
    /// Why (defaults to `TREAT`).
    pub purpose: Purpose,
    /// Break-glass: the free-text reason given. Only with purpose `ETREAT`.
    pub break_glass_reason: Option<String>,
    /// What.
    pub what: Target,
    /// The relationship with the person.
    pub relationship: Relationship,
    /// The day of the request (agreements apply by day).
    pub today: Date,
}

/// The effect of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Allowed.
    Permit,
    /// Allowed, but resources carrying [`Decision::withheld_labels`] must be left out.
    PermitWithFiltering,
    /// Refused.
    Deny,
}

/// What a reason refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReasonKind {
    /// A clause of a data-sharing agreement.
    Agreement {
        /// `Contract.id`.
        contract_id: String,
        /// `Contract.term.id`.
        clause: String,
    },
    /// A provision of the person's consent.
    Consent {
        /// `Consent.id`.
        consent_id: String,
        /// The deciding provision (`Consent.provision.provision[0]`); empty when the consent
        /// was withdrawn as a whole.
        provision_path: String,
    },
    /// A standing rule of the partnership (including the consent scheme's default).
    Baseline,
}

/// Why: one policy or provision that decided, with a stable id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    /// The Cedar policy id (`agreement:{contract}/{clause}`, `baseline:…`, `consent:…`).
    pub policy_id: String,
    /// What it refers to.
    pub kind: ReasonKind,
    /// Plain words.
    pub text: String,
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Permit, permit with filtering, or deny.
    pub effect: Effect,
    /// What decided.
    pub reasons: Vec<Reason>,
    /// The request was a break-glass request: audit it and queue it for review.
    pub break_glass: bool,
    /// Sensitive labels withheld: on a search, resources carrying them must be left out; on
    /// a denied read, the labels that caused the refusal.
    pub withheld_labels: Vec<SensitivityLabel>,
}

impl Decision {
    /// True for [`Effect::Permit`] and [`Effect::PermitWithFiltering`].
    pub fn is_permitted(&self) -> bool {
        self.effect != Effect::Deny
    }
}

/// The partnership's configuration of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheme {
    /// Opt-in or opt-out.
    pub consent_model: ConsentModel,
    /// Role codes (`PractitionerRole.code`) whose holders may break the glass.
    pub break_glass_roles: Vec<String>,
}

/// Role codes of the demo partnership that may break the glass: emergency and crisis staff,
/// GPs and psychiatrists.
pub const DEFAULT_BREAK_GLASS_ROLES: [&str; 9] = [
    "ed-nurse",
    "ed-consultant",
    "paramedic",
    "mental-health-paramedic",
    "crisis-worker",
    "gp",
    "consultant-psychiatrist",
    "liaison-psychiatry-nurse",
    "care-coordinator",
];

impl Scheme {
    /// `model` with [`DEFAULT_BREAK_GLASS_ROLES`].
    pub fn new(model: ConsentModel) -> Scheme {
        Scheme {
            consent_model: model,
            break_glass_roles: DEFAULT_BREAK_GLASS_ROLES.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A problem building the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The policies could not be built or did not validate.
    #[error(transparent)]
    Policy(#[from] PolicyBuildError),
    /// An agreement names an organisation that is not registered.
    #[error("agreement {agreement} names Organization/{organisation}, which is not a registered partner")]
    UnknownOrganisation {
        /// `Contract.id`.
        agreement: String,
        /// The organisation id.
        organisation: String,
    },
    /// A Cedar type or request could not be built (a bug).
    #[error("cedar: {0}")]
    Cedar(String),
}

/// The access decision engine for one partnership: built once from its agreements,
/// organisations and scheme (rebuild it when agreements change), then asked for every read
/// and write.
pub struct AccessEngine {
    organisations: HashMap<String, Organisation>,
    scheme: Scheme,
    schema: Schema,
    /// Every policy in its general form, by id: what reasons and explanations describe.
    index: PolicyIndex,
    /// The policies evaluated per request (see `policy_sets.rs`).
    sets: PolicySets,
    agreements: Vec<Agreement>,
    inputs: CedarInputs,
}

fn cedar_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Cedar(e.to_string())
}

impl AccessEngine {
    /// Build the policy set: the baseline policies and one policy per clause of every active
    /// agreement, validated against the Cedar schema, and the per-request subsets of it (also
    /// validated). Agreements that are not active are kept for explanations only.
    pub fn new(
        agreements: &[Agreement],
        organisations: &[Organisation],
        scheme: Scheme,
    ) -> Result<AccessEngine, EngineError> {
        let schema = schema()?;
        let organisations: HashMap<String, Organisation> =
            organisations.iter().map(|o| (o.id.clone(), o.clone())).collect();
        for agreement in agreements {
            for party in &agreement.parties {
                if !organisations.contains_key(party) {
                    return Err(EngineError::UnknownOrganisation {
                        agreement: agreement.id.clone(),
                        organisation: party.clone(),
                    });
                }
            }
        }
        let baseline = baseline_policies(&scheme.break_glass_roles);
        let mut all: Vec<PolicyInfo> = baseline.clone();
        for agreement in agreements.iter().filter(|a| a.status == crate::agreement::AgreementStatus::Active) {
            for clause in &agreement.clauses {
                all.push(clause_policy(agreement, clause));
            }
        }
        // The general policies, validated together; the sets evaluated per request are built
        // from the same standing policies and the clauses specialised to each pair.
        build_policy_set(&schema, &all)?;
        let sets = PolicySets::build(&schema, &baseline, agreements)?;
        let index: PolicyIndex = all.into_iter().map(|p| (p.id.clone(), p)).collect();
        let inputs = CedarInputs::new(organisations.values())?;
        Ok(AccessEngine { organisations, scheme, schema, index, sets, agreements: agreements.to_vec(), inputs })
    }

    /// Every compiled policy's metadata (id, source, description, Cedar text).
    pub fn policies(&self) -> impl Iterator<Item = &PolicyInfo> {
        self.index.values()
    }

    /// The Cedar schema the policies were validated against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The scheme the engine was built with.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    fn partner_of<'a>(&'a self, org_id: &str) -> Option<(&'a Organisation, &'a Organisation)> {
        let org = self.organisations.get(org_id)?;
        let partner = self.organisations.get(org.partner_id()).unwrap_or(org);
        Some((org, partner))
    }

    /// Decide one request for the person whose consents are `consent`.
    pub fn decide(&self, request: &AccessRequest, consent: &PersonConsent) -> Decision {
        self.evaluate(request, consent, false, None, Choice::Indexed).decision
    }

    /// Decide several requests, each with its person's consents, in order: the same answers
    /// as [`AccessEngine::decide`] on each, with the per-user work (the user's organisation
    /// and Cedar entity) done once for consecutive requests by the same user, as on a search
    /// page.
    pub fn decide_many<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a AccessRequest, &'a PersonConsent)>,
    ) -> Vec<Decision> {
        let mut user: Option<(&'a Requester, Option<Arc<ast::Entity>>)> = None;
        items
            .into_iter()
            .map(|(request, consent)| {
                if user.as_ref().is_none_or(|(who, _)| **who != request.who) {
                    let entity = self.partner_of(&request.who.organisation_id).map(|(organisation, partner)| {
                        Arc::new(self.inputs.build_user(&request.who, organisation, partner))
                    });
                    user = Some((&request.who, entity));
                }
                let entity = user.as_ref().and_then(|(_, e)| e.as_ref());
                self.evaluate(request, consent, false, entity, Choice::Indexed).decision
            })
            .collect()
    }

    /// A human-readable account of [`AccessEngine::decide`] for a governance lead: the
    /// policies considered and which matched, the agreement clauses, the consent provision,
    /// and the agreements between the two organisations that are not in force.
    pub fn explain(&self, request: &AccessRequest, consent: &PersonConsent) -> String {
        let evaluation = self.evaluate(request, consent, true, None, Choice::Indexed);
        let mut out = String::new();
        let d = &evaluation.decision;
        let effect = match d.effect {
            Effect::Permit => "PERMIT",
            Effect::PermitWithFiltering => "PERMIT WITH FILTERING",
            Effect::Deny => "DENY",
        };
        let who = &request.who;
        let _ = writeln!(
            out,
            "Decision: {effect}{} — {} {} ({}, role {}) of {} asks to {} {} held by {} {}for {} ({}) on {}.",
            if d.break_glass { " (break-glass: audit and review)" } else { "" },
            who.kind.code(),
            who.user_id,
            evaluation.user_sector.map_or("unknown sector".to_string(), |s| format!("sector {s}")),
            if who.role.is_empty() { "none" } else { &who.role },
            who.organisation_id,
            if request.what.action == Action::Read { "read" } else { "write" },
            request.what.resource_type,
            request.what.custodian_id,
            request.what.subject_person.as_ref().map_or(String::new(), |p| format!("about person {p} ")),
            request.purpose.describe(),
            request.purpose,
            request.today,
        );
        if let Some(reason) = &request.break_glass_reason {
            let _ = writeln!(out, "Break-glass reason given: \"{reason}\".");
        }
        if !d.withheld_labels.is_empty() {
            let labels: Vec<String> = d.withheld_labels.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "Withheld sensitive labels: {}.", labels.join(", "));
        }
        let _ = writeln!(out, "\nWhy:");
        for r in &d.reasons {
            let _ = writeln!(out, "  - [{}] {}", r.policy_id, r.text);
        }
        let _ = writeln!(out, "\nPolicies considered ({}), deny by default:", evaluation.considered.len());
        for id in &evaluation.considered {
            let matched = evaluation.matched.contains(id);
            if let Some(info) = self.index.get(id) {
                let _ = writeln!(
                    out,
                    "  {} {} {} — {}",
                    if matched { "[matched]    " } else { "[not matched]" },
                    if info.permit { "permit" } else { "forbid" },
                    id,
                    info.description
                );
            }
        }
        let others = self.index.len().saturating_sub(evaluation.considered.len());
        if !evaluation.considered.is_empty() && others > 0 {
            let _ = writeln!(
                out,
                "  ({others} other policies cannot apply to this action, kind of user, purpose, break-glass state, pair of organisations and resource type, and were not evaluated.)"
            );
        }
        if let Some(v) = &evaluation.consent {
            let _ = writeln!(out, "\nConsent ({:?} scheme):", self.scheme.consent_model);
            let _ = writeln!(out, "  - unlabelled content: {}", describe_answer(&v.base));
            for (label, a) in &v.labels {
                let _ = writeln!(out, "  - label {label}: {}", describe_answer(a));
            }
            if consent.national_opt_out {
                let _ = writeln!(out, "  - the person has a national data opt-out (secondary uses only)");
            }
        } else {
            let _ = writeln!(out, "\nConsent: not consulted (not another organisation's read of data about a person).");
        }
        if let (Some(user_partner), Some(custodian)) = (&evaluation.user_partner, &evaluation.custodian_partner) {
            let mut lines = Vec::new();
            for a in &self.agreements {
                let state = a.state_on(request.today);
                let relevant =
                    a.clauses.iter().any(|c| c.recipients.contains(user_partner) && c.disclosers.contains(custodian));
                if relevant && state != AgreementState::InForce {
                    lines.push(format!("  - {} \"{}\": {:?}", a.id, a.title, state));
                }
            }
            if !lines.is_empty() {
                let _ = writeln!(out, "\nAgreements between {user_partner} and {custodian} not in force:");
                for l in lines {
                    let _ = writeln!(out, "{l}");
                }
            }
        }
        out
    }

    /// `explaining`: also list the policies considered (only explanations need them).
    /// `user`: the request's `User` entity, when the caller has it already.
    fn evaluate(
        &self,
        request: &AccessRequest,
        consent: &PersonConsent,
        explaining: bool,
        user: Option<&Arc<ast::Entity>>,
        choice: Choice<'_>,
    ) -> Evaluation {
        let who = &request.who;
        let break_glass = request.break_glass_reason.is_some();
        // A person or an administrator acts for no partner: they are placed beside the
        // custodian, where only the policies written for them (a person's own record, the
        // administrator's governance data) can permit anything; staff-only policies never match.
        let acting_for = self.partner_of(&who.organisation_id).or_else(|| {
            matches!(who.kind, UserKind::Person | UserKind::Administrator)
                .then(|| self.partner_of(&request.what.custodian_id))
                .flatten()
        });
        let Some((user_org, user_partner)) = acting_for else {
            return Evaluation::refused(
                break_glass,
                "baseline:unknown-organisation",
                format!("Organization/{} is not a registered partner: deny by default.", who.organisation_id),
            );
        };
        let Some((_, custodian)) = self.partner_of(&request.what.custodian_id) else {
            return Evaluation::refused(
                break_glass,
                "baseline:unknown-organisation",
                format!(
                    "The custodian Organization/{} is not a registered partner: deny by default.",
                    request.what.custodian_id
                ),
            );
        };
        let cross_org = user_partner.id != custodian.id;
        let is_staff = matches!(who.kind, UserKind::Practitioner | UserKind::SystemClient);
        let instance_labels = request.what.labels.as_deref().map(LabelSet::of);

        let consent_verdict = match (&request.what.subject_person, cross_org && is_staff) {
            (Some(_), true) => {
                let q = ConsentQuery {
                    organisation: &user_org.id,
                    partner: &user_partner.id,
                    sector: user_partner.sector,
                    purpose: request.purpose,
                    resource_type: &request.what.resource_type,
                    today: request.today,
                };
                Some(verdict(consent, self.scheme.consent_model, &q, instance_labels.unwrap_or(LabelSet::ALL)))
            }
            _ => None,
        };
        let (consent_permits, refuses_emergency) = match (&consent_verdict, instance_labels) {
            (None, _) => (true, false),
            (Some(v), Some(labels)) => (
                v.base.permits && v.released().contains_all(labels),
                v.base.refuses_emergency || v.labels.iter().any(|(_, a)| a.refuses_emergency),
            ),
            (Some(v), None) => (v.base.permits, v.base.refuses_emergency),
        };

        let key = RequestKey {
            action: request.what.action,
            kind: who.kind,
            same_partner: !cross_org,
            purpose: request.purpose,
            break_glass,
        };
        let selected = self.sets.select(&user_partner.id, &custodian.id, &request.what.resource_type, key);
        let user = match user {
            Some(entity) => Arc::clone(entity),
            None => self.inputs.user(who, user_org, user_partner),
        };
        let facts = Facts {
            request,
            custodian,
            labels: instance_labels.unwrap_or(LabelSet::EMPTY),
            consent_permits,
            refuses_emergency,
            national_opt_out: consent.national_opt_out,
        };
        let answer = match self.run(choice, &selected.all, Arc::clone(&user), &facts) {
            Ok(r) => r,
            Err(e) => {
                return Evaluation::refused(
                    break_glass,
                    "baseline:evaluation-error",
                    format!("The request could not be evaluated ({e}): deny."),
                );
            }
        };
        let matched = &answer.matched;

        let mut reasons = Vec::new();
        let mut withheld = LabelSet::EMPTY;
        let effect;
        if answer.allowed {
            let permits: Vec<&PolicyInfo> = matched.iter().copied().filter(|p| p.permit).collect();
            let agreement_releases =
                permits.iter().fold(LabelSet::EMPTY, |acc, p| acc.union(p.releases.unwrap_or(LabelSet::ALL)));
            let overridden = break_glass && request.purpose == Purpose::EmergencyTreat && !refuses_emergency;
            let consent_releases = match &consent_verdict {
                Some(v) if !overridden => v.released(),
                _ => LabelSet::ALL,
            };
            for p in &permits {
                reasons.push(reason_for(p));
            }
            if let Some(v) = &consent_verdict {
                reasons.push(consent_reason(&v.base, overridden));
            }
            if instance_labels.is_none() {
                withheld = LabelSet::ALL.minus(agreement_releases.intersection(consent_releases));
            }
            effect = if withheld.is_empty() { Effect::Permit } else { Effect::PermitWithFiltering };
        } else {
            effect = Effect::Deny;
            let forbids: Vec<&PolicyInfo> = matched.iter().copied().filter(|p| !p.permit).collect();
            for p in &forbids {
                reasons.push(reason_for(p));
            }
            if let Some(v) = &consent_verdict {
                if !consent_permits && forbids.iter().any(|p| p.id == "consent:gate") {
                    if !v.base.permits {
                        reasons.push(consent_reason(&v.base, false));
                    }
                    for (label, a) in &v.labels {
                        if !a.permits && instance_labels.is_some_and(|l| l.contains(*label)) {
                            let mut r = consent_reason(a, false);
                            r.text = format!("Label {label}: {}", r.text);
                            reasons.push(r);
                        }
                    }
                }
            }
            if forbids.is_empty() {
                reasons.push(Reason {
                    policy_id: "baseline:deny-by-default".to_string(),
                    kind: ReasonKind::Baseline,
                    text: "No policy permits this: no agreement clause in force covers this organisation, purpose, data and labels (deny by default).".to_string(),
                });
            }
            if !answer.errors.is_empty() {
                reasons.push(Reason {
                    policy_id: "baseline:evaluation-error".to_string(),
                    kind: ReasonKind::Baseline,
                    text: format!("Policy evaluation errors: {}", answer.errors.join("; ")),
                });
            }
            // A read refused only because of its labels: say which labels. The same read
            // without them has the same key, so the same policies; those that read neither
            // labels nor consent decide it as they did this one, so when none of their forbids
            // matched, the rest are evaluated again without the labels. (The reference
            // evaluation, for tests, evaluates everything again, as the rule says.)
            let unlabelled_could_pass =
                matches!(choice, Choice::Reference(_)) || !forbids.iter().any(|p| !p.reads_labels_or_consent);
            if let Some(labels) = instance_labels.filter(|l| !l.is_empty() && unlabelled_could_pass) {
                let unlabelled = Facts {
                    labels: LabelSet::EMPTY,
                    consent_permits: consent_verdict.as_ref().is_none_or(|v| v.base.permits),
                    refuses_emergency: consent_verdict.as_ref().is_some_and(|v| v.base.refuses_emergency),
                    ..facts
                };
                if let Ok(CedarAnswer { allowed: true, matched: m, .. }) =
                    self.run(choice, &selected.without_labels, user, &unlabelled)
                {
                    let releases = m
                        .iter()
                        .filter(|p| p.permit)
                        .fold(LabelSet::EMPTY, |acc, p| acc.union(p.releases.unwrap_or(LabelSet::ALL)));
                    let consent_releases = consent_verdict.as_ref().map_or(LabelSet::ALL, ConsentVerdict::released);
                    withheld = labels.minus(releases.intersection(consent_releases));
                }
            }
        }

        let (considered, matched) = if explaining {
            let considered =
                selected.all.iter().filter_map(|i| self.sets.policy(*i)).map(|p| p.info.id.clone()).collect();
            (considered, matched.iter().map(|p| p.id.clone()).collect())
        } else {
            (Vec::new(), Vec::new())
        };
        Evaluation {
            decision: Decision { effect, reasons, break_glass, withheld_labels: withheld.to_vec() },
            considered,
            matched,
            consent: consent_verdict,
            user_sector: Some(user_partner.sector),
            user_partner: Some(user_partner.id.clone()),
            custodian_partner: Some(custodian.id.clone()),
        }
    }

    fn context_facts(&self, f: &Facts<'_>) -> ContextFacts {
        let r = f.request;
        ContextFacts {
            purpose: r.purpose,
            today: date_number(r.today),
            break_glass: r.break_glass_reason.is_some(),
            break_glass_reason_given: r.break_glass_reason.as_deref().is_some_and(|s| !s.trim().is_empty()),
            relationship: r.relationship.in_care_team || r.relationship.on_partner_list,
            consent_permits: f.consent_permits,
            consent_refuses_emergency: f.refuses_emergency,
            national_opt_out: f.national_opt_out,
        }
    }

    fn record_facts<'a>(&self, f: &Facts<'a>) -> RecordFacts<'a> {
        RecordFacts {
            resource_type: &f.request.what.resource_type,
            custodian: f.custodian,
            subject: f.request.what.subject_person.as_deref(),
            labels: f.labels,
        }
    }

    /// One Cedar authorization of the request for `user` against the policies `list`
    /// (indexes into `self.sets`).
    ///
    /// Cedar's own `Authorizer` rebuilds each policy's condition expression and a response
    /// with maps and policy objects on every call, which cost more than the evaluation itself.
    /// This runs Cedar's evaluator on the conditions built once per engine and combines the
    /// results by Cedar's rule: allowed when some permit is satisfied and no forbid is; a
    /// policy whose evaluation errs is not satisfied and its error is reported; the
    /// determining policies are the satisfied forbids of a denial, else the satisfied permits.
    /// A test checks it against `cedar_policy::Authorizer` over the policies in their general
    /// form (`engine::tests`).
    fn authorize(&self, list: &[usize], user: Arc<ast::Entity>, f: &Facts<'_>) -> Result<CedarAnswer<'_>, EngineError> {
        let record = self.inputs.record(&self.record_facts(f));
        let context = self.inputs.context(&self.context_facts(f));
        let request = self.inputs.core_request(&user, f.request.what.action, context);
        let entities = self.inputs.core_entities(user, record)?;
        let evaluator = Evaluator::new(request, &entities, Extensions::all_available());
        let no_slots = SlotEnv::new();
        let mut permits = Vec::new();
        let mut forbids = Vec::new();
        let mut errors = Vec::new();
        for policy in list.iter().filter_map(|i| self.sets.policy(*i)) {
            let satisfied =
                evaluator.interpret(&policy.condition, &no_slots).map_err(|e| e.to_string()).and_then(|v| {
                    match v.value_kind() {
                        ValueKind::Lit(Literal::Bool(b)) => Ok(*b),
                        other => Err(format!("the condition evaluated to {other:?}, not a boolean")),
                    }
                });
            match satisfied {
                Ok(true) if policy.info.permit => permits.push(&policy.info),
                Ok(true) => forbids.push(&policy.info),
                Ok(false) => {}
                Err(e) => errors.push(format!("while evaluating policy `{}`: {e}", policy.info.id)),
            }
        }
        let allowed = !permits.is_empty() && forbids.is_empty();
        // `list` is in id order, so `matched` is too.
        let matched = if forbids.is_empty() { permits } else { forbids };
        Ok(CedarAnswer { allowed, matched, errors })
    }

    /// [`AccessEngine::authorize`] by `cedar_policy::Authorizer` over `set`: the reference
    /// the engine's own evaluation is tested against.
    fn authorize_by_cedar(
        &self,
        set: &PolicySet,
        user: Arc<ast::Entity>,
        f: &Facts<'_>,
    ) -> Result<CedarAnswer<'_>, EngineError> {
        let record = self.inputs.record(&self.record_facts(f));
        let context = self.inputs.context(&self.context_facts(f));
        let request = cedar_policy::Request::from(self.inputs.core_request(&user, f.request.what.action, context));
        let entities = Entities::from(self.inputs.core_entities(user, record)?);
        let response = Authorizer::new().is_authorized(&request, set, &entities);
        let mut matched: Vec<&PolicyInfo> =
            response.diagnostics().reason().filter_map(|id| self.index.get(AsRef::<str>::as_ref(id))).collect();
        matched.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        Ok(CedarAnswer { allowed: response.decision() == cedar_policy::Decision::Allow, matched, errors })
    }

    fn run(
        &self,
        choice: Choice<'_>,
        list: &[usize],
        user: Arc<ast::Entity>,
        f: &Facts<'_>,
    ) -> Result<CedarAnswer<'_>, EngineError> {
        match choice {
            Choice::Indexed => self.authorize(list, user, f),
            Choice::Reference(set) => self.authorize_by_cedar(set, user, f),
        }
    }

    /// Check what the engine gives Cedar for `request` (the `User` and `Record` entities and
    /// the context, built exactly as a decision builds them) against the schema the policies
    /// were validated against.
    pub fn request_conforms_to_schema(&self, request: &AccessRequest) -> Result<(), EngineError> {
        let unknown = |id: &str| EngineError::Cedar(format!("Organization/{id} is not a registered partner"));
        let (user_org, user_partner) =
            self.partner_of(&request.who.organisation_id).ok_or_else(|| unknown(&request.who.organisation_id))?;
        let (_, custodian) =
            self.partner_of(&request.what.custodian_id).ok_or_else(|| unknown(&request.what.custodian_id))?;
        let facts = Facts {
            request,
            custodian,
            labels: request.what.labels.as_deref().map_or(LabelSet::EMPTY, LabelSet::of),
            consent_permits: false,
            refuses_emergency: false,
            national_opt_out: false,
        };
        let user = self.inputs.build_user(&request.who, user_org, user_partner);
        let record = self.inputs.record(&self.record_facts(&facts));
        let context = self.inputs.context(&self.context_facts(&facts));
        cedar_policy::Request::new(
            EntityUid::from(user.uid().clone()),
            self.inputs.action(request.what.action),
            self.inputs.target(),
            Context::from(context),
            Some(&self.schema),
        )
        .map_err(cedar_err)?;
        Entities::from_entities([Entity::from(user), Entity::from(record)], Some(&self.schema)).map_err(cedar_err)?;
        Ok(())
    }
}

/// The facts of one Cedar evaluation beyond the user.
#[derive(Clone, Copy)]
struct Facts<'a> {
    request: &'a AccessRequest,
    custodian: &'a Organisation,
    labels: LabelSet,
    consent_permits: bool,
    refuses_emergency: bool,
    national_opt_out: bool,
}

/// Which policies a decision is evaluated against.
#[derive(Clone, Copy)]
enum Choice<'a> {
    /// Those that can apply to the request, by the engine's own authorization.
    Indexed,
    /// Every policy in its general form, by `cedar_policy::Authorizer` (tests only).
    #[cfg_attr(not(test), allow(dead_code))]
    Reference(&'a PolicySet),
}

/// What Cedar answered.
struct CedarAnswer<'e> {
    allowed: bool,
    /// The policies that matched, in id order.
    matched: Vec<&'e PolicyInfo>,
    /// Evaluation errors.
    errors: Vec<String>,
}

struct Evaluation {
    decision: Decision,
    considered: Vec<String>,
    matched: Vec<String>,
    consent: Option<ConsentVerdict>,
    user_sector: Option<Sector>,
    user_partner: Option<String>,
    custodian_partner: Option<String>,
}

impl Evaluation {
    fn refused(break_glass: bool, policy_id: &str, text: String) -> Evaluation {
        Evaluation {
            decision: Decision {
                effect: Effect::Deny,
                reasons: vec![Reason { policy_id: policy_id.to_string(), kind: ReasonKind::Baseline, text }],
                break_glass,
                withheld_labels: Vec::new(),
            },
            considered: Vec::new(),
            matched: Vec::new(),
            consent: None,
            user_sector: None,
            user_partner: None,
            custodian_partner: None,
        }
    }
}

fn reason_for(p: &PolicyInfo) -> Reason {
    let kind = match &p.source {
        PolicySource::Agreement { contract_id, clause } => {
            ReasonKind::Agreement { contract_id: contract_id.clone(), clause: clause.clone() }
        }
        PolicySource::Baseline | PolicySource::ConsentGate => ReasonKind::Baseline,
    };
    Reason { policy_id: p.id.clone(), kind, text: p.description.clone() }
}

fn describe_answer(a: &ConsentAnswer) -> String {
    // Written into one string: this runs on every decision about another organisation's data.
    let mut out = String::with_capacity(160);
    out.push_str(if a.permits { "permitted" } else { "not permitted" });
    fn version(v: &str) -> &str {
        if v.is_empty() {
            "-"
        } else {
            v
        }
    }
    let _ = match &a.source {
        ConsentSource::Provision { consent_id, version: v, provision_path } => write!(
            out,
            " by {} {provision_path} of Consent/{consent_id} (version {})",
            if a.permits { "permit provision" } else { "provision" },
            version(v)
        ),
        ConsentSource::Withdrawn { consent_id, version: v } => {
            write!(out, ": Consent/{consent_id} (version {}) is withdrawn; the scheme's default applies", version(v))
        }
        ConsentSource::SchemeDefault(ConsentModel::OptIn) => {
            write!(out, ": no consent applies and the scheme is opt-in")
        }
        ConsentSource::SchemeDefault(ConsentModel::OptOut) => {
            write!(out, ": no consent provision applies; the opt-out scheme shares unlabelled data only")
        }
    };
    if a.refuses_emergency {
        out.push_str(" (explicitly including emergency access)");
    }
    out
}

fn consent_reason(a: &ConsentAnswer, overridden: bool) -> Reason {
    let mut text = describe_answer(a);
    if overridden && !a.permits {
        text = format!("Consent overridden by break-glass for emergency care: {text}");
    }
    let kind = match &a.source {
        ConsentSource::Provision { consent_id, provision_path, .. } => {
            ReasonKind::Consent { consent_id: consent_id.clone(), provision_path: provision_path.clone() }
        }
        ConsentSource::Withdrawn { consent_id, .. } => {
            ReasonKind::Consent { consent_id: consent_id.clone(), provision_path: String::new() }
        }
        ConsentSource::SchemeDefault(_) => ReasonKind::Baseline,
    };
    let policy_id = match &a.source {
        ConsentSource::SchemeDefault(ConsentModel::OptIn) => "consent:scheme-opt-in",
        ConsentSource::SchemeDefault(ConsentModel::OptOut) => "consent:scheme-opt-out",
        _ => "consent:gate",
    };
    Reason { policy_id: policy_id.to_string(), kind, text }
}

#[cfg(test)]
mod tests {
    //! The engine evaluates, per request, only the policies that can apply to it (clause
    //! policies specialised to the pair and resource type) by its own loop over Cedar's
    //! evaluator. These tests check that this decides exactly as `cedar_policy::Authorizer`
    //! does over every policy in its general form.

    use carecircle_demo::well_known as wk;
    use carecircle_demo::{generate, DemoConfig};
    use time::macros::date;

    use super::*;
    use crate::codes::SensitivityLabel::{
        MentalHealth as PSY, Restricted as R, SexualAndDomesticViolence as SDV, SubstanceUse as ETH,
    };
    use crate::demo_support::{AgreementSpec, ClauseSpec, ConsentSpec, ProvisionSpec};
    use crate::policy::parse_policy_set;

    fn organisations() -> Vec<Organisation> {
        generate(&DemoConfig { seed: 7, n_people: 2 })
            .iter()
            .filter(|r| r.resource["resourceType"] == "Organization")
            .map(|r| Organisation::from_resource(&r.resource).expect("demo organisations follow the profile"))
            .collect()
    }

    fn engine(model: ConsentModel) -> AccessEngine {
        let health = [wk::ORG_HOSPITAL, wk::ORG_GP_ASHGROVE, wk::ORG_MH_TRUST, wk::ORG_AMBULANCE];
        let others = [wk::ORG_SOCIAL_CARE, wk::ORG_POLICE, wk::ORG_HOUSING];
        let parties: Vec<&str> = health.iter().chain(others.iter()).copied().collect();
        let types = ["Patient", "Condition", "CarePlan", "Flag"];
        let specs = [
            AgreementSpec::active(
                "dsa-main",
                "Shared care record",
                &parties,
                "2026-01-01",
                Some("2028-12-31"),
                vec![
                    ClauseSpec::new("health", Purpose::Treat, &health, &types).labels(&[PSY, ETH]),
                    ClauseSpec::new("plans", Purpose::Treat, &others, &["CarePlan", "Flag"]),
                    ClauseSpec::new("emergency", Purpose::EmergencyTreat, &[wk::ORG_AMBULANCE, wk::ORG_POLICE], &types)
                        .labels(&[PSY, R])
                        .lawful_basis(&["6(1)(d)", "9(2)(c)"]),
                    ClauseSpec::new("operations", Purpose::Operations, &[wk::ORG_HOSPITAL], &["Condition"])
                        .disclosers(&[wk::ORG_GP_ASHGROVE, wk::ORG_MH_TRUST]),
                    ClauseSpec::new("research", Purpose::Research, &[wk::ORG_HOSPITAL], &["Condition"])
                        .disclosers(&[wk::ORG_MH_TRUST])
                        .lawful_basis(&["6(1)(e)", "9(2)(j)"]),
                ],
            ),
            AgreementSpec::active(
                "dsa-referrals",
                "Referrals",
                &[wk::ORG_GP_ASHGROVE, wk::ORG_MH_TRUST],
                "2026-01-01",
                None,
                vec![ClauseSpec::new(
                    "referrals",
                    Purpose::Treat,
                    &[wk::ORG_GP_ASHGROVE, wk::ORG_MH_TRUST],
                    &["Condition", "Task"],
                )],
            ),
        ];
        let agreements: Vec<Agreement> =
            specs.iter().map(|s| Agreement::from_contract(&s.to_contract()).expect("valid agreement")).collect();
        AccessEngine::new(&agreements, &organisations(), Scheme::new(model)).expect("the engine builds")
    }

    fn consents() -> Vec<PersonConsent> {
        let joe = |id: &str, root: ProvisionSpec| ConsentSpec::new(id, "pat-joe", wk::ORG_MH_TRUST, "2026-06-01", root);
        let parse = |specs: &[ConsentSpec], opt_out: bool| {
            let resources: Vec<_> = specs.iter().map(ConsentSpec::to_resource).collect();
            PersonConsent::from_resources(&resources, opt_out).expect("valid consent")
        };
        vec![
            PersonConsent::none(),
            parse(&[joe("c-all", ProvisionSpec::permit())], false),
            parse(
                &[joe(
                    "c-psy",
                    ProvisionSpec::deny()
                        .except(ProvisionSpec::permit())
                        .except(ProvisionSpec::permit().labels(&[PSY]).sectors(&[Sector::PrimaryCare])),
                )],
                false,
            ),
            parse(&[joe("c-no-emergency", ProvisionSpec::deny().purposes(&[Purpose::EmergencyTreat]))], false),
            parse(&[joe("c-all", ProvisionSpec::permit())], true),
        ]
    }

    /// A request whose every dimension is picked by `pick(n)`, a number below `n`.
    fn request(pick: &mut impl FnMut(usize) -> usize) -> AccessRequest {
        let users = [
            (wk::JOE_GP, wk::ORG_GP_ASHGROVE, UserKind::Practitioner, "gp"),
            (wk::PARAMEDIC, wk::ORG_AMBULANCE, UserKind::Practitioner, "paramedic"),
            (wk::POLICE_LIAISON_OFFICER, wk::ORG_POLICE_MH_LIAISON, UserKind::Practitioner, "police-officer"),
            ("client-pas", wk::ORG_HOSPITAL, UserKind::SystemClient, ""),
            ("admin", wk::ORG_HOSPITAL, UserKind::Administrator, "ig-lead"),
            ("portal-joe", wk::ORG_GP_ASHGROVE, UserKind::Person, ""),
        ];
        let (user_id, organisation, kind, role) = users[pick(users.len())];
        let custodians =
            [wk::ORG_MH_TRUST, wk::ORG_GP_ASHGROVE, wk::ORG_HOSPITAL, wk::ORG_HOUSING, wk::ORG_CRISIS_TEAM];
        let types =
            [("Condition", true), ("CarePlan", true), ("Task", true), ("Contract", false), ("AuditEvent", false)];
        let (resource_type, about_joe) = types[pick(types.len())];
        let labels: [Option<&[SensitivityLabel]>; 5] = [None, Some(&[]), Some(&[PSY]), Some(&[ETH, R]), Some(&[SDV])];
        let glass = [None, Some("unresponsive"), Some("  ")];
        AccessRequest {
            who: Requester {
                user_id: user_id.to_string(),
                organisation_id: organisation.to_string(),
                kind,
                role: role.to_string(),
                person_id: (kind == UserKind::Person).then(|| "person-joe".to_string()),
            },
            // Mostly direct care without break-glass, as most requests are.
            purpose: if pick(3) == 0 { Purpose::ALL[pick(Purpose::ALL.len())] } else { Purpose::Treat },
            break_glass_reason: if pick(3) == 0 { glass[pick(glass.len())] } else { None }.map(ToString::to_string),
            what: Target {
                resource_type: resource_type.to_string(),
                action: if pick(4) == 0 { Action::Write } else { Action::Read },
                custodian_id: custodians[pick(custodians.len())].to_string(),
                subject_person: about_joe.then(|| if pick(8) == 0 { "person-other" } else { "person-joe" }.to_string()),
                labels: labels[pick(labels.len())].map(<[SensitivityLabel]>::to_vec),
            },
            relationship: Relationship { in_care_team: pick(3) > 0, on_partner_list: false },
            today: if pick(6) == 0 { date!(2029 - 01 - 01) } else { date!(2026 - 11 - 01) },
        }
    }

    #[test]
    fn indexed_decisions_equal_cedar_over_every_policy() {
        for model in [ConsentModel::OptOut, ConsentModel::OptIn] {
            let engine = engine(model);
            let general: Vec<PolicyInfo> = engine.policies().cloned().collect();
            let every_policy = parse_policy_set(&general).expect("the general policies parse");
            let consents = consents();
            // A fixed pseudo-random walk over the request dimensions (xorshift).
            let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut pick = |n: usize| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % n as u64) as usize
            };
            let mut effects: HashMap<(Effect, bool), usize> = HashMap::new();
            for _ in 0..2_500 {
                let request = request(&mut pick);
                let consent = &consents[pick(consents.len())];
                let indexed = engine.evaluate(&request, consent, false, None, Choice::Indexed).decision;
                let reference =
                    engine.evaluate(&request, consent, false, None, Choice::Reference(&every_policy)).decision;
                assert_eq!(indexed, reference, "{request:#?}");
                assert_eq!(engine.decide_many([(&request, consent)]), vec![indexed.clone()]);
                *effects.entry((indexed.effect, indexed.withheld_labels.is_empty())).or_default() += 1;
            }
            // The walk reaches every kind of answer.
            for shape in [
                (Effect::Permit, true),
                (Effect::PermitWithFiltering, false),
                (Effect::Deny, true),
                (Effect::Deny, false),
            ] {
                assert!(effects.get(&shape).is_some_and(|n| *n >= 10), "{model:?}: {shape:?} in {effects:?}");
            }
        }
    }

    #[test]
    fn only_the_consent_gate_and_clauses_read_labels_or_consent() {
        let engine = engine(ConsentModel::OptOut);
        for p in engine.policies() {
            let expected = p.id == "consent:gate" || matches!(p.source, PolicySource::Agreement { .. });
            assert_eq!(p.reads_labels_or_consent, expected, "{}", p.id);
        }
    }

    #[test]
    fn built_inputs_conform_to_the_schema() {
        let engine = engine(ConsentModel::OptOut);
        let mut state = 7usize;
        let mut pick = |n: usize| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        for _ in 0..200 {
            let request = request(&mut pick);
            if engine.partner_of(&request.who.organisation_id).is_some() {
                engine.request_conforms_to_schema(&request).expect("conforms");
            }
        }
    }
}
