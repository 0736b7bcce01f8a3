//! The admin interface: a separate HTTP listener (default 127.0.0.1:3002)
//! for operators and the `switchboard policy` commands.
//!
//! - `GET /healthz` — liveness and this node's id, no token needed (for
//!   load balancers);
//! - `GET /admin/policy` — active and previous version, last rollback;
//! - `PUT /admin/policy` — body: a component; swapped in if it loads;
//! - `POST /admin/policy/rollback` — restore the previous version;
//! - `POST /admin/policy/check` — body: a component; loaded, not published;
//! - `POST /admin/drain` — drain the server for a restart (`net::drain`);
//! - `GET /admin/overview`, `GET /admin/connections?id=`,
//!   `DELETE /admin/connections/{id}` — what the admin page shows and does;
//! - `GET /` — the admin page (`page`);
//! - `GET /metrics` — Prometheus metrics (OpenMetrics text), also served
//!   without the token on `--metrics-listen` ([`Metrics`]).
//!
//! Every `/admin/*` and `/metrics` request needs `Authorization: Bearer <token>`: the
//! configured token, or one made at start and written to the token file.
//! Every request (health too) with an `Origin` header, or whose `Host` is
//! not this interface, is refused with 403 (`guard`). A request without
//! the token is refused before its body is read; connections are capped
//! and must send a request's head in time (`serve`).
//!
//! - `auth`       — which token, and checking it
//! - `guard`      — refusing what a web page elsewhere could send
//! - `page`       — the admin page and the routes it alone needs
//! - `routes`     — the routes and their JSON answers
//! - `serve`      — the connections: cap, header timeout, shutdown
//! - `token_file` — the token made at start, written for the CLI

mod auth;
mod guard;
mod page;
mod routes;
mod serve;
mod token_file;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::AdminConfig;
use crate::net::shared::Shared;
use crate::ops::reload::Reloader;
use crate::ops::rules::Rules;

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The token is empty or has characters a header cannot carry.
    #[error("the admin token must be 16-256 visible ASCII characters")]
    BadToken,
    /// No randomness to make a token with.
    #[error("cannot make an admin token: {0}")]
    Random(String),
    /// The token made at start could not be written.
    #[error(
        "cannot write the admin token file {path}: {source} (set [admin] token_file / --admin-token-file, or a token)"
    )]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr} (admin): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the handlers share.
struct AdminState {
    /// The active rules, for status, swap and rollback (every node's in
    /// a cluster).
    rules: Arc<Rules>,
    /// The server: who is online, its node id and bus (health), its
    /// figures (metrics).
    shared: Arc<Shared>,
    /// What every `/admin/*` request must carry.
    token: String,
    /// Set when the policy comes from a file, for the status answer.
    reloader: Option<Arc<Reloader>>,
    /// Largest upload accepted.
    max_upload: usize,
    /// The bound address, which `Host` must name.
    listen: SocketAddr,
    /// The rules compiled into the host run instead of the policy.
    native: bool,
}

/// A bound admin listener.
pub struct Admin {
    listener: TcpListener,
    router: axum::Router,
    /// Its connections' bounds.
    limits: serve::ConnLimits,
}

impl Admin {
    /// Check the settings, settle the token and bind. `native`: the rules
    /// compiled into the host run instead of the policy (health and status
    /// say so).
    pub async fn bind(
        config: &AdminConfig,
        rules: Arc<Rules>,
        shared: Arc<Shared>,
        reloader: Option<Arc<Reloader>>,
        native: bool,
    ) -> Result<Admin, AdminError> {
        let token = auth::token(config)?;
        let bind_error = |source| AdminError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let listen = listener.local_addr().map_err(bind_error)?;
        let state = Arc::new(AdminState {
            rules,
            shared,
            token,
            reloader,
            max_upload: config.max_upload_bytes,
            listen,
            native,
        });
        let router = routes::router(state);
        let limits = serve::ConnLimits {
            max_connections: config.max_connections,
            header_timeout: config.header_timeout,
        };
        Ok(Admin {
            listener,
            router,
            limits,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serve until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        tracing::info!(
            "admin interface on http://{}",
            self.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        serve::serve(self.listener, self.router, self.limits, shutdown).await;
    }
}

/// `GET /metrics` without a token, on an address of its own
/// (`--metrics-listen`), for a scraper that cannot carry one. Nothing else
/// is served there; requests from web pages (with `Origin`) are refused.
pub struct Metrics {
    listener: TcpListener,
    router: axum::Router,
}

impl Metrics {
    /// Bind `addr`.
    pub async fn bind(addr: SocketAddr, shared: Arc<Shared>) -> Result<Metrics, AdminError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminError::Bind { addr, source })?;
        Ok(Metrics {
            listener,
            router: routes::metrics_only(shared),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serve until `shutdown` resolves, with the admin interface's
    /// default connection bounds.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        tracing::info!(
            "metrics on http://{}/metrics",
            self.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        let defaults = AdminConfig::default();
        let limits = serve::ConnLimits {
            max_connections: defaults.max_connections,
            header_timeout: defaults.header_timeout,
        };
        serve::serve(self.listener, self.router, limits, shutdown).await;
    }
}
