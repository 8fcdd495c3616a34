//! The person's consent: the carecircle profile of FHIR `Consent` (see `docs/consent.md`),
//! the partnership's scheme (opt-in or opt-out), and the evaluation of nested provisions for
//! one request, recording which provision decided.

use serde_json::Value;
use time::Date;

use crate::codes::{LabelSet, Purpose, Sector, SensitivityLabel, PURPOSE_SYSTEM, RESOURCE_TYPES_SYSTEM, SECTOR_SYSTEM};
use crate::profile::{check_resource_type, finish, parse_date, resource_label, At, Problem, ProfileError};

/// `Consent.scope` system; the profile requires `patient-privacy`.
pub const CONSENT_SCOPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
/// Extension on `Consent` naming the member of staff who recorded it on the person's behalf
/// (`valueReference` to a `Practitioner` or `PractitionerRole`).
pub const RECORDED_BY_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/consent-recorded-by";

/// The partnership's consent model: what happens when the person has said nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsentModel {
    /// Nothing is shared with other partners until the person agrees.
    OptIn,
    /// Shared for direct care unless the person objects.
    OptOut,
}

/// `Consent.status`, as far as decisions care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsentStatus {
    /// `draft` or `proposed`: not yet given; ignored.
    NotYetGiven,
    /// `active`: in force.
    Active,
    /// `inactive`: withdrawn or lapsed.
    Inactive,
    /// `rejected`: the person declined.
    Rejected,
    /// `entered-in-error`: ignored.
    EnteredInError,
}

impl ConsentStatus {
    fn from_fhir(code: &str) -> Option<ConsentStatus> {
        Some(match code {
            "draft" | "proposed" => ConsentStatus::NotYetGiven,
            "active" => ConsentStatus::Active,
            "inactive" => ConsentStatus::Inactive,
            "rejected" => ConsentStatus::Rejected,
            "entered-in-error" => ConsentStatus::EnteredInError,
            _ => return None,
        })
    }
}

/// `Consent.provision.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProvisionType {
    /// The provision allows what it matches.
    Permit,
    /// The provision refuses what it matches.
    Deny,
}

impl ProvisionType {
    fn opposite(self) -> ProvisionType {
        match self {
            ProvisionType::Permit => ProvisionType::Deny,
            ProvisionType::Deny => ProvisionType::Permit,
        }
    }
}

/// One (possibly nested) consent provision. Empty condition lists match everything.
#[derive(Clone, Debug, PartialEq)]
pub struct Provision {
    /// Where it is: `Consent.provision.provision[1]`, a stable id within the consent version.
    pub path: String,
    /// Permit or deny.
    pub kind: ProvisionType,
    /// `provision.period` start and end.
    pub period: (Option<Date>, Option<Date>),
    /// Organisations named in `provision.actor` (`Organization/{id}`); a partner covers its teams.
    pub organisations: Vec<String>,
    /// Sectors named in `provision.actor` (logical reference by identifier in the sector system).
    pub sectors: Vec<Sector>,
    /// `provision.purpose`.
    pub purposes: Vec<Purpose>,
    /// `provision.class`: resource types.
    pub resource_types: Vec<String>,
    /// `provision.securityLabel`: the sensitive labels the provision is about.
    pub labels: LabelSet,
    /// Nested provisions, each the opposite type of this one.
    pub children: Vec<Provision>,
}

/// One `Consent` resource following the carecircle profile.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsentRecord {
    /// `Consent.id`.
    pub id: String,
    /// `Consent.meta.versionId` (empty when the resource has not been stored yet).
    pub version: String,
    /// Status.
    pub status: ConsentStatus,
    /// `Consent.dateTime`, as given: when it was given or changed.
    pub date_time: String,
    /// The `Patient` it is about (`Consent.patient`, `Patient/{id}`).
    pub patient: String,
    /// Who gave it (`Consent.performer`: `Patient/…` or `RelatedPerson/…`).
    pub performers: Vec<String>,
    /// The member of staff who recorded it on the person's behalf, if not self-recorded.
    pub recorded_by: Option<String>,
    /// The evidence (`Consent.sourceReference`, a `DocumentReference/…`), when there is one.
    pub evidence: Option<String>,
    /// The root provision.
    pub provision: Provision,
}

