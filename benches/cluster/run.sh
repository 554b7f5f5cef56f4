#!/usr/bin/env bash
# The big run: NATS, PostgreSQL and N hub nodes in cluster mode on this machine, then one load
# harness (benches/load.rs) per node, all at once, viewers split evenly over the nodes.
#
#   benches/cluster/run.sh                       # 100,000 viewers, 50 comments/s, 60 s, 6 nodes
#   VIEWERS=12000 DURATION=20 benches/cluster/run.sh   # a quick check
#
# The harness targets one URL per run, so each node gets its own harness instance with
# VIEWERS/NODES viewers and RATE/NODES comments/s posted to that node: every viewer receives
# all RATE comments/s, most of them posted on other nodes (they cross NATS). Each instance's
# `delivered` therefore counts comments of all instances; its `acked` only its own.
# Results: $WORK/load-<k>.json (one per node) and a summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."

VIEWERS=${VIEWERS:-100000}
RATE=${RATE:-50}
DURATION=${DURATION:-60}
NODES=${NODES:-6}
PROCS_PER_NODE=${PROCS_PER_NODE:-1}   # harness worker processes per node (≤ 18,000 viewers each)
HUB_ARGS=${HUB_ARGS:-}                # extra `serve` flags for every node, e.g. "--max-flush-ms 1000"
TCP_MEM=${TCP_MEM:-}                  # e.g. "1572864 2097152 3145728": net.ipv4.tcp_mem (pages) for the run, restored after
RCVBUF=${RCVBUF:-65536}                # SO_RCVBUF per viewer socket (0 = kernel autotuning; see --rcvbuf)
BASELINE=${BASELINE:-0}               # 1: no hubs, no NATS, no PostgreSQL: NODES bare broadcast servers
                                      # (benches/load --baseline), each sending all RATE comments/s
                                      # to its VIEWERS/NODES viewers — the same delivery work, the
                                      # leanest possible server, to show what the machine carries
BASELINE_FLUSH_MS=${BASELINE_FLUSH_MS:-1000}
NATS_PORT=${NATS_PORT:-14222}
PG_PORT=${PG_PORT:-15432}
FIRST_PORT=${FIRST_PORT:-18081}
WORK=${WORK:-$(mktemp -d /tmp/shangliang-cluster.XXXXXX)}
mkdir -p "$WORK"
chmod 755 "$WORK"
echo "work dir $WORK" >&2

# Resource use of the whole machine over the load: CPU split (/proc/stat) and the kernel's TCP
# counters (memory pressure, pruning, drops) as deltas.
machine_start() {
  CPU_BEFORE=$(head -1 /proc/stat)
  command -v nstat >/dev/null && nstat -n || true
}
machine_report() {
  echo "--- machine over the run (CPU share of 2 cores; kernel TCP counters, deltas)"
  awk -v a="$CPU_BEFORE" -v b="$(head -1 /proc/stat)" 'BEGIN {
    split(a, x); split(b, y); n = split("user nice system idle iowait irq softirq steal", f, " ")
    for (i = 1; i <= n; i++) { d[i] = y[i + 1] - x[i + 1]; t += d[i] }
    for (i = 1; i <= n; i++) printf "%s %.1f%%  ", f[i], 100 * d[i] / t; print ""
  }'
  command -v nstat >/dev/null && nstat 2>/dev/null |
    grep -E "TCPMemoryPressures|PruneCalled|RcvPruned|TCPRcvQDrop|TCPBacklogDrop|TCPAbortOnMemory|TCPOFODrop" || true
}

# One load-harness instance k (in the background): VIEWERS/NODES viewers from its own source
# addresses, 2 posters at the given rate, then the target's own flags.
harness() {
  local k=$1 rate=$2
  shift 2
  "$LOAD_BIN" --bench "$@" \
    --viewers "$PER_NODE" --procs "$PROCS_PER_NODE" --first-src "$((2 + (k - 1) * PROCS_PER_NODE))" \
    --rate "$rate" --posters 2 --duration "$DURATION" --drain 10 \
    --ramp 100 --ramp-timeout 600 --rcvbuf "$RCVBUF" --json-out "$WORK/load-$k.json" \
    >"$WORK/load-$k.out" 2>"$WORK/load-$k.log" &
  LOAD_PIDS+=($!)
  PIDS+=($!)
}

