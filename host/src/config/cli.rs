//! The command line: `switchboard [serve] [FLAGS]`,
//! `switchboard policy <swap|status|rollback|check|replay>`,
//! `switchboard drain` and `switchboard token`.
//!
//! Serving settings come from, highest first: flags, `SWITCHBOARD_*`
//! variables, `switchboard.toml`, the defaults in `config.rs`; each is
//! declared once, in `settings.rs`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::file::ConfigFileError;
use crate::config::settings::{AuthSettings, CallSettings, Settings};
use crate::config::{Config, PolicyLimits};

/// A WebSocket chat server whose chat rules run as a sandboxed WebAssembly
/// component.
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serving flags, when no command is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve chat clients (the default).
    Serve(Box<ServeArgs>),
    /// Manage the chat rules of a running server, or check and replay a
    /// component offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Mint a signed token (HS256 JWT) for a client from the configured
    /// secret (--auth-secret, SWITCHBOARD_AUTH_SECRET or [auth] secret) and
    /// print it.
    Token(TokenArgs),
    /// Drain the running server for a restart: it stops accepting, tells
    /// its clients to reconnect (close 1012) a few at a time, and exits
    /// once they have gone or the drain time is up. Waits for the exit.
    Drain(DrainArgs),
}

/// `switchboard drain`
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// Seconds the drain may take [default: the server's --drain-secs].
    #[arg(long)]
    pub secs: Option<u64>,
    /// Return once the drain has started, without waiting for the server
    /// to exit.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `switchboard policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Upload a component to the running server and make it the active
    /// policy (only if it compiles, matches the world and instantiates).
    Swap {
        /// The component (.wasm).
        file: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show the active version, the previous one and the last rollback.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Restore the previous version on the running server.
    Rollback {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Offline: does this component satisfy the world, does it
    /// instantiate under the limits, what does it import.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Offline: run recorded events through a component (with a simulated
    /// registry) and print the actions it decides; with --against, print
    /// only the events where two components decide differently.
    Replay {
        /// The component (.wasm).
        file: PathBuf,
        /// Recorded events (JSON lines, from `--record-events`).
        #[arg(long)]
        events: PathBuf,
        /// A second component to compare with.
        #[arg(long)]
        against: Option<PathBuf>,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

/// How the policy commands reach the admin interface.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin interface URL; `host:port` alone means http://host:port [default: from SWITCHBOARD_ADMIN_LISTEN (the server's variable), else the settings file's [admin] listen, else http://127.0.0.1:3002].
    #[arg(long, env = "SWITCHBOARD_ADMIN_URL")]
    pub admin_url: Option<String>,
    /// The server's `SWITCHBOARD_ADMIN_LISTEN`, when set: where the
    /// interface is when no URL is given, as for the server itself (the
    /// variable outranks the settings file there too).
    #[arg(skip = std::env::var("SWITCHBOARD_ADMIN_LISTEN").ok())]
    pub admin_listen: Option<String>,
    /// Bearer token [default: the settings file's [admin] token, else the one in --admin-token-file].
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the token a server made at start [default: the settings file's [admin] token_file, else the server's default].
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Settings file to read the admin address and token from [default: ./switchboard.toml if it exists].
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Policy limits for the offline commands (the `[policy]` call limits, with
/// the same flags and meaning as when serving).
pub type LimitArgs = CallSettings;

/// Serving flags; each overrides `switchboard.toml`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Settings file [default: ./switchboard.toml if it exists].
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Every setting (settings.rs).
    #[command(flatten)]
    pub settings: Settings,
    /// Benchmarks only: run the default rules compiled into the host instead
    /// of the sandboxed policy.
    #[cfg(feature = "native-rules")]
    #[arg(long, env = "SWITCHBOARD_NATIVE_RULES")]
    pub native_rules: bool,
}

/// `switchboard token`: mint a signed token for a client.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The id the token proves (its `sub` claim).
    #[arg(long)]
    pub sub: String,
    /// How long it is valid, e.g. `90s`, `30m`, `1h`, `7days`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Its `iss` claim [default: the server's --auth-issuer, if set].
    #[arg(long)]
    pub issuer: Option<String>,
    /// Its `aud` claim [default: the server's --auth-audience, if set].
    #[arg(long)]
    pub audience: Option<String>,
    /// Settings file to read `[auth] secret` from [default: ./switchboard.toml if it exists].
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// The secret, as the server takes it.
    #[command(flatten)]
    pub auth: AuthSettings,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The settings file.
    #[error(transparent)]
    File(#[from] ConfigFileError),
    /// Something else, said plainly.
    #[error("{0}")]
    Invalid(String),
}

impl ServeArgs {
    /// The configuration these flags and variables, over `file`, describe,
    /// if this build can serve it.
    pub fn into_config(self, file: Settings) -> Result<Config, ConfigError> {
        self.read(file)
    }

    /// Every setting read and checked, whether or not this build can
    /// serve it.
    fn read(self, file: Settings) -> Result<Config, ConfigError> {
        #[cfg_attr(not(feature = "native-rules"), allow(unused_mut))]
        let mut config = self
            .settings
            .or(file)
            .to_config()
            .map_err(ConfigError::Invalid)?;
        #[cfg(feature = "native-rules")]
        {
            config.native_rules = self.native_rules;
        }
        Ok(config)
    }
}

impl CallSettings {
    /// Policy limits with these overrides (for the offline commands).
    pub fn into_limits(self) -> Result<PolicyLimits, ConfigError> {
        let mut config = Config::default();
        self.apply(&mut config).map_err(ConfigError::Invalid)?;
        Ok(config.policy_limits)
    }
}

impl TokenArgs {
    /// The HMAC secret from the flag, the variable or `file`.
    pub fn secret(&self, file: &Settings) -> Option<String> {
        self.auth.clone().or(file.auth.clone()).secret
    }

    /// The `iss` and `aud` to put in the token: `--issuer` and
    /// `--audience`, else what the server checks (`[auth] issuer` and
    /// `audience` from the flag, the variable or `file`), so a token minted
    /// with the server's settings passes its checks.
    pub fn issuer_audience(&self, file: &Settings) -> (Option<String>, Option<String>) {
        let server = self.auth.clone().or(file.auth.clone());
        (
            self.issuer.clone().or(server.issuer),
            self.audience.clone().or(server.audience),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::CommandFactory;

    use super::*;
    use crate::config::settings::Setting;

    /// Flags of the serving command that are not settings of the table.
    const NOT_IN_THE_TABLE: &[&str] = &["config", "native-rules", "help", "version"];

    fn serve(args: &[String]) -> Config {
        let mut argv = vec!["switchboard".to_owned()];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("the flags parse");
        assert!(cli.command.is_none());
        cli.serve.read(Settings::default()).expect("a valid config")
    }

    /// Every setting of `config` holds its sample (and the sample is not the
    /// default, so it got there from the layer under test).
    fn holds_every_sample(config: &Config, layer: &str) {
        let defaults = Config::default();
        for s in Settings::all() {
            let sample = (s.sample_shown)();
            assert_ne!(
                (s.read)(&defaults).as_deref(),
                Some(sample.as_str()),
                "the sample of {} is its default",
                s.file_key()
            );
            assert_eq!(
                (s.read)(config).as_deref(),
                Some(sample.as_str()),
                "{} set through {layer} did not reach the config",
                describe(&s)
            );
        }
    }

    fn describe(s: &Setting) -> String {
        format!("{} (--{}, {})", s.file_key(), s.flag, s.env)
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_is_a_setting_with_a_matching_variable() {
        let all = Settings::all();
        let command = Cli::command();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if NOT_IN_THE_TABLE.contains(&long) {
                continue;
            }
            assert!(
                all.iter().any(|s| s.flag == long),
                "--{long} is not declared in settings.rs"
            );
        }
        for s in &all {
            let env = format!("SWITCHBOARD_{}", s.flag.replace('-', "_").to_uppercase());
            assert_eq!(s.env, env, "{}", describe(s));
            assert_eq!(all.iter().filter(|o| o.flag == s.flag).count(), 1);
            assert_eq!(
                all.iter()
                    .filter(|o| o.table == s.table && o.key == s.key)
                    .count(),
                1
            );
        }
    }

    #[test]
    fn every_flag_reaches_the_config() {
        let mut args = Vec::new();
        for s in Settings::all() {
            args.push(format!("--{}", s.flag));
            args.push(s.sample.to_owned());
        }
        holds_every_sample(&serve(&args), "its flag");
    }

    fn sample_file() -> Settings {
        let mut root = toml::Table::new();
        for s in Settings::all() {
            let table = if s.table.is_empty() {
                &mut root
            } else {
                match root
                    .entry(s.table)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                {
                    toml::Value::Table(t) => t,
                    _ => unreachable!("tables only"),
                }
            };
            table.insert(s.key.to_owned(), (s.sample_toml)());
        }
        Settings::from_table(root, Path::new("/base")).expect("the samples parse")
    }

    #[test]
    fn every_file_key_reaches_the_config() {
        let config = ServeArgs::default()
            .read(sample_file())
            .expect("a valid config");
        holds_every_sample(&config, "the settings file");
    }

    #[test]
    fn a_flag_wins_over_the_file() {
        let cli = Cli::try_parse_from(["switchboard", "--max-connections", "3"]).unwrap();
        let config = cli.serve.read(sample_file()).unwrap();
        assert_eq!(config.limits.max_connections, 3);
        assert_eq!(
            config.limits.max_rooms_per_id, 12,
            "the file's other keys stay"
        );
    }

    /// Set when this test binary runs itself to see the variables.
    const CHILD: &str = "SWITCHBOARD_SETTINGS_TEST_CHILD";

    /// Clap reads `SWITCHBOARD_*` from the process environment, which a
    /// test must not change under the others: run this test binary again,
    /// with every variable set, and have it check (`variables_child`).
    #[test]
    fn every_variable_reaches_the_config() {
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new(exe);
        child.args([
            "--exact",
            "config::cli::tests::variables_child",
            "--nocapture",
            "--test-threads=1",
        ]);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SWITCHBOARD_") {
                child.env_remove(name);
            }
        }
        for s in Settings::all() {
            child.env(s.env, s.sample);
        }
        child
            .env(CHILD, "1")
            .env("SWITCHBOARD_NATIVE_RULES", "true");
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn variables_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let config = serve(&[]);
        holds_every_sample(&config, "its variable");
        #[cfg(feature = "native-rules")]
        assert!(config.native_rules, "SWITCHBOARD_NATIVE_RULES");
        // A variable wins over the file, a flag over the variable.
        let cli = Cli::try_parse_from(["switchboard"]).unwrap();
        let config = cli.serve.read(sample_file_of_other_values()).unwrap();
        assert_eq!(config.limits.max_connections, 999, "the variable's");
        let cli = Cli::try_parse_from(["switchboard", "--max-connections", "3"]).unwrap();
        assert_eq!(
            cli.serve
                .read(Settings::default())
                .unwrap()
                .limits
                .max_connections,
            3
        );
    }

    fn sample_file_of_other_values() -> Settings {
        let table: toml::Table = toml::from_str("[limits]\nmax_connections = 5\n").unwrap();
        Settings::from_table(table, Path::new("/")).unwrap()
    }

    #[cfg(feature = "native-rules")]
    #[test]
    fn native_rules_reaches_the_config() {
        assert!(!serve(&[]).native_rules);
        assert!(serve(&["--native-rules".to_owned()]).native_rules);
    }

    #[test]
    fn without_a_setting_the_defaults_hold() {
        let config = ServeArgs::default()
            .into_config(Settings::default())
            .unwrap();
        let defaults = Config::default();
        for s in Settings::all() {
            assert_eq!((s.read)(&config), (s.read)(&defaults), "{}", describe(&s));
        }
        assert!(config.auth.is_none() && config.tls.is_none());
    }

    #[test]
    fn the_auth_section_turns_on_with_a_secret_or_key_only() {
        let leeway_only = serve(&["--auth-leeway-secs".into(), "5".into()]);
        assert!(leeway_only.auth.is_none());
        let key = serve(&["--auth-public-key".into(), "/k.pem".into()]);
        let auth = key.auth.expect("auth on");
        assert_eq!(auth.public_key.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(auth.leeway, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (args, why) in [
            (vec!["--tls-cert", "/c.pem"], "both a certificate and a key"),
            (vec!["--call-deadline-ms", "0"], "at least 1 ms"),
            (vec!["--policy-memory-mib", "0"], "1-4096"),
            (vec!["--admin-listen", "nowhere"], "neither ip:port"),
        ] {
            let cli = Cli::try_parse_from([&["switchboard"][..], &args].concat()).unwrap();
            let err = cli.serve.into_config(Settings::default()).unwrap_err();
            assert!(err.to_string().contains(why), "{args:?}: {err}");
        }
    }

    #[test]
    fn the_cluster_settings_are_checked_and_then_refused_in_this_build() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["switchboard"][..], args].concat());
        let cli = parse(&[
            "--cluster",
            "rediss://:pw@redis.example.com:6380/3",
            "--cluster-prefix",
            "prod:",
            "--node-id",
            "n1",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("pw@"), "{cli:?}");
        let config = cli.serve.read(Settings::default()).unwrap();
        let cluster = config.cluster.as_ref().expect("cluster mode");
        assert_eq!(
            cluster.url.to_string(),
            "rediss://:***@redis.example.com:6380/3"
        );
        assert_eq!(cluster.prefix.as_str(), "prod:");
        assert_eq!(config.node_id.as_str(), "n1");
        assert!(!format!("{config:?}").contains("pw@"));

        for (args, why) in [
            (&["--cluster", "http://h:1/0"][..], "--cluster"),
            (&["--cluster", "redis://h:1/x"][..], "--cluster"),
            (&["--cluster-prefix", "a b"][..], "--cluster-prefix"),
            (&["--node-id", "a/b"][..], "--node-id"),
        ] {
            let err = parse(args)
                .unwrap()
                .serve
                .into_config(Settings::default())
                .unwrap_err();
            assert!(err.to_string().contains(why), "{args:?}: {err}");
        }
    }

    #[test]
    fn without_the_cluster_the_node_still_has_an_id() {
        let (a, b) = (serve(&[]), serve(&[]));
        assert!(a.cluster.is_none());
        assert!(!a.node_id.is_given() && !a.node_id.as_str().is_empty());
        assert_ne!(a.node_id, b.node_id, "each start makes its own");
        let prefix_alone = serve(&["--cluster-prefix".into(), "p".into()]);
        assert!(prefix_alone.cluster.is_none());
    }

    #[test]
    fn admin_off_turns_the_admin_interface_off() {
        let config = serve(&[
            "--admin-listen".into(),
            "off".into(),
            "--admin-token".into(),
            "x".repeat(20),
        ]);
        assert!(config.admin.is_none());
    }

    #[test]
    fn the_token_command_takes_a_ttl_like_1h() {
        for (ttl, secs) in [("1h", 3600), ("30m", 1800), ("90s", 90)] {
            let cli = Cli::try_parse_from(["switchboard", "token", "--sub", "alice", "--ttl", ttl])
                .unwrap();
            let Some(Command::Token(t)) = cli.command else {
                panic!("not the token command")
            };
            assert_eq!(t.ttl, Duration::from_secs(secs));
            assert_eq!(t.sub, "alice");
        }
        let cli = Cli::try_parse_from(["switchboard", "token", "--sub", "bob"]).unwrap();
        let Some(Command::Token(t)) = cli.command else {
            panic!("not the token command")
        };
        assert_eq!(t.ttl, Duration::from_secs(3600), "the default ttl");
        assert!(
            Cli::try_parse_from(["switchboard", "token", "--sub", "a", "--ttl", "soon"]).is_err()
        );
    }
}
