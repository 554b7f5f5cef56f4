//! The axum/tokio shell around the core: HTTP API, websocket sessions, auth, metrics.
//! The only part of the hub that knows about HTTP.
//!
//! ```text
//! http/        REST API (health, metrics, activities, viewer tokens) and the static web client
//! ws/          the websocket endpoint and one session task per connection
//! moderation/  the moderation drivers, their registry and the relay to an activity's home
//! media/       WHIP/WHEP and room media signalling over the SFU
//! auth.rs      tokens; inbox.rs direct messages to one participant; metrics.rs /metrics
//! ```
//!
//! [`Hub`] is the assembly: it opens the record, starts the fan-out core, the control runtime
//! and the moderation registry, and hands each handler only the state it needs ([`Hub::api`],
//! [`Hub::ws`], [`Hub::media_state`]); no handler sees the `Hub`. [`router`] builds the routes;
//! [`run`] serves a bound listener; [`serve`] binds and runs until Ctrl-C or SIGTERM.

pub mod auth;
pub mod edge;
pub mod hls;
pub mod http;
pub mod inbox;
pub mod media;
pub mod metrics;
pub mod moderation;
pub mod programme;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use shangliang_signaling::{ActivityId, Item, Seq};

use crate::bus::{Cluster, ClusterConfig};
use crate::fanout::{Fanout, FanoutConfig};
use crate::record::postgres::PgRecord;
use crate::record::sqlite::{RecordOptions, SqliteRecord};
use crate::record::{ActivityKind, ActivityState, Record, RecordError};
use auth::TokenKeys;
use http::{ApiState, ViewerTokens};
use inbox::Inboxes;
use media::{Media, MediaState};
use moderation::{FloorHook, Outlets, Registry};
use ws::{Connections, SessionLimits, WsState};

/// Re-exported for the command line.
pub use auth::{Claims as TokenClaims, parse_ttl};

/// Everything `shangliang serve` can be told.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the SQLite record and the token secret.
    pub data_dir: PathBuf,
    /// Comments one identity may post per minute (moderators are exempt).
    pub comments_per_minute: u32,
    /// Frames one connection may send per second, sustained (bursts of twice that).
    pub frames_per_second: u32,
    /// Viewer tokens one address may mint per minute.
    pub viewer_tokens_per_minute: u32,
    /// Viewer tokens one address block (IPv4 /24, IPv6 /64) may mint per minute; `None`: three
    /// times `viewer_tokens_per_minute`.
    pub viewer_tokens_per_block_per_minute: Option<u32>,
    /// The limits on anonymous question votes per address block (`consult::votes`).
    pub votes: crate::consult::votes::VoteRules,
    /// Lifetime of anonymous viewer tokens, in seconds.
    pub viewer_token_ttl_secs: u64,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A write to a client that takes longer than this closes it as a slow consumer.
    pub write_timeout: Duration,
    /// Most concurrent websocket connections.
    pub max_connections: usize,
    /// A post's answer is written into the poster's socket by whoever knows it (the record's
    /// writer, after the commit) rather than through the session task (default true; false is
    /// the path before, kept to measure one against the other).
    pub acks_on_wire: bool,
    /// SO_SNDBUF for accepted sockets (None: the kernel's autotuning). A small buffer makes a
    /// stalled client show up as a slow consumer sooner and caps kernel memory per viewer.
    pub socket_send_buffer: Option<usize>,
    /// Create the demo activities when the record has none.
    pub demo: bool,
    /// The fan-out core's settings.
    pub fanout: FanoutConfig,
    /// A directory to serve the web client from instead of the one embedded in the binary
    /// (`build.rs` builds `web-client/` into it), for every path no API route takes; relative
    /// paths are resolved against the working directory. `None`: the embedded client.
    pub web_dir: Option<PathBuf>,
    /// The SFU's settings (UDP bind/announced address, its one port, room and viewer limits).
    pub sfu: shangliang_sfu::SfuConfig,
    /// TURN servers handed to media clients with time-limited credentials (`None`: none).
    pub turn: Option<media::turn::TurnConfig>,
    /// Cluster mode (NATS + PostgreSQL); `None`: the embedded single node.
    pub cluster: Option<ClusterConfig>,
    /// HTTP timeouts, pending-connection caps and trusted proxies (`edge.rs`).
    pub edge: edge::EdgeConfig,
    /// The livestream programme (LL-HLS) and its recordings.
    pub programme: programme::ProgrammeSettings,
    /// The Ed25519 key file that signs the record's Merkle tree heads (`None`:
    /// `record-signing.key` in the data directory, created 0600 if missing).
    pub record_key: Option<PathBuf>,
    /// Polls, statements and opinion groups: tally interval, recompute interval, method.
    pub consensus: crate::consensus::ConsensusConfig,
}

