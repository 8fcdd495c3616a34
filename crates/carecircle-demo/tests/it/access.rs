//! The demo partnership through the access engine: every agreement, consent and organisation
//! follows carecircle's profiles, the engine builds from them, and decisions on the demo data
//! come out as a governance lead would expect. Facts are gathered from the demo resources the
//! way the server gathers them (`carecircle-record/src/policy.rs`): consents by the record's
//! subject, care relationships from active care teams and the Patient's custodian, labels from
//! `meta.security`, the user's role from their PractitionerRole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use carecircle_access::engine::DEFAULT_BREAK_GLASS_ROLES;
use carecircle_access::{
    check_transition, AccessEngine, AccessRequest, Action, Agreement, AgreementState, AgreementStatus, ConsentRecord,
    Decision, Dpia, DpiaRegister, Effect, Organisation, PersonConsent, Purpose, Relationship, Requester, Scheme,
    SensitivityLabel, Target, UserKind,
};
use carecircle_demo::well_known as wk;
use carecircle_demo::DemoResource;
use serde_json::Value;
use time::macros::date;

use super::{default_demo, find, id, of_type, rtype};

fn all() -> &'static [DemoResource] {
    &default_demo().0
}

fn organisations() -> Vec<Organisation> {
    of_type(all(), "Organization")
        .map(|o| Organisation::from_resource(&o.resource).unwrap_or_else(|e| panic!("{}: {e}", id(o))))
        .collect()
}

fn agreements() -> Vec<Agreement> {
    of_type(all(), "Contract")
        .map(|c| Agreement::from_contract(&c.resource).unwrap_or_else(|e| panic!("{}: {e}", id(c))))
        .collect()
}

fn engine() -> &'static AccessEngine {
    static ENGINE: OnceLock<AccessEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        AccessEngine::new(&agreements(), &organisations(), Scheme::new(carecircle_demo::CONSENT_MODEL))
            .expect("the engine builds from the demo's agreements and organisations")
    })
}

fn partner_of(org: &str) -> String {
    let o = find(all(), "Organization", org);
    match o.resource.pointer("/partOf/reference").and_then(Value::as_str) {
        Some(parent) => parent.trim_start_matches("Organization/").to_string(),
        None => org.to_string(),
    }
}

/// The Patient a resource is about, as the server finds it.
fn subject(r: &DemoResource) -> Option<String> {
    if rtype(r) == "Patient" {
        return Some(id(r).to_string());
    }
    ["subject", "patient"]
        .iter()
        .find_map(|f| r.resource.get(*f)?.get("reference")?.as_str()?.strip_prefix("Patient/").map(str::to_string))
}

fn consent_of(patient: &str) -> PersonConsent {
    let reference = format!("Patient/{patient}");
    let consents: Vec<Value> = of_type(all(), "Consent")
        .filter(|c| c.resource["patient"]["reference"] == reference.as_str())
        .map(|c| c.resource.clone())
        .collect();
    let record = find(all(), "Patient", patient);
    let opted_out = record.resource["extension"]
        .as_array()
        .is_some_and(|e| e.iter().any(|x| x["url"] == wk::NATIONAL_OPT_OUT_EXTENSION_URL && x["valueBoolean"] == true));
    PersonConsent::from_resources(&consents, opted_out).expect("the demo's consents parse")
}