impl ConsentRecord {
    /// Read a `Consent`. Every problem is located: scope, category, patient, performer,
    /// organization and dateTime are required; a consent recorded by staff (the
    /// recorded-by extension) or given by a representative needs the staff member and a
    /// DocumentReference as evidence; nested provisions must alternate permit and deny.
    pub fn from_resource(resource: &Value) -> Result<ConsentRecord, ProfileError> {
        check_resource_type(resource, "Consent")?;
        let root = At::root(resource, "Consent");
        let mut problems = Vec::new();
        let id = root.required_string("id", &mut problems);
        let version =
            root.field("meta").and_then(|m| m.string("versionId", &mut problems)).unwrap_or_default().to_string();
        let status = root.required_string("status", &mut problems).and_then(|s| {
            let status = ConsentStatus::from_fhir(s);
            if status.is_none() {
                problems.push(Problem::new("Consent.status", format!("'{s}' is not a Consent status")));
            }
            status
        });
        match root.field("scope") {
            Some(scope) if scope.code_in(CONSENT_SCOPE_SYSTEM) == Some("patient-privacy") => {}
            Some(scope) => problems.push(Problem::new(scope.path, "must be patient-privacy (consentscope)")),
            None => problems.push(Problem::new("Consent.scope", "is required (patient-privacy)")),
        }
        if root.items("category").is_empty() {
            problems.push(Problem::new("Consent.category", "at least one category is required"));
        }
        let patient = match root.field("patient") {
            Some(p) => match p.reference(&mut problems) {
                Some(("Patient", pid)) => Some(format!("Patient/{pid}")),
                Some((other, _)) => {
                    problems.push(Problem::new(
                        p.child_path("reference"),
                        format!("must reference a Patient, not {other}"),
                    ));
                    None
                }
                None => None,
            },
            None => {
                problems.push(Problem::new("Consent.patient", "is required"));
                None
            }
        };
        let date_time = root.required_string("dateTime", &mut problems).unwrap_or_default().to_string();
        if !date_time.is_empty() && parse_date(&date_time).is_none() {
            problems.push(Problem::new("Consent.dateTime", format!("'{date_time}' is not a dateTime")));
        }

        let mut performers = Vec::new();
        for performer in root.items("performer") {
            match performer.reference(&mut problems) {
                Some((t @ ("Patient" | "RelatedPerson"), pid)) => performers.push(format!("{t}/{pid}")),
                Some((other, _)) => problems.push(Problem::new(
                    performer.child_path("reference"),
                    format!(
                        "the performer is who gave consent (the Patient, or a RelatedPerson acting for them), not {other}; \
                         staff who record it go in the {RECORDED_BY_EXTENSION} extension"
                    ),
                )),
                None => {}
            }
        }
        if root.field("performer").is_none() {
            problems.push(Problem::new("Consent.performer", "who gave the consent is required"));
        }
        if root.items("organization").is_empty() {
            problems.push(Problem::new("Consent.organization", "the organisation that holds the consent is required"));
        }

        let mut recorded_by = None;
        for ext in root.items("extension") {
            if ext.value.get("url").and_then(Value::as_str) != Some(RECORDED_BY_EXTENSION) {
                continue;
            }
            match ext.field("valueReference").and_then(|r| r.reference(&mut problems).map(|x| (r.path.clone(), x))) {
                Some((_, (t @ ("Practitioner" | "PractitionerRole"), sid))) => recorded_by = Some(format!("{t}/{sid}")),
                Some((path, (other, _))) => {
                    problems.push(Problem::new(
                        path,
                        format!("the recorder is a Practitioner or PractitionerRole, not {other}"),
                    ));
                }
                None => {
                    problems.push(Problem::new(ext.child_path("valueReference"), "the member of staff is required"))
                }
            }
        }
        let evidence = match root.field("sourceReference") {
            Some(r) => match r.reference(&mut problems) {
                Some(("DocumentReference", did)) => Some(format!("DocumentReference/{did}")),
                Some((other, _)) => {
                    problems.push(Problem::new(
                        r.child_path("reference"),
                        format!("evidence is a DocumentReference, not {other}"),
                    ));
                    None
                }
                None => None,
            },
            None => None,
        };
        let self_recorded = patient.as_ref().is_some_and(|p| performers.iter().any(|x| x == p));
        let by_representative = performers.iter().any(|p| p.starts_with("RelatedPerson/"));
        if recorded_by.is_none() && !performers.is_empty() && (!self_recorded || by_representative) {
            problems.push(Problem::new(
                "Consent.extension",
                format!(
                    "consent given by someone other than the person must be recorded by a member of staff \
                     ({RECORDED_BY_EXTENSION})"
                ),
            ));
        }
        if recorded_by.is_some() && evidence.is_none() {
            problems.push(Problem::new(
                "Consent.sourceReference",
                "consent recorded by staff on the person's behalf needs evidence (a DocumentReference)",
            ));
        }

        let provision = match root.field("provision") {
            Some(p) => parse_provision(&p, None, &mut problems),
            None => {
                problems.push(Problem::new("Consent.provision", "is required"));
                None
            }
        };

        let value = match (id, status, patient, provision) {
            (Some(id), Some(status), Some(patient), Some(provision)) => Some(ConsentRecord {
                id: id.to_string(),
                version,
                status,
                date_time,
                patient,
                performers,
                recorded_by,
                evidence,
                provision,
            }),
            _ => None,
        };
        finish(resource_label(resource, "Consent"), problems, value)
    }
}