impl ServeConfig {
    /// Embedded defaults: 127.0.0.1:8080, `./data`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            comments_per_minute: 20,
            frames_per_second: 20,
            viewer_tokens_per_minute: 10,
            viewer_tokens_per_block_per_minute: None,
            votes: crate::consult::votes::VoteRules::default(),
            viewer_token_ttl_secs: 4 * 3600,
            idle_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(10),
            max_connections: 19_000,
            acks_on_wire: true,
            socket_send_buffer: None,
            demo: true,
            fanout: FanoutConfig::default(),
            web_dir: None,
            sfu: shangliang_sfu::SfuConfig::default(),
            turn: None,
            cluster: None,
            edge: edge::EdgeConfig::default(),
            programme: programme::ProgrammeSettings::default(),
            record_key: None,
            consensus: crate::consensus::ConsensusConfig::default(),
        }
    }
}

/// Errors starting the hub.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or secret could not be used.
    #[error("data directory: {0}")]
    DataDir(#[from] std::io::Error),
    /// The record could not be opened.
    #[error("record: {0}")]
    Record(#[from] RecordError),
    /// The SFU's UDP port could not be bound.
    #[error("media: {0}")]
    Media(#[from] shangliang_sfu::SfuError),
}

/// The running hub: every part, owned here and handed to the handlers that need it.
pub struct Hub {
    /// Configuration in force.
    pub cfg: ServeConfig,
    /// Token keys.
    pub keys: Arc<TokenKeys>,
    /// The durable record: SQLite (one node) or PostgreSQL (cluster mode).
    pub record: Arc<dyn Record>,
    /// The fan-out core.
    pub fanout: Fanout,
    /// Cluster mode: NATS delivery and membership.
    pub cluster: Option<Arc<Cluster>>,
    /// Direct messages to participants' connections.
    pub inboxes: Arc<Inboxes>,
    /// The media plane (SFU, WHIP/WHEP resources).
    pub media: Arc<Media>,
    /// The moderation drivers, one per activity, and (cluster mode) the routers to their homes.
    pub moderation: Registry,
    /// The livestream programmes (LL-HLS, recording), one driver per live livestream.
    pub programmes: programme::Programmes,
    /// The organisers' side (issue 14): activities, committees, accounts, invitations, in the
    /// SQLite record's file. `None` in cluster mode (no PostgreSQL tables for it yet).
    pub organisers: Option<crate::organise::Organisers>,
    connections: Connections,
    viewer_tokens: Arc<ViewerTokens>,
    /// The control-plane runtime (one thread): the moderation drivers (which decide and append
    /// every comment) and the cluster's tasks run here, so that under a delivery storm — tens
    /// of thousands of viewer tasks woken every flush on the main runtime — posting, policy
    /// and acks do not wait behind them.
    control: tokio::runtime::Handle,
    _control_stop: std::sync::mpsc::SyncSender<()>,
}

/// Starts the control-plane runtime on its own thread; it stops when the returned sender drops.
fn start_control_runtime() -> std::io::Result<(tokio::runtime::Handle, std::sync::mpsc::SyncSender<()>)> {
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::sync_channel::<()>(0);
    std::thread::Builder::new().name("shangliang-control".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = handle_tx.send(Err(e));
                return;
            }
        };
        let _ = handle_tx.send(Ok(rt.handle().clone()));
        // Drive spawned tasks until the hub is dropped (the stop sender goes away).
        rt.block_on(async move {
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
        });
    })?;
    let handle = handle_rx.recv().map_err(std::io::Error::other)??;
    Ok((handle, stop_tx))
}

