//! Settings written once: what `switchboard --help` shows for every setting
//! — its flag, its variable and its default — comes from the declaration in
//! `settings.rs` and the defaults in `config.rs`, so it cannot drift from
//! what the server does. (That every flag, variable and file key reaches
//! the config is tested in host/src/config/cli.rs; the binary's behaviour for
//! them in tests/cli.rs.)

use std::process::Command;

use anyhow::{Context, Result, ensure};
use switchboard::config::Config;
use switchboard::config::settings::Settings;
use switchboard_tests::switchboard_bin;

/// `switchboard ARGS` with no `SWITCHBOARD_*` variable and `XDG_RUNTIME_DIR`
/// set to `runtime`; its stdout.
fn output(args: &[&str], runtime: &str) -> Result<String> {
    let mut cmd = Command::new(switchboard_bin()?);
    cmd.args(args).env("XDG_RUNTIME_DIR", runtime);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SWITCHBOARD_") {
            cmd.env_remove(&name);
        }
    }
    let out = cmd.output().context("cannot run the binary")?;
    ensure!(out.status.success(), "{out:?}");
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn help_shows_every_setting_with_its_variable_and_the_default_in_use() -> Result<()> {
    let runtime = "/run/switchboard-help-test";
    let help = output(&["--help"], runtime)?;
    let defaults = Config::default();
    for s in Settings::all() {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("--{} ", s.flag)))
            .with_context(|| format!("--{} is not in --help:\n{help}", s.flag))?;
        ensure!(
            line.contains(&format!("[env: {}", s.env)),
            "--{}: no {} in {line:?}",
            s.flag,
            s.env
        );
        let default = if s.key == "token_file" {
            // Depends on the environment: the binary's, not this process's.
            Some(format!("{runtime}/switchboard/admin-token"))
        } else {
            (s.read)(&defaults)
        };
        match default {
            Some(d) => ensure!(
                line.contains(&format!("[default: {d}]")),
                "--{}: not the default {d} in {line:?}",
                s.flag
            ),
            None => ensure!(!line.contains("[default:"), "{line:?}"),
        }
    }
    // The serve command shows the same.
    let serve = output(&["serve", "--help"], runtime)?;
    for s in Settings::all() {
        ensure!(
            serve.contains(&format!("--{} ", s.flag)),
            "serve --help: --{}",
            s.flag
        );
    }
    Ok(())
}

#[test]
fn the_offline_commands_take_the_policy_call_limits_with_the_same_help() -> Result<()> {
    let serve = output(&["--help"], "/run/x")?;
    for command in ["check", "replay"] {
        let help = output(&["policy", command, "--help"], "/run/x")?;
        for flag in [
            "call-deadline-ms",
            "policy-memory-mib",
            "max-actions",
            "max-output-bytes",
        ] {
            let line = |text: &str| {
                text.lines()
                    .find(|l| l.trim_start().starts_with(&format!("--{flag} ")))
                    .map(str::to_owned)
            };
            ensure!(
                line(&help).is_some() && line(&help) == line(&serve),
                "policy {command}: --{flag} differs: {:?} vs {:?}",
                line(&help),
                line(&serve)
            );
        }
    }
    Ok(())
}
