//! The code systems and coded values the engine decides on: sectors, purposes of use,
//! sensitivity labels and UK GDPR lawful bases.

use std::fmt;

/// Base of every carecircle-defined canonical URL.
pub const CC_BASE: &str = "https://carecircle.example.org/fhir";
/// `Organization.type` coding system saying which sector a partner is in (the demo uses it).
pub const SECTOR_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/partner-sector";
/// HL7 v3 ActReason: purposes of use (`TREAT`, `ETREAT`, `HOPERAT`, `HRESCH`, `PUBHLTH`).
pub const PURPOSE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// HL7 v3 ActCode: sensitivity categories (`PSY`, `ETH`, `SDV`, `HIV`).
pub const ACT_CODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// HL7 v3 Confidentiality (`N`, `R`, `V`, ...).
pub const CONFIDENTIALITY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
/// UK GDPR lawful bases (Article 6(1)) and special-category conditions (Article 9(2)).
pub const LAWFUL_BASIS_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/uk-gdpr-lawful-basis";
/// FHIR resource type codes (used in `Consent.provision.class` and agreement data categories).
pub const RESOURCE_TYPES_SYSTEM: &str = "http://hl7.org/fhir/resource-types";

/// The sector a partner organisation works in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// Every sector.
    pub const ALL: [Sector; 8] = [
        Sector::Acute,
        Sector::PrimaryCare,
        Sector::MentalHealth,
        Sector::Ambulance,
        Sector::SocialCare,
        Sector::Police,
        Sector::Housing,
        Sector::Voluntary,
    ];

    /// The code in [`SECTOR_SYSTEM`].
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

    /// The sector for a code in [`SECTOR_SYSTEM`].
    pub fn from_code(code: &str) -> Option<Sector> {
        Sector::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for Sector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why data is being used (HL7 v3 ActReason, the subset partnership agreements name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Purpose {
    /// `TREAT`: direct care.
    #[default]
    Treat,
    /// `ETREAT`: emergency treatment (break-glass).
    EmergencyTreat,
    /// `HOPERAT`: healthcare operations (planning, service management).
    Operations,
    /// `HRESCH`: healthcare research.
    Research,
    /// `PUBHLTH`: public health.
    PublicHealth,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 5] =
        [Purpose::Treat, Purpose::EmergencyTreat, Purpose::Operations, Purpose::Research, Purpose::PublicHealth];

    /// The v3 ActReason code.
    pub const fn code(self) -> &'static str {
        match self {
            Purpose::Treat => "TREAT",
            Purpose::EmergencyTreat => "ETREAT",
            Purpose::Operations => "HOPERAT",
            Purpose::Research => "HRESCH",
            Purpose::PublicHealth => "PUBHLTH",
        }
    }

    /// The purpose for a v3 ActReason code.
    pub fn from_code(code: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.code() == code)
    }

    /// Secondary uses (operations, research, public health), to which the national data
    /// opt-out applies; direct care (`TREAT`, `ETREAT`) never is one.
    pub const fn is_secondary(self) -> bool {
        matches!(self, Purpose::Operations | Purpose::Research | Purpose::PublicHealth)
    }

    /// Plain words for explanations.
    pub const fn describe(self) -> &'static str {
        match self {
            Purpose::Treat => "direct care",
            Purpose::EmergencyTreat => "emergency care (break-glass)",
            Purpose::Operations => "healthcare operations",
            Purpose::Research => "research",
            Purpose::PublicHealth => "public health",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A sensitivity label in `meta.security` that withholds data unless something allows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SensitivityLabel {
    /// v3 ActCode `PSY`: psychiatry / mental health.
    MentalHealth,
    /// v3 ActCode `ETH`: substance abuse.
    SubstanceUse,
    /// v3 ActCode `SDV`: sexual assault, abuse or domestic violence.
    SexualAndDomesticViolence,
    /// v3 ActCode `HIV`.
    Hiv,
    /// v3 Confidentiality `R`: restricted.
    Restricted,
    /// v3 Confidentiality `V`: very restricted.
    VeryRestricted,
}

impl SensitivityLabel {
    /// Every sensitivity label.
    pub const ALL: [SensitivityLabel; 6] = [
        SensitivityLabel::MentalHealth,
        SensitivityLabel::SubstanceUse,
        SensitivityLabel::SexualAndDomesticViolence,
        SensitivityLabel::Hiv,
        SensitivityLabel::Restricted,
        SensitivityLabel::VeryRestricted,
    ];

    /// The code (`PSY`, `ETH`, `SDV`, `HIV`, `R`, `V`).
    pub const fn code(self) -> &'static str {
        match self {
            SensitivityLabel::MentalHealth => "PSY",
            SensitivityLabel::SubstanceUse => "ETH",
            SensitivityLabel::SexualAndDomesticViolence => "SDV",
            SensitivityLabel::Hiv => "HIV",
            SensitivityLabel::Restricted => "R",
            SensitivityLabel::VeryRestricted => "V",
        }
    }

    /// The code system the code belongs to.
    pub const fn system(self) -> &'static str {
        match self {
            SensitivityLabel::Restricted | SensitivityLabel::VeryRestricted => CONFIDENTIALITY_SYSTEM,
            _ => ACT_CODE_SYSTEM,
        }
    }

    /// The label for a `Coding` (system and code); `None` for labels that withhold nothing
    /// (for example Confidentiality `N` normal).
    pub fn from_coding(system: &str, code: &str) -> Option<SensitivityLabel> {
        SensitivityLabel::ALL.into_iter().find(|l| l.system() == system && l.code() == code)
    }

    /// The bit of this label in a [`LabelSet`].
    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for SensitivityLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A small set of [`SensitivityLabel`]s (a bit set: copying and comparing it costs nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct LabelSet(u8);

impl LabelSet {
    /// No labels.
    pub const EMPTY: LabelSet = LabelSet(0);
    /// Every label.
    pub const ALL: LabelSet = LabelSet(0b11_1111);

    /// The set's bits (one per label, in [`SensitivityLabel::ALL`] order).
    pub(crate) const fn bits(self) -> u8 {
        self.0
    }

    /// The set with these bits (bits beyond the known labels are dropped).
    pub(crate) const fn from_bits(bits: u8) -> LabelSet {
        LabelSet(bits & LabelSet::ALL.0)
    }

    /// The set of `labels`.
    pub fn of(labels: &[SensitivityLabel]) -> LabelSet {
        labels.iter().fold(LabelSet::EMPTY, |s, l| s.with(*l))
    }

    /// This set with `label` added.
    pub const fn with(self, label: SensitivityLabel) -> LabelSet {
        LabelSet(self.0 | label.bit())
    }

    /// True when `label` is in the set.
    pub const fn contains(self, label: SensitivityLabel) -> bool {
        self.0 & label.bit() != 0
    }

    /// True when every label of `other` is in this set.
    pub const fn contains_all(self, other: LabelSet) -> bool {
        other.0 & !self.0 == 0
    }

    /// Labels in both sets.
    pub const fn intersection(self, other: LabelSet) -> LabelSet {
        LabelSet(self.0 & other.0)
    }

    /// Labels in either set.
    pub const fn union(self, other: LabelSet) -> LabelSet {
        LabelSet(self.0 | other.0)
    }

    /// Labels of this set that are not in `other`.
    pub const fn minus(self, other: LabelSet) -> LabelSet {
        LabelSet(self.0 & !other.0)
    }

    /// True when the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The labels, in [`SensitivityLabel::ALL`] order.
    pub fn to_vec(self) -> Vec<SensitivityLabel> {
        SensitivityLabel::ALL.into_iter().filter(|l| self.contains(*l)).collect()
    }
}

/// Whether a lawful basis is an Article 6(1) basis or an Article 9(2) condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LawfulBasisArticle {
    /// UK GDPR Article 6(1): lawfulness of processing.
    Article6,
    /// UK GDPR Article 9(2): processing of special categories (health data is one).
    Article9,
}

