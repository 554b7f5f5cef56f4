//! The `shangliang` command line: `serve` runs the hub, `token` mints a signed token,
//! `export` writes an activity's session record, `verify-record` checks it against its signed
//! Merkle tree heads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use shangliang::fanout::FanoutConfig;
use shangliang::record::merkle::{LogKey, LogPublicKey};
use shangliang::server::auth::{TokenKeys, now_secs};
use shangliang::server::{ServeConfig, TokenClaims, parse_ttl};
use shangliang_signaling::{ActivityId, NodeId, Org, OrgLevel, Role};

#[derive(Parser)]
#[command(name = "shangliang", version, about = "Real-time hub of an online consultation platform")]
struct Cli {
    /// Log format on stderr: text, or json (one JSON object per line, for log collectors).
    #[arg(long, global = true, default_value = "text", env = "SHANGLIANG_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub (embedded defaults: 127.0.0.1:8080, SQLite and secret under ./data).
    Serve(Box<ServeArgs>),
    /// Print a signed token for an activity.
    Token(TokenArgs),
    /// Write an activity's session record (JSON, CSV, or Markdown minutes) to stdout.
    Export(ExportArgs),
    /// Check an activity's record against its signed Merkle tree heads (and audit chain); exit
    /// code 1 if it was altered.
    VerifyRecord(VerifyArgs),
    /// The organisers' commands: committee, user, activity, invite (src/organise/cli.rs).
    #[command(flatten)]
    Admin(shangliang::organise::cli::AdminCommand),
    /// The configuration file of `serve --config` (src/config.rs).
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file: syntax, unknown keys, bad values (with line numbers).
    Check {
        /// The file (TOML).
        file: PathBuf,
    },
    /// Print a documented configuration file with every key at its default.
    Example,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// The activity.
    #[arg(long)]
    activity: String,
    /// json, csv or md.
    #[arg(long, default_value = "md", value_parser = parse_format)]
    format: shangliang::server::moderation::export::ExportFormat,
    /// Directory of the record (as given to serve). With --database: the node's data directory,
    /// where a livestream's recording is looked for (it is on the activity's home node).
    #[arg(long, default_value = "data", env = "SHANGLIANG_DATA_DIR")]
    data_dir: PathBuf,
    /// A cluster's PostgreSQL database instead of --data-dir (postgres://user@host:port/db).
    #[arg(long, env = "SHANGLIANG_DATABASE")]
    database: Option<String>,
    /// The record's signing key file, whose public key the export prints beside the signed
    /// head (default: record-signing.key in --data-dir).
    #[arg(long, env = "SHANGLIANG_RECORD_KEY")]
    record_key: Option<PathBuf>,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The activity.
    #[arg(long)]
    activity: String,
    /// Directory of the record (as given to serve).
    #[arg(long, default_value = "data", env = "SHANGLIANG_DATA_DIR")]
    data_dir: PathBuf,
    /// A cluster's PostgreSQL database instead of --data-dir (postgres://user@host:port/db).
    #[arg(long, env = "SHANGLIANG_DATABASE")]
    database: Option<String>,
    /// The public key that verifies the hub's tree heads: 64 hex digits or a file holding
    /// them (the hub writes record-signing.key.pub; default: that file beside --record-key).
    #[arg(long)]
    public_key: Option<String>,
    /// The record's signing key file (default: record-signing.key in --data-dir); only its
    /// public half is used.
    #[arg(long, env = "SHANGLIANG_RECORD_KEY")]
    record_key: Option<PathBuf>,
    /// A tree head published earlier (a tree-head JSON, a JSON export or Markdown minutes):
    /// the record must still extend it.
    #[arg(long, conflicts_with = "chain_only")]
    head: Option<PathBuf>,
    /// Check only the audit hash chain and its stored head, not the Merkle log and its signed
    /// heads (for a record without a log: PostgreSQL keeps none yet). Says so in its output;
    /// a recomputed chain passes this check.
    #[arg(long)]
    chain_only: bool,
}

