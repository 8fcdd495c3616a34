//! Integration tests of the demo partnership: determinism, volumes, referential integrity,
//! fragmentation of identities, and Joe's shared care plan.

mod access;
mod fhir_valid;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use carecircle_demo::well_known as wk;
use carecircle_demo::{generate, generate_with_truth, nhs_number_is_valid, DemoConfig, DemoResource};
use serde_json::Value;

type Truth = Vec<(String, u32)>;

fn default_demo() -> &'static (Vec<DemoResource>, Truth) {
    static DEMO: OnceLock<(Vec<DemoResource>, Truth)> = OnceLock::new();
    DEMO.get_or_init(|| generate_with_truth(&DemoConfig::default()))
}

fn rtype(r: &DemoResource) -> &str {
    r.resource["resourceType"].as_str().unwrap()
}

fn id(r: &DemoResource) -> &str {
    r.resource["id"].as_str().unwrap()
}

fn of_type<'a>(all: &'a [DemoResource], t: &'a str) -> impl Iterator<Item = &'a DemoResource> + 'a {
    all.iter().filter(move |r| rtype(r) == t)
}

fn find<'a>(all: &'a [DemoResource], t: &str, i: &str) -> &'a DemoResource {
    all.iter().find(|r| rtype(r) == t && id(r) == i).unwrap_or_else(|| panic!("{t}/{i} missing"))
}

fn to_bytes(all: &[DemoResource]) -> String {
    all.iter().map(|r| format!("{}\t{}\n", r.custodian_org_id, serde_json::to_string(&r.resource).unwrap())).collect()
}

#[test]
fn default_config_is_seed_2017_with_2000_people() {
    let c = DemoConfig::default();
    assert_eq!((c.seed, c.n_people), (2017, 2000));
}

#[test]
fn same_seed_gives_byte_identical_output() {
    let a = generate(&DemoConfig::default());
    assert_eq!(to_bytes(&a), to_bytes(&default_demo().0));
    let small = DemoConfig { seed: 7, n_people: 300 };
    assert_eq!(generate_with_truth(&small), generate_with_truth(&small));
}

#[test]
fn different_seeds_give_different_output() {
    let a = generate(&DemoConfig { seed: 1, n_people: 300 });
    let b = generate(&DemoConfig { seed: 2, n_people: 300 });
    assert_ne!(to_bytes(&a), to_bytes(&b));
    // Different people, not just different order: the sets of family+given differ.
    let names = |all: &[DemoResource]| -> BTreeSet<String> {
        of_type(all, "Patient").map(|p| p.resource["name"].to_string()).collect()
    };
    assert_ne!(names(&a), names(&b));
}

#[test]
fn volumes_are_in_range() {
    let (all, truth) = default_demo();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in all {
        *counts.entry(rtype(r)).or_default() += 1;
    }
    eprintln!("total {} {counts:?}", all.len());
    assert!((6_000..=12_000).contains(&all.len()), "{} resources", all.len());
    let people: BTreeSet<u32> = truth.iter().map(|(_, n)| *n).collect();
    assert_eq!(people.len(), 2000);
    assert_eq!(truth.len(), counts["Patient"]);
    for t in ["Encounter", "Condition", "EpisodeOfCare", "CareTeam", "CarePlan", "Flag"] {
        assert!(counts.get(t).copied().unwrap_or(0) >= 1, "no {t}");
    }
    assert!(counts["Encounter"] > 1000);
}

#[test]
fn tiny_partnership_is_just_joe_and_the_consent_vignettes() {
    let (all, truth) = generate_with_truth(&DemoConfig { seed: 3, n_people: 1 });
    let people: BTreeSet<u32> = truth.iter().map(|(_, n)| *n).collect();
    assert_eq!(people, (0..=4).collect::<BTreeSet<u32>>(), "Joe (0) and the four fixed people");
    assert_eq!(truth.iter().filter(|(_, n)| *n == wk::JOE_PERSON).count(), wk::JOE_PATIENTS.len());
    assert!(of_type(&all, "Organization").count() >= 10);
    let (all0, _) = generate_with_truth(&DemoConfig { seed: 3, n_people: 0 });
    assert_eq!(all0.len(), all.len());
    // The fixed people are the same whatever the seed.
    let (other_seed, _) = generate_with_truth(&DemoConfig { seed: 99, n_people: 5 });
    assert_eq!(to_bytes(&other_seed), to_bytes(&all));
}

