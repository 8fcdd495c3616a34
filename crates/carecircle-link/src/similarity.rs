//! String similarity for comparisons, on the hot path of training and scoring: Jaro-Winkler and
//! "at most one edit apart" without allocating for the usual short ASCII names, falling back to
//! `strsim` (same results) for longer or non-ASCII text.

/// Longest ASCII text handled by the allocation-free path (match flags are bits of a `u64`).
const MAX_FAST_LEN: usize = 64;

/// Jaro-Winkler similarity (prefix scale 0.1, at most four prefix characters, boost applied
/// above 0.7), equal to `strsim::jaro_winkler`.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if !(a.is_ascii() && b.is_ascii() && x.len() <= MAX_FAST_LEN && y.len() <= MAX_FAST_LEN) {
        return strsim::jaro_winkler(a, b);
    }
    let similarity = ascii_jaro(x, y);
    if similarity > 0.7 {
        let prefix = x.iter().zip(y).take(4).take_while(|(p, q)| p == q).count();
        similarity + 0.1 * prefix as f64 * (1.0 - similarity)
    } else {
        similarity
    }
}

/// Jaro similarity of two ASCII byte strings of at most 64 bytes.
fn ascii_jaro(x: &[u8], y: &[u8]) -> f64 {
    if x.is_empty() && y.is_empty() {
        return 1.0;
    }
    if x.is_empty() || y.is_empty() {
        return 0.0;
    }
    let search_range = (x.len().max(y.len()) / 2).saturating_sub(1);
    let (mut x_flags, mut y_flags) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, &byte) in x.iter().enumerate() {
        let low = i.saturating_sub(search_range);
        let high = y.len().min(i + search_range + 1);
        for (j, &other) in y.iter().enumerate().take(high).skip(low) {
            if y_flags & (1 << j) == 0 && other == byte {
                x_flags |= 1 << i;
                y_flags |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    // Walk the matched characters of both in order; count the positions that differ.
    let mut half_transpositions = 0usize;
    let mut remaining_y = y_flags;
    let mut remaining_x = x_flags;
    while remaining_x != 0 {
        let i = remaining_x.trailing_zeros() as usize;
        let j = remaining_y.trailing_zeros() as usize;
        if x[i] != y[j] {
            half_transpositions += 1;
        }
        remaining_x &= remaining_x - 1;
        remaining_y &= remaining_y - 1;
    }
    let transpositions = half_transpositions / 2;
    let matches = matches as f64;
    (matches / x.len() as f64 + matches / y.len() as f64 + (matches - transpositions as f64) / matches) / 3.0
}

/// Whether two strings are at most one edit apart: equal, or one substitution, insertion,
/// deletion or transposition of neighbours (optimal string alignment distance ≤ 1), counted in
/// characters.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        within_one_edit_of(a.as_bytes(), b.as_bytes())
    } else {
        let (x, y): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        within_one_edit_of(&x, &y)
    }
}

fn within_one_edit_of<T: PartialEq>(x: &[T], y: &[T]) -> bool {
    let (longer, shorter) = if x.len() >= y.len() { (x, y) } else { (y, x) };
    if longer.len() - shorter.len() > 1 {
        return false;
    }
    let Some(first) = shorter.iter().zip(longer).position(|(p, q)| p != q) else {
        // One is a prefix of the other: equal, or one character added at the end.
        return true;
    };
    if longer.len() != shorter.len() {
        return longer[first + 1..] == shorter[first..];
    }
    longer[first + 1..] == shorter[first + 1..]
        || (first + 1 < longer.len()
            && longer[first] == shorter[first + 1]
            && longer[first + 1] == shorter[first]
            && longer[first + 2..] == shorter[first + 2..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert!((jaro_winkler("martha", "marhta") - 0.961_111).abs() < 1e-5);
        assert!((jaro_winkler("dixon", "dicksonx") - 0.813_333).abs() < 1e-5);
        assert_eq!(jaro_winkler("", ""), 1.0);
        assert_eq!(jaro_winkler("abc", ""), 0.0);
        assert!(within_one_edit("joseph", "josehp"));
        assert!(within_one_edit("joseph", "josph"));
        assert!(within_one_edit("joseph", "josepha"));
        assert!(within_one_edit("joseph", "jozeph"));
        assert!(!within_one_edit("joseph", "jzoeph"));
        assert!(!within_one_edit("joseph", "jose"));
        assert!(within_one_edit("zoë", "zoe"));
    }

    proptest! {
        #[test]
        fn jaro_winkler_agrees_with_strsim(a in "[a-e]{0,12}", b in "[a-e]{0,12}") {
            prop_assert!((jaro_winkler(&a, &b) - strsim::jaro_winkler(&a, &b)).abs() < 1e-12);
        }

        #[test]
        fn one_edit_agrees_with_optimal_string_alignment(a in "[a-dé]{0,8}", b in "[a-dé]{0,8}") {
            prop_assert_eq!(within_one_edit(&a, &b), strsim::osa_distance(&a, &b) <= 1);
        }
    }
}
