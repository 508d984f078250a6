//! The drop point's two kinds of file (SPEC §1.1): which kind a file is,
//! from its name and its rules, and the timestamp the drop point puts in
//! its names (`KIBO_UPDATE_YYMMDDhhmmss`, `KIBO_REFRESH_YYMMDDhhmmss`).

use crate::config::JobType;

const UPDATE: &str = "_update_";
const REFRESH: &str = "_refresh_";

/// The kind of a file named `name` whose rules (or archive) make it
/// `inherited`: a name containing `_REFRESH_` is always a refresh, one
/// containing `_UPDATE_` an adjust file (case-insensitive), any other
/// name keeps what it inherits.
pub fn kind_of(name: &str, inherited: JobType) -> JobType {
    let lower = name.to_ascii_lowercase();
    if lower.contains(REFRESH) {
        JobType::Refresh
    } else if lower.contains(UPDATE) {
        JobType::Adjust
    } else {
        inherited
    }
}

/// The `YYMMDDhhmmss` stamp after `_UPDATE_` in `name`, as a number that
/// orders like the time it names (within one century).
pub fn update_stamp(name: &str) -> Option<u64> {
    stamp_after(name, UPDATE)
}

/// The `YYMMDDhhmmss` stamp after `_REFRESH_` in `name`.
pub fn refresh_stamp(name: &str) -> Option<u64> {
    stamp_after(name, REFRESH)
}

fn stamp_after(name: &str, marker: &str) -> Option<u64> {
    let lower = name.to_ascii_lowercase();
    let start = lower.find(marker)? + marker.len();
    let digits: String = lower[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    // Exactly twelve digits: anything else is not the drop point's stamp.
    if digits.len() != 12 {
        return None;
    }
    let field = |i: usize| digits[i..i + 2].parse::<u32>().ok();
    let (month, day, hour, minute, second) =
        (field(2)?, field(4)?, field(6)?, field(8)?, field(10)?);
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_decides_over_the_rules() {
        assert_eq!(
            kind_of("KIBO_UPDATE_261201120000.csv", JobType::Refresh),
            JobType::Adjust
        );
        assert_eq!(
            kind_of("kibo_update_x.csv", JobType::Refresh),
            JobType::Adjust
        );
        assert_eq!(
            kind_of("KIBO_REFRESH_261201120000.csv", JobType::Adjust),
            JobType::Refresh
        );
        assert_eq!(kind_of("stock.csv", JobType::Adjust), JobType::Adjust);
        assert_eq!(kind_of("stock.csv", JobType::Refresh), JobType::Refresh);
        // UPDATE without the underscores is an ordinary word.
        assert_eq!(kind_of("update.csv", JobType::Refresh), JobType::Refresh);
    }

    #[test]
    fn stamps_are_twelve_digits_of_a_real_time() {
        assert_eq!(
            update_stamp("KIBO_UPDATE_261201120000.csv"),
            Some(261201120000)
        );
        assert_eq!(refresh_stamp("x_refresh_261201235959"), Some(261201235959));
        assert_eq!(update_stamp("KIBO_UPDATE_2612011200.csv"), None);
        assert_eq!(update_stamp("KIBO_UPDATE_261301120000.csv"), None);
        assert_eq!(update_stamp("KIBO_REFRESH_261201120000.csv"), None);
        assert_eq!(update_stamp("KIBO_UPDATE_é.csv"), None);
    }
}