/// Every `reference` string in `v`, with the path of the field holding it.
fn collect_references<'a>(v: &'a Value, path: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("reference", Value::String(r)) => out.push((path.to_string(), r)),
                    // Contract.term.action.subject.reference is a list of References.
                    _ => collect_references(child, &format!("{path}.{k}"), out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_references(c, path, out)),
        _ => {}
    }
}

#[test]
fn resources_come_in_dependency_order_and_every_reference_resolves() {
    let (all, _) = default_demo();
    let order = [
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Contract",
        "Patient",
        "DocumentReference",
        "Consent",
        "CareTeam",
        "EpisodeOfCare",
        "Encounter",
        "Condition",
        "CarePlan",
        "Flag",
    ];
    let rank: Vec<usize> = all.iter().map(|r| order.iter().position(|t| *t == rtype(r)).expect("known type")).collect();
    assert!(rank.windows(2).all(|w| w[0] <= w[1]), "types out of order");

    let every: BTreeSet<String> = all.iter().map(|r| format!("{}/{}", rtype(r), id(r))).collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut checked = 0;
    let mut forward = 0;
    for r in all {
        let mut refs = Vec::new();
        collect_references(&r.resource, rtype(r), &mut refs);
        for (path, reference) in refs {
            let (t, i) = reference.split_once('/').expect("relative Type/id");
            assert!(order.contains(&t), "{reference}");
            assert!(!i.contains('/'), "{reference}");
            if path == "Contract.supportingInfo" {
                // The agreement cites its DPIA, which names the agreement back: one link is forward.
                assert!(every.contains(reference), "{}/{} cites missing {reference}", rtype(r), id(r));
                forward += 1;
            } else {
                assert!(
                    seen.contains(reference),
                    "{}/{} refers to {reference} not generated before it",
                    rtype(r),
                    id(r)
                );
            }
            checked += 1;
        }
        seen.insert(format!("{}/{}", rtype(r), id(r)));
    }
    assert!(checked > 10_000, "{checked}");
    assert_eq!(forward, of_type(all, "Contract").count());
}

