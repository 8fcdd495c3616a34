//! The access decision: one [`AccessEngine::decide`] call for every read and write, combining
//! the baseline policies and the agreements (in Cedar) with the person's consent (evaluated
//! in Rust, its answer passed to Cedar's consent gate), with reasons and an explanation.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, RestrictedExpression, Schema,
};
use time::Date;

use crate::agreement::{Agreement, AgreementState};
use crate::codes::{LabelSet, Purpose, Sector, SensitivityLabel};
use crate::consent::{
    verdict, ConsentAnswer, ConsentModel, ConsentQuery, ConsentSource, ConsentVerdict, PersonConsent,
};
use crate::organisation::Organisation;
use crate::policy::{
    baseline_policies, build_policy_set, clause_policy, parse_policy_set, schema, PolicyBuildError, PolicyIndex,
    PolicyInfo, PolicySource,
};
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
    fn code(self) -> &'static str {
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

struct CedarNames {
    user: EntityTypeName,
    record: EntityTypeName,
    organization: EntityTypeName,
    read: EntityUid,
    write: EntityUid,
}

/// The access decision engine for one partnership: built once from its agreements,
/// organisations and scheme (rebuild it when agreements change), then asked for every read
/// and write.
pub struct AccessEngine {
    organisations: HashMap<String, Organisation>,
    scheme: Scheme,
    schema: Schema,
    index: PolicyIndex,
    /// Baseline policies only: for same-organisation requests and pairs no agreement covers.
    baseline_set: Arc<PolicySet>,
    /// Baseline plus the clauses that let `recipient` receive `custodian`'s data, by
    /// (recipient partner, custodian partner).
    pair_sets: HashMap<String, HashMap<String, Arc<PolicySet>>>,
    agreements: Vec<Agreement>,
    names: CedarNames,
    authorizer: Authorizer,
}

fn cedar_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Cedar(e.to_string())
}

impl AccessEngine {
    /// Build the policy set: the baseline policies and one policy per clause of every active
    /// agreement, validated against the Cedar schema. Agreements that are not active are kept
    /// for explanations only.
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
        let mut clauses: Vec<(PolicyInfo, Vec<String>, Vec<String>)> = Vec::new();
        for agreement in agreements.iter().filter(|a| a.status == crate::agreement::AgreementStatus::Active) {
            for clause in &agreement.clauses {
                clauses.push((clause_policy(agreement, clause), clause.recipients.clone(), clause.disclosers.clone()));
            }
        }
        // Validate everything together once; the per-pair sets are subsets of it.
        let mut all: Vec<PolicyInfo> = baseline.clone();
        all.extend(clauses.iter().map(|(p, _, _)| p.clone()));
        build_policy_set(&schema, &all)?;

        // The per-pair sets are subsets of the set validated above, so they need no second
        // validation.
        let baseline_set = Arc::new(parse_policy_set(&baseline)?);
        let mut pairs: HashMap<(String, String), Vec<PolicyInfo>> = HashMap::new();
        for (info, recipients, disclosers) in &clauses {
            for r in recipients {
                for d in disclosers.iter().filter(|d| *d != r) {
                    pairs.entry((r.clone(), d.clone())).or_insert_with(|| baseline.clone()).push(info.clone());
                }
            }
        }
        let mut pair_sets: HashMap<String, HashMap<String, Arc<PolicySet>>> = HashMap::new();
        for ((recipient, custodian), infos) in pairs {
            let set = Arc::new(parse_policy_set(&infos)?);
            pair_sets.entry(recipient).or_default().insert(custodian, set);
        }
        let index: PolicyIndex = all.into_iter().map(|p| (p.id.clone(), p)).collect();
        let type_name = |n: &str| EntityTypeName::from_str(n).map_err(cedar_err);
        let action = |a: &str| -> Result<EntityUid, EngineError> {
            Ok(EntityUid::from_type_name_and_id(type_name("CareCircle::Action")?, EntityId::new(a)))
        };
        let names = CedarNames {
            user: type_name("CareCircle::User")?,
            record: type_name("CareCircle::Record")?,
            organization: type_name("CareCircle::Organization")?,
            read: action("read")?,
            write: action("write")?,
        };
        Ok(AccessEngine {
            organisations,
            scheme,
            schema,
            index,
            baseline_set,
            pair_sets,
            agreements: agreements.to_vec(),
            names,
            authorizer: Authorizer::new(),
        })
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

    fn policy_set(&self, recipient: &str, custodian: &str) -> &PolicySet {
        self.pair_sets.get(recipient).and_then(|m| m.get(custodian)).unwrap_or(&self.baseline_set)
    }

