//! Binding, the accept loop and graceful shutdown. `Server::bind` does all
//! the fallible set-up (policy, TLS, socket) so a bad config fails before the
//! first client is accepted; `Server::run` serves until `shutdown` resolves,
//! then closes every client with 1001 and waits (bounded) for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::config::{Config, PolicyLimits, PolicySource};
use crate::outbound::{CloseReason, code};
use crate::policy::{self, LoadError, Policy};
use crate::registry::Registry;
use crate::session;
use crate::shared::{self, Shared};
use crate::state::{StateLimits, StateStore};
use crate::tls::{self, TlsError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The policy could not be loaded.
    #[error("policy: {0}")]
    Policy(#[from] LoadError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound, ready server.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
}

impl Server {
    /// Load the policy, set up TLS and bind.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let registry = Registry::new();
        let state = StateStore::new(state_limits(&config.policy_limits));
        let (bytes, source) = match config.policy {
            PolicySource::Embedded => (
                policy::DEFAULT_POLICY.to_vec(),
                "embedded default policy".to_owned(),
            ),
            PolicySource::File(path) => {
                let bytes = std::fs::read(&path).map_err(|source| LoadError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                (bytes, path.display().to_string())
            }
            PolicySource::Bytes { name, bytes } => (bytes, name),
        };
        let policy = Policy::load(
            &bytes,
            &source,
            registry.clone(),
            state,
            config.policy_limits,
        )
        .await?;
        let tls = match &config.tls {
            Some(files) => Some(TlsAcceptor::from(tls::server_config(files)?)),
            None => None,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let shared = Arc::new(Shared {
            registry,
            policy,
            ws_config: shared::ws_config(&config.limits),
            limits: config.limits,
            secure: tls.is_some(),
            connections: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
        });
        Ok(Server {
            listener,
            tls,
            shared,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The URL scheme clients use.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "wss" } else { "ws" }
    }

    /// The registry (for embedding and tests: who is online, rooms).
    pub fn registry(&self) -> Registry {
        self.shared.registry.clone()
    }

    /// Serve until `shutdown` resolves, then close every client with 1001.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            tls,
            shared,
        } = self;
        let tasks = TaskTracker::new();
        tokio::pin!(shutdown);
        let policy = shared.policy.active();
        tracing::info!(
            "listening on {}://{} with policy v{} ({}, {} bytes)",
            if tls.is_some() { "wss" } else { "ws" },
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            policy.seq,
            policy.source,
            policy.size
        );
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    tasks.spawn(serve(shared.clone(), tls.clone(), tcp, peer));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of
                    // spinning, and let open connections finish.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        drop(listener);
        tracing::info!(
            connections = shared.registry.online_count(),
            "shutting down"
        );
        shared.shutting_down.store(true, Ordering::SeqCst);
        shared.registry.close_all(&CloseReason {
            shutdown: true,
            ..CloseReason::with_code(code::GOING_AWAY, "server shutting down")
        });
        tasks.close();
        let grace = shared.limits.close_timeout * 2 + shared.limits.upgrade_timeout;
        if timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "shutdown grace period over; dropping connections"
            );
        }
    }
}

/// One accepted TCP connection: TLS (bounded in time) if configured, then
/// the session.
async fn serve(shared: Arc<Shared>, tls: Option<TlsAcceptor>, tcp: TcpStream, peer: SocketAddr) {
    // Chat frames are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    match tls {
        None => session::run(shared, tcp, peer).await,
        Some(acceptor) => {
            match timeout(shared.limits.tls_handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => session::run(shared, stream, peer).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

fn state_limits(l: &PolicyLimits) -> StateLimits {
    StateLimits {
        max_key: l.state_max_key_bytes,
        max_value: l.state_max_value_bytes,
        max_total: l.state_max_total_bytes,
    }
}
