//! The admin routes and their JSON answers. Errors are
//! `{"error": "<code>", "message": "<why>"}` with a fitting status.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::AdminState;
use super::auth::authorized;
use crate::ops::rules::{RollbackFailed, SwapError};
use crate::policy::{LoadError, RollbackError};

type Shared = Arc<AdminState>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/admin/policy", get(status).put(upload))
        .route("/admin/policy/rollback", post(rollback))
        .route("/metrics", get(metrics))
        .route("/admin/drain", post(drain))
        .route("/admin/policy/check", post(check))
        .route("/admin/overview", get(super::page::overview))
        .route("/admin/connections", get(super::page::find))
        .route(
            "/admin/connections/{id}",
            axum::routing::delete(super::page::disconnect),
        )
        .route("/", get(super::page::index))
        .route("/admin.js", get(super::page::script))
        .route("/admin.css", get(super::page::style))
        // `upload` enforces its own limit, to answer in JSON like every
        // other error.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The router of `--metrics-listen`: `/metrics` and nothing else, no token.
pub fn metrics_only(shared: Arc<crate::net::shared::Shared>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(async |State(shared): State<Arc<crate::net::shared::Shared>>| scrape(&shared)),
        )
        .layer(middleware::from_fn(no_web_pages))
        .with_state(shared)
}

/// Refuse requests from web pages (with `Origin`): the figures are not
/// secret, but no page should read them from a browser on this network.
async fn no_web_pages(request: Request, next: Next) -> Response {
    if request.headers().contains_key(header::ORIGIN) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "requests from web pages (with an Origin header) are refused",
        );
    }
    next.run(request).await
}

/// The figures as OpenMetrics text.
fn scrape(shared: &crate::net::shared::Shared) -> Response {
    let text = crate::metrics::render(shared.figures());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

async fn metrics(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized();
    }
    scrape(&s.shared)
}

/// Refuse what a web page could send before any route runs (see `guard`).
async fn guard(State(s): State<Shared>, request: Request, next: Next) -> Response {
    match super::guard::refusal(request.headers(), s.listen) {
        Some(why) => error(StatusCode::FORBIDDEN, "forbidden", why),
        None => next.run(request).await,
    }
}

/// What runs the chat rules, for health and status.
fn rules(s: &AdminState) -> &'static str {
    if s.native { "native" } else { "wasm" }
}

pub(super) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec_pretty(body) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!({ "error": code, "message": message }),
    )
}

pub(super) fn unauthorized() -> Response {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong bearer token (Authorization: Bearer <token>)",
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

async fn healthz(State(s): State<Shared>) -> Response {
    // A draining node answers 503, so a load balancer's health check
    // takes it out at once.
    let (status, word) = if s.shared.drain.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (StatusCode::OK, "ok")
    };
    json(
        status,
        &serde_json::json!({
            "status": word,
            "online": s.shared.registry.online_count(),
            "policy_seq": s.rules.policy().active().seq,
            "rules": rules(&s),
            "node": s.shared.node_id.as_str(),
            "cluster": s.shared.bus.cluster().as_str(),
        }),
    )
}

async fn status(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized();
    }
    let mut body = s.rules.status().await;
    if let Some(map) = body.as_object_mut() {
        map.insert("rules".into(), rules(&s).into());
        if let Some(r) = &s.reloader {
            map.insert("watched_file".into(), r.path().display().to_string().into());
        }
    }
    json(StatusCode::OK, &body)
}

async fn upload(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized_upload(body);
    }
    let body = match component(body, s.max_upload).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused,
    };
    let source = query
        .get("source")
        .map(|name| format!("upload: {}", crate::chat::actions::cut(name.clone())))
        .unwrap_or_else(|| "upload".to_owned());
    match s.rules.swap(body, &source).await {
        Ok(report) => json(StatusCode::OK, &report),
        Err(e) => swap_error(&e),
    }
}

/// A 401 to an upload, before a byte of its body: nobody without the
/// token makes the interface read (or wait for) up to the upload limit.
/// The connection closes after the answer (the body is not read); a
/// client that sends `Expect: 100-continue`, as `switchboard policy swap`
/// does, gets the 401 before it sends the body.
fn unauthorized_upload(body: Body) -> Response {
    drop(body);
    let mut r = unauthorized();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// An uploaded component: the body, or the answer refusing it (413 past
/// `max`, 400 when empty).
async fn component(body: Body, max: usize) -> Result<Vec<u8>, Response> {
    let Some(bytes) = read_upload(body, max).await else {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            &format!(
                "the component is larger than the upload limit ({max} bytes; [admin] max_upload_bytes)"
            ),
        ));
    };
    if bytes.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "empty",
            "the request body must be the component (.wasm)",
        ));
    }
    Ok(bytes)
}

