//! The partner organisations, their teams, and their staff (fixed for every seed).

use carecircle_access::engine::DEFAULT_BREAK_GLASS_ROLES;
use serde_json::{json, Value};

use crate::fhir::{cc_concept, concept, email, phone, reference, reference_display};
use crate::well_known as wk;

/// The sector a partner works in (`Organization.type`, system [`wk::SECTOR_SYSTEM`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sector {
    /// Acute hospital.
    Acute,
    /// GP practice.
    PrimaryCare,
    /// Mental-health trust.
    MentalHealth,
    /// Ambulance service.
    Ambulance,
    /// Council adult social care.
    SocialCare,
    /// Police.
    Police,
    /// Housing provider.
    Housing,
    /// Voluntary organisation.
    Voluntary,
}

impl Sector {
    /// The code in the partner-sector CodeSystem.
    pub const fn code(self) -> &'static str {
        match self {
            Sector::Acute => "acute",
            Sector::PrimaryCare => "primary-care",
            Sector::MentalHealth => "mental-health",
            Sector::Ambulance => "ambulance",
            Sector::SocialCare => "social-care",
            Sector::Police => "police",
            Sector::Housing => "housing",
            Sector::Voluntary => "voluntary",
        }
    }

    /// The display for [`Sector::code`].
    pub const fn display(self) -> &'static str {
        match self {
            Sector::Acute => "Acute hospital",
            Sector::PrimaryCare => "Primary care",
            Sector::MentalHealth => "Mental health",
            Sector::Ambulance => "Ambulance service",
            Sector::SocialCare => "Adult social care",
            Sector::Police => "Police",
            Sector::Housing => "Housing",
            Sector::Voluntary => "Voluntary sector",
        }
    }

    /// True for NHS health partners, who look up and record NHS numbers routinely.
    pub const fn is_health(self) -> bool {
        matches!(self, Sector::Acute | Sector::PrimaryCare | Sector::MentalHealth | Sector::Ambulance)
    }
}

/// One organisation: a partner (custodian of records) or a team inside one (`partOf`).
pub struct OrgDef {
    /// Resource id.
    pub id: &'static str,
    /// Official name.
    pub name: &'static str,
    /// Partner code, the value of the Organization's identifier.
    pub code: &'static str,
    /// Sector.
    pub sector: Sector,
    /// Code and display in `http://terminology.hl7.org/CodeSystem/organization-type`.
    pub hl7_type: (&'static str, &'static str),
    /// The partner this team belongs to, for teams.
    pub parent: Option<&'static str>,
    /// Switchboard telephone (Ofcom drama range).
    pub phone: &'static str,
    /// Email domain (under example.org).
    pub domain: &'static str,
    /// Address line, town and postcode.
    pub address: (&'static str, &'static str, &'static str),
    /// Prefix of the local patient identifier, and its digit count.
    pub local_id: (&'static str, usize),
}

impl OrgDef {
    /// The partner that is custodian of this organisation's records (itself, or its parent).
    pub fn custodian(&self) -> &'static str {
        self.parent.unwrap_or(self.id)
    }

    /// The id without its `org-` prefix, used inside other resources' ids.
    pub fn short(&self) -> &'static str {
        self.id.strip_prefix("org-").unwrap_or(self.id)
    }
}

