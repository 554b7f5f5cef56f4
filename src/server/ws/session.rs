//! One websocket connection: authenticate, then serve subscriptions and posts.
//!
//! The session is generic over the socket (`Stream` + `Sink` of [`Message`]), so the unit
//! tests (`super::tests`) drive it with channels. One task per connection: it waits at once on
//! the client's frames, the connection's fan-out queue, its inbox (direct messages: acks,
//! media events) and the idle timer.
//!
//! On the hub's sockets the fan-out shard writes the live frames itself (`run_wire`, see
//! `wire.rs`): the fan-out receiver then yields only the close, and the session never wakes for
//! a delivery. Connections fed by a queue (`run`: the unit tests, a router served another way)
//! write the queued frames here.
//!
//! ```text
//! auth (within AUTH_TIMEOUT) → welcome → loop select! {
//!     fan-out queue  → write up to MAX_FRAMES_PER_FLUSH frames, one flush (wire: only the close)
//!     inbox          → write (acks of posts, replies for one participant, media events)
//!     client frame   → rate limit → decode → sub | post | cmd | media | ping
//!     idle timer     → close
//! }
//! ```
//! A `post` is handed to the activity's moderation driver and not waited for: the driver
//! decides, appends, and once the comment is durable the record's writer writes the ack into
//! this connection's socket through its wire (on the wire path; the session only flushes what
//! the socket did not take at once), or into the inbox (the queue path).
//!
//! Refusals (see `docs/protocol.md`): a frame larger than the limit closes with 1009; a
//! malformed or unknown frame gets an `error` and the connection stays, unless
//! [`MAX_BAD_FRAMES`] come in a row (close 4400); anything before a valid `auth` closes with
//! 4401; more than the frame rate limit for [`FLOOD_STRIKES`] seconds closes with 4429.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota};
use shangliang_signaling::{
    ActivityId, AnnouncedLimits, ClientMsg, DecodeError, ErrorCode, Form, PROTOCOL_VERSION,
    Position, ServerMsg, close, decode_client, encode_batch, encode_item, encode_server, limits,
};

use super::WsState;
use crate::consult::Grants;
use crate::server::auth::Claims;
use crate::server::inbox::Direct;
use crate::server::media::MediaConn;
use crate::server::moderation::{DriverMsg, PostReply};
use tokio::sync::mpsc::error::TrySendError;
use crate::fanout::{CatchUp, ConnHandle, ConnReceiver, Opcode, Outbound, Wire};

/// Time allowed between the upgrade and a valid `auth`.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Malformed or unknown frames in a row before the connection is closed with 4400.
const MAX_BAD_FRAMES: u32 = 10;
/// Seconds of flooding (frames refused by the rate limit) before the connection is closed.
const FLOOD_STRIKES: u32 = 3;
/// Frames taken from the fan-out queue and written with one flush.
const MAX_FRAMES_PER_FLUSH: usize = 16;

type SendError = axum::Error;

/// Runs one connection to its end; its fan-out frames come through a queue that the session
/// writes to the socket.
pub async fn run<S>(state: Arc<WsState>, socket: S, peer: SocketAddr)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = SendError> + Unpin,
{
    run_with(state, socket, peer, None).await
}

/// Runs one connection whose fan-out shard writes the live frames to the socket through
/// `wire`; `socket` writes through the same wire.
pub async fn run_wire<S>(state: Arc<WsState>, socket: S, peer: SocketAddr, wire: Arc<Wire>)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = SendError> + Unpin,
{
    run_with(state, socket, peer, Some(wire)).await
}

async fn run_with<S>(state: Arc<WsState>, socket: S, peer: SocketAddr, wire: Option<Arc<Wire>>)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = SendError> + Unpin,
{
    state.connections.opened();
    metrics::gauge!("shangliang_connections").increment(1.0);
    metrics::counter!("shangliang_connections_total").increment(1);
    // Boxed: an async fn keeps room for its moved-out arguments, so nesting the session inline
    // would hold the socket twice in the task.
    let end = Box::pin(Session::start(&state, socket, peer, wire)).await;
    metrics::counter!("shangliang_closed_total", "code" => end.label()).increment(1);
    metrics::gauge!("shangliang_connections").decrement(1.0);
    state.connections.closed();
}

