//! NHS numbers from the 999 test range with a valid modulus-11 check digit.

/// The modulus-11 check digit for the first nine digits, or `None` when the number is not
/// issuable (the check computes to 10).
pub fn check_digit(first_nine: &[u8; 9]) -> Option<u8> {
    let sum: u32 = first_nine.iter().zip((2..=10u32).rev()).map(|(&d, w)| u32::from(d) * w).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => u8::try_from(c).ok(),
    }
}

/// True when `s` is ten ASCII digits whose last digit is the modulus-11 check digit of the rest.
pub fn is_valid(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() != 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut first = [0u8; 9];
    for (slot, b) in first.iter_mut().zip(bytes) {
        *slot = b - b'0';
    }
    check_digit(&first) == Some(bytes[9] - b'0')
}

/// The NHS number `999` + the six digits of `serial` (taken modulo 1,000,000) + check digit, or
/// `None` when that serial has no valid check digit.
pub fn test_range_number(serial: u32) -> Option<String> {
    let serial = serial % 1_000_000;
    let mut digits = [9u8, 9, 9, 0, 0, 0, 0, 0, 0];
    let mut rest = serial;
    for slot in digits[3..].iter_mut().rev() {
        // `rest % 10` is below 10, so the conversion cannot fail.
        *slot = u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
    let check = check_digit(&digits)?;
    let mut s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    s.push(char::from(b'0' + check));
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers() {
        // Published example of a valid NHS number.
        assert!(is_valid("9434765919"));
        assert!(!is_valid("9434765918"));
        assert!(!is_valid("943476591"));
        assert!(!is_valid("94347659a9"));
        assert_eq!(test_range_number(123_457).as_deref(), Some("9991234578"));
        assert_eq!(test_range_number(123_456), None);
        let valid = (0..1000).filter_map(test_range_number).count();
        assert!(valid > 850 && valid < 950, "{valid}");
        for s in (0..1000).filter_map(test_range_number) {
            assert!(s.starts_with("999") && is_valid(&s));
        }
    }
}
