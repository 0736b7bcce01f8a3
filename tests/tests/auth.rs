//! Identity with signed tokens: with `[auth]` set, a connection must carry a
//! JWT (`?token=` or `Authorization: Bearer`) whose `sub` is its id; every
//! kind of bad token is refused with HTTP 401 and its reason; keys that
//! cannot verify stop the server at start.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use switchboard::chat::record::{Event, Recorded};
use switchboard::config::{AuthConfig, Config};
use switchboard::net::auth::{Claims, mint_token};
use switchboard::net::server::{Server, ServerError};
use switchboard_tests::{Client, Io, TestServer, WAIT, tolerant_config};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET: &str = "test secret that is long enough for HS256";

const MISSING: &str = "missing token: pass ?token= or Authorization: Bearer\n";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A config with HS256 tokens on.
fn auth_config() -> Config {
    let mut config = tolerant_config();
    config.auth = Some(AuthConfig {
        secret: Some(SECRET.into()),
        ..AuthConfig::default()
    });
    config
}

/// A token for `sub`, valid for an hour.
fn token(sub: &str) -> Result<String> {
    Ok(mint_token(
        SECRET,
        sub,
        Duration::from_secs(3600),
        Claims::new(),
    )?)
}

/// A token with exactly `claims`, signed with `key` as `alg`.
fn signed(alg: Algorithm, claims: Value, key: &EncodingKey) -> Result<String> {
    Ok(jsonwebtoken::encode(&Header::new(alg), &claims, key)?)
}

fn hs256(claims: Value, secret: &str) -> Result<String> {
    signed(
        Algorithm::HS256,
        claims,
        &EncodingKey::from_secret(secret.as_bytes())?,
    )
}

/// Read the welcome and check it names `id`.
async fn welcomed(client: &mut Client, id: &str) -> Result<()> {
    let welcome = client.recv_json().await?;
    ensure!(
        welcome["type"] == "welcome" && welcome["id"] == id,
        "expected welcome for {id}, got {welcome}"
    );
    Ok(())
}

/// Connect to `path` sending `Authorization: <authorization>`; `Err` holds
/// the status and body of a refusal.
async fn connect_with_header(
    server: &TestServer,
    path: &str,
    authorization: &str,
) -> Result<std::result::Result<Client, (u16, String)>> {
    use tokio_tungstenite::tungstenite::Error;
    let mut request = server.url(path).into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", HeaderValue::from_str(authorization)?);
    let tcp = TcpStream::connect(server.addr).await?;
    let io: Box<dyn Io> = Box::new(tcp);
    match tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, io))
        .await
        .context("handshake timed out")?
    {
        Ok((ws, _)) => Ok(Ok(Client { ws })),
        Err(Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            Ok(Err((
                response.status().as_u16(),
                String::from_utf8(body).context("body is not UTF-8")?,
            )))
        }
        Err(e) => bail!("handshake failed: {e}"),
    }
}

/// A scratch file path for this test process.
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("switchboard-auth-{}-{name}", std::process::id()))
}

#[tokio::test]
async fn a_valid_token_connects_as_its_sub() -> Result<()> {
    let server = TestServer::start(auth_config()).await?;
    let t = token("alice")?;
    // No id in the URL, the same id as the token's, or `?id=` the same.
    for path in [
        format!("/ws?token={t}"),
        format!("/ws/?token={t}"),
        format!("/ws/alice?token={t}"),
        format!("/ws?id=alice&token={t}"),
    ] {
        let mut alice = server.connect_path(&path).await?;
        welcomed(&mut alice, "alice").await?;
        ensure!(server.registry.is_online("alice"), "{path}");
        alice.close().await?;
    }
    // The id comes from the token, not the URL: two users in one room.
    let mut alice = server.connect_path(&format!("/ws?token={t}")).await?;
    welcomed(&mut alice, "alice").await?;
    let mut bob = server
        .connect_path(&format!("/ws?token={}", token("bob")?))
        .await?;
    welcomed(&mut bob, "bob").await?;
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 2).await?;
    let joined = alice.recv_json().await?;
    ensure!(
        joined == json!({"type": "joined", "room": "lobby", "id": "bob"}),
        "{joined}"
    );
    drop((alice, bob));
    server.shutdown().await
}

