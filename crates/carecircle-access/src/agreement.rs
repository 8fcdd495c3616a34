//! Data-sharing agreements: the carecircle profile of FHIR `Contract` (see
//! `docs/agreements.md`), parsed into [`Agreement`], its lifecycle, and the rule that an
//! agreement only becomes active with a lawful basis, a retention period and a DPIA for every
//! clause and a signature from every party ([`check_transition`]).

use std::collections::BTreeSet;

use serde_json::Value;
use time::Date;

use crate::codes::{
    LabelSet, LawfulBasis, LawfulBasisArticle, Purpose, SensitivityLabel, ACT_CODE_SYSTEM, CONFIDENTIALITY_SYSTEM,
    LAWFUL_BASIS_SYSTEM, PURPOSE_SYSTEM, RESOURCE_TYPES_SYSTEM,
};
use crate::profile::{check_resource_type, finish, resource_label, At, Problem, ProfileError};

/// Canonical URL of the data-sharing agreement profile (`Contract.meta.profile`).
pub const AGREEMENT_PROFILE: &str = "https://carecircle.example.org/fhir/StructureDefinition/data-sharing-agreement";
/// Extension on `Contract` naming one party (`valueReference` to an `Organization`).
pub const PARTY_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/agreement-party";
/// Extension on `Contract.term` giving how long recipients keep what they receive (`valueDuration`).
pub const RETENTION_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/retention-period";
/// Code system of the roles on `term.offer.party` (`discloser`) and `term.action.subject` (`recipient`).
pub const PARTY_ROLE_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/agreement-party-role";

/// Where an agreement is in its lifecycle, as stored in `Contract.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgreementStatus {
    /// `offered` or `negotiable`: being drafted; shares nothing.
    Draft,
    /// `executable`: some parties have signed; shares nothing.
    Signing,
    /// `executed`: signed by every party, in force for `Contract.applies`.
    Active,
    /// `terminated`: ended early by the parties; shares nothing.
    Terminated,
    /// `rejected`: a party declined to sign; shares nothing.
    Rejected,
    /// `entered-in-error`.
    EnteredInError,
}

impl AgreementStatus {
    /// Read `Contract.status`.
    pub fn from_fhir(code: &str) -> Option<AgreementStatus> {
        Some(match code {
            "offered" | "negotiable" => AgreementStatus::Draft,
            "executable" => AgreementStatus::Signing,
            "executed" => AgreementStatus::Active,
            "terminated" => AgreementStatus::Terminated,
            "rejected" => AgreementStatus::Rejected,
            "entered-in-error" => AgreementStatus::EnteredInError,
            _ => return None,
        })
    }

    /// The `Contract.status` code written for this state.
    pub const fn fhir_code(self) -> &'static str {
        match self {
            AgreementStatus::Draft => "offered",
            AgreementStatus::Signing => "executable",
            AgreementStatus::Active => "executed",
            AgreementStatus::Terminated => "terminated",
            AgreementStatus::Rejected => "rejected",
            AgreementStatus::EnteredInError => "entered-in-error",
        }
    }

    /// The statuses an agreement may move to from this one.
    pub fn may_become(self, next: AgreementStatus) -> bool {
        use AgreementStatus::*;
        next == EnteredInError
            || match self {
                Draft | Signing => matches!(next, Draft | Signing | Active | Rejected),
                Active => matches!(next, Active | Terminated),
                Terminated | Rejected | EnteredInError => next == self,
            }
    }
}

/// An agreement's state on a given day: its status and its period together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgreementState {
    /// Not yet signed by every party.
    Draft,
    /// Some but not all parties have signed.
    Signing,
    /// Active, and the day is inside `Contract.applies`.
    InForce,
    /// Active, but `Contract.applies` has not started.
    NotYetInForce,
    /// Active, but `Contract.applies` has ended.
    Expired,
    /// Terminated by the parties.
    Terminated,
    /// Declined, or entered in error.
    Void,
}

