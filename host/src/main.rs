//! `switchboard`: parse flags, start logging, serve until SIGINT/SIGTERM.

use anyhow::Context;
use clap::Parser;
use switchboard::cli::Cli;
use switchboard::server::Server;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log).context("invalid --log filter")?)
        .with_writer(std::io::stderr)
        .init();
    // Install the signal handlers before anything is announced: a SIGTERM
    // sent as soon as "listening on" is logged must stop the server
    // gracefully, not kill it with the default action.
    let shutdown = shutdown_signal();
    let server = Server::bind(cli.into_config()).await?;
    server.run(shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called (not when the future is first polled, which happens only once the
/// accept loop runs).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        async fn recv(signal: std::io::Result<Signal>) {
            match signal {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            tokio::select! {
                _ = recv(term) => {},
                _ = recv(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