/// The public key that verifies the record's heads: given, or read beside the key file.
fn public_key(given: Option<&str>, record_key: Option<PathBuf>, data_dir: &std::path::Path) -> anyhow::Result<LogPublicKey> {
    let from_text = |t: &str, what: &str| {
        t.trim().parse::<LogPublicKey>().map_err(|e| anyhow::anyhow!("{what}: {e} (expected 64 hex digits)"))
    };
    if let Some(g) = given {
        return match std::fs::read_to_string(g) {
            Ok(text) => from_text(&text, g),
            Err(_) => from_text(g, "--public-key"),
        };
    }
    let key = record_key.unwrap_or_else(|| LogKey::default_path(data_dir));
    let mut pub_path = key.clone().into_os_string();
    pub_path.push(".pub");
    match std::fs::read_to_string(&pub_path) {
        Ok(text) => from_text(&text, &pub_path.to_string_lossy()),
        Err(_) => anyhow::bail!(
            "no public key to verify the tree heads with: {} is missing (give --public-key)",
            std::path::Path::new(&pub_path).display()
        ),
    }
}

fn parse_format(s: &str) -> Result<shangliang::server::moderation::export::ExportFormat, String> {
    use shangliang::server::moderation::export::ExportFormat;
    match s {
        "json" => Ok(ExportFormat::Json),
        "csv" => Ok(ExportFormat::Csv),
        "md" | "markdown" => Ok(ExportFormat::Markdown),
        _ => Err("one of json, csv, md".into()),
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML configuration file: one key per flag (`shangliang config example`); flags and
    /// SHANGLIANG_* environment variables override it.
    #[arg(long, env = "SHANGLIANG_CONFIG")]
    #[allow(dead_code)] // read by shangliang::config::expand_args before clap parses
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "SHANGLIANG_LISTEN")]
    listen: SocketAddr,
    /// Directory for the SQLite record and the token secret.
    #[arg(long, default_value = "data", env = "SHANGLIANG_DATA_DIR")]
    data_dir: PathBuf,
    /// Comments one identity may post per minute (moderators exempt).
    #[arg(long, default_value_t = 20)]
    comments_per_minute: u32,
    /// Frames one connection may send per second, sustained (bursts of twice that).
    #[arg(long, default_value_t = 20)]
    frames_per_second: u32,
    /// Anonymous viewer tokens one address may mint per minute.
    #[arg(long, default_value_t = 10)]
    viewer_tokens_per_minute: u32,
    /// Anonymous viewer tokens one address block (IPv4 /24, IPv6 /64) may mint per minute
    /// (default: three times --viewer-tokens-per-minute).
    #[arg(long)]
    viewer_tokens_per_block_per_minute: Option<u32>,
    /// Most standing anonymous votes on one question from one address block (IPv4 /24,
    /// IPv6 /64); verified and member votes are not capped.
    #[arg(long, default_value_t = 10)]
    anonymous_votes_per_question_per_block: u32,
    /// Most anonymous question votes one address block may cast per minute.
    #[arg(long, default_value_t = 30)]
    anonymous_votes_per_minute_per_block: u32,
    /// Most concurrent websocket connections on this node.
    #[arg(long, default_value_t = 19_000)]
    max_connections: usize,
    /// Seconds without any frame from a client before it is closed.
    #[arg(long, default_value_t = 90)]
    idle_timeout_secs: u64,
    /// Fan-out shards (default: one per core).
    #[arg(long)]
    shards: Option<usize>,
    /// Run the fan-out shards as tasks of the main runtime, as before they had threads of their
    /// own (to measure one against the other; docs/performance.md §11).
    #[arg(long, hide = true)]
    shards_on_runtime: bool,
    /// Answer posts through the session task, as before acks were written where they are
    /// known (to measure one against the other; docs/performance.md §11).
    #[arg(long, hide = true)]
    acks_via_session: bool,
    /// Shortest flush interval in milliseconds.
    #[arg(long, default_value_t = 20)]
    flush_ms: u64,
    /// Longest (adaptive, under load) flush interval in milliseconds.
    #[arg(long, default_value_t = 200)]
    max_flush_ms: u64,
    /// Items of history kept in memory per topic.
    #[arg(long, default_value_t = 10_000)]
    ring: usize,
    /// Frames queued per connection before frames are dropped for it.
    #[arg(long, default_value_t = 64)]
    queue_frames: usize,
    /// Seconds of continuous frame loss before a slow connection is closed (4408).
    #[arg(long, default_value_t = 5)]
    lag_close_secs: u64,
    /// Public view thinning: most viewer comments per second shown to the public (0 = off).
    #[arg(long, default_value_t = 0)]
    thinning_max_per_sec: u32,
    /// SO_SNDBUF in bytes for accepted sockets (default: the kernel's autotuning).
    #[arg(long)]
    socket_send_buffer: Option<usize>,
    /// Do not create the demo activities on first run.
    #[arg(long)]
    no_demo: bool,
    /// Cluster mode: NATS server URL (requires --database).
    #[arg(long, env = "SHANGLIANG_NATS", requires = "database")]
    nats: Option<String>,
    /// Cluster mode: PostgreSQL connection string, postgres://user@host:port/db (requires --nats).
    #[arg(long, env = "SHANGLIANG_DATABASE", requires = "nats")]
    database: Option<String>,
    /// Cluster mode: base URLs of every node, comma-separated, the same on every node; each
    /// activity's home (moderation, video room) is chosen among the alive ones. Without it,
    /// every node heard on NATS counts.
    #[arg(long, env = "SHANGLIANG_NODES", value_delimiter = ',')]
    nodes: Vec<String>,
    /// Cluster mode: this node's own base URL as written in --nodes (default: http://<listen>).
    #[arg(long, env = "SHANGLIANG_PUBLIC_URL")]
    public_url: Option<String>,
    /// Serve the web client from this directory instead of the one embedded in the binary
    /// (`build.rs` builds it; `npm --prefix web-client run build` makes `web-client/dist`).
    #[arg(long, env = "SHANGLIANG_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// Address the SFU's UDP socket binds to (a wildcard needs --rtc-announced-ip).
    #[arg(long, default_value = "127.0.0.1", env = "SHANGLIANG_RTC_BIND_IP")]
    rtc_bind_ip: std::net::IpAddr,
    /// Address announced in ICE candidates instead of the bind address (1:1 NAT).
    #[arg(long, env = "SHANGLIANG_RTC_ANNOUNCED_IP")]
    rtc_announced_ip: Option<std::net::IpAddr>,
    /// The one UDP port all of the node's peer connections share (demultiplexed by ICE ufrag
    /// and remote address; 0: the OS chooses). Default 50000, or any free port if 50000 is taken
    /// (logged); given explicitly, the port is required.
    #[arg(long, env = "SHANGLIANG_RTC_UDP_PORT")]
    rtc_udp_port: Option<u16>,
    /// Also listen for ICE-TCP (RFC 6544 passive candidate) on this TCP port, on the same
    /// address as the UDP socket, for clients whose network blocks UDP (0: the OS chooses).
    /// Without it the node offers no TCP candidate.
    #[arg(long, env = "SHANGLIANG_RTC_TCP_PORT")]
    rtc_tcp_port: Option<u16>,
    /// A TURN/STUN server URL handed to media clients (`turn:HOST:3478?transport=udp`,
    /// `turns:HOST:5349?transport=tcp`); repeatable. Needs --turn-secret.
    #[arg(long = "turn-url", value_name = "URL", env = "SHANGLIANG_TURN_URLS", value_delimiter = ',')]
    turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn `use-auth-secret` +
    /// `static-auth-secret`): clients get credentials `{expiry}:{subject}` /
    /// base64(HMAC-SHA1(secret, username)) valid for --turn-ttl-secs.
    #[arg(long, env = "SHANGLIANG_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// How long handed-out TURN credentials stay valid.
    #[arg(long, default_value_t = 12 * 3600, env = "SHANGLIANG_TURN_TTL_SECS")]
    turn_ttl_secs: u64,
    /// Most participants (joined or publishing) per room.
    #[arg(long, default_value_t = 50)]
    max_room_participants: usize,
    /// Most receive-only (WHEP) viewers on this node.
    #[arg(long, default_value_t = 5_000)]
    max_viewers_per_node: usize,
    /// A reverse proxy (CIDR or address) whose forwarded client address is believed; repeatable.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = shangliang::server::edge::parse_cidr, env = "SHANGLIANG_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// The header trusted proxies write the client address into: x-forwarded-for or forwarded.
    #[arg(long, default_value = "x-forwarded-for")]
    client_address_header: shangliang::server::edge::ClientHeader,
    /// Seconds a connection has to send a complete request head (also between keep-alive requests).
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds without a byte either way before a not-yet-upgraded connection is closed.
    #[arg(long, default_value_t = 30)]
    http_idle_timeout_secs: u64,
    /// Seconds to answer one HTTP request, reading its body included (else 408).
    #[arg(long, default_value_t = 30)]
    request_timeout_secs: u64,
    /// Most not-yet-upgraded connections (default: a quarter of the file limit, at most 4096).
    #[arg(long)]
    max_pending_connections: Option<usize>,
    /// Most not-yet-upgraded connections per client address (IPv6: per /64).
    #[arg(long, default_value_t = 64)]
    max_pending_per_address: usize,
    /// Pending slots kept for addresses holding fewer than 4 (default: an eighth of the maximum).
    #[arg(long)]
    pending_reserve: Option<usize>,
    /// Delete livestream recordings not written for this many days (default: keep them).
    #[arg(long, env = "SHANGLIANG_RECORDING_RETENTION_DAYS")]
    recording_retention_days: Option<u64>,
    /// Do not package livestreams as LL-HLS nor record them (WHEP only).
    #[arg(long)]
    no_programme: bool,
    /// The Ed25519 key file that signs the record's tree heads (created 0600 if missing;
    /// default: record-signing.key in --data-dir). Keep a copy of its .pub where the record
    /// is checked.
    #[arg(long, env = "SHANGLIANG_RECORD_KEY")]
    record_key: Option<PathBuf>,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// The activity the token is for.
    #[arg(long)]
    activity: String,
    /// Role: moderator, member, guest or viewer.
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// Display name.
    #[arg(long)]
    name: String,
    /// Subject (stable identity); default: derived from role and name.
    #[arg(long)]
    subject: Option<String>,
    /// Lifetime, e.g. 30m, 8h, 7d.
    #[arg(long, default_value = "8h")]
    ttl: String,
    /// Organisation level: province, city or county.
    #[arg(long, value_parser = parse_level, requires = "org")]
    org_level: Option<OrgLevel>,
    /// Organisation name.
    #[arg(long)]
    org: Option<String>,
    /// Mark the identity as verified (real name).
    #[arg(long)]
    verified: bool,
    /// Directory holding the secret (as given to serve).
    #[arg(long, default_value = "data", env = "SHANGLIANG_DATA_DIR")]
    data_dir: PathBuf,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "moderator" => Ok(Role::Moderator),
        "member" => Ok(Role::Member),
        "guest" => Ok(Role::Guest),
        "viewer" => Ok(Role::Viewer),
        _ => Err("one of moderator, member, guest, viewer".into()),
    }
}