/// One UK GDPR lawful basis, coded in [`LAWFUL_BASIS_SYSTEM`] as `6(1)(e)` or `9(2)(h)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LawfulBasis {
    /// Article 6 or Article 9.
    pub article: LawfulBasisArticle,
    /// The code, for example `6(1)(e)`.
    pub code: String,
}

impl LawfulBasis {
    /// Parse `6(1)(a)`–`6(1)(f)` or `9(2)(a)`–`9(2)(j)`.
    pub fn from_code(code: &str) -> Option<LawfulBasis> {
        let (article, letters) = if let Some(rest) = code.strip_prefix("6(1)(") {
            (LawfulBasisArticle::Article6, ('a'..='f', rest))
        } else if let Some(rest) = code.strip_prefix("9(2)(") {
            (LawfulBasisArticle::Article9, ('a'..='j', rest))
        } else {
            return None;
        };
        let (range, rest) = letters;
        let mut chars = rest.chars();
        let letter = chars.next()?;
        if chars.as_str() != ")" || !range.contains(&letter) {
            return None;
        }
        Some(LawfulBasis { article, code: code.to_string() })
    }
}

impl fmt::Display for LawfulBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Art {}", self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lawful_basis_codes_parse_only_real_articles() {
        assert_eq!(LawfulBasis::from_code("6(1)(e)").map(|b| b.article), Some(LawfulBasisArticle::Article6));
        assert_eq!(LawfulBasis::from_code("9(2)(h)").map(|b| b.article), Some(LawfulBasisArticle::Article9));
        assert_eq!(LawfulBasis::from_code("6(1)(g)"), None);
        assert_eq!(LawfulBasis::from_code("9(2)(k)"), None);
        assert_eq!(LawfulBasis::from_code("9(2)(h"), None);
        assert_eq!(LawfulBasis::from_code("7(1)(a)"), None);
    }

    #[test]
    fn label_sets_behave_as_sets() {
        let psy_eth = LabelSet::of(&[SensitivityLabel::MentalHealth, SensitivityLabel::SubstanceUse]);
        assert!(psy_eth.contains_all(LabelSet::of(&[SensitivityLabel::MentalHealth])));
        assert!(!psy_eth.contains_all(LabelSet::of(&[SensitivityLabel::Hiv])));
        assert!(psy_eth.contains_all(LabelSet::EMPTY));
        assert_eq!(
            psy_eth.minus(LabelSet::of(&[SensitivityLabel::MentalHealth])).to_vec(),
            vec![SensitivityLabel::SubstanceUse]
        );
        assert_eq!(LabelSet::ALL.to_vec().len(), 6);
    }

    #[test]
    fn label_codings_need_the_right_system() {
        assert_eq!(SensitivityLabel::from_coding(ACT_CODE_SYSTEM, "PSY"), Some(SensitivityLabel::MentalHealth));
        assert_eq!(SensitivityLabel::from_coding(CONFIDENTIALITY_SYSTEM, "R"), Some(SensitivityLabel::Restricted));
        assert_eq!(SensitivityLabel::from_coding(ACT_CODE_SYSTEM, "R"), None);
        assert_eq!(SensitivityLabel::from_coding(CONFIDENTIALITY_SYSTEM, "N"), None);
    }
}