struct Session<'h, S> {
    state: &'h Arc<WsState>,
    socket: S,
    form: Form,
    claims: Claims,
    conn: ConnHandle,
    subscriptions: Vec<ActivityId>,
    /// Sender of this connection's inbox, for answers that come later (acks, media events).
    inbox_tx: tokio::sync::mpsc::Sender<Direct>,
    /// The activity's moderation driver, or in a cluster this node's router to it (None if
    /// the activity does not exist). See [`Session::driver`].
    driver: Option<tokio::sync::mpsc::Sender<DriverMsg>>,
    grants: Grants,
    bad_frames: u32,
    frame_limiter: DefaultDirectRateLimiter,
    flood_seconds: u32,
    last_flood: Option<Instant>,
    /// This connection's participation in a room's media, if any.
    media: MediaConn,
    /// The client's address (trusted-proxy aware: `edge::ClientAddr`), for per-address rules.
    peer: SocketAddr,
    /// The connection's write side when its shard writes to the socket: the session's own data
    /// frames and the acks go straight into it (see [`Session::send_frame`]).
    wire: Option<Arc<Wire>>,
}

type CloseCode = u16;

/// How a session ends, decided once and applied by [`Session::start`]; also the
/// `closed_total{code}` label, so the metric says what happened on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The hub closes with this code and reason: a Close frame, best effort within the write
    /// timeout (a client that stopped reading may never take it), then the TCP connection
    /// is dropped.
    Close(CloseCode, &'static str),
    /// The client sent Close: the hub answers with the same code (RFC 6455 §5.5.1; `None` is
    /// a Close without a code, answered without one), then drops the TCP connection.
    Echo(Option<CloseCode>),
    /// The TCP connection ended (or a write failed) without a closing handshake: nothing can
    /// be sent. Labelled `abrupt`.
    Abrupt,
}

impl End {
    fn label(self) -> String {
        match self {
            End::Close(code, _) | End::Echo(Some(code)) => code.to_string(),
            End::Echo(None) => "1005".into(),
            End::Abrupt => "abrupt".into(),
        }
    }
}

