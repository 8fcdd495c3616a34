//! The partnership's data-sharing agreements (`Contract`, carecircle's agreement profile) and
//! the DPIAs that assess them (`DocumentReference`), fixed for every seed: one agreement per
//! pairing of sectors, an expired predecessor, a draft that is not in force, and a
//! secondary-use agreement for evaluating the shared crisis plans.

use carecircle_access::codes::SensitivityLabel::{
    MentalHealth as PSY, Restricted as R, SexualAndDomesticViolence as SDV, SubstanceUse as ETH,
};
use carecircle_access::demo_support::{dpia_document_reference, AgreementSpec, ClauseSpec};
use carecircle_access::{AgreementStatus, Purpose, SensitivityLabel};
use serde_json::{json, Value};

use crate::clinical::hold;
use crate::dates::Date;
use crate::orgs::{self, OrgDef, Sector};
use crate::well_known as wk;
use crate::DemoResource;

/// A health partner's whole record, as health partners share it for direct care.
const HEALTH_RECORD: &[&str] = &[
    "Patient",
    "Condition",
    "Encounter",
    "EpisodeOfCare",
    "CarePlan",
    "CareTeam",
    "Flag",
    "Observation",
    "MedicationStatement",
    "AllergyIntolerance",
];
/// What adult social care needs to know of its client's medical situation.
const SOCIAL_CARE_FROM_HEALTH: &[&str] =
    &["Patient", "Condition", "Encounter", "EpisodeOfCare", "CarePlan", "CareTeam", "Flag", "AllergyIntolerance"];
/// What health partners receive from adult social care: contacts, services, plans and alerts.
const HEALTH_FROM_SOCIAL_CARE: &[&str] = &["Patient", "Encounter", "EpisodeOfCare", "CarePlan", "CareTeam", "Flag"];
/// The police receive only flags and crisis plans: never clinical detail.
const FLAGS_AND_CRISIS_PLANS: &[&str] = &["Flag", "CarePlan"];
/// Police contacts and police flags.
const POLICE_CONTACTS: &[&str] = &["Encounter", "Flag"];
/// Who is in the person's care team and what the shared plan says.
const CARE_COORDINATION: &[&str] = &["Patient", "CarePlan", "CareTeam", "Flag"];
/// Contacts with a housing or voluntary partner, and the service the person receives.
const SUPPORT_CONTACTS: &[&str] = &["Encounter", "EpisodeOfCare", "Flag"];
/// Referrals between housing and voluntary partners.
const REFERRALS: &[&str] = &["CarePlan", "CareTeam", "EpisodeOfCare"];
/// What an emergency clinician may see under break-glass.
const EMERGENCY: &[&str] = &[
    "Patient",
    "Condition",
    "Encounter",
    "EpisodeOfCare",
    "CarePlan",
    "CareTeam",
    "Flag",
    "Observation",
    "MedicationStatement",
    "AllergyIntolerance",
];

/// UK GDPR public task and health or social care.
const DIRECT_CARE_BASIS: &[&str] = &["6(1)(e)", "9(2)(h)"];
/// Voluntary organisations are not public authorities: legitimate interests, for care they
/// are commissioned to provide.
const VOLUNTARY_BASIS: &[&str] = &["6(1)(f)", "9(2)(h)"];
/// Public task and substantial public interest (safeguarding individuals at risk, DPA 2018
/// Schedule 1 paragraph 18).
const SAFEGUARDING_BASIS: &[&str] = &["6(1)(e)", "9(2)(g)"];
/// Vital interests first, then public task and health care.
const EMERGENCY_BASIS: &[&str] = &["6(1)(d)", "9(2)(c)", "6(1)(e)", "9(2)(h)"];

/// The DPIA of the shared care record's direct-care agreements.
pub const DPIA_SHARED_CARE_RECORD: &str = "dpia-shared-care-record";
/// The DPIA of every agreement with the police.
pub const DPIA_POLICE: &str = "dpia-police-information-sharing";
/// The DPIA of the evaluation agreement (secondary use).
pub const DPIA_EVALUATION: &str = "dpia-crisis-care-evaluation";
/// The DPIA of the 2021 agreement, superseded with it.
pub const DPIA_2021: &str = "dpia-shared-care-record-2021";

/// What partners in one sector receive from partners in another sector for direct care.
#[derive(Clone, Copy, PartialEq)]
struct Receipt {
    types: &'static [&'static str],
    labels: &'static [SensitivityLabel],
    basis: &'static [&'static str],
    retention_years: u32,
    text: &'static str,
}

