//! Durations and sizes as people write them in flags and config files.

use std::fmt;
use std::time::Duration;

/// A duration or size that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    pub given: String,
    pub expected: &'static str,
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not {}", self.given, self.expected)
    }
}

impl std::error::Error for UnitError {}

const DURATION: &str = "a duration (e.g. 90, 90s, 15m, 2h)";
const SIZE: &str = "a size (e.g. 4096, 512K, 256M, 2G)";

fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let number = text[..digits].parse().ok()?;
    Some((number, text[digits..].trim()))
}

/// Seconds when no unit is given; `s`, `m`, `h` otherwise. Zero is refused:
/// a timeout of nothing is a mistake, not a policy.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let err = || UnitError {
        given: text.to_string(),
        expected: DURATION,
    };
    let (n, unit) = split_number(text.trim()).ok_or_else(err)?;
    let secs = match unit {
        "" | "s" | "sec" | "secs" => Some(n),
        "m" | "min" | "mins" => n.checked_mul(60),
        "h" | "hour" | "hours" => n.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(err)?;
    if secs == 0 {
        return Err(err());
    }
    Ok(Duration::from_secs(secs))
}

/// Bytes when no unit is given; `K`, `M`, `G`, `T` (powers of 1024, with or
/// without a trailing `B` or `iB`) otherwise.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let err = || UnitError {
        given: text.to_string(),
        expected: SIZE,
    };
    let (n, unit) = split_number(text.trim()).ok_or_else(err)?;
    let upper = unit.to_ascii_uppercase();
    let shift = match upper.trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(err()),
    };
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(err)?;
    if bytes == 0 {
        return Err(err());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        for bad in ["", "0", "m", "5x", "-5", "1.5h", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
        for bad in ["", "0", "M", "12Q", "-1", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