fn labels_of(r: &Value) -> Vec<SensitivityLabel> {
    r.pointer("/meta/security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| SensitivityLabel::from_coding(c["system"].as_str()?, c["code"].as_str()?))
        .collect()
}

fn relationship(user_partner: &str, patient: &str) -> Relationship {
    let reference = format!("Patient/{patient}");
    let in_care_team = of_type(all(), "CareTeam")
        .filter(|t| t.resource["subject"]["reference"] == reference.as_str() && t.resource["status"] == "active")
        .flat_map(|t| t.resource["participant"].as_array().cloned().unwrap_or_default())
        .flat_map(|p| [p["member"]["reference"].clone(), p["onBehalfOf"]["reference"].clone()])
        .filter_map(|r| r.as_str().and_then(|r| r.strip_prefix("Organization/")).map(partner_of))
        .any(|org| org == user_partner);
    let on_partner_list = find(all(), "Patient", patient).custodian_org_id == user_partner;
    Relationship { in_care_team, on_partner_list }
}

/// A demo user: Practitioner id, the organisation of their role, and the role code.
#[derive(Clone, Debug)]
struct User {
    id: String,
    org: String,
    role: String,
}

fn user(practitioner: &str) -> User {
    let role = of_type(all(), "PractitionerRole")
        .find(|r| r.resource["practitioner"]["reference"] == format!("Practitioner/{practitioner}").as_str())
        .unwrap_or_else(|| panic!("{practitioner} has no role"));
    let org = role.resource["organization"]["reference"].as_str().unwrap().trim_start_matches("Organization/");
    let code = role.resource["code"][0]["coding"][0]["code"].as_str().unwrap();
    User { id: practitioner.to_string(), org: org.to_string(), role: code.to_string() }
}

fn request(u: &User, r: &DemoResource, purpose: Purpose, break_glass: Option<&str>) -> AccessRequest {
    let person = subject(r);
    let relationship = person.as_deref().map_or_else(Relationship::default, |p| relationship(&partner_of(&u.org), p));
    AccessRequest {
        who: Requester {
            user_id: u.id.clone(),
            organisation_id: u.org.clone(),
            kind: UserKind::Practitioner,
            role: u.role.clone(),
            person_id: None,
        },
        purpose,
        break_glass_reason: break_glass.map(str::to_string),
        what: Target {
            resource_type: rtype(r).to_string(),
            action: Action::Read,
            custodian_id: r.custodian_org_id.clone(),
            subject_person: person,
            labels: Some(labels_of(&r.resource)),
        },
        relationship,
        today: date!(2026 - 11 - 01),
    }
}

fn decide(u: &User, r: &DemoResource, purpose: Purpose, break_glass: Option<&str>) -> (Decision, String) {
    let req = request(u, r, purpose, break_glass);
    let consent = subject(r).map_or_else(PersonConsent::none, |p| consent_of(&p));
    (engine().decide(&req, &consent), engine().explain(&req, &consent))
}

fn first(t: &str, pred: impl Fn(&DemoResource) -> bool) -> &'static DemoResource {
    all().iter().filter(|r| rtype(r) == t).find(|r| pred(r)).unwrap_or_else(|| panic!("no such {t}"))
}

fn about(patient: &str) -> impl Fn(&DemoResource) -> bool + '_ {
    move |r| subject(r).as_deref() == Some(patient)
}

fn has_label(r: &DemoResource, label: SensitivityLabel) -> bool {
    labels_of(&r.resource).contains(&label)
}

#[test]
fn every_organization_parses_teams_included_and_the_engine_builds() {
    let orgs = organisations();
    assert_eq!(orgs.len(), 14);
    let teams: BTreeSet<&str> = orgs.iter().filter(|o| o.part_of.is_some()).map(|o| o.id.as_str()).collect();
    assert_eq!(teams, BTreeSet::from([wk::ORG_HOSPITAL_ED, wk::ORG_CRISIS_TEAM, wk::ORG_POLICE_MH_LIAISON]));
    // One permit policy per clause of an active agreement, plus the standing ones.
    let clause_policies = engine().policies().filter(|p| p.id.starts_with("agreement:")).count();
    let active_clauses: usize =
        agreements().iter().filter(|a| a.status == AgreementStatus::Active).map(|a| a.clauses.len()).sum();
    assert_eq!(clause_policies, active_clauses);
    assert!(clause_policies > 60, "{clause_policies}");
}

