//! Field comparisons: each compares one field of two records and returns a level, from
//! "missing" (level 0: either side blank, no evidence) through exact and near agreement to
//! disagreement. The model learns a weight per level.

use crate::features::Features;
use crate::nicknames::share_group;
use crate::similarity::{jaro_winkler, within_one_edit};

/// Level 0 of every comparison: one side or both lack the field.
pub const MISSING: u8 = 0;

/// One comparison: its name and the names of its levels (index = level).
#[derive(Clone, Copy, Debug)]
pub struct ComparisonSpec {
    /// Field name, e.g. `given`.
    pub name: &'static str,
    /// Level names; index 0 is always `missing`.
    pub levels: &'static [&'static str],
}

/// Indices of the comparisons in a [`Levels`] vector.
pub mod field {
    /// First given name.
    pub const GIVEN: usize = 0;
    /// Family name.
    pub const FAMILY: usize = 1;
    /// Date of birth.
    pub const BIRTH_DATE: usize = 2;
    /// Recorded sex.
    pub const SEX: usize = 3;
    /// House number.
    pub const HOUSE_NUMBER: usize = 4;
    /// Street.
    pub const STREET: usize = 5;
    /// Town.
    pub const CITY: usize = 6;
    /// Postcode.
    pub const POSTCODE: usize = 7;
    /// Telephone.
    pub const PHONE: usize = 8;
    /// National identifier.
    pub const NATIONAL_ID: usize = 9;
}

/// Number of comparisons.
pub const N_COMPARISONS: usize = 10;

/// Every comparison with its levels, in [`field`] order.
pub const COMPARISONS: [ComparisonSpec; N_COMPARISONS] = [
    ComparisonSpec {
        name: "given",
        levels: &["missing", "exact", "typo", "nickname", "middle name", "phonetic", "initial", "similar", "different"],
    },
    ComparisonSpec { name: "family", levels: &["missing", "exact", "typo", "phonetic", "similar", "different"] },
    ComparisonSpec {
        name: "birth_date",
        levels: &["missing", "exact", "day/month swapped", "one digit or day off", "same year", "different"],
    },
    ComparisonSpec { name: "sex", levels: &["missing", "same", "different"] },
    ComparisonSpec { name: "house_number", levels: &["missing", "exact", "different"] },
    ComparisonSpec { name: "street", levels: &["missing", "exact", "typo", "similar", "different"] },
    ComparisonSpec { name: "city", levels: &["missing", "exact", "typo", "different"] },
    ComparisonSpec { name: "postcode", levels: &["missing", "exact", "typo", "same outward code", "different"] },
    ComparisonSpec { name: "phone", levels: &["missing", "exact", "typo", "different"] },
    ComparisonSpec {
        name: "national_id",
        levels: &["missing", "exact valid NHS number", "exact", "typo", "different"],
    },
];

/// The level of every comparison for one pair of records.
pub type Levels = [u8; N_COMPARISONS];

/// Level of the "exact" agreement of every comparison (term-frequency adjustments apply there).
pub const EXACT: u8 = 1;

/// Whether two strings are at most one edit apart (substitution, insertion, deletion or
/// transposition of neighbours), the usual shape of a keying error.
fn one_edit_apart(a: &str, b: &str) -> bool {
    within_one_edit(a, b)
}

/// Whether a name is a single letter (an initial).
fn is_single_letter(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some() && chars.next().is_none()
}

/// Given names: exact, typo, nickname, one's first name is the other's middle name, phonetic,
/// initial against a full name, similar (Jaro-Winkler ≥ 0.8), different.
pub fn compare_given(a: &Features, b: &Features) -> u8 {
    let (x, y) = (&*a.given, &*b.given);
    if x.is_empty() || y.is_empty() {
        return MISSING;
    }
    if x == y {
        return 1;
    }
    let single_letter = is_single_letter(x) || is_single_letter(y);
    let similarity = if single_letter { 0.0 } else { jaro_winkler(x, y) };
    if !single_letter && (one_edit_apart(x, y) || similarity >= 0.92) {
        return 2;
    }
    if share_group(a.given_groups, b.given_groups) {
        return 3;
    }
    if (!b.middle.is_empty() && b.middle.split(' ').any(|word| word == x))
        || (!a.middle.is_empty() && a.middle.split(' ').any(|word| word == y))
    {
        return 4;
    }
    if !single_letter && phonetic_match(a.given_phonetic, b.given_phonetic) {
        return 5;
    }
    if single_letter && x.chars().next() == y.chars().next() {
        return 6;
    }
    if !single_letter && similarity >= 0.8 {
        return 7;
    }
    8
}