/// How long recipients may keep what they receive under a clause.
#[derive(Clone, Debug, PartialEq)]
pub struct Retention {
    /// The number of units.
    pub value: f64,
    /// The UCUM unit code (`a` years, `mo` months, `d` days).
    pub unit: String,
}

/// One clause of an agreement (`Contract.term`): who may receive what from whom, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Clause {
    /// `Contract.term.id`: the clause's stable id, used in policy ids and reasons.
    pub id: String,
    /// Plain-words summary (`Contract.term.text`).
    pub text: String,
    /// The purpose of use allowed (`term.action.intent`, v3 ActReason).
    pub purpose: Purpose,
    /// Parties whose data may be disclosed (`term.offer.party`; every party when absent).
    pub disclosers: Vec<String>,
    /// Parties that may receive it (`term.action.subject`).
    pub recipients: Vec<String>,
    /// Resource types they may receive (`term.asset.type`, FHIR resource-types).
    pub resource_types: Vec<String>,
    /// Sensitivity labels they may receive (`term.securityLabel`); unlabelled data needs none.
    pub labels: LabelSet,
    /// The lawful basis for this purpose (`term.action.reasonCode`).
    pub lawful_basis: Vec<LawfulBasis>,
    /// Retention (the retention-period extension on the term).
    pub retention: Option<Retention>,
    /// Where the clause is in the Contract, for problems (`Contract.term[2]`).
    pub expression: String,
}

/// One party's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signatory {
    /// The party (`Contract.signer.party`, an Organization id).
    pub party: String,
    /// Who signed for it (`signer.signature.who`, `Practitioner/…` or `PractitionerRole/…`).
    pub who: String,
    /// When (`signer.signature.when`).
    pub when: String,
}

/// A data-sharing agreement read from a `Contract` that follows [`AGREEMENT_PROFILE`].
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    /// `Contract.id`.
    pub id: String,
    /// `Contract.meta.versionId`, if stored.
    pub version: Option<String>,
    /// `Contract.title`.
    pub title: String,
    /// Lifecycle status.
    pub status: AgreementStatus,
    /// First day in force (`Contract.applies.start`).
    pub start: Date,
    /// Last day in force (`Contract.applies.end`), if it has one.
    pub end: Option<Date>,
    /// Party organisation ids (the agreement-party extensions).
    pub parties: Vec<String>,
    /// The clauses.
    pub clauses: Vec<Clause>,
    /// Signatures, one per party once signed.
    pub signatories: Vec<Signatory>,
    /// Ids of the DPIAs (`DocumentReference`) in `Contract.supportingInfo`.
    pub dpias: Vec<String>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

fn organization_reference(at: &At<'_>, problems: &mut Vec<Problem>) -> Option<String> {
    match at.reference(problems) {
        Some(("Organization", id)) => Some(id.to_string()),
        Some((other, _)) => {
            problems
                .push(Problem::new(at.child_path("reference"), format!("must reference an Organization, not {other}")));
            None
        }
        None => None,
    }
}

impl Agreement {
    /// Read a `Contract` following the data-sharing agreement profile. Every problem is
    /// located. An `executed` (active) Contract must also pass [`Agreement::activation_problems`].
    pub fn from_contract(resource: &Value) -> Result<Agreement, ProfileError> {
        let agreement = Agreement::parse(resource)?;
        if agreement.status == AgreementStatus::Active {
            let problems = agreement.activation_problems();
            if !problems.is_empty() {
                return Err(ProfileError { resource: resource_label(resource, "Contract"), problems });
            }
        }
        Ok(agreement)
    }

