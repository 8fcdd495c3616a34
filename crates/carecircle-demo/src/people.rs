//! The made-up population: true persons, the partners that know each of them, and each
//! partner's own, imperfect copy of their details.

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

use crate::clinical;
use crate::dates::{Date, REFERENCE_DATE};
use crate::fhir::{phone, reference, reference_display};
use crate::names::{self, pick, GivenName};
use crate::nhs;
use crate::orgs::{self, OrgDef, Sector};
use crate::well_known as wk;

/// A postal address.
#[derive(Clone, Debug)]
pub struct Address {
    /// Address lines.
    pub lines: Vec<String>,
    /// Town.
    pub city: &'static str,
    /// Postcode.
    pub postcode: String,
}

/// One true (hidden) person.
#[derive(Clone, Debug)]
pub struct Person {
    /// Ground-truth person number (Joe is 0).
    pub number: u32,
    /// `male` or `female`.
    pub gender: &'static str,
    /// Given name and its nicknames.
    pub given: GivenName,
    /// Middle name, if any.
    pub middle: Option<&'static str>,
    /// Family name.
    pub family: &'static str,
    /// Date of birth.
    pub birth: Date,
    /// NHS number, if one is known to anyone.
    pub nhs: Option<String>,
    /// Current home; `None` when of no fixed abode.
    pub address: Option<Address>,
    /// Previous home, for people who moved (and for everyone now of no fixed abode).
    pub old_address: Option<Address>,
    /// Mobile number, if any.
    pub mobile: Option<String>,
    /// How involved with services: 0 GP only, 1 one more partner, 2 a few, 3 frequent contact.
    pub tier: u8,
    /// Has mental-health needs (drives conditions and contact reasons).
    pub mental_health: bool,
    /// Main mental-health condition (SNOMED CT code, display), if any.
    pub mh_condition: Option<(&'static str, &'static str)>,
    /// A physical long-term condition (SNOMED CT code, display), if any.
    pub ltc: Option<(&'static str, &'static str)>,
    /// Drinks harmfully.
    pub alcohol: bool,
    /// Registered GP practice.
    pub gp: Option<&'static str>,
    /// Practice the person was registered at before moving, still holding an inactive record.
    pub old_gp: Option<&'static str>,
    /// Partners (custodian ids) that know the person, other than GP practices.
    pub others: Vec<&'static str>,
}

const GP_PRACTICES: [&str; 3] = [wk::ORG_GP_ASHGROVE, wk::ORG_GP_RIVERSIDE, wk::ORG_GP_MILLFIELD];

/// Weighted choice of the non-GP partner a person is known to.
const OTHER_WEIGHTS: &[(&str, u32)] = &[
    (wk::ORG_HOSPITAL, 32),
    (wk::ORG_MH_TRUST, 13),
    (wk::ORG_AMBULANCE, 12),
    (wk::ORG_SOCIAL_CARE, 15),
    (wk::ORG_POLICE, 7),
    (wk::ORG_HOUSING, 11),
    (wk::ORG_PATHWAYS, 3),
    (wk::ORG_BEFRIENDERS, 7),
];

fn weighted_other<R: Rng>(rng: &mut R, exclude: &[&str]) -> Option<&'static str> {
    let total: u32 = OTHER_WEIGHTS.iter().filter(|(id, _)| !exclude.contains(id)).map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut roll = rng.random_range(0..total);
    for &(id, w) in OTHER_WEIGHTS.iter().filter(|(id, _)| !exclude.contains(id)) {
        if roll < w {
            return Some(id);
        }
        roll -= w;
    }
    None
}

/// A random home address.
pub fn random_address<R: Rng>(rng: &mut R) -> Address {
    let (city, districts) = *pick(rng, names::TOWNS);
    let district = *pick(rng, districts);
    let street = format!("{} {}", pick(rng, names::STREETS), pick(rng, names::STREET_KINDS));
    let lines = if rng.random_bool(0.2) {
        vec![format!("Flat {}, {}", rng.random_range(1..40u32), pick(rng, names::BLOCKS)), street]
    } else {
        vec![format!("{} {street}", rng.random_range(1..180u32))]
    };
    Address { lines, city, postcode: names::postcode(rng, district) }
}

/// A mobile number in the Ofcom drama range 07700 900000–900999.
pub fn random_mobile<R: Rng>(rng: &mut R) -> String {
    format!("07700 900{:03}", rng.random_range(0..1000u32))
}

/// Allocates unique NHS numbers from the 999 test range.
pub struct NhsNumbers {
    used: std::collections::BTreeSet<String>,
}