    /// Decide one request for the person whose consents are `consent`.
    pub fn decide(&self, request: &AccessRequest, consent: &PersonConsent) -> Decision {
        self.evaluate(request, consent, false).decision
    }

    /// A human-readable account of [`AccessEngine::decide`] for a governance lead: the
    /// policies considered and which matched, the agreement clauses, the consent provision,
    /// and the agreements between the two organisations that are not in force.
    pub fn explain(&self, request: &AccessRequest, consent: &PersonConsent) -> String {
        let evaluation = self.evaluate(request, consent, true);
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
    fn evaluate(&self, request: &AccessRequest, consent: &PersonConsent, explaining: bool) -> Evaluation {
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

        let set = self.policy_set(&user_partner.id, &custodian.id);
        let facts = Facts {
            request,
            user_org,
            user_partner,
            custodian,
            labels: instance_labels.unwrap_or(LabelSet::EMPTY),
            consent_permits,
            refuses_emergency,
            national_opt_out: consent.national_opt_out,
        };
        let (allowed, matched, errors) = match self.run_cedar(set, &facts) {
            Ok(r) => r,
            Err(e) => {
                return Evaluation::refused(
                    break_glass,
                    "baseline:evaluation-error",
                    format!("The request could not be evaluated ({e}): deny."),
                );
            }
        };

        let mut reasons = Vec::new();
        let mut withheld = LabelSet::EMPTY;
        let effect;
        if allowed {
            let permits: Vec<&PolicyInfo> =
                matched.iter().filter_map(|id| self.index.get(id)).filter(|p| p.permit).collect();
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
            let forbids: Vec<&PolicyInfo> =
                matched.iter().filter_map(|id| self.index.get(id)).filter(|p| !p.permit).collect();
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
            if !errors.is_empty() {
                reasons.push(Reason {
                    policy_id: "baseline:evaluation-error".to_string(),
                    kind: ReasonKind::Baseline,
                    text: format!("Policy evaluation errors: {}", errors.join("; ")),
                });
            }
            // A read refused only because of its labels: say which labels.
            if let Some(labels) = instance_labels.filter(|l| !l.is_empty()) {
                let unlabelled = Facts {
                    labels: LabelSet::EMPTY,
                    consent_permits: consent_verdict.as_ref().is_none_or(|v| v.base.permits),
                    refuses_emergency: consent_verdict.as_ref().is_some_and(|v| v.base.refuses_emergency),
                    ..facts
                };
                if let Ok((true, m, _)) = self.run_cedar(set, &unlabelled) {
                    let releases = m
                        .iter()
                        .filter_map(|id| self.index.get(id))
                        .filter(|p| p.permit)
                        .fold(LabelSet::EMPTY, |acc, p| acc.union(p.releases.unwrap_or(LabelSet::ALL)));
                    let consent_releases = consent_verdict.as_ref().map_or(LabelSet::ALL, ConsentVerdict::released);
                    withheld = labels.minus(releases.intersection(consent_releases));
                }
            }
        }

        let considered: Vec<String> =
            if explaining { set.policies().map(|p| p.id().to_string()).collect() } else { Vec::new() };
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

    fn uid(&self, type_name: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
    }

    /// One Cedar evaluation: (allowed, matched policy ids, error messages).
    fn run_cedar(&self, set: &PolicySet, f: &Facts<'_>) -> Result<(bool, Vec<String>, Vec<String>), EngineError> {
        let r = f.request;
        let who = &r.who;
        let org = |id: &str| RestrictedExpression::new_entity_uid(self.uid(&self.names.organization, id));
        let s = |v: &str| RestrictedExpression::new_string(v.to_string());
        let principal = self.uid(&self.names.user, &who.user_id);
        let resource = self.uid(&self.names.record, "target");
        let user = Entity::new(
            principal.clone(),
            HashMap::from([
                ("kind".to_string(), s(who.kind.code())),
                ("role".to_string(), s(&who.role)),
                ("organization".to_string(), org(&f.user_org.id)),
                ("partner".to_string(), org(&f.user_partner.id)),
                ("sector".to_string(), s(f.user_partner.sector.code())),
                ("person".to_string(), s(who.person_id.as_deref().unwrap_or(""))),
            ]),
            Default::default(),
        )
        .map_err(cedar_err)?;
        let record = Entity::new(
            resource.clone(),
            HashMap::from([
                ("resource_type".to_string(), s(&r.what.resource_type)),
                (
                    "labels".to_string(),
                    RestrictedExpression::new_set(f.labels.to_vec().into_iter().map(|l| s(l.code()))),
                ),
                ("custodian".to_string(), org(&f.custodian.id)),
                ("custodian_sector".to_string(), s(f.custodian.sector.code())),
                ("subject".to_string(), s(r.what.subject_person.as_deref().unwrap_or(""))),
            ]),
            Default::default(),
        )
        .map_err(cedar_err)?;
        let entities = Entities::from_entities([user, record], None).map_err(cedar_err)?;
        let context = Context::from_pairs([
            ("purpose".to_string(), s(r.purpose.code())),
            ("today".to_string(), RestrictedExpression::new_long(date_number(r.today))),
            ("break_glass".to_string(), RestrictedExpression::new_bool(r.break_glass_reason.is_some())),
            (
                "break_glass_reason_given".to_string(),
                RestrictedExpression::new_bool(r.break_glass_reason.as_deref().is_some_and(|s| !s.trim().is_empty())),
            ),
            (
                "relationship".to_string(),
                RestrictedExpression::new_bool(r.relationship.in_care_team || r.relationship.on_partner_list),
            ),
            ("consent_permits".to_string(), RestrictedExpression::new_bool(f.consent_permits)),
            ("consent_refuses_emergency".to_string(), RestrictedExpression::new_bool(f.refuses_emergency)),
            ("national_opt_out".to_string(), RestrictedExpression::new_bool(f.national_opt_out)),
        ])
        .map_err(cedar_err)?;
        let action = match r.what.action {
            Action::Read => self.names.read.clone(),
            Action::Write => self.names.write.clone(),
        };
        let cedar_request =
            cedar_policy::Request::new(principal, action, resource, context, None).map_err(cedar_err)?;
        let response = self.authorizer.is_authorized(&cedar_request, set, &entities);
        let matched = response.diagnostics().reason().map(ToString::to_string).collect();
        let errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        Ok((response.decision() == cedar_policy::Decision::Allow, matched, errors))
    }

    /// Check a request against the schema (used by tests: the context and entities the engine
    /// builds must match what the policies were validated against).
    pub fn request_conforms_to_schema(&self, request: &AccessRequest) -> Result<(), EngineError> {
        let org = |id: &str| RestrictedExpression::new_entity_uid(self.uid(&self.names.organization, id));
        let _ = org;
        let context = Context::from_pairs([
            ("purpose".to_string(), RestrictedExpression::new_string(request.purpose.code().to_string())),
            ("today".to_string(), RestrictedExpression::new_long(date_number(request.today))),
            ("break_glass".to_string(), RestrictedExpression::new_bool(false)),
            ("break_glass_reason_given".to_string(), RestrictedExpression::new_bool(false)),
            ("relationship".to_string(), RestrictedExpression::new_bool(false)),
            ("consent_permits".to_string(), RestrictedExpression::new_bool(false)),
            ("consent_refuses_emergency".to_string(), RestrictedExpression::new_bool(false)),
            ("national_opt_out".to_string(), RestrictedExpression::new_bool(false)),
        ])
        .map_err(cedar_err)?;
        let principal = self.uid(&self.names.user, &request.who.user_id);
        let resource = self.uid(&self.names.record, "target");
        cedar_policy::Request::new(principal, self.names.read.clone(), resource, context, Some(&self.schema))
            .map(|_| ())
            .map_err(cedar_err)
    }
}

#[derive(Clone, Copy)]
struct Facts<'a> {
    request: &'a AccessRequest,
    user_org: &'a Organisation,
    user_partner: &'a Organisation,
    custodian: &'a Organisation,
    labels: LabelSet,
    consent_permits: bool,
    refuses_emergency: bool,
    national_opt_out: bool,
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
    let verb = if a.permits { "permitted" } else { "not permitted" };
    let from = match &a.source {
        ConsentSource::Provision { consent_id, version, provision_path } => format!(
            "by {} {provision_path} of Consent/{consent_id} (version {})",
            if a.permits { "permit provision" } else { "provision" },
            if version.is_empty() { "-" } else { version }
        ),
        ConsentSource::Withdrawn { consent_id, version } => format!(
            "Consent/{consent_id} (version {}) is withdrawn; the scheme's default applies",
            if version.is_empty() { "-" } else { version }
        ),
        ConsentSource::SchemeDefault(ConsentModel::OptIn) => "no consent applies and the scheme is opt-in".to_string(),
        ConsentSource::SchemeDefault(ConsentModel::OptOut) => {
            "no consent provision applies; the opt-out scheme shares unlabelled data only".to_string()
        }
    };
    let emergency = if a.refuses_emergency { " (explicitly including emergency access)" } else { "" };
    let sep = if matches!(a.source, ConsentSource::Provision { .. }) { " " } else { ": " };
    format!("{verb}{sep}{from}{emergency}")
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
