//! The Cedar side of the engine: the schema, the baseline policies every partnership has,
//! and the compilation of each active agreement clause into one `permit` policy with a stable
//! id, validated against the schema whenever the policy set is built.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cedar_policy::{Policy, PolicyId, PolicySet, Schema, ValidationMode, Validator};

use crate::agreement::{Agreement, Clause};
use crate::codes::{LabelSet, Purpose};
use crate::engine::{Action, UserKind};

/// The Cedar schema every policy is validated against (Cedar schema syntax).
pub const CEDAR_SCHEMA: &str = r#"
namespace CareCircle {
  // A partner organisation or a team inside one. Only its identity matters to policies:
  // sectors are copied onto users and records as strings.
  entity Organization;

  // Who asks. kind is "practitioner", "person", "system" or "administrator".
  entity User = {
    kind: String,
    role: String,
    organization: Organization,
    partner: Organization,
    sector: String,
    person: String,
  };

  // What is asked for: one FHIR resource (or, for a search, one resource type).
  entity Record = {
    resource_type: String,
    labels: Set<String>,
    custodian: Organization,
    custodian_sector: String,
    subject: String,
  };

  type AccessContext = {
    purpose: String,
    today: Long,
    break_glass: Bool,
    break_glass_reason_given: Bool,
    relationship: Bool,
    consent_permits: Bool,
    consent_refuses_emergency: Bool,
    national_opt_out: Bool,
  };

  action "read", "write" appliesTo {
    principal: [User],
    resource: [Record],
    context: AccessContext,
  };
}
"#;

/// What a policy is, for reasons and explanations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicySource {
    /// One of the partnership's standing rules.
    Baseline,
    /// The gate through which the person's consent decides (see `consent.rs`).
    ConsentGate,
    /// A clause of an agreement.
    Agreement {
        /// `Contract.id`.
        contract_id: String,
        /// `Contract.term.id`.
        clause: String,
    },
}

/// The organisations a [`Guard`] admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrganisationGuard {
    /// Any request.
    Any,
    /// The user's partner is the custodian (`principal.partner == resource.custodian`).
    Same,
    /// The user's partner is not the custodian (`principal.partner != resource.custodian`).
    Different,
}

/// The purposes a [`Guard`] admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PurposeGuard {
    /// Any purpose.
    Any,
    /// One of these (`context.purpose == "…"`).
    OneOf(Vec<Purpose>),
    /// Every purpose but this one (`context.purpose != "…"`).
    AllBut(Purpose),
}

/// The facts of a request that select the policies that can apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// Read or write.
    pub action: Action,
    /// The kind of user.
    pub kind: UserKind,
    /// The user's partner is the custodian.
    pub same_partner: bool,
    /// The purpose.
    pub purpose: Purpose,
    /// A break-glass request.
    pub break_glass: bool,
}

impl RequestKey {
    /// The number of distinct keys.
    pub const COUNT: usize = 2 * 4 * 2 * 5 * 2;

    /// Every key, in [`RequestKey::index`] order.
    pub fn all() -> impl Iterator<Item = RequestKey> {
        [Action::Read, Action::Write].into_iter().flat_map(|action| {
            UserKind::ALL.into_iter().flat_map(move |kind| {
                [false, true].into_iter().flat_map(move |same_partner| {
                    Purpose::ALL.into_iter().flat_map(move |purpose| {
                        [false, true].into_iter().map(move |break_glass| RequestKey {
                            action,
                            kind,
                            same_partner,
                            purpose,
                            break_glass,
                        })
                    })
                })
            })
        })
    }

    /// A dense index in `0..COUNT`.
    pub fn index(self) -> usize {
        let action = usize::from(self.action == Action::Write);
        let kind = UserKind::ALL.iter().position(|k| *k == self.kind).unwrap_or(0);
        let purpose = Purpose::ALL.iter().position(|p| *p == self.purpose).unwrap_or(0);
        (((action * 4 + kind) * 2 + usize::from(self.same_partner)) * 5 + purpose) * 2 + usize::from(self.break_glass)
    }
}

