//! The edge: how accepted TCP connections become HTTP requests and websockets, and what keeps
//! anyone from starving the hub of them (issue 12: ~20,000 half-open requests took the hub to
//! its file limit; `/healthz` stopped answering).
//!
//! # The run loop ([`serve`])
//! ```text
//! loop {
//!     (tcp, peer) = accept()                    // error (EMFILE ...): count, back off 10 ms … 1 s
//!     gate.admit(peer)                          // Gate: pure, below
//!         refused => count refused{reason}; write a 429/503 if the socket takes it; close
//!     spawn one task per connection:
//!         hyper HTTP/1.1, header_read_timeout   // a head within `header_timeout`, also between
//!                                               //   keep-alive requests
//!         every request: ClientAddr (trusted-proxy aware), ConnectInfo (the TCP peer),
//!                        answered within `request_timeout` (body read included) or 408
//!         watchdog: no byte either way for `idle_timeout` while not upgraded => close
//!         ends when the connection closes or is upgraded to a websocket => the slot is released
//! }
//! shutdown: stop accepting, ask every connection to finish, wait (bounded)
//! ```
//!
//! # Why these limits (how nginx and Envoy do it)
//! - A connection is *pending* from accept until it is closed or upgraded. Pending connections
//!   are what the attack held; websockets are capped apart (`--max-connections`) and live
//!   under their own idle and lag rules in `session.rs`.
//! - **Timeouts**: nginx has `client_header_timeout`, `client_body_timeout` (between reads) and
//!   `send_timeout` (between writes); Envoy `request_headers_timeout`, `idle_timeout`,
//!   `request_timeout`. Here: `header_timeout` (hyper's own), `idle_timeout` (no progress in
//!   either direction) and `request_timeout` (a whole request, so a body dripped a byte at a time
//!   cannot hold a slot longer).
//! - **Caps** (nginx `limit_conn` per `$binary_remote_addr`; Envoy's overload manager and
//!   `global_downstream_max_connections`): at most `max_pending_per_address` pending connections
//!   per client address (an IPv6 /64 counts as one address), at most `max_pending` in total, and
//!   no new connection when the process would come within `fd_headroom` of its file limit.
//! - **Headroom for `/healthz` and moderators**: the last `pending_reserve` slots of
//!   `max_pending` admit only addresses that hold fewer than [`RESERVE_PER_ADDRESS`] (4) pending
//!   connections. An attacker who filled the pool from a few addresses cannot take them; a
//!   health checker, a moderator or a viewer arriving from any other address still gets in. Established websockets (moderators at work)
//!   are not pending and are untouched. A distributed attack from more addresses than the reserve
//!   can still fill it: that needs a front proxy or a CDN, which is what `--trusted-proxy` is for.
//! - **Trusted proxies**: behind nginx every TCP peer is the proxy, so per-address caps cannot
//!   apply at accept (the proxy is exempt; it buffers headers itself), and the client address
//!   comes from the header the proxy writes — only from peers in `--trusted-proxy`, walking the
//!   hops from the right and stopping at the first address that is not a trusted proxy
//!   ([`client_addr`]). Every per-address rule (the viewer-token limiter ...) uses [`ClientAddr`].
//!
//! HTTP/1.1 only: browsers reach the hub over HTTP/1.1 (websockets need it), and h2 belongs to
//! the TLS terminator in front. (hyper-util's auto builder also waits for the first bytes to
//! tell h1 from h2 with no timeout at all.)

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::Hub;

/// Which header a trusted proxy writes the client's address into.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientHeader {
    /// `X-Forwarded-For: client, proxy1, ...` (nginx `$proxy_add_x_forwarded_for`).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl std::str::FromStr for ClientHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "x-forwarded-for" | "xff" => Ok(ClientHeader::XForwardedFor),
            "forwarded" => Ok(ClientHeader::Forwarded),
            _ => Err("one of x-forwarded-for, forwarded".into()),
        }
    }
}

