//! Identity from signed tokens (JWT): a connection proves its id with a
//! token whose `sub` is that id, signed with the HMAC secret (HS256) or by
//! the private half of the configured public key (RS256 / ES256). Signatures,
//! `exp`, `nbf`, and the `iss` and `aud` an operator asks for are checked by
//! `jsonwebtoken`, never by hand; a token's age (`iat`, which that crate does
//! not check) against `--auth-max-age-secs` is checked here.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::config::AuthConfig;
use crate::net::id::{self, ConnId, MAX_ID_LEN};

/// A token's claims, as verified.
pub type Claims = serde_json::Map<String, serde_json::Value>;

/// Shortest HMAC secret accepted: 256 bits, the size of the HS256 digest.
pub const MIN_SECRET_BYTES: usize = 32;

/// Longest clock-skew leeway accepted (one day).
pub const MAX_LEEWAY_SECS: u64 = 24 * 3600;

/// Why the `[auth]` settings cannot be used; the server refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// A guessable secret would let anyone mint tokens.
    #[error(
        "auth secret is {len} bytes; it must be at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"
    )]
    ShortSecret {
        /// Its length in bytes.
        len: usize,
    },
    /// `[auth]` with neither a secret nor a public key.
    #[error("auth is on but names no secret and no public key")]
    NoKey,
    /// The public key file could not be read.
    #[error("cannot read the auth public key {path}: {source}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A leeway so long that expiry would mean little (and the arithmetic
    /// of the JWT crate could overflow).
    #[error("auth leeway of {secs} s is longer than the {MAX_LEEWAY_SECS} s allowed")]
    Leeway {
        /// The leeway asked for.
        secs: u64,
    },
    /// The public key file is not a usable key.
    #[error(
        "auth public key {path} is not a PEM public key of a supported kind (RSA for RS256, EC P-256 for ES256)"
    )]
    BadKey {
        /// The file.
        path: PathBuf,
    },
}

/// Why a token is refused (HTTP 401, the message as the body), or cannot be
/// made.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token in the request.
    #[error("missing token: pass ?token= or Authorization: Bearer")]
    Missing,
    /// Not a JWT, not signed by an accepted key, or claims of the wrong form.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `iat` is further back than the maximum age (beyond the leeway).
    #[error("token too old: issued {age} s ago, and this server takes tokens up to {max} s old")]
    TooOld {
        /// Seconds since its `iat`.
        age: u64,
        /// The maximum age, in seconds.
        max: u64,
    },
    /// `sub` is not something that can be an id.
    #[error(
        "invalid token: sub {0:?} is not a valid id (1-{MAX_ID_LEN} characters of A-Z a-z 0-9 _ . -)"
    )]
    BadSub(String),
    /// The URL names another id than the token.
    #[error("token sub {sub:?} does not match the id {id:?} in the URL")]
    Mismatch {
        /// The token's `sub`.
        sub: String,
        /// The URL's id.
        id: String,
    },
    /// Minting with settings that could not verify (e.g. a short secret).
    #[error(transparent)]
    Setup(#[from] AuthSetupError),
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

impl AuthError {
    /// The HTTP status a refused handshake answers with.
    pub fn status(&self) -> u16 {
        401
    }
}

/// Who a connection is: its id and, when a token proved it, the token's
/// claims.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The id the connection may use.
    pub id: ConnId,
    /// Every claim of the verified token (`sub`, `exp` and the issuer's
    /// own); `None` when ids are trusted from the URL.
    pub claims: Option<Claims>,
}

/// Checks tokens against the configured keys. Built once at start, so a bad
/// key stops the server instead of refusing every client.
pub struct Verifier {
    /// One key per accepted algorithm; a token's `alg` picks its key, so a
    /// token cannot choose to be checked as HMAC with the public key.
    keys: Vec<(Algorithm, DecodingKey, Validation)>,
    /// The oldest a token may be by its `iat`, in seconds (`None`: any).
    max_age: Option<u64>,
    /// Clock skew tolerated, in seconds.
    leeway: u64,
}

impl std::fmt::Debug for Verifier {
    // The keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<_> = self.keys.iter().map(|(alg, ..)| alg).collect();
        f.debug_struct("Verifier")
            .field("algorithms", &algs)
            .field("max_age", &self.max_age)
            .finish()
    }
}

