//! `switchboard`: parse the command line, then serve, run a policy command
//! or mint a token.

use std::process::ExitCode;

use clap::Parser;
use switchboard::config::cli::{Cli, Command, ServeArgs};
use switchboard::config::log::LogFormat;
use switchboard::net::server::Server;
use tracing_subscriber::EnvFilter;

/// Many small, short-lived allocations (frames, queue entries) across
/// threads: mimalloc serves them faster and with less memory per idle
/// connection than the system allocator (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match switchboard::net::runtime::build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::Policy(command)) => {
            logging("warn", LogFormat::Text);
            switchboard::ops::run(command).await
        }
        Some(Command::Token(args)) => switchboard::ops::token(args),
        Some(Command::Drain(args)) => {
            logging("warn", LogFormat::Text);
            switchboard::ops::drain(args).await
        }
        Some(Command::Serve(args)) => serve(*args).await,
        None => serve(cli.serve).await,
    }
}

fn logging(filter: &str, format: LogFormat) -> bool {
    match EnvFilter::try_new(filter) {
        Ok(filter) => {
            use std::io::IsTerminal;
            let lines = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr);
            match format {
                // Colour codes only for a person at a terminal, not in log
                // files and pipes.
                LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).init(),
                // One object per line: `timestamp`, `level`, `target`,
                // `message` and the event's own fields at the top level
                // (docs/OPERATIONS.md, "Logs").
                LogFormat::Json => lines
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .init(),
            }
            true
        }
        Err(e) => {
            eprintln!("error: invalid log filter {filter:?}: {e}");
            false
        }
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let settings = switchboard::config::file::discover(args.config.as_deref())
        .map_err(switchboard::config::cli::ConfigError::from)
        .and_then(|file| args.into_config(file));
    let config = match settings {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !logging(&config.log, config.log_format) {
        return ExitCode::from(2);
    }
    switchboard::memory::no_huge_pages();
    // Install the signal handlers before anything is announced: a SIGTERM
    // sent as soon as "listening on" is logged must stop the server
    // gracefully, not kill it with the default action.
    let stops = signals::install();
    let drain_time = config.drain_time;
    let server = match Server::bind(config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    signals::reload_on_sighup(server.reloader(), server.certificates());
    // On a worker, not on this thread: `main`'s future runs outside the
    // workers, so the accept loop here would hand every new connection to
    // a worker thread across a futex wake and a context switch (on one
    // core, a tenth of the server's CPU per handshake).
    let shutdown = stops.run(server.drainer(), drain_time);
    if let Err(e) = tokio::spawn(server.run(shutdown)).await {
        tracing::error!("the server stopped abnormally: {e}");
        return ExitCode::FAILURE;
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

mod signals {
    use std::sync::Arc;

    use switchboard::ops::reload::Reloader;

    use std::time::Duration;

    use switchboard::net::drain::Handle;

    /// The stop signals' handlers, installed when this is made (before the
    /// server says it listens), acted on by [`Stops::run`].
    pub struct Stops {
        #[cfg(unix)]
        term: Option<tokio::signal::unix::Signal>,
        #[cfg(unix)]
        int: Option<tokio::signal::unix::Signal>,
    }

    /// Install the handlers for SIGTERM and SIGINT.
    pub fn install() -> Stops {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Stops {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Stops {}
    }

    #[cfg(unix)]
    async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
        match signal {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }

    impl Stops {
        /// SIGTERM asks `server` for a drain of `within` (a rolling
        /// restart: systemd, Docker and Kubernetes stop a service with
        /// it); a second SIGTERM, or SIGINT (Ctrl-C), resolves: stop now,
        /// every client closed with 1001.
        pub async fn run(mut self, server: Handle, within: Duration) {
            #[cfg(unix)]
            loop {
                tokio::select! {
                    () = next(&mut self.term) => {
                        if !server.start(within) {
                            tracing::warn!("SIGTERM during the drain: stopping now");
                            return;
                        }
                        tracing::info!(within_secs = within.as_secs(), "SIGTERM: draining");
                    }
                    () = next(&mut self.int) => return,
                }
            }
            #[cfg(not(unix))]
            {
                let _ = (server, within);
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// SIGHUP reloads the policy file (or says there is none), and the
    /// wss certificate and key.
    pub fn reload_on_sighup(
        reloader: Option<Arc<Reloader>>,
        certificates: Option<Arc<switchboard::net::tls::Certificates>>,
    ) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP; reload through the admin interface");
                return;
            };
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    if let Some(c) = &certificates {
                        let _ = c.reload("SIGHUP");
                    }
                    match &reloader {
                        Some(r) => {
                            let _ = r.reload("SIGHUP").await;
                        }
                        None if certificates.is_some() => {}
                        None => tracing::warn!(
                            "SIGHUP: the policy is not a file (--policy), nothing to reload"
                        ),
                    }
                }
            });
        }
        #[cfg(not(unix))]
        let _ = (reloader, certificates);
    }
}