#[test]
fn every_contract_follows_the_agreement_profile_and_only_two_are_not_in_force() {
    let today = date!(2026 - 11 - 01);
    let mut states: BTreeMap<String, AgreementState> = BTreeMap::new();
    for c in of_type(all(), "Contract") {
        assert_eq!(c.custodian_org_id, wk::GOVERNANCE_HOST_ORG);
        check_transition(None, &c.resource).unwrap_or_else(|p| panic!("{}: {p:?}", id(c)));
    }
    for a in agreements() {
        if a.status == AgreementStatus::Active {
            assert!(a.activation_problems().is_empty(), "{}", a.id);
        }
        // Each party signs through its own information-governance lead, a real demo user.
        for s in &a.signatories {
            let signer = user(s.who.trim_start_matches("Practitioner/"));
            assert_eq!(signer.role, "information-governance-lead", "{}", a.id);
            assert_eq!(signer.org, s.party, "{}", a.id);
        }
        states.insert(a.id.clone(), a.state_on(today));
    }
    assert_eq!(states[wk::AGREEMENT_EXPIRED], AgreementState::Expired);
    assert_eq!(states[wk::AGREEMENT_DRAFT], AgreementState::Draft);
    let in_force = states.values().filter(|s| **s == AgreementState::InForce).count();
    assert_eq!(in_force, states.len() - 2);
}

#[test]
fn every_agreement_cites_a_dpia_that_names_it_back() {
    let dpias: Vec<Dpia> = of_type(all(), "DocumentReference")
        .filter(|d| d.resource["type"]["coding"][0]["code"] == "dpia")
        .map(|d| Dpia::from_document_reference(&d.resource).unwrap_or_else(|e| panic!("{}: {e}", id(d))))
        .collect();
    assert_eq!(dpias.len(), 4);
    let register = DpiaRegister::new(dpias);
    for a in agreements() {
        if a.id == wk::AGREEMENT_EXPIRED {
            // Its DPIA was superseded with it.
            assert!(register.for_agreement(&a.id).is_empty());
            continue;
        }
        assert_eq!(register.check_agreement(&a), Vec::new(), "{}", a.id);
        assert!(!register.for_agreement(&a.id).is_empty(), "{}", a.id);
    }
}

#[test]
fn agreements_cover_every_sector_pairing_and_the_police_get_no_clinical_detail() {
    let orgs = organisations();
    let sector = |org: &str| orgs.iter().find(|o| o.id == org).map(|o| o.sector).unwrap();
    let agreements = agreements();
    let partners: Vec<&Organisation> = orgs.iter().filter(|o| o.part_of.is_none()).collect();
    for a in &partners {
        for b in &partners {
            if a.id != b.id {
                assert!(
                    agreements.iter().any(|x| x.parties.contains(&a.id) && x.parties.contains(&b.id)),
                    "no agreement between {} and {}",
                    a.id,
                    b.id
                );
            }
        }
    }
    for a in &agreements {
        for c in &a.clauses {
            if c.purpose == Purpose::Treat && c.recipients.iter().any(|r| sector(r).code() == "police") {
                assert!(c.resource_types.iter().all(|t| t == "Flag" || t == "CarePlan"), "{}/{}", a.id, c.id);
                assert!(c.labels.is_empty(), "{}/{}", a.id, c.id);
            }
        }
    }
    // The ambulance service answers emergencies under an ETREAT clause with vital interests.
    let emergency: Vec<_> = agreements
        .iter()
        .flat_map(|a| &a.clauses)
        .filter(|c| c.purpose == Purpose::EmergencyTreat && c.recipients.iter().any(|r| r == wk::ORG_AMBULANCE))
        .collect();
    assert!(emergency.len() >= 5);
    assert!(emergency.iter().all(|c| c.lawful_basis.iter().any(|b| b.code == "6(1)(d)")));
}