/// Every organisation: partners, each followed by its teams.
pub const ORGS: &[OrgDef] = &[
    OrgDef {
        id: wk::ORG_HOSPITAL,
        name: "Minsterford Hospital NHS Foundation Trust",
        code: "MFH",
        sector: Sector::Acute,
        hl7_type: ("prov", "Healthcare Provider"),
        parent: None,
        phone: "01632 960100",
        domain: "minsterford-hospital.example.org",
        address: ("Wigginton Road", "Minsterford", "MF3 7HE"),
        local_id: ("M", 7),
    },
    OrgDef {
        id: wk::ORG_HOSPITAL_ED,
        name: "Minsterford Hospital Emergency Department",
        code: "MFH-ED",
        sector: Sector::Acute,
        hl7_type: ("dept", "Hospital Department"),
        parent: Some(wk::ORG_HOSPITAL),
        phone: "01632 960101",
        domain: "minsterford-hospital.example.org",
        address: ("Wigginton Road", "Minsterford", "MF3 7HE"),
        local_id: ("M", 7),
    },
    OrgDef {
        id: wk::ORG_GP_ASHGROVE,
        name: "Ashgrove Surgery",
        code: "GP-ASH",
        sector: Sector::PrimaryCare,
        hl7_type: ("prov", "Healthcare Provider"),
        parent: None,
        phone: "01632 960110",
        domain: "ashgrove-surgery.example.org",
        address: ("2 Ashgrove Parade", "Minsterford", "MF2 4PD"),
        local_id: ("", 6),
    },
    OrgDef {
        id: wk::ORG_GP_RIVERSIDE,
        name: "Riverside Medical Practice",
        code: "GP-RIV",
        sector: Sector::PrimaryCare,
        hl7_type: ("prov", "Healthcare Provider"),
        parent: None,
        phone: "01632 960120",
        domain: "riverside-practice.example.org",
        address: ("41 Water Lane", "Kettleby", "MF7 2RL"),
        local_id: ("R", 6),
    },
    OrgDef {
        id: wk::ORG_GP_MILLFIELD,
        name: "Millfield Health Centre",
        code: "GP-MIL",
        sector: Sector::PrimaryCare,
        hl7_type: ("prov", "Healthcare Provider"),
        parent: None,
        phone: "01632 960130",
        domain: "millfield-hc.example.org",
        address: ("Millfield Road", "Elderwick", "MF12 5HW"),
        local_id: ("", 5),
    },
    OrgDef {
        id: wk::ORG_MH_TRUST,
        name: "Vale Mental Health NHS Foundation Trust",
        code: "VMH",
        sector: Sector::MentalHealth,
        hl7_type: ("prov", "Healthcare Provider"),
        parent: None,
        phone: "01632 960140",
        domain: "vale-mh.example.org",
        address: ("Foss Park, Haxby Road", "Minsterford", "MF1 9SA"),
        local_id: ("VMH", 6),
    },
    OrgDef {
        id: wk::ORG_CRISIS_TEAM,
        name: "Vale Crisis Resolution and Home Treatment Team",
        code: "VMH-CRHT",
        sector: Sector::MentalHealth,
        hl7_type: ("team", "Organizational team"),
        parent: Some(wk::ORG_MH_TRUST),
        phone: "01632 960141",
        domain: "vale-mh.example.org",
        address: ("Foss Park, Haxby Road", "Minsterford", "MF1 9SA"),
        local_id: ("VMH", 6),
    },
    OrgDef {
        id: wk::ORG_AMBULANCE,
        name: "Northvale Ambulance Service NHS Trust",
        code: "NVAS",
        sector: Sector::Ambulance,
        hl7_type: ("prov", "Healthcare Provider"),
        parent: None,
        phone: "01632 960150",
        domain: "northvale-ambulance.example.org",
        address: ("Brindley Way", "Wharram Stoke", "MF10 3AS"),
        local_id: ("NVA", 7),
    },
    OrgDef {
        id: wk::ORG_SOCIAL_CARE,
        name: "Minsterford City Council Adult Social Care",
        code: "MCC-ASC",
        sector: Sector::SocialCare,
        hl7_type: ("govt", "Government"),
        parent: None,
        phone: "01632 960160",
        domain: "minsterford-council.example.org",
        address: ("West Offices, Station Rise", "Minsterford", "MF1 6GA"),
        local_id: ("", 7),
    },
    OrgDef {
        id: wk::ORG_POLICE,
        name: "Northvale Police",
        code: "NVP",
        sector: Sector::Police,
        hl7_type: ("govt", "Government"),
        parent: None,
        phone: "01632 960170",
        domain: "northvale-police.example.org",
        address: ("Fulford Road", "Minsterford", "MF5 4BL"),
        local_id: ("NVP", 7),
    },
    OrgDef {
        id: wk::ORG_POLICE_MH_LIAISON,
        name: "Northvale Police Mental Health Liaison Team",
        code: "NVP-MHL",
        sector: Sector::Police,
        hl7_type: ("team", "Organizational team"),
        parent: Some(wk::ORG_POLICE),
        phone: "01632 960171",
        domain: "northvale-police.example.org",
        address: ("Fulford Road", "Minsterford", "MF5 4BL"),
        local_id: ("NVP", 7),
    },
    OrgDef {
        id: wk::ORG_HOUSING,
        name: "Kettlebeck Homes Housing Association",
        code: "KBH",
        sector: Sector::Housing,
        hl7_type: ("other", "Other"),
        parent: None,
        phone: "01632 960180",
        domain: "kettlebeck-homes.example.org",
        address: ("1 Saltergate Court", "Kettleby", "MF8 1SG"),
        local_id: ("T", 6),
    },
    OrgDef {
        id: wk::ORG_PATHWAYS,
        name: "Minsterford Pathways",
        code: "MPW",
        sector: Sector::Voluntary,
        hl7_type: ("cg", "Community Group"),
        parent: None,
        phone: "01632 960190",
        domain: "minsterford-pathways.example.org",
        address: ("12 Chapel Street", "Minsterford", "MF1 7CS"),
        local_id: ("PW", 5),
    },
    OrgDef {
        id: wk::ORG_BEFRIENDERS,
        name: "Vale Community Befrienders",
        code: "VCB",
        sector: Sector::Voluntary,
        hl7_type: ("cg", "Community Group"),
        parent: None,
        phone: "01632 960195",
        domain: "vale-befrienders.example.org",
        address: ("The Old Chapel, Priory Lane", "Elderwick", "MF13 2PL"),
        local_id: ("VCB", 5),
    },
];

