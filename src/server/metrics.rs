//! Prometheus metrics: one global recorder, rendered at `GET /metrics`.
//!
//! Names (all prefixed `shangliang_`): `connections` (gauge), `connections_total`,
//! `comments_accepted_total`, `comments_refused_total{code}`, `frames_refused_total{code}`,
//! `closed_total{code}` (the close code on the wire, the client's for a client's close, `abrupt` for
//! a connection that ended without a closing handshake), `ws_sessions_total{writer}` (`shard`: the fan-out shard writes to the socket; `session`: a
//! connection that is not a plain TCP stream, fed by a queue), `record_append_seconds` (a comment's commit, as the driver sees it),
//! `consult_persist_retries_total`, `consult_persist_failed_total`,
//! `consult_audit_unwritten{activity}`; the fan-out core adds its own
//! (`fanout_deliveries_total`, `fanout_dropped_frames_total`, `fanout_flush_seconds`,
//! `fanout_publish_to_send_seconds`, ...); a comment's path hop by hop:
//! `comment_hop_seconds{hop}` (`to_driver`, `decide`, `durable`, `to_socket`, `total`; see
//! `inbox::comment_hop`); and `runtime_wait_seconds{runtime}`, how long a task woken from
//! outside waits for a worker of the `main` (sessions, fan-out) or `control` (moderation)
//! runtime, sampled every 20 ms ([`probe_runtimes`]).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once (later calls, e.g. several hubs in one test process,
/// share it).
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests): then ours only renders empty.
        let _ = metrics::set_global_recorder(recorder);
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("spawn metrics upkeep thread");
        handle
    });
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}

/// Samples, every 20 ms while `alive` lives, how long a task spawned from outside each runtime
/// waits for one of its workers (`shangliang_runtime_wait_seconds{runtime}`): what a session
/// woken by its socket waits when the workers are busy. One thread for all of them.
pub fn probe_runtimes<T: Send + Sync + 'static>(
    alive: std::sync::Weak<T>,
    runtimes: Vec<(&'static str, tokio::runtime::Handle)>,
) {
    let spawned = std::thread::Builder::new().name("runtime-probe".into()).spawn(move || {
        while alive.strong_count() > 0 {
            for (name, rt) in &runtimes {
                let at = std::time::Instant::now();
                let name = *name;
                rt.spawn(async move {
                    metrics::histogram!("shangliang_runtime_wait_seconds", "runtime" => name)
                        .record(at.elapsed().as_secs_f64());
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("runtime probe not started: {e}");
    }
}