    /// The structural part of [`Agreement::from_contract`], without the activation rules.
    fn parse(resource: &Value) -> Result<Agreement, ProfileError> {
        check_resource_type(resource, "Contract")?;
        let root = At::root(resource, "Contract");
        let mut problems = Vec::new();

        let id = root.required_string("id", &mut problems);
        if let Some(id) = id.filter(|id| !valid_id(id)) {
            problems.push(Problem::new("Contract.id", format!("'{id}' is not a valid id")));
        }
        let version = root.field("meta").and_then(|m| m.string("versionId", &mut problems)).map(str::to_string);
        let title = root.string("title", &mut problems).unwrap_or_default().to_string();
        let status = root.required_string("status", &mut problems).and_then(|s| {
            let status = AgreementStatus::from_fhir(s);
            if status.is_none() {
                problems.push(Problem::new(
                    "Contract.status",
                    format!("'{s}' is not an agreement status (offered, negotiable, executable, executed, terminated, rejected, entered-in-error)"),
                ));
            }
            status
        });

        let (start, end) = match root.field("applies") {
            Some(applies) => {
                let start = applies.date("start", &mut problems);
                if applies.field("start").is_none() {
                    problems.push(Problem::new(
                        "Contract.applies.start",
                        "is required: the first day the agreement is in force",
                    ));
                }
                let end = applies.date("end", &mut problems);
                if let (Some(s), Some(e)) = (start, end) {
                    if e < s {
                        problems.push(Problem::new("Contract.applies.end", "is before Contract.applies.start"));
                    }
                }
                (start, end)
            }
            None => {
                problems.push(Problem::new("Contract.applies", "is required: the period the agreement applies"));
                (None, None)
            }
        };

        let mut parties: Vec<String> = Vec::new();
        for ext in root.items("extension") {
            if ext.value.get("url").and_then(serde_json::Value::as_str) != Some(PARTY_EXTENSION) {
                continue;
            }
            match ext.field("valueReference") {
                Some(r) => {
                    if let Some(org) = organization_reference(&r, &mut problems) {
                        if parties.contains(&org) {
                            problems
                                .push(Problem::new(r.path, format!("Organization/{org} is named twice as a party")));
                        } else {
                            parties.push(org);
                        }
                    }
                }
                None => problems
                    .push(Problem::new(ext.child_path("valueReference"), "a party extension needs a valueReference")),
            }
        }
        if parties.len() < 2 {
            problems.push(Problem::new(
                "Contract.extension",
                format!("an agreement needs at least two parties ({PARTY_EXTENSION} extensions)"),
            ));
        }

        let terms = root.items("term");
        if terms.is_empty() {
            problems.push(Problem::new("Contract.term", "an agreement needs at least one clause"));
        }
        let mut clauses = Vec::new();
        let mut clause_ids = BTreeSet::new();
        for term in &terms {
            if let Some(clause) = parse_clause(term, &parties, &mut problems) {
                if !clause_ids.insert(clause.id.clone()) {
                    problems
                        .push(Problem::new(term.child_path("id"), format!("clause id '{}' is used twice", clause.id)));
                }
                clauses.push(clause);
            }
        }

        let mut signatories = Vec::new();
        for signer in root.items("signer") {
            let party = match signer.field("party") {
                Some(p) => organization_reference(&p, &mut problems),
                None => {
                    problems.push(Problem::new(signer.child_path("party"), "is required"));
                    None
                }
            };
            if let Some(party) = &party {
                if !parties.contains(party) {
                    problems.push(Problem::new(
                        signer.child_path("party"),
                        format!("Organization/{party} signs but is not a party to the agreement"),
                    ));
                }
            }
            let signatures = signer.items("signature");
            let Some(signature) = signatures.first() else {
                problems.push(Problem::new(signer.child_path("signature"), "a signer needs a signature"));
                continue;
            };
            let who = match signature.field("who") {
                Some(w) => match w.reference(&mut problems) {
                    Some((t @ ("Practitioner" | "PractitionerRole"), id)) => Some(format!("{t}/{id}")),
                    Some((other, _)) => {
                        problems.push(Problem::new(
                            w.child_path("reference"),
                            format!("the signatory must be a Practitioner or PractitionerRole, not {other}"),
                        ));
                        None
                    }
                    None => None,
                },
                None => {
                    problems.push(Problem::new(signature.child_path("who"), "the person who signed is required"));
                    None
                }
            };
            let when = signature.required_string("when", &mut problems);
            if let (Some(party), Some(who), Some(when)) = (party, who, when) {
                if signatories.iter().any(|s: &Signatory| s.party == party) {
                    problems.push(Problem::new(
                        signer.path.clone(),
                        format!("Organization/{party} has more than one signatory"),
                    ));
                } else {
                    signatories.push(Signatory { party, who, when: when.to_string() });
                }
            }
        }

        let mut dpias = Vec::new();
        for info in root.items("supportingInfo") {
            match info.reference(&mut problems) {
                Some(("DocumentReference", id)) => dpias.push(id.to_string()),
                Some((other, _)) => problems.push(Problem::new(
                    info.child_path("reference"),
                    format!("supporting information must be a DPIA DocumentReference, not {other}"),
                )),
                None => {}
            }
        }

        let value = match (id, status, start) {
            (Some(id), Some(status), Some(start)) => Some(Agreement {
                id: id.to_string(),
                version,
                title,
                status,
                start,
                end,
                parties,
                clauses,
                signatories,
                dpias,
            }),
            _ => None,
        };
        finish(resource_label(resource, "Contract"), problems, value)
    }