/// Look an organisation up by id.
pub fn org(id: &str) -> Option<&'static OrgDef> {
    ORGS.iter().find(|o| o.id == id)
}

/// The partners only (organisations that hold records), in [`ORGS`] order.
pub fn partners() -> impl Iterator<Item = &'static OrgDef> {
    ORGS.iter().filter(|o| o.parent.is_none())
}

/// One member of staff.
pub struct StaffDef {
    /// Practitioner id; the PractitionerRole id is the same with `role-` for `prac-`.
    pub id: &'static str,
    /// The organisation (partner or team) the role is in.
    pub org: &'static str,
    /// Title, given name, family name.
    pub name: (&'static str, &'static str, &'static str),
    /// `male` or `female`.
    pub gender: &'static str,
    /// Code and display in the staff-role CodeSystem.
    pub role: (&'static str, &'static str),
    /// Code and display in the specialty CodeSystem.
    pub specialty: (&'static str, &'static str),
}

impl StaffDef {
    /// The PractitionerRole id.
    pub fn role_id(&self) -> String {
        format!("role-{}", self.id.strip_prefix("prac-").unwrap_or(self.id))
    }

    /// True for governance roles ([`GOVERNANCE_ROLES`]).
    pub fn is_governance(&self) -> bool {
        GOVERNANCE_ROLES.contains(&self.role.0)
    }

    /// True when the role may break the glass under the partnership's scheme
    /// (`carecircle_access::engine::DEFAULT_BREAK_GLASS_ROLES`).
    pub fn can_break_glass(&self) -> bool {
        DEFAULT_BREAK_GLASS_ROLES.contains(&self.role.0)
    }

