//! The admin interface: a separate HTTP listener (default 127.0.0.1:3002)
//! for operators and the `switchboard policy` commands.
//!
//! - `GET /healthz` — liveness, no token needed (for load balancers);
//! - `GET /admin/policy` — active and previous version, last rollback;
//! - `PUT /admin/policy` — body: a component; swapped in if it loads;
//! - `POST /admin/policy/rollback` — restore the previous version.
//!
//! Every `/admin/*` request needs `Authorization: Bearer <token>` when a
//! token is configured; a non-loopback listener without one is refused at
//! start-up.

mod auth;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::AdminConfig;
use crate::policy::Policy;
use crate::registry::Registry;
use crate::reload::Reloader;

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Listening beyond loopback without a token would hand the server to
    /// anyone who can reach the port.
    #[error(
        "refusing to serve the admin interface on {0} without a token: set SWITCHBOARD_ADMIN_TOKEN (or [admin] token), or listen on a loopback address"
    )]
    NoToken(SocketAddr),
    /// The token is empty or has characters a header cannot carry.
    #[error("the admin token must be 16-256 visible ASCII characters")]
    BadToken,
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
    policy: Policy,
    registry: Registry,
    token: Option<String>,
    /// Set when the policy comes from a file, for the status answer.
    reloader: Option<Arc<Reloader>>,
    /// Largest upload accepted.
    max_upload: usize,
}

/// A bound admin listener.
pub struct Admin {
    listener: TcpListener,
    router: axum::Router,
}

impl Admin {
    /// Check the settings and bind.
    pub async fn bind(
        config: &AdminConfig,
        policy: Policy,
        registry: Registry,
        reloader: Option<Arc<Reloader>>,
    ) -> Result<Admin, AdminError> {
        auth::validate(config)?;
        if config.token.is_none() {
            tracing::warn!(
                addr = %config.listen,
                "the admin interface has no token: anyone on this machine can swap the policy (set SWITCHBOARD_ADMIN_TOKEN)"
            );
        }
        let state = Arc::new(AdminState {
            policy,
            registry,
            token: config.token.clone(),
            reloader,
            max_upload: config.max_upload_bytes,
        });
        let router = routes::router(state);
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| AdminError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Ok(Admin { listener, router })
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
        if let Err(e) = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "admin interface stopped");
        }
    }
}