/// The verifier `config` asks for. Without one, says once (at start) that
/// anyone may connect as any id.
pub fn verifier(config: Option<&AuthConfig>) -> Result<Option<Verifier>, AuthSetupError> {
    match config {
        Some(config) => Verifier::new(config).map(Some),
        None => {
            tracing::warn!(
                "ids are not authenticated: anyone can connect as any id (set [auth] secret or public_key to require signed tokens)"
            );
            Ok(None)
        }
    }
}

impl Verifier {
    /// Load the keys named by `config`.
    pub fn new(config: &AuthConfig) -> Result<Verifier, AuthSetupError> {
        let leeway = config.leeway.as_secs();
        if leeway > MAX_LEEWAY_SECS {
            return Err(AuthSetupError::Leeway { secs: leeway });
        }
        let mut keys = Vec::new();
        if let Some(secret) = &config.secret {
            check_secret(secret)?;
            // `from_secret` fails only for an empty secret, refused above.
            let key = DecodingKey::from_secret(secret.as_bytes())
                .map_err(|_| AuthSetupError::ShortSecret { len: 0 })?;
            keys.push((Algorithm::HS256, key, validation(Algorithm::HS256, config)));
        }
        if let Some(path) = &config.public_key {
            let (alg, key) = public_key(path)?;
            keys.push((alg, key, validation(alg, config)));
        }
        if keys.is_empty() {
            return Err(AuthSetupError::NoKey);
        }
        Ok(Verifier {
            keys,
            max_age: config.max_age.map(|d| d.as_secs()),
            leeway,
        })
    }

    /// The algorithms accepted, e.g. `HS256` or `HS256, ES256` (for the
    /// start log).
    pub fn algorithms(&self) -> String {
        let names: Vec<_> = self
            .keys
            .iter()
            .map(|(alg, ..)| format!("{alg:?}"))
            .collect();
        names.join(", ")
    }

    /// The identity `token` proves. `url_id` is the id the URL names, if
    /// any: it must be the token's `sub`.
    pub fn verify(
        &self,
        token: Option<&str>,
        url_id: Option<&ConnId>,
    ) -> Result<Identity, AuthError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Invalid("not a JWT (header.payload.signature)".into()))?;
        let Some((_, key, validation)) = self.keys.iter().find(|(alg, ..)| *alg == header.alg)
        else {
            let accepted: Vec<_> = self
                .keys
                .iter()
                .map(|(alg, ..)| format!("{alg:?}"))
                .collect();
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted (this server takes {})",
                header.alg,
                accepted.join(", ")
            )));
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| match e.kind() {
                // jsonwebtoken looks for the required claims in a set's
                // order, which changes from run to run: name the first
                // missing one in a fixed order instead (exp, iss, aud).
                ErrorKind::MissingRequiredClaim(_) => {
                    let order = ["exp", "iss", "aud"];
                    let required: Vec<&str> = order
                        .into_iter()
                        .filter(|c| validation.required_spec_claims.contains(*c))
                        .collect();
                    let first = first_missing(token, &required);
                    refusal(&first.map_or_else(
                        || e.kind().clone(),
                        |c| ErrorKind::MissingRequiredClaim(c.to_owned()),
                    ))
                }
                kind => refusal(kind),
            })?
            .claims;
        self.check_age(&claims)?;
        let sub = match claims.get("sub") {
            Some(serde_json::Value::String(sub)) => sub,
            Some(_) => return Err(AuthError::Invalid("sub is not a string".into())),
            None => return Err(AuthError::Invalid("no sub claim (the id)".into())),
        };
        let id = ConnId::parse(sub).map_err(|_| AuthError::BadSub(id::shown(sub)))?;
        if let Some(url_id) = url_id
            && *url_id != id
        {
            return Err(AuthError::Mismatch {
                sub: id.to_string(),
                id: url_id.to_string(),
            });
        }
        Ok(Identity {
            id,
            claims: Some(claims),
        })
    }

    /// With a maximum age: the token has a numeric `iat`, not in the future
    /// and not older than the maximum (each beyond the leeway).
    fn check_age(&self, claims: &Claims) -> Result<(), AuthError> {
        let Some(max) = self.max_age else {
            return Ok(());
        };
        // A NumericDate may have a fraction; whole seconds are enough here.
        let iat = claims
            .get("iat")
            .and_then(serde_json::Value::as_f64)
            .filter(|t| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| {
                AuthError::Invalid(
                    "no numeric iat claim (this server limits how old a token may be)".into(),
                )
            })?;
        // Saturates for an absurd `iat`, which is then in the future.
        let iat = iat as u64;
        let now = now_secs();
        if iat > now.saturating_add(self.leeway) {
            return Err(AuthError::Invalid(
                "issued in the future (iat is past the clock)".into(),
            ));
        }
        let age = now.saturating_sub(iat);
        if age > max.saturating_add(self.leeway) {
            return Err(AuthError::TooOld { age, max });
        }
        Ok(())
    }
}