#[tokio::test]
async fn a_bearer_header_carries_the_token() -> Result<()> {
    let server = TestServer::start(auth_config()).await?;
    let t = token("carol")?;
    for path in ["/ws", "/ws/", "/ws/carol"] {
        let Ok(mut carol) = connect_with_header(&server, path, &format!("Bearer {t}")).await?
        else {
            bail!("{path}: refused");
        };
        welcomed(&mut carol, "carol").await?;
        carol.close().await?;
    }
    // The header wins over a query token.
    let header = connect_with_header(&server, "/ws?token=junk", &format!("bearer {t}")).await?;
    let Ok(mut carol) = header else {
        bail!("refused: {header:?}", header = header.err());
    };
    welcomed(&mut carol, "carol").await?;
    drop(carol);
    // A bad header token is refused like a bad query token.
    let refused = connect_with_header(&server, "/ws/carol", "Bearer not.a.jwt").await?;
    let Err((status, body)) = refused else {
        bail!("a bad bearer token was accepted");
    };
    ensure!(status == 401, "{status} {body}");
    ensure!(body.starts_with("invalid token: "), "{body}");
    // Another scheme is not a token.
    let Err((status, body)) =
        connect_with_header(&server, "/ws/carol", "Basic Y2Fyb2w6eA==").await?
    else {
        bail!("Basic auth was accepted");
    };
    ensure!(status == 401 && body == MISSING, "{status} {body}");
    server.shutdown().await
}

#[tokio::test]
async fn each_bad_token_is_refused_with_401_and_its_reason() -> Result<()> {
    let mut config = auth_config();
    if let Some(auth) = &mut config.auth {
        auth.leeway = Duration::from_secs(5);
    }
    let server = TestServer::start(config).await?;
    let mut watcher = watcher(&server).await?;
    let now = now();
    let alice = token("alice")?;
    let other_secret = hs256(
        json!({"sub": "alice", "exp": now + 600}),
        "another secret that is long enough too",
    )?;
    let expired = hs256(json!({"sub": "alice", "exp": now - 60}), SECRET)?;
    let no_exp = hs256(json!({"sub": "alice"}), SECRET)?;
    let bad_sub = hs256(json!({"sub": "al ice", "exp": now + 600}), SECRET)?;
    let no_sub = hs256(json!({"exp": now + 600}), SECRET)?;
    let cases: Vec<(String, &str)> = vec![
        ("/ws/alice".into(), MISSING),
        ("/ws".into(), MISSING),
        ("/ws/alice?token=".into(), MISSING),
        (
            "/ws/alice?token=abc".into(),
            "invalid token: not a JWT (header.payload.signature)\n",
        ),
        (
            "/ws/alice?token=a.b.c".into(),
            "invalid token: not a JWT (header.payload.signature)\n",
        ),
        (
            format!("/ws/alice?token={other_secret}"),
            "invalid token: bad signature\n",
        ),
        (format!("/ws/alice?token={expired}"), "token expired\n"),
        (
            format!("/ws/alice?token={no_exp}"),
            "invalid token: no numeric exp claim (a token must expire)\n",
        ),
        (
            format!("/ws/bob?token={alice}"),
            "token sub \"alice\" does not match the id \"bob\" in the URL\n",
        ),
        (
            format!("/ws?id=bob&token={alice}"),
            "token sub \"alice\" does not match the id \"bob\" in the URL\n",
        ),
        (
            format!("/ws?token={bad_sub}"),
            "invalid token: sub \"al ice\" is not a valid id (1-64 characters of A-Z a-z 0-9 _ . -)\n",
        ),
        (
            format!("/ws?token={no_sub}"),
            "invalid token: no sub claim (the id)\n",
        ),
    ];
    for (path, body) in &cases {
        let r = server.raw_upgrade(path).await?;
        ensure!(r.status == 401, "{path}: {}", r.head);
        ensure!(r.body == *body, "{path}: {:?}", r.body);
        ensure!(
            r.head
                .to_ascii_lowercase()
                .contains("content-type: text/plain"),
            "{path}: {}",
            r.head
        );
        ensure!(server.refused_status(path).await? == 401, "{path}");
    }
    // No refused id got in, nobody was replaced, and the server still serves.
    ensure!(!server.registry.is_online("alice") && !server.registry.is_online("bob"));
    watcher.expect_idle().await?;
    let mut alice = server.connect_path(&format!("/ws?token={alice}")).await?;
    welcomed(&mut alice, "alice").await?;
    drop((alice, watcher));
    server.shutdown().await
}