/// Whether two names share a Double Metaphone code (primary or alternate).
fn phonetic_match(a: [u32; 2], b: [u32; 2]) -> bool {
    a[0] != 0 && (a[0] == b[0] || a[0] == b[1] || (a[1] != 0 && (a[1] == b[0] || a[1] == b[1])))
}

/// Family names: exact, typo (one edit or Jaro-Winkler ≥ 0.92), phonetic, similar, different.
pub fn compare_family(a: &Features, b: &Features) -> u8 {
    let (x, y) = (&*a.family, &*b.family);
    if x.is_empty() || y.is_empty() {
        return MISSING;
    }
    if x == y {
        return 1;
    }
    let similarity = jaro_winkler(x, y);
    if similarity >= 0.92 || one_edit_apart(x, y) {
        return 2;
    }
    if phonetic_match(a.family_phonetic, b.family_phonetic) {
        return 3;
    }
    if similarity >= 0.8 {
        return 4;
    }
    5
}

/// Dates of birth: exact, day and month swapped, one digit or one day off, same year, different.
pub fn compare_birth_date(a: &Features, b: &Features) -> u8 {
    let (Some(x), Some(y)) = (a.birth_date, b.birth_date) else { return MISSING };
    if x == y {
        return 1;
    }
    if x.year == y.year && x.day == y.month && x.month == y.day {
        return 2;
    }
    if one_digit_apart(date_digits(x), date_digits(y)) || (x.day_number() - y.day_number()).abs() <= 1 {
        return 3;
    }
    if x.year == y.year {
        return 4;
    }
    5
}

/// The eight digits of YYYYMMDD.
fn date_digits(date: crate::record::BirthDate) -> [u8; 8] {
    let mut digits = [0u8; 8];
    let mut value = (date.year.clamp(0, 9999) as u32) * 10_000 + date.month * 100 + date.day;
    for digit in digits.iter_mut().rev() {
        *digit = (value % 10) as u8;
        value /= 10;
    }
    digits
}