# Waits for every harness instance, then prints the machine's figures and each instance's
# result (and, for hub nodes, their health). Exits with 1 if an instance failed.
finish() {
  local what=$1 status=0
  for p in "${LOAD_PIDS[@]}"; do wait "$p" || status=1; done
  machine_report
  for k in $(seq 1 "$NODES"); do
    echo "--- $what $k"
    [ -f "$WORK/load-$k.json" ] && cat "$WORK/load-$k.json" || tail -5 "$WORK/load-$k.log"
    echo
    if [ "$what" = node ]; then
      curl -fs "http://127.0.0.1:$((FIRST_PORT + k - 1))/healthz" || true
      echo
    fi
  done
  exit $status
}

PIDS=()
OLD_TCP_MEM=$(cat /proc/sys/net/ipv4/tcp_mem)
cleanup() {
  if [ -n "$TCP_MEM" ]; then echo "$OLD_TCP_MEM" >/proc/sys/net/ipv4/tcp_mem 2>/dev/null || true; fi
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "${PG_BIN:-}" ] && [ -d "$WORK/pg/data" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# PostgreSQL refuses to run as root: run it as the `postgres` user the Debian package creates.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "$BASELINE" = 1 ]; then
  cargo bench --bench load --no-run -q 2>/dev/null || cargo bench --bench load --no-run
  LOAD_BIN=$(ls -t target/release/deps/load-* | grep -v '\.d$' | head -1)
  machine_start
  PER_NODE=$((VIEWERS / NODES))
  LOAD_PIDS=()
  for k in $(seq 1 "$NODES"); do
    harness "$k" "$RATE" --baseline --flush-ms "$BASELINE_FLUSH_MS"
  done
  finish "baseline server"
fi

command -v nats-server >/dev/null || { echo "nats-server missing: apt-get install -y nats-server" >&2; exit 1; }
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL missing: apt-get install -y postgresql" >&2; exit 1; }

# Both ends of 200k loopback sockets share this kernel: their buffers count twice against
# net.ipv4.tcp_mem, whose default pressure threshold (~1.5 GiB here) a real server would raise.
if [ -n "$TCP_MEM" ]; then
  echo "$TCP_MEM" >/proc/sys/net/ipv4/tcp_mem || { echo "cannot set tcp_mem (needs root)" >&2; exit 1; }
fi
echo "tcp_mem (pages): $(cat /proc/sys/net/ipv4/tcp_mem)" >&2

echo "building" >&2
cargo build --release -q
cargo bench --bench load --no-run -q 2>/dev/null || cargo bench --bench load --no-run
LOAD_BIN=$(ls -t target/release/deps/load-* | grep -v '\.d$' | head -1)

nats-server -a 127.0.0.1 -p "$NATS_PORT" >"$WORK/nats.log" 2>&1 &
PIDS+=($!)

mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
as_pg "$PG_BIN/initdb" -U shangliang --auth=trust -E UTF8 -D "$WORK/pg/data" >"$WORK/pg/initdb.log"
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/postgres.log" -w \
  -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=100" start >&2
DB="postgres://shangliang@127.0.0.1:$PG_PORT/postgres"

SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
NODE_LIST=$(for k in $(seq 1 "$NODES"); do printf 'http://127.0.0.1:%d,' $((FIRST_PORT + k - 1)); done)
NODE_LIST=${NODE_LIST%,}
NODE_PIDS=()
for k in $(seq 1 "$NODES"); do
  dir="$WORK/node$k"; mkdir -p "$dir"; printf '%s' "$SECRET" >"$dir/secret.key"
  port=$((FIRST_PORT + k - 1))
  target/release/shangliang serve --listen "127.0.0.1:$port" --data-dir "$dir" \
    --nats "nats://127.0.0.1:$NATS_PORT" --database "$DB" --nodes "$NODE_LIST" \
    --max-connections 19000 --comments-per-minute 100000 --frames-per-second 1000 \
    --idle-timeout-secs 300 $HUB_ARGS >"$dir/stdout.log" 2>"$dir/hub.log" &
  PIDS+=($!); NODE_PIDS+=($!)
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { echo "node $k did not start" >&2; cat "$dir/hub.log" >&2; exit 1; }
  echo "node $k on :$port (pid ${NODE_PIDS[-1]})" >&2
done

machine_start

PER_NODE=$((VIEWERS / NODES))
RATE_PER_NODE=$(awk -v r="$RATE" -v n="$NODES" 'BEGIN { printf "%.4f", r / n }')
LOAD_PIDS=()
for k in $(seq 1 "$NODES"); do
  harness "$k" "$RATE_PER_NODE" --url "ws://127.0.0.1:$((FIRST_PORT + k - 1))/ws" \
    --data-dir "$WORK/node$k" --hub-bin target/release/shangliang \
    --server-pid "${NODE_PIDS[$((k - 1))]}"
done
finish node
