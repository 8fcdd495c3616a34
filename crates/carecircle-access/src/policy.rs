//! The Cedar side of the engine: the schema, the baseline policies every partnership has,
//! and the compilation of each active agreement clause into one `permit` policy with a stable
//! id, validated against the schema whenever the policy set is built.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cedar_policy::{Policy, PolicyId, PolicySet, Schema, ValidationMode, Validator};

use crate::agreement::{Agreement, Clause};
use crate::codes::{LabelSet, Purpose};

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
    /// The Cedar text.
    pub text: String,
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

fn baseline(id: &str, source: PolicySource, permit: bool, description: &str, body: String) -> PolicyInfo {
    let text = format!("@id({})\n@description({})\n{body}", lit(id), lit(description));
    PolicyInfo { id: id.to_string(), source, permit, description: description.to_string(), releases: None, text }
}

/// The standing policies: the person's own record, the custodian's own data, writes only as
/// one's own organisation, administrators, the consent gate, the national opt-out, the
/// legitimate relationship for direct care, and who may break the glass.
pub fn baseline_policies(break_glass_roles: &[String]) -> Vec<PolicyInfo> {
    use PolicySource::{Baseline, ConsentGate};
    let staff = r#"(principal.kind == "practitioner" || principal.kind == "system")"#;
    vec![
        baseline(
            "baseline:person-own-record",
            Baseline,
            true,
            "A person always sees their own record.",
            format!(
                "permit(principal, action == {READ}, resource)\nwhen {{ principal.kind == \"person\" && resource.subject != \"\" && resource.subject == principal.person }};"
            ),
        ),
        baseline(
            "baseline:person-records-own-consent",
            Baseline,
            true,
            "A person may give, narrow or withdraw their own consent.",
            format!(
                "permit(principal, action == {WRITE}, resource)\nwhen {{ principal.kind == \"person\" && resource.subject != \"\" && resource.subject == principal.person && resource.resource_type == \"Consent\" }};"
            ),
        ),
        baseline(
            "baseline:custodian-own-data",
            Baseline,
            true,
            "A custodian always sees and maintains its own data: staff and system clients of the partner that holds a record may read and write it.",
            format!(
                "permit(principal, action in [{READ}, {WRITE}], resource)\nwhen {{ {staff} && principal.partner == resource.custodian }};"
            ),
        ),
        baseline(
            "baseline:write-only-as-own-organisation",
            Baseline,
            false,
            "Staff and system clients write only as their own organisation: never into another custodian's records.",
            format!("forbid(principal, action == {WRITE}, resource)\nwhen {{ {staff} && principal.partner != resource.custodian }};"),
        ),
        baseline(
            "baseline:administrator-governance",
            Baseline,
            true,
            "Administrators manage the partnership's governance data (organisations, agreements, DPIAs, staff), which is about no person.",
            format!(
                "permit(principal, action in [{READ}, {WRITE}], resource)\nwhen {{ principal.kind == \"administrator\" && resource.subject == \"\" && {}.contains(resource.resource_type) }};",
                string_set(GOVERNANCE_RESOURCE_TYPES.iter().map(ToString::to_string))
            ),
        ),
        baseline(
            "baseline:administrator-reads-audit",
            Baseline,
            true,
            "Administrators read the audit log.",
            format!(
                "permit(principal, action == {READ}, resource)\nwhen {{ principal.kind == \"administrator\" && resource.resource_type == \"AuditEvent\" }};"
            ),
        ),
        baseline(
            "baseline:administrator-no-care-record",
            Baseline,
            false,
            "Administration is not care: an administrator never reads or writes anything about a person through that role.",
            "forbid(principal, action, resource)\nwhen { principal.kind == \"administrator\" && resource.subject != \"\" && resource.resource_type != \"AuditEvent\" };".to_string(),
        ),
        baseline(
            "consent:gate",
            ConsentGate,
            false,
            "Data about a person goes to another organisation only as the person's consent (or the partnership's scheme, where they said nothing) allows; break-glass overrides this unless the person refused emergency access explicitly.",
            format!(
                "forbid(principal, action == {READ}, resource)\nwhen {{ {staff} && principal.partner != resource.custodian && !context.consent_permits }}\nunless {{ context.break_glass && context.purpose == \"ETREAT\" && !context.consent_refuses_emergency }};"
            ),
        ),
        baseline(
            "consent:national-opt-out",
            ConsentGate,
            false,
            "A person with a national data opt-out is left out of secondary uses (HOPERAT, HRESCH, PUBHLTH); direct care is unaffected.",
            format!(
                "forbid(principal, action == {READ}, resource)\nwhen {{ context.national_opt_out && [\"HOPERAT\", \"HRESCH\", \"PUBHLTH\"].contains(context.purpose) && principal.partner != resource.custodian }};"
            ),
        ),
        baseline(
            "relationship:direct-care",
            Baseline,
            false,
            "Direct care (TREAT) from another organisation needs a legitimate relationship: the user's organisation is in the person's care team or has the person on its list.",
            format!(
                "forbid(principal, action == {READ}, resource)\nwhen {{ context.purpose == \"TREAT\" && {staff} && principal.partner != resource.custodian && resource.subject != \"\" && !context.relationship }};"
            ),
        ),
        baseline(
            "break-glass:allowed-roles",
            Baseline,
            false,
            &format!(
                "Emergency access (ETREAT) to another organisation's data is break-glass: only practitioners in roles allowed to ({}) with a stated reason.",
                break_glass_roles.join(", ")
            ),
            format!(
                "forbid(principal, action, resource)\nwhen {{ context.purpose == \"ETREAT\" && principal.partner != resource.custodian }}\nunless {{ context.break_glass && context.break_glass_reason_given && principal.kind == \"practitioner\" && {}.contains(principal.role) }};",
                string_set(break_glass_roles.iter().cloned())
            ),
        ),
        baseline(
            "break-glass:emergency-purpose-only",
            Baseline,
            false,
            "Break-glass is only for emergency care (ETREAT).",
            "forbid(principal, action, resource)\nwhen { context.break_glass && context.purpose != \"ETREAT\" };".to_string(),
        ),
    ]
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

/// The `permit` policy for one clause of an active agreement.
pub fn clause_policy(agreement: &Agreement, clause: &Clause) -> PolicyInfo {
    let id = format!("agreement:{}/{}", agreement.id, clause.id);
    let description = describe_clause(agreement, clause);
    let mut conditions = vec![
        r#"(principal.kind == "practitioner" || principal.kind == "system")"#.to_string(),
        format!("{}.contains(principal.partner)", org_set(&clause.recipients)),
        format!("{}.contains(resource.custodian)", org_set(&clause.disclosers)),
        "principal.partner != resource.custodian".to_string(),
        format!("context.purpose == {}", lit(clause.purpose.code())),
        format!("context.today >= {}", crate::profile::date_number(agreement.start)),
    ];
    if let Some(end) = agreement.end {
        conditions.push(format!("context.today <= {}", crate::profile::date_number(end)));
    }
    conditions.push(format!("{}.contains(resource.resource_type)", string_set(clause.resource_types.iter().cloned())));
    if clause.labels.is_empty() {
        conditions.push("resource.labels.isEmpty()".to_string());
    } else {
        conditions.push(format!(
            "{}.containsAll(resource.labels)",
            string_set(clause.labels.to_vec().iter().map(|l| l.code().to_string()))
        ));
    }
    if clause.purpose == Purpose::EmergencyTreat {
        conditions.push("context.break_glass".to_string());
    }
    let text = format!(
        "@id({})\n@description({})\npermit(principal, action == {READ}, resource)\nwhen {{\n  {}\n}};",
        lit(&id),
        lit(&description),
        conditions.join(" &&\n  ")
    );
    PolicyInfo {
        id,
        source: PolicySource::Agreement { contract_id: agreement.id.clone(), clause: clause.id.clone() },
        permit: true,
        description,
        releases: Some(clause.labels),
        text,
    }
}

/// Parse `infos` into one policy set, each policy under its own id.
pub fn parse_policy_set(infos: &[PolicyInfo]) -> Result<PolicySet, PolicyBuildError> {
    let mut set = PolicySet::new();
    for info in infos {
        let policy = Policy::parse(Some(PolicyId::new(&info.id)), &info.text)
            .map_err(|e| PolicyBuildError::Parse { policy_id: info.id.clone(), message: e.to_string() })?;
        set.add(policy).map_err(|e| PolicyBuildError::Parse { policy_id: info.id.clone(), message: e.to_string() })?;
    }
    Ok(set)
}

/// [`parse_policy_set`], then validate the whole set against the schema (strict mode).
pub fn build_policy_set(schema: &Schema, infos: &[PolicyInfo]) -> Result<PolicySet, PolicyBuildError> {
    let set = parse_policy_set(infos)?;
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    if !result.validation_passed() {
        return Err(PolicyBuildError::Validation(result.validation_errors().map(ToString::to_string).collect()));
    }
    Ok(set)
}

/// Metadata of every policy by id.
pub type PolicyIndex = BTreeMap<String, PolicyInfo>;