impl NhsNumbers {
    /// An allocator that will never hand out the numbers in `reserved`.
    pub fn new(reserved: &[&str]) -> Self {
        NhsNumbers { used: reserved.iter().map(|s| (*s).to_string()).collect() }
    }

    /// A fresh, unused, valid number, or `None` if none was found in a bounded number of tries.
    pub fn next<R: Rng>(&mut self, rng: &mut R) -> Option<String> {
        for _ in 0..64 {
            if let Some(n) = nhs::test_range_number(rng.random_range(0..1_000_000)) {
                if self.used.insert(n.clone()) {
                    return Some(n);
                }
            }
        }
        None
    }
}

/// Generate person `number` (≥ 1). `previous` is the person generated just before, who may
/// become this person's twin.
pub fn random_person<R: Rng>(
    rng: &mut R,
    number: u32,
    previous: Option<&Person>,
    nhs_numbers: &mut NhsNumbers,
) -> Person {
    let gender = if rng.random_bool(0.5) { "male" } else { "female" };
    let given_list = if gender == "male" { names::MALE_GIVEN } else { names::FEMALE_GIVEN };
    let tier = match rng.random_range(0..100u32) {
        0..55 => 0,
        55..85 => 1,
        85..95 => 2,
        _ => 3,
    };
    let mental_health = match tier {
        3 => true,
        2 => rng.random_bool(0.6),
        _ => rng.random_bool(0.12),
    };
    let homeless = rng.random_bool(if tier == 3 { 0.25 } else { 0.01 });
    let moved = homeless || rng.random_bool(if tier >= 2 { 0.4 } else { 0.2 });
    // Adults only: ages 18 to 95, younger adults more likely.
    let age_days = 18 * 365 + rng.random_range(0..(77 * 365)) * rng.random_range(1..=3) / 3;
    let mut p = Person {
        number,
        gender,
        given: *pick(rng, given_list),
        middle: rng.random_bool(0.35).then(|| *pick(rng, names::MIDDLE)),
        family: pick::<&str, _>(rng, names::FAMILY),
        birth: REFERENCE_DATE.add_days(-age_days),
        nhs: if rng.random_bool(0.995) { nhs_numbers.next(rng) } else { None },
        address: (!homeless).then(|| random_address(rng)),
        old_address: moved.then(|| random_address(rng)),
        mobile: rng.random_bool(0.45).then(|| random_mobile(rng)),
        tier,
        mental_health,
        mh_condition: mental_health.then(|| *pick(rng, clinical::MH_CONDITIONS)),
        ltc: rng.random_bool(0.3).then(|| *pick(rng, clinical::LONG_TERM_CONDITIONS)),
        alcohol: rng.random_bool(if tier == 3 { 0.5 } else { 0.04 }),
        gp: None,
        old_gp: None,
        others: Vec::new(),
    };
    // About one person in a hundred is the twin of the one before: same family name, birth date
    // and home, a different given name. Linkage must not merge them.
    if let Some(prev) = previous.filter(|_| rng.random_bool(0.01)) {
        p.family = prev.family;
        p.birth = prev.birth;
        p.address.clone_from(&prev.address);
        p.old_address.clone_from(&prev.old_address);
        while p.given.0 == prev.given.0 {
            p.given = *pick(rng, given_list);
        }
    }
    choose_partners(rng, &mut p);
    p
}

fn choose_partners<R: Rng>(rng: &mut R, p: &mut Person) {
    let gp_prob = if p.tier == 3 { 0.85 } else { 0.93 };
    if rng.random_bool(gp_prob) {
        let gp = *pick(rng, &GP_PRACTICES);
        p.gp = Some(gp);
        if p.old_address.is_some() && rng.random_bool(0.15) {
            let others: Vec<&str> = GP_PRACTICES.iter().copied().filter(|g| *g != gp).collect();
            p.old_gp = Some(*pick(rng, &others));
        }
    }
    let extra = match p.tier {
        0 => usize::from(p.gp.is_none()),
        1 => 1,
        2 => rng.random_range(2..=3),
        _ => 0,
    };
    if p.tier == 3 {
        p.others = vec![wk::ORG_HOSPITAL, wk::ORG_AMBULANCE, wk::ORG_POLICE, wk::ORG_MH_TRUST];
        for (id, prob) in
            [(wk::ORG_SOCIAL_CARE, 0.5), (wk::ORG_HOUSING, 0.35), (wk::ORG_PATHWAYS, 0.6), (wk::ORG_BEFRIENDERS, 0.15)]
        {
            if rng.random_bool(prob) {
                p.others.push(id);
            }
        }
    } else {
        let mut exclude: Vec<&str> = Vec::new();
        if !p.mental_health {
            exclude.push(wk::ORG_PATHWAYS);
        }
        for _ in 0..extra {
            if let Some(id) = weighted_other(rng, &exclude) {
                p.others.push(id);
                exclude.push(id);
            }
        }
    }
}