/// The leading conditions of a policy: which actions, kinds of user, organisations, purposes
/// and break-glass state it can apply to. They are written into the policy's Cedar text (the
/// action in its scope, the rest as the first conjuncts of `when`), so a request they do not
/// admit can never match the policy; the engine relies on that to evaluate, per request, only
/// the policies whose guard admits it (see `policy_sets.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// The actions (empty: any).
    pub actions: Vec<Action>,
    /// The kinds of user (empty: any).
    pub kinds: Vec<UserKind>,
    /// Same or another organisation.
    pub organisations: OrganisationGuard,
    /// The purposes.
    pub purposes: PurposeGuard,
    /// `Some(b)`: only requests whose break-glass state is `b`.
    pub break_glass: Option<bool>,
}

impl Guard {
    fn new(actions: &[Action], kinds: &[UserKind]) -> Guard {
        Guard {
            actions: actions.to_vec(),
            kinds: kinds.to_vec(),
            organisations: OrganisationGuard::Any,
            purposes: PurposeGuard::Any,
            break_glass: None,
        }
    }

    fn organisations(mut self, organisations: OrganisationGuard) -> Guard {
        self.organisations = organisations;
        self
    }

    fn purposes(mut self, purposes: PurposeGuard) -> Guard {
        self.purposes = purposes;
        self
    }

    fn break_glass(mut self, break_glass: bool) -> Guard {
        self.break_glass = Some(break_glass);
        self
    }

    /// True when a request with these facts can match a policy with this guard.
    pub fn admits(&self, key: RequestKey) -> bool {
        (self.actions.is_empty() || self.actions.contains(&key.action))
            && (self.kinds.is_empty() || self.kinds.contains(&key.kind))
            && match self.organisations {
                OrganisationGuard::Any => true,
                OrganisationGuard::Same => key.same_partner,
                OrganisationGuard::Different => !key.same_partner,
            }
            && match &self.purposes {
                PurposeGuard::Any => true,
                PurposeGuard::OneOf(purposes) => purposes.contains(&key.purpose),
                PurposeGuard::AllBut(purpose) => key.purpose != *purpose,
            }
            && self.break_glass.is_none_or(|b| b == key.break_glass)
    }

    /// The policy scope's action constraint.
    fn scope(&self) -> String {
        let name = |a: &Action| match a {
            Action::Read => READ,
            Action::Write => WRITE,
        };
        match self.actions.as_slice() {
            [] => "action".to_string(),
            [one] => format!("action == {}", name(one)),
            many => format!("action in [{}]", many.iter().map(name).collect::<Vec<_>>().join(", ")),
        }
    }

    /// The guard's conjuncts of `when`, in evaluation order.
    fn conditions(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.kinds.as_slice() {
            [] => {}
            [one] => out.push(format!("principal.kind == {}", lit(one.code()))),
            many => out.push(format!(
                "({})",
                many.iter().map(|k| format!("principal.kind == {}", lit(k.code()))).collect::<Vec<_>>().join(" || ")
            )),
        }
        match self.organisations {
            OrganisationGuard::Any => {}
            OrganisationGuard::Same => out.push("principal.partner == resource.custodian".to_string()),
            OrganisationGuard::Different => out.push("principal.partner != resource.custodian".to_string()),
        }
        match &self.purposes {
            PurposeGuard::Any => {}
            PurposeGuard::OneOf(purposes) => match purposes.as_slice() {
                [one] => out.push(format!("context.purpose == {}", lit(one.code()))),
                many => out.push(format!(
                    "({})",
                    many.iter()
                        .map(|p| format!("context.purpose == {}", lit(p.code())))
                        .collect::<Vec<_>>()
                        .join(" || ")
                )),
            },
            PurposeGuard::AllBut(purpose) => out.push(format!("context.purpose != {}", lit(purpose.code()))),
        }
        match self.break_glass {
            None => {}
            Some(true) => out.push("context.break_glass".to_string()),
            Some(false) => out.push("!context.break_glass".to_string()),
        }
        out
    }
}

