//! wss://: a rustls server config from PEM files, TLS 1.2 and 1.3 only.
//! The certificate and key are [`Certificates`]: read again on SIGHUP and
//! when either file changes (a renewal), so new handshakes use the new
//! pair while open connections carry on; a pair that does not load is
//! refused with a log line and the old one stays.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no certificate.
    #[error("certificate {path}: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key file is unreadable or holds no private key.
    #[error("private key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair (e.g. key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The pair new handshakes present, and where it is read from.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// The files' modification times when last read.
    seen: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl Certificates {
    /// Read `files` again. `Ok(())`: new handshakes present the pair now
    /// read. An error (logged, with `why`) leaves the old pair in use.
    pub fn reload(&self, why: &str) -> Result<(), TlsError> {
        let seen = mtimes(&self.files);
        match load(&self.files, &self.provider) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
                tracing::info!(why, cert = %self.files.cert.display(), "certificate reloaded: new handshakes use it");
                Ok(())
            }
            Err(e) => {
                // Not read again until a file changes again (or SIGHUP).
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
                tracing::error!(why, error = %e, "certificate not reloaded: the one loaded before stays in use");
                Err(e)
            }
        }
    }

    /// The certificate new handshakes present (its DER), first of the
    /// chain.
    pub fn presented(&self) -> Option<CertificateDer<'static>> {
        self.current.load().cert.first().cloned()
    }

    /// Read the pair again whenever either file's modification time
    /// changes (looked at every `every`), until the runtime stops. A
    /// renewal that writes the two files one after the other may be seen
    /// half done: that look fails (logged) and the next one, once the key
    /// is written too, succeeds.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = mtimes(&self.files);
            let changed = *self.seen.lock().unwrap_or_else(|e| e.into_inner()) != now;
            if changed && now.0.is_some() && now.1.is_some() {
                let _ = self.reload("file change");
            }
        }
    }
}

fn mtimes(files: &TlsFiles) -> (Option<SystemTime>, Option<SystemTime>) {
    let at = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (at(&files.cert), at(&files.key))
}

/// How often the certificate files are looked at for a change.
pub const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Load `files` into a server config (ALPN http/1.1, no client auth)
/// whose pair can be read again ([`Certificates`]).
pub fn server_config(files: &TlsFiles) -> Result<(Arc<ServerConfig>, Arc<Certificates>), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = mtimes(files);
    let key = load(files, &provider)?;
    let certs = Arc::new(Certificates {
        files: files.clone(),
        provider: provider.clone(),
        current: ArcSwap::from_pointee(key),
        seen: Mutex::new(seen),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), certs))
}

/// The pair in `files`, checked to match.
fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: shown(&files.cert),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: shown(&files.cert),
            reason: "no PEM certificate found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: shown(&files.key),
        reason: e.to_string(),
    })?;
    Ok(CertifiedKey::from_der(certs, key, provider)?)
}
