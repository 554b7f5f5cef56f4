//! The websocket endpoint (`GET /ws`): the upgrade (connection limit, small buffers) and one
//! [`session`] task per connection.

mod session;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use shangliang_signaling::limits;

use super::auth::TokenKeys;
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
    ws: WebSocketUpgrade,
) -> Response {
    if state.connections.get() >= state.limits.max_connections {
        let body = json!({
            "error": "overloaded",
            "message": "this node is at its connection limit; try another node or later",
        });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    // Small buffers: tungstenite's defaults (128 KiB each) would cost 256 KiB per viewer. The
    // write buffer lets frames queued while the connection waited go out in one syscall.
    ws.read_buffer_size(1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(limits::MAX_CLIENT_FRAME_BYTES)
        .max_frame_size(limits::MAX_CLIENT_FRAME_BYTES)
        .on_upgrade(move |socket| session::run(state, socket, peer))
}