fn parse_level(s: &str) -> Result<OrgLevel, String> {
    match s {
        "province" => Ok(OrgLevel::Province),
        "city" => Ok(OrgLevel::City),
        "county" => Ok(OrgLevel::County),
        _ => Err("one of province, city, county".into()),
    }
}

fn main() -> anyhow::Result<()> {
    let args = shangliang::config::expand_args(&Cli::command(), std::env::args_os()).map_err(anyhow::Error::msg)?;
    let cli = Cli::parse_from(args);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Token(args) => token(args),
        Command::Admin(cmd) => shangliang::organise::cli::run(cmd),
        Command::Export(a) => {
            use shangliang::server::moderation::export;
            let act = ActivityId::new(&a.activity)?;
            let key = public_key(None, a.record_key, &a.data_dir).ok();
            print!("{}", export::export_with_key(&source(a.data_dir, a.database), &act, a.format, key.as_ref())?);
            Ok(())
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{}", shangliang::config::example(&Cli::command()));
            Ok(())
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let text = std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let problems = shangliang::config::check(&Cli::command(), &text);
            for p in &problems {
                println!("{}: {p}", file.display());
            }
            if !problems.is_empty() {
                std::process::exit(1);
            }
            println!("{}: ok", file.display());
            Ok(())
        }
        Command::VerifyRecord(a) => {
            use shangliang::server::moderation::export;
            let act = ActivityId::new(&a.activity)?;
            if a.database.is_some() && !a.chain_only {
                anyhow::bail!("the PostgreSQL record keeps no Merkle log yet: only its audit chain can be checked (give --chain-only)");
            }
            let key = if a.chain_only { None } else { Some(public_key(a.public_key.as_deref(), a.record_key, &a.data_dir)?) };
            let published = match &a.head {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    Some(export::parse_published_head(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
                }
                None => None,
            };
            let v = export::verify_record(&source(a.data_dir, a.database), &act, key.as_ref(), published.as_ref())?;
            println!("ok: {} audit entries of {act}, chain head {}", v.entries, v.head);
            let (Some(log), Some(key)) = (&v.log, &key) else {
                println!("note: --chain-only: the Merkle log and its signed heads were not checked; a rewritten and recomputed chain passes this check");
                if v.after_stored_head > 0 {
                    println!("note: {} entries after the head stored with the summary", v.after_stored_head);
                }
                return Ok(());
            };
            match &log.head {
                Some(h) => println!(
                    "ok: {} log leaves ({} items, {} audit entries) give the root {} of the head signed at {} ms (size {}) with key {key}",
                    log.leaves,
                    log.items,
                    log.leaves - log.items,
                    hex::encode(h.root),
                    h.ts_ms,
                    h.size
                ),
                None => println!("ok: the log of {act} is empty"),
            }
            if let Some(p) = &log.published {
                println!("ok: the record extends the head published at {} ms (size {})", p.ts_ms, p.size);
            }
            if log.unsigned > 0 {
                println!("note: {} leaves after the latest signed head are not yet signed", log.unsigned);
            }
            if v.after_stored_head > 0 {
                println!("note: {} entries after the head stored with the summary", v.after_stored_head);
            }
            Ok(())
        }
    }
}