/// The edge's settings (`shangliang serve --header-timeout-secs ... --trusted-proxy ...`).
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// A connection must send a complete request head within this long after it opens or after
    /// its previous response (hyper's `header_read_timeout`). Default 10 s.
    pub header_timeout: Duration,
    /// A pending connection with no byte read or written for this long is closed. Default 30 s.
    pub idle_timeout: Duration,
    /// A request (reading its body included) must be answered within this long, or 408.
    /// Default 30 s.
    pub request_timeout: Duration,
    /// Most pending (not yet upgraded) connections; `None`: a quarter of the file budget, at
    /// most 4096.
    pub max_pending: Option<usize>,
    /// Most pending connections per client address (IPv6: per /64). Default 64.
    pub max_pending_per_address: usize,
    /// Slots of `max_pending` kept for addresses that hold fewer than [`RESERVE_PER_ADDRESS`];
    /// `None`: an eighth of it.
    pub pending_reserve: Option<usize>,
    /// Files kept free below the process's limit (`RLIMIT_NOFILE`) for everything else the hub
    /// opens. Default 64.
    pub fd_headroom: usize,
    /// Peers whose forwarded client address is believed (`--trusted-proxy CIDR`).
    pub trusted_proxies: Vec<IpNet>,
    /// The header those proxies write.
    pub client_header: ClientHeader,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_pending: None,
            max_pending_per_address: 64,
            pending_reserve: None,
            fd_headroom: 64,
            trusted_proxies: Vec::new(),
            client_header: ClientHeader::XForwardedFor,
        }
    }
}

/// Parses `--trusted-proxy`: a CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or CIDR (e.g. 10.0.0.0/8)"))
}

// ---------------------------------------------------------------------------------------------
// The gate: pure admission of pending connections

/// The numbers the gate enforces, resolved at start from [`EdgeConfig`] and the file limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateLimits {
    /// Most pending connections.
    pub max_pending: usize,
    /// Most pending connections per address key.
    pub per_address: usize,
    /// The last slots of `max_pending`, for addresses holding none.
    pub reserve: usize,
    /// Most open files (sockets and everything else) the gate lets the process reach.
    pub max_open: usize,
}

impl GateLimits {
    /// Resolves the configuration against a file limit (`None`: unlimited).
    pub fn resolve(cfg: &EdgeConfig, nofile: Option<u64>) -> Self {
        let nofile = nofile.map_or(usize::MAX / 2, |n| usize::try_from(n).unwrap_or(usize::MAX / 2));
        let max_open = nofile.saturating_sub(cfg.fd_headroom).max(16);
        let max_pending = cfg.max_pending.unwrap_or((max_open / 4).clamp(16, 4096)).max(1);
        let reserve = cfg.pending_reserve.unwrap_or((max_pending / 8).max(1)).min(max_pending - 1);
        GateLimits { max_pending, per_address: cfg.max_pending_per_address.max(1), reserve, max_open }
    }
}

/// What a refused or cut connection is counted as in `shangliang_http_refused_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The address already holds `per_address` pending connections.
    PerAddress,
    /// `max_pending` pending connections are open.
    Total,
    /// Only the reserve is left, and this address already holds [`RESERVE_PER_ADDRESS`].
    Reserve,
    /// The process would come within `fd_headroom` of its file limit.
    FdBudget,
    /// No complete request head within `header_timeout` of opening.
    HeaderTimeout,
    /// No byte either way for `idle_timeout` in the middle of a request.
    IdleTimeout,
    /// A request not answered within `request_timeout` (408).
    RequestTimeout,
    /// `accept` failed (EMFILE ...).
    AcceptError,
}

impl Refusal {
    /// Every reason, for registering the counters at start.
    pub const ALL: [Refusal; 8] = [
        Refusal::PerAddress,
        Refusal::Total,
        Refusal::Reserve,
        Refusal::FdBudget,
        Refusal::HeaderTimeout,
        Refusal::IdleTimeout,
        Refusal::RequestTimeout,
        Refusal::AcceptError,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PerAddress => "pending_per_address",
            Refusal::Total => "pending_total",
            Refusal::Reserve => "pending_reserve",
            Refusal::FdBudget => "fd_budget",
            Refusal::HeaderTimeout => "header_timeout",
            Refusal::IdleTimeout => "idle_timeout",
            Refusal::RequestTimeout => "request_timeout",
            Refusal::AcceptError => "accept_error",
        }
    }

    fn count(self) {
        metrics::counter!("shangliang_http_refused_total", "reason" => self.as_str()).increment(1);
    }
}

/// What per-address rules key on: an IPv4 address, or the /64 of an IPv6 one (a host usually
/// gets a whole /64, so counting single IPv6 addresses would count nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrKey(IpAddr);