    /// Why this agreement could not be active: a clause without an Article 6 basis, an
    /// Article 9 condition or a retention period, a party that has not signed, or no DPIA.
    pub fn activation_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for clause in &self.clauses {
            let has = |a| clause.lawful_basis.iter().any(|b| b.article == a);
            if !has(LawfulBasisArticle::Article6) {
                problems.push(Problem::new(
                    format!("{}.action[0].reasonCode", clause.expression),
                    format!("clause '{}' has no UK GDPR Article 6(1) lawful basis", clause.id),
                ));
            }
            if !has(LawfulBasisArticle::Article9) {
                problems.push(Problem::new(
                    format!("{}.action[0].reasonCode", clause.expression),
                    format!("clause '{}' has no UK GDPR Article 9(2) condition for health and care data", clause.id),
                ));
            }
            if clause.retention.is_none() {
                problems.push(Problem::new(
                    format!("{}.extension", clause.expression),
                    format!("clause '{}' has no retention period ({RETENTION_EXTENSION})", clause.id),
                ));
            }
        }
        for party in &self.parties {
            if !self.signatories.iter().any(|s| &s.party == party) {
                problems.push(Problem::new("Contract.signer", format!("Organization/{party} has not signed")));
            }
        }
        if self.dpias.is_empty() {
            problems.push(Problem::new("Contract.supportingInfo", "no DPIA is linked to the agreement"));
        }
        problems
    }

    /// The agreement's state on `day`.
    pub fn state_on(&self, day: Date) -> AgreementState {
        match self.status {
            AgreementStatus::Draft => AgreementState::Draft,
            AgreementStatus::Signing => AgreementState::Signing,
            AgreementStatus::Terminated => AgreementState::Terminated,
            AgreementStatus::Rejected | AgreementStatus::EnteredInError => AgreementState::Void,
            AgreementStatus::Active if day < self.start => AgreementState::NotYetInForce,
            AgreementStatus::Active if self.end.is_some_and(|e| day > e) => AgreementState::Expired,
            AgreementStatus::Active => AgreementState::InForce,
        }
    }
}

