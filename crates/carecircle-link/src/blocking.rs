//! Blocking: only records that agree on at least one blocking key are compared. Several rules
//! (identifier, phone, phonetic names, birth date with name or postcode...) each catch matches
//! the others miss; pairs found by several rules are compared once.

use std::hash::{Hash, Hasher};

use rayon::prelude::*;

use crate::features::Features;

/// Comparisons of fields people living together share (address, phone, usually the family
/// name): they agree among household members, who are not the same person.
const HOUSEHOLD: &[usize] = &{
    use crate::compare::field::*;
    [FAMILY, HOUSE_NUMBER, STREET, CITY, POSTCODE, PHONE]
};

/// One blocking rule: the fields whose agreement makes two records a candidate pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockingRule {
    /// Same national identifier.
    NationalId,
    /// Same telephone number.
    Phone,
    /// Same Double Metaphone codes of given and family name, in either order (catches
    /// transposed names).
    NamePhonetics,
    /// Same family-name code, birth year and birth month.
    FamilyPhoneticBirthMonth,
    /// Same given-name code and date of birth (catches changed family names).
    GivenPhoneticBirthDate,
    /// Same date of birth and postcode.
    BirthDatePostcode,
    /// Same postcode, house number and first letter of the given name.
    PostcodeHouseGivenInitial,
}

impl BlockingRule {
    /// Every rule, in the order they are applied.
    pub const ALL: [BlockingRule; 7] = [
        BlockingRule::NationalId,
        BlockingRule::Phone,
        BlockingRule::NamePhonetics,
        BlockingRule::FamilyPhoneticBirthMonth,
        BlockingRule::GivenPhoneticBirthDate,
        BlockingRule::BirthDatePostcode,
        BlockingRule::PostcodeHouseGivenInitial,
    ];

    /// The rule's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            BlockingRule::NationalId => "national id",
            BlockingRule::Phone => "phone",
            BlockingRule::NamePhonetics => "given+family phonetic (either order)",
            BlockingRule::FamilyPhoneticBirthMonth => "family phonetic + birth year and month",
            BlockingRule::GivenPhoneticBirthDate => "given phonetic + birth date",
            BlockingRule::BirthDatePostcode => "birth date + postcode",
            BlockingRule::PostcodeHouseGivenInitial => "postcode + house number + given initial",
        }
    }

    /// The comparisons ([`crate::compare::field`]) whose agreement this rule forces or makes
    /// likely among the pairs it finds, non-matches included: they say nothing about which of
    /// those pairs match, so training on this rule's pairs leaves them out. Address parts go with
    /// the postcode (neighbours share streets and towns).
    pub fn blocked_comparisons(self) -> &'static [usize] {
        use crate::compare::field::*;
        match self {
            BlockingRule::NationalId => &[NATIONAL_ID],
            // People living together share a phone, an address and often a family name, so the
            // non-matches of the phone and address rules are mostly household members that agree
            // on all of them: every household field is left out of those sessions.
            BlockingRule::Phone => HOUSEHOLD,
            BlockingRule::NamePhonetics => &[GIVEN, FAMILY],
            BlockingRule::FamilyPhoneticBirthMonth => &[FAMILY, BIRTH_DATE],
            BlockingRule::GivenPhoneticBirthDate => &[GIVEN, BIRTH_DATE],
            BlockingRule::BirthDatePostcode => &[BIRTH_DATE, FAMILY, HOUSE_NUMBER, STREET, CITY, POSTCODE, PHONE],
            BlockingRule::PostcodeHouseGivenInitial => &[GIVEN, FAMILY, HOUSE_NUMBER, STREET, CITY, POSTCODE, PHONE],
        }
    }

    /// The key that splits an oversized block of this rule into smaller ones (a common name
    /// is split by birth year, a common name and birth month by day, a shared phone by given
    /// initial); `None` when the rule has no refinement or the record lacks the field. Records
    /// without it drop out of an oversized block; the other rules still see them.
    pub fn refinement(self, features: &Features) -> Option<u64> {
        match self {
            BlockingRule::Phone => features.given.chars().next().map(u64::from),
            BlockingRule::NamePhonetics => features.birth_date.map(|date| date.year as u64 + 1),
            BlockingRule::FamilyPhoneticBirthMonth => features.birth_date.map(|date| u64::from(date.day)),
            BlockingRule::NationalId
            | BlockingRule::GivenPhoneticBirthDate
            | BlockingRule::BirthDatePostcode
            | BlockingRule::PostcodeHouseGivenInitial => None,
        }
    }

    /// The record's blocking key under this rule; `None` when a field the rule needs is missing.
    pub fn key(self, features: &Features) -> Option<u64> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self as u8).hash(&mut hasher);
        let given_code = features.given_phonetic[0];
        let family_code = features.family_phonetic[0];
        match self {
            BlockingRule::NationalId => {
                (features.national_id.len() >= 4).then_some(())?;
                features.national_id.hash(&mut hasher);
            }
            BlockingRule::Phone => {
                (!features.phone.is_empty()).then_some(())?;
                features.phone.hash(&mut hasher);
            }
            BlockingRule::NamePhonetics => {
                (given_code != 0 && family_code != 0 && features.given.chars().count() > 1).then_some(())?;
                (given_code.min(family_code), given_code.max(family_code)).hash(&mut hasher);
            }
            BlockingRule::FamilyPhoneticBirthMonth => {
                (family_code != 0).then_some(())?;
                let born = features.birth_date?;
                (family_code, born.year, born.month).hash(&mut hasher);
            }
            BlockingRule::GivenPhoneticBirthDate => {
                (given_code != 0).then_some(())?;
                (given_code, features.birth_date?).hash(&mut hasher);
            }
            BlockingRule::BirthDatePostcode => {
                (!features.postcode.is_empty()).then_some(())?;
                (features.birth_date?, &features.postcode).hash(&mut hasher);
            }
            BlockingRule::PostcodeHouseGivenInitial => {
                let initial = features.given.chars().next()?;
                (!features.postcode.is_empty() && !features.house_number.is_empty()).then_some(())?;
                (&features.postcode, &features.house_number, initial).hash(&mut hasher);
            }
        }
        Some(hasher.finish())
    }
}