impl From<(CloseCode, &'static str)> for End {
    fn from((code, reason): (CloseCode, &'static str)) -> End {
        End::Close(code, reason)
    }
}

impl<'h, S> Session<'h, S>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = SendError> + Unpin,
{
    async fn start(state: &'h Arc<WsState>, mut socket: S, peer: SocketAddr, wire: Option<Arc<Wire>>) -> End {
        let (form, claims) = match Box::pin(authenticate(state, &mut socket)).await {
            Ok(ok) => ok,
            Err(end) => {
                tracing::debug!(%peer, ?end, "ended before auth");
                finish(&mut socket, end, state.limits.write_timeout).await;
                return end;
            }
        };
        let (conn, rx) = match wire.clone() {
            Some(wire) => state.fanout.connect_wire(form, wire),
            None => state.fanout.connect(form),
        };
        let (_inbox_guard, inbox_tx, inbox_rx) = state.inboxes.register(claims.act.clone(), claims.sub.clone());
        let fps = NonZeroU32::new(state.limits.frames_per_second.max(1)).unwrap();
        let burst = fps.saturating_mul(NonZeroU32::new(2).unwrap());
        let grants = claims.grants();
        let driver = state.moderation.sender(&claims.act);
        if let Some(tx) = &driver {
            let _ = Box::pin(tx.send(DriverMsg::Join(grants.clone()))).await;
        }
        let mut session = Session {
            driver,
            grants,
            state,
            socket,
            form,
            claims,
            conn,
            subscriptions: Vec::new(),
            inbox_tx,
            bad_frames: 0,
            frame_limiter: DefaultDirectRateLimiter::direct(
                Quota::per_second(fps).allow_burst(burst),
            ),
            flood_seconds: 0,
            last_flood: None,
            media: MediaConn::default(),
            peer,
            wire,
        };
        let welcome = ServerMsg::Welcome {
            v: PROTOCOL_VERSION,
            you: session.claims.author(),
            activity: session.claims.act.clone(),
            limits: AnnouncedLimits {
                max_frame_bytes: limits::MAX_CLIENT_FRAME_BYTES as u32,
                max_text_chars: limits::MAX_TEXT_CHARS as u32,
                comments_per_minute: state.limits.comments_per_minute,
                idle_timeout_ms: state.limits.idle_timeout.as_millis() as u32,
                frames_per_second: state.limits.frames_per_second,
            },
        };
        if Box::pin(session.send_msg(&welcome)).await.is_err() {
            return End::Abrupt;
        }
        let end = session.serve(rx, inbox_rx).await;
        // Leaving the room frees its connections before the socket closes.
        Box::pin(session.media.leave()).await;
        if let Some(tx) = session.driver() {
            let _ = Box::pin(tx.send(DriverMsg::Leave(session.grants.subject.clone()))).await;
        }
        if let Some(wire) = &session.wire {
            // Nothing after the Close: no batch from the shard, no late ack.
            wire.seal();
        }
        Box::pin(finish(&mut session.socket, end, state.limits.write_timeout)).await;
        end
    }

    /// The main loop. Returns how the session ends.
    async fn serve(
        &mut self,
        mut rx: ConnReceiver,
        mut inbox: tokio::sync::mpsc::Receiver<Direct>,
    ) -> End {
        let idle_timeout = self.state.limits.idle_timeout;
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                biased;
                out = rx.recv() => match out {
                    Some(Outbound::Frame(frame)) => {
                        if let Err(end) = Box::pin(self.write_frames(frame, &mut rx)).await {
                            return end;
                        }
                    }
                    Some(Outbound::Close { code, reason }) => return End::Close(code, reason),
                    None => return End::Close(close::GOING_AWAY, "server shutting down"),
                },
                Some(direct) = inbox.recv() => {
                    let sent = if direct.written { Box::pin(self.flush_wire()).await } else { Box::pin(self.send_msg(&direct)).await };
                    if sent.is_err() {
                        return End::Abrupt;
                    }
                    if let Some(trace) = &direct.trace {
                        trace.written();
                    }
                }
                msg = self.socket.next() => {
                    idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                    match msg {
                        Some(Ok(msg)) => {
                            // Boxed: the handling of a frame is a large future, and an idle
                            // connection's task would otherwise hold room for it all its life.
                            if let Some(end) = Box::pin(self.handle_message(msg)).await {
                                return end;
                            }
                        }
                        Some(Err(e)) => return classify_socket_error(&e),
                        None => return End::Abrupt,
                    }
                }
                _ = &mut idle => return End::Close(close::NORMAL, "idle timeout"),
            }
        }
    }

    /// Writes one frame and whatever else is queued (up to a limit) with a single flush.
    /// A flush that outlasts the write timeout ends the session as a slow consumer.
    async fn write_frames(
        &mut self,
        first: Bytes,
        rx: &mut ConnReceiver,
    ) -> Result<(), End> {
        let form = self.form;
        let timeout = self.state.limits.write_timeout;
        let mut close_after: Option<(CloseCode, &'static str)> = None;
        let write = async {
            self.socket.feed(frame_message(form, first)).await?;
            for _ in 1..MAX_FRAMES_PER_FLUSH {
                match rx.try_recv() {
                    Some(Outbound::Frame(f)) => self.socket.feed(frame_message(form, f)).await?,
                    Some(Outbound::Close { code, reason }) => {
                        close_after = Some((code, reason));
                        break;
                    }
                    None => break,
                }
            }
            self.socket.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => close_after.map_or(Ok(()), |c| Err(c.into())),
            Ok(Err(_)) => Err(End::Abrupt),
            Err(_) => {
                metrics::counter!("shangliang_fanout_slow_closed_total").increment(1);
                Err(End::Close(close::SLOW_CONSUMER, "slow consumer"))
            }
        }
    }

    async fn send_msg(&mut self, msg: &ServerMsg) -> Result<(), SendError> {
        let frame = encode_server(self.form, msg);
        self.send_frame(frame).await
    }

    /// Writes one encoded data frame. On the wire path it goes straight into the socket through
    /// the wire (behind the shard's pending bytes, never inside them), not through tungstenite,
    /// whose outgoing buffer would keep the capacity of the largest frame ever written (a
    /// catch-up batch, a state) for the connection's whole life. What the socket does not take
    /// at once is flushed within the write timeout.
    async fn send_frame(&mut self, frame: Bytes) -> Result<(), SendError> {
        let Some(wire) = &self.wire else {
            return self.socket.send(frame_message(self.form, frame)).await;
        };
        let op = if self.form == Form::Json { Opcode::Text } else { Opcode::Binary };
        match wire.write_own(op, &frame) {
            Ok(true) => Ok(()),
            Ok(false) => self.flush_wire().await,
            Err(e) => Err(SendError::new(e)),
        }
    }

    /// Waits, at most the write timeout, until the wire's pending bytes are in the socket.
    async fn flush_wire(&mut self) -> Result<(), SendError> {
        match tokio::time::timeout(self.state.limits.write_timeout, self.socket.flush()).await {
            Ok(r) => r,
            Err(_) => Err(SendError::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "write timeout"))),
        }
    }

    async fn send_error(&mut self, id: Option<u32>, code: ErrorCode, message: impl Into<String>) {
        metrics::counter!("shangliang_frames_refused_total", "code" => format!("{code:?}")).increment(1);
        let _ = self.send_msg(&ServerMsg::Error { id, code, message: message.into() }).await;
    }

    /// Handles one frame from the client; `Some` ends the session with that close.
    async fn handle_message(&mut self, msg: Message) -> Option<End> {
        let (form, data) = match msg {
            Message::Binary(b) => (Form::MsgPack, b),
            Message::Text(t) => (Form::Json, Bytes::from(t)),
            Message::Ping(_) | Message::Pong(_) => return None,
            Message::Close(frame) => return Some(End::Echo(frame.map(|f| f.code))),
        };
        let decoded = decode_client(form, &data);
        if self.frame_limiter.check().is_err() {
            // Over the frame rate: the frame is not processed. A post is answered with its id
            // so the client knows it was not accepted; sustained flooding closes.
            if let Ok(ClientMsg::Post { id, .. }) = &decoded {
                let id = *id;
                self.send_error(Some(id), ErrorCode::RateLimited, "too many frames; slow down").await;
            }
            let now = Instant::now();
            if self.last_flood.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                self.last_flood = Some(now);
                self.flood_seconds += 1;
                if self.flood_seconds >= FLOOD_STRIKES {
                    return Some(End::Close(close::FLOOD, "flood"));
                }
                self.send_error(None, ErrorCode::RateLimited, "too many frames; slow down").await;
            }
            return None;
        }
        if self.last_flood.is_some_and(|t| t.elapsed() > Duration::from_secs(10)) {
            self.flood_seconds = 0;
            self.last_flood = None;
        }
        let msg = match decoded {
            Ok(m) => {
                self.bad_frames = 0;
                m
            }
            Err(DecodeError::TooLarge(_)) => return Some(End::Close(close::TOO_BIG, "frame too large")),
            Err(e) => {
                self.bad_frames += 1;
                if self.bad_frames >= MAX_BAD_FRAMES {
                    return Some(End::Close(close::PROTOCOL, "too many bad frames"));
                }
                let code = match e {
                    DecodeError::UnknownType(_) => ErrorCode::UnknownType,
                    _ => ErrorCode::BadFrame,
                };
                self.send_error(None, code, e.to_string()).await;
                return None;
            }
        };
        match msg {
            ClientMsg::Auth { .. } => {
                self.send_error(None, ErrorCode::Unauthenticated, "already authenticated").await;
            }
            ClientMsg::Ping { id } => {
                let _ = self.send_msg(&ServerMsg::Pong { id }).await;
            }
            // Rare and large futures are boxed so the per-connection task stays small.
            ClientMsg::Sub { topic, resume, last } => {
                // A newcomer's `last: N`: the resume of a client that held everything up to N
                // items before the live edge, so the catch-up (ring, else the record) serves them.
                let resume = resume.or_else(|| last_n(&self.state.fanout, &topic, last?));
                Box::pin(self.subscribe(topic, resume)).await
            }
            ClientMsg::Unsub { topic } => {
                self.state.fanout.unsubscribe(&self.conn, &topic);
                self.subscriptions.retain(|t| *t != topic);
            }
            ClientMsg::Post { id, topic, text } => self.post(id, topic, text),
            ClientMsg::Media { id, req } => {
                let ev = Box::pin(self.media.handle(&self.state.media, &self.claims, &self.inbox_tx, req)).await;
                let _ = self.send_msg(&ServerMsg::Media { id: Some(id), ev }).await;
            }
            ClientMsg::Cmd { id, topic, cmd } => Box::pin(self.command(id, topic, cmd)).await,
            ClientMsg::Consensus { id, topic, req } => {
                let answer = match self.check_activity(&topic) {
                    Err((code, m)) => ServerMsg::Error { id: Some(id), code, message: m.into() },
                    Ok(()) => Box::pin(crate::server::moderation::consensus::request(self.driver(), self.grants.clone(), id, req)).await,
                };
                let _ = self.send_msg(&answer).await;
            }
        }
        None
    }

    /// The activity's driver (or router), asked for again if the one held has stopped (a
    /// driver that lost its fence is replaced by one started afresh from the record).
    fn driver(&mut self) -> Option<tokio::sync::mpsc::Sender<DriverMsg>> {
        if self.driver.as_ref().is_none_or(|tx| tx.is_closed()) {
            self.driver = self.state.moderation.sender(&self.claims.act);
        }
        self.driver.clone()
    }

    fn check_activity(&self, topic: &ActivityId) -> Result<(), (ErrorCode, &'static str)> {
        if *topic != self.claims.act {
            return Err((ErrorCode::Forbidden, "your token is for another activity"));
        }
        Ok(())
    }

    /// Subscribes, writes `subscribed`, the state and the catch-up, then lets the live frames
    /// follow (a wire connection's shard holds them until then).
    async fn subscribe(&mut self, topic: ActivityId, resume: Option<Position>) {
        self.subscribe_and_catch_up(&topic, resume).await;
        self.state.fanout.release(&self.conn, &topic);
    }

    async fn subscribe_and_catch_up(&mut self, topic: &ActivityId, resume: Option<Position>) {
        let topic = topic.clone();
        if let Err((code, m)) = self.check_activity(&topic) {
            return self.send_error(None, code, m).await;
        }
        if !self.subscriptions.contains(&topic) && self.subscriptions.len() >= limits::MAX_SUBSCRIPTIONS {
            return self.send_error(None, ErrorCode::TooManySubscriptions, "too many subscriptions").await;
        }
        let full_view = self.claims.role.is_moderator();
        let sub = match self.state.fanout.subscribe(&self.conn, &topic, full_view, resume) {
            Ok(s) => s,
            Err(crate::fanout::FanoutError::NoSuchTopic) => {
                return self.send_error(None, ErrorCode::NoSuchTopic, "no such activity").await;
            }
            Err(e) => return self.send_error(None, ErrorCode::Internal, e.to_string()).await,
        };
        if !self.subscriptions.contains(&topic) {
            self.subscriptions.push(topic.clone());
        }
        let subscribed = ServerMsg::Subscribed { topic: topic.clone(), epoch: sub.epoch, offset: sub.offset, full_view };
        if self.send_msg(&subscribed).await.is_err() {
            return;
        }
        // The moderation state goes right after `subscribed`, or after the `reset`.
        let state = state_msg(self.driver(), self.grants.clone(), &topic).await;
        let is_reset = matches!(sub.catch_up, CatchUp::Reset { .. });
        if !is_reset && let Some(state) = &state && self.send_msg(state).await.is_err() {
            return;
        }
        let frames = match sub.catch_up {
            CatchUp::Live => Vec::new(),
            CatchUp::Frames(frames) => frames,
            CatchUp::Reset { frame, .. } => vec![frame],
            CatchUp::FromRecord { from, to, then } => {
                match self.state.record.items(&topic, from, to, !full_view).await {
                    Ok(items) => {
                        let encoded: Vec<Bytes> = items.iter().map(|s| encode_item(self.form, &s.item)).collect();
                        let batch = encode_batch(
                            self.form,
                            &topic,
                            sub.epoch,
                            from,
                            to,
                            0,
                            encoded.iter().map(|b| b.as_ref()),
                        );
                        std::iter::once(batch).chain(then).collect()
                    }
                    Err(e) => {
                        // Without the history the client would have a silent gap: refuse the
                        // subscription instead; it may try again.
                        self.state.fanout.unsubscribe(&self.conn, &topic);
                        self.subscriptions.retain(|t| *t != topic);
                        return self.send_error(None, ErrorCode::Unavailable, format!("history unavailable: {e}")).await;
                    }
                }
            }
        };
        for f in frames {
            if self.send_frame(f).await.is_err() {
                return;
            }
        }
        if is_reset && let Some(state) = &state {
            let _ = self.send_msg(state).await;
        }
    }

    async fn command(&mut self, id: u32, topic: ActivityId, cmd: shangliang_signaling::consult::Command) {
        if let Err((code, m)) = self.check_activity(&topic) {
            return self.send_error(Some(id), code, m).await;
        }
        let Some(tx) = self.driver() else {
            return self.send_error(Some(id), ErrorCode::NoSuchTopic, "no such activity").await;
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        let from = Some(crate::consult::votes::NetBlock::of(self.peer.ip()));
        let sent = tx.send(DriverMsg::Command { grants: self.grants.clone(), from, cmd, reply }).await;
        match (sent, rx.await) {
            (Ok(()), Ok(Ok(reply))) => {
                let _ = self.send_msg(&ServerMsg::Reply { id, reply }).await;
            }
            (Ok(()), Ok(Err((code, message)))) => {
                metrics::counter!("shangliang_commands_refused_total", "code" => format!("{code:?}")).increment(1);
                let _ = self.send_msg(&ServerMsg::Error { id: Some(id), code, message }).await;
            }
            _ => self.send_error(Some(id), ErrorCode::Unavailable, "the activity is not available").await,
        }
    }

    /// Hands a post to the activity's moderation driver, which decides, appends and answers
    /// through this connection's inbox once the comment is durable: the session does not wait,
    /// so posts from one connection are pipelined and the session keeps reading.
    fn post(&mut self, id: u32, topic: ActivityId, text: String) {
        let reply = match self.wire.as_ref().filter(|_| self.state.limits.acks_on_wire) {
            Some(wire) => PostReply::inbox_wire(id, self.inbox_tx.clone(), wire.clone(), self.form),
            None => PostReply::inbox(id, self.inbox_tx.clone()),
        };
        reply.span().in_scope(|| tracing::debug!(%topic, "post read"));
        let Some(tx) = self.driver() else {
            return reply.send(Err(unavailable()));
        };
        let msg = DriverMsg::Post { grants: self.grants.clone(), topic, text, reply };
        match tx.try_send(msg) {
            Ok(()) => {}
            // The driver is behind: wait for room in a task of its own, not in the session.
            Err(TrySendError::Full(msg)) => {
                tokio::spawn(async move {
                    if let Err(e) = tx.send(msg).await {
                        refuse_post(e.0);
                    }
                });
            }
            Err(TrySendError::Closed(msg)) => refuse_post(msg),
        }
    }
}