/// What `jsonwebtoken` checks for us: the signature with `alg` only, `exp`
/// present and not past, `nbf` if present; with an issuer, `iss` present and
/// that one; with an audience, `aud` present and naming it. Without an
/// audience an `aud` claim is the issuer's business.
fn validation(alg: Algorithm, config: &AuthConfig) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(issuer) = &config.issuer {
        v.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &config.audience {
        Some(audience) => {
            v.set_audience(&[audience]);
            v.validate_aud = true;
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v
}

/// The first of `required` the payload of `token` lacks (the signature was
/// checked before any claim was looked for), if it can be read.
fn first_missing<'c>(token: &str, required: &[&'c str]) -> Option<&'c str> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    required.iter().copied().find(|c| !claims.contains_key(*c))
}

/// The reason given for a token `jsonwebtoken` refused. Our own words: the
/// crate's messages may change, and none of them may carry the token.
fn refusal(kind: &ErrorKind) -> AuthError {
    let invalid = |s: &str| AuthError::Invalid(s.to_owned());
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::InvalidSignature => invalid("bad signature"),
        ErrorKind::ImmatureSignature => invalid("not valid yet (nbf is in the future)"),
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => {
            invalid("no numeric exp claim (a token must expire)")
        }
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => {
            invalid("no iss claim (this server takes tokens of one issuer)")
        }
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => {
            invalid("no aud claim (this server takes tokens for its audience only)")
        }
        ErrorKind::InvalidIssuer => invalid("iss is not the issuer this server takes"),
        ErrorKind::InvalidAudience => invalid("aud does not name this server's audience"),
        ErrorKind::MissingRequiredClaim(c) => AuthError::Invalid(format!("no {c} claim")),
        ErrorKind::InvalidClaimFormat(c) => {
            AuthError::Invalid(format!("claim {c} has the wrong type"))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            invalid("algorithm not accepted")
        }
        ErrorKind::Json(_) => invalid("the payload is not a JSON object"),
        _ => invalid("malformed"),
    }
}

/// Load a PEM public key: RSA → RS256, EC P-256 → ES256.
fn public_key(path: &Path) -> Result<(Algorithm, DecodingKey), AuthSetupError> {
    let pem = std::fs::read(path).map_err(|source| AuthSetupError::ReadKey {
        path: path.to_owned(),
        source,
    })?;
    let bad = || AuthSetupError::BadKey {
        path: path.to_owned(),
    };
    let provider = CryptoProvider::try_get_default().ok_or_else(bad)?;
    let candidates = [
        (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem)),
        (Algorithm::ES256, DecodingKey::from_ec_pem(&pem)),
    ];
    // Parsing the PEM does not check the key itself; building a verifier
    // does (an RSA private key, or an EC key on another curve, fails here).
    candidates
        .into_iter()
        .filter_map(|(alg, key)| Some((alg, key.ok()?)))
        .find(|(alg, key)| (provider.verifier_factory)(alg, key).is_ok())
        .ok_or_else(bad)
}

/// Make an HS256 token for `sub` valid for `ttl` (for `switchboard token`
/// and tests; a real deployment mints them in its own backend). `extra`
/// claims are added; `sub`, `iat` and `exp` are always the ones given here.
pub fn mint_token(
    secret: &str,
    sub: &str,
    ttl: Duration,
    extra: Claims,
) -> Result<String, AuthError> {
    check_secret(secret)?;
    let sub = ConnId::parse(sub).map_err(|_| AuthError::BadSub(id::shown(sub)))?;
    let now = now_secs();
    // Round up: a sub-second ttl must not make a token that is born expired.
    let ttl = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let mut claims = extra;
    claims.insert("sub".into(), sub.as_str().into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(ttl).into());
    let key =
        EncodingKey::from_secret(secret.as_bytes()).map_err(|e| AuthError::Sign(e.to_string()))?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|e| AuthError::Sign(e.to_string()))
}

