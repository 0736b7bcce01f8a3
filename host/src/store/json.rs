//! Adding the host's own fields to a frame the rules wrote (a JSON
//! object's text) without parsing it: a room message's `offset`, a stored
//! notice's `stored_at`, a join answer's `epoch` and `offset`; and, once
//! a connection, setting the welcome's `session` (parsed, since the rules
//! may have written one).

use std::fmt::Write;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Whether `text` looks like a JSON object (what fields can be added to).
pub fn is_object(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('{') && t.ends_with('}')
}

/// `text` (a JSON object) with `fields` (rendered `"key":value` pairs,
/// comma-separated) as its last fields, written in place; `text` unchanged
/// if it is not an object. The keys and values are the host's own, so
/// nothing needs escaping.
pub fn with_fields(mut text: String, fields: std::fmt::Arguments<'_>) -> String {
    if !is_object(&text) {
        return text;
    }
    text.truncate(text.trim_end().len());
    text.pop();
    if !text.trim_end().ends_with('{') {
        text.push(',');
    }
    // Writing to a String cannot fail.
    let _ = text.write_fmt(fields);
    text.push('}');
    text
}

/// The top-level fields of `text` (a JSON object), in order, each value
/// as written; `None` if `text` is not a JSON object.
fn fields(text: &str) -> Option<Vec<(String, &RawValue)>> {
    struct Fields;
    impl<'de> Visitor<'de> for Fields {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = de.deserialize_map(Fields).ok()?;
    de.end().ok()?;
    Some(fields)
}

/// The top-level string field `key` of `text`, if `text` is a JSON
/// object with one.
pub fn string_field(text: &str, key: &str) -> Option<String> {
    fields(text)?
        .into_iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| serde_json::from_str(v.get()).ok())
}

/// `text` (a JSON object) with its top-level field `key` set to `value`
/// (rendered JSON, written as given): a `key` already there is taken out
/// (every one, if repeated) and `key` goes last; the other fields keep
/// their order and their values' bytes. `text` unchanged if it is not a
/// JSON object.
pub fn with_field(text: String, key: &str, value: &str) -> String {
    let Ok(key_json) = serde_json::to_string(key) else {
        return text;
    };
    let Some(fields) = fields(&text) else {
        return text;
    };
    if !fields.iter().any(|(k, _)| k == key) {
        return with_fields(text, format_args!("{key_json}:{value}"));
    }
    let mut out = String::with_capacity(text.len() + value.len());
    out.push('{');
    for (k, v) in fields.iter().filter(|(k, _)| k != key) {
        // A key read from JSON always serialises.
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        out.push_str(v.get());
        out.push(',');
    }
    let _ = write!(out, "{key_json}:{value}}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_go_last() {
        let add = |s: &str| with_fields(s.to_owned(), format_args!(r#""offset":7"#));
        assert_eq!(add(r#"{"a":1}"#), r#"{"a":1,"offset":7}"#);
        assert_eq!(add("{ }"), r#"{ "offset":7}"#);
        assert_eq!(add("{\"a\":1} \n"), r#"{"a":1,"offset":7}"#);
        assert_eq!(add("[1]"), "[1]");
        assert_eq!(add("\"x\""), "\"x\"");
    }

    #[test]
    fn a_field_is_set_once_and_last() {
        let set = |s: &str| with_field(s.to_owned(), "session", r#""tok""#);
        // Added when missing: the rest byte for byte.
        assert_eq!(
            set(r#"{"type":"welcome", "id":"a"}"#),
            r#"{"type":"welcome", "id":"a","session":"tok"}"#
        );
        assert_eq!(set("{}"), r#"{"session":"tok"}"#);
        // Replaced when there (every copy), values kept as written.
        assert_eq!(
            set(r#"{"session":"forged","type":"welcome","n":1.50,"session":2,"x":{"session":3}}"#),
            r#"{"type":"welcome","n":1.50,"x":{"session":3},"session":"tok"}"#
        );
        assert_eq!(
            set(r#"{"a\"b":"\u00e9","session":null}"#),
            r#"{"a\"b":"\u00e9","session":"tok"}"#
        );
        // Not an object, or not JSON: unchanged.
        for s in [
            "[1]",
            "\"x\"",
            "welcome alice",
            r#"{"a":1} trailing"#,
            r#"{"a":"#,
        ] {
            assert_eq!(set(s), s);
        }
    }

    #[test]
    fn string_fields_are_read_at_the_top_only() {
        let welcome = r#"{"x":{"type":"other"},"type":"welcome"}"#;
        assert_eq!(string_field(welcome, "type").as_deref(), Some("welcome"));
        assert_eq!(
            string_field(r#"{"type":"w\u0065lcome"}"#, "type").as_deref(),
            Some("welcome")
        );
        assert_eq!(string_field(r#"{"type":1}"#, "type"), None);
        assert_eq!(string_field(r#"{"x":{"type":"welcome"}}"#, "type"), None);
        assert_eq!(string_field("welcome alice", "type"), None);
    }
}