/// Whether two digit strings differ in one position or by one swap of neighbours.
fn one_digit_apart(a: [u8; 8], b: [u8; 8]) -> bool {
    let differing: Vec<usize> = (0..8).filter(|&i| a[i] != b[i]).collect();
    match differing.as_slice() {
        [_] => true,
        [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
        _ => false,
    }
}

/// Exact / different on short codes (sex, house number).
fn compare_exact<T: PartialEq>(x: Option<T>, y: Option<T>) -> u8 {
    match (x, y) {
        (Some(x), Some(y)) if x == y => 1,
        (Some(_), Some(_)) => 2,
        _ => MISSING,
    }
}

/// Non-empty text or `None`.
fn present(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// Streets: exact, typo (Jaro-Winkler ≥ 0.92), similar (≥ 0.8), different.
pub fn compare_street(a: &Features, b: &Features) -> u8 {
    let (x, y) = (&*a.street, &*b.street);
    if x.is_empty() || y.is_empty() {
        return MISSING;
    }
    if x == y {
        return 1;
    }
    let similarity = jaro_winkler(x, y);
    if similarity >= 0.92 {
        2
    } else if similarity >= 0.8 {
        3
    } else {
        4
    }
}

/// Towns: exact, typo (Jaro-Winkler ≥ 0.9), different.
pub fn compare_city(a: &Features, b: &Features) -> u8 {
    let (x, y) = (&*a.city, &*b.city);
    if x.is_empty() || y.is_empty() {
        return MISSING;
    }
    if x == y {
        1
    } else if jaro_winkler(x, y) >= 0.9 {
        2
    } else {
        3
    }
}

/// Postcodes: exact, one character off, same UK outward code, different.
pub fn compare_postcode(a: &Features, b: &Features) -> u8 {
    let (x, y) = (&*a.postcode, &*b.postcode);
    if x.is_empty() || y.is_empty() {
        return MISSING;
    }
    if x == y {
        1
    } else if one_edit_apart(x, y) {
        2
    } else if !a.outward.is_empty() && a.outward == b.outward {
        3
    } else {
        4
    }
}

/// Telephones: exact, one digit off, different.
pub fn compare_phone(a: &Features, b: &Features) -> u8 {
    let (x, y) = (&*a.phone, &*b.phone);
    if x.is_empty() || y.is_empty() {
        return MISSING;
    }
    if x == y {
        1
    } else if one_edit_apart(x, y) {
        2
    } else {
        3
    }
}

/// National identifiers: exact and a valid NHS number, exact, one character off, different.
pub fn compare_national_id(a: &Features, b: &Features) -> u8 {
    let (x, y) = (&*a.national_id, &*b.national_id);
    if x.is_empty() || y.is_empty() {
        return MISSING;
    }
    if x == y {
        if a.national_id_valid {
            1
        } else {
            2
        }
    } else if one_edit_apart(x, y) {
        3
    } else {
        4
    }
}

/// Whether the given/family levels of a pair read better with one record's names transposed.
fn names_read_better_swapped(straight: (u8, u8), swapped: (u8, u8)) -> bool {
    let close = |level: u8, typo_level: u8| level != MISSING && level <= typo_level;
    close(swapped.0, 2) && close(swapped.1, 2) && !(close(straight.0, 3) && close(straight.1, 2))
}

/// Compares two records on every field. Given and family names are also compared transposed
/// ("Smith Joseph" against "Joseph Smith"), and the better reading is kept.
pub fn compare(a: &Features, b: &Features) -> Levels {
    let mut levels = [MISSING; N_COMPARISONS];
    let straight = (compare_given(a, b), compare_family(a, b));
    // Transposition is only worth checking when the initials cross over.
    let initials_cross = a.given.chars().next().is_some()
        && a.given.chars().next() == b.family.chars().next()
        && a.family.chars().next() == b.given.chars().next();
    let (given, family) = if (straight.0 <= 1 && straight.1 <= 1) || !initials_cross {
        straight
    } else {
        let swapped = swapped_name_levels(a, b);
        if names_read_better_swapped(straight, swapped) {
            swapped
        } else {
            straight
        }
    };
    levels[field::GIVEN] = given;
    levels[field::FAMILY] = family;
    levels[field::BIRTH_DATE] = compare_birth_date(a, b);
    levels[field::SEX] = compare_exact(a.sex, b.sex);
    levels[field::HOUSE_NUMBER] = compare_exact(present(&a.house_number), present(&b.house_number));
    levels[field::STREET] = compare_street(a, b);
    levels[field::CITY] = compare_city(a, b);
    levels[field::POSTCODE] = compare_postcode(a, b);
    levels[field::PHONE] = compare_phone(a, b);
    levels[field::NATIONAL_ID] = compare_national_id(a, b);
    levels
}

/// Given/family levels with `b`'s names transposed (b's family against a's given name).
fn swapped_name_levels(a: &Features, b: &Features) -> (u8, u8) {
    let transposed = Features {
        given: b.family.clone(),
        middle: Box::default(),
        family: b.given.clone(),
        given_phonetic: b.family_phonetic,
        family_phonetic: b.given_phonetic,
        given_groups: crate::nicknames::nickname_groups(&b.family),
        ..Features::default()
    };
    (compare_given(a, &transposed), compare_family(a, &transposed))
}

/// Packs a levels vector into one integer (four bits per comparison), for counting patterns.
pub fn pack_levels(levels: &Levels) -> u64 {
    levels.iter().enumerate().fold(0u64, |packed, (index, level)| packed | (u64::from(*level) << (4 * index)))
}

/// Inverse of [`pack_levels`].
pub fn unpack_levels(packed: u64) -> Levels {
    let mut levels = [MISSING; N_COMPARISONS];
    for (index, level) in levels.iter_mut().enumerate() {
        *level = ((packed >> (4 * index)) & 0xF) as u8;
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BirthDate, SourceRecord};

    fn person(given: &str, family: &str) -> Features {
        Features::of(&SourceRecord {
            given_names: Some(given.into()),
            family_name: Some(family.into()),
            ..SourceRecord::default()
        })
    }

    fn born(year: i32, month: u32, day: u32) -> Features {
        Features { birth_date: BirthDate::new(year, month, day), ..Features::default() }
    }

    #[test]
    fn given_name_levels() {
        let cases = [
            ("Joseph", "joseph", 1),
            ("Joseph", "Josph", 2),
            ("Joseph", "Joe", 3),
            ("Joseph", "Patrick Joseph", 4),
            ("Stephen", "Stehpen", 2),
            ("Stephen", "Steven", 5),
            ("Catherine", "Kathryn", 5),
            ("J.", "Joseph", 6),
            ("Jonathan", "Jonas", 7),
            ("Joseph", "Mary", 8),
            ("", "Mary", MISSING),
        ];
        for (x, y, expected) in cases {
            assert_eq!(compare_given(&person(x, "a"), &person(y, "a")), expected, "{x} / {y}");
        }
    }

    #[test]
    fn family_name_levels() {
        let cases = [
            ("Smith", "SMITH", 1),
            ("Smith", "Smyth", 2),
            ("Schmidt", "Smith", 3),
            ("Harrison", "Harrington", 4),
            ("Smith", "Jones", 5),
            ("Smith", "", MISSING),
        ];
        for (x, y, expected) in cases {
            assert_eq!(compare_family(&person("a", x), &person("a", y)), expected, "{x} / {y}");
        }
    }

    #[test]
    fn birth_date_levels() {
        let d = born(1971, 3, 4);
        assert_eq!(compare_birth_date(&d, &born(1971, 3, 4)), 1);
        assert_eq!(compare_birth_date(&d, &born(1971, 4, 3)), 2);
        assert_eq!(compare_birth_date(&d, &born(1971, 3, 5)), 3);
        assert_eq!(compare_birth_date(&d, &born(1977, 3, 4)), 3);
        assert_eq!(compare_birth_date(&born(1971, 3, 31), &born(1971, 4, 1)), 3, "a day apart");
        assert_eq!(compare_birth_date(&d, &born(1971, 9, 20)), 4);
        assert_eq!(compare_birth_date(&d, &born(1980, 9, 20)), 5);
        assert_eq!(compare_birth_date(&d, &Features::default()), MISSING);
    }

    #[test]
    fn address_phone_and_identifier_levels() {
        let at = |street: &str, city: &str, postcode: &str| {
            Features::of(&SourceRecord {
                address: Some(street.into()),
                city: Some(city.into()),
                postcode: Some(postcode.into()),
                ..SourceRecord::default()
            })
        };
        let home = at("14 High Street", "Leeds", "LS1 4AB");
        assert_eq!(compare_street(&home, &at("14 high st", "", "")), 1);
        assert_eq!(compare_street(&home, &at("14 High Stret", "", "")), 2);
        assert_eq!(compare_street(&home, &at("3 Mill Lane", "", "")), 4);
        assert_eq!(compare_street(&home, &at("High Street", "", "")), 1, "the house number is compared apart");
        assert_eq!(compare_city(&home, &at("", "Leds", "")), 2);
        assert_eq!(compare_city(&home, &at("", "York", "")), 3);
        assert_eq!(compare_postcode(&home, &at("", "", "ls14ab")), 1);
        assert_eq!(compare_postcode(&home, &at("", "", "LS1 4AV")), 2);
        assert_eq!(compare_postcode(&home, &at("", "", "LS1 9ZZ")), 3);
        assert_eq!(compare_postcode(&home, &at("", "", "M1 1AE")), 4);

        let phone = |text: &str| Features::of(&SourceRecord { phone: Some(text.into()), ..SourceRecord::default() });
        assert_eq!(compare_phone(&phone("0113 496 0000"), &phone("+44 113 496 0000")), 1);
        assert_eq!(compare_phone(&phone("0113 496 0000"), &phone("0113 496 0001")), 2);
        assert_eq!(compare_phone(&phone("0113 496 0000"), &phone("0207 946 0018")), 3);

        let id = |text: &str| Features::of(&SourceRecord { national_id: Some(text.into()), ..SourceRecord::default() });
        assert_eq!(compare_national_id(&id("943 476 5919"), &id("9434765919")), 1);
        assert_eq!(compare_national_id(&id("1234"), &id("1234")), 2);
        assert_eq!(compare_national_id(&id("9434765919"), &id("9434765991")), 3);
        assert_eq!(compare_national_id(&id("9434765919"), &id("4010232137")), 4);
    }

    #[test]
    fn transposed_names_are_recognised() {
        let levels = compare(&person("Joseph", "Smith"), &person("Smith", "Joseph"));
        assert_eq!((levels[field::GIVEN], levels[field::FAMILY]), (1, 1));
        let levels = compare(&person("Joseph", "Smith"), &person("Mary", "Smith"));
        assert_eq!((levels[field::GIVEN], levels[field::FAMILY]), (8, 1));
    }

    #[test]
    fn levels_pack_and_unpack() {
        let levels = compare(&person("Joseph", "Smith"), &person("Joe", "Smyth"));
        assert_eq!(unpack_levels(pack_levels(&levels)), levels);
        assert!(COMPARISONS.iter().all(|spec| spec.levels.len() <= 16 && spec.levels[0] == "missing"));
    }
}
