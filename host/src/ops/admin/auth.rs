//! The admin interface's bearer token: which one, and checking it.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use super::{AdminError, token_file};
use crate::config::AdminConfig;

/// The token every `/admin/*` request must carry: the configured one, or
/// a random one written to `token_file` (and logged by path, never by
/// value).
pub fn token(config: &AdminConfig) -> Result<String, AdminError> {
    if let Some(t) = &config.token {
        if !(16..=256).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminError::BadToken);
        }
        return Ok(t.clone());
    }
    let token = token_file::generate().map_err(|e| AdminError::Random(e.to_string()))?;
    token_file::write(&config.token_file, &token).map_err(|source| AdminError::TokenFile {
        path: config.token_file.clone(),
        source,
    })?;
    tracing::info!(
        file = %config.token_file.display(),
        "admin token made for this run (readable by this user only; `switchboard policy` reads it)"
    );
    Ok(token)
}

/// Whether `headers` carry the expected token.
pub fn authorized(headers: &HeaderMap, expected: &str) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Compare digests so the time taken says nothing about how much of the
    // token was right.
    let (a, b) = (Sha256::digest(given.trim()), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