#[tokio::test]
async fn an_es256_public_key_verifies_tokens_signed_by_its_private_key() -> Result<()> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let public = scratch("es256.pub.pem");
    std::fs::write(&public, pair.public_key_pem())?;
    let mut config = tolerant_config();
    config.auth = Some(AuthConfig {
        public_key: Some(public.clone()),
        ..AuthConfig::default()
    });
    let server = TestServer::start(config).await;
    let _ = std::fs::remove_file(&public);
    let server = server?;
    let claims = json!({"sub": "dave", "exp": now() + 600, "role": "reader"});
    let es256 = |pem: String| -> Result<String> {
        signed(
            Algorithm::ES256,
            claims.clone(),
            &EncodingKey::from_ec_pem(pem.as_bytes())?,
        )
    };
    let good = es256(pair.serialize_pem())?;
    let mut dave = server.connect_path(&format!("/ws?token={good}")).await?;
    welcomed(&mut dave, "dave").await?;
    drop(dave);

    let forged = es256(stranger.serialize_pem())?;
    let r = server.raw_upgrade(&format!("/ws?token={forged}")).await?;
    ensure!(r.status == 401, "{}", r.head);
    ensure!(r.body == "invalid token: bad signature\n", "{:?}", r.body);
    // With only a public key, an HS256 token is not accepted at all, not
    // even one "signed" with the public key as the HMAC secret.
    let confused = hs256(claims.clone(), &pair.public_key_pem())?;
    let r = server.raw_upgrade(&format!("/ws?token={confused}")).await?;
    ensure!(r.status == 401, "{}", r.head);
    ensure!(
        r.body == "invalid token: algorithm HS256 is not accepted (this server takes ES256)\n",
        "{:?}",
        r.body
    );
    server.shutdown().await
}

#[tokio::test]
async fn a_secret_and_a_public_key_each_verify_their_own_algorithm() -> Result<()> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let public = scratch("both.pub.pem");
    std::fs::write(&public, pair.public_key_pem())?;
    let mut config = auth_config();
    if let Some(auth) = &mut config.auth {
        auth.public_key = Some(public.clone());
    }
    let server = TestServer::start(config).await;
    let _ = std::fs::remove_file(&public);
    let server = server?;
    let claims = json!({"sub": "erin", "exp": now() + 600});
    let es = signed(
        Algorithm::ES256,
        claims.clone(),
        &EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())?,
    )?;
    for t in [es, token("erin")?] {
        let mut erin = server.connect_path(&format!("/ws/erin?token={t}")).await?;
        welcomed(&mut erin, "erin").await?;
        erin.close().await?;
    }
    // The public key is public: an HS256 token made with it is a forgery.
    let confused = hs256(claims, &pair.public_key_pem())?;
    let r = server.raw_upgrade(&format!("/ws?token={confused}")).await?;
    ensure!(r.status == 401, "{}", r.head);
    ensure!(r.body == "invalid token: bad signature\n", "{:?}", r.body);
    server.shutdown().await
}

