//! JSON lines: find one top-level member of an object without building the
//! object. Strings without escapes are borrowed from the line.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The member `"ipintel"` that enrichment adds.
pub const MEMBER: &str = "ipintel";

/// What a line holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Probe<'a> {
    /// The named member: `Some(Ok(text))` for a string, `Some(Err(()))`
    /// for any other JSON value, `None` when absent.
    pub value: Option<Result<Cow<'a, str>, ()>>,
    /// Number of members of the object.
    pub members: usize,
    /// The object already has an `ipintel` member.
    pub has_member: bool,
}

/// Reads `line` as one JSON object, or `None` if it is not one.
pub fn probe<'a>(line: &'a [u8], field: &str) -> Option<Probe<'a>> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let found = Seek { field }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(found)
}

struct Seek<'f> {
    field: &'f str,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = Probe<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = Probe<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Probe {
            value: None,
            members: 0,
            has_member: false,
        };
        while let Some(Member(key)) = map.next_key::<Member<'de>>()? {
            found.members += 1;
            found.has_member |= key == MEMBER;
            if found.value.is_none() && key == self.field {
                let AnyText(value) = map.next_value()?;
                found.value = Some(value.ok_or(()));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A key: a string, borrowed when it has no escapes.
struct Member<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_str(TextVisitor)? {
            Some(text) => Ok(Member(text)),
            None => Err(serde::de::Error::custom("a key must be a string")),
        }
    }
}

/// Any value: `Some(text)` for a string, `None` for anything else.
struct AnyText<'de>(Option<Cow<'de, str>>);

impl<'de> serde::Deserialize<'de> for AnyText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor).map(AnyText)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_member_and_counts_the_others() {
        let p = probe(
            br#"{"a": [1, {"ip": 2}], "ip": "1.2.3.4", "b": null}"#,
            "ip",
        )
        .unwrap();
        assert_eq!(p.value, Some(Ok(Cow::Borrowed("1.2.3.4"))));
        assert_eq!((p.members, p.has_member), (3, false));
        assert!(matches!(p.value, Some(Ok(Cow::Borrowed(_)))), "borrowed");
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let p = probe(br#"{"ip": "2001:db8::\u0031"}"#, "ip").unwrap();
        assert_eq!(p.value, Some(Ok(Cow::Borrowed("2001:db8::1"))));
    }

    #[test]
    fn other_values_and_absence() {
        let p = probe(br#"{"ip": 42, "ipintel": {}}"#, "ip").unwrap();
        assert_eq!(p.value, Some(Err(())));
        assert!(p.has_member);
        let p = probe(br#"{"other": "1.2.3.4"}"#, "ip").unwrap();
        assert_eq!(p.value, None);
        let p = probe(b"{}", "ip").unwrap();
        assert_eq!(p.members, 0);
    }

    #[test]
    fn non_objects_are_refused() {
        for line in [
            &b"[1]"[..],
            b"\"1.2.3.4\"",
            b"{\"ip\": ",
            b"{} {}",
            b"nginx line",
            b"",
        ] {
            assert_eq!(probe(line, "ip"), None, "{}", String::from_utf8_lossy(line));
        }
    }
}