impl AddrKey {
    /// The key of an address (IPv4-mapped IPv6 counts as the IPv4 address).
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddrKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => AddrKey(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)))),
        }
    }
}

/// Pending connections an address may hold and still be admitted to the reserve: a health
/// checker's back-to-back probes, or a browser's few parallel requests, overlap briefly; an
/// address that filled the pool holds far more.
pub const RESERVE_PER_ADDRESS: usize = 4;

/// Pending connections per address, and the admission rule. Pure: no clock, no sockets.
#[derive(Debug)]
pub struct Gate {
    limits: GateLimits,
    total: usize,
    held: HashMap<AddrKey, usize>,
}

impl Gate {
    /// An empty gate.
    pub fn new(limits: GateLimits) -> Self {
        Gate { limits, total: 0, held: HashMap::new() }
    }

    /// Pending connections now.
    pub fn pending(&self) -> usize {
        self.total
    }

    /// Pending connections of `key` now.
    pub fn held_by(&self, key: AddrKey) -> usize {
        self.held.get(&key).copied().unwrap_or(0)
    }

    /// Admits a new connection of `key`, or says why not. `exempt`: a trusted proxy (no
    /// per-address cap); `other_open`: files the process holds besides pending connections
    /// (websockets, UDP ports, the database ...). On `Ok` the caller must [`Gate::release`] it.
    pub fn admit(&mut self, key: AddrKey, exempt: bool, other_open: usize) -> Result<(), Refusal> {
        let held = self.held_by(key);
        let l = self.limits;
        if self.total + other_open >= l.max_open {
            return Err(Refusal::FdBudget);
        }
        if !exempt && held >= l.per_address {
            return Err(Refusal::PerAddress);
        }
        if self.total >= l.max_pending {
            return Err(Refusal::Total);
        }
        if self.total >= l.max_pending - l.reserve && held >= RESERVE_PER_ADDRESS {
            return Err(Refusal::Reserve);
        }
        self.total += 1;
        *self.held.entry(key).or_insert(0) += 1;
        Ok(())
    }

    /// A connection of `key` closed or was upgraded.
    pub fn release(&mut self, key: AddrKey) {
        if let Some(n) = self.held.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&key);
            }
            self.total -= 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client address

/// The address of the client a request is for: the TCP peer, or, when the peer is a trusted
/// proxy, the address it forwarded. Every per-address rule uses this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Infallible> {
        // Served by `serve` the extension is always there; a router driven some other way (a
        // test with `oneshot`) falls back to the TCP peer, else to 0.0.0.0.
        Ok(parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .or_else(|| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| ClientAddr(c.0.ip().to_canonical())))
            .unwrap_or(ClientAddr(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// Hops of a forwarding header walked from the right, at most (a proxy chain is a handful);
/// past them the walk stops at the last trusted hop.
pub const MAX_HOPS: usize = 32;

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(&ip))
}

/// One hop of `X-Forwarded-For` or the node of a `Forwarded` `for=`: an address, optionally
/// with a port (`1.2.3.4:80`, `[2001:db8::1]:443`); `None` for `unknown`, obfuscated names or
/// anything else.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let inner = s.strip_prefix('[')?.split_once(']')?.0;
    inner.parse::<Ipv6Addr>().ok().map(|ip| IpAddr::V6(ip).to_canonical())
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

/// The `for=` nodes of `Forwarded` values, in order; `None` for an element without a usable
/// `for`. All of them: the ones that count are on the right (bounded by the header size).
fn forwarded_hops<'a>(values: impl Iterator<Item = &'a str>) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for v in values {
        for element in split_unquoted(v, ',') {
            let node = split_unquoted(element, ';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
            });
            hops.push(node.and_then(|n| {
                let n = n.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(n);
                if n.contains('\\') { None } else { parse_node(n) }
            }));
        }
    }
    hops
}