/// The candidate pairs of a batch: `(i, j)` record indices with `i < j`, sorted, each once.
#[derive(Clone, Debug, Default)]
pub struct CandidatePairs {
    /// The pairs.
    pub pairs: Vec<(u32, u32)>,
    /// For each pair, the rules that found it: bit `k` stands for `BlockingRule::ALL[k]`.
    pub rules: Vec<u8>,
    /// Pairs each rule produced before deduplication, in [`BlockingRule::ALL`] order.
    pub n_pairs_per_rule: Vec<u64>,
    /// Blocks larger than the maximum block size, split by their rule's
    /// [`BlockingRule::refinement`] instead of compared whole.
    pub n_refined_blocks: u64,
    /// Blocks (or parts of refined ones) skipped because they held more than the maximum block
    /// size even after refinement, or had nothing to be split on (keys too common to be
    /// informative, e.g. an identifier shared by hundreds of records).
    pub n_oversized_blocks: u64,
}

/// Finds the candidate pairs of `features` under every rule. Blocks larger than
/// `max_block_size` are split by the rule's refinement key; parts still too large are skipped
/// (both counted).
pub fn candidate_pairs(features: &[Features], max_block_size: usize) -> CandidatePairs {
    let mut all_pairs: Vec<u64> = Vec::new();
    let mut result = CandidatePairs::default();
    // Every record's key under every rule (0 when the rule does not apply), kept to tell later
    // which rules found each pair.
    let record_keys: Vec<[u64; N_RULES]> = features.par_iter().map(keys_of).collect();
    // A guess at the number of pairs (about one per record per rule on partner lists), so the
    // vector rarely grows: each growth copies it into fresh pages.
    all_pairs.reserve(features.len() * N_RULES * 2);
    for (rule_index, rule) in BlockingRule::ALL.iter().enumerate() {
        let mut keys: Vec<(u64, u32)> = record_keys
            .par_iter()
            .enumerate()
            .filter(|(_, keys)| keys[rule_index] != 0)
            .map(|(index, keys)| (keys[rule_index], index as u32))
            .collect();
        keys.par_sort_unstable();
        let mut n_rule_pairs = 0u64;
        let mut push_block = |block: &mut dyn Iterator<Item = u32>, all_pairs: &mut Vec<u64>| {
            let members: Vec<u32> = block.collect();
            for (offset, &i) in members.iter().enumerate() {
                for &j in &members[offset + 1..] {
                    // Indices within a block are ascending because the sorts include them.
                    all_pairs.push((u64::from(i) << 32) | u64::from(j));
                    n_rule_pairs += 1;
                }
            }
        };
        for block in keys.chunk_by(|a, b| a.0 == b.0) {
            if block.len() <= max_block_size {
                push_block(&mut block.iter().map(|&(_, i)| i), &mut all_pairs);
                continue;
            }
            result.n_refined_blocks += 1;
            let mut refined: Vec<(u64, u32)> =
                block.iter().filter_map(|&(_, i)| rule.refinement(&features[i as usize]).map(|key| (key, i))).collect();
            refined.sort_unstable();
            if refined.is_empty() {
                // Nothing to split on (the rule has no refinement or no record has the field).
                result.n_oversized_blocks += 1;
            }
            for sub_block in refined.chunk_by(|a, b| a.0 == b.0) {
                if sub_block.len() > max_block_size {
                    result.n_oversized_blocks += 1;
                } else {
                    push_block(&mut sub_block.iter().map(|&(_, i)| i), &mut all_pairs);
                }
            }
        }
        result.n_pairs_per_rule.push(n_rule_pairs);
    }
    all_pairs.par_sort_unstable();
    all_pairs.dedup();
    result.pairs = all_pairs.into_par_iter().map(|packed| ((packed >> 32) as u32, packed as u32)).collect();
    result.rules = result
        .pairs
        .par_iter()
        .map(|&(i, j)| shared_rules(&record_keys[i as usize], &record_keys[j as usize]))
        .collect();
    result
}