#[test]
fn every_consent_follows_the_profile_with_evidence_when_staff_recorded_it() {
    let patients: BTreeSet<&str> = of_type(all(), "Patient").map(id).collect();
    let documents: BTreeSet<&str> = of_type(all(), "DocumentReference").map(id).collect();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for c in of_type(all(), "Consent") {
        let consent = ConsentRecord::from_resource(&c.resource).unwrap_or_else(|e| panic!("{}: {e}", id(c)));
        let patient = consent.patient.trim_start_matches("Patient/");
        assert!(patients.contains(patient), "{}", id(c));
        assert_eq!(find(all(), "Patient", patient).custodian_org_id, c.custodian_org_id);
        if let Some(staff) = &consent.recorded_by {
            user(staff.trim_start_matches("Practitioner/"));
            let evidence = consent.evidence.as_deref().expect("staff-recorded consents cite evidence");
            assert!(documents.contains(evidence.trim_start_matches("DocumentReference/")), "{evidence}");
            *kinds.entry("recorded by staff").or_default() += 1;
        }
        let root = &consent.provision;
        let kind = match (c.resource["status"].as_str(), root.children.len(), root.sectors.len()) {
            (Some("inactive"), _, _) => "withdrawn",
            (_, 0, 0) if root.organisations.is_empty() => "opted out",
            (_, 0, 0) => "objects to an organisation",
            (_, 0, _) => "objects to a sector",
            _ => "releases sensitive records",
        };
        *kinds.entry(kind).or_default() += 1;
    }
    eprintln!("{kinds:?}");
    for (kind, at_least) in [
        ("opted out", 20),
        ("objects to a sector", 40),
        ("objects to an organisation", 5),
        ("releases sensitive records", 20),
        ("withdrawn", 2),
        ("recorded by staff", 40),
    ] {
        assert!(kinds.get(kind).copied().unwrap_or(0) >= at_least, "{kind}: {kinds:?}");
    }
    let national = of_type(all(), "Patient").filter(|p| p.resource.get("extension").is_some()).count();
    assert!(national >= 50, "{national} national opt-outs");
    assert!(consent_of(wk::PERSON_NATIONAL_OPT_OUT).national_opt_out);
    assert!(
        find(all(), "Consent", wk::JOE_CONSENT).resource["sourceReference"]["reference"]
            == format!("DocumentReference/{}", wk::JOE_CONSENT_FORM).as_str()
    );
}

#[test]
fn every_organisation_has_users_and_emergency_staff_may_break_the_glass() {
    let roles: Vec<User> = of_type(all(), "PractitionerRole")
        .map(|r| user(r.resource["practitioner"]["reference"].as_str().unwrap().trim_start_matches("Practitioner/")))
        .collect();
    for o in of_type(all(), "Organization") {
        assert!(roles.iter().any(|u| u.org == id(o)), "{} has no user", id(o));
    }
    for partner in wk::PARTNER_ORGS {
        assert!(roles.iter().any(|u| u.org == partner && u.role == "information-governance-lead"), "{partner}");
    }
    let lead = user(wk::GOVERNANCE_LEAD);
    assert_eq!((lead.role.as_str(), lead.org.as_str()), ("governance-lead", wk::GOVERNANCE_HOST_ORG));
    for r in of_type(all(), "PractitionerRole") {
        let code = r.resource["code"][0]["coding"][0]["code"].as_str().unwrap();
        let flagged = r.resource["extension"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x["url"] == wk::BREAK_GLASS_EXTENSION_URL && x["valueBoolean"] == true));
        assert_eq!(flagged, DEFAULT_BREAK_GLASS_ROLES.contains(&code), "{}", id(r));
    }
    for team in [wk::ORG_HOSPITAL_ED, wk::ORG_AMBULANCE, wk::ORG_CRISIS_TEAM] {
        assert!(roles.iter().any(|u| u.org == team && DEFAULT_BREAK_GLASS_ROLES.contains(&u.role.as_str())), "{team}");
    }
    for (prac, role) in [
        (wk::JOE_GP, "gp"),
        (wk::POLICE_LIAISON_OFFICER, "police-liaison-officer"),
        (wk::ED_NURSE, "ed-nurse"),
        (wk::HOLLINGWORTH_GP, "gp"),
    ] {
        assert_eq!(user(prac).role, role);
    }
}