    /// "Title Given Family".
    pub fn display(&self) -> String {
        let (title, given, family) = self.name;
        format!("{title} {given} {family}")
    }
}

const ED: (&str, &str) = ("emergency-medicine", "Emergency medicine");
const GP: (&str, &str) = ("general-practice", "General practice");
const MH: (&str, &str) = ("community-mental-health", "Community mental health");
const CRISIS: (&str, &str) = ("crisis-care", "Mental health crisis care");
const PREHOSP: (&str, &str) = ("pre-hospital-care", "Pre-hospital emergency care");
const ASC: (&str, &str) = ("adult-social-care", "Adult social care");
const POLICE_MH: (&str, &str) = ("police-mental-health", "Police mental health liaison");
const HOUSING: (&str, &str) = ("housing-support", "Housing and tenancy support");
const PEER: (&str, &str) = ("mental-distress-support", "Support for adults in mental distress");
const BEFRIEND: (&str, &str) = ("befriending", "Befriending and social contact");
const GOVERNANCE: (&str, &str) = ("information-governance", "Information governance and data protection");
const IG_LEAD: (&str, &str) = ("information-governance-lead", "Information governance lead (data protection officer)");

/// Role codes of governance staff: they sign agreements and review access, and are never
/// picked as the member of staff who saw a person.
pub const GOVERNANCE_ROLES: [&str; 2] = ["governance-lead", "information-governance-lead"];

/// Every member of staff, grouped by organisation.
pub const STAFF: &[StaffDef] = &[
    StaffDef {
        id: wk::ED_NURSE,
        org: wk::ORG_HOSPITAL_ED,
        name: ("Mr", "Callum", "Brightside"),
        gender: "male",
        role: ("ed-nurse", "Emergency department nurse"),
        specialty: ED,
    },
    StaffDef {
        id: "prac-minsterford-hospital-02",
        org: wk::ORG_HOSPITAL_ED,
        name: ("Dr", "Anika", "Sorensen"),
        gender: "female",
        role: ("ed-consultant", "Emergency medicine consultant"),
        specialty: ED,
    },
    StaffDef {
        id: "prac-minsterford-hospital-03",
        org: wk::ORG_HOSPITAL_ED,
        name: ("Ms", "Hollie", "Tranmere"),
        gender: "female",
        role: ("ed-nurse", "Emergency department nurse"),
        specialty: ED,
    },
    StaffDef {
        id: "prac-minsterford-hospital-04",
        org: wk::ORG_HOSPITAL,
        name: ("Mr", "Desmond", "Achterberg"),
        gender: "male",
        role: ("liaison-psychiatry-nurse", "Liaison psychiatry nurse"),
        specialty: MH,
    },
    StaffDef {
        id: "prac-minsterford-hospital-05",
        org: wk::ORG_HOSPITAL,
        name: ("Ms", "Rosalind", "Quarmby"),
        gender: "female",
        role: ("discharge-coordinator", "Discharge coordinator"),
        specialty: ("acute-medicine", "Acute medicine"),
    },
    StaffDef {
        id: wk::JOE_GP,
        org: wk::ORG_GP_ASHGROVE,
        name: ("Dr", "Helen", "Varley"),
        gender: "female",
        role: ("gp", "General practitioner"),
        specialty: GP,
    },
    StaffDef {
        id: "prac-gp-ashgrove-02",
        org: wk::ORG_GP_ASHGROVE,
        name: ("Dr", "Rajesh", "Mistry"),
        gender: "male",
        role: ("gp", "General practitioner"),
        specialty: GP,
    },
    StaffDef {
        id: "prac-gp-ashgrove-03",
        org: wk::ORG_GP_ASHGROVE,
        name: ("Ms", "Tanya", "Blakey"),
        gender: "female",
        role: ("practice-nurse", "Practice nurse"),
        specialty: GP,
    },
    StaffDef {
        id: "prac-gp-riverside-01",
        org: wk::ORG_GP_RIVERSIDE,
        name: ("Dr", "Owen", "Pritchett"),
        gender: "male",
        role: ("gp", "General practitioner"),
        specialty: GP,
    },
    StaffDef {
        id: "prac-gp-riverside-02",
        org: wk::ORG_GP_RIVERSIDE,
        name: ("Dr", "Farah", "Qureshi"),
        gender: "female",
        role: ("gp", "General practitioner"),
        specialty: GP,
    },
    StaffDef {
        id: "prac-gp-riverside-03",
        org: wk::ORG_GP_RIVERSIDE,
        name: ("Mr", "Liam", "Stockdale"),
        gender: "male",
        role: ("practice-nurse", "Practice nurse"),
        specialty: GP,
    },
    StaffDef {
        id: "prac-gp-millfield-01",
        org: wk::ORG_GP_MILLFIELD,
        name: ("Dr", "Miriam", "Cawood"),
        gender: "female",
        role: ("gp", "General practitioner"),
        specialty: GP,
    },
    StaffDef {
        id: "prac-gp-millfield-02",
        org: wk::ORG_GP_MILLFIELD,
        name: ("Dr", "Simon", "Ellerby"),
        gender: "male",
        role: ("gp", "General practitioner"),
        specialty: GP,
    },
    StaffDef {
        id: "prac-gp-millfield-03",
        org: wk::ORG_GP_MILLFIELD,
        name: ("Ms", "Gwen", "Halloran"),
        gender: "female",
        role: ("practice-nurse", "Practice nurse"),
        specialty: GP,
    },
    StaffDef {
        id: wk::JOE_CARE_COORDINATOR,
        org: wk::ORG_MH_TRUST,
        name: ("Ms", "Ruth", "Oyelaran"),
        gender: "female",
        role: ("care-coordinator", "Care coordinator"),
        specialty: MH,
    },
    StaffDef {
        id: "prac-vale-mh-trust-02",
        org: wk::ORG_MH_TRUST,
        name: ("Mr", "Stuart", "Fenwick"),
        gender: "male",
        role: ("care-coordinator", "Care coordinator"),
        specialty: MH,
    },
    StaffDef {
        id: "prac-vale-mh-trust-03",
        org: wk::ORG_MH_TRUST,
        name: ("Dr", "Leena", "Varghese"),
        gender: "female",
        role: ("consultant-psychiatrist", "Consultant psychiatrist"),
        specialty: MH,
    },
    StaffDef {
        id: wk::CRISIS_WORKER,
        org: wk::ORG_CRISIS_TEAM,
        name: ("Mr", "Aaron", "Whitlock"),
        gender: "male",
        role: ("crisis-worker", "Crisis team practitioner"),
        specialty: CRISIS,
    },
    StaffDef {
        id: "prac-vale-mh-trust-05",
        org: wk::ORG_CRISIS_TEAM,
        name: ("Ms", "Bethan", "Llewellyn"),
        gender: "female",
        role: ("crisis-worker", "Crisis team practitioner"),
        specialty: CRISIS,
    },
    StaffDef {
        id: "prac-vale-mh-trust-06",
        org: wk::ORG_CRISIS_TEAM,
        name: ("Ms", "Nkechi", "Ardern"),
        gender: "female",
        role: ("team-manager", "Crisis team manager"),
        specialty: CRISIS,
    },
    StaffDef {
        id: wk::PARAMEDIC,
        org: wk::ORG_AMBULANCE,
        name: ("Mr", "Gethin", "Parry"),
        gender: "male",
        role: ("paramedic", "Paramedic"),
        specialty: PREHOSP,
    },
    StaffDef {
        id: "prac-northvale-ambulance-02",
        org: wk::ORG_AMBULANCE,
        name: ("Ms", "Kerry", "Lofthouse"),
        gender: "female",
        role: ("mental-health-paramedic", "Mental health paramedic"),
        specialty: PREHOSP,
    },
    StaffDef {
        id: "prac-northvale-ambulance-03",
        org: wk::ORG_AMBULANCE,
        name: ("Mr", "Jordan", "Eastwood"),
        gender: "male",
        role: ("emergency-care-assistant", "Emergency care assistant"),
        specialty: PREHOSP,
    },
    StaffDef {
        id: wk::SOCIAL_WORKER,
        org: wk::ORG_SOCIAL_CARE,
        name: ("Ms", "Donna", "Akhtar"),
        gender: "female",
        role: ("social-worker", "Social worker"),
        specialty: ASC,
    },
    StaffDef {
        id: "prac-minsterford-council-asc-02",
        org: wk::ORG_SOCIAL_CARE,
        name: ("Mr", "Philip", "Garside"),
        gender: "male",
        role: ("social-worker", "Social worker"),
        specialty: ASC,
    },
    StaffDef {
        id: "prac-minsterford-council-asc-03",
        org: wk::ORG_SOCIAL_CARE,
        name: ("Ms", "Imogen", "Threlfall"),
        gender: "female",
        role: ("occupational-therapist", "Occupational therapist"),
        specialty: ASC,
    },
    StaffDef {
        id: "prac-minsterford-council-asc-04",
        org: wk::ORG_SOCIAL_CARE,
        name: ("Mr", "Adrian", "Kilburn"),
        gender: "male",
        role: ("care-manager", "Care manager"),
        specialty: ASC,
    },
    StaffDef {
        id: wk::POLICE_LIAISON_OFFICER,
        org: wk::ORG_POLICE_MH_LIAISON,
        name: ("PC", "Martin", "Holgate"),
        gender: "male",
        role: ("police-liaison-officer", "Police mental health liaison officer"),
        specialty: POLICE_MH,
    },
    StaffDef {
        id: "prac-northvale-police-02",
        org: wk::ORG_POLICE_MH_LIAISON,
        name: ("PC", "Sian", "Redfearn"),
        gender: "female",
        role: ("police-liaison-officer", "Police mental health liaison officer"),
        specialty: POLICE_MH,
    },
    StaffDef {
        id: "prac-northvale-police-03",
        org: wk::ORG_POLICE_MH_LIAISON,
        name: ("Sgt", "Colin", "Mawson"),
        gender: "male",
        role: ("police-sergeant", "Mental health liaison sergeant"),
        specialty: POLICE_MH,
    },
    StaffDef {
        id: wk::HOUSING_CASEWORKER,
        org: wk::ORG_HOUSING,
        name: ("Ms", "Paula", "Dinsdale"),
        gender: "female",
        role: ("housing-caseworker", "Housing caseworker"),
        specialty: HOUSING,
    },
    StaffDef {
        id: "prac-kettlebeck-homes-02",
        org: wk::ORG_HOUSING,
        name: ("Mr", "Yusuf", "Chaudhry"),
        gender: "male",
        role: ("tenancy-support-officer", "Tenancy support officer"),
        specialty: HOUSING,
    },
    StaffDef {
        id: "prac-kettlebeck-homes-03",
        org: wk::ORG_HOUSING,
        name: ("Ms", "Orla", "Brennan"),
        gender: "female",
        role: ("neighbourhood-officer", "Neighbourhood officer"),
        specialty: HOUSING,
    },
    StaffDef {
        id: wk::PATHWAYS_WORKER,
        org: wk::ORG_PATHWAYS,
        name: ("Ms", "Kirsty", "Ambler"),
        gender: "female",
        role: ("pathways-worker", "Pathways support worker"),
        specialty: PEER,
    },
    StaffDef {
        id: "prac-minsterford-pathways-02",
        org: wk::ORG_PATHWAYS,
        name: ("Mr", "Dale", "Whitaker"),
        gender: "male",
        role: ("peer-mentor", "Peer mentor"),
        specialty: PEER,
    },
    StaffDef {
        id: "prac-minsterford-pathways-03",
        org: wk::ORG_PATHWAYS,
        name: ("Ms", "Harriet", "Coverdale"),
        gender: "female",
        role: ("service-manager", "Service manager"),
        specialty: PEER,
    },
    StaffDef {
        id: "prac-vale-befrienders-01",
        org: wk::ORG_BEFRIENDERS,
        name: ("Mrs", "Jean", "Featherstone"),
        gender: "female",
        role: ("volunteer-coordinator", "Volunteer coordinator"),
        specialty: BEFRIEND,
    },
    StaffDef {
        id: "prac-vale-befrienders-02",
        org: wk::ORG_BEFRIENDERS,
        name: ("Mr", "Reuben", "Hatfield"),
        gender: "male",
        role: ("befriender", "Befriender"),
        specialty: BEFRIEND,
    },
    StaffDef {
        id: "prac-vale-befrienders-03",
        org: wk::ORG_BEFRIENDERS,
        name: ("Ms", "Lorna", "Sowerby"),
        gender: "female",
        role: ("befriender", "Befriender"),
        specialty: BEFRIEND,
    },
    // Governance staff, after the care staff so that every earlier index (phone numbers,
    // staff identifiers) stays the same. Each partner's information-governance lead signs its
    // agreements; the partnership's governance lead is employed by the council, which hosts
    // the partnership office.
    StaffDef {
        id: wk::IG_LEAD_HOSPITAL,
        org: wk::ORG_HOSPITAL,
        name: ("Ms", "Philippa", "Rowntree"),
        gender: "female",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::IG_LEAD_GP_ASHGROVE,
        org: wk::ORG_GP_ASHGROVE,
        name: ("Mr", "Gareth", "Lumley"),
        gender: "male",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::IG_LEAD_GP_RIVERSIDE,
        org: wk::ORG_GP_RIVERSIDE,
        name: ("Mrs", "Denise", "Oldroyd"),
        gender: "female",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::IG_LEAD_GP_MILLFIELD,
        org: wk::ORG_GP_MILLFIELD,
        name: ("Mr", "Nathan", "Bramall"),
        gender: "male",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::IG_LEAD_MH_TRUST,
        org: wk::ORG_MH_TRUST,
        name: ("Dr", "Fiona", "Castellan"),
        gender: "female",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::IG_LEAD_AMBULANCE,
        org: wk::ORG_AMBULANCE,
        name: ("Mr", "Terence", "Udall"),
        gender: "male",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::IG_LEAD_SOCIAL_CARE,
        org: wk::ORG_SOCIAL_CARE,
        name: ("Ms", "Abigail", "Wharton"),
        gender: "female",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::IG_LEAD_POLICE,
        org: wk::ORG_POLICE,
        name: ("Mr", "Graham", "Sutcliffe"),
        gender: "male",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::IG_LEAD_HOUSING,
        org: wk::ORG_HOUSING,
        name: ("Ms", "Rachel", "Etherington"),
        gender: "female",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::IG_LEAD_PATHWAYS,
        org: wk::ORG_PATHWAYS,
        name: ("Mr", "Owen", "Tindall"),
        gender: "male",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::IG_LEAD_BEFRIENDERS,
        org: wk::ORG_BEFRIENDERS,
        name: ("Mrs", "Pauline", "Hebden"),
        gender: "female",
        role: IG_LEAD,
        specialty: GOVERNANCE,
    },
    StaffDef {
        id: wk::GOVERNANCE_LEAD,
        org: wk::GOVERNANCE_HOST_ORG,
        name: ("Dr", "Sunita", "Ramaswamy"),
        gender: "female",
        role: ("governance-lead", "Partnership information governance lead"),
        specialty: GOVERNANCE,
    },
];

/// Care staff (not governance staff) whose role is in `org_id` or in one of its teams.
pub fn staff_of(org_id: &str) -> impl Iterator<Item = &'static StaffDef> + '_ {
    STAFF.iter().filter(move |s| {
        !s.is_governance() && (s.org == org_id || org(s.org).is_some_and(|o| o.parent == Some(org_id)))
    })
}

/// The information-governance lead of a partner, who signs its agreements.
pub fn ig_lead_of(partner_id: &str) -> Option<&'static StaffDef> {
    STAFF.iter().find(|s| s.role.0 == IG_LEAD.0 && s.org == partner_id)
}

