//! What an id may be: one rule for the URL's id (net/id.rs) and a
//! notice's `to`.

/// Longest id accepted.
pub const MAX_ID_LEN: usize = 64;

/// Whether `raw` is an id: 1-64 characters of `A-Z a-z 0-9 _ . -`.
pub fn is_valid(raw: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// What may be echoed of a would-be id: it goes into an HTTP body, an
/// error frame and logs, so it is cut.
pub fn shown(raw: &str) -> String {
    raw.chars().take(MAX_ID_LEN + 8).collect()
}
