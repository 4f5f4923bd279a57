//! Query strings as Docker clients send them: form-encoded pairs, and the `filters`
//! parameter (JSON, either `{"key": {"value": true}}` or the older `{"key": ["value"]}`).

use std::collections::{BTreeMap, BTreeSet};

use super::errors::ApiError;

/// The decoded `key=value` pairs of a query string, in order.
pub(super) fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The last value of `key` in a query string.
pub(super) fn get(query: &str, key: &str) -> Option<String> {
    pairs(query)
        .into_iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Form decoding: `+` is a space, `%XX` a byte; a malformed escape stays as written.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// A `filters` parameter: each key with the set of values asked for.
pub(super) type Filters = BTreeMap<String, BTreeSet<String>>;

/// Parses `filters` (absent or empty: no filter), refusing keys outside `accepted` with
/// Docker's 400 `invalid filter 'KEY'`.
pub(super) fn filters(query: &str, accepted: &[&str]) -> Result<Filters, ApiError> {
    let Some(raw) = get(query, "filters").filter(|r| !r.trim().is_empty()) else {
        return Ok(Filters::new());
    };
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Values {
        Map(BTreeMap<String, bool>),
        List(Vec<String>),
    }
    let parsed: BTreeMap<String, Values> = serde_json::from_str(&raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let mut out = Filters::new();
    for (key, values) in parsed {
        if !accepted.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
        let set: BTreeSet<String> = match values {
            Values::Map(m) => m
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(v, _)| v)
                .collect(),
            Values::List(l) => l.into_iter().collect(),
        };
        out.insert(key, set);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_form_decoded() {
        assert_eq!(
            pairs("since=1700000000.5&filters=%7B%22type%22%3A%5B%22container%22%5D%7D&a=b+c"),
            [
                ("since".to_string(), "1700000000.5".to_string()),
                (
                    "filters".to_string(),
                    r#"{"type":["container"]}"#.to_string()
                ),
                ("a".to_string(), "b c".to_string()),
            ]
        );
        assert_eq!(get("x=1&x=2", "x").as_deref(), Some("2"));
        // Malformed escapes stay as written, never panic.
        assert_eq!(get("x=%zz%4", "x").as_deref(), Some("%zz%4"));
        assert_eq!(get("x=%", "x").as_deref(), Some("%"));
        assert_eq!(get("x=%e2%82%ac", "x").as_deref(), Some("€"));
    }

    #[test]
    fn filters_take_both_json_shapes_and_refuse_unknown_keys() {
        let q = "filters=%7B%22type%22%3A%7B%22container%22%3Atrue%7D%7D";
        let f = filters(q, &["type"]).unwrap_or_default();
        assert!(f["type"].contains("container"));
        let f = filters(r#"filters={"event":["start","die"]}"#, &["event"]).unwrap_or_default();
        assert_eq!(f["event"].len(), 2);
        let e = filters(r#"filters={"bogus":["x"]}"#, &["type"]).unwrap_err();
        assert_eq!(e.message, "invalid filter 'bogus'");
        assert!(filters("filters=notjson", &["type"]).is_err());
        assert!(filters("", &["type"]).is_ok_and(|f| f.is_empty()));
    }
}
