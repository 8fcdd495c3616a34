//! Builders for realistic agreement (`Contract`), consent (`Consent`) and DPIA
//! (`DocumentReference`) JSON following carecircle's profiles, from a few parameters: for the
//! demo partnership and for tests.

use serde_json::{json, Value};

use crate::agreement::{AgreementStatus, AGREEMENT_PROFILE, PARTY_EXTENSION, PARTY_ROLE_SYSTEM, RETENTION_EXTENSION};
use crate::codes::{
    Purpose, Sector, SensitivityLabel, ACT_CODE_SYSTEM, CONFIDENTIALITY_SYSTEM, LAWFUL_BASIS_SYSTEM, PURPOSE_SYSTEM,
    RESOURCE_TYPES_SYSTEM, SECTOR_SYSTEM,
};
use crate::consent::{ProvisionType, CONSENT_SCOPE_SYSTEM, RECORDED_BY_EXTENSION};
use crate::dpia::GOVERNANCE_DOCUMENT_SYSTEM;

/// One clause to write into an agreement.
#[derive(Clone, Debug)]
pub struct ClauseSpec {
    /// `term.id`.
    pub id: String,
    /// Plain words.
    pub text: String,
    /// Purpose of use.
    pub purpose: Purpose,
    /// Parties whose data may be disclosed (empty: every party).
    pub disclosers: Vec<String>,
    /// Parties that may receive it.
    pub recipients: Vec<String>,
    /// Resource types.
    pub resource_types: Vec<String>,
    /// Sensitive labels the recipients may receive.
    pub labels: Vec<SensitivityLabel>,
    /// Lawful basis codes (`6(1)(e)`, `9(2)(h)`).
    pub lawful_basis: Vec<String>,
    /// Retention in years.
    pub retention_years: Option<u32>,
}

impl ClauseSpec {
    /// A clause for `purpose` letting `recipients` receive `resource_types` from every party,
    /// with the usual public-task and health-or-social-care basis (6(1)(e), 9(2)(h)) and an
    /// eight-year retention.
    pub fn new(id: &str, purpose: Purpose, recipients: &[&str], resource_types: &[&str]) -> ClauseSpec {
        ClauseSpec {
            id: id.to_string(),
            text: format!("{} sharing", purpose.describe()),
            purpose,
            disclosers: Vec::new(),
            recipients: recipients.iter().map(ToString::to_string).collect(),
            resource_types: resource_types.iter().map(ToString::to_string).collect(),
            labels: Vec::new(),
            lawful_basis: vec!["6(1)(e)".to_string(), "9(2)(h)".to_string()],
            retention_years: Some(8),
        }
    }

    /// Only these parties disclose.
    pub fn disclosers(mut self, disclosers: &[&str]) -> ClauseSpec {
        self.disclosers = disclosers.iter().map(ToString::to_string).collect();
        self
    }

    /// Recipients may also receive data carrying `labels`.
    pub fn labels(mut self, labels: &[SensitivityLabel]) -> ClauseSpec {
        self.labels = labels.to_vec();
        self
    }

    /// Replace the lawful basis codes.
    pub fn lawful_basis(mut self, codes: &[&str]) -> ClauseSpec {
        self.lawful_basis = codes.iter().map(ToString::to_string).collect();
        self
    }

    /// Replace the retention.
    pub fn retention_years(mut self, years: Option<u32>) -> ClauseSpec {
        self.retention_years = years;
        self
    }

    /// Replace the text.
    pub fn text(mut self, text: &str) -> ClauseSpec {
        self.text = text.to_string();
        self
    }
}

/// An agreement to write as a `Contract`.
#[derive(Clone, Debug)]
pub struct AgreementSpec {
    /// `Contract.id`.
    pub id: String,
    /// `Contract.title`.
    pub title: String,
    /// Lifecycle status.
    pub status: AgreementStatus,
    /// `applies.start`.
    pub start: String,
    /// `applies.end`.
    pub end: Option<String>,
    /// Party organisation ids.
    pub parties: Vec<String>,
    /// `(party, signatory reference such as Practitioner/x, when)`.
    pub signatures: Vec<(String, String, String)>,
    /// Clauses.
    pub clauses: Vec<ClauseSpec>,
    /// DPIA DocumentReference ids.
    pub dpias: Vec<String>,
}