/// How carefully a sector records identity details (probabilities).
struct Style {
    nickname: f64,
    typo: f64,
    swap: f64,
    no_birth: f64,
    day_month_swap: f64,
    nhs: f64,
    old_address: f64,
    no_postcode: f64,
    no_address: f64,
    middle: f64,
    telecom: f64,
}

fn style(sector: Sector) -> Style {
    let base = Style {
        nickname: 0.08,
        typo: 0.03,
        swap: 0.01,
        no_birth: 0.01,
        day_month_swap: 0.015,
        nhs: 0.93,
        old_address: 0.3,
        no_postcode: 0.04,
        no_address: 0.0,
        middle: 0.8,
        telecom: 0.7,
    };
    match sector {
        Sector::PrimaryCare => Style { nhs: 0.99, old_address: 0.1, no_birth: 0.0, ..base },
        Sector::Acute | Sector::MentalHealth => base,
        Sector::Ambulance => Style {
            nickname: 0.3,
            typo: 0.08,
            swap: 0.03,
            no_birth: 0.08,
            day_month_swap: 0.04,
            nhs: 0.7,
            no_postcode: 0.12,
            middle: 0.1,
            telecom: 0.4,
            ..base
        },
        Sector::SocialCare => Style { nickname: 0.12, nhs: 0.75, no_birth: 0.02, middle: 0.4, ..base },
        Sector::Police => Style {
            nickname: 0.35,
            typo: 0.07,
            swap: 0.03,
            no_birth: 0.05,
            day_month_swap: 0.04,
            nhs: 0.03,
            old_address: 0.4,
            no_postcode: 0.15,
            middle: 0.3,
            telecom: 0.5,
            ..base
        },
        Sector::Housing => Style { nickname: 0.15, no_birth: 0.2, nhs: 0.08, old_address: 0.05, middle: 0.2, ..base },
        Sector::Voluntary => Style {
            nickname: 0.5,
            typo: 0.05,
            swap: 0.02,
            no_birth: 0.2,
            day_month_swap: 0.04,
            nhs: 0.05,
            no_postcode: 0.2,
            no_address: 0.2,
            middle: 0.05,
            telecom: 0.8,
            ..base
        },
    }
}

/// A FHIR Address for `a`, optionally without its postcode.
pub fn address_json(a: &Address, with_postcode: bool) -> Value {
    let mut v = json!({ "use": "home", "line": a.lines, "city": a.city, "country": "GB" });
    if with_postcode {
        v["postalCode"] = json!(a.postcode);
    }
    v
}

/// How a sector writes "no fixed abode".
fn nfa_address(sector: Sector) -> Value {
    match sector {
        Sector::Police => json!({ "use": "home", "text": "NFA" }),
        s if s.is_health() => json!({
            "use": "temp",
            "text": "No fixed abode",
            "line": ["No fixed abode"],
            "city": "Minsterford",
            "postalCode": "ZZ99 3VZ",
            "country": "GB",
        }),
        _ => json!({ "use": "temp", "text": "No fixed abode" }),
    }
}

/// One partner's copy of one person.
pub struct Record {
    /// Index into the person list.
    pub person: usize,
    /// The partner holding it.
    pub org: &'static OrgDef,
    /// True for a stale registration at a previous GP practice.
    pub stale: bool,
    /// The Patient id.
    pub patient_id: String,
    /// The partner's local identifier value.
    pub local: String,
}

/// Every partner's records, partner by partner, each partner's list shuffled so that id order
/// says nothing about who is who.
pub fn assign_records<R: Rng>(rng: &mut R, people: &[Person]) -> Vec<Record> {
    let mut out = Vec::new();
    for partner in orgs::partners() {
        let mut held: Vec<(usize, bool)> = Vec::new();
        for (i, p) in people.iter().enumerate() {
            if p.gp == Some(partner.id) || p.others.contains(&partner.id) {
                held.push((i, false));
            } else if p.old_gp == Some(partner.id) {
                held.push((i, true));
            }
        }
        held.shuffle(rng);
        let (prefix, digits) = partner.local_id;
        let start = 10u64.pow(u32::try_from(digits).unwrap_or(6).saturating_sub(1));
        let mut local = start + rng.random_range(0..start.min(1000));
        for (n, (person, stale)) in held.into_iter().enumerate() {
            local += rng.random_range(1..20u64);
            out.push(Record {
                person,
                org: partner,
                stale,
                patient_id: format!("pat-{}-{:06}", partner.short(), n + 1),
                local: format!("{prefix}{local:0digits$}"),
            });
        }
    }
    out
}

