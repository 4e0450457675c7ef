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
const CPUS: &str = "a number of CPUs (e.g. 1, 0.5, 2.25; at most 3 decimals, at most 1024)";

/// A number of CPUs, possibly fractional, as thousandths of a CPU.
pub fn parse_cpus(text: &str) -> Result<u64, UnitError> {
    let err = || UnitError {
        given: text.to_string(),
        expected: CPUS,
    };
    let t = text.trim();
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 3 {
        return Err(err());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| err())?
    };
    let frac: u64 = format!("{:0<3}", frac).parse().map_err(|_| err())?;
    let millis = whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(err)?;
    if millis == 0 || millis > 1024 * 1000 {
        return Err(err());
    }
    Ok(millis)
}

/// Thousandths of a CPU as people write CPUs (`1.5`).
pub fn format_cpus(millis: u64) -> String {
    let frac = format!("{:03}", millis % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}", millis / 1000)
    } else {
        format!("{}.{}", millis / 1000, frac)
    }
}

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
    fn cpus() {
        assert_eq!(parse_cpus("1"), Ok(1000));
        assert_eq!(parse_cpus("1.5"), Ok(1500));
        assert_eq!(parse_cpus(" 0.25 "), Ok(250));
        assert_eq!(parse_cpus(".5"), Ok(500));
        assert_eq!(parse_cpus("2.125"), Ok(2125));
        for bad in [
            "",
            ".",
            "0",
            "0.0",
            "1.2345",
            "-1",
            "1e3",
            "abc",
            "1025",
            "1.5.1",
            "99999999999999999999",
        ] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        assert_eq!(format_cpus(1500), "1.5");
        assert_eq!(format_cpus(2000), "2");
        assert_eq!(format_cpus(250), "0.25");
    }

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
