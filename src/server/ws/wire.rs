//! The websocket upgrade done by hand, so that the TCP stream stays ours: its write side goes
//! to the fan-out shard ([`Wire`]), which writes live frames straight into the socket; the
//! session task keeps the read side and writes its own frames through the same wire.
//!
//! ```text
//! GET /ws → 101 (Sec-WebSocket-Accept) → hyper hands back the connection → downcast to the
//! edge's TCP stream → Arc<TcpStream>:
//!   shard:   Wire::write_frame  (try_write; pending bytes written when the socket is writable)
//!   session: tungstenite over WireIo { reads: try_read, writes: Wire::write_raw, flush: drain }
//! ```
//! If the connection is not a plain TCP stream (a router served some other way), the session
//! runs as before over tungstenite on the upgraded connection, fed by its fan-out queue.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, Stream};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite_ws::WebSocketStream;
use tokio_tungstenite_ws::tungstenite::protocol::{self, Role, WebSocketConfig};
use tokio_tungstenite_ws::tungstenite::{self as tung};

use crate::fanout::{Wire, WireSocket};

/// The shard's view of the TCP stream.
struct TcpWire(Arc<TcpStream>);

impl WireSocket for TcpWire {
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_write_ready(cx)
    }
}

type Writable = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// The session's side of the socket: reads from the stream, writes through the wire.
pub(super) struct WireIo {
    tcp: Arc<TcpStream>,
    wire: Arc<Wire>,
    /// Waiting for the socket to become writable while the session flushes. `writable()`
    /// keeps a list of waiters, so it does not take the shard's `poll_write_ready` waker.
    writable: Option<Writable>,
}

impl AsyncRead for WireIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(self.tcp.poll_read_ready(cx))?,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for WireIo {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // tungstenite hands over whole frames (its write buffer is 0): they go behind whatever
        // the shard left pending, never into the middle of a frame.
        Poll::Ready(self.wire.write_raw(buf).map(|()| buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.wire.try_drain()? {
                self.writable = None;
                return Poll::Ready(Ok(()));
            }
            let tcp = self.tcp.clone();
            let fut = self.writable.get_or_insert_with(|| Box::pin(async move { tcp.writable().await }));
            let r = ready!(fut.as_mut().poll(cx));
            self.writable = None;
            r?;
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// A websocket as the session sees it: axum's `Message`s over tokio-tungstenite.
pub(super) struct Ws<T>(WebSocketStream<T>);

fn to_axum(m: tung::Message) -> Option<Message> {
    Some(match m {
        tung::Message::Text(t) => Message::Text(Utf8Bytes::from(t.as_str())),
        tung::Message::Binary(b) => Message::Binary(b),
        tung::Message::Ping(b) => Message::Ping(b),
        tung::Message::Pong(b) => Message::Pong(b),
        tung::Message::Close(f) => Message::Close(f.map(|f| CloseFrame {
            code: f.code.into(),
            reason: Utf8Bytes::from(f.reason.as_str()),
        })),
        tung::Message::Frame(_) => return None,
    })
}

fn to_tung(m: Message) -> tung::Message {
    match m {
        Message::Text(t) => tung::Message::Text(tung::Utf8Bytes::from(t.as_str())),
        Message::Binary(b) => tung::Message::Binary(b),
        Message::Ping(b) => tung::Message::Ping(b),
        Message::Pong(b) => tung::Message::Pong(b),
        Message::Close(f) => tung::Message::Close(f.map(|f| protocol::CloseFrame {
            code: f.code.into(),
            reason: tung::Utf8Bytes::from(f.reason.as_str()),
        })),
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for Ws<T> {
    type Item = Result<Message, axum::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(Pin::new(&mut self.0).poll_next(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(axum::Error::new(e)))),
                Some(Ok(m)) => {
                    if let Some(m) = to_axum(m) {
                        return Poll::Ready(Some(Ok(m)));
                    }
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Sink<Message> for Ws<T> {
    type Error = axum::Error;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0).poll_ready(cx).map_err(axum::Error::new)
    }
    fn start_send(mut self: Pin<&mut Self>, m: Message) -> Result<(), Self::Error> {
        Pin::new(&mut self.0).start_send(to_tung(m)).map_err(axum::Error::new)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(axum::Error::new)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0).poll_close(cx).map_err(axum::Error::new)
    }
}

/// The codec settings: small buffers (tungstenite's defaults, 128 KiB each, would cost 256 KiB
/// per viewer) and the client frame limit.
fn config(write_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(write_buffer)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(shangliang_signaling::limits::MAX_CLIENT_FRAME_BYTES))
        .max_frame_size(Some(shangliang_signaling::limits::MAX_CLIENT_FRAME_BYTES))
}

/// What the upgraded connection became.
pub(super) enum Upgraded {
    /// A TCP stream: the shard writes to it through `wire`.
    Wire(Ws<WireIo>, Arc<Wire>),
    /// Something else: the session writes, fed by its queue.
    Other(Ws<TokioIo<hyper::upgrade::Upgraded>>),
}

/// Turns hyper's upgraded connection into a websocket, keeping the TCP stream if it is one.
pub(super) async fn websocket(upgraded: hyper::upgrade::Upgraded) -> Upgraded {
    let tcp = match upgraded.downcast::<TokioIo<crate::server::edge::Tracked>>() {
        Ok(parts) => Ok((parts.io.into_inner().into_tcp(), parts.read_buf)),
        Err(u) => match u.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => Ok((parts.io.into_inner(), parts.read_buf)),
            Err(u) => Err(u),
        },
    };
    match tcp {
        Ok((tcp, read_buf)) => {
            let tcp = Arc::new(tcp);
            let wire = Arc::new(Wire::new(TcpWire(tcp.clone())));
            let io = WireIo { tcp, wire: wire.clone(), writable: None };
            let ws = WebSocketStream::from_partially_read(io, read_buf.to_vec(), Role::Server, Some(config(0))).await;
            Upgraded::Wire(Ws(ws), wire)
        }
        Err(u) => {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(u), Role::Server, Some(config(8 * 1024))).await;
            Upgraded::Other(Ws(ws))
        }
    }
}

/// Checks a websocket upgrade request (RFC 6455 §4.2.1) and builds the 101 answer, or the
/// refusal (as axum's `WebSocketUpgrade` would).
#[allow(clippy::result_large_err)]
pub(super) fn handshake(headers: &HeaderMap) -> Result<Response, Response> {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let refuse = |why: &'static str| (StatusCode::BAD_REQUEST, why).into_response();
    if !has(header::CONNECTION, "upgrade") {
        return Err(refuse("Connection header did not include 'upgrade'"));
    }
    if !has(header::UPGRADE, "websocket") {
        return Err(refuse("`Upgrade` header did not include 'websocket'"));
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        return Err(refuse("`Sec-WebSocket-Version` header did not include '13'"));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(refuse("`Sec-WebSocket-Key` header missing"));
    };
    let accept = accept_key(key.as_bytes());
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).expect("base64 is a valid header value"));
    Ok(r)
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let mut sha = sha1::Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_accept_key_is_the_one_of_rfc_6455() {
        assert_eq!(super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