#[tokio::test]
async fn auth_settings_that_cannot_verify_stop_the_start() -> Result<()> {
    let start = |auth: AuthConfig| {
        let mut config = tolerant_config();
        config.auth = Some(auth);
        Server::bind(config)
    };
    let Err(e) = start(AuthConfig {
        secret: Some("too short".into()),
        ..AuthConfig::default()
    })
    .await
    else {
        bail!("a 9-byte secret was accepted");
    };
    ensure!(matches!(e, ServerError::Auth(_)), "{e}");
    ensure!(e.to_string().contains("at least 32"), "{e}");

    let missing = scratch("no-such-key.pem");
    let Err(e) = start(AuthConfig {
        public_key: Some(missing.clone()),
        ..AuthConfig::default()
    })
    .await
    else {
        bail!("a missing key file was accepted");
    };
    ensure!(
        e.to_string().contains("cannot read the auth public key"),
        "{e}"
    );

    // A P-384 key is not ES256; a private key is not a public key.
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    for (name, pem) in [
        ("p384.pem", p384.public_key_pem()),
        ("private.pem", p256.serialize_pem()),
        ("junk.pem", "not a key\n".to_owned()),
    ] {
        let path = scratch(name);
        std::fs::write(&path, pem)?;
        let result = start(AuthConfig {
            public_key: Some(path.clone()),
            ..AuthConfig::default()
        })
        .await;
        let _ = std::fs::remove_file(&path);
        let Err(e) = result else {
            bail!("{name} was accepted as a public key");
        };
        ensure!(
            e.to_string().contains("is not a PEM public key"),
            "{name}: {e}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_token_is_not_passed_on_to_the_policy() -> Result<()> {
    let events = scratch("events.jsonl");
    let _ = std::fs::remove_file(&events);
    let mut config = auth_config();
    config.record_events = Some(events.clone());
    let server = TestServer::start(config).await?;
    let t = token("frank")?;
    let mut frank = server
        .connect_path(&format!("/ws?room=a%26b&token={t}&x=1"))
        .await?;
    welcomed(&mut frank, "frank").await?;
    frank.close().await?;
    // Shutting down flushes the recording of what the policy was shown.
    server.shutdown().await?;
    let text = std::fs::read_to_string(&events);
    let _ = std::fs::remove_file(&events);
    let text = text?;
    ensure!(
        !text.contains(&t),
        "the token reached the recording: {text}"
    );
    let connect = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Recorded>(line).ok())
        .find_map(|r| match r.event {
            Event::Connect { id, query, .. } => Some((id, query)),
            _ => None,
        })
        .context("no connect event recorded")?;
    ensure!(
        connect == ("frank".to_owned(), Some("room=a%26b&x=1".to_owned())),
        "{connect:?}"
    );
    Ok(())
}

/// A client "watcher" connected with a valid token, welcome read.
async fn watcher(server: &TestServer) -> Result<Client> {
    let mut c = server
        .connect_path(&format!("/ws?token={}", token("watcher")?))
        .await?;
    welcomed(&mut c, "watcher").await?;
    Ok(c)
}

/// A config whose tokens must come from `issuer`, name `audience` and be at
/// most `max_age` seconds old (each if given), with a 5 s leeway.
fn strict_config(issuer: Option<&str>, audience: Option<&str>, max_age: Option<u64>) -> Config {
    let mut config = auth_config();
    if let Some(auth) = &mut config.auth {
        auth.leeway = Duration::from_secs(5);
        auth.issuer = issuer.map(str::to_owned);
        auth.audience = audience.map(str::to_owned);
        auth.max_age = max_age.map(Duration::from_secs);
    }
    config
}

/// `token` is refused at the upgrade with 401 and `reason`, and its probe
/// says the same.
async fn refused_with(server: &TestServer, token: &str, reason: &str) -> Result<()> {
    let path = format!("/ws?token={token}");
    let r = server.raw_upgrade(&path).await?;
    ensure!(r.status == 401, "{reason}: {}", r.head);
    ensure!(r.body == format!("{reason}\n"), "{:?}", r.body);
    let probe = server.raw_plain("GET", &path).await?;
    ensure!(
        probe.status == 401 && probe.body == r.body,
        "probe: {} {:?}",
        probe.head,
        probe.body
    );
    Ok(())
}

/// `token` connects, as `id`.
async fn admitted(server: &TestServer, token: &str, id: &str) -> Result<()> {
    let mut c = server.connect_path(&format!("/ws?token={token}")).await?;
    welcomed(&mut c, id).await?;
    c.close().await
}

#[tokio::test]
async fn with_an_issuer_a_token_of_another_or_none_is_refused() -> Result<()> {
    let server =
        TestServer::start(strict_config(Some("https://login.example"), None, None)).await?;
    let now = now();
    let claims = |iss: Value| json!({"sub": "alice", "exp": now + 600, "iss": iss});
    refused_with(
        &server,
        &hs256(claims("https://evil.example".into()), SECRET)?,
        "invalid token: iss is not the issuer this server takes",
    )
    .await?;
    refused_with(
        &server,
        &token("alice")?,
        "invalid token: no iss claim (this server takes tokens of one issuer)",
    )
    .await?;
    admitted(
        &server,
        &hs256(claims("https://login.example".into()), SECRET)?,
        "alice",
    )
    .await?;
    server.shutdown().await
}

#[tokio::test]
async fn with_an_audience_a_token_for_another_or_none_is_refused() -> Result<()> {
    let server = TestServer::start(strict_config(None, Some("chat"), None)).await?;
    let now = now();
    let claims = |aud: Value| json!({"sub": "bob", "exp": now + 600, "aud": aud});
    refused_with(
        &server,
        &hs256(claims("billing".into()), SECRET)?,
        "invalid token: aud does not name this server's audience",
    )
    .await?;
    refused_with(
        &server,
        &hs256(claims(json!(["billing", "mail"])), SECRET)?,
        "invalid token: aud does not name this server's audience",
    )
    .await?;
    refused_with(
        &server,
        &token("bob")?,
        "invalid token: no aud claim (this server takes tokens for its audience only)",
    )
    .await?;
    admitted(&server, &hs256(claims("chat".into()), SECRET)?, "bob").await?;
    admitted(
        &server,
        &hs256(claims(json!(["billing", "chat"])), SECRET)?,
        "bob",
    )
    .await?;
    server.shutdown().await
}

#[tokio::test]
async fn with_a_max_age_an_old_token_or_one_without_iat_is_refused() -> Result<()> {
    let server = TestServer::start(strict_config(None, None, Some(60))).await?;
    let now = now();
    let issued = |iat: u64| json!({"sub": "carol", "exp": now + 3600, "iat": iat});
    // Past the age and the 5 s leeway: refused, though `exp` is far off.
    let old = hs256(issued(now - 600), SECRET)?;
    let r = server.raw_upgrade(&format!("/ws?token={old}")).await?;
    ensure!(r.status == 401, "{}", r.head);
    ensure!(
        r.body.starts_with("token too old: issued ")
            && r.body
                .ends_with(" s ago, and this server takes tokens up to 60 s old\n"),
        "{:?}",
        r.body
    );
    refused_with(
        &server,
        &hs256(json!({"sub": "carol", "exp": now + 3600}), SECRET)?,
        "invalid token: no numeric iat claim (this server limits how old a token may be)",
    )
    .await?;
    refused_with(
        &server,
        &hs256(issued(now + 3600), SECRET)?,
        "invalid token: issued in the future (iat is past the clock)",
    )
    .await?;
    // Young enough, and what `switchboard token` mints (it always sets iat).
    admitted(&server, &hs256(issued(now - 10), SECRET)?, "carol").await?;
    admitted(&server, &token("carol")?, "carol").await?;
    server.shutdown().await
}

/// `switchboard token ARGS` with `env` (and no other `SWITCHBOARD_*`), run
/// where no settings file is; the token it prints.
fn minted(args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let mut cmd = std::process::Command::new(switchboard_tests::switchboard_bin()?);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SWITCHBOARD_") {
            cmd.env_remove(&name);
        }
    }
    let out = cmd
        .arg("token")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()?;
    ensure!(out.status.success(), "{out:?}");
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

