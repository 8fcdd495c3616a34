//! String normalisation for FHIR `string` search: case, accents, punctuation and spacing.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Normalises a string for `string`-type search matching: Unicode NFD with combining marks
/// removed (so "Zoë" matches "zoe"), lower case, punctuation other than letters and digits turned
/// into spaces, runs of whitespace collapsed and trimmed.
pub fn normalize_for_search(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    for c in input.nfd() {
        if is_combining_mark(c) {
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

/// The smallest string greater than every string that starts with `prefix`, for turning a
/// prefix match into an index range scan (`value >= prefix AND value < upper`). `None` when no
/// such bound exists (the prefix is empty or made only of `char::MAX`).
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        // Skip the surrogate gap, which holds no chars.
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_accents_and_punctuation() {
        assert_eq!(normalize_for_search("  Zoë  O'Brien-Smith "), "zoe o brien smith");
        assert_eq!(normalize_for_search("ÉMILE"), "emile");
        assert_eq!(normalize_for_search("..."), "");
    }

    #[test]
    fn upper_bound_follows_every_extension() {
        let upper = prefix_upper_bound("smi").unwrap();
        assert_eq!(upper, "smj");
        assert!("smith" < upper.as_str() && "smi" < upper.as_str());
        assert_eq!(prefix_upper_bound(""), None);
    }
}