#[test]
fn ids_are_unique_and_valid_fhir_ids() {
    let (all, _) = default_demo();
    let mut ids = BTreeSet::new();
    for r in all {
        let i = id(r);
        assert!((1..=64).contains(&i.len()), "{i}");
        assert!(i.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'), "{i}");
        assert!(ids.insert(format!("{}/{i}", rtype(r))), "duplicate {i}");
    }
}

#[test]
fn every_custodian_is_a_partner_and_holds_its_own_organization() {
    let (all, _) = default_demo();
    for r in all {
        assert!(wk::PARTNER_ORGS.contains(&r.custodian_org_id.as_str()), "{}", r.custodian_org_id);
    }
    for o in of_type(all, "Organization") {
        match o.resource.get("partOf") {
            None => assert_eq!(o.custodian_org_id, id(o)),
            Some(parent) => {
                assert_eq!(parent["reference"], format!("Organization/{}", o.custodian_org_id));
            }
        }
    }
}

#[test]
fn organizations_cover_every_sector_with_full_details() {
    let (all, _) = default_demo();
    let orgs: Vec<&DemoResource> = of_type(all, "Organization").collect();
    let partners: Vec<&&DemoResource> = orgs.iter().filter(|o| o.resource.get("partOf").is_none()).collect();
    assert!(partners.len() >= 10);
    let mut sectors: BTreeMap<String, usize> = BTreeMap::new();
    for o in &orgs {
        let r = &o.resource;
        assert!(r["identifier"][0]["value"].is_string());
        assert!(r["name"].is_string());
        assert!(r["telecom"][0]["value"].is_string());
        assert!(r["address"][0]["postalCode"].is_string());
        let sector: Vec<&Value> = r["type"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["coding"].as_array().unwrap())
            .filter(|c| c["system"] == wk::SECTOR_SYSTEM)
            .collect();
        assert_eq!(sector.len(), 1, "{}", id(o));
        if r.get("partOf").is_none() {
            *sectors.entry(sector[0]["code"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    for code in ["acute", "primary-care", "mental-health", "ambulance", "social-care", "police", "housing", "voluntary"]
    {
        assert!(sectors.contains_key(code), "no {code}");
    }
    assert_eq!(sectors["primary-care"], 3);
    assert_eq!(sectors["voluntary"], 2);
    let ed = find(all, "Organization", wk::ORG_HOSPITAL_ED);
    assert_eq!(ed.resource["partOf"]["reference"], format!("Organization/{}", wk::ORG_HOSPITAL));
    let crisis = find(all, "Organization", wk::ORG_CRISIS_TEAM);
    assert_eq!(crisis.resource["partOf"]["reference"], format!("Organization/{}", wk::ORG_MH_TRUST));
}

#[test]
fn every_partner_has_a_handful_of_staff_with_roles() {
    let (all, _) = default_demo();
    let mut per_partner: BTreeMap<&str, usize> = BTreeMap::new();
    for p in of_type(all, "Practitioner") {
        *per_partner.entry(p.custodian_org_id.as_str()).or_default() += 1;
        let role_id = id(p).replacen("prac-", "role-", 1);
        let role = find(all, "PractitionerRole", &role_id);
        assert_eq!(role.resource["practitioner"]["reference"], format!("Practitioner/{}", id(p)));
        assert!(role.resource["organization"]["reference"].as_str().unwrap().starts_with("Organization/"));
        assert!(role.resource["code"][0]["coding"][0]["code"].is_string());
        assert!(role.resource["specialty"][0]["coding"][0]["code"].is_string());
        assert!(role.resource["telecom"][0]["value"].is_string());
    }
    for partner in wk::PARTNER_ORGS {
        let n = per_partner.get(partner).copied().unwrap_or(0);
        assert!((3..=8).contains(&n), "{partner} has {n} staff");
    }
    for (prac, role) in [
        (wk::JOE_CARE_COORDINATOR, "care-coordinator"),
        (wk::CRISIS_WORKER, "crisis-worker"),
        (wk::POLICE_LIAISON_OFFICER, "police-liaison-officer"),
        (wk::SOCIAL_WORKER, "social-worker"),
        (wk::PARAMEDIC, "paramedic"),
        (wk::HOUSING_CASEWORKER, "housing-caseworker"),
        (wk::JOE_GP, "gp"),
        (wk::ED_NURSE, "ed-nurse"),
        (wk::PATHWAYS_WORKER, "pathways-worker"),
    ] {
        let r = find(all, "PractitionerRole", &prac.replacen("prac-", "role-", 1));
        assert_eq!(r.resource["code"][0]["coding"][0]["code"], role, "{prac}");
    }
    let cc_role = find(all, "PractitionerRole", wk::JOE_CARE_COORDINATOR_ROLE);
    assert_eq!(cc_role.resource["organization"]["reference"], format!("Organization/{}", wk::ORG_MH_TRUST));
}

#[test]
fn every_patient_is_held_by_its_managing_organization_under_a_local_identifier() {
    let (all, _) = default_demo();
    for p in of_type(all, "Patient") {
        let r = &p.resource;
        assert_eq!(r["managingOrganization"]["reference"], format!("Organization/{}", p.custodian_org_id));
        let system = carecircle_demo::patient_identifier_system(&p.custodian_org_id);
        assert_eq!(system, format!("https://carecircle.example.org/fhir/id/{}/patient", p.custodian_org_id));
        let locals: Vec<&Value> =
            r["identifier"].as_array().unwrap().iter().filter(|i| i["system"] == system.as_str()).collect();
        assert_eq!(locals.len(), 1, "{}", id(p));
        assert!(r["name"][0]["family"].is_string() && r["name"][0]["given"][0].is_string());
    }
    // Local identifiers are unique within each partner.
    let mut seen = BTreeSet::new();
    for p in of_type(all, "Patient") {
        let local = p.resource["identifier"][0]["value"].as_str().unwrap();
        assert!(seen.insert((p.custodian_org_id.clone(), local.to_string())), "{local}");
    }
}

#[test]
fn patients_have_valid_fhir_shapes() {
    let (all, _) = default_demo();
    let date_ok = |s: &str| {
        let b = s.as_bytes();
        b.len() == 10 && b[4] == b'-' && b[7] == b'-' && s.chars().filter(|c| c.is_ascii_digit()).count() == 8
    };
    for p in of_type(all, "Patient") {
        let r = &p.resource;
        if let Some(b) = r.get("birthDate") {
            assert!(date_ok(b.as_str().unwrap()), "{b}");
        }
        if let Some(g) = r.get("gender") {
            assert!(["male", "female", "other", "unknown"].contains(&g.as_str().unwrap()));
        }
        assert!(r["active"].is_boolean());
        for a in r.get("address").and_then(Value::as_array).into_iter().flatten() {
            assert!(a.get("line").is_none_or(Value::is_array));
            assert!(a.get("text").is_some() || a.get("line").is_some());
        }
    }
    for e in of_type(all, "Encounter") {
        let r = &e.resource;
        assert_eq!(r["status"], "finished");
        assert!(r["class"].is_object() && r["class"]["code"].is_string(), "class is a Coding");
        assert_eq!(r["type"][0]["coding"][0]["system"], wk::CONTACT_TYPE_SYSTEM);
        let (s, en) = (r["period"]["start"].as_str().unwrap(), r["period"]["end"].as_str().unwrap());
        assert!(s.len() == 20 && s.ends_with('Z') && s < en, "{s} {en}");
        assert!(s < "2026-11-01", "{s} is after the reference date");
    }
    for c in of_type(all, "Condition") {
        assert!(date_ok(c.resource["onsetDateTime"].as_str().unwrap()));
        assert_eq!(c.resource["code"]["coding"][0]["system"], "http://snomed.info/sct");
    }
    for e in of_type(all, "EpisodeOfCare") {
        let p = &e.resource["period"];
        if let Some(end) = p.get("end") {
            assert!(p["start"].as_str().unwrap() <= end.as_str().unwrap());
            assert_eq!(e.resource["status"], "finished");
        }
    }
}

#[test]
fn encounters_cover_every_kind_of_contact() {
    let (all, _) = default_demo();
    let kinds: BTreeSet<&str> =
        of_type(all, "Encounter").map(|e| e.resource["type"][0]["coding"][0]["code"].as_str().unwrap()).collect();
    for k in ["ed-attendance", "crisis-team-contact", "ambulance-callout", "police-contact", "gp-consultation"] {
        assert!(kinds.contains(k), "no {k}");
    }
    // ED attendances are provided by the ED team and held by the hospital.
    for e in of_type(all, "Encounter").filter(|e| e.resource["type"][0]["coding"][0]["code"] == "ed-attendance") {
        assert_eq!(e.custodian_org_id, wk::ORG_HOSPITAL);
        assert_eq!(e.resource["serviceProvider"]["reference"], format!("Organization/{}", wk::ORG_HOSPITAL_ED));
        assert_eq!(e.resource["class"]["code"], "EMER");
    }
}

fn patient_ids_by_person(truth: &Truth) -> BTreeMap<u32, Vec<&str>> {
    let mut m: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (pid, n) in truth {
        m.entry(*n).or_default().push(pid);
    }
    m
}

#[test]
fn records_are_fragmented_like_real_ones() {
    let (all, truth) = default_demo();
    let patients: HashMap<&str, &DemoResource> = of_type(all, "Patient").map(|p| (id(p), p)).collect();
    let by_person = patient_ids_by_person(truth);

    // Known to one partner or many.
    let partners_of =
        |ids: &Vec<&str>| -> BTreeSet<&str> { ids.iter().map(|i| patients[i].custodian_org_id.as_str()).collect() };
    let spread: Vec<usize> = by_person.values().map(|ids| partners_of(ids).len()).collect();
    let single = spread.iter().filter(|n| **n == 1).count();
    let many = spread.iter().filter(|n| **n >= 4).count();
    assert!(single > 800, "{single} known to one partner");
    assert!(many >= 30, "{many} known to four or more");

    // Most people are registered with a GP.
    let gp = [wk::ORG_GP_ASHGROVE, wk::ORG_GP_RIVERSIDE, wk::ORG_GP_MILLFIELD];
    let registered = by_person.values().filter(|ids| partners_of(ids).iter().any(|o| gp.contains(o))).count();
    assert!(registered * 100 > by_person.len() * 85, "{registered}");

    // The same person written differently at different partners.
    let given = |i: &str| patients[i].resource["name"][0]["given"][0].as_str().unwrap().to_string();
    let family = |i: &str| patients[i].resource["name"][0]["family"].as_str().unwrap().to_string();
    let birth = |i: &str| patients[i].resource.get("birthDate").map(|b| b.to_string());
    let mut given_differs = 0;
    let mut family_differs = 0;
    let mut birth_differs = 0;
    for ids in by_person.values() {
        let gs: BTreeSet<String> = ids.iter().map(|i| given(i)).collect();
        let fs: BTreeSet<String> = ids.iter().map(|i| family(i)).collect();
        let bs: BTreeSet<Option<String>> = ids.iter().map(|i| birth(i)).collect();
        given_differs += usize::from(gs.len() > 1);
        family_differs += usize::from(fs.len() > 1);
        birth_differs += usize::from(bs.len() > 1);
    }
    assert!(given_differs >= 20, "{given_differs}");
    assert!(family_differs >= 5, "{family_differs}");
    assert!(birth_differs >= 5, "{birth_differs}");

    // Nickname pairs actually occur (e.g. William at one partner, Bill at another).
    let nick_pairs =
        [("Joseph", "Joe"), ("William", "Bill"), ("Elizabeth", "Liz"), ("Robert", "Bob"), ("Michael", "Mike")];
    let nicknamed = by_person
        .values()
        .filter(|ids| {
            let gs: BTreeSet<String> = ids.iter().map(|i| given(i)).collect();
            gs.len() > 1 && nick_pairs.iter().any(|(a, b)| gs.contains(*a) && gs.contains(*b))
        })
        .count();
    assert!(nicknamed >= 1);

    // Police sometimes have no fixed abode; some records have no postcode.
    let nfa = of_type(all, "Patient")
        .filter(|p| p.custodian_org_id == wk::ORG_POLICE && p.resource["address"][0]["text"] == "NFA")
        .count();
    assert!(nfa >= 1);
    let no_postcode = of_type(all, "Patient")
        .filter(|p| p.resource["address"][0].is_object() && p.resource["address"][0].get("postalCode").is_none())
        .count();
    assert!(no_postcode >= 10);
}

#[test]
fn nhs_numbers_are_valid_test_range_and_mostly_at_health_partners() {
    let (all, truth) = default_demo();
    let person_of: HashMap<&str, u32> = truth.iter().map(|(p, n)| (p.as_str(), *n)).collect();
    let mut owner: HashMap<String, u32> = HashMap::new();
    let mut with = BTreeMap::<&str, (usize, usize)>::new();
    for p in of_type(all, "Patient") {
        let entry = with.entry(p.custodian_org_id.as_str()).or_default();
        entry.1 += 1;
        for i in p.resource["identifier"].as_array().unwrap() {
            if i["system"] == wk::NHS_NUMBER_SYSTEM {
                let n = i["value"].as_str().unwrap();
                assert!(n.starts_with("999") && nhs_number_is_valid(n), "{n}");
                let person = person_of[id(p)];
                assert_eq!(*owner.entry(n.to_string()).or_insert(person), person, "{n} on two people");
                entry.0 += 1;
            }
        }
    }
    let share = |org: &str| with[org].0 as f64 / with[org].1 as f64;
    assert!(share(wk::ORG_GP_ASHGROVE) > 0.9);
    assert!(share(wk::ORG_HOSPITAL) > 0.8);
    assert!(share(wk::ORG_POLICE) < 0.2);
    assert!(share(wk::ORG_PATHWAYS) < 0.3);
    assert!(nhs_number_is_valid(wk::JOE_NHS_NUMBER));
}

#[test]
fn joe_is_known_to_many_partners_under_different_names() {
    let (all, truth) = default_demo();
    let joe: Vec<&str> = truth.iter().filter(|(_, n)| *n == wk::JOE_PERSON).map(|(p, _)| p.as_str()).collect();
    assert_eq!(joe.len(), wk::JOE_PATIENTS.len());
    let records: Vec<&DemoResource> = wk::JOE_PATIENTS.iter().map(|i| find(all, "Patient", i)).collect();
    let partners: BTreeSet<&str> = records.iter().map(|r| r.custodian_org_id.as_str()).collect();
    assert!(partners.len() >= 5);
    for p in [
        wk::ORG_GP_ASHGROVE,
        wk::ORG_MH_TRUST,
        wk::ORG_POLICE,
        wk::ORG_AMBULANCE,
        wk::ORG_SOCIAL_CARE,
        wk::ORG_PATHWAYS,
        wk::ORG_HOSPITAL,
    ] {
        assert!(partners.contains(p), "Joe unknown to {p}");
    }
    let givens: BTreeSet<&str> = records.iter().map(|r| r.resource["name"][0]["given"][0].as_str().unwrap()).collect();
    assert!(givens.contains("Joe") && givens.contains("Joseph"));
    let families: BTreeSet<&str> = records.iter().map(|r| r.resource["name"][0]["family"].as_str().unwrap()).collect();
    assert!(families.len() >= 2, "a typo somewhere");
    for i in joe {
        assert!(wk::JOE_PATIENTS.contains(&i));
    }

    // His ED attendance after the suicide attempt, and contacts with crisis team and police.
    let ed = find(all, "Encounter", wk::JOE_ED_ATTENDANCE);
    assert_eq!(ed.resource["subject"]["reference"], format!("Patient/{}", wk::JOE_PATIENT_HOSPITAL));
    let joe_refs: BTreeSet<String> = wk::JOE_PATIENTS.iter().map(|p| format!("Patient/{p}")).collect();
    let joe_kinds: BTreeSet<&str> = of_type(all, "Encounter")
        .filter(|e| joe_refs.contains(e.resource["subject"]["reference"].as_str().unwrap()))
        .map(|e| e.resource["type"][0]["coding"][0]["code"].as_str().unwrap())
        .collect();
    for k in [
        "ed-attendance",
        "crisis-team-contact",
        "police-contact",
        "ambulance-callout",
        "care-coordinator-contact",
        "pathways-contact",
    ] {
        assert!(joe_kinds.contains(k), "Joe has no {k}");
    }

    let flag = find(all, "Flag", wk::JOE_FLAG);
    assert_eq!(flag.resource["status"], "active");
    assert_eq!(flag.resource["code"]["coding"][0]["code"], "risk-to-self");
}

#[test]
fn joes_care_team_is_led_by_his_care_coordinator() {
    let (all, _) = default_demo();
    let team = find(all, "CareTeam", wk::JOE_CARE_TEAM);
    let participants = team.resource["participant"].as_array().unwrap();
    let lead = &participants[0];
    assert_eq!(lead["role"][0]["coding"][0]["code"], "lead");
    assert_eq!(lead["member"]["reference"], format!("PractitionerRole/{}", wk::JOE_CARE_COORDINATOR_ROLE));
    let agencies: BTreeSet<&str> =
        participants.iter().map(|p| p["onBehalfOf"]["reference"].as_str().unwrap()).collect();
    for org in
        [wk::ORG_SOCIAL_CARE, wk::ORG_POLICE_MH_LIAISON, wk::ORG_CRISIS_TEAM, wk::ORG_AMBULANCE, wk::ORG_PATHWAYS]
    {
        assert!(agencies.contains(format!("Organization/{org}").as_str()), "{org} not in team");
    }
}

fn trigger(activity: &Value) -> &Value {
    activity["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == wk::TRIGGER_EXTENSION_URL)
        .expect("trigger extension")
}

fn sub<'a>(ext: &'a Value, url: &str) -> Vec<&'a Value> {
    ext["extension"].as_array().unwrap().iter().filter(|e| e["url"] == url).collect()
}

#[test]
fn joes_care_plan_has_the_august_trigger_with_agreed_responses() {
    let (all, _) = default_demo();
    let plan = &find(all, "CarePlan", wk::JOE_CARE_PLAN).resource;
    assert_eq!(plan["status"], "active");
    assert_eq!(plan["intent"], "plan");
    assert_eq!(plan["category"][0]["coding"][0]["code"], "crisis-plan");
    assert_eq!(plan["author"]["reference"], format!("Practitioner/{}", wk::JOE_CARE_COORDINATOR));
    assert_eq!(plan["careTeam"][0]["reference"], format!("CareTeam/{}", wk::JOE_CARE_TEAM));

    let activities = plan["activity"].as_array().unwrap();
    let august = activities
        .iter()
        .find(|a| {
            let t = trigger(a);
            sub(t, "kind")[0]["valueCode"] == "recurring-period" && sub(t, "month")[0]["valueInteger"] == 8
        })
        .expect("August trigger");
    assert!(august["detail"]["description"].as_str().unwrap().contains("anniversary"));
    let responses = sub(trigger(august), "response");
    let agencies: BTreeSet<&str> = responses
        .iter()
        .map(|r| {
            let agency = sub(r, "agency")[0]["valueReference"]["reference"].as_str().unwrap();
            assert!(!sub(r, "text")[0]["valueString"].as_str().unwrap().is_empty());
            agency
        })
        .collect();
    assert!(agencies.len() >= 3, "{agencies:?}");
    for org in
        [wk::ORG_CRISIS_TEAM, wk::ORG_POLICE_MH_LIAISON, wk::ORG_AMBULANCE, wk::ORG_SOCIAL_CARE, wk::ORG_PATHWAYS]
    {
        assert!(agencies.contains(format!("Organization/{org}").as_str()), "{org} has no August response");
    }

    let kinds: BTreeSet<String> = activities
        .iter()
        .map(|a| {
            let t = trigger(a);
            let kind = sub(t, "kind")[0]["valueCode"].as_str().unwrap();
            let code = match kind {
                "event" => sub(t, "event")[0]["valueCoding"]["code"].as_str().unwrap().to_string(),
                "situation" => sub(t, "situation")[0]["valueCoding"]["code"].as_str().unwrap().to_string(),
                _ => sub(t, "month")[0]["valueInteger"].to_string(),
            };
            format!("{kind}:{code}")
        })
        .collect();
    for k in ["situation:care-coordinator-on-leave", "event:ed-attendance", "event:police-contact"] {
        assert!(kinds.contains(k), "{kinds:?}");
    }
}

#[test]
fn truth_is_hidden_from_the_resources() {
    let (all, truth) = default_demo();
    // Patient ids are numbered per partner in shuffled order, so the same number at two
    // partners is not the same person more often than chance.
    let person_of: HashMap<&str, u32> = truth.iter().map(|(p, n)| (p.as_str(), *n)).collect();
    let suffix = |p: &str| p.rsplit('-').next().unwrap().to_string();
    let mut by_suffix: HashMap<String, Vec<u32>> = HashMap::new();
    // Joe's and the fixed people's ids are named (`pat-<partner>-joe`) for demo scripts.
    let numbered = |i: &str| i.rsplit('-').next().is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
    for p in of_type(all, "Patient").filter(|p| numbered(id(p))) {
        by_suffix.entry(suffix(id(p))).or_default().push(person_of[id(p)]);
    }
    let coincidences = by_suffix.values().filter(|v| v.iter().collect::<BTreeSet<_>>().len() < v.len()).count();
    assert!(coincidences < 20, "{coincidences}");
    // The only Patient extension is the national data opt-out, which is about the person's
    // choice, not their identity.
    for p in of_type(all, "Patient") {
        assert!(p.resource.get("link").is_none());
        for e in p.resource.get("extension").and_then(Value::as_array).into_iter().flatten() {
            assert_eq!(e["url"], wk::NATIONAL_OPT_OUT_EXTENSION_URL);
        }
    }
}

#[test]
fn some_different_people_look_alike() {
    // Twins (and chance collisions): two true persons with the same family name and birth date,
    // so linkage cannot succeed on those fields alone.
    let (all, truth) = default_demo();
    let person_of: HashMap<&str, u32> = truth.iter().map(|(p, n)| (p.as_str(), *n)).collect();
    let mut seen: HashMap<(String, String), BTreeSet<u32>> = HashMap::new();
    for p in of_type(all, "Patient") {
        let (Some(family), Some(birth)) = (p.resource["name"][0]["family"].as_str(), p.resource["birthDate"].as_str())
        else {
            continue;
        };
        seen.entry((family.to_string(), birth.to_string())).or_default().insert(person_of[id(p)]);
    }
    let look_alikes = seen.values().filter(|people| people.len() > 1).count();
    assert!(look_alikes >= 5, "{look_alikes}");
}
