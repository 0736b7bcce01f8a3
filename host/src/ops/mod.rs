//! `switchboard policy …` and `switchboard token`: the operator commands.
//!
//! Also what runs beside the server for its operator:
//!
//! - [`admin`]      — the admin HTTP interface (status, swap, rollback)
//! - [`reload`]     — reloading the policy file (SIGHUP, file changes)
//! - [`rules`]      — swaps and rollbacks: this server's, or every node's of a cluster
//! - `admin_client` — swap, status, rollback through the admin interface
//! - `replay`       — recorded events through one or two components
//! - `token`        — mint a signed token for a client

pub mod admin;
mod admin_client;
pub mod reload;
mod replay;
pub mod rules;
mod token;

use std::process::ExitCode;

use crate::config::cli::PolicyCommand;
use crate::policy;

pub use admin_client::{AdminClient, Method, drain};
pub use replay::{Outcome, Replay, ReplayLine};
pub use token::run as token;

/// Run one policy command; what it prints goes to stdout, problems to
/// stderr.
pub async fn run(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Swap { file, admin } => admin_client::swap(&file, admin).await,
        PolicyCommand::Status { admin } => admin_client::status(admin).await,
        PolicyCommand::Rollback { admin } => admin_client::rollback(admin).await,
        PolicyCommand::Check { file, limits } => check(&file, limits).await,
        PolicyCommand::Replay {
            file,
            events,
            against,
            limits,
        } => replay::run(&file, &events, against.as_deref(), limits).await,
    }
}

async fn check(file: &std::path::Path, limits: crate::config::cli::LimitArgs) -> ExitCode {
    let limits = match limits.into_limits() {
        Ok(l) => l,
        Err(e) => return fail(&e.to_string()),
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            return fail(&format!("cannot read {}: {e} [step: read]", file.display()));
        }
    };
    match policy::check(bytes, &file.display().to_string(), limits).await {
        Ok(report) => {
            let mut text = format!(
                "ok: {} satisfies switchboard:policy/policy@{} and instantiates\n  world:   {}\n  size:    {} bytes\n  sha256:  {}\n  load:    {} ms (compile, check, instantiate)\n  imports:\n",
                file.display(),
                report.info.world.version(),
                report.info.world.version(),
                report.info.size,
                report.info.sha256,
                report.load_ms
            );
            for import in &report.info.imports {
                text.push_str(&format!("    {import}\n"));
            }
            out(&text)
        }
        Err(e) => fail(&format!("{}: {e} [step: {}]", file.display(), e.step())),
    }
}

/// Print `text` on stdout; a reader that went away (`| head`) is not an
/// error worth a panic.
pub(crate) fn out(text: &str) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot write the output: {e}")),
    }
}

pub(crate) fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