/// One compiled policy's metadata.
#[derive(Clone, Debug)]
pub struct PolicyInfo {
    /// The Cedar policy id (also its `@id` annotation).
    pub id: String,
    /// Where it comes from.
    pub source: PolicySource,
    /// True for `permit`, false for `forbid`.
    pub permit: bool,
    /// Plain words for a governance lead.
    pub description: String,
    /// Sensitive labels a matching permit releases (`None`: every label).
    pub releases: Option<LabelSet>,
    /// The requests it can apply to (also written into [`PolicyInfo::text`]).
    pub guard: Guard,
    /// It reads the record's labels or the consent answers (`resource.labels`,
    /// `context.consent_…`); derived from [`PolicyInfo::text`].
    pub reads_labels_or_consent: bool,
    /// The Cedar text.
    pub text: String,
    /// The Cedar text the engine evaluates: [`PolicyInfo::text`] without the conditions its
    /// index establishes before evaluating (the guard's kind of user, organisations, purpose
    /// and break-glass; for a clause also its recipients, disclosers and resource types).
    /// See `policy_sets.rs`.
    pub residual: String,
}

/// A problem building the policy set.
#[derive(Debug, thiserror::Error)]
pub enum PolicyBuildError {
    /// The schema does not parse (a bug in [`CEDAR_SCHEMA`]).
    #[error("the Cedar schema is invalid: {0}")]
    Schema(String),
    /// A generated policy does not parse.
    #[error("policy {policy_id} does not parse: {message}")]
    Parse {
        /// The policy.
        policy_id: String,
        /// Cedar's message.
        message: String,
    },
    /// The policy set does not validate against the schema.
    #[error("the policies do not validate against the schema: {}", .0.join("; "))]
    Validation(Vec<String>),
}

/// The Cedar schema, parsed.
pub fn schema() -> Result<Schema, PolicyBuildError> {
    Schema::from_cedarschema_str(CEDAR_SCHEMA).map(|(s, _)| s).map_err(|e| PolicyBuildError::Schema(e.to_string()))
}

/// A Cedar string literal.
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn org_set(ids: &[String]) -> String {
    let items: Vec<String> = ids.iter().map(|id| format!("CareCircle::Organization::{}", lit(id))).collect();
    format!("[{}]", items.join(", "))
}

fn string_set(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| lit(&s)).collect();
    format!("[{}]", items.join(", "))
}

const READ: &str = r#"CareCircle::Action::"read""#;
const WRITE: &str = r#"CareCircle::Action::"write""#;

/// Resource types an administrator manages: governance data, never about a person.
pub const GOVERNANCE_RESOURCE_TYPES: [&str; 5] =
    ["Organization", "Contract", "DocumentReference", "Practitioner", "PractitionerRole"];

/// The Cedar text of a policy: annotations, effect, the guard's action scope, then `when` with
/// `conditions` (the guard's first), and an optional `unless`.
fn policy_text(
    id: &str,
    description: &str,
    permit: bool,
    guard: &Guard,
    conditions: &[String],
    unless: Option<&str>,
) -> String {
    let mut text = format!(
        "@id({})\n@description({})\n{}(principal, {}, resource)\nwhen {{ {} }}",
        lit(id),
        lit(description),
        if permit { "permit" } else { "forbid" },
        guard.scope(),
        if conditions.is_empty() { "true".to_string() } else { conditions.join(" && ") }
    );
    if let Some(unless) = unless {
        let _ = write!(text, "\nunless {{ {unless} }}");
    }
    text.push(';');
    text
}

/// True when a policy's text reads the record's labels or the consent answers: the only
/// inputs that differ between a labelled read and the same read without its labels.
fn reads_labels_or_consent(text: &str) -> bool {
    ["resource.labels", "context.consent_permits", "context.consent_refuses_emergency"].iter().any(|a| text.contains(a))
}

struct Standing<'a> {
    id: &'a str,
    source: PolicySource,
    permit: bool,
    description: String,
    guard: Guard,
    rest: Vec<String>,
    unless: Option<String>,
}

