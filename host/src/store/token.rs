//! Random tokens: room epochs and session tokens.

use std::sync::Arc;

/// The alphabet of tokens: `a-z 2-7`, 5 bits a character.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Characters of a session token: 120 random bits, the only proof a
/// resume needs.
const SESSION_LEN: usize = 24;

/// The operating system's randomness could not be read.
#[derive(Debug, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub struct NoRandomness(String);

/// A new epoch: 8 random characters of `a-z 2-7` (40 bits): a log that
/// restarts gets a different one, whatever happened in between. Without
/// the OS's randomness the clock still makes a restarted log's epoch
/// differ (an epoch only has to differ, not be secret).
pub fn new_epoch() -> Arc<str> {
    let token = random_token(8, fill_os).unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        encode(nanos.to_le_bytes().iter().cycle().take(8).copied())
    });
    token.into()
}

/// A new session token (24 characters, 120 random bits), or `None` when
/// the OS gives no randomness: then the connection gets no session (it
/// works, but cannot be resumed). A session is a credential: never made
/// from anything guessable such as the clock.
pub fn new_session() -> Option<String> {
    session_from(fill_os)
}

/// [`new_session`] with the randomness from `fill`.
fn session_from(fill: impl FnOnce(&mut [u8]) -> Result<(), NoRandomness>) -> Option<String> {
    random_token(SESSION_LEN, fill)
        .inspect_err(|e| tracing::error!(error = %e, "no session issued: a resume is impossible"))
        .ok()
}

/// `len` random characters of `a-z 2-7`, from `fill`.
fn random_token(
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), NoRandomness>,
) -> Result<String, NoRandomness> {
    let mut bytes = vec![0u8; len];
    fill(&mut bytes)?;
    Ok(encode(bytes))
}

/// The operating system's randomness.
fn fill_os(bytes: &mut [u8]) -> Result<(), NoRandomness> {
    getrandom::fill(bytes).map_err(|e| NoRandomness(e.to_string()))
}

/// One character of the alphabet per byte (its low 5 bits).
fn encode(bytes: impl IntoIterator<Item = u8>) -> String {
    bytes
        .into_iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_and_of_the_alphabet() {
        let (a, b) = (new_session(), new_session());
        let a = a.expect("the test machine has randomness");
        assert_eq!(a.len(), SESSION_LEN);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)), "{a}");
        assert_ne!(Some(a), b);
    }

    #[test]
    fn without_randomness_no_session_is_issued() {
        let failing = |_: &mut [u8]| Err(NoRandomness("unavailable".into()));
        assert_eq!(session_from(failing), None);
        // The same source that works gives one.
        let fixed = |b: &mut [u8]| {
            b.fill(7);
            Ok(())
        };
        assert_eq!(session_from(fixed).as_deref(), Some(&"h".repeat(24)[..]));
    }

    #[test]
    fn epochs_differ() {
        assert_ne!(new_epoch(), new_epoch());
        assert_eq!(new_epoch().len(), 8);
    }
}