impl AgreementSpec {
    /// An active agreement between `parties` from `start` to `end`, signed for every party
    /// by `Practitioner/{party}-dpo` on `start`, with DPIA `dpia-{id}`.
    pub fn active(
        id: &str,
        title: &str,
        parties: &[&str],
        start: &str,
        end: Option<&str>,
        clauses: Vec<ClauseSpec>,
    ) -> AgreementSpec {
        AgreementSpec {
            id: id.to_string(),
            title: title.to_string(),
            status: AgreementStatus::Active,
            start: start.to_string(),
            end: end.map(ToString::to_string),
            parties: parties.iter().map(ToString::to_string).collect(),
            signatures: parties
                .iter()
                .map(|p| ((*p).to_string(), format!("Practitioner/{p}-dpo"), format!("{start}T09:00:00Z")))
                .collect(),
            clauses,
            dpias: vec![format!("dpia-{id}")],
        }
    }

    /// This agreement with another status.
    pub fn status(mut self, status: AgreementStatus) -> AgreementSpec {
        self.status = status;
        self
    }

    /// This agreement signed only by `parties`.
    pub fn signed_only_by(mut self, parties: &[&str]) -> AgreementSpec {
        self.signatures.retain(|(p, _, _)| parties.contains(&p.as_str()));
        self
    }

    /// The `Contract` JSON.
    pub fn to_contract(&self) -> Value {
        agreement_contract(self)
    }
}

fn org_ref(id: &str) -> Value {
    json!({ "reference": format!("Organization/{id}") })
}

fn role(code: &str) -> Value {
    json!({ "coding": [{ "system": PARTY_ROLE_SYSTEM, "code": code }] })
}

/// The `Contract` for `spec`, following the data-sharing agreement profile.
pub fn agreement_contract(spec: &AgreementSpec) -> Value {
    let terms: Vec<Value> = spec
        .clauses
        .iter()
        .map(|c| {
            let mut term = json!({
                "id": c.id,
                "text": c.text,
                "asset": [{
                    "type": [{ "coding": c.resource_types.iter().map(|t| json!({ "system": RESOURCE_TYPES_SYSTEM, "code": t })).collect::<Vec<_>>() }],
                }],
                "action": [{
                    "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access" }] },
                    "subject": [{ "reference": c.recipients.iter().map(|r| org_ref(r)).collect::<Vec<_>>(), "role": role("recipient") }],
                    "intent": { "coding": [{ "system": PURPOSE_SYSTEM, "code": c.purpose.code() }] },
                    "status": { "text": "agreed" },
                    "reasonCode": c.lawful_basis.iter().map(|b| json!({ "coding": [{ "system": LAWFUL_BASIS_SYSTEM, "code": b }] })).collect::<Vec<_>>(),
                }],
            });
            if !c.disclosers.is_empty() {
                term["offer"] = json!({
                    "party": [{ "reference": c.disclosers.iter().map(|d| org_ref(d)).collect::<Vec<_>>(), "role": role("discloser") }],
                });
            }
            let categories: Vec<Value> = c
                .labels
                .iter()
                .filter(|l| l.system() == ACT_CODE_SYSTEM)
                .map(|l| json!({ "system": ACT_CODE_SYSTEM, "code": l.code() }))
                .collect();
            let classification = if c.labels.contains(&SensitivityLabel::VeryRestricted) {
                "V"
            } else if c.labels.contains(&SensitivityLabel::Restricted) {
                "R"
            } else {
                "N"
            };
            if !c.labels.is_empty() {
                term["securityLabel"] = json!([{
                    "number": [0],
                    "classification": { "system": CONFIDENTIALITY_SYSTEM, "code": classification },
                    "category": categories,
                }]);
            }
            if let Some(years) = c.retention_years {
                term["extension"] = json!([{
                    "url": RETENTION_EXTENSION,
                    "valueDuration": { "value": years, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a" },
                }]);
            }
            term
        })
        .collect();
    let mut applies = json!({ "start": spec.start });
    if let Some(end) = &spec.end {
        applies["end"] = json!(end);
    }
    let mut contract = json!({
        "resourceType": "Contract",
        "id": spec.id,
        "meta": { "profile": [AGREEMENT_PROFILE] },
        "extension": spec.parties.iter().map(|p| json!({ "url": PARTY_EXTENSION, "valueReference": org_ref(p) })).collect::<Vec<_>>(),
        "status": spec.status.fhir_code(),
        "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/contract-type", "code": "disclosure" }] },
        "title": spec.title,
        "issued": format!("{}T09:00:00Z", spec.start),
        "applies": applies,
        "term": terms,
    });
    if !spec.signatures.is_empty() {
        contract["signer"] = spec
            .signatures
            .iter()
            .map(|(party, who, when)| {
                json!({
                    "type": { "system": "https://carecircle.example.org/fhir/CodeSystem/agreement-signer-type", "code": "signatory" },
                    "party": org_ref(party),
                    "signature": [{
                        "type": [{ "system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.7", "display": "Consent Signature" }],
                        "when": when,
                        "who": { "reference": who },
                    }],
                })
            })
            .collect();
    }
    if !spec.dpias.is_empty() {
        contract["supportingInfo"] =
            spec.dpias.iter().map(|d| json!({ "reference": format!("DocumentReference/{d}") })).collect();
    }
    contract
}

