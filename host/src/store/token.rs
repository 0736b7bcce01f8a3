//! Random tokens: room epochs and session tokens.

use std::sync::Arc;

/// A new epoch: 8 random characters of `a-z 2-7` (40 bits): a log that
/// restarts gets a different one, whatever happened in between.
pub fn new_epoch() -> Arc<str> {
    random_token(8).into()
}

/// `len` random characters of `a-z 2-7` (5 bits each), from the operating
/// system's randomness.
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = vec![0u8; len];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: time still makes a restarted log's epoch differ.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for (b, t) in bytes.iter_mut().zip(nanos.to_le_bytes().iter().cycle()) {
            *b = *t;
        }
    }
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect()
}