fn parse_clause(term: &At<'_>, parties: &[String], problems: &mut Vec<Problem>) -> Option<Clause> {
    let id = term.required_string("id", problems);
    if let Some(id) = id.filter(|id| !valid_id(id)) {
        problems.push(Problem::new(term.child_path("id"), format!("'{id}' is not a valid clause id")));
    }
    let text = term.string("text", problems).unwrap_or_default().to_string();

    let actions = term.items("action");
    let action = match actions.as_slice() {
        [one] => Some(one),
        [] => {
            problems.push(Problem::new(term.child_path("action"), "a clause needs one action (the sharing it allows)"));
            None
        }
        _ => {
            problems.push(Problem::new(
                term.child_path("action"),
                "a clause has exactly one action; split it into clauses",
            ));
            None
        }
    };

    let mut purpose = None;
    let mut recipients = Vec::new();
    let mut lawful_basis = Vec::new();
    if let Some(action) = action {
        match action.field("intent") {
            Some(intent) => match intent.code_in(crate::codes::PURPOSE_SYSTEM) {
                Some(code) => {
                    purpose = Purpose::from_code(code);
                    if purpose.is_none() {
                        problems.push(Problem::new(
                            intent.path.clone(),
                            format!(
                                "'{code}' is not a purpose agreements allow (TREAT, ETREAT, HOPERAT, HRESCH, PUBHLTH)"
                            ),
                        ));
                    }
                }
                None => problems.push(Problem::new(intent.path.clone(), format!("needs a coding in {PURPOSE_SYSTEM}"))),
            },
            None => problems.push(Problem::new(action.child_path("intent"), "the purpose of use is required")),
        }
        for subject in action.items("subject") {
            for r in subject.items("reference") {
                if let Some(org) = organization_reference(&r, problems) {
                    if !parties.contains(&org) {
                        problems
                            .push(Problem::new(r.path.clone(), format!("recipient Organization/{org} is not a party")));
                    } else if !recipients.contains(&org) {
                        recipients.push(org);
                    }
                }
            }
        }
        if recipients.is_empty() {
            problems.push(Problem::new(action.child_path("subject"), "a clause needs at least one recipient party"));
        }
        for reason in action.items("reasonCode") {
            for (coding, system, code) in reason.codings() {
                if system != Some(LAWFUL_BASIS_SYSTEM) {
                    continue;
                }
                match code.and_then(LawfulBasis::from_code) {
                    Some(b) => lawful_basis.push(b),
                    None => problems.push(Problem::new(
                        coding.child_path("code"),
                        format!(
                            "'{}' is not a UK GDPR Article 6(1) or 9(2) code such as 6(1)(e) or 9(2)(h)",
                            code.unwrap_or("")
                        ),
                    )),
                }
            }
        }
    }

    let mut disclosers = Vec::new();
    if let Some(offer) = term.field("offer") {
        for party in offer.items("party") {
            for r in party.items("reference") {
                if let Some(org) = organization_reference(&r, problems) {
                    if !parties.contains(&org) {
                        problems
                            .push(Problem::new(r.path.clone(), format!("discloser Organization/{org} is not a party")));
                    } else if !disclosers.contains(&org) {
                        disclosers.push(org);
                    }
                }
            }
        }
    }
    if disclosers.is_empty() {
        disclosers = parties.to_vec();
    }

    let mut resource_types = Vec::new();
    for asset in term.items("asset") {
        for t in asset.items("type") {
            for (coding, system, code) in t.codings() {
                if system != Some(RESOURCE_TYPES_SYSTEM) {
                    continue;
                }
                match code {
                    Some(c) if c.chars().next().is_some_and(|ch| ch.is_ascii_uppercase()) => {
                        if !resource_types.iter().any(|r| r == c) {
                            resource_types.push(c.to_string());
                        }
                    }
                    _ => problems.push(Problem::new(coding.child_path("code"), "must be a FHIR resource type")),
                }
            }
        }
    }
    if resource_types.is_empty() {
        problems.push(Problem::new(
            term.child_path("asset"),
            format!("a clause names the data categories shared (asset.type codings in {RESOURCE_TYPES_SYSTEM})"),
        ));
    }

    let mut labels = LabelSet::EMPTY;
    for security in term.items("securityLabel") {
        for category in security.items("category") {
            for (coding, system, code) in category.codings() {
                match (system, code.and_then(|c| system.and_then(|s| SensitivityLabel::from_coding(s, c)))) {
                    (_, Some(l)) => labels = labels.with(l),
                    (Some(ACT_CODE_SYSTEM), None) | (None, _) => problems.push(Problem::new(
                        coding.path.clone(),
                        "must be a sensitivity category (v3 ActCode PSY, ETH, SDV or HIV)",
                    )),
                    _ => {}
                }
            }
        }
        if let Some(class) = security.field("classification") {
            match (class.value.get("system").and_then(Value::as_str), class.value.get("code").and_then(Value::as_str)) {
                (Some(CONFIDENTIALITY_SYSTEM), Some("V")) => {
                    labels = labels.with(SensitivityLabel::Restricted).with(SensitivityLabel::VeryRestricted);
                }
                (Some(CONFIDENTIALITY_SYSTEM), Some("R")) => labels = labels.with(SensitivityLabel::Restricted),
                (Some(CONFIDENTIALITY_SYSTEM), Some("U" | "L" | "M" | "N")) => {}
                _ => problems.push(Problem::new(class.path.clone(), "must be a v3 Confidentiality code")),
            }
        }
    }

    let mut retention = None;
    for ext in term.items("extension") {
        if ext.value.get("url").and_then(Value::as_str) != Some(RETENTION_EXTENSION) {
            continue;
        }
        let duration = ext.field("valueDuration");
        let value = duration.as_ref().and_then(|d| d.value.get("value")).and_then(Value::as_f64);
        let unit = duration.as_ref().and_then(|d| d.value.get("code")).and_then(Value::as_str);
        match (value, unit) {
            (Some(value), Some(unit @ ("a" | "mo" | "wk" | "d"))) if value > 0.0 => {
                retention = Some(Retention { value, unit: unit.to_string() });
            }
            _ => problems.push(Problem::new(
                ext.child_path("valueDuration"),
                "retention is a positive Duration in UCUM years (a), months (mo), weeks (wk) or days (d)",
            )),
        }
    }

    Some(Clause {
        id: id?.to_string(),
        text,
        purpose: purpose?,
        disclosers,
        recipients,
        resource_types,
        labels,
        lawful_basis,
        retention,
        expression: term.path.clone(),
    })
}