/// A DPIA `DocumentReference` assessing `contract_ids`.
pub fn dpia_document_reference(id: &str, contract_ids: &[&str], date: &str, description: &str) -> Value {
    json!({
        "resourceType": "DocumentReference",
        "id": id,
        "status": "current",
        "type": { "coding": [{ "system": GOVERNANCE_DOCUMENT_SYSTEM, "code": "dpia", "display": "Data protection impact assessment" }] },
        "date": format!("{date}T09:00:00Z"),
        "description": description,
        "context": { "related": contract_ids.iter().map(|c| json!({ "reference": format!("Contract/{c}") })).collect::<Vec<_>>() },
        "content": [{ "attachment": { "contentType": "application/pdf", "title": format!("{description}.pdf"), "url": format!("https://carecircle.example.org/governance/{id}.pdf") } }],
    })
}

/// One consent provision to write (nest exceptions with [`ProvisionSpec::except`]).
#[derive(Clone, Debug)]
pub struct ProvisionSpec {
    /// Permit or deny.
    pub kind: ProvisionType,
    /// Organisations (`provision.actor`).
    pub organisations: Vec<String>,
    /// Sectors (`provision.actor` by sector identifier).
    pub sectors: Vec<Sector>,
    /// Purposes.
    pub purposes: Vec<Purpose>,
    /// Resource types (`provision.class`).
    pub resource_types: Vec<String>,
    /// Sensitive labels (`provision.securityLabel`).
    pub labels: Vec<SensitivityLabel>,
    /// `(start, end)` of `provision.period`.
    pub period: Option<(String, Option<String>)>,
    /// Nested exceptions.
    pub children: Vec<ProvisionSpec>,
}

impl ProvisionSpec {
    fn of(kind: ProvisionType) -> ProvisionSpec {
        ProvisionSpec {
            kind,
            organisations: Vec::new(),
            sectors: Vec::new(),
            purposes: Vec::new(),
            resource_types: Vec::new(),
            labels: Vec::new(),
            period: None,
            children: Vec::new(),
        }
    }

    /// A permit provision matching everything (narrow it with the other methods).
    pub fn permit() -> ProvisionSpec {
        ProvisionSpec::of(ProvisionType::Permit)
    }

    /// A deny provision matching everything.
    pub fn deny() -> ProvisionSpec {
        ProvisionSpec::of(ProvisionType::Deny)
    }

    /// Only for these organisations.
    pub fn organisations(mut self, ids: &[&str]) -> ProvisionSpec {
        self.organisations = ids.iter().map(ToString::to_string).collect();
        self
    }

    /// Only for organisations in these sectors.
    pub fn sectors(mut self, sectors: &[Sector]) -> ProvisionSpec {
        self.sectors = sectors.to_vec();
        self
    }

    /// Only for these purposes.
    pub fn purposes(mut self, purposes: &[Purpose]) -> ProvisionSpec {
        self.purposes = purposes.to_vec();
        self
    }

    /// Only for these resource types.
    pub fn resource_types(mut self, types: &[&str]) -> ProvisionSpec {
        self.resource_types = types.iter().map(ToString::to_string).collect();
        self
    }

    /// Only for data with these labels.
    pub fn labels(mut self, labels: &[SensitivityLabel]) -> ProvisionSpec {
        self.labels = labels.to_vec();
        self
    }

    /// Only within this period.
    pub fn period(mut self, start: &str, end: Option<&str>) -> ProvisionSpec {
        self.period = Some((start.to_string(), end.map(ToString::to_string)));
        self
    }

    /// Add a nested exception (it should be the opposite type).
    pub fn except(mut self, child: ProvisionSpec) -> ProvisionSpec {
        self.children.push(child);
        self
    }

