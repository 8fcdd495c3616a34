//! Agreement lifecycle: draft → signed by every party → active → expired or terminated.

use carecircle_access::demo_support::{dpia_document_reference, AgreementSpec, ClauseSpec};
use carecircle_access::{
    check_transition, Agreement, AgreementState, AgreementStatus, Dpia, DpiaRegister, Problem, Purpose,
};
use carecircle_demo::well_known as wk;
use time::macros::date;

fn spec() -> AgreementSpec {
    AgreementSpec::active(
        "dsa-test",
        "Test agreement",
        &[wk::ORG_GP_ASHGROVE, wk::ORG_SOCIAL_CARE],
        "2026-01-01",
        Some("2027-12-31"),
        vec![ClauseSpec::new("direct-care", Purpose::Treat, &[wk::ORG_SOCIAL_CARE], &["Condition", "CarePlan"])],
    )
}

fn at(problems: &[Problem], expression: &str) -> bool {
    problems.iter().any(|p| p.expression == expression)
}

#[test]
fn draft_to_signing_to_active_when_complete() {
    let draft = spec().status(AgreementStatus::Draft).signed_only_by(&[]).to_contract();
    let signing = spec().status(AgreementStatus::Signing).signed_only_by(&[wk::ORG_GP_ASHGROVE]).to_contract();
    let active = spec().to_contract();
    assert_eq!(check_transition(None, &draft), Ok(()));
    assert_eq!(check_transition(Some(&draft), &signing), Ok(()));
    assert_eq!(check_transition(Some(&signing), &active), Ok(()));
    assert_eq!(check_transition(None, &active), Ok(()), "a complete agreement may be registered as active");
}

#[test]
fn not_active_until_every_party_signs() {
    let signing = spec().status(AgreementStatus::Signing).signed_only_by(&[wk::ORG_GP_ASHGROVE]).to_contract();
    let active = spec().signed_only_by(&[wk::ORG_GP_ASHGROVE]).to_contract();
    let problems = check_transition(Some(&signing), &active).expect_err("unsigned party");
    assert_eq!(
        problems,
        vec![Problem::new("Contract.signer", format!("Organization/{} has not signed", wk::ORG_SOCIAL_CARE))]
    );
}

#[test]
fn not_active_without_a_lawful_basis() {
    let mut s = spec();
    s.clauses[0] = s.clauses[0].clone().lawful_basis(&["6(1)(e)"]);
    let problems = check_transition(None, &s.to_contract()).expect_err("no Art 9 condition");
    assert!(at(&problems, "Contract.term[0].action[0].reasonCode"), "{problems:?}");
    assert!(problems[0].message.contains("Article 9(2)"), "{problems:?}");
    s.clauses[0] = s.clauses[0].clone().lawful_basis(&[]);
    let problems = check_transition(None, &s.to_contract()).expect_err("no basis at all");
    assert_eq!(problems.iter().filter(|p| p.expression == "Contract.term[0].action[0].reasonCode").count(), 2);
    // A draft may still lack one.
    let draft = s.status(AgreementStatus::Draft).to_contract();
    assert_eq!(check_transition(None, &draft), Ok(()));
}

#[test]
fn not_active_without_retention_or_dpia() {
    let mut s = spec();
    s.clauses[0] = s.clauses[0].clone().retention_years(None);
    s.dpias.clear();
    let problems = check_transition(None, &s.to_contract()).expect_err("incomplete");
    assert!(at(&problems, "Contract.term[0].extension"), "{problems:?}");
    assert!(at(&problems, "Contract.supportingInfo"), "{problems:?}");
}

#[test]
fn an_active_contract_that_is_incomplete_does_not_parse() {
    let contract = spec().signed_only_by(&[wk::ORG_SOCIAL_CARE]).to_contract();
    let err = Agreement::from_contract(&contract).expect_err("unsigned");
    assert!(err.has_problem_at("Contract.signer"), "{err}");
    assert_eq!(err.resource, "Contract/dsa-test");
}

#[test]
fn active_agreements_end_by_termination_only() {
    let active = spec().to_contract();
    let terminated = spec().status(AgreementStatus::Terminated).to_contract();
    assert_eq!(check_transition(Some(&active), &terminated), Ok(()));
    let problems = check_transition(Some(&terminated), &active).expect_err("terminated is final");
    assert!(at(&problems, "Contract.status"), "{problems:?}");
    let draft = spec().status(AgreementStatus::Draft).to_contract();
    let problems = check_transition(Some(&active), &draft).expect_err("no way back to draft");
    assert_eq!(problems[0].message, "an agreement cannot go from executed to offered");
    let rejected = spec().status(AgreementStatus::Rejected).to_contract();
    assert_eq!(check_transition(Some(&draft), &rejected), Ok(()));
}

#[test]
fn active_agreements_are_amended_not_edited() {
    let active = spec().to_contract();
    let mut wider = spec();
    wider.clauses[0].resource_types.push("Observation".to_string());
    let problems = check_transition(Some(&active), &wider.to_contract()).expect_err("clauses changed");
    assert!(at(&problems, "Contract.term"), "{problems:?}");
    let mut longer = spec();
    longer.end = Some("2030-12-31".to_string());
    let problems = check_transition(Some(&active), &longer.to_contract()).expect_err("period changed");
    assert!(at(&problems, "Contract.applies"), "{problems:?}");
    let mut retitled = spec();
    retitled.title = "Renamed".to_string();
    assert_eq!(check_transition(Some(&active), &retitled.to_contract()), Ok(()));
}

#[test]
fn state_follows_status_and_period() {
    let a = Agreement::from_contract(&spec().to_contract()).expect("valid");
    assert_eq!(a.state_on(date!(2025 - 12 - 31)), AgreementState::NotYetInForce);
    assert_eq!(a.state_on(date!(2026 - 01 - 01)), AgreementState::InForce);
    assert_eq!(a.state_on(date!(2027 - 12 - 31)), AgreementState::InForce);
    assert_eq!(a.state_on(date!(2028 - 01 - 01)), AgreementState::Expired);
    let t = Agreement::from_contract(&spec().status(AgreementStatus::Terminated).to_contract()).expect("valid");
    assert_eq!(t.state_on(date!(2026 - 06 - 01)), AgreementState::Terminated);
    let d = Agreement::from_contract(&spec().status(AgreementStatus::Draft).to_contract()).expect("valid");
    assert_eq!(d.state_on(date!(2026 - 06 - 01)), AgreementState::Draft);
}

#[test]
fn the_dpia_register_checks_links_both_ways() {
    let a = Agreement::from_contract(&spec().to_contract()).expect("valid");
    let good = Dpia::from_document_reference(&dpia_document_reference(
        "dpia-dsa-test",
        &["dsa-test"],
        "2025-11-20",
        "DPIA for the test agreement",
    ))
    .expect("valid DPIA");
    let register = DpiaRegister::new(vec![good.clone()]);
    assert_eq!(register.check_agreement(&a), Vec::<Problem>::new());
    assert_eq!(register.for_agreement("dsa-test"), vec![&good]);
    let other =
        Dpia::from_document_reference(&dpia_document_reference("dpia-dsa-test", &["dsa-other"], "2025-11-20", "DPIA"))
            .expect("valid DPIA");
    let problems = DpiaRegister::new(vec![other]).check_agreement(&a);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].expression, "Contract.supportingInfo[0]");
    assert!(DpiaRegister::new(Vec::new()).check_agreement(&a)[0].message.contains("not in the DPIA register"));
}