/// The size of one connection's session future (what its task holds for the connection's
/// life, beside the heap it points to), for the test that keeps it small.
#[cfg(test)]
pub(super) fn session_future_size<S>(state: &Arc<WsState>, socket: S) -> usize
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = SendError> + Unpin,
{
    std::mem::size_of_val(&Session::start(state, socket, "127.0.0.1:9".parse().unwrap(), None))
}

/// The position `n` items (at most [`limits::MAX_SUB_LAST`]) before `topic`'s live edge; `None`
/// for `n = 0` or an unknown topic (the subscription then starts at the live edge or is refused).
fn last_n(fanout: &crate::fanout::Fanout, topic: &ActivityId, n: u32) -> Option<Position> {
    let info = fanout.topic_info(topic)?;
    let n = u64::from(n.min(limits::MAX_SUB_LAST));
    (n > 0).then(|| Position { epoch: info.epoch, offset: shangliang_signaling::Seq(info.last_seq.0.saturating_sub(n)) })
}

fn unavailable() -> (ErrorCode, String) {
    (ErrorCode::Unavailable, "the activity is not available; retry".into())
}

/// Answers a post that never reached its driver.
fn refuse_post(msg: DriverMsg) {
    if let DriverMsg::Post { reply, .. } = msg {
        reply.send(Err(unavailable()));
    }
}