fn source(data_dir: PathBuf, database: Option<String>) -> shangliang::server::moderation::export::RecordSource {
    use shangliang::server::moderation::export::RecordSource;
    match database {
        None => RecordSource::Dir(data_dir),
        // A cluster's recordings are in its nodes' data directories: the given one is looked in.
        Some(url) => RecordSource::Database(url, Some(data_dir)),
    }
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = ServeConfig::new(a.listen, a.data_dir);
    cfg.comments_per_minute = a.comments_per_minute;
    cfg.viewer_tokens_per_minute = a.viewer_tokens_per_minute;
    cfg.viewer_tokens_per_block_per_minute = a.viewer_tokens_per_block_per_minute;
    cfg.votes = shangliang::consult::votes::VoteRules {
        per_question_per_block: a.anonymous_votes_per_question_per_block.max(1),
        per_block_per_minute: a.anonymous_votes_per_minute_per_block.max(1),
    };
    cfg.frames_per_second = a.frames_per_second;
    cfg.max_connections = a.max_connections;
    cfg.acks_on_wire = !a.acks_via_session;
    cfg.idle_timeout = Duration::from_secs(a.idle_timeout_secs);
    cfg.demo = !a.no_demo;
    cfg.socket_send_buffer = a.socket_send_buffer;
    cfg.web_dir = a.web_dir;
    cfg.sfu = shangliang_sfu::SfuConfig {
        bind_ip: a.rtc_bind_ip,
        announced_ip: a.rtc_announced_ip,
        udp_port: a.rtc_udp_port.unwrap_or(50_000),
        any_port_if_taken: a.rtc_udp_port.is_none(),
        tcp_port: a.rtc_tcp_port,
        max_participants_per_room: a.max_room_participants,
        max_viewers_per_node: a.max_viewers_per_node,
        ..shangliang_sfu::SfuConfig::default()
    };
    cfg.turn = match (a.turn_secret.as_deref(), a.turn_urls.is_empty()) {
        (None, true) => None,
        (None, false) => anyhow::bail!("--turn-url needs --turn-secret (the secret shared with the TURN server)"),
        (Some(secret), _) => Some(shangliang::server::media::turn::TurnConfig::new(a.turn_urls, secret, Duration::from_secs(a.turn_ttl_secs)).map_err(anyhow::Error::msg)?),
    };
    cfg.edge = shangliang::server::edge::EdgeConfig {
        header_timeout: Duration::from_secs(a.header_timeout_secs.max(1)),
        idle_timeout: Duration::from_secs(a.http_idle_timeout_secs.max(1)),
        request_timeout: Duration::from_secs(a.request_timeout_secs.max(1)),
        max_pending: a.max_pending_connections,
        max_pending_per_address: a.max_pending_per_address,
        pending_reserve: a.pending_reserve,
        trusted_proxies: a.trusted_proxies,
        client_header: a.client_address_header,
        ..Default::default()
    };
    cfg.programme.enabled = !a.no_programme;
    cfg.record_key = a.record_key;
    cfg.programme.retention = a.recording_retention_days.map(|d| Duration::from_secs(d * 86_400));
    let defaults = FanoutConfig::default();
    cfg.fanout = FanoutConfig {
        shards: a.shards.unwrap_or(defaults.shards),
        flush_interval: Duration::from_millis(a.flush_ms),
        max_flush_interval: Duration::from_millis(a.max_flush_ms.max(a.flush_ms)),
        ring_capacity: a.ring,
        queue_frames: a.queue_frames,
        lag_close_after: Duration::from_secs(a.lag_close_secs),
        public_max_per_sec: a.thinning_max_per_sec,
        shard_threads: !a.shards_on_runtime,
    };
    if let (Some(nats_url), Some(database_url)) = (a.nats, a.database) {
        let public_url = a.public_url.unwrap_or_else(|| format!("http://{}", a.listen));
        anyhow::ensure!(
            a.nodes.is_empty() || a.nodes.contains(&public_url),
            "--nodes does not list this node's URL {public_url} (set --public-url to the URL the list uses)"
        );
        cfg.cluster = Some(shangliang::bus::ClusterConfig {
            nats_url,
            database_url,
            nodes: a.nodes.into_iter().map(NodeId::from).collect(),
            public_url: public_url.into(),
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(shangliang::server::serve(cfg))
}

fn token(a: TokenArgs) -> anyhow::Result<()> {
    let act = ActivityId::new(&a.activity)?;
    let ttl = parse_ttl(&a.ttl).map_err(anyhow::Error::msg)?;
    let keys = TokenKeys::load_or_create(&a.data_dir)?;
    let now = now_secs();
    let claims = TokenClaims {
        sub: a.subject.unwrap_or_else(|| format!("{}:{}", a.role.as_str(), a.name)).into(),
        name: a.name,
        role: a.role,
        act,
        org: a.org.map(|name| Org { level: a.org_level.unwrap_or(OrgLevel::Province), name }),
        verified: a.verified,
        iat: now,
        exp: now + ttl,
    };
    println!("{}", keys.mint(&claims));
    Ok(())
}
