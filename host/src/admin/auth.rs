//! Bearer-token checks for the admin interface.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use super::AdminError;
use crate::config::AdminConfig;

/// Refuse settings that would leave the admin interface open to others.
pub fn validate(config: &AdminConfig) -> Result<(), AdminError> {
    match &config.token {
        Some(t) if !(16..=256).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(AdminError::BadToken)
        }
        Some(_) => Ok(()),
        None if config.listen.ip().is_loopback() => Ok(()),
        None => Err(AdminError::NoToken(config.listen)),
    }
}

/// Whether `headers` carry the expected token (always true without one).
pub fn authorized(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(expected) = token else {
        return true;
    };
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
