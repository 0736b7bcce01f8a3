//! The admin page (`GET /` on the admin listener) and the routes only it
//! needs: an overview to poll, finding an id's connection, disconnecting
//! it. The page's files are compiled in (host/static/admin/): nothing is
//! built or read from disk at run time. The page itself holds no secret;
//! every route it calls needs the token, which the operator types once and
//! the page keeps in its tab's `sessionStorage` only.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AdminState;
use super::auth::authorized;
use super::routes::{error, json, unauthorized};
use crate::chat::outbound::CloseReason;

type Shared = std::sync::Arc<AdminState>;

const INDEX: &str = include_str!("../../../static/admin/index.html");
const SCRIPT: &str = include_str!("../../../static/admin/admin.js");
const STYLE: &str = include_str!("../../../static/admin/admin.css");

/// The close code of a connection an operator disconnects.
pub const DISCONNECTED: u16 = 4003;

/// The reason it is given when the operator gives none.
const DEFAULT_REASON: &str = "disconnected by an operator";

fn file(body: &'static str, content_type: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            // The page runs only its own script and talks only to this
            // interface; nothing may frame it.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    file(INDEX, "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    file(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    file(STYLE, "text/css; charset=utf-8")
}

/// Milliseconds since the Unix epoch, for the page's rates.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Connections by node: this one first, then the others a cluster's
/// presence knows of.
fn nodes(s: &AdminState) -> serde_json::Value {
    let shared = &s.shared;
    let mut nodes = vec![serde_json::json!({
        "node": shared.node_id.as_str(),
        "online": shared.registry.online_count(),
        "here": true,
    })];
    for (node, online) in shared.presence.other_nodes() {
        nodes.push(serde_json::json!({"node": node, "online": online, "here": false}));
    }
    serde_json::Value::Array(nodes)
}

/// `GET /admin/overview`: what the page shows and refreshes, in one
/// answer: the node, the policy's status (versions, counters, recent swaps
/// and rollbacks), connections by node, and the counters the page turns
/// into rates (`at_ms` is when they were read).
pub async fn overview(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized();
    }
    let shared = &s.shared;
    let counters = shared.registry.counters();
    let figures = shared.figures();
    let sum = |v: &[(crate::metrics::FrameKind, u64)]| v.iter().map(|(_, n)| n).sum::<u64>();
    let policy = s.rules.status().await;
    json(
        StatusCode::OK,
        &serde_json::json!({
            "node": shared.node_id.as_str(),
            "cluster": shared.bus.cluster().as_str(),
            "draining": shared.drain.is_draining(),
            "rules": if s.native { "native" } else { "wasm" },
            "at_ms": now_ms(),
            "connections": {
                "open": counters.open_now(),
                "total": counters.opened_total(),
                "nodes": nodes(&s),
            },
            "frames_in": sum(&figures.frames_in),
            "frames_out": sum(&figures.frames_out),
            "room_deliveries": figures.room_deliveries,
            "rooms": figures.rooms,
            "held": figures.held,
            "policy": policy,
        }),
    )
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!("`{}` is not connected", crate::chat::ids::shown(id)),
    )
}

/// `GET /admin/connections?id=<id>`: where `id` is connected, its rooms,
/// and (on this node) its address, since when and whether it is held; 404
/// when it is nowhere. Without `id`: connections by node.
pub async fn find(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized();
    }
    let shared = &s.shared;
    let Some(id) = query.get("id") else {
        return json(StatusCode::OK, &serde_json::json!({ "nodes": nodes(&s) }));
    };
    if let Some(c) = shared.registry.connection(id) {
        let (address, since) = match c.peer {
            Some((peer, at)) => (
                Some(peer.to_string()),
                Some(humantime::format_rfc3339_seconds(at).to_string()),
            ),
            None => (None, None),
        };
        return json(
            StatusCode::OK,
            &serde_json::json!({
                "id": id,
                "node": shared.node_id.as_str(),
                "here": true,
                "serial": c.serial,
                "address": address,
                "since": since,
                "held": c.held,
                "rooms": c.rooms,
            }),
        );
    }
    match shared.presence.node_of(id) {
        Some(node) => json(
            StatusCode::OK,
            &serde_json::json!({
                "id": id,
                "node": node,
                "here": false,
                "rooms": shared.presence.rooms_of_now(id),
            }),
        ),
        None => not_found(id),
    }
}

/// `DELETE /admin/connections/<id>[?reason=…]`: close `id`'s connection
/// with 4003 and the reason (default `disconnected by an operator`), on
/// whichever node has it; its rooms hear `left`, as for any close. A held
/// id's hold ends. 404 when it is nowhere.
pub async fn disconnect(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized();
    }
    let shared = &s.shared;
    let reason = query
        .get("reason")
        .filter(|r| !r.trim().is_empty())
        .map(|r| crate::chat::actions::cut(r.clone()))
        .unwrap_or_else(|| DEFAULT_REASON.to_owned());
    let node = if shared.registry.is_online(&id) {
        Some(shared.node_id.as_str().to_owned())
    } else {
        shared.presence.node_of(&id)
    };
    let Some(node) = node else {
        return not_found(&id);
    };
    if !shared
        .registry
        .close(&id, CloseReason::with_code(DISCONNECTED, reason.clone()))
    {
        // On another node: the bus takes the close there.
        shared.bus.close(&id, DISCONNECTED, &reason);
    }
    tracing::info!(id, node, reason, "disconnected through the admin interface");
    json(
        StatusCode::OK,
        &serde_json::json!({
            "id": id,
            "node": node,
            "closed": true,
            "code": DISCONNECTED,
            "reason": reason,
        }),
    )
}