#[tokio::test]
async fn switchboard_token_mints_iss_aud_and_iat_that_a_strict_server_takes() -> Result<()> {
    let server = TestServer::start(strict_config(
        Some("https://login.example"),
        Some("chat"),
        Some(60),
    ))
    .await?;
    // Flags of the token command.
    let flags = minted(
        &[
            "--sub",
            "dave",
            "--auth-secret",
            SECRET,
            "--issuer",
            "https://login.example",
            "--audience",
            "chat",
        ],
        &[],
    )?;
    admitted(&server, &flags, "dave").await?;
    // The server's own settings, here from its variables, are the default.
    let settings = minted(
        &["--sub", "dave"],
        &[
            ("SWITCHBOARD_AUTH_SECRET", SECRET),
            ("SWITCHBOARD_AUTH_ISSUER", "https://login.example"),
            ("SWITCHBOARD_AUTH_AUDIENCE", "chat"),
        ],
    )?;
    admitted(&server, &settings, "dave").await?;
    // Without them the token has neither, and is refused here.
    let bare = minted(&["--sub", "dave", "--auth-secret", SECRET], &[])?;
    refused_with(
        &server,
        &bare,
        "invalid token: no iss claim (this server takes tokens of one issuer)",
    )
    .await?;
    server.shutdown().await
}