/// Number of blocking rules.
pub const N_RULES: usize = BlockingRule::ALL.len();

/// A record's key under every rule, 0 where the rule does not apply (a real key of 0 is
/// vanishingly unlikely and would only add a few pairs).
pub fn keys_of(features: &Features) -> [u64; N_RULES] {
    BlockingRule::ALL.map(|rule| rule.key(features).unwrap_or(0))
}

/// The rules under which two records share a key, as a bit set in [`BlockingRule::ALL`] order.
pub fn shared_rules(a: &[u64; N_RULES], b: &[u64; N_RULES]) -> u8 {
    (0..N_RULES).filter(|&k| a[k] != 0 && a[k] == b[k]).fold(0u8, |bits, k| bits | (1 << k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BirthDate, SourceRecord};

    fn features(given: &str, family: &str, birth: Option<BirthDate>, postcode: &str) -> Features {
        Features::of(&SourceRecord {
            given_names: Some(given.into()),
            family_name: Some(family.into()),
            birth_date: birth,
            postcode: Some(postcode.into()),
            ..SourceRecord::default()
        })
    }

    #[test]
    fn pairs_are_found_by_any_rule_and_listed_once() {
        let born = BirthDate::new(1971, 3, 14);
        let records = vec![
            features("Joseph", "Smith", born, "LS1 4AB"),
            features("Smith", "Joseph", None, ""),
            features("Joe", "Smyth", born, "LS14AB"),
            features("Mary", "Jones", BirthDate::new(1980, 1, 1), "M1 1AE"),
        ];
        let candidates = candidate_pairs(&records, 100);
        assert_eq!(candidates.pairs, vec![(0, 1), (0, 2)]);
        let name_phonetics = 1 << 2;
        assert_eq!(candidates.rules[0], name_phonetics, "(0,1) only shares transposed names");
        let (family_year, date_postcode) = (1 << 3, 1 << 5);
        assert_eq!(candidates.rules[1], family_year | date_postcode);
        assert!(candidates.n_pairs_per_rule.iter().sum::<u64>() >= 3, "(0,2) is found by several rules");
    }

    #[test]
    fn oversized_blocks_are_refined_and_what_stays_too_large_is_skipped() {
        // Six namesakes: a block of 6 under "given+family phonetic" with a cap of 4 is split by
        // birth year into two blocks of 3; nobody is paired across years.
        let records: Vec<Features> =
            [(1971, 1, 2), (1971, 5, 6), (1971, 9, 10), (1980, 1, 2), (1980, 5, 6), (1980, 9, 10)]
                .iter()
                .map(|&(year, month, day)| features("Joseph", "Smith", BirthDate::new(year, month, day), ""))
                .collect();
        let candidates = candidate_pairs(&records, 4);
        assert_eq!(candidates.pairs, vec![(0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (4, 5)]);
        assert_eq!(candidates.n_refined_blocks, 1);
        assert_eq!(candidates.n_oversized_blocks, 0);

        // Without a birth date the refinement has nothing to split on: no pairs.
        let records: Vec<Features> = (0..5).map(|_| features("Joseph", "Smith", None, "")).collect();
        let candidates = candidate_pairs(&records, 4);
        assert!(candidates.pairs.is_empty());
        assert_eq!((candidates.n_refined_blocks, candidates.n_oversized_blocks), (1, 1));

        // An identifier shared by more records than the cap has no refinement: skipped.
        let records: Vec<Features> =
            (0..5).map(|_| Features { national_id: "12345".into(), ..Features::default() }).collect();
        let candidates = candidate_pairs(&records, 4);
        assert!(candidates.pairs.is_empty());
        assert_eq!(candidates.n_oversized_blocks, 1);
    }
}