impl Standing<'_> {
    fn info(self) -> PolicyInfo {
        let residual =
            policy_text(self.id, &self.description, self.permit, &self.guard, &self.rest, self.unless.as_deref());
        let mut conditions = self.guard.conditions();
        conditions.extend(self.rest);
        let text =
            policy_text(self.id, &self.description, self.permit, &self.guard, &conditions, self.unless.as_deref());
        PolicyInfo {
            residual,
            reads_labels_or_consent: reads_labels_or_consent(&text),
            id: self.id.to_string(),
            source: self.source,
            permit: self.permit,
            description: self.description,
            releases: None,
            guard: self.guard,
            text,
        }
    }
}

/// The standing policies: the person's own record, the custodian's own data, writes only as
/// one's own organisation, administrators, the consent gate, the national opt-out, the
/// legitimate relationship for direct care, and who may break the glass.
pub fn baseline_policies(break_glass_roles: &[String]) -> Vec<PolicyInfo> {
    use OrganisationGuard::{Different, Same};
    use PolicySource::{Baseline, ConsentGate};
    use UserKind::{Administrator, Person, Practitioner, SystemClient};
    let read = &[Action::Read][..];
    let write = &[Action::Write][..];
    let both = &[Action::Read, Action::Write][..];
    let staff = &[Practitioner, SystemClient][..];
    let rest = |items: &[&str]| items.iter().map(ToString::to_string).collect::<Vec<_>>();
    let standing = |id, source, permit, description: &str, guard, rest, unless: Option<String>| Standing {
        id,
        source,
        permit,
        description: description.to_string(),
        guard,
        rest,
        unless,
    };
    let secondary: Vec<Purpose> = Purpose::ALL.into_iter().filter(|p| p.is_secondary()).collect();
    vec![
        standing(
            "baseline:person-own-record",
            Baseline,
            true,
            "A person always sees their own record.",
            Guard::new(read, &[Person]),
            rest(&["resource.subject != \"\"", "resource.subject == principal.person"]),
            None,
        ),
        standing(
            "baseline:person-records-own-consent",
            Baseline,
            true,
            "A person may give, narrow or withdraw their own consent.",
            Guard::new(write, &[Person]),
            rest(&["resource.resource_type == \"Consent\"", "resource.subject != \"\"", "resource.subject == principal.person"]),
            None,
        ),
        standing(
            "baseline:custodian-own-data",
            Baseline,
            true,
            "A custodian always sees and maintains its own data: staff and system clients of the partner that holds a record may read and write it.",
            Guard::new(both, staff).organisations(Same),
            Vec::new(),
            None,
        ),
        standing(
            "baseline:write-only-as-own-organisation",
            Baseline,
            false,
            "Staff and system clients write only as their own organisation: never into another custodian's records.",
            Guard::new(write, staff).organisations(Different),
            Vec::new(),
            None,
        ),
        standing(
            "baseline:administrator-governance",
            Baseline,
            true,
            "Administrators manage the partnership's governance data (organisations, agreements, DPIAs, staff), which is about no person.",
            Guard::new(both, &[Administrator]),
            vec![
                "resource.subject == \"\"".to_string(),
                format!("{}.contains(resource.resource_type)", string_set(GOVERNANCE_RESOURCE_TYPES.iter().map(ToString::to_string))),
            ],
            None,
        ),
        standing(
            "baseline:administrator-reads-audit",
            Baseline,
            true,
            "Administrators read the audit log.",
            Guard::new(read, &[Administrator]),
            rest(&["resource.resource_type == \"AuditEvent\""]),
            None,
        ),
        standing(
            "baseline:administrator-no-care-record",
            Baseline,
            false,
            "Administration is not care: an administrator never reads or writes anything about a person through that role.",
            Guard::new(&[], &[Administrator]),
            rest(&["resource.subject != \"\"", "resource.resource_type != \"AuditEvent\""]),
            None,
        ),
        standing(
            "consent:gate",
            ConsentGate,
            false,
            "Data about a person goes to another organisation only as the person's consent (or the partnership's scheme, where they said nothing) allows; break-glass overrides this unless the person refused emergency access explicitly.",
            Guard::new(read, staff).organisations(Different),
            rest(&["!context.consent_permits"]),
            Some("context.break_glass && context.purpose == \"ETREAT\" && !context.consent_refuses_emergency".to_string()),
        ),
        standing(
            "consent:national-opt-out",
            ConsentGate,
            false,
            "A person with a national data opt-out is left out of secondary uses (HOPERAT, HRESCH, PUBHLTH); direct care is unaffected.",
            Guard::new(read, &[]).organisations(Different).purposes(PurposeGuard::OneOf(secondary)),
            rest(&["context.national_opt_out"]),
            None,
        ),
        standing(
            "relationship:direct-care",
            Baseline,
            false,
            "Direct care (TREAT) from another organisation needs a legitimate relationship: the user's organisation is in the person's care team or has the person on its list.",
            Guard::new(read, staff).organisations(Different).purposes(PurposeGuard::OneOf(vec![Purpose::Treat])),
            rest(&["resource.subject != \"\"", "!context.relationship"]),
            None,
        ),
        standing(
            "break-glass:allowed-roles",
            Baseline,
            false,
            &format!(
                "Emergency access (ETREAT) to another organisation's data is break-glass: only practitioners in roles allowed to ({}) with a stated reason.",
                break_glass_roles.join(", ")
            ),
            Guard::new(&[], &[]).organisations(Different).purposes(PurposeGuard::OneOf(vec![Purpose::EmergencyTreat])),
            Vec::new(),
            Some(format!(
                "context.break_glass && context.break_glass_reason_given && principal.kind == \"practitioner\" && {}.contains(principal.role)",
                string_set(break_glass_roles.iter().cloned())
            )),
        ),
        standing(
            "break-glass:emergency-purpose-only",
            Baseline,
            false,
            "Break-glass is only for emergency care (ETREAT).",
            Guard::new(&[], &[]).purposes(PurposeGuard::AllBut(Purpose::EmergencyTreat)).break_glass(true),
            Vec::new(),
            None,
        ),
    ]
    .into_iter()
    .map(Standing::info)
    .collect()
}

