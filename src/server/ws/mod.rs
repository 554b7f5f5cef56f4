//! The websocket endpoint (`GET /ws`): the upgrade (connection limit, small buffers) and one
//! [`session`] task per connection.

mod session;
#[cfg(test)]
mod tests;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::auth::TokenKeys;
use super::edge::ClientAddr;
use super::inbox::Inboxes;
use super::media::MediaState;
use super::moderation::Registry;
use crate::fanout::Fanout;
use crate::record::Record;

pub use session::run as run_session;

/// The number of websocket connections of this node. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Connections(Arc<AtomicUsize>);

impl Connections {
    /// How many are open now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn opened(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The limits a session is held to (from the serve configuration).
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// Frames one connection may send per second, sustained (bursts of twice that).
    pub frames_per_second: u32,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A write that takes longer than this closes the connection as a slow consumer.
    pub write_timeout: Duration,
    /// Comments one identity may post per minute (announced in `welcome`).
    pub comments_per_minute: u32,
    /// Most concurrent connections of this node.
    pub max_connections: usize,
    /// Write a post's answer straight into the socket where it is known (see `PostReply`).
    pub acks_on_wire: bool,
}

/// What a websocket session needs.
pub struct WsState {
    /// Checks the `auth` token.
    pub keys: Arc<TokenKeys>,
    /// Subscriptions and live frames.
    pub fanout: Fanout,
    /// History older than the fan-out's ring.
    pub record: Arc<dyn Record>,
    /// This connection's direct messages.
    pub inboxes: Arc<Inboxes>,
    /// The activity's moderation.
    pub moderation: Registry,
    /// Room media signalling.
    pub media: MediaState,
    /// The limits.
    pub limits: SessionLimits,
    /// This node's connection count.
    pub connections: Connections,
}

/// The websocket route.
pub fn routes(state: Arc<WsState>) -> Router {
    Router::new().route("/ws", get(websocket)).with_state(state)
}

async fn websocket(
    State(state): State<Arc<WsState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ClientAddr(client): ClientAddr,
    mut req: Request,
) -> Response {
    // The session's per-address rules (anonymous votes) take the client, not a proxy.
    let peer = SocketAddr::new(client, peer.port());
    if state.connections.get() >= state.limits.max_connections {
        let body = json!({
            "error": "overloaded",
            "message": "this node is at its connection limit; try another node or later",
        });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    // The upgrade by hand (see `wire`): the session keeps the TCP stream's read side, the
    // fan-out shard writes to it.
    let answer = match wire::handshake(req.headers()) {
        Ok(answer) => answer,
        Err(refusal) => return refusal,
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (StatusCode::UPGRADE_REQUIRED, "Connection is not upgradable").into_response();
    };
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        match wire::websocket(upgraded).await {
            wire::Upgraded::Wire(ws, w) => {
                metrics::counter!("shangliang_ws_sessions_total", "writer" => "shard").increment(1);
                session::run_wire(state, ws, peer, w).await
            }
            wire::Upgraded::Other(ws) => {
                metrics::counter!("shangliang_ws_sessions_total", "writer" => "session").increment(1);
                session::run(state, ws, peer).await
            }
        }
    });
    answer
}