    fn to_json(&self) -> Value {
        let mut p = json!({ "type": if self.kind == ProvisionType::Permit { "permit" } else { "deny" } });
        let mut actors: Vec<Value> = self
            .organisations
            .iter()
            .map(|o| json!({ "role": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP" }] }, "reference": org_ref(o) }))
            .collect();
        actors.extend(self.sectors.iter().map(|s| {
            json!({
                "role": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP" }] },
                "reference": { "type": "Organization", "identifier": { "system": SECTOR_SYSTEM, "value": s.code() }, "display": format!("Every {s} partner") },
            })
        }));
        if !actors.is_empty() {
            p["actor"] = json!(actors);
        }
        if !self.purposes.is_empty() {
            p["purpose"] =
                self.purposes.iter().map(|x| json!({ "system": PURPOSE_SYSTEM, "code": x.code() })).collect();
        }
        if !self.resource_types.is_empty() {
            p["class"] =
                self.resource_types.iter().map(|t| json!({ "system": RESOURCE_TYPES_SYSTEM, "code": t })).collect();
        }
        if !self.labels.is_empty() {
            p["securityLabel"] =
                self.labels.iter().map(|l| json!({ "system": l.system(), "code": l.code() })).collect();
        }
        if let Some((start, end)) = &self.period {
            p["period"] = match end {
                Some(end) => json!({ "start": start, "end": end }),
                None => json!({ "start": start }),
            };
        }
        if !self.children.is_empty() {
            p["provision"] = self.children.iter().map(ProvisionSpec::to_json).collect();
        }
        p
    }
}

/// Who recorded a consent.
#[derive(Clone, Debug)]
pub enum RecordedBy {
    /// The person, themselves (for example in the portal).
    Person,
    /// A member of staff (`Practitioner/…` or `PractitionerRole/…`), with evidence (a
    /// DocumentReference id); `representative` is the RelatedPerson who gave it, if not the
    /// person.
    Staff {
        /// The member of staff.
        staff: String,
        /// The DocumentReference id of the evidence (signed form, recorded call).
        evidence: String,
        /// The RelatedPerson id, when a representative gave consent for the person.
        representative: Option<String>,
    },
}

/// A consent to write as a `Consent`.
#[derive(Clone, Debug)]
pub struct ConsentSpec {
    /// `Consent.id`.
    pub id: String,
    /// `meta.versionId`.
    pub version: String,
    /// `Consent.status` (`active`, `inactive`, `rejected`, ...).
    pub status: String,
    /// `Consent.dateTime`.
    pub date_time: String,
    /// The Patient id.
    pub patient: String,
    /// The organisation that holds the consent.
    pub organisation: String,
    /// Who recorded it.
    pub recorded_by: RecordedBy,
    /// The root provision.
    pub provision: ProvisionSpec,
}

impl ConsentSpec {
    /// An active consent given by the person themself on `date_time`.
    pub fn new(id: &str, patient: &str, organisation: &str, date_time: &str, provision: ProvisionSpec) -> ConsentSpec {
        ConsentSpec {
            id: id.to_string(),
            version: "1".to_string(),
            status: "active".to_string(),
            date_time: date_time.to_string(),
            patient: patient.to_string(),
            organisation: organisation.to_string(),
            recorded_by: RecordedBy::Person,
            provision,
        }
    }

    /// This consent with another status and version (a withdrawal is `inactive`).
    pub fn status(mut self, status: &str, version: &str) -> ConsentSpec {
        self.status = status.to_string();
        self.version = version.to_string();
        self
    }

    /// Recorded by staff with evidence.
    pub fn recorded_by_staff(mut self, staff: &str, evidence: &str) -> ConsentSpec {
        self.recorded_by =
            RecordedBy::Staff { staff: staff.to_string(), evidence: evidence.to_string(), representative: None };
        self
    }

    /// The `Consent` JSON.
    pub fn to_resource(&self) -> Value {
        consent_resource(self)
    }
}

/// The `Consent` for `spec`, following carecircle's consent profile.
pub fn consent_resource(spec: &ConsentSpec) -> Value {
    let mut c = json!({
        "resourceType": "Consent",
        "id": spec.id,
        "meta": { "versionId": spec.version },
        "status": spec.status,
        "scope": { "coding": [{ "system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy" }] },
        "category": [{ "coding": [{ "system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent" }] }],
        "patient": { "reference": format!("Patient/{}", spec.patient) },
        "dateTime": spec.date_time,
        "organization": [org_ref(&spec.organisation)],
        "policyRule": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": if spec.provision.kind == ProvisionType::Permit { "OPTIN" } else { "OPTOUT" } }] },
        "provision": spec.provision.to_json(),
    });
    match &spec.recorded_by {
        RecordedBy::Person => {
            c["performer"] = json!([{ "reference": format!("Patient/{}", spec.patient) }]);
        }
        RecordedBy::Staff { staff, evidence, representative } => {
            c["performer"] = match representative {
                Some(r) => json!([{ "reference": format!("RelatedPerson/{r}") }]),
                None => json!([{ "reference": format!("Patient/{}", spec.patient) }]),
            };
            c["extension"] = json!([{ "url": RECORDED_BY_EXTENSION, "valueReference": { "reference": staff } }]);
            c["sourceReference"] = json!({ "reference": format!("DocumentReference/{evidence}") });
        }
    }
    c
}