fn describe_clause(agreement: &Agreement, clause: &Clause) -> String {
    let until = agreement.end.map_or_else(|| "no end date".to_string(), |e| format!("until {e}"));
    let labels = if clause.labels.is_empty() {
        "no sensitive labels".to_string()
    } else {
        clause.labels.to_vec().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    };
    let basis: Vec<String> = clause.lawful_basis.iter().map(ToString::to_string).collect();
    format!(
        "Agreement {} \"{}\" clause {}: {} ({}) by {} of data held by {}: {} ({}); lawful basis {}; from {} {}.",
        agreement.id,
        agreement.title,
        clause.id,
        clause.purpose.describe(),
        clause.purpose,
        clause.recipients.join(", "),
        clause.disclosers.join(", "),
        clause.resource_types.join(", "),
        labels,
        if basis.is_empty() { "none".to_string() } else { basis.join(" + ") },
        agreement.start,
        until,
    )
}

/// The guard of every clause policy: staff and system clients reading another organisation's
/// data for the clause's purpose (an `ETREAT` clause also needs a break-glass request).
fn clause_guard(clause: &Clause) -> Guard {
    let guard = Guard::new(&[Action::Read], &[UserKind::Practitioner, UserKind::SystemClient])
        .organisations(OrganisationGuard::Different)
        .purposes(PurposeGuard::OneOf(vec![clause.purpose]));
    if clause.purpose == Purpose::EmergencyTreat {
        guard.break_glass(true)
    } else {
        guard
    }
}

/// A condition that `expr` equals one of `items` (already Cedar literals): `==` for one, a set
/// literal's `contains` for several.
fn one_of(expr: &str, items: &[String]) -> String {
    match items {
        [one] => format!("{expr} == {one}"),
        many => format!("[{}].contains({expr})", many.join(", ")),
    }
}

