//! Adding the host's own fields to a frame the rules wrote (a JSON
//! object's text) without parsing it: a room message's `offset`, a stored
//! notice's `stored_at`, a join answer's `epoch` and `offset`.

use std::fmt::Write;

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
}
