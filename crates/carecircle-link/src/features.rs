//! The normalised form of a record that blocking and comparison work on: folded names with their
//! phonetic codes and nickname groups, normalised postcode, phone and identifier.

use std::sync::LazyLock;

use rphonetic::DoubleMetaphone;

use crate::nicknames::nickname_groups;
use crate::normalise::{
    fold_text, is_valid_nhs_number, name_words, normalise_national_id, normalise_phone, normalise_postcode,
};
use crate::record::{BirthDate, Sex, SourceRecord};

static DOUBLE_METAPHONE: LazyLock<DoubleMetaphone> = LazyLock::new(DoubleMetaphone::default);

/// A record's comparable form. Empty strings and zero codes stand for missing values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// First given name, folded.
    pub given: Box<str>,
    /// Further given names, folded, space-separated.
    pub middle: Box<str>,
    /// Family name, folded, words joined without spaces ("smith jones" → "smithjones").
    pub family: Box<str>,
    /// Double Metaphone primary and alternate codes of the first given name (packed ASCII).
    pub given_phonetic: [u32; 2],
    /// Double Metaphone primary and alternate codes of the family name (packed ASCII).
    pub family_phonetic: [u32; 2],
    /// Nickname groups of the first given name.
    pub given_groups: &'static [u32],
    /// Date of birth.
    pub birth_date: Option<BirthDate>,
    /// Recorded sex.
    pub sex: Option<Sex>,
    /// House number or name, folded.
    pub house_number: Box<str>,
    /// Street, folded, common abbreviations expanded.
    pub street: Box<str>,
    /// Town, folded.
    pub city: Box<str>,
    /// Postcode without spaces, upper case.
    pub postcode: Box<str>,
    /// UK outward code, empty for other codes.
    pub outward: Box<str>,
    /// Telephone digits.
    pub phone: Box<str>,
    /// National identifier, normalised.
    pub national_id: Box<str>,
    /// Whether the national identifier is a valid NHS number.
    pub national_id_valid: bool,
    /// Whether the identifier counts as verified: the partner says so and it passes the check.
    pub national_id_verified: bool,
}

/// Packs a phonetic code of at most four ASCII characters into a `u32` (0 for empty).
fn pack_code(code: &str) -> u32 {
    code.bytes().take(4).fold(0u32, |packed, byte| (packed << 8) | u32::from(byte))
}

/// Double Metaphone codes of a folded name, packed.
pub fn phonetic_codes(folded: &str) -> [u32; 2] {
    if folded.is_empty() {
        return [0, 0];
    }
    let result = DOUBLE_METAPHONE.double_metaphone(folded);
    [pack_code(&result.primary()), pack_code(&result.alternate())]
}

/// Street abbreviations expanded so "14 High St." and "14 high street" agree.
fn expand_street_word(word: &str) -> &str {
    match word {
        "st" => "street",
        "rd" => "road",
        "ave" | "av" => "avenue",
        "ln" => "lane",
        "dr" => "drive",
        "cl" => "close",
        "ct" => "court",
        "cres" => "crescent",
        "pl" => "place",
        "sq" => "square",
        "gdns" => "gardens",
        "tce" | "terr" => "terrace",
        "pde" => "parade",
        "hwy" => "highway",
        other => other,
    }
}

/// Folds optional text into a boxed string (empty when missing).
fn folded(text: &Option<String>) -> Box<str> {
    text.as_deref().map(fold_text).unwrap_or_default().into_boxed_str()
}

impl Features {
    /// Normalises a record.
    pub fn of(record: &SourceRecord) -> Features {
        let given_words = record.given_names.as_deref().map(name_words).unwrap_or_default();
        let given = given_words.first().cloned().unwrap_or_default();
        let middle = given_words.get(1..).map(|rest| rest.join(" ")).unwrap_or_default();
        let family = record.family_name.as_deref().map(name_words).unwrap_or_default().concat();
        // A leading number in the address is the house number ("14 High St" and house 14,
        // "High Street" agree) when the partner keeps no separate house number.
        let mut house_number = folded(&record.house_number);
        let mut street_words: Vec<&str> = Vec::new();
        let folded_address = record.address.as_deref().map(fold_text).unwrap_or_default();
        for (index, word) in folded_address.split(' ').filter(|word| !word.is_empty()).enumerate() {
            if index == 0 && word.starts_with(|c: char| c.is_ascii_digit()) {
                if house_number.is_empty() {
                    house_number = word.into();
                }
                continue;
            }
            street_words.push(expand_street_word(word));
        }
        let street = street_words.join(" ");
        let postcode = record.postcode.as_deref().and_then(normalise_postcode);
        let national_id = record.national_id.as_deref().and_then(normalise_national_id).unwrap_or_default();
        let national_id_valid = is_valid_nhs_number(&national_id);
        Features {
            given_phonetic: phonetic_codes(&given),
            family_phonetic: phonetic_codes(&family),
            given_groups: nickname_groups(&given),
            given: given.into_boxed_str(),
            middle: middle.into_boxed_str(),
            family: family.into_boxed_str(),
            birth_date: record.birth_date,
            sex: record.sex,
            house_number,
            street: street.into_boxed_str(),
            city: folded(&record.city),
            outward: postcode.as_ref().and_then(|p| p.outward.clone()).unwrap_or_default().into_boxed_str(),
            postcode: postcode.map(|p| p.full).unwrap_or_default().into_boxed_str(),
            phone: record.phone.as_deref().and_then(normalise_phone).unwrap_or_default().into_boxed_str(),
            national_id_verified: record.national_id_verified && national_id_valid,
            national_id_valid,
            national_id: national_id.into_boxed_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_normalise_every_field() {
        let record = SourceRecord {
            given_names: Some("Mr Joseph  Patrick".into()),
            family_name: Some("O'Brien-Smyth".into()),
            address: Some("14 High St.".into()),
            postcode: Some("sw1a1aa".into()),
            national_id: Some("943 476 5919".into()),
            national_id_verified: true,
            ..SourceRecord::default()
        };
        let features = Features::of(&record);
        assert_eq!(&*features.given, "joseph");
        assert_eq!(&*features.middle, "patrick");
        assert_eq!(&*features.family, "obriensmyth");
        assert_eq!(&*features.street, "high street");
        assert_eq!(&*features.house_number, "14");
        assert_eq!((&*features.postcode, &*features.outward), ("SW1A1AA", "SW1A"));
        assert!(features.national_id_verified);
        assert!(!features.given_groups.is_empty());
        assert_eq!(features.family_phonetic, phonetic_codes("obriensmyth"));
        assert_ne!(features.given_phonetic[0], 0);
    }

    #[test]
    fn an_identifier_failing_the_check_is_not_verified() {
        let record = SourceRecord {
            national_id: Some("9434765918".into()),
            national_id_verified: true,
            ..SourceRecord::default()
        };
        assert!(!Features::of(&record).national_id_verified);
    }

    #[test]
    fn sound_alike_names_share_codes() {
        assert_eq!(phonetic_codes("smith")[0], phonetic_codes("smyth")[0]);
        assert_eq!(phonetic_codes(""), [0, 0]);
    }
}