fn parse_provision(at: &At<'_>, parent: Option<ProvisionType>, problems: &mut Vec<Problem>) -> Option<Provision> {
    let kind = match at.string("type", problems) {
        Some("permit") => Some(ProvisionType::Permit),
        Some("deny") => Some(ProvisionType::Deny),
        Some(other) => {
            problems.push(Problem::new(at.child_path("type"), format!("'{other}' is not permit or deny")));
            None
        }
        None => {
            problems.push(Problem::new(at.child_path("type"), "permit or deny is required"));
            None
        }
    };
    if let (Some(kind), Some(parent)) = (kind, parent) {
        if kind != parent.opposite() {
            problems.push(Problem::new(
                at.child_path("type"),
                "a nested provision is an exception to its parent, so it must be the opposite type",
            ));
        }
    }
    let period = match at.field("period") {
        Some(p) => (p.date("start", problems), p.date("end", problems)),
        None => (None, None),
    };
    let mut organisations = Vec::new();
    let mut sectors = Vec::new();
    for actor in at.items("actor") {
        let Some(reference) = actor.field("reference") else {
            problems.push(Problem::new(actor.child_path("reference"), "is required"));
            continue;
        };
        if let Some(identifier) = reference.field("identifier") {
            let system = identifier.value.get("system").and_then(Value::as_str);
            let value = identifier.value.get("value").and_then(Value::as_str);
            match (system, value.and_then(Sector::from_code)) {
                (Some(SECTOR_SYSTEM), Some(sector)) => sectors.push(sector),
                _ => problems.push(Problem::new(
                    identifier.path,
                    format!("a logical actor reference names a sector: identifier system {SECTOR_SYSTEM}, value a sector code"),
                )),
            }
            continue;
        }
        match reference.reference(problems) {
            Some(("Organization", oid)) => organisations.push(oid.to_string()),
            Some((other, _)) => problems.push(Problem::new(
                reference.child_path("reference"),
                format!("consent actors are organisations or sectors, not {other}"),
            )),
            None => {}
        }
    }
    let mut purposes = Vec::new();
    for purpose in at.items("purpose") {
        let system = purpose.value.get("system").and_then(Value::as_str);
        let code = purpose.value.get("code").and_then(Value::as_str);
        match (system, code.and_then(Purpose::from_code)) {
            (Some(PURPOSE_SYSTEM), Some(p)) => purposes.push(p),
            _ => problems.push(Problem::new(
                purpose.path,
                format!("must be TREAT, ETREAT, HOPERAT, HRESCH or PUBHLTH in {PURPOSE_SYSTEM}"),
            )),
        }
    }
    let mut resource_types = Vec::new();
    for class in at.items("class") {
        let system = class.value.get("system").and_then(Value::as_str);
        match (system, class.value.get("code").and_then(Value::as_str)) {
            (Some(RESOURCE_TYPES_SYSTEM), Some(code)) => resource_types.push(code.to_string()),
            _ => problems.push(Problem::new(class.path, format!("must be a resource type in {RESOURCE_TYPES_SYSTEM}"))),
        }
    }
    let mut labels = LabelSet::EMPTY;
    for label in at.items("securityLabel") {
        let system = label.value.get("system").and_then(Value::as_str).unwrap_or_default();
        let code = label.value.get("code").and_then(Value::as_str).unwrap_or_default();
        match SensitivityLabel::from_coding(system, code) {
            Some(l) => labels = labels.with(l),
            None => problems.push(Problem::new(
                label.path,
                "must be a sensitivity label (ActCode PSY, ETH, SDV, HIV or Confidentiality R, V)",
            )),
        }
    }
    let children: Vec<Provision> =
        at.items("provision").iter().filter_map(|child| parse_provision(child, kind, problems)).collect();
    Some(Provision {
        path: at.path.clone(),
        kind: kind?,
        period,
        organisations,
        sectors,
        purposes,
        resource_types,
        labels,
        children,
    })
}