#[test]
fn sensitivity_labels_are_on_the_records_they_describe() {
    let mut counts: BTreeMap<SensitivityLabel, usize> = BTreeMap::new();
    for r in all() {
        for l in labels_of(&r.resource) {
            *counts.entry(l).or_default() += 1;
        }
        if r.custodian_org_id == wk::ORG_MH_TRUST && ["Condition", "Encounter", "EpisodeOfCare"].contains(&rtype(r)) {
            assert!(has_label(r, SensitivityLabel::MentalHealth), "{}", id(r));
        }
        if has_label(r, SensitivityLabel::SexualAndDomesticViolence) {
            assert!([wk::ORG_SOCIAL_CARE, wk::ORG_POLICE].contains(&r.custodian_org_id.as_str()));
            assert!(r.resource["reasonCode"][0]["text"].as_str().unwrap().contains("omestic abuse"));
        }
    }
    eprintln!("{counts:?}");
    assert!(counts[&SensitivityLabel::MentalHealth] > 500);
    assert!(counts[&SensitivityLabel::SubstanceUse] > 50);
    assert!(counts[&SensitivityLabel::SexualAndDomesticViolence] >= 5);
    assert!(counts[&SensitivityLabel::Restricted] >= 3);
    // Crisis plans and flags are written to be shared: never labelled.
    for t in ["CarePlan", "Flag", "CareTeam"] {
        assert!(of_type(all(), t).all(|r| labels_of(&r.resource).is_empty()), "{t}");
    }
}

/// One decision a governance lead would expect.
struct Case {
    what: &'static str,
    user: &'static str,
    resource: &'static DemoResource,
    purpose: Purpose,
    break_glass: Option<&'static str>,
    expected: Effect,
    /// A policy id the decision must cite (its prefix; empty: any).
    cites: &'static str,
}

fn check(case: &Case) {
    let (decision, explanation) = decide(&user(case.user), case.resource, case.purpose, case.break_glass);
    assert_eq!(decision.effect, case.expected, "{}\n{explanation}", case.what);
    assert!(
        decision.reasons.iter().any(|r| r.policy_id.starts_with(case.cites)),
        "{}: no reason {}\n{explanation}",
        case.what,
        case.cites
    );
    assert_eq!(decision.break_glass, case.break_glass.is_some(), "{}", case.what);
}

#[test]
fn decisions_on_joes_record_follow_his_crisis_plan() {
    let condition = find(all(), "Condition", wk::JOE_CONDITION_DEPRESSION);
    assert!(has_label(condition, SensitivityLabel::MentalHealth));
    let plan = find(all(), "CarePlan", wk::JOE_CARE_PLAN);
    let flag = find(all(), "Flag", wk::JOE_FLAG);
    let team = find(all(), "CareTeam", wk::JOE_CARE_TEAM);
    let glass = Some("Joe brought in unconscious after an overdose");
    let mh_police = "agreement:dsa-mental-health-police/police-from-mental-health";
    for case in [
        Case { what: "the police liaison officer cannot read Joe's depression", user: wk::POLICE_LIAISON_OFFICER, resource: condition, purpose: Purpose::Treat, break_glass: None, expected: Effect::Deny, cites: "consent:gate" },
        Case { what: "nor his care team: the police get flags and crisis plans only", user: wk::POLICE_LIAISON_OFFICER, resource: team, purpose: Purpose::Treat, break_glass: None, expected: Effect::Deny, cites: "baseline:deny-by-default" },
        Case { what: "the police liaison officer reads Joe's crisis plan", user: wk::POLICE_LIAISON_OFFICER, resource: plan, purpose: Purpose::Treat, break_glass: None, expected: Effect::Permit, cites: mh_police },
        Case { what: "the police liaison officer reads Joe's risk flag", user: wk::POLICE_LIAISON_OFFICER, resource: flag, purpose: Purpose::Treat, break_glass: None, expected: Effect::Permit, cites: mh_police },
        Case { what: "his care coordinator reads his depression", user: wk::JOE_CARE_COORDINATOR, resource: condition, purpose: Purpose::Treat, break_glass: None, expected: Effect::Permit, cites: "baseline:custodian-own-data" },
        Case { what: "his GP reads his mental-health record (his consent names her practice)", user: wk::JOE_GP, resource: condition, purpose: Purpose::Treat, break_glass: None, expected: Effect::Permit, cites: "agreement:dsa-primary-care-mental-health/direct-care" },
        Case { what: "his social worker sees his crisis plan", user: wk::SOCIAL_WORKER, resource: plan, purpose: Purpose::Treat, break_glass: None, expected: Effect::Permit, cites: "agreement:dsa-mental-health-social-care/social-care-from-mental-health" },
        Case { what: "his social worker cannot see a PSY record (neither the agreement nor his consent releases it to social care)", user: wk::SOCIAL_WORKER, resource: condition, purpose: Purpose::Treat, break_glass: None, expected: Effect::Deny, cites: "consent:gate" },
        Case { what: "an ED nurse outside his care team cannot read it for direct care", user: wk::ED_NURSE, resource: condition, purpose: Purpose::Treat, break_glass: None, expected: Effect::Deny, cites: "relationship:direct-care" },
        Case { what: "an ED nurse breaking the glass reads it under the emergency clause", user: wk::ED_NURSE, resource: condition, purpose: Purpose::EmergencyTreat, break_glass: glass, expected: Effect::Permit, cites: "agreement:dsa-acute-mental-health/emergency" },
        Case { what: "a befriender cannot break the glass", user: "prac-vale-befrienders-02", resource: condition, purpose: Purpose::EmergencyTreat, break_glass: glass, expected: Effect::Deny, cites: "break-glass:allowed-roles" },
    ] {
        check(&case);
    }
    let (social, _) = decide(&user(wk::SOCIAL_WORKER), condition, Purpose::Treat, None);
    assert_eq!(social.withheld_labels, vec![SensitivityLabel::MentalHealth]);
}

