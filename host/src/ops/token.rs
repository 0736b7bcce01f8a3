//! `switchboard token --sub ID [--ttl 1h] [--issuer ISS] [--audience AUD]`:
//! a signed token (HS256 JWT, with `iat`) for
//! a client, from the secret the server is configured with.

use std::process::ExitCode;

use crate::config::cli::TokenArgs;

/// Print a token for `args.sub`; exit 2 when no secret is configured.
pub fn run(args: TokenArgs) -> ExitCode {
    let file = match crate::config::file::discover(args.config.as_deref()) {
        Ok(f) => f,
        Err(e) => return usage(&e.to_string()),
    };
    let Some(secret) = args.secret(&file) else {
        return usage(
            "no secret to sign with: pass --auth-secret, set SWITCHBOARD_AUTH_SECRET, or set [auth] secret in the settings file (--config)",
        );
    };
    // `iat` is always set (by `mint_token`): a server with a maximum age
    // needs it.
    let mut claims = crate::net::auth::Claims::new();
    let (issuer, audience) = args.issuer_audience(&file);
    if let Some(iss) = issuer {
        claims.insert("iss".into(), iss.into());
    }
    if let Some(aud) = audience {
        claims.insert("aud".into(), aud.into());
    }
    match crate::net::auth::mint_token(&secret, &args.sub, args.ttl, claims) {
        Ok(token) => super::out(&format!("{token}\n")),
        Err(e) => usage(&e.to_string()),
    }
}

/// A problem with what was asked: the usage-error exit code.
fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}
