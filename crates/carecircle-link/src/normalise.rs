//! Normalisation of the fields partners write differently: case, accents and punctuation in
//! names, UK postcodes, telephone numbers, national identifiers (with the NHS-number mod-11
//! check) and dates of birth in each partner's format, with day/month swaps repaired.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::record::BirthDate;

/// Lower-case, unaccented text with punctuation turned into single spaces: `"  O'Brien-Smith "`
/// becomes `"obrien smith"` (apostrophes vanish so "O'Brien" and "OBrien" agree, hyphens and
/// other punctuation separate words).
pub fn fold_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.nfkd() {
        if is_combining_mark(c) || matches!(c, '\'' | '’' | '‘' | '`' | '´') {
            continue;
        }
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

/// Honorifics dropped from given names ("Mr J Smith" is J Smith).
const TITLES: &[&str] = &["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "rev", "sir", "dame", "lady", "lord"];

/// The words of a name, folded, without honorifics.
pub fn name_words(text: &str) -> Vec<String> {
    fold_text(text).split(' ').filter(|word| !word.is_empty() && !TITLES.contains(word)).map(str::to_string).collect()
}

/// A normalised postcode: `full` without spaces in capitals; `outward` is the part before the
/// space for postcodes of UK shape ("SW1A 1AA" → "SW1A"), `None` for other countries' codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Postcode {
    /// The whole code, upper case, spaces removed.
    pub full: String,
    /// The UK outward code (area and district).
    pub outward: Option<String>,
}

/// Normalises a postcode: case and spacing for UK codes ("sw1a1aa", "SW1A  1AA"), and any other
/// country's code as its upper-case letters and digits. `None` when nothing is left.
pub fn normalise_postcode(text: &str) -> Option<Postcode> {
    let full: String = text.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect();
    if full.is_empty() {
        return None;
    }
    let outward = is_uk_postcode(&full).then(|| full[..full.len() - 3].to_string());
    Some(Postcode { full, outward })
}

/// Whether a spaceless upper-case code has the UK shape: an outward code of 2–4 characters
/// starting with a letter, then an inward code of a digit and two letters.
fn is_uk_postcode(code: &str) -> bool {
    let bytes = code.as_bytes();
    if !(5..=7).contains(&bytes.len()) {
        return false;
    }
    let (outward, inward) = bytes.split_at(bytes.len() - 3);
    outward[0].is_ascii_alphabetic()
        && outward.iter().any(u8::is_ascii_digit)
        && inward[0].is_ascii_digit()
        && inward[1].is_ascii_alphabetic()
        && inward[2].is_ascii_alphabetic()
}

/// A telephone number as its national digits: spaces and punctuation removed, a leading `+44`
/// or `0044` turned into `0`. `None` for fewer than 6 digits.
pub fn normalise_phone(text: &str) -> Option<String> {
    let mut digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let international = text.trim_start().starts_with('+') || digits.starts_with("00");
    if international {
        let trimmed = digits.trim_start_matches('0');
        if let Some(national) = trimmed.strip_prefix("44") {
            digits = format!("0{}", national.trim_start_matches('0'));
        }
    }
    (digits.len() >= 6).then_some(digits)
}

/// A national identifier as upper-case letters and digits (spaces and dashes removed).
pub fn normalise_national_id(text: &str) -> Option<String> {
    let id: String = text.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect();
    (!id.is_empty()).then_some(id)
}

/// Whether a normalised identifier is a valid NHS number: ten digits whose check digit is the
/// modulus-11 check of the first nine (weights 10 down to 2; a remainder giving 10 is invalid).
pub fn is_valid_nhs_number(id: &str) -> bool {
    let digits: Vec<u32> = id.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 10 || id.len() != 10 {
        return false;
    }
    let sum: u32 = digits[..9].iter().zip((2..=10).rev()).map(|(digit, weight)| digit * weight).sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        check => check,
    };
    check == digits[9]
}

/// Parses a date of birth written in `format` (strftime-like: `%d`, `%m`, `%Y`, `%y`, `%b`...).
/// When the strict parse fails, the digits are read in the format's order and a day/month swap
/// is repaired ("03/25/1971" with `%d/%m/%Y` is 25 March). Two-digit years 00–29 are 2000s,
/// others 1900s. `None` for blanks and for text that cannot be a date.
pub fn parse_birth_date(text: &str, format: &str) -> Option<BirthDate> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if !format.contains("%y") {
        if let Ok(date) = chrono::NaiveDate::parse_from_str(text, format) {
            return BirthDate::new(
                chrono::Datelike::year(&date),
                chrono::Datelike::month(&date),
                chrono::Datelike::day(&date),
            );
        }
    }
    lenient_birth_date(text, format)
}