#[test]
fn decisions_follow_the_consent_vignettes() {
    let margaret_mh = first("Condition", about(wk::PERSON_PSY_WITHHELD));
    assert!(has_label(margaret_mh, SensitivityLabel::MentalHealth));
    let margaret_team = find(all(), "CareTeam", "careteam-hollingworth");
    let daniel_gp = first("Condition", about(wk::PERSON_OPTED_OUT));
    let marsh_flag = find(all(), "Flag", wk::MARSH_FLAG);
    let susan_encounter = first("Encounter", about(wk::PERSON_NATIONAL_OPT_OUT));
    assert!(labels_of(&susan_encounter.resource).is_empty());
    let someone_else = first("Encounter", |e| {
        e.custodian_org_id == wk::ORG_HOSPITAL
            && labels_of(&e.resource).is_empty()
            && subject(e).is_some_and(|p| consent_of(&p) == PersonConsent::none())
    });
    let liaison_nurse = "prac-minsterford-hospital-04";
    let psychiatrist = "prac-vale-mh-trust-03";
    let glass = Some("Severe asthma attack, unable to give history");
    for case in [
        Case {
            what: "Margaret's GP reads her mental-health record",
            user: wk::HOLLINGWORTH_GP,
            resource: margaret_mh,
            purpose: Purpose::Treat,
            break_glass: None,
            expected: Effect::Permit,
            cites: "agreement:dsa-primary-care-mental-health/direct-care",
        },
        Case {
            what: "the hospital in her care team cannot see it (PSY to her GP only)",
            user: liaison_nurse,
            resource: margaret_mh,
            purpose: Purpose::Treat,
            break_glass: None,
            expected: Effect::Deny,
            cites: "consent:gate",
        },
        Case {
            what: "the hospital sees her care team",
            user: liaison_nurse,
            resource: margaret_team,
            purpose: Purpose::Treat,
            break_glass: None,
            expected: Effect::Permit,
            cites: "agreement:dsa-acute-mental-health/direct-care",
        },
        Case {
            what: "Daniel opted out: the hospital in his care team cannot read his GP record",
            user: "prac-minsterford-hospital-05",
            resource: daniel_gp,
            purpose: Purpose::Treat,
            break_glass: None,
            expected: Effect::Deny,
            cites: "consent:gate",
        },
        Case {
            what: "break-glass overrides his opt-out in an emergency",
            user: wk::ED_NURSE,
            resource: daniel_gp,
            purpose: Purpose::EmergencyTreat,
            break_glass: glass,
            expected: Effect::Permit,
            cites: "agreement:dsa-acute-primary-care/emergency",
        },
        Case {
            what: "Kevin objects to the police: the liaison officer in his care team cannot see his flag",
            user: "prac-northvale-police-02",
            resource: marsh_flag,
            purpose: Purpose::Treat,
            break_glass: None,
            expected: Effect::Deny,
            cites: "consent:gate",
        },
        Case {
            what: "his GP can",
            user: "prac-gp-ashgrove-02",
            resource: marsh_flag,
            purpose: Purpose::Treat,
            break_glass: None,
            expected: Effect::Permit,
            cites: "agreement:dsa-primary-care-mental-health/direct-care",
        },
        Case {
            what: "Susan's national opt-out keeps her out of the evaluation",
            user: psychiatrist,
            resource: susan_encounter,
            purpose: Purpose::Operations,
            break_glass: None,
            expected: Effect::Deny,
            cites: "consent:national-opt-out",
        },
        Case {
            what: "others are in it",
            user: psychiatrist,
            resource: someone_else,
            purpose: Purpose::Operations,
            break_glass: None,
            expected: Effect::Permit,
            cites: "agreement:dsa-crisis-care-evaluation/evaluation",
        },
        Case {
            what: "Susan's national opt-out does not affect her direct care",
            user: wk::ED_NURSE,
            resource: susan_encounter,
            purpose: Purpose::Treat,
            break_glass: None,
            expected: Effect::Permit,
            cites: "baseline:custodian-own-data",
        },
    ] {
        check(&case);
    }
    let (hospital, _) = decide(&user(liaison_nurse), margaret_mh, Purpose::Treat, None);
    assert_eq!(hospital.withheld_labels, vec![SensitivityLabel::MentalHealth]);
}

