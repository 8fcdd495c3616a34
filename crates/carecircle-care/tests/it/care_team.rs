//! Care teams built from partner list entries and explicit CareTeams, and the organisations in
//! a person's care.

use carecircle_care::{build_care_team, organisations_in_care, OrgDirectory, OrgId, PartnerListEntry};
use carecircle_demo::well_known as wk;
use serde_json::{json, Value};

use crate::support::{date, demo_resource, directory, org};

fn entry(
    organisation: &str,
    key_worker: Option<&str>,
    since: (i32, u8, u8),
    ended: Option<(i32, u8, u8)>,
) -> PartnerListEntry {
    PartnerListEntry {
        organisation: org(organisation),
        key_worker: key_worker.map(str::to_string),
        service: Some("Tenancy sustainment".to_string()),
        phone: Some("01632 960500".to_string()),
        email: Some("tenancy@kettlebeck.example".to_string()),
        since: Some(date(since.0, since.1, since.2)),
        ended: ended.map(|(y, m, d)| date(y, m, d)),
    }
}

fn joe_team() -> Value {
    demo_resource("CareTeam", wk::JOE_CARE_TEAM)
}

#[test]
fn list_entries_become_participants_with_contacts_and_end_dates() {
    let entries = vec![
        entry("org-vale-befrienders", Some("Pat Quinlan"), (2025, 1, 6), Some((2026, 3, 31))),
        entry("org-kettlebeck-homes", None, (2024, 5, 1), None),
    ];
    let team = build_care_team("Patient/pat-gp-ashgrove-joe", &entries, &[]);
    assert_eq!(team["resourceType"], "CareTeam");
    assert_eq!(team["status"], "active");
    assert_eq!(team["subject"]["reference"], "Patient/pat-gp-ashgrove-joe");
    assert_eq!(team["period"]["start"], "2024-05-01");
    let participants = team["participant"].as_array().unwrap();
    assert_eq!(participants.len(), 2);
    // Current first, then ended.
    assert_eq!(participants[0]["onBehalfOf"]["reference"], "Organization/org-kettlebeck-homes");
    assert_eq!(participants[0]["period"], json!({ "start": "2024-05-01" }));
    assert_eq!(participants[0]["member"]["display"], "Tenancy sustainment");
    assert_eq!(participants[1]["onBehalfOf"]["reference"], "Organization/org-vale-befrienders");
    assert_eq!(participants[1]["period"], json!({ "start": "2025-01-06", "end": "2026-03-31" }));
    assert_eq!(participants[1]["member"]["display"], "Pat Quinlan (Tenancy sustainment)");
    let member_ref = participants[1]["member"]["reference"].as_str().unwrap().trim_start_matches('#').to_string();
    let role = team["contained"].as_array().unwrap().iter().find(|c| c["id"] == member_ref.as_str()).unwrap();
    assert_eq!(role["resourceType"], "PractitionerRole");
    assert_eq!(role["active"], false);
    assert_eq!(role["practitioner"]["display"], "Pat Quinlan");
    assert_eq!(role["organization"]["reference"], "Organization/org-vale-befrienders");
    assert_eq!(role["healthcareService"][0]["display"], "Tenancy sustainment");
    assert_eq!(
        role["telecom"],
        json!([
            { "system": "phone", "value": "01632 960500", "use": "work" },
            { "system": "email", "value": "tenancy@kettlebeck.example", "use": "work" },
        ])
    );
}

#[test]
fn explicit_care_teams_are_joined_with_list_entries_without_repeats() {
    let entries = vec![
        // Repeats the care coordinator already in Joe's CareTeam.
        entry(wk::ORG_MH_TRUST, Some("Ms Ruth Oyelaran"), (2024, 8, 20), None),
        entry("org-vale-befrienders", Some("Pat Quinlan"), (2025, 1, 6), None),
    ];
    let team = build_care_team("Patient/pat-vale-mh-trust-joe", &entries, &[joe_team()]);
    let participants = team["participant"].as_array().unwrap();
    assert_eq!(participants.len(), 8 + 1, "{participants:#?}");
    let organisations: Vec<&str> =
        participants.iter().map(|p| p["onBehalfOf"]["reference"].as_str().unwrap()).collect();
    assert_eq!(organisations.iter().filter(|o| **o == "Organization/org-vale-mh-trust").count(), 1);
    assert_eq!(organisations.last(), Some(&"Organization/org-vale-befrienders"));
    // Explicit participants keep their roles, members and order as written (the lead first).
    assert_eq!(participants[0]["member"]["reference"], "PractitionerRole/role-vale-mh-trust-01");
    assert_eq!(participants[..8], joe_team()["participant"].as_array().unwrap()[..]);
}

#[test]
fn an_inactive_team_ends_its_open_participants_and_errors_are_skipped() {
    let mut inactive = joe_team();
    inactive["status"] = json!("inactive");
    inactive["period"] = json!({ "start": "2026-06-18", "end": "2026-10-31" });
    let mut wrong = joe_team();
    wrong["status"] = json!("entered-in-error");
    let team = build_care_team("Patient/p", &[], &[inactive, wrong]);
    let participants = team["participant"].as_array().unwrap();
    assert_eq!(participants.len(), 8);
    assert!(participants.iter().all(|p| p["period"]["end"] == "2026-10-31"));
    assert_eq!(team["status"], "inactive");
}

#[test]
fn organisations_in_care_follow_dates_and_include_partners_of_teams() {
    let entries = vec![entry("org-vale-befrienders", None, (2025, 1, 6), Some((2026, 3, 31)))];
    let d = directory();
    let during = organisations_in_care(&entries, &[joe_team()], date(2026, 3, 31), &d);
    assert!(during.contains(&org("org-vale-befrienders")), "still in care on its last day");
    let after = organisations_in_care(&entries, &[joe_team()], date(2026, 7, 1), &d);
    assert!(!after.contains(&org("org-vale-befrienders")));
    for expected in [
        wk::ORG_MH_TRUST,
        wk::ORG_CRISIS_TEAM,
        wk::ORG_POLICE_MH_LIAISON,
        wk::ORG_POLICE,
        wk::ORG_AMBULANCE,
        wk::ORG_SOCIAL_CARE,
        wk::ORG_PATHWAYS,
        wk::ORG_HOUSING,
        wk::ORG_GP_ASHGROVE,
    ] {
        assert!(after.contains(&org(expected)), "{expected} missing from {after:?}");
    }
    assert!(!after.contains(&org(wk::ORG_HOSPITAL)));
    // Before the team's start nobody from it is in care.
    let before = organisations_in_care(&[], &[joe_team()], date(2026, 6, 17), &d);
    assert!(before.is_empty(), "{before:?}");
    // An inactive team gives no relationship.
    let mut inactive = joe_team();
    inactive["status"] = json!("inactive");
    assert!(organisations_in_care(&[], &[inactive], date(2026, 7, 1), &OrgDirectory::new()).is_empty());
}

#[test]
fn without_a_directory_only_named_organisations_count() {
    let found = organisations_in_care(&[], &[joe_team()], date(2026, 7, 1), &OrgDirectory::new());
    assert!(found.contains(&OrgId::new(wk::ORG_POLICE_MH_LIAISON)));
    assert!(!found.contains(&OrgId::new(wk::ORG_POLICE)));
}
