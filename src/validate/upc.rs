//! UPC rules (SPEC §4.3): GTIN lengths, scientific notation, dropped leading
//! zeros and the GS1 check digit.

/// What checking a UPC found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpcCheck {
    /// Usable as is.
    Valid(String),
    /// 9–11 digits: padded to 12 (`upc-zeros-restored`).
    Restored(String),
    /// `1.23457E+11`: digits lost (`upc-scientific`).
    Scientific,
    /// Not digits, or a length that is no GTIN (`upc-invalid`).
    Invalid,
}

/// Checks a UPC's shape; the check digit is separate ([`check_digit_ok`]).
pub fn check(value: &str) -> UpcCheck {
    if is_scientific(value) {
        return UpcCheck::Scientific;
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return UpcCheck::Invalid;
    }
    match value.len() {
        8 | 12 | 13 | 14 => UpcCheck::Valid(value.to_string()),
        9..=11 => UpcCheck::Restored(format!("{value:0>12}")),
        _ => UpcCheck::Invalid,
    }
}

/// `1.23457E+11`, `1E11`, `3.6e+11`: what a spreadsheet writes for a long
/// number it shows in scientific notation.
fn is_scientific(value: &str) -> bool {
    let Some((mantissa, exponent)) = value.split_once(['e', 'E']) else {
        return false;
    };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    let (whole, fraction) = mantissa.split_once(['.', ',']).unwrap_or((mantissa, "0"));
    !whole.is_empty()
        && !exponent.is_empty()
        && [whole, fraction, exponent]
            .iter()
            .all(|part| part.bytes().all(|b| b.is_ascii_digit()))
}

/// GS1 mod-10: weights 3 and 1 from the right, excluding the check digit.
pub fn check_digit_ok(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    let Some((&last, body)) = bytes.split_last() else {
        return false;
    };
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(last - b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtin_lengths() {
        assert_eq!(
            check("036000291452"),
            UpcCheck::Valid("036000291452".into())
        );
        assert_eq!(check("96385074"), UpcCheck::Valid("96385074".into()));
        assert_eq!(
            check("4006381333931"),
            UpcCheck::Valid("4006381333931".into())
        );
        assert_eq!(
            check("10036000291459"),
            UpcCheck::Valid("10036000291459".into())
        );
        assert_eq!(check("1234567"), UpcCheck::Invalid);
        assert_eq!(check("123456789012345"), UpcCheck::Invalid);
        assert_eq!(check("03600029145A"), UpcCheck::Invalid);
        assert_eq!(check("0360-0029145"), UpcCheck::Invalid);
    }

    #[test]
    fn dropped_zeros_are_restored() {
        assert_eq!(
            check("36000291452"),
            UpcCheck::Restored("036000291452".into())
        );
        assert_eq!(
            check("600029145"),
            UpcCheck::Restored("000600029145".into())
        );
    }

    #[test]
    fn scientific_notation_is_recognised() {
        assert_eq!(check("1.23457E+11"), UpcCheck::Scientific);
        assert_eq!(check("3.6E11"), UpcCheck::Scientific);
        assert_eq!(check("1e11"), UpcCheck::Scientific);
        assert_eq!(check("3,60003E+11"), UpcCheck::Scientific);
        assert_eq!(check("E11"), UpcCheck::Invalid);
    }

    #[test]
    fn check_digits() {
        assert!(check_digit_ok("036000291452"));
        assert!(!check_digit_ok("036000291453"));
        assert!(check_digit_ok("4006381333931"));
        assert!(check_digit_ok("96385074"));
        assert!(check_digit_ok("00036000291452"));
    }
}