/// Everything the person has said about sharing their record, as the engine needs it.
///
/// The governing consent is the newest (`Consent.dateTime`, then version) whose status is
/// active, inactive or rejected; drafts and entries in error are ignored. When it is not
/// active the person has withdrawn, and the scheme's default applies from the very next
/// decision: nothing here is cached, and [`PersonConsent::versions`] names what a caller's
/// decision cache must be keyed by.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PersonConsent {
    /// The person's consents, in any order.
    pub consents: Vec<ConsentRecord>,
    /// The person has registered a national data opt-out: secondary uses (HOPERAT, HRESCH,
    /// PUBHLTH) are refused; direct care is unaffected.
    pub national_opt_out: bool,
}

impl PersonConsent {
    /// Nothing recorded: the scheme's default applies.
    pub fn none() -> PersonConsent {
        PersonConsent::default()
    }

    /// The person's consents parsed from `Consent` resources.
    pub fn from_resources(resources: &[Value], national_opt_out: bool) -> Result<PersonConsent, ProfileError> {
        let consents = resources.iter().map(ConsentRecord::from_resource).collect::<Result<Vec<_>, _>>()?;
        Ok(PersonConsent { consents, national_opt_out })
    }

    /// `(id, version)` of every consent: the key any cache of decisions must include.
    pub fn versions(&self) -> Vec<(String, String)> {
        self.consents.iter().map(|c| (c.id.clone(), c.version.clone())).collect()
    }

    /// The consent that governs decisions now, if any (see the type's documentation).
    pub fn governing(&self) -> Option<&ConsentRecord> {
        self.consents
            .iter()
            .filter(|c| matches!(c.status, ConsentStatus::Active | ConsentStatus::Inactive | ConsentStatus::Rejected))
            .max_by(|a, b| {
                let key = |c: &ConsentRecord| {
                    (parse_date(&c.date_time), c.date_time.clone(), c.version.parse::<u64>().unwrap_or(0))
                };
                key(a).cmp(&key(b))
            })
    }
}

/// What a consent question is about.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConsentQuery<'a> {
    /// The organisation the user acts for (a team or a partner).
    pub organisation: &'a str,
    /// Its partner (custodian-level) organisation.
    pub partner: &'a str,
    /// Its sector.
    pub sector: Sector,
    /// Why.
    pub purpose: Purpose,
    /// The resource type.
    pub resource_type: &'a str,
    /// Today.
    pub today: Date,
}

/// Where a consent answer came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsentSource {
    /// A provision of the governing consent.
    Provision {
        /// `Consent.id`.
        consent_id: String,
        /// `Consent.meta.versionId`.
        version: String,
        /// The provision, for example `Consent.provision.provision[0]`.
        provision_path: String,
    },
    /// The governing consent was withdrawn (inactive) or declined (rejected): the scheme's
    /// default applies.
    Withdrawn {
        /// `Consent.id`.
        consent_id: String,
        /// `Consent.meta.versionId`.
        version: String,
    },
    /// No consent, or no provision matched: the scheme's default.
    SchemeDefault(ConsentModel),
}

/// One consent answer: permit or not, and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentAnswer {
    /// True when the consent allows it.
    pub permits: bool,
    /// What decided.
    pub source: ConsentSource,
    /// True when a deny provision names `ETREAT` explicitly: the person refused even
    /// emergency access, which break-glass does not override.
    pub refuses_emergency: bool,
}

/// The consent verdict for one request: for the resource's unlabelled content, and for each
/// sensitive label asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentVerdict {
    /// For the content without sensitive labels.
    pub base: ConsentAnswer,
    /// For each sensitive label asked about.
    pub labels: Vec<(SensitivityLabel, ConsentAnswer)>,
}