/// The numeric fallback of [`parse_birth_date`].
fn lenient_birth_date(text: &str, format: &str) -> Option<BirthDate> {
    // The order of the day, month and year directives, with each one's width when written
    // without separators.
    let mut order = Vec::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('d') => order.push(('d', 2)),
                Some('m') => order.push(('m', 2)),
                Some('Y') => order.push(('Y', 4)),
                Some('y') => order.push(('y', 2)),
                _ => return None,
            }
        }
    }
    if order.len() != 3 {
        return None;
    }
    let groups: Vec<&str> = text.split(|c: char| !c.is_ascii_digit()).filter(|group| !group.is_empty()).collect();
    let parts: Vec<&str> = if groups.len() == 3 {
        groups
    } else if groups.len() == 1 && groups[0].len() == order.iter().map(|(_, width)| width).sum::<usize>() {
        let mut start = 0;
        order
            .iter()
            .map(|(_, width)| {
                let part = &groups[0][start..start + width];
                start += width;
                part
            })
            .collect()
    } else {
        return None;
    };
    let (mut year, mut month, mut day) = (None, None, None);
    for ((directive, _), part) in order.iter().zip(parts) {
        let value: u32 = part.parse().ok()?;
        match directive {
            'd' => day = Some(value),
            'm' => month = Some(value),
            'Y' => year = Some(value as i32),
            _ => {
                year = Some(if value <= 29 {
                    2000 + value as i32
                } else if value < 100 {
                    1900 + value as i32
                } else {
                    value as i32
                })
            }
        }
    }
    let (year, month, day) = (year?, month?, day?);
    BirthDate::new(year, month, day).or_else(|| BirthDate::new(year, day, month))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_removes_case_accents_and_punctuation() {
        assert_eq!(fold_text("  José  O'Brien-Smith "), "jose obrien smith");
        assert_eq!(fold_text("ZOË"), "zoe");
        assert_eq!(fold_text("J."), "j");
        assert_eq!(fold_text("..."), "");
    }

    #[test]
    fn name_words_drop_titles() {
        assert_eq!(name_words("Mr. J. Smyth"), vec!["j", "smyth"]);
        assert_eq!(name_words("Mary-Ann"), vec!["mary", "ann"]);
    }

    #[test]
    fn postcodes_normalise_case_and_spacing() {
        let expected = Some(Postcode { full: "SW1A1AA".into(), outward: Some("SW1A".into()) });
        assert_eq!(normalise_postcode("sw1a1aa"), expected);
        assert_eq!(normalise_postcode(" SW1A  1AA "), expected);
        assert_eq!(normalise_postcode("M1 1AE").and_then(|p| p.outward), Some("M1".into()));
        assert_eq!(normalise_postcode("4011"), Some(Postcode { full: "4011".into(), outward: None }));
        assert_eq!(normalise_postcode(" - "), None);
    }

    #[test]
    fn phones_become_national_digits() {
        assert_eq!(normalise_phone("+44 (0)20 7946 0018").as_deref(), Some("02079460018"));
        assert_eq!(normalise_phone("+44 20 7946 0018").as_deref(), Some("02079460018"));
        assert_eq!(normalise_phone("020-7946-0018").as_deref(), Some("02079460018"));
        assert_eq!(normalise_phone("123"), None);
    }

    #[test]
    fn nhs_numbers_are_checked_modulus_11() {
        assert!(is_valid_nhs_number("9434765919"));
        assert!(!is_valid_nhs_number("9434765918"), "wrong check digit");
        assert!(!is_valid_nhs_number("943476591"), "too short");
        assert_eq!(normalise_national_id("943 476 5919").as_deref(), Some("9434765919"));
    }

    #[test]
    fn birth_dates_parse_in_the_partner_format_and_repair_swaps() {
        let march_14 = BirthDate::new(1971, 3, 14);
        assert_eq!(parse_birth_date("14/03/1971", "%d/%m/%Y"), march_14);
        assert_eq!(parse_birth_date("1971-03-14", "%Y-%m-%d"), march_14);
        assert_eq!(parse_birth_date("19710314", "%Y%m%d"), march_14);
        assert_eq!(parse_birth_date("03/14/1971", "%d/%m/%Y"), march_14, "day/month swap");
        assert_eq!(parse_birth_date("14 Mar 1971", "%d %b %Y"), march_14);
        assert_eq!(parse_birth_date("14/03/71", "%d/%m/%y"), march_14);
        assert_eq!(parse_birth_date("14/03/05", "%d/%m/%y"), BirthDate::new(2005, 3, 14));
        assert_eq!(parse_birth_date("31/02/1971", "%d/%m/%Y"), None);
        assert_eq!(parse_birth_date("unknown", "%d/%m/%Y"), None);
        assert_eq!(parse_birth_date(" ", "%d/%m/%Y"), None);
    }
}
