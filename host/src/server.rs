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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{Admin, AdminError};
use crate::record::{RecordError, Recorder};
use crate::reload::Reloader;

use crate::clock::Clock;
use crate::config::{Config, PolicySource};
use crate::outbound::{CloseReason, code};
use crate::policy::{self, LoadError, Policy, PolicyEnv};
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
    /// The admin interface could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Event recording could not start.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// `native_rules` asked of a build without them.
    #[error("this build has no native rules (build with --features native-rules)")]
    NoNativeRules,
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
    admin: Option<Admin>,
    /// Set when the policy comes from a file.
    reloader: Option<Arc<Reloader>>,
    /// Poll the policy file this often (`None`: don't).
    watch: Option<Duration>,
}

impl Server {
    /// Load the policy, set up TLS and bind.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let registry = Registry::new();
        let state = StateStore::new(StateLimits::from(&config.policy_limits));
        let policy_file = match &config.policy {
            PolicySource::File(path) => Some(path.clone()),
            _ => None,
        };
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
        let env = PolicyEnv {
            registry: registry.clone(),
            state,
            clock: Clock::System,
        };
        let policy = Policy::load(bytes, &source, env, config.policy_limits).await?;
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
        let reloader = policy_file.map(|path| Arc::new(Reloader::new(policy.clone(), path)));
        let admin = match &config.admin {
            Some(admin) => {
                Some(Admin::bind(admin, policy.clone(), registry.clone(), reloader.clone()).await?)
            }
            None => None,
        };
        let recorder = match &config.record_events {
            Some(path) => Some(Recorder::start(path).await?),
            None => None,
        };
        let watch = (config.watch_policy && reloader.is_some()).then_some(config.watch_interval);
        #[cfg(feature = "native-rules")]
        let native = config
            .native_rules
            .then(|| crate::native::NativeRules::new(registry.clone()));
        #[cfg(not(feature = "native-rules"))]
        if config.native_rules {
            return Err(ServerError::NoNativeRules);
        }
        let shared = Arc::new(Shared {
            #[cfg(feature = "native-rules")]
            native,
            registry,
            policy,
            recorder,
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
            admin,
            reloader,
            watch,
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

    /// The policy runtime (status, swap, rollback).
    pub fn policy(&self) -> Policy {
        self.shared.policy.clone()
    }

    /// Where the admin interface listens, if it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(Admin::local_addr)
    }

    /// The policy file's reloader (for SIGHUP), if the policy is a file.
    pub fn reloader(&self) -> Option<Arc<Reloader>> {
        self.reloader.clone()
    }

    /// Serve until `shutdown` resolves, then close every client with 1001.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            tls,
            shared,
            admin,
            reloader,
            watch,
        } = self;
        let stop = CancellationToken::new();
        if let Some(admin) = admin {
            tokio::spawn(admin.run(stop.clone().cancelled_owned()));
        }
        if let (Some(reloader), Some(every)) = (reloader, watch) {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = reloader.watch(every) => {}
                }
            });
        }
        let _stop_on_return = stop.drop_guard();
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
        if let Some(recorder) = &shared.recorder {
            recorder.finish(shared.limits.close_timeout).await;
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
        // Boxed: a TLS stream and its handshake are large, and a task's
        // future is as large as its largest state, so inline they would
        // make every plain connection pay for them too.
        Some(acceptor) => Box::pin(serve_tls(shared, acceptor, tcp, peer)).await,
    }
}

async fn serve_tls(shared: Arc<Shared>, acceptor: TlsAcceptor, tcp: TcpStream, peer: SocketAddr) {
    match timeout(shared.limits.tls_handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => session::run(shared, stream, peer).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    /// The size of the future an async fn returns, without calling it.
    fn future_size<A, B, C, D, F: Future>(_: impl Fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A connection's task holds this future for its whole life, idle or
    /// not: what it weighs is memory per connection (see bench/RESULTS.md).
    #[test]
    fn a_plain_connection_task_stays_small() {
        let size = future_size(super::serve);
        eprintln!("serve future: {size} bytes");
        assert!(size <= 2048, "serve's future grew to {size} bytes");
    }
}