/// Staff whose role is exactly in `org_id` (a partner or a team) and who have one of `roles`.
pub fn staff_with(org_id: &str, roles: &[&str]) -> Vec<&'static StaffDef> {
    STAFF.iter().filter(|s| s.org == org_id && roles.contains(&s.role.0)).collect()
}

/// Look a member of staff up by Practitioner id.
pub fn staff(id: &str) -> Option<&'static StaffDef> {
    STAFF.iter().find(|s| s.id == id)
}

/// The Organization resource for `o`.
pub fn organization_resource(o: &OrgDef) -> Value {
    let (line, city, postcode) = o.address;
    let mut r = json!({
        "resourceType": "Organization",
        "id": o.id,
        "identifier": [{
            "use": "official",
            "system": wk::PARTNER_CODE_SYSTEM,
            "value": o.code,
        }],
        "active": true,
        "type": [
            {
                "coding": [{
                    "system": wk::SECTOR_SYSTEM,
                    "code": o.sector.code(),
                    "display": o.sector.display(),
                }],
                "text": o.sector.display(),
            },
            concept("http://terminology.hl7.org/CodeSystem/organization-type", o.hl7_type.0, o.hl7_type.1),
        ],
        "name": o.name,
        "telecom": [
            phone(o.phone, "work"),
            email(&format!("enquiries@{}", o.domain)),
        ],
        "address": [{
            "use": "work",
            "type": "physical",
            "line": [line],
            "city": city,
            "postalCode": postcode,
            "country": "GB",
        }],
    });
    if let Some(parent) = o.parent {
        r["partOf"] = reference("Organization", parent);
    }
    // The hospital's patient administration system sends ADT messages over MLLP.
    if o.id == wk::ORG_HOSPITAL {
        if let Some(identifiers) = r["identifier"].as_array_mut() {
            identifiers.push(
                json!({ "use": "secondary", "system": wk::HL7_FACILITY_SYSTEM, "value": wk::HOSPITAL_HL7_FACILITY }),
            );
        }
    }
    r
}