/// The `state` message for a connection of `grants`, from the activity's driver.
async fn state_msg(
    driver: Option<tokio::sync::mpsc::Sender<DriverMsg>>,
    grants: Grants,
    topic: &ActivityId,
) -> Option<ServerMsg> {
    let tx = driver?;
    let (reply, rx) = tokio::sync::oneshot::channel();
    tx.send(DriverMsg::State { grants, reply }).await.ok()?;
    let state = rx.await.ok()?.ok()?;
    Some(ServerMsg::State { topic: topic.clone(), state })
}

/// Waits for the first frame, which must be a valid `auth`; fixes the connection's form.
async fn authenticate<S>(state: &WsState, socket: &mut S) -> Result<(Form, Claims), End>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = SendError> + Unpin,
{
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    let (form, data) = loop {
        let msg = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Err(End::Close(close::AUTH_TIMEOUT, "auth timeout")),
            Ok(None) => return Err(End::Abrupt),
            Ok(Some(Err(e))) => return Err(classify_socket_error(&e)),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Binary(b) => break (Form::MsgPack, b),
            Message::Text(t) => break (Form::Json, Bytes::from(t)),
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(frame) => return Err(End::Echo(frame.map(|f| f.code))),
        }
    };
    let refuse = async |socket: &mut S, code: ErrorCode, message: String| {
        let frame = encode_server(form, &ServerMsg::Error { id: None, code, message });
        let _ = socket.send(frame_message(form, frame)).await;
    };
    match decode_client(form, &data) {
        Ok(ClientMsg::Auth { v, token }) => {
            if v != PROTOCOL_VERSION {
                refuse(socket, ErrorCode::VersionUnsupported, format!("this server speaks version {PROTOCOL_VERSION}")).await;
                return Err(End::Close(close::VERSION, "version unsupported"));
            }
            match state.keys.verify(&token) {
                Ok(claims) => Ok((form, claims)),
                Err(e) => {
                    refuse(socket, e.code(), e.to_string()).await;
                    Err(End::Close(close::UNAUTHENTICATED, if e.code() == ErrorCode::TokenExpired { "token expired" } else { "invalid token" }))
                }
            }
        }
        Ok(_) => {
            refuse(socket, ErrorCode::Unauthenticated, "the first message must be auth".into()).await;
            Err(End::Close(close::UNAUTHENTICATED, "unauthenticated"))
        }
        Err(DecodeError::TooLarge(_)) => Err(End::Close(close::TOO_BIG, "frame too large")),
        Err(e) => {
            let code = if matches!(e, DecodeError::UnknownType(_)) { ErrorCode::UnknownType } else { ErrorCode::BadFrame };
            refuse(socket, code, e.to_string()).await;
            Err(End::Close(close::UNAUTHENTICATED, "unauthenticated"))
        }
    }
}