/// What `recipient`'s partners receive from `discloser`'s partners, if anything.
fn receipt(recipient: Sector, discloser: Sector) -> Option<Receipt> {
    use Sector::{Housing, Police, SocialCare, Voluntary};
    let health = Sector::is_health;
    let supports = |s: Sector| matches!(s, Housing | Voluntary);
    let basis_of = |s: Sector| if s == Voluntary { VOLUNTARY_BASIS } else { DIRECT_CARE_BASIS };
    let retention_of = |s: Sector| match s {
        Voluntary => 2,
        s if health(s) => 8,
        _ => 6,
    };
    let r = |types, labels, basis, text| Receipt {
        types,
        labels,
        basis,
        retention_years: if recipient == Police { 2 } else { retention_of(recipient) },
        text,
    };
    Some(match (recipient, discloser) {
        (Police, _) => r(
            FLAGS_AND_CRISIS_PLANS,
            &[],
            SAFEGUARDING_BASIS,
            "The police receive only flags and crisis plans, so officers follow the agreed plan; never clinical detail.",
        ),
        (a, b) if health(a) && health(b) => r(
            HEALTH_RECORD,
            &[PSY, ETH],
            DIRECT_CARE_BASIS,
            "Direct care between health partners: the whole record. Mental-health (PSY) and substance-use (ETH) \
             records only where the person's consent names them.",
        ),
        (SocialCare, d) if health(d) => r(
            SOCIAL_CARE_FROM_HEALTH,
            &[],
            DIRECT_CARE_BASIS,
            "Adult social care sees its client's medical situation and who is involved; no sensitive records.",
        ),
        (a, SocialCare) if health(a) => r(
            HEALTH_FROM_SOCIAL_CARE,
            &[],
            DIRECT_CARE_BASIS,
            "Health partners see social care contacts, services, plans and alerts.",
        ),
        (a, Police) if health(a) => r(
            POLICE_CONTACTS,
            &[],
            DIRECT_CARE_BASIS,
            "Health partners are told of police contacts and see police flags.",
        ),
        (SocialCare, Police) => r(
            POLICE_CONTACTS,
            &[SDV],
            SAFEGUARDING_BASIS,
            "Safeguarding adults: the police share welfare concerns and domestic abuse incidents (SDV) with adult \
             social care.",
        ),
        (a, Police) if supports(a) => r(
            &["Flag"],
            &[],
            basis_of(a),
            "Police flags that warn of a risk at the person's address.",
        ),
        (a, d) if supports(a) && (health(d) || d == SocialCare) => r(
            CARE_COORDINATION,
            &[],
            basis_of(a),
            "Who is in the person's care team and what the shared plan asks of this partner; no clinical detail.",
        ),
        (a, d) if supports(d) && (health(a) || a == SocialCare) => r(
            SUPPORT_CONTACTS,
            &[],
            DIRECT_CARE_BASIS,
            "Contacts with the housing or voluntary partner and the support the person receives.",
        ),
        (a, d) if supports(a) && supports(d) => {
            r(REFERRALS, &[], basis_of(a), "Referrals: who supports the person and the plan they work to.")
        }
        _ => return None,
    })
}

fn clause(id: &str, purpose: Purpose, recipients: &[&str], disclosers: &[&str], receipt: &Receipt) -> ClauseSpec {
    let mut c = ClauseSpec::new(id, purpose, recipients, receipt.types)
        .labels(receipt.labels)
        .lawful_basis(receipt.basis)
        .retention_years(Some(receipt.retention_years))
        .text(receipt.text);
    if !disclosers.is_empty() {
        c = c.disclosers(disclosers);
    }
    c
}