/// The client address of a request from `peer` ([`ClientAddr`]). Untrusted peer: the peer.
/// Trusted peer: the hops of the configured header, walked from the right (the hop the
/// nearest proxy appended) past every trusted proxy; the first address that is not one is the
/// client. A hop that is not an address (`unknown`, garbage, too many hops) ends the walk at the
/// last trusted hop: nothing further left was vouched for by anyone we trust.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet], which: ClientHeader) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted(peer, proxies) {
        return peer;
    }
    let values = |name: header::HeaderName| {
        headers.get_all(name).into_iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>()
    };
    let hops: Vec<Option<IpAddr>> = match which {
        ClientHeader::XForwardedFor => {
            // All hops: a client can put any number on the left, and the ones our proxies
            // appended are on the right (bounded by the header size).
            values(header::HeaderName::from_static("x-forwarded-for"))
                .into_iter()
                .flat_map(|v| v.split(','))
                .map(parse_node)
                .collect()
        }
        ClientHeader::Forwarded => forwarded_hops(values(header::FORWARDED).into_iter()),
    };
    let mut client = peer;
    for (n, hop) in hops.iter().rev().enumerate() {
        match hop {
            Some(ip) if n < MAX_HOPS => {
                client = *ip;
                if !trusted(*ip, proxies) {
                    break;
                }
            }
            _ => break,
        }
    }
    client
}

// ---------------------------------------------------------------------------------------------
// The I/O shell

/// The read buffer of a connection, and so the longest request head.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A socket that notes when it last moved a byte, for the idle watchdog.
pub(crate) struct Tracked {
    inner: TcpStream,
    last: Arc<AtomicU64>,
}

impl Tracked {
    /// The TCP stream, for a websocket whose fan-out shard writes to it (`server::ws`).
    pub(crate) fn into_tcp(self) -> TcpStream {
        self.inner
    }

