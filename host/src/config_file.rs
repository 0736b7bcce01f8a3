//! `switchboard.toml`: the settings file. Every key is optional; a flag or
//! `SWITCHBOARD_*` variable overrides the file, and the file overrides the
//! defaults in `config.rs`. Unknown keys are an error, so a typo is reported
//! instead of silently ignored. Relative paths are relative to the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The name looked for in the working directory when `--config` is not given.
pub const DEFAULT_FILE: &str = "switchboard.toml";

/// Why the settings file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// It could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML or has a wrong key or value.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with the line.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Public listen address.
    pub listen: Option<SocketAddr>,
    /// Log filter.
    pub log: Option<String>,
    /// wss:// certificate and key.
    #[serde(default)]
    pub tls: TlsSection,
    /// Per-connection limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// The policy and what its calls may use.
    #[serde(default)]
    pub policy: PolicySection,
    /// The admin listener.
    #[serde(default)]
    pub admin: AdminSection,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest client message in bytes.
    pub max_message_bytes: Option<usize>,
    /// Outbound queue length in frames.
    pub outbound_queue_frames: Option<usize>,
    /// Outbound queue size in bytes.
    pub outbound_queue_bytes: Option<usize>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// Idle timeout in seconds.
    pub idle_timeout_secs: Option<u64>,
    /// TLS handshake and HTTP upgrade timeouts in seconds.
    pub handshake_timeout_secs: Option<u64>,
}

/// `[policy]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Component file instead of the embedded default.
    pub file: Option<PathBuf>,
    /// Reload `file` when it changes.
    pub watch: Option<bool>,
    /// Call deadline in milliseconds.
    pub call_deadline_ms: Option<u64>,
    /// Memory cap per instance in MiB.
    pub memory_mib: Option<usize>,
    /// Actions per call.
    pub max_actions: Option<usize>,
    /// Bytes of frames per call.
    pub max_output_bytes: Option<usize>,
    /// Failed calls that roll a fresh swap back (0: never).
    pub rollback_failures: Option<u64>,
    /// Seconds a fresh swap is watched.
    pub rollback_window_secs: Option<u64>,
    /// Record every event to this JSON-lines file (for `policy replay`).
    pub record_events: Option<PathBuf>,
}

/// `[admin]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Admin listen address, or `"off"`.
    pub listen: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
    /// Largest component accepted by `PUT /admin/policy`, in bytes.
    pub max_upload_bytes: Option<usize>,
}

impl FileConfig {
    /// Read `path`; relative paths inside become relative to its directory.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut file: FileConfig = toml::from_str(&text).map_err(|e| ConfigFileError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut file.tls.cert,
            &mut file.tls.key,
            &mut file.policy.file,
            &mut file.policy.record_events,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(file)
    }

    /// `explicit` if given, else `switchboard.toml` in the working directory
    /// if it exists, else nothing.
    pub fn discover(explicit: Option<&Path>) -> Result<FileConfig, ConfigFileError> {
        match explicit {
            Some(path) => FileConfig::load(path),
            None if Path::new(DEFAULT_FILE).is_file() => FileConfig::load(Path::new(DEFAULT_FILE)),
            None => Ok(FileConfig::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_and_holds_the_defaults() {
        let text = include_str!("../../switchboard.example.toml");
        let file: FileConfig = toml::from_str(text).expect("switchboard.example.toml parses");
        let defaults = crate::config::Config::default();
        assert_eq!(file.listen, Some(defaults.listen));
        let limits = crate::config::Limits::default();
        assert_eq!(
            file.limits.max_message_bytes,
            Some(limits.max_message_bytes)
        );
        assert_eq!(
            file.limits.outbound_queue_bytes,
            Some(limits.outbound_queue_bytes)
        );
        let p = crate::config::PolicyLimits::default();
        assert_eq!(
            file.policy.call_deadline_ms,
            Some(p.call_deadline.as_millis() as u64)
        );
        assert_eq!(file.policy.memory_mib, Some(p.memory_bytes / (1024 * 1024)));
        assert_eq!(file.policy.rollback_failures, Some(p.rollback_failures));
        assert_eq!(file.policy.max_output_bytes, Some(p.max_output_bytes));
        let admin = crate::config::AdminConfig::default();
        assert_eq!(file.admin.listen, Some(admin.listen.to_string()));
        assert_eq!(file.admin.max_upload_bytes, Some(admin.max_upload_bytes));
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = toml::from_str::<FileConfig>("[policy]\ndeadline = 5\n").unwrap_err();
        assert!(err.to_string().contains("deadline"), "{err}");
    }
}
