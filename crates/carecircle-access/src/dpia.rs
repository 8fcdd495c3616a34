//! The register of data protection impact assessments (DPIAs): each is a FHIR
//! `DocumentReference` of type `dpia`, linked to the agreements it assesses both ways
//! (`DocumentReference.context.related` → `Contract`, `Contract.supportingInfo` → the DPIA).

use serde_json::Value;

use crate::agreement::Agreement;
use crate::profile::{check_resource_type, finish, resource_label, At, Problem, ProfileError};

/// Code system of governance document types (`DocumentReference.type`); `dpia` is one.
pub const GOVERNANCE_DOCUMENT_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/governance-document-type";

/// One DPIA in the register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dpia {
    /// `DocumentReference.id`.
    pub id: String,
    /// `DocumentReference.status` (`current`, `superseded`, `entered-in-error`).
    pub status: String,
    /// `DocumentReference.description`.
    pub description: String,
    /// When it was completed (`DocumentReference.date`).
    pub date: String,
    /// Ids of the agreements (`Contract`) it assesses (`context.related`).
    pub agreements: Vec<String>,
}

impl Dpia {
    /// Read a DPIA from a `DocumentReference` of type `dpia` in [`GOVERNANCE_DOCUMENT_SYSTEM`].
    pub fn from_document_reference(resource: &Value) -> Result<Dpia, ProfileError> {
        check_resource_type(resource, "DocumentReference")?;
        let root = At::root(resource, "DocumentReference");
        let mut problems = Vec::new();
        let id = root.required_string("id", &mut problems);
        let status = root.required_string("status", &mut problems);
        match root.field("type") {
            Some(t) if t.code_in(GOVERNANCE_DOCUMENT_SYSTEM) == Some("dpia") => {}
            Some(t) => problems.push(Problem::new(t.path, format!("must be dpia in {GOVERNANCE_DOCUMENT_SYSTEM}"))),
            None => problems.push(Problem::new("DocumentReference.type", "is required (dpia)")),
        }
        let description = root.string("description", &mut problems).unwrap_or_default().to_string();
        let date = root.required_string("date", &mut problems).unwrap_or_default().to_string();
        let mut agreements = Vec::new();
        if let Some(context) = root.field("context") {
            for related in context.items("related") {
                match related.reference(&mut problems) {
                    Some(("Contract", id)) => agreements.push(id.to_string()),
                    Some((other, _)) => problems.push(Problem::new(
                        related.child_path("reference"),
                        format!("a DPIA relates to agreements (Contract), not {other}"),
                    )),
                    None => {}
                }
            }
        }
        if agreements.is_empty() {
            problems.push(Problem::new("DocumentReference.context.related", "a DPIA names the agreements it assesses"));
        }
        if root.items("content").is_empty() {
            problems.push(Problem::new("DocumentReference.content", "the assessment document itself is required"));
        }
        let value = match (id, status) {
            (Some(id), Some(status)) => {
                Some(Dpia { id: id.to_string(), status: status.to_string(), description, date, agreements })
            }
            _ => None,
        };
        finish(resource_label(resource, "DocumentReference"), problems, value)
    }
}

/// Every DPIA of the partnership, with the links to agreements checked both ways.
#[derive(Clone, Debug, Default)]
pub struct DpiaRegister {
    dpias: Vec<Dpia>,
}

impl DpiaRegister {
    /// A register of `dpias`.
    pub fn new(dpias: Vec<Dpia>) -> DpiaRegister {
        DpiaRegister { dpias }
    }

    /// Every DPIA.
    pub fn all(&self) -> &[Dpia] {
        &self.dpias
    }

    /// The current DPIAs that assess agreement `contract_id`.
    pub fn for_agreement(&self, contract_id: &str) -> Vec<&Dpia> {
        self.dpias.iter().filter(|d| d.status == "current" && d.agreements.iter().any(|a| a == contract_id)).collect()
    }

    /// Where an agreement and the register disagree: the agreement cites a DPIA that is not
    /// in the register, not current, or does not name it back.
    pub fn check_agreement(&self, agreement: &Agreement) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (i, dpia_id) in agreement.dpias.iter().enumerate() {
            let at = format!("Contract.supportingInfo[{i}]");
            match self.dpias.iter().find(|d| &d.id == dpia_id) {
                None => {
                    problems.push(Problem::new(at, format!("DocumentReference/{dpia_id} is not in the DPIA register")))
                }
                Some(d) if d.status != "current" => {
                    problems.push(Problem::new(at, format!("DPIA {dpia_id} is {}, not current", d.status)));
                }
                Some(d) if !d.agreements.iter().any(|a| a == &agreement.id) => problems.push(Problem::new(
                    at,
                    format!("DPIA {dpia_id} does not name Contract/{} in context.related", agreement.id),
                )),
                Some(_) => {}
            }
        }
        problems
    }
}