    fn touch(&self, progressed: bool) {
        if progressed {
            self.last.store(clock(), Ordering::Relaxed);
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.touch(buf.filled().len() > before);
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.touch(matches!(r, Poll::Ready(Ok(n)) if n > 0));
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.touch(matches!(r, Poll::Ready(Ok(n)) if n > 0));
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Shared by the accept loop and the connection tasks.
struct Edge {
    hub: Arc<Hub>,
    router: Router,
    cfg: EdgeConfig,
    gate: Mutex<Gate>,
    /// Open files of the process other than pending connections and websockets (UDP ports of
    /// the SFU, the database, NATS ...), sampled from `/proc/self/fd` once a second.
    other_fds: AtomicUsize,
}

impl Edge {
    /// Files the process holds besides pending connections.
    fn other_open(&self) -> usize {
        self.hub.connections() + self.other_fds.load(Ordering::Relaxed)
    }
}

/// A pending connection's slot in the gate; released when dropped.
struct Ticket {
    edge: Arc<Edge>,
    key: AddrKey,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut gate = self.edge.gate.lock().expect("gate lock");
        gate.release(self.key);
        metrics::gauge!("shangliang_http_pending_connections").set(gate.pending() as f64);
    }
}

fn nofile_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Counts `/proc/self/fd` once a second and keeps what is not a pending connection or a
/// websocket in `other_fds`. Without `/proc` (not Linux) the count stays 0 and only the sockets
/// are budgeted.
fn start_fd_sampler(edge: Weak<Edge>) {
    let spawned = std::thread::Builder::new().name("shangliang-fds".into()).spawn(move || {
        loop {
            let Some(edge) = edge.upgrade() else { return };
            if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
                // Minus one: the directory handle being read.
                let open = dir.count().saturating_sub(1);
                let pending = edge.gate.lock().expect("gate lock").pending();
                let other = open.saturating_sub(pending + edge.hub.connections());
                edge.other_fds.store(other, Ordering::Relaxed);
                metrics::gauge!("shangliang_open_files").set(open as f64);
            }
            drop(edge);
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("no file-descriptor sampler ({e}); budgeting sockets only");
    }
}

/// A short answer for a refused connection, written only if its socket takes it at once.
fn refusal_response(r: Refusal) -> &'static [u8] {
    fn answer(status: &str, code: &str, message: &str) -> Vec<u8> {
        let body = format!(r#"{{"error":"{code}","message":"{message}"}}"#);
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
    static TOO_MANY: OnceLock<Vec<u8>> = OnceLock::new();
    static OVERLOADED: OnceLock<Vec<u8>> = OnceLock::new();
    match r {
        Refusal::PerAddress => TOO_MANY.get_or_init(|| {
            answer("429 Too Many Requests", "too_many_connections", "too many connections from this address")
        }),
        _ => OVERLOADED.get_or_init(|| answer("503 Service Unavailable", "overloaded", "try again in a moment")),
    }
}

/// Serves `hub` on `listener` until `shutdown` completes (the body of [`super::run`]).
pub async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cfg = hub.cfg.edge.clone();
    let nofile = nofile_limit();
    let limits = GateLimits::resolve(&cfg, nofile);
    tracing::info!(
        max_pending = limits.max_pending,
        per_address = limits.per_address,
        reserve = limits.reserve,
        max_open = limits.max_open,
        nofile = ?nofile,
        trusted_proxies = cfg.trusted_proxies.len(),
        "edge limits"
    );
    for r in Refusal::ALL {
        metrics::counter!("shangliang_http_refused_total", "reason" => r.as_str()).increment(0);
    }
    let edge = Arc::new(Edge {
        router: super::router(hub.clone()),
        hub,
        cfg,
        gate: Mutex::new(Gate::new(limits)),
        other_fds: AtomicUsize::new(0),
    });
    start_fd_sampler(Arc::downgrade(&edge));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Duration::from_millis(10);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff = Duration::from_millis(10);
                    a
                }
                Err(e) => {
                    // EMFILE and the like: the gate should keep us from it, but never spin.
                    Refusal::AcceptError.count();
                    tracing::warn!(error = %e, "accept failed; backing off {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        metrics::counter!("shangliang_http_connections_total").increment(1);
        let peer_ip = peer.ip().to_canonical();
        let key = AddrKey::of(peer_ip);
        let exempt = trusted(peer_ip, &edge.cfg.trusted_proxies);
        let admitted = {
            let mut gate = edge.gate.lock().expect("gate lock");
            let r = gate.admit(key, exempt, edge.other_open());
            metrics::gauge!("shangliang_http_pending_connections").set(gate.pending() as f64);
            r
        };
        if let Err(r) = admitted {
            r.count();
            let _ = tcp.try_write(refusal_response(r));
            drop(tcp);
            continue;
        }
        let ticket = Ticket { edge: edge.clone(), key };
        let _ = tcp.set_nodelay(true);
        if let Some(n) = edge.hub.cfg.socket_send_buffer {
            let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(n);
        }
        tokio::spawn(connection(edge.clone(), tcp, peer, ticket, stop_rx.clone()));
    }

    // Graceful: no new connections; each pending one finishes its request and closes (an idle
    // one at once); websockets already upgraded live on until the process ends, as before.
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    let grace = edge.cfg.header_timeout.max(edge.cfg.request_timeout) + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, stop_tx.closed()).await;
    Ok(())
}

/// One connection, from admission until it closes or becomes a websocket.
async fn connection(
    edge: Arc<Edge>,
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let last = Arc::new(AtomicU64::new(clock()));
    let io = TokioIo::new(Tracked { inner: tcp, last: last.clone() });
    let served = Arc::new(AtomicU64::new(0));
    let svc = {
        let (edge, served) = (edge.clone(), served.clone());
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let edge = edge.clone();
            served.fetch_add(1, Ordering::Relaxed);
            async move {
                let client = client_addr(peer.ip(), req.headers(), &edge.cfg.trusted_proxies, edge.cfg.client_header);
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(ClientAddr(client));
                let answer = match tokio::time::timeout(edge.cfg.request_timeout, edge.router.clone().oneshot(req)).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        Refusal::RequestTimeout.count();
                        request_timeout()
                    }
                };
                Ok::<_, Infallible>(answer)
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // 16 KiB of request head at most (nginx: 4 × 8 KiB lines): a pending connection costs at
    // most that much buffer, and a longer head is answered 431.
    http.timer(TokioTimer::new())
        .header_read_timeout(edge.cfg.header_timeout)
        .max_headers(64)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = http.serve_connection(io, svc).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let idle = edge.cfg.idle_timeout;
    let mut watchdog = std::pin::pin!(async {
        loop {
            let quiet = Duration::from_millis(clock().saturating_sub(last.load(Ordering::Relaxed)));
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    });
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() && served.load(Ordering::Relaxed) == 0 {
                        // Never a complete request: the half-open connection of the attack.
                        Refusal::HeaderTimeout.count();
                    } else {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
                break;
            }
            () = &mut watchdog => {
                Refusal::IdleTimeout.count();
                tracing::debug!(%peer, "closing a connection idle for {idle:?}");
                break;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    drop(ticket);
}

fn request_timeout() -> Response<Body> {
    Response::builder()
        .status(StatusCode::REQUEST_TIMEOUT)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONNECTION, "close")
        .body(Body::from(r#"{"error":"request_timeout","message":"the request took too long"}"#))
        .expect("static response")
}

#[cfg(test)]
mod tests;
