//! Command-line options of the load harness (parent and internal roles share one parser).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::Parser;

/// Live-comment load harness: drives real websocket viewers and posters against a hub
/// (or the bare in-harness baseline) from several processes and prints one JSON line.
#[derive(Parser, Debug, Clone)]
#[command(name = "load", about)]
pub struct Args {
    /// Websocket URL of the hub (ignored with --spawn-hub / --baseline, which pick a free port).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Number of viewers in total (split across --procs worker processes).
    #[arg(long, default_value_t = 1000)]
    pub viewers: usize,
    /// Comments per second in total (split across --posters posting connections).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Seconds of posting.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Start `target/release/shangliang serve` (see --hub-bin) on a free port with a fresh data dir.
    #[arg(long)]
    pub spawn_hub: bool,
    /// Measure the bare in-harness broadcast server instead of the hub.
    #[arg(long, conflicts_with = "spawn_hub")]
    pub baseline: bool,
    /// Viewer worker processes (each binds its own source address 127.0.0.<first-src + i>).
    #[arg(long, default_value_t = 2)]
    pub procs: usize,
    /// Posting connections (each with its own member token).
    #[arg(long, default_value_t = 10)]
    pub posters: usize,
    /// Also write the result JSON to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// PID of an already running server, for CPU and RSS figures.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Hub binary for --spawn-hub and for minting tokens.
    #[arg(long, default_value = "target/release/shangliang")]
    pub hub_bin: PathBuf,
    /// Data dir of an already running hub: tokens are minted there with `hub-bin token`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Viewer token to use instead of minting one.
    #[arg(long)]
    pub viewer_token: Option<String>,
    /// Member token(s) for posters instead of minting them (repeatable; reused round-robin).
    #[arg(long)]
    pub member_token: Vec<String>,
    /// Topic (activity id) to watch and post to.
    #[arg(long, default_value = "demo")]
    pub topic: String,
    /// Connection attempts in flight at once during the ramp, over all workers.
    #[arg(long, default_value_t = 500)]
    pub ramp: usize,
    /// Longest wait after posting stops for deliveries and acks to arrive (seconds).
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// Websocket read and write buffer size per viewer connection, bytes.
    #[arg(long, default_value_t = 4096)]
    pub buf: usize,
    /// Kernel receive buffer (SO_RCVBUF) per viewer socket, bytes; 0 leaves the kernel's
    /// autotuning (tcp_rmem, up to 32 MiB a socket here). With 100k loopback sockets in one
    /// kernel autotuning crosses tcp_mem and every socket is pruned: a real viewer has a kernel
    /// of its own, so the cluster run fixes this to a small size.
    #[arg(long, default_value_t = 0)]
    pub rcvbuf: usize,
    /// Baseline server: flush interval in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub flush_ms: u64,
    /// Spawned hub: `--comments-per-minute` (default: twice what one poster needs, at least 60).
    #[arg(long)]
    pub comments_per_minute: Option<u32>,
    /// Spawned hub: `--thinning-max-per-sec` (0 = no thinning).
    #[arg(long, default_value_t = 0)]
    pub thinning_max_per_sec: u32,
    /// Spawned hub: extra argument passed to `serve` (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    pub hub_arg: Vec<String>,
    /// Decode every batch with `decode_server` instead of the zero-copy fast path.
    #[arg(long)]
    pub full_decode: bool,
    /// Last octet of the first worker's source address (127.0.0.<first_src>).
    #[arg(long, default_value_t = 2)]
    pub first_src: u8,
    /// Seconds to wait for the ramp (all workers connected) before going on regardless.
    #[arg(long, default_value_t = 180.0)]
    pub ramp_timeout: f64,
    /// Write the spawned server's stderr here (default: a temp file, removed at the end).
    #[arg(long)]
    pub server_log: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,

    // ---- internal: roles of re-executed processes ----
    /// Internal: `worker` or `baseline-server`.
    #[arg(long, hide = true)]
    pub role: Option<String>,
    /// Internal (worker): source address to bind.
    #[arg(long, hide = true)]
    pub src_ip: Option<Ipv4Addr>,
    /// Internal (worker): the viewer token.
    #[arg(long, hide = true)]
    pub token: Option<String>,
    /// Internal (worker): hard deadline in seconds after which the process exits.
    #[arg(long, hide = true, default_value_t = 600.0)]
    pub deadline: f64,
    /// Internal (baseline-server): address to listen on.
    #[arg(long, hide = true)]
    pub listen: Option<String>,
}