/// Check that a Contract may change from `old` (absent for a new agreement) to `new`: `new`
/// follows the profile, the status change is one the lifecycle allows, an agreement that
/// becomes or stays active passes [`Agreement::activation_problems`], and an active
/// agreement's clauses, parties and period are not changed in place (amend by a new agreement).
pub fn check_transition(old: Option<&Value>, new: &Value) -> Result<(), Vec<Problem>> {
    let new_agreement = Agreement::parse(new).map_err(|e| e.problems)?;
    let mut problems = Vec::new();
    let old_agreement = match old {
        Some(old) => Some(Agreement::parse(old).map_err(|e| {
            e.problems
                .into_iter()
                .map(|p| Problem::new(p.expression, format!("(current version) {}", p.message)))
                .collect::<Vec<_>>()
        })?),
        None => None,
    };
    if let Some(old) = &old_agreement {
        if old.id != new_agreement.id {
            problems.push(Problem::new("Contract.id", format!("the id changed from '{}'", old.id)));
        }
        if !old.status.may_become(new_agreement.status) {
            problems.push(Problem::new(
                "Contract.status",
                format!(
                    "an agreement cannot go from {} to {}",
                    old.status.fhir_code(),
                    new_agreement.status.fhir_code()
                ),
            ));
        }
        if old.status == AgreementStatus::Active && new_agreement.status == AgreementStatus::Active {
            if old.clauses != new_agreement.clauses {
                problems.push(Problem::new(
                    "Contract.term",
                    "an active agreement's clauses cannot change; agree an amendment",
                ));
            }
            if old.parties != new_agreement.parties {
                problems.push(Problem::new("Contract.extension", "an active agreement's parties cannot change"));
            }
            if old.start != new_agreement.start || old.end != new_agreement.end {
                problems.push(Problem::new(
                    "Contract.applies",
                    "an active agreement's period cannot change; agree an amendment",
                ));
            }
        }
    }
    if new_agreement.status == AgreementStatus::Active {
        problems.extend(new_agreement.activation_problems());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