/// The Practitioner resource for `s`.
pub fn practitioner_resource(s: &StaffDef, index: usize) -> Value {
    let (title, given, family) = s.name;
    let domain = org(s.org).map_or("example.org", |o| o.domain);
    let custodian = org(s.org).map_or(s.org, OrgDef::custodian);
    json!({
        "resourceType": "Practitioner",
        "id": s.id,
        "identifier": [{
            "system": format!("{}/id/{custodian}/staff", crate::fhir::CC_BASE),
            "value": format!("S{:05}", 10_000 + index * 37),
        }],
        "active": true,
        "name": [{ "use": "official", "family": family, "given": [given], "prefix": [title] }],
        "telecom": [
            phone(&staff_phone(index), "work"),
            email(&format!("{}.{}@{domain}", given.to_lowercase(), family.to_lowercase())),
        ],
        "gender": s.gender,
    })
}

/// The PractitionerRole resource for `s`.
pub fn practitioner_role_resource(s: &StaffDef, index: usize) -> Value {
    let org_name = org(s.org).map_or("", |o| o.name);
    let mut r = json!({
        "resourceType": "PractitionerRole",
        "id": s.role_id(),
        "active": true,
        "period": { "start": "2020-04-01" },
        "practitioner": reference_display("Practitioner", s.id, &s.display()),
        "organization": reference_display("Organization", s.org, org_name),
        "code": [cc_concept("staff-role", s.role.0, s.role.1)],
        "specialty": [cc_concept("specialty", s.specialty.0, s.specialty.1)],
        "telecom": [phone(&staff_phone(index), "work")],
    });
    if s.can_break_glass() {
        // The same roles the access engine lets break the glass; the server reads this
        // extension too, so a token for this user may ask for ETREAT.
        r["extension"] = json!([{ "url": wk::BREAK_GLASS_EXTENSION_URL, "valueBoolean": true }]);
    }
    r
}

/// A direct-dial number in the Ofcom drama range 01632 960000–960999.
fn staff_phone(index: usize) -> String {
    format!("01632 960{:03}", 400 + index)
}