/// The partner's identifier system for its local patient numbers.
pub fn local_system(org_id: &str) -> String {
    format!("{}/id/{org_id}/patient", crate::fhir::CC_BASE)
}

/// The Patient resource a partner holds for a person, with that partner's typical imperfections.
pub fn patient_resource<R: Rng>(rng: &mut R, p: &Person, rec: &Record) -> Value {
    let sector = rec.org.sector;
    let st = style(sector);
    let mut given = if rng.random_bool(st.nickname) && !p.given.1.is_empty() {
        (*pick(rng, p.given.1)).to_string()
    } else {
        p.given.0.to_string()
    };
    let mut family = p.family.to_string();
    if rng.random_bool(st.typo) {
        if rng.random_bool(0.5) {
            family = names::typo(rng, &family);
        } else {
            given = names::typo(rng, &given);
        }
    }
    let swapped = rng.random_bool(st.swap);
    if swapped {
        std::mem::swap(&mut given, &mut family);
    }
    let mut givens = vec![json!(given)];
    if let Some(m) = p.middle.filter(|_| !swapped && rng.random_bool(st.middle)) {
        givens.push(json!(m));
    }

    let mut identifiers = vec![json!({
        "use": "usual",
        "system": local_system(rec.org.id),
        "value": rec.local,
    })];
    if let Some(n) = p.nhs.as_ref().filter(|_| rng.random_bool(st.nhs)) {
        identifiers.push(json!({ "use": "official", "system": wk::NHS_NUMBER_SYSTEM, "value": n }));
    }

    let mut r = json!({
        "resourceType": "Patient",
        "id": rec.patient_id,
        "identifier": identifiers,
        "active": !rec.stale,
        "name": [{ "use": "official", "family": family, "given": givens }],
    });

    let mut telecom = Vec::new();
    if let Some(m) = p.mobile.as_ref().filter(|_| rng.random_bool(st.telecom)) {
        telecom.push(phone(m, "mobile"));
    }
    if !telecom.is_empty() {
        r["telecom"] = json!(telecom);
    }

    if rng.random_bool(0.98) {
        r["gender"] = json!(p.gender);
    } else if rng.random_bool(0.5) {
        r["gender"] = json!("unknown");
    }

    if !rng.random_bool(st.no_birth) {
        let (y, m, d) = p.birth.ymd();
        let birth = if d <= 12 && d != m && rng.random_bool(st.day_month_swap) {
            format!("{y:04}-{d:02}-{m:02}")
        } else {
            p.birth.to_string()
        };
        r["birthDate"] = json!(birth);
    }

    let address = if rec.stale {
        p.old_address.as_ref().map(|a| address_json(a, true))
    } else if rng.random_bool(st.no_address) {
        None
    } else if sector == Sector::Police && rng.random_bool(0.03) {
        Some(nfa_address(sector))
    } else {
        let held = match (&p.address, &p.old_address) {
            (Some(_), Some(old)) if rng.random_bool(st.old_address) => Some(old),
            (Some(cur), _) => Some(cur),
            // Housing knew them when they were still housed.
            (None, Some(old)) if sector == Sector::Housing => Some(old),
            (None, _) => None,
        };
        Some(match held {
            Some(a) => address_json(a, !rng.random_bool(st.no_postcode)),
            None => nfa_address(sector),
        })
    };
    if let Some(a) = address {
        r["address"] = json!([a]);
    }

    match (sector, rec.stale) {
        (Sector::PrimaryCare, false) => {
            let gps = orgs::staff_with(rec.org.id, &["gp"]);
            if !gps.is_empty() {
                let gp = *pick(rng, &gps);
                r["generalPractitioner"] = json!([reference_display("Practitioner", gp.id, &gp.display())]);
            }
        }
        (Sector::PrimaryCare, true) => {
            r["generalPractitioner"] = json!([reference("Organization", rec.org.id)]);
        }
        _ => {
            let gp = if rng.random_bool(0.1) { p.old_gp } else { p.gp };
            if let Some(gp) = gp.filter(|_| rng.random_bool(0.6)) {
                r["generalPractitioner"] = json!([reference("Organization", gp)]);
            }
        }
    }
    r["managingOrganization"] = reference_display("Organization", rec.org.id, rec.org.name);
    r
}
