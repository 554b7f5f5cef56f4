//! One player's HTTP/1.1 connection: hyper's low-level client on a socket bound to the load
//! process's source address, kept alive between requests (as a browser keeps one), reopened
//! when the server closed it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

/// A keep-alive connection to one server.
pub struct Conn {
    src: Option<IpAddr>,
    addr: SocketAddr,
    host: String,
    send: Option<SendRequest<Empty<Bytes>>>,
    /// Connections opened so far (the first one included).
    pub connects: u64,
}

impl Conn {
    /// Not connected yet; the first `get` connects.
    pub fn new(src: Option<IpAddr>, addr: SocketAddr) -> Conn {
        Conn { src, addr, host: addr.to_string(), send: None, connects: 0 }
    }

    async fn connect(&mut self) -> Result<(), String> {
        let sock = if self.addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| format!("socket: {e}"))?;
        if let Some(ip) = self.src {
            sock.bind(SocketAddr::new(ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
        }
        let stream = sock.connect(self.addr).await.map_err(|e| format!("connect {}: {e}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.send = Some(send);
        self.connects += 1;
        Ok(())
    }

    /// `GET path`: the status and the whole body, within `limit`. A connection the server
    /// closed while idle is reopened once.
    pub async fn get(&mut self, path: &str, limit: Duration) -> Result<(u16, Bytes), String> {
        for attempt in 0..2 {
            if self.send.as_ref().is_none_or(|s| s.is_closed()) {
                self.connect().await?;
            }
            let send = self.send.as_mut().expect("connected");
            let req = hyper::Request::get(path).header(hyper::header::HOST, &self.host).body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
            let exchange = async {
                send.ready().await?;
                let resp = send.send_request(req).await?;
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            };
            match tokio::time::timeout(limit, exchange).await {
                Ok(Ok(r)) => return Ok(r),
                Ok(Err(e)) => {
                    self.send = None;
                    // The server closed the kept-alive connection as we reused it: once more.
                    if attempt == 0 && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) {
                        continue;
                    }
                    return Err(format!("GET {path}: {e}"));
                }
                Err(_) => {
                    self.send = None;
                    return Err(format!("GET {path}: no answer in {limit:?}"));
                }
            }
        }
        Err(format!("GET {path}: the connection closed twice"))
    }
}