impl ConsentVerdict {
    /// Labels the consent releases.
    pub fn released(&self) -> LabelSet {
        self.labels.iter().filter(|(_, a)| a.permits).fold(LabelSet::EMPTY, |s, (l, _)| s.with(*l))
    }
}

struct Hit<'a> {
    kind: ProvisionType,
    path: &'a str,
    names_label: bool,
    names_etreat: bool,
}

fn matches(p: &Provision, q: &ConsentQuery<'_>, label: Option<SensitivityLabel>) -> bool {
    let (start, end) = p.period;
    if start.is_some_and(|s| q.today < s) || end.is_some_and(|e| q.today > e) {
        return false;
    }
    let actor_ok = (p.organisations.is_empty() && p.sectors.is_empty())
        || p.organisations.iter().any(|o| o == q.organisation || o == q.partner)
        || p.sectors.contains(&q.sector);
    let label_ok = p.labels.is_empty() || label.is_some_and(|l| p.labels.contains(l));
    actor_ok
        && label_ok
        && (p.purposes.is_empty() || p.purposes.contains(&q.purpose))
        && (p.resource_types.is_empty() || p.resource_types.iter().any(|t| t == q.resource_type))
}

/// The deepest matching provision under `p`, as FHIR nests exceptions.
fn evaluate<'a>(
    p: &'a Provision,
    q: &ConsentQuery<'_>,
    label: Option<SensitivityLabel>,
    names_label: bool,
    names_etreat: bool,
) -> Option<Hit<'a>> {
    if !matches(p, q, label) {
        return None;
    }
    let names_label = names_label || label.is_some_and(|l| p.labels.contains(l));
    let names_etreat = names_etreat || p.purposes.contains(&Purpose::EmergencyTreat);
    let mut best: Option<Hit<'a>> = None;
    for child in &p.children {
        if let Some(hit) = evaluate(child, q, label, names_label, names_etreat) {
            // Deny wins between siblings; between permits, one that names the label asked
            // about wins (a general permit does not release sensitive data).
            let rank = |h: &Hit<'_>| (h.kind == ProvisionType::Deny, h.names_label);
            let replace = best.as_ref().is_none_or(|b| rank(&hit) > rank(b));
            if replace {
                best = Some(hit);
            }
        }
    }
    best.or(Some(Hit { kind: p.kind, path: &p.path, names_label, names_etreat }))
}

fn default_answer(model: ConsentModel, label: Option<SensitivityLabel>, source: ConsentSource) -> ConsentAnswer {
    // Under opt-out, sharing without a word from the person covers unlabelled data only
    // (for any purpose an agreement allows; secondary uses still meet the national opt-out):
    // sensitive labels always need a provision that names them.
    let permits = model == ConsentModel::OptOut && label.is_none();
    ConsentAnswer { permits, source, refuses_emergency: false }
}

fn answer(
    person: &PersonConsent,
    model: ConsentModel,
    q: &ConsentQuery<'_>,
    label: Option<SensitivityLabel>,
) -> ConsentAnswer {
    let Some(consent) = person.governing() else {
        return default_answer(model, label, ConsentSource::SchemeDefault(model));
    };
    if consent.status != ConsentStatus::Active {
        let source = ConsentSource::Withdrawn { consent_id: consent.id.clone(), version: consent.version.clone() };
        return default_answer(model, label, source);
    }
    match evaluate(&consent.provision, q, label, false, false) {
        Some(hit) => {
            let source = ConsentSource::Provision {
                consent_id: consent.id.clone(),
                version: consent.version.clone(),
                provision_path: hit.path.to_string(),
            };
            let permits = hit.kind == ProvisionType::Permit && (label.is_none() || hit.names_label);
            let refuses_emergency = hit.kind == ProvisionType::Deny && hit.names_etreat;
            ConsentAnswer { permits, source, refuses_emergency }
        }
        None => default_answer(model, label, ConsentSource::SchemeDefault(model)),
    }
}

/// The consent verdict for `q`, for unlabelled content and for each of `labels`.
pub(crate) fn verdict(
    person: &PersonConsent,
    model: ConsentModel,
    q: &ConsentQuery<'_>,
    labels: LabelSet,
) -> ConsentVerdict {
    ConsentVerdict {
        base: answer(person, model, q, None),
        labels: labels.to_vec().into_iter().map(|l| (l, answer(person, model, q, Some(l)))).collect(),
    }
}
