//! Value types with their own syntax: durations (`1m30s`, Go's syntax) and byte sizes (`512m`,
//! 1024-based as Docker's go-units reads them). Both print the way Docker Compose prints them.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A duration written in Go's syntax (`1h2m3.5s`, `300ms`); prints like Go's `Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Duration(pub std::time::Duration);

/// A size in bytes: `1024`, `512m`, `1.5g`, `2GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Bytes(pub i64);

/// A file mode: `0440` (octal, as YAML 1.1 and Docker Compose read a leading zero), `0o440`
/// or decimal `288`; prints as `0440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileMode(pub u32);

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0{:o}", self.0))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    /// A YAML integer is the mode's value (`0440` is octal there); text is read as octal, as
    /// compose-go casts interpolated values.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a file mode such as 0440")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FileMode, E> {
                u32::try_from(v)
                    .map(FileMode)
                    .map_err(|_| E::custom(format!("invalid file mode {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FileMode, E> {
                u32::try_from(v)
                    .map(FileMode)
                    .map_err(|_| E::custom(format!("invalid file mode {v}")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FileMode, E> {
                let t = s.trim();
                let t = t.strip_prefix("0o").unwrap_or(t);
                u32::from_str_radix(t, 8)
                    .map(FileMode)
                    .map_err(|_| E::custom(format!("invalid file mode {s:?}: expected e.g. 0440")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses Go's duration syntax. A bare number is taken as seconds.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(std::time::Duration::from_secs(n));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: f64 = 0.0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if start == i {
            return None;
        }
        let num: f64 = s[start..i].parse().ok()?;
        let ustart = i;
        while i < b.len() && !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let mult = match &s[ustart..i] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += num * mult;
    }
    Some(std::time::Duration::from_nanos(total.round() as u64))
}

impl fmt::Display for Duration {
    /// Go's `time.Duration.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns == 0 {
            return f.write_str("0s");
        }
        fn frac(v: u128, scale: u128) -> String {
            let int = v / scale;
            let rem = v % scale;
            if rem == 0 {
                return int.to_string();
            }
            let width = scale.to_string().len() - 1;
            let s = format!("{rem:0width$}");
            format!("{int}.{}", s.trim_end_matches('0'))
        }
        if ns < 1_000 {
            return write!(f, "{ns}ns");
        }
        if ns < 1_000_000 {
            return write!(f, "{}µs", frac(ns, 1_000));
        }
        if ns < 1_000_000_000 {
            return write!(f, "{}ms", frac(ns, 1_000_000));
        }
        let h = ns / 3_600_000_000_000;
        let rem = ns % 3_600_000_000_000;
        let m = rem / 60_000_000_000;
        let s = rem % 60_000_000_000;
        if h > 0 {
            write!(f, "{h}h{m}m{}s", frac(s, 1_000_000_000))
        } else if m > 0 {
            write!(f, "{m}m{}s", frac(s, 1_000_000_000))
        } else {
            write!(f, "{}s", frac(s, 1_000_000_000))
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Duration).ok_or_else(|| {
            de::Error::custom(format!("invalid duration {s:?}: expected e.g. 1m30s"))
        })
    }
}

/// Parses a size the way Docker's go-units `RAMInBytes` does (1024-based suffixes).
pub fn parse_bytes(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    let lower = t.to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(num_end);
    let num: f64 = num.parse().ok()?;
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    Some((num * mult) as i64)
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_bytes(&s)
            .map(Bytes)
            .ok_or_else(|| de::Error::custom(format!("invalid size {s:?}: expected e.g. 512m")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> String {
        Duration(parse_duration(s).unwrap()).to_string()
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(d("1m30s"), "1m30s");
        assert_eq!(d("90s"), "1m30s");
        assert_eq!(d("1h"), "1h0m0s");
        assert_eq!(d("500ms"), "500ms");
        assert_eq!(d("1.5s"), "1.5s");
        assert_eq!(d("0s"), "0s");
        assert_eq!(d("10"), "10s");
        assert!(parse_duration("10x").is_none());
    }

    #[test]
    fn sizes_are_1024_based() {
        assert_eq!(parse_bytes("512m"), Some(512 * 1024 * 1024));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("2GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("50M"), Some(52428800));
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("1.5k"), Some(1536));
        assert_eq!(parse_bytes("x"), None);
    }
}