fn ids_in(partners: &[&'static OrgDef], sector: Sector) -> Vec<&'static str> {
    partners.iter().filter(|o| o.sector == sector).map(|o| o.id).collect()
}

/// Sectors that answer emergencies, whose staff may receive records under break-glass.
fn is_emergency(sector: Sector) -> bool {
    matches!(sector, Sector::Acute | Sector::Ambulance | Sector::MentalHealth)
}

/// Each party's information-governance lead signs, one working day apart from `first`.
fn sign(mut spec: AgreementSpec, first: Date) -> AgreementSpec {
    spec.signatures = spec
        .parties
        .iter()
        .enumerate()
        .map(|(i, party)| {
            let who = orgs::ig_lead_of(party)
                .map_or_else(|| format!("Practitioner/{party}-ig"), |s| format!("Practitioner/{}", s.id));
            let day = first.add_days(i64::try_from(i).unwrap_or(0));
            (party.clone(), who, day.at(10 * 60 + 30))
        })
        .collect();
    spec
}

/// One agreement for a pairing of sectors (`a` may equal `b` when it has several partners).
fn sector_agreement(a: Sector, b: Sector) -> Option<AgreementSpec> {
    let partners: Vec<&'static OrgDef> = orgs::partners().collect();
    let in_a = ids_in(&partners, a);
    let in_b = ids_in(&partners, b);
    let parties: Vec<&str> = if a == b { in_a.clone() } else { in_a.iter().chain(&in_b).copied().collect() };
    if parties.len() < 2 {
        return None;
    }
    let mut clauses = Vec::new();
    let forward = receipt(a, b);
    let backward = receipt(b, a);
    match (forward, backward) {
        (Some(f), Some(g)) if a == b || f == g => {
            clauses.push(clause("direct-care", Purpose::Treat, &parties, &[], &f));
        }
        _ => {
            if let Some(f) = forward {
                clauses.push(clause(&format!("{}-from-{}", a.code(), b.code()), Purpose::Treat, &in_a, &in_b, &f));
            }
            if let Some(g) = backward {
                clauses.push(clause(&format!("{}-from-{}", b.code(), a.code()), Purpose::Treat, &in_b, &in_a, &g));
            }
        }
    }
    let emergency: Vec<&str> =
        partners.iter().filter(|o| parties.contains(&o.id) && is_emergency(o.sector)).map(|o| o.id).collect();
    if !emergency.is_empty() {
        let text = "Emergency care under break-glass (purpose ETREAT, reason recorded, reviewed by the governance \
                    lead): what an emergency clinician needs to keep the person safe, sensitive records included.";
        clauses.push(
            ClauseSpec::new("emergency", Purpose::EmergencyTreat, &emergency, EMERGENCY)
                .labels(&[PSY, ETH, R])
                .lawful_basis(EMERGENCY_BASIS)
                .retention_years(Some(8))
                .text(text),
        );
    }
    if clauses.is_empty() {
        return None;
    }
    let police = a == Sector::Police || b == Sector::Police;
    let voluntary = a == Sector::Voluntary || b == Sector::Voluntary;
    let (start, signed) = match (police, voluntary) {
        (true, _) => ("2025-09-01", Date::from_ymd(2025, 8, 18)),
        (false, true) => ("2026-01-05", Date::from_ymd(2025, 12, 8)),
        (false, false) => ("2025-04-01", Date::from_ymd(2025, 3, 10)),
    };
    let id = if a == b { format!("dsa-{}-partners", a.code()) } else { format!("dsa-{}-{}", a.code(), b.code()) };
    let title = if a == b {
        format!("{} partners: shared care record data-sharing agreement", a.display())
    } else {
        format!("{} and {}: shared care record data-sharing agreement", a.display(), b.display().to_lowercase())
    };
    let mut spec = AgreementSpec::active(&id, &title, &parties, start, Some("2029-03-31"), clauses);
    spec.dpias = vec![if police { DPIA_POLICE } else { DPIA_SHARED_CARE_RECORD }.to_string()];
    let mut spec = sign(spec, signed);
    if police && voluntary {
        // The voluntary partners' trustees have not approved it yet: only the police have signed.
        spec.title = format!("{title} (draft: awaiting the voluntary partners' trustees)");
        spec = spec.status(AgreementStatus::Draft).signed_only_by(&[wk::ORG_POLICE]);
    }
    Some(spec)
}

/// The 2021 agreement between the GP practices and adult social care, replaced in April 2025.
fn expired_agreement() -> AgreementSpec {
    let gps = [wk::ORG_GP_ASHGROVE, wk::ORG_GP_RIVERSIDE, wk::ORG_GP_MILLFIELD];
    let mut parties = gps.to_vec();
    parties.push(wk::ORG_SOCIAL_CARE);
    let clauses = vec![
        ClauseSpec::new(
            "social-care-from-primary-care",
            Purpose::Treat,
            &[wk::ORG_SOCIAL_CARE],
            &["Patient", "Condition", "CarePlan"],
        )
        .disclosers(&gps)
        .retention_years(Some(6))
        .text("Adult social care sees the GP problem list and care plans of shared clients."),
        ClauseSpec::new("primary-care-from-social-care", Purpose::Treat, &gps, &["Patient", "CarePlan"])
            .disclosers(&[wk::ORG_SOCIAL_CARE])
            .text("GP practices see social care plans."),
    ];
    let mut spec = AgreementSpec::active(
        wk::AGREEMENT_EXPIRED,
        "GP practices and adult social care: information sharing agreement 2021 (replaced)",
        &parties,
        "2021-04-01",
        Some("2025-03-31"),
        clauses,
    );
    spec.dpias = vec![DPIA_2021.to_string()];
    sign(spec, Date::from_ymd(2021, 3, 8))
}

/// Evaluation of the shared crisis plans: a secondary use, so the national data opt-out applies.
fn evaluation_agreement() -> AgreementSpec {
    let parties = [wk::ORG_MH_TRUST, wk::ORG_HOSPITAL, wk::ORG_AMBULANCE, wk::ORG_POLICE];
    let clauses = vec![ClauseSpec::new("evaluation", Purpose::Operations, &[wk::ORG_MH_TRUST], &["Encounter"])
        .disclosers(&[wk::ORG_HOSPITAL, wk::ORG_AMBULANCE, wk::ORG_POLICE])
        .lawful_basis(DIRECT_CARE_BASIS)
        .retention_years(Some(5))
        .text(
            "The mental health trust's evaluation team receives crisis contacts (emergency department attendances, \
             ambulance call-outs, police contacts) to compare outcomes before and after people joined a shared \
             crisis plan. People with a national data opt-out are left out.",
        )];
    let mut spec = AgreementSpec::active(
        wk::AGREEMENT_EVALUATION,
        "Evaluation of shared crisis plans (service evaluation, secondary use)",
        &parties,
        "2026-02-01",
        Some("2028-01-31"),
        clauses,
    );
    spec.dpias = vec![DPIA_EVALUATION.to_string()];
    sign(spec, Date::from_ymd(2026, 1, 19))
}

/// Every agreement, in a fixed order: the sector pairings, then the expired, then evaluation.
pub fn agreement_specs() -> Vec<AgreementSpec> {
    let mut sectors: Vec<Sector> = Vec::new();
    for p in orgs::partners() {
        if !sectors.contains(&p.sector) {
            sectors.push(p.sector);
        }
    }
    let mut specs = Vec::new();
    for (i, a) in sectors.iter().enumerate() {
        for b in &sectors[i..] {
            specs.extend(sector_agreement(*a, *b));
        }
    }
    specs.push(expired_agreement());
    specs.push(evaluation_agreement());
    specs
}

/// The agreements as `Contract`s, held by the partnership office's host.
pub fn contracts() -> Vec<DemoResource> {
    agreement_specs()
        .iter()
        .map(|s| {
            let mut contract = s.to_contract();
            // Issued when the last party signed (signatures are `YYYY-MM-DDThh:mm:ssZ`, so
            // they order as text).
            if let Some(last) = s.signatures.iter().map(|(_, _, when)| when).max() {
                contract["issued"] = json!(last);
            }
            hold(wk::GOVERNANCE_HOST_ORG, contract)
        })
        .collect()
}

/// The DPIAs, each naming the agreements it assesses (which cite it back).
pub fn dpias() -> Vec<DemoResource> {
    let specs = agreement_specs();
    let assessed = |dpia: &str| -> Vec<&str> {
        specs.iter().filter(|s| s.dpias.iter().any(|d| d == dpia)).map(|s| s.id.as_str()).collect()
    };
    let mut out = Vec::new();
    for (id, date, description, status) in [
        (
            DPIA_SHARED_CARE_RECORD,
            "2025-02-20",
            "Shared care record DPIA: direct care between health, social care, housing and voluntary partners",
            "current",
        ),
        (
            DPIA_POLICE,
            "2025-07-30",
            "Police information sharing DPIA: flags and crisis plans to the police, police contacts to partners",
            "current",
        ),
        (DPIA_EVALUATION, "2026-01-12", "Crisis care evaluation DPIA: secondary use of crisis contacts", "current"),
        (DPIA_2021, "2021-02-15", "GP and adult social care information sharing DPIA 2021", "superseded"),
    ] {
        let mut doc: Value = dpia_document_reference(id, &assessed(id), date, description);
        doc["status"] = json!(status);
        doc["author"] = json!([{ "reference": format!("Practitioner/{}", wk::GOVERNANCE_LEAD) }]);
        doc["custodian"] = json!({ "reference": format!("Organization/{}", wk::GOVERNANCE_HOST_ORG) });
        out.push(hold(wk::GOVERNANCE_HOST_ORG, doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_police_never_receive_clinical_detail() {
        for recipient_of in orgs::partners().map(|o| o.sector) {
            if let Some(r) = receipt(Sector::Police, recipient_of) {
                assert_eq!(r.types, FLAGS_AND_CRISIS_PLANS);
                assert!(r.labels.is_empty());
            }
        }
    }

    #[test]
    fn one_agreement_per_sector_pairing_plus_the_expired_and_the_evaluation() {
        let specs = agreement_specs();
        // 8 sectors: 28 pairs, and two sectors with several partners (GPs, voluntary).
        assert_eq!(specs.len(), 28 + 2 + 2);
        let ids: std::collections::BTreeSet<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), specs.len(), "agreement ids are unique");
        for id in [wk::AGREEMENT_MH_POLICE, wk::AGREEMENT_ACUTE_MH, wk::AGREEMENT_DRAFT, wk::AGREEMENT_EXPIRED] {
            assert!(ids.contains(id), "{id}");
        }
    }
}