#[test]
fn decisions_on_governance_and_agreements_not_in_force() {
    let contract = find(all(), "Contract", wk::AGREEMENT_MH_POLICE);
    let sdv = first("Encounter", |e| {
        e.custodian_org_id == wk::ORG_SOCIAL_CARE
            && has_label(e, SensitivityLabel::SexualAndDomesticViolence)
            && subject(e).is_some_and(|p| consent_of(&p) == PersonConsent::none())
    });
    let glass = Some("Unresponsive; collateral history needed");
    for case in [
        Case {
            what: "the governance lead reads the agreements the partnership office holds",
            user: wk::GOVERNANCE_LEAD,
            resource: contract,
            purpose: Purpose::Treat,
            break_glass: None,
            expected: Effect::Permit,
            cites: "baseline:custodian-own-data",
        },
        Case {
            what: "a police officer does not",
            user: wk::POLICE_LIAISON_OFFICER,
            resource: contract,
            purpose: Purpose::Treat,
            break_glass: None,
            expected: Effect::Deny,
            cites: "",
        },
        Case {
            what: "break-glass does not release domestic-abuse records (no emergency clause names SDV)",
            user: wk::ED_NURSE,
            resource: sdv,
            purpose: Purpose::EmergencyTreat,
            break_glass: glass,
            expected: Effect::Deny,
            cites: "baseline:deny-by-default",
        },
    ] {
        check(&case);
    }
    let (refused, _) = decide(&user(wk::ED_NURSE), sdv, Purpose::EmergencyTreat, glass);
    assert_eq!(refused.withheld_labels, vec![SensitivityLabel::SexualAndDomesticViolence]);
    // The draft agreement between the police and the voluntary partners shares nothing, and
    // the explanation says so.
    let police_flag = find(all(), "Flag", wk::JOE_POLICE_ADDRESS_FLAG);
    let (decision, explanation) = decide(&user(wk::PATHWAYS_WORKER), police_flag, Purpose::Treat, None);
    assert_eq!(decision.effect, Effect::Deny);
    assert!(explanation.contains(wk::AGREEMENT_DRAFT), "{explanation}");
}