fn check_secret(secret: &str) -> Result<(), AuthSetupError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(AuthSetupError::ShortSecret { len: secret.len() });
    }
    Ok(())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn hs256(claims: serde_json::Value, secret: &str) -> String {
        let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    fn verifier(leeway: u64) -> Verifier {
        Verifier::new(&AuthConfig {
            secret: Some(SECRET.into()),
            public_key: None,
            leeway: Duration::from_secs(leeway),
            ..AuthConfig::default()
        })
        .unwrap()
    }

    fn reason(v: &Verifier, token: &str) -> String {
        v.verify(Some(token), None).unwrap_err().to_string()
    }

    #[test]
    fn minted_tokens_verify_with_their_claims() {
        let mut extra = Claims::new();
        extra.insert("sub".into(), "mallory".into());
        extra.insert("room".into(), "lobby".into());
        let t = mint_token(SECRET, "alice", Duration::from_secs(3600), extra).unwrap();
        let who = verifier(0).verify(Some(&t), None).unwrap();
        assert_eq!(who.id.as_str(), "alice", "the given sub wins over extra");
        let claims = who.claims.unwrap();
        assert_eq!(claims["room"], "lobby");
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, 3600);
        assert!(matches!(
            mint_token("short", "alice", Duration::from_secs(1), Claims::new()),
            Err(AuthError::Setup(AuthSetupError::ShortSecret { len: 5 }))
        ));
        assert!(matches!(
            mint_token(SECRET, "a b", Duration::from_secs(1), Claims::new()),
            Err(AuthError::BadSub(_))
        ));
    }

    #[test]
    fn each_bad_token_gets_its_reason() {
        let v = verifier(30);
        let now = now_secs();
        let t = |c: serde_json::Value| hs256(c, SECRET);
        assert_eq!(
            reason(&v, &t(serde_json::json!({"sub": "a", "exp": now - 60}))),
            "token expired"
        );
        // Within the leeway it is still good.
        assert!(
            v.verify(
                Some(&t(serde_json::json!({"sub": "a", "exp": now - 10}))),
                None
            )
            .is_ok()
        );
        assert_eq!(
            reason(&v, &t(serde_json::json!({"sub": "a"}))),
            "invalid token: no numeric exp claim (a token must expire)"
        );
        assert_eq!(
            reason(&v, &t(serde_json::json!({"sub": "a", "exp": "tomorrow"}))),
            "invalid token: no numeric exp claim (a token must expire)"
        );
        assert_eq!(
            reason(
                &v,
                &t(serde_json::json!({"sub": "a", "exp": now + 60, "nbf": "now"}))
            ),
            "invalid token: claim nbf has the wrong type"
        );
        assert_eq!(
            reason(&v, &t(serde_json::json!({"exp": now + 60}))),
            "invalid token: no sub claim (the id)"
        );
        assert_eq!(
            reason(&v, &t(serde_json::json!({"sub": 7, "exp": now + 60}))),
            "invalid token: sub is not a string"
        );
        assert!(
            reason(&v, &t(serde_json::json!({"sub": "a/b", "exp": now + 60})))
                .starts_with("invalid token: sub \"a/b\" is not a valid id")
        );
        assert_eq!(
            reason(
                &v,
                &t(serde_json::json!({"sub": "a", "exp": now + 60, "nbf": now + 600}))
            ),
            "invalid token: not valid yet (nbf is in the future)"
        );
        let other = hs256(
            serde_json::json!({"sub": "a", "exp": now + 60}),
            "another secret, also thirty-two bytes long",
        );
        assert_eq!(reason(&v, &other), "invalid token: bad signature");
        for junk in ["abc", "a.b.c", "....", "e30.e30.", "\u{0}"] {
            assert!(reason(&v, junk).starts_with("invalid token: "), "{junk}");
        }
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &serde_json::json!({"sub": "a", "exp": now + 60}),
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            reason(&v, &hs384),
            "invalid token: algorithm HS384 is not accepted (this server takes HS256)"
        );
        assert!(matches!(v.verify(None, None), Err(AuthError::Missing)));
        assert!(matches!(v.verify(Some(""), None), Err(AuthError::Missing)));
    }

    #[test]
    fn issuer_audience_and_age_are_checked_when_asked_for() {
        let v = Verifier::new(&AuthConfig {
            secret: Some(SECRET.into()),
            leeway: Duration::from_secs(5),
            issuer: Some("https://login.example".into()),
            audience: Some("chat".into()),
            max_age: Some(Duration::from_secs(60)),
            ..AuthConfig::default()
        })
        .unwrap();
        let now = now_secs();
        let t = |c: serde_json::Value| hs256(c, SECRET);
        let good = serde_json::json!({
            "sub": "a", "exp": now + 600, "iat": now - 30,
            "iss": "https://login.example", "aud": ["other", "chat"],
        });
        assert!(v.verify(Some(&t(good.clone())), None).is_ok());
        let with = |key: &str, value: serde_json::Value| {
            let mut c = good.clone();
            match value {
                serde_json::Value::Null => c.as_object_mut().unwrap().remove(key),
                value => c.as_object_mut().unwrap().insert(key.into(), value),
            };
            reason(&v, &t(c))
        };
        assert_eq!(
            with("iss", "https://evil.example".into()),
            "invalid token: iss is not the issuer this server takes"
        );
        assert_eq!(
            with("iss", serde_json::Value::Null),
            "invalid token: no iss claim (this server takes tokens of one issuer)"
        );
        assert_eq!(
            with("aud", "other".into()),
            "invalid token: aud does not name this server's audience"
        );
        assert_eq!(
            with("aud", serde_json::Value::Null),
            "invalid token: no aud claim (this server takes tokens for its audience only)"
        );
        // Both missing: always the same one named (jsonwebtoken's own
        // order changes from call to call).
        let mut neither = good.clone();
        neither.as_object_mut().unwrap().remove("iss");
        neither.as_object_mut().unwrap().remove("aud");
        for _ in 0..32 {
            assert_eq!(
                reason(&v, &t(neither.clone())),
                "invalid token: no iss claim (this server takes tokens of one issuer)"
            );
        }
        assert_eq!(
            with("iat", (now - 100).into()),
            "token too old: issued 100 s ago, and this server takes tokens up to 60 s old"
        );
        // Within the leeway it is still young enough.
        let mut young = good.clone();
        young["iat"] = (now - 63).into();
        assert!(v.verify(Some(&t(young)), None).is_ok());
        assert_eq!(
            with("iat", serde_json::Value::Null),
            "invalid token: no numeric iat claim (this server limits how old a token may be)"
        );
        assert_eq!(
            with("iat", "yesterday".into()),
            "invalid token: no numeric iat claim (this server limits how old a token may be)"
        );
        assert_eq!(
            with("iat", (now + 3600).into()),
            "invalid token: issued in the future (iat is past the clock)"
        );
        assert!(format!("{v:?}").contains("max_age"));
        assert_eq!(v.algorithms(), "HS256");
        // Without them, none of it is asked.
        let plain = serde_json::json!({"sub": "a", "exp": now + 600, "aud": "x", "iss": "y"});
        assert!(verifier(0).verify(Some(&t(plain)), None).is_ok());
    }

    #[test]
    fn settings_that_cannot_verify_stop_the_start() {
        let with = |secret: Option<&str>, key: Option<PathBuf>| {
            Verifier::new(&AuthConfig {
                secret: secret.map(str::to_owned),
                public_key: key,
                leeway: Duration::ZERO,
                ..AuthConfig::default()
            })
        };
        assert!(matches!(
            with(Some(&SECRET[1..]), None),
            Err(AuthSetupError::ShortSecret { len: 31 })
        ));
        assert!(matches!(with(None, None), Err(AuthSetupError::NoKey)));
        let long = Verifier::new(&AuthConfig {
            secret: Some(SECRET.into()),
            public_key: None,
            leeway: Duration::from_secs(u64::MAX / 2),
            ..AuthConfig::default()
        });
        assert!(matches!(long, Err(AuthSetupError::Leeway { .. })));
        let missing = std::env::temp_dir().join("switchboard-no-such-key.pem");
        let e = with(None, Some(missing)).unwrap_err();
        assert!(matches!(e, AuthSetupError::ReadKey { .. }), "{e}");
        let junk =
            std::env::temp_dir().join(format!("switchboard-junk-key-{}.pem", std::process::id()));
        std::fs::write(
            &junk,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let e = with(Some(SECRET), Some(junk.clone())).unwrap_err();
        let _ = std::fs::remove_file(&junk);
        assert!(matches!(e, AuthSetupError::BadKey { .. }), "{e}");
        assert!(format!("{:?}", verifier(0)).contains("HS256"));
        assert!(!format!("{:?}", verifier(0)).contains(SECRET));
    }
}
