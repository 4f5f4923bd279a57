//! Field names of the typed model, read from serde itself, and "did you mean" suggestions.
//!
//! The structs in [`super::model`] are the single list of known keys: this asks serde which
//! fields a struct accepts instead of keeping a second, drifting table.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

struct Grab<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for Grab<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("introspection only"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("introspection only"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The keys a model struct accepts (its serde field names).
pub fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut out: &'static [&'static str] = &[];
    let _ = T::deserialize(Grab(&mut out));
    out
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest known name, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    known
        .into_iter()
        .map(|k| (distance(word, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// "unknown key `x`" with a did-you-mean when one fits.
pub fn unknown_key_message<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    match suggest(word, known) {
        Some(s) => format!("unknown key {word:?} (did you mean {s:?}?)"),
        None => format!("unknown key {word:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::{Healthcheck, Service};

    #[test]
    fn reads_field_names_from_serde() {
        let f = fields_of::<Service>();
        assert!(f.contains(&"image") && f.contains(&"volumes_from"));
        assert!(!f.contains(&"extensions"));
        assert!(fields_of::<Healthcheck>().contains(&"start_period"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("imgae", ["image", "ports"]), Some("image"));
        assert_eq!(suggest("enviroment", ["environment"]), Some("environment"));
        assert_eq!(suggest("zzzzzz", ["image"]), None);
    }
}