impl Hub {
    /// Opens the record, seeds the fan-out core with every activity's topic and creates the
    /// demo activities on first run. Must run inside a tokio runtime (it blocks the calling
    /// thread for the demo activities' commits on a first run).
    pub fn start(cfg: ServeConfig) -> Result<Arc<Hub>, StartError> {
        let fanout = Fanout::new(cfg.fanout.clone());
        std::fs::create_dir_all(&cfg.data_dir)?;
        let hook_fanout = fanout.clone();
        let sqlite = SqliteRecord::open(
            &cfg.data_dir.join("shangliang.sqlite3"),
            RecordOptions { key_path: cfg.record_key.clone(), ..RecordOptions::default() },
            Box::new(move |activity: &ActivityId, item: &Item, public: bool| {
                if let Err(e) = hook_fanout.publish(activity, item.clone(), public) {
                    tracing::error!(%activity, seq = %item.seq, "fan-out refused a committed item: {e}");
                }
            }),
        )?;
        if cfg.demo && sqlite.activities()?.is_empty() {
            for (id, title, kind) in DEMO_ACTIVITIES {
                let id = ActivityId::new(id).expect("valid id");
                sqlite.create_activity_blocking(id, title, kind, ActivityState::Live)?;
            }
        }
        let record: Arc<dyn Record> = Arc::new(sqlite);
        for a in record.activities()? {
            let head = record.head(&a.id)?;
            fanout.open_topic(a.id.clone(), a.epoch, head);
        }
        Self::start_with(cfg, fanout, record, None, start_control_runtime()?)
    }

    /// Starts a cluster node: connects to PostgreSQL (must be up) and NATS (may come later),
    /// creates the demo activities in PostgreSQL if there are none, and opens every activity's
    /// topic at its head, and subscribes to the moderation relay (before it serves anyone, so
    /// a request relayed here never finds nobody listening). Items, the audit log, summaries
    /// and checkpoints are in PostgreSQL; the data directory holds only the token secret.
    pub async fn start_cluster(cfg: ServeConfig, cluster: ClusterConfig) -> Result<Arc<Hub>, StartError> {
        let fanout = Fanout::new(cfg.fanout.clone());
        // The cluster's tasks (the PostgreSQL writer and connections, the NATS client, the
        // delivery driver) live on the control runtime too: on the main one, the post → commit
        // → ack path and the relay to an activity's home queue behind tens of thousands of
        // viewer tasks (measured: ack p50 ≈ 5 s at 100k viewers on six nodes).
        let control = start_control_runtime()?;
        let demo = cfg.demo;
        let (record, c) = control
            .0
            .spawn({
                let fanout = fanout.clone();
                async move {
                    let (hook, feed) = crate::bus::cluster::commit_feed();
                    let record: Arc<dyn Record> = Arc::new(PgRecord::connect(&cluster.database_url, hook).await?);
                    if demo && record.activities()?.is_empty() {
                        create_demo_activities(record.as_ref()).await?;
                    }
                    let c = Cluster::connect(cluster, fanout, record.clone(), feed).await?;
                    Ok::<_, RecordError>((record, c))
                }
            })
            .await
            .map_err(|e| StartError::from(RecordError::Unavailable(format!("cluster start: {e}"))))??;
        let hub = Self::start_with(cfg, fanout, record, Some(c.clone()), control)?;
        let outlets = Outlets { fanout: hub.fanout.clone(), inboxes: hub.inboxes.clone() };
        moderation::start_relay(c, hub.moderation.local_drivers(), outlets, &hub.control)
            .await
            .map_err(|e| StartError::from(RecordError::Unavailable(format!("nats: {e}"))))?;
        Ok(hub)
    }

