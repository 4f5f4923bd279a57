//! Sizes (`512m`) and durations (`1m30s`) as Compose writes them.
//!
//! Both have one parser used by the normaliser, and a serde form that prints what
//! `docker compose config` prints (bytes as a number, durations in Go's notation).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub u64);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Bytes(n)),
            Raw::S(s) => parse_size(&s).map(Bytes).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `1024`, `512k`, `512m`, `1g`, `1.5gb`, `2GiB` (binary multiples, as Docker does).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected a number with an optional unit b, k, m, g, t"
        ));
    }
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: {num:?} is not a number"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (use b, k, m, g, t)"
            ));
        }
    };
    let v = n * mult as f64;
    if !v.is_finite() || v > u64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    Ok(v as u64)
}

/// A duration that prints in Go notation (`1m30s`), as Compose files and `docker compose config` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// The std duration.
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_go(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Duration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses Go-style durations: `90s`, `1m30s`, `1h`, `500ms`, `1.5s`, `10us`, `0`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if t.is_empty() {
        return Err("invalid duration \"\": empty".into());
    }
    let bad = || format!("invalid duration {s:?}: expected e.g. 30s, 1m30s, 500ms, 2h");
    let mut total: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if n_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..u_end];
        rest = &rest[u_end..];
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            _ => return Err(bad()),
        };
        total += n * nanos;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("invalid duration {s:?}: too large"));
    }
    Ok(std::time::Duration::from_nanos(total as u64))
}

/// Formats like Go's `time.Duration.String()`: `1m30s`, `1h0m0s`, `500ms`, `0s`.
pub fn format_go(d: std::time::Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (div, unit) = if nanos < 1_000 {
            (1u128, "ns")
        } else if nanos < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{}", frac(nanos, div), unit);
    }
    let h = nanos / 3_600_000_000_000;
    let m = (nanos / 60_000_000_000) % 60;
    let s_nanos = nanos % 60_000_000_000;
    let s = frac(s_nanos, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

fn frac(n: u128, div: u128) -> String {
    let whole = n / div;
    let rem = n % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("12q").unwrap_err().contains("unknown unit"));
        assert!(parse_size("m").is_err());
    }

    #[test]
    fn durations_round_trip_in_go_notation() {
        for (input, secs_ms, out) in [
            ("1m30s", 90_000u64, "1m30s"),
            ("90s", 90_000, "1m30s"),
            ("1h", 3_600_000, "1h0m0s"),
            ("500ms", 500, "500ms"),
            ("1.5s", 1_500, "1.5s"),
            ("2s", 2_000, "2s"),
            ("0", 0, "0s"),
        ] {
            let d = parse_duration(input).unwrap();
            assert_eq!(d.as_millis() as u64, secs_ms, "{input}");
            assert_eq!(format_go(d), out, "{input}");
        }
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("s").is_err());
    }
}