fn frame_message(form: Form, frame: Bytes) -> Message {
    match form {
        Form::MsgPack => Message::Binary(frame),
        // Frames in the JSON form are built from serde_json output: valid UTF-8.
        Form::Json => Message::Text(Utf8Bytes::try_from(frame).expect("JSON frames are UTF-8")),
    }
}

/// Sorts a read error: an oversized frame (1009), a connection that ended without a closing
/// handshake (`abrupt`: reset, EOF, I/O error), or a protocol violation (4400).
fn classify_socket_error(e: &axum::Error) -> End {
    let text = e.to_string();
    if text.contains("too long") || text.contains("Space limit") || text.contains("capacity") {
        End::Close(close::TOO_BIG, "frame too large")
    } else if is_abrupt(&text) {
        End::Abrupt
    } else {
        End::Close(close::PROTOCOL, "websocket protocol error")
    }
}

/// tungstenite's words for a connection that is gone (its `Error::Io`, `ConnectionClosed`,
/// `AlreadyClosed` and `Protocol(ResetWithoutClosingHandshake)`); axum hides the error type,
/// so the text is what there is to go by.
fn is_abrupt(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["io error", "without closing handshake", "connection closed", "already closed", "broken pipe", "connection reset"]
        .iter()
        .any(|w| t.contains(w))
}

/// Applies the end of a session: the Close frame (or the echo of the client's) within
/// `bound`, best effort; the caller then drops the socket, which closes the TCP connection.
/// A client that stopped reading gets the frame if it drains its socket within the bound.
async fn finish<S>(socket: &mut S, end: End, bound: Duration)
where
    S: Sink<Message, Error = SendError> + Unpin,
{
    let frame = match end {
        End::Close(code, reason) => Some(CloseFrame { code, reason: Utf8Bytes::from(reason) }),
        End::Echo(Some(code)) => Some(CloseFrame { code, reason: Utf8Bytes::default() }),
        End::Echo(None) => None,
        End::Abrupt => return,
    };
    let echo = matches!(end, End::Echo(_));
    let _ = tokio::time::timeout(bound, async {
        // tungstenite queues the answer to a client's Close itself (with the client's code) and
        // refuses a second Close after it (`SendAfterClosing`), sending its own only on the next
        // flush: flush then. A socket without that machinery (the unit tests' channels) takes ours.
        if socket.send(Message::Close(frame)).await.is_err() && echo {
            let _ = socket.flush().await;
        }
    })
    .await;
}