    fn start_with(
        cfg: ServeConfig,
        fanout: Fanout,
        record: Arc<dyn Record>,
        cluster: Option<Arc<Cluster>>,
        (control, control_stop): (tokio::runtime::Handle, std::sync::mpsc::SyncSender<()>),
    ) -> Result<Arc<Hub>, StartError> {
        metrics::install();
        std::fs::create_dir_all(&cfg.data_dir)?;
        let keys = Arc::new(TokenKeys::load_or_create(&cfg.data_dir)?);
        let inboxes = Arc::new(Inboxes::default());
        let outlets = Outlets { fanout: fanout.clone(), inboxes: inboxes.clone() };
        let moderation = Registry::new(record.clone(), outlets, cluster.clone(), control.clone(), cfg.comments_per_minute);
        moderation.set_consensus_config(cfg.consensus);
        moderation.set_vote_rules(cfg.votes);
        let media = Arc::new(Media::new(shangliang_sfu::Sfu::bind(cfg.sfu.clone())?));
        let programmes = programme::Programmes::default();
        let organisers = match cluster {
            None => Some(crate::organise::Organisers::open_sqlite(&cfg.data_dir, record.clone())?),
            Some(_) => None,
        };
        if let Some(o) = &organisers {
            // A driver that starts takes up what the organisers set (settings, pause).
            moderation.set_session_source(Arc::new(o.clone()));
        }
        // The floor reaches the media plane: may-speak changes gate forwarding in the SFU ...
        // and the livestream programme follows the same floor.
        moderation.set_floor_hook(Arc::new(programme::Tee(media.floor_hook(), programmes.floor_hook())));
        media.set_moderation(moderation.clone());
        if let Some(t) = &cfg.turn {
            media.set_turn(t.clone());
        }
        let hub = Arc::new(Hub {
            keys,
            record,
            fanout,
            cluster,
            inboxes,
            media,
            moderation,
            programmes,
            organisers,
            connections: Connections::default(),
            viewer_tokens: ViewerTokens::new(
                cfg.viewer_tokens_per_minute,
                cfg.viewer_tokens_per_block_per_minute.unwrap_or(cfg.viewer_tokens_per_minute.saturating_mul(3)),
                cfg.viewer_token_ttl_secs,
            ),
            control,
            _control_stop: control_stop,
            cfg,
        });
        hub.programmes.start(&hub);
        Ok(hub)
    }

    /// Creates an activity and opens its topic (in cluster mode the other nodes open it
    /// within a tick).
    pub async fn create_activity(
        &self,
        id: ActivityId,
        title: &str,
        kind: ActivityKind,
        state: ActivityState,
    ) -> Result<(), RecordError> {
        let a = self.record.create_activity(id, title, kind, state).await?;
        self.fanout.open_topic(a.id, a.epoch, Seq(0));
        Ok(())
    }

    /// Installs where the floor reaches the media plane (the SFU's is installed at start).
    pub fn set_floor_hook(&self, hook: Arc<dyn FloorHook>) {
        self.moderation.set_floor_hook(hook);
    }

    /// The home node of `activity` if it is another node (cluster mode only): that node runs
    /// its moderation, hosts its video room and makes its programme. `None`: this node.
    pub fn home_elsewhere(&self, activity: &ActivityId) -> Option<shangliang_signaling::NodeId> {
        self.cluster.as_ref()?.home_elsewhere(activity)
    }

    /// Where the web client is served from.
    pub fn web_source(&self) -> http::WebSource {
        self.cfg.web_dir.clone().map_or(http::WebSource::Embedded, http::WebSource::Dir)
    }

    /// Current number of websocket connections.
    pub fn connections(&self) -> usize {
        self.connections.get()
    }

    /// What the REST API needs.
    pub fn api(&self) -> ApiState {
        ApiState {
            record: self.record.clone(),
            fanout: self.fanout.clone(),
            keys: self.keys.clone(),
            cluster: self.cluster.clone(),
            connections: self.connections.clone(),
            viewer_tokens: self.viewer_tokens.clone(),
        }
    }

