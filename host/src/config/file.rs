//! `switchboard.toml`: the settings file. Every key is optional (the keys
//! are declared once, with their flags, in `settings.rs`); a flag or
//! `SWITCHBOARD_*` variable overrides the file, and the file overrides the
//! defaults in `config.rs`. Unknown keys are an error, so a typo is reported
//! instead of silently ignored. Relative paths are relative to the file.

use std::path::Path;

use crate::config::settings::Settings;

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

/// Read `path`; relative paths inside become relative to its directory.
pub fn load(path: &Path) -> Result<Settings, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let parse_error = |message: String| ConfigFileError::Parse {
        path: path.display().to_string(),
        message,
    };
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| parse_error(e.to_string().trim().to_owned()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    Settings::from_table(table, base).map_err(parse_error)
}

/// `explicit` if given, else `switchboard.toml` in the working directory if
/// it exists, else nothing.
pub fn discover(explicit: Option<&Path>) -> Result<Settings, ConfigFileError> {
    match explicit {
        Some(path) => load(path),
        None if Path::new(DEFAULT_FILE).is_file() => load(Path::new(DEFAULT_FILE)),
        None => Ok(Settings::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::settings::Settings;

    fn parse(text: &str) -> Result<Settings, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        Settings::from_table(table, Path::new("/base"))
    }

    /// Settings whose default depends on the machine (the environment).
    const MACHINE_DEFAULTS: &[&str] = &["token_file"];

    #[test]
    fn the_documented_example_parses_and_holds_every_default() {
        let text = include_str!("../../../switchboard.example.toml");
        let settings = parse(text).expect("switchboard.example.toml parses");
        let from_file = settings.to_config().expect("the example is a valid config");
        let defaults = Config::default();
        for s in Settings::all() {
            if MACHINE_DEFAULTS.contains(&s.key) {
                continue;
            }
            let default = (s.read)(&defaults);
            let documented = (s.read)(&from_file);
            assert_eq!(
                documented,
                default,
                "{} in switchboard.example.toml is not the default",
                s.file_key()
            );
            // Keys with a default are set to it; the others shown commented out.
            let commented_ok = default.is_none();
            let shown = text.lines().any(|l| {
                let l = if commented_ok {
                    l.trim_start_matches(['#', ' '])
                } else {
                    l
                };
                l.starts_with(&format!("{} ", s.key)) || l.starts_with(&format!("{}=", s.key))
            });
            assert!(
                shown,
                "{} is missing from switchboard.example.toml",
                s.file_key()
            );
        }
    }

    #[test]
    fn an_unknown_key_is_named() {
        for (text, key) in [
            ("[policy]\ndeadline = 5\n", "deadline"),
            ("lissten = \"x\"\n", "lissten"),
            ("[limit]\nmax_connections = 5\n", "limit"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(key) && err.contains("unknown"), "{err}");
        }
    }

    #[test]
    fn a_bad_value_is_named_with_its_table() {
        let err = parse("[limits]\nmax_connections = \"many\"\n").unwrap_err();
        assert!(err.contains("[limits]"), "{err}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let s = parse("[policy]\nfile = \"rules.wasm\"\n[admin]\ntoken_file = \"/abs/t\"\n")
            .expect("parses");
        assert_eq!(
            s.policy.file.as_deref(),
            Some(Path::new("/base/rules.wasm"))
        );
        assert_eq!(s.admin.token_file.as_deref(), Some(Path::new("/abs/t")));
    }
}