/// The `when` conditions of a clause after its guard: resource types, organisations (the
/// clause's recipients and disclosers), then those that remain for the engine to evaluate
/// (see [`PolicyInfo::residual`]): the agreement's period and the labels.
fn clause_conditions(agreement: &Agreement, clause: &Clause) -> (Vec<String>, Vec<String>) {
    let types: Vec<String> = clause.resource_types.iter().map(|t| lit(t)).collect();
    let indexed = vec![
        one_of("resource.resource_type", &types),
        format!("{}.contains(principal.partner)", org_set(&clause.recipients)),
        format!("{}.contains(resource.custodian)", org_set(&clause.disclosers)),
    ];
    let mut evaluated = vec![format!("context.today >= {}", crate::profile::date_number(agreement.start))];
    if let Some(end) = agreement.end {
        evaluated.push(format!("context.today <= {}", crate::profile::date_number(end)));
    }
    if clause.labels.is_empty() {
        evaluated.push("resource.labels.isEmpty()".to_string());
    } else {
        // `isEmpty()` first: most records carry no label, and it spares building the set.
        evaluated.push(format!(
            "(resource.labels.isEmpty() || {}.containsAll(resource.labels))",
            string_set(clause.labels.to_vec().iter().map(|l| l.code().to_string()))
        ));
    }
    (indexed, evaluated)
}

/// The `permit` policy for one clause of an active agreement: recipients' staff and system
/// clients reading the disclosers' data of the clause's types and labels, for its purpose,
/// inside the agreement's period.
pub fn clause_policy(agreement: &Agreement, clause: &Clause) -> PolicyInfo {
    let id = format!("agreement:{}/{}", agreement.id, clause.id);
    let description = describe_clause(agreement, clause);
    let guard = clause_guard(clause);
    let (indexed, evaluated) = clause_conditions(agreement, clause);
    let residual = policy_text(&id, &description, true, &guard, &evaluated, None);
    let mut conditions = guard.conditions();
    conditions.extend(indexed);
    conditions.extend(evaluated);
    let text = policy_text(&id, &description, true, &guard, &conditions, None);
    PolicyInfo {
        reads_labels_or_consent: reads_labels_or_consent(&text),
        id,
        source: PolicySource::Agreement { contract_id: agreement.id.clone(), clause: clause.id.clone() },
        permit: true,
        description,
        releases: Some(clause.labels),
        guard,
        text,
        residual,
    }
}

/// Parse `infos` into one policy set, each policy under its own id.
pub fn parse_policy_set(infos: &[PolicyInfo]) -> Result<PolicySet, PolicyBuildError> {
    let mut set = PolicySet::new();
    for info in infos {
        set.add(parse_policy(info)?)
            .map_err(|e| PolicyBuildError::Parse { policy_id: info.id.clone(), message: e.to_string() })?;
    }
    Ok(set)
}

/// [`parse_policy_set`], then validate the whole set against the schema (strict mode).
pub fn build_policy_set(schema: &Schema, infos: &[PolicyInfo]) -> Result<PolicySet, PolicyBuildError> {
    let set = parse_policy_set(infos)?;
    validate_policy_set(schema, &set)?;
    Ok(set)
}

/// Validate `set` against the schema (strict mode).
pub fn validate_policy_set(schema: &Schema, set: &PolicySet) -> Result<(), PolicyBuildError> {
    let result = Validator::new(schema.clone()).validate(set, ValidationMode::Strict);
    if !result.validation_passed() {
        return Err(PolicyBuildError::Validation(result.validation_errors().map(ToString::to_string).collect()));
    }
    Ok(())
}

/// Parse one policy under its own id.
pub fn parse_policy(info: &PolicyInfo) -> Result<Policy, PolicyBuildError> {
    Policy::parse(Some(PolicyId::new(&info.id)), &info.text)
        .map_err(|e| PolicyBuildError::Parse { policy_id: info.id.clone(), message: e.to_string() })
}

/// Metadata of every policy by id.
pub type PolicyIndex = BTreeMap<String, PolicyInfo>;