    /// What the media handlers need.
    pub fn media_state(&self) -> MediaState {
        MediaState {
            media: self.media.clone(),
            record: self.record.clone(),
            keys: self.keys.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// What a websocket session needs.
    pub fn ws(&self) -> WsState {
        WsState {
            keys: self.keys.clone(),
            fanout: self.fanout.clone(),
            record: self.record.clone(),
            inboxes: self.inboxes.clone(),
            moderation: self.moderation.clone(),
            media: self.media_state(),
            limits: SessionLimits {
                frames_per_second: self.cfg.frames_per_second,
                idle_timeout: self.cfg.idle_timeout,
                write_timeout: self.cfg.write_timeout,
                comments_per_minute: self.cfg.comments_per_minute,
                max_connections: self.cfg.max_connections,
                acks_on_wire: self.cfg.acks_on_wire,
            },
            connections: self.connections.clone(),
        }
    }
}

/// All routes of `hub`; every other path is the web client.
pub fn router(hub: Arc<Hub>) -> Router {
    http::routes(hub.api())
        .merge(http::admin::routes(hub.clone()))
        .merge(ws::routes(Arc::new(hub.ws())))
        .merge(media::routes(hub.media_state()))
        .merge(hls::routes().with_state(hub.clone()))
        .fallback_service(http::web_client(&hub.web_source()))
}

/// The demo activities of a first run: (id, title, kind).
const DEMO_ACTIVITIES: [(&str, &str, ActivityKind); 2] = [
    ("demo", "推进城乡融合发展 · 网络协商议政直播（演示）", ActivityKind::Livestream),
    ("demo-room", "视频会商室（演示）", ActivityKind::Room),
];

/// Creates the demo activities (in a cluster several nodes may race to: whoever is second
/// finds them there).
async fn create_demo_activities(record: &dyn Record) -> Result<(), RecordError> {
    for (id, title, kind) in DEMO_ACTIVITIES {
        let id = ActivityId::new(id).expect("valid id");
        match record.create_activity(id, title, kind, ActivityState::Live).await {
            Ok(_) | Err(RecordError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Binds `cfg.listen` and serves until Ctrl-C or SIGTERM.
pub async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let hub = match cfg.cluster.clone() {
        Some(cluster) => Hub::start_cluster(cfg, cluster).await?,
        None => Hub::start(cfg)?,
    };
    print_banner(&hub, addr);
    metrics::probe_runtimes(
        Arc::downgrade(&hub),
        vec![("main", tokio::runtime::Handle::current()), ("control", hub.control.clone())],
    );
    run(listener, hub.clone(), shutdown_signal()).await?;
    // Graceful: the minutes do not leave people present in a session that ended.
    hub.moderation.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// Serves `hub` on an already bound listener until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    hub: Arc<Hub>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The accept loop, its timeouts and caps live in edge.rs.
    edge::serve(listener, hub, shutdown).await
}

fn print_banner(hub: &Hub, addr: SocketAddr) {
    let base = format!("http://{addr}");
    println!("shangliang listening on {base}");
    println!("  data directory   {}", hub.cfg.data_dir.display());
    println!("  websocket        ws://{addr}/ws");
    println!("  activities       {base}/api/activities");
    if let Some(c) = hub.cfg.cluster.as_ref() {
        println!("  cluster          nats {} · database {}", c.nats_url, redact(&c.database_url));
    }
    if let Ok(list) = hub.record.activities() {
        for a in list {
            println!("  {:<16} {:?} {:?}: {}", a.id.as_str(), a.kind, a.state, a.title);
            println!("    watch          {base}/live/{}", a.id);
            if a.kind == ActivityKind::Livestream {
                println!("    hls            {base}/hls/{}/index.m3u8", a.id);
            }
            println!("    room           {base}/room/{}", a.id);
            println!("    console        {base}/console/{}", a.id);
        }
    }
    let web = hub.web_source();
    if web.is_built() {
        println!("  web client       {base}/ ({})", web.describe());
    } else {
        println!(
            "  web client       not built ({}): install Node.js and build again, or npm --prefix web-client ci && npm --prefix web-client run build and --web-dir web-client/dist",
            web.describe()
        );
    }
    println!("  metrics          {base}/metrics");
    println!("  mint a token:    shangliang token --data-dir {} --activity demo --role moderator --name 主持人", hub.cfg.data_dir.display());
}

/// A connection string without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..s + 3 + colon], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