/// How much of an upload past the limit is read (and dropped) before the
/// 413 goes out.
const DRAIN: usize = 64 * 1024 * 1024;

/// The upload, or `None` if it is larger than `max`. Past `max` the rest
/// is read and dropped, up to [`DRAIN`] more bytes (bounded work): a
/// client still writing when the answer comes would see a broken pipe
/// instead of the 413.
async fn read_upload(body: Body, max: usize) -> Option<Vec<u8>> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen = seen.saturating_add(chunk.len());
        if seen <= max {
            kept.extend_from_slice(&chunk);
        } else if seen > max.saturating_add(DRAIN) {
            break;
        }
    }
    (seen <= max).then_some(kept)
}

/// A candidate that failed to load: 422 with the step that failed.
pub fn load_error(e: &LoadError) -> Response {
    let status = match e {
        LoadError::Engine(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, e.step(), &e.to_string())
}

/// A swap refused: here (as [`load_error`]), by another node of the
/// cluster (422, with `node`), or not decided (`timeout` 504, `conflict`
/// 409, `unavailable` 503).
fn swap_error(e: &SwapError) -> Response {
    let status = match e {
        SwapError::Load(e) => return load_error(e),
        SwapError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        SwapError::NoAnswer { .. } => StatusCode::GATEWAY_TIMEOUT,
        SwapError::Conflict => StatusCode::CONFLICT,
        SwapError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut body = serde_json::json!({ "error": e.code(), "message": e.to_string() });
    if let (Some(node), Some(map)) = (e.node(), body.as_object_mut()) {
        map.insert("node".into(), node.into());
    }
    json(status, &body)
}

/// `POST /admin/drain[?secs=N]`: start a drain (`net::drain`) of `N`
/// seconds (default `--drain-secs`); the server exits once it is over.
/// 202 when this request started it, 200 when one was already under way.
async fn drain(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized();
    }
    let drain = &s.shared.drain;
    let within = match query.get("secs").map(|v| v.parse::<u64>()) {
        None => drain.default_time(),
        Some(Ok(secs)) if secs <= MAX_DRAIN_SECS => std::time::Duration::from_secs(secs),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                &format!("secs must be a whole number of seconds, 0 to {MAX_DRAIN_SECS}"),
            );
        }
    };
    let started = drain.start(within);
    let body = serde_json::json!({
        "draining": true,
        "started": started,
        "drain_secs": drain.asked().unwrap_or(within).as_secs(),
        "connections": s.shared.registry.counters().open_now(),
        "node": s.shared.node_id.as_str(),
    });
    let status = if started {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    json(status, &body)
}

/// The longest drain `POST /admin/drain` takes (a day: past that it is a
/// typo, not a plan).
const MAX_DRAIN_SECS: u64 = 86_400;

/// `POST /admin/policy/check?source=<name>`, body: a component. Loaded
/// as a swap would load it (compiled, checked against the world,
/// instantiated, under this server's limits) in an engine of its own, and
/// not published: 200 with what `switchboard policy check` prints, or the
/// failed step as a swap answers it.
async fn check(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized_upload(body);
    }
    let body = match component(body, s.max_upload).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused,
    };
    let source = query
        .get("source")
        .map(|name| crate::chat::actions::cut(name.clone()))
        .unwrap_or_else(|| "upload".to_owned());
    let limits = s.rules.policy().limits();
    match crate::policy::check(body, &source, limits).await {
        Ok(report) => json(StatusCode::OK, &report),
        Err(e) => load_error(&e),
    }
}

async fn rollback(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized();
    }
    match s
        .rules
        .rollback("requested through the admin interface")
        .await
    {
        Ok(record) => json(StatusCode::OK, &record),
        Err(RollbackFailed::Local(e @ (RollbackError::NoPrevious | RollbackError::Superseded))) => {
            error(StatusCode::CONFLICT, "no-previous", &e.to_string())
        }
        Err(e @ RollbackFailed::Unavailable(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &e.to_string(),
        ),
        Err(RollbackFailed::Load(e)) => load_error(&e),
    }
}
