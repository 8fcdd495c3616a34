//! Sensitivity labels (`meta.security`) on clinical records, so that the access decision's
//! filtering is visible in the demo: the mental-health trust's records are `PSY`, substance use
//! is `ETH`, a few safeguarding contacts at adult social care and the police are `SDV`, and a few
//! hospital attendances are restricted (`R`).

use carecircle_access::SensitivityLabel;
use rand::Rng;
use serde_json::{json, Value};

use crate::clinical::{Sink, ALCOHOL};
use crate::well_known as wk;
use crate::DemoResource;

/// SNOMED CT code of a suicide attempt (a mental-health record wherever it is held).
const SUICIDE_ATTEMPT: &str = "82313006";
/// Contact reasons that are about alcohol or drugs.
const SUBSTANCE_REASONS: [&str; 3] = ["Alcohol intoxication", "Intoxicated and injured", "Street intoxication"];

fn display(label: SensitivityLabel) -> &'static str {
    match label {
        SensitivityLabel::MentalHealth => "psychiatry information sensitivity",
        SensitivityLabel::SubstanceUse => "substance abuse information sensitivity",
        SensitivityLabel::SexualAndDomesticViolence => {
            "sexual assault, abuse, or domestic violence information sensitivity"
        }
        SensitivityLabel::Hiv => "HIV/AIDS information sensitivity",
        SensitivityLabel::Restricted => "restricted",
        SensitivityLabel::VeryRestricted => "very restricted",
    }
}

/// Add `label` to the resource's `meta.security` (once).
pub fn add_label(resource: &mut Value, label: SensitivityLabel) {
    let coding = json!({ "system": label.system(), "code": label.code(), "display": display(label) });
    let meta = resource.as_object_mut().map(|o| o.entry("meta").or_insert_with(|| json!({})));
    let Some(meta) = meta.and_then(Value::as_object_mut) else { return };
    let security = meta.entry("security").or_insert_with(|| json!([]));
    if let Some(list) = security.as_array_mut() {
        if !list.iter().any(|c| c["system"] == label.system() && c["code"] == label.code()) {
            list.push(coding);
        }
    }
}

fn reason(r: &Value) -> &str {
    r.pointer("/reasonCode/0/text").and_then(Value::as_str).unwrap_or_default()
}

/// True for records about Joe or the fixed people (`pat-<partner>-<name>`), which must be the
/// same for every seed.
fn is_fixed_persons(r: &DemoResource) -> bool {
    let subject = r.resource.pointer("/subject/reference").and_then(Value::as_str).unwrap_or_default();
    subject.rsplit('-').next().is_some_and(|last| !last.chars().all(|c| c.is_ascii_digit()))
}

/// Label the records in `sink`. The few random labels (SDV, R) are drawn from `rng`, never for
/// Joe or the fixed people, whose records are the same for every seed.
pub fn apply<R: Rng>(rng: &mut R, sink: &mut Sink) {
    for c in &mut sink.conditions {
        let code = c.resource.pointer("/code/coding/0/code").and_then(Value::as_str).unwrap_or_default().to_string();
        if c.custodian_org_id == wk::ORG_MH_TRUST || code == SUICIDE_ATTEMPT {
            add_label(&mut c.resource, SensitivityLabel::MentalHealth);
        }
        if code == ALCOHOL.0 {
            add_label(&mut c.resource, SensitivityLabel::SubstanceUse);
        }
    }
    for e in &mut sink.episodes {
        if e.custodian_org_id == wk::ORG_MH_TRUST {
            add_label(&mut e.resource, SensitivityLabel::MentalHealth);
        }
    }
    for e in &mut sink.encounters {
        if e.custodian_org_id == wk::ORG_MH_TRUST {
            add_label(&mut e.resource, SensitivityLabel::MentalHealth);
        }
        if SUBSTANCE_REASONS.contains(&reason(&e.resource)) {
            add_label(&mut e.resource, SensitivityLabel::SubstanceUse);
        }
        if is_fixed_persons(e) {
            continue;
        }
        let safeguarding = match e.custodian_org_id.as_str() {
            wk::ORG_SOCIAL_CARE => Some("Adult safeguarding enquiry: domestic abuse"),
            wk::ORG_POLICE => Some("Domestic abuse incident"),
            _ => None,
        };
        if let Some(text) = safeguarding.filter(|_| rng.random_bool(0.04)) {
            e.resource["reasonCode"] = json!([{ "text": text }]);
            add_label(&mut e.resource, SensitivityLabel::SexualAndDomesticViolence);
        }
        // A hospital attendance restricted by the patient's request (for example a member of staff).
        if e.custodian_org_id == wk::ORG_HOSPITAL && rng.random_bool(0.01) {
            add_label(&mut e.resource, SensitivityLabel::Restricted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_added_once_with_their_own_systems() {
        let mut r = json!({ "resourceType": "Condition", "id": "c" });
        add_label(&mut r, SensitivityLabel::MentalHealth);
        add_label(&mut r, SensitivityLabel::MentalHealth);
        add_label(&mut r, SensitivityLabel::Restricted);
        let security = r["meta"]["security"].as_array().unwrap();
        assert_eq!(security.len(), 2);
        assert_eq!(security[0]["system"], "http://terminology.hl7.org/CodeSystem/v3-ActCode");
        assert_eq!(security[1]["system"], "http://terminology.hl7.org/CodeSystem/v3-Confidentiality");
        assert_eq!(security[1]["code"], "R");
    }
}
