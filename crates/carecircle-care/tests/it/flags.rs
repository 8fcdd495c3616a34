//! Flags: risk categories, validation with locations, and whether a flag is active at a time.

use carecircle_care::codes::{FLAG_CODE_SYSTEM, TRIGGER_SITUATION_SYSTEM};
use carecircle_care::{active_situations, parse_flag, ActiveSituation, Code, FlagCode, FlagStatus};
use carecircle_demo::well_known as wk;
use serde_json::{json, Value};

use crate::support::{at, demo_resource};

fn flag(code: &str, period: Value) -> Value {
    json!({
        "resourceType": "Flag",
        "id": "f1",
        "status": "active",
        "code": { "coding": [{ "system": FLAG_CODE_SYSTEM, "code": code }] },
        "subject": { "reference": "Patient/p" },
        "period": period,
    })
}

#[test]
fn joes_flags_carry_their_categories() {
    let risk = parse_flag(&demo_resource("Flag", wk::JOE_FLAG)).unwrap();
    assert_eq!(risk.risk_categories(), vec![FlagCode::RiskToSelf]);
    assert!(risk.is_active_at(at(2026, 11, 1, 0, 0)));
    assert!(!risk.is_active_at(at(2024, 8, 19, 23, 59)), "before its start day");
    let address = parse_flag(&demo_resource("Flag", wk::JOE_POLICE_ADDRESS_FLAG)).unwrap();
    assert_eq!(address.flag_codes, vec![FlagCode::AddressFlag]);
    assert!(address.risk_categories().is_empty());
}

#[test]
fn every_risk_category_is_known_and_category_codings_count() {
    for code in ["risk-to-self", "risk-to-others", "risk-to-staff", "safeguarding"] {
        let parsed = parse_flag(&flag(code, json!({ "start": "2026-01-01" }))).unwrap();
        assert_eq!(parsed.risk_categories().len(), 1, "{code}");
        assert_eq!(parsed.risk_categories()[0].code(), code);
    }
    let mut by_category = flag("address-flag", json!({}));
    by_category["category"] = json!([{ "coding": [{ "system": FLAG_CODE_SYSTEM, "code": "risk-to-staff" }] }]);
    let parsed = parse_flag(&by_category).unwrap();
    assert_eq!(parsed.risk_categories(), vec![FlagCode::RiskToStaff]);
}

#[test]
fn a_period_end_day_counts_whole_and_status_decides_first() {
    let parsed = parse_flag(&flag("safeguarding", json!({ "start": "2026-08-01", "end": "2026-08-31" }))).unwrap();
    assert!(parsed.is_active_at(at(2026, 8, 1, 0, 0)));
    assert!(parsed.is_active_at(at(2026, 8, 31, 23, 59)));
    assert!(!parsed.is_active_at(at(2026, 9, 1, 0, 0)));
    assert!(!parsed.is_active_at(at(2026, 7, 31, 23, 59)));
    let mut inactive = flag("safeguarding", json!({ "start": "2026-08-01" }));
    inactive["status"] = json!("inactive");
    let parsed = parse_flag(&inactive).unwrap();
    assert_eq!(parsed.status, FlagStatus::Inactive);
    assert!(!parsed.is_active_at(at(2026, 8, 15, 12, 0)));
    let mut wrong = flag("safeguarding", json!({}));
    wrong["status"] = json!("entered-in-error");
    assert!(!parse_flag(&wrong).unwrap().is_active_at(at(2026, 8, 15, 12, 0)));
}

#[test]
fn invalid_flags_are_refused_with_locations() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (flag("risk-to-pets", json!({})), vec!["Flag.code.coding[0].code"]),
        (
            {
                let mut f = flag("risk-to-self", json!({}));
                f["category"] =
                    json!([{ "text": "x" }, { "coding": [{ "system": FLAG_CODE_SYSTEM, "code": "risky" }] }]);
                f
            },
            vec!["Flag.category[1]"],
        ),
        (flag("risk-to-self", json!({ "start": "2026-09-01", "end": "2026-08-01" })), vec!["Flag.period"]),
        (flag("risk-to-self", json!({ "start": "01/09/2026" })), vec!["Flag.period.start"]),
        (
            json!({ "resourceType": "Flag", "status": "on", "code": { "text": "x" } }),
            vec!["Flag.status", "Flag.subject"],
        ),
        (
            json!({ "resourceType": "Flag", "status": "active", "subject": { "reference": "Patient/p" } }),
            vec!["Flag.code"],
        ),
    ];
    for (resource, expected) in cases {
        let problems = parse_flag(&resource).unwrap_err();
        let got: Vec<&str> = problems.iter().map(|p| p.expression.as_str()).collect();
        assert_eq!(got, expected, "{resource}");
    }
}

#[test]
fn situations_come_from_active_flags_and_from_lists() {
    let leave = json!({
        "resourceType": "Flag", "id": "leave-1", "status": "active",
        "code": { "coding": [{ "system": TRIGGER_SITUATION_SYSTEM, "code": "care-coordinator-on-leave" }] },
        "subject": { "reference": "Patient/p" },
        "period": { "start": "2026-08-03", "end": "2026-08-14" },
    });
    let flags = vec![parse_flag(&leave).unwrap()];
    let listed = vec![ActiveSituation {
        code: Code::new(TRIGGER_SITUATION_SYSTEM, "housing-crisis"),
        since: None,
        source: None,
    }];
    let during = active_situations(&flags, &listed, at(2026, 8, 10, 9, 0));
    assert_eq!(during.len(), 2);
    assert!(during.contains(&ActiveSituation {
        code: Code::new(TRIGGER_SITUATION_SYSTEM, "care-coordinator-on-leave"),
        since: Some("2026-08-03".to_string()),
        source: Some("Flag/leave-1".to_string()),
    }));
    let after = active_situations(&flags, &[], at(2026, 8, 15, 9, 0));
    assert!(after.is_empty());
}
