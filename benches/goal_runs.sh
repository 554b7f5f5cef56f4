#!/usr/bin/env bash
# The issue-11 goal run (the issue-2 run: 19,000 viewers, 100 comments/s, 60 s), RUNS times in a
# row, each hub run right after the bare baseline (benches/load --baseline) in the same run, and a
# table of the goals per run. Figures are only worth taking on a quiet machine.
#
#   benches/goal_runs.sh                                   # 5 × (baseline, hub), release build
#   VIEWERS=200 DURATION=3 RUNS=1 LOAD=target/debug/deps/load-<hash> \
#       HUB_BIN=target/debug/shangliang benches/goal_runs.sh   # a smoke run of the script itself
#
# Results: $WORK/run-<i>-{baseline,hub}.json (the harness's JSON line) and $WORK/table.md.
# Goals checked per run (issue 11): every delivery received, 0 gaps, post → ack p50 ≤ 50 ms and
# p99 ≤ 200 ms, hub delivery p99 ≤ 1.1 × the baseline's, RSS per connected viewer ≤ 4 KiB at
# connect and ≤ 8 KiB at the end of the posting run.
set -euo pipefail
cd "$(dirname "$0")/.."

VIEWERS=${VIEWERS:-19000}
RATE=${RATE:-100}
DURATION=${DURATION:-60}
RUNS=${RUNS:-5}
PROCS=${PROCS:-2}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-$((VIEWERS + 100))}
BASELINE_ARGS=${BASELINE_ARGS:-}        # e.g. "--flush-ms 200" (default: the harness's 20 ms)
HUB_ARGS=${HUB_ARGS:-}                  # extra harness flags for the hub run, e.g. "--hub-arg=--max-flush-ms --hub-arg=500"
HUB_BIN=${HUB_BIN:-target/release/shangliang}
LOAD=${LOAD:-cargo bench --bench load --}   # the harness; a prebuilt binary works too
WORK=${WORK:-$(mktemp -d /tmp/shangliang-goal.XXXXXX)}
mkdir -p "$WORK"
echo "work dir $WORK" >&2

if [[ "$LOAD" == cargo* && "$HUB_BIN" == target/release/* ]]; then
  cargo build --release --bin shangliang >&2
fi

common=(--viewers "$VIEWERS" --rate "$RATE" --duration "$DURATION" --procs "$PROCS" --hub-bin "$HUB_BIN")
for i in $(seq 1 "$RUNS"); do
  echo "run $i/$RUNS: baseline" >&2
  # shellcheck disable=SC2086
  $LOAD --baseline "${common[@]}" $BASELINE_ARGS --json-out "$WORK/run-$i-baseline.json" >/dev/null
  echo "run $i/$RUNS: hub" >&2
  # shellcheck disable=SC2086
  $LOAD --spawn-hub --hub-arg=--max-connections --hub-arg="$MAX_CONNECTIONS" "${common[@]}" $HUB_ARGS \
      --json-out "$WORK/run-$i-hub.json" >/dev/null
done

python3 - "$WORK" "$RUNS" "$VIEWERS" "$RATE" "$DURATION" <<'PY' | tee "$WORK/table.md"
import json, sys
work, runs, viewers, rate, duration = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
def load(i, kind):
    with open(f"{work}/run-{i}-{kind}.json") as f:
        return json.loads(f.readline())
def g(d, *path):
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None
    return d
def f(x, nd=1):
    return "—" if x is None else (f"{x:,.{nd}f}" if isinstance(x, float) else f"{x:,}")
def ok(c):
    return "yes" if c else "**no**"
print(f"Issue-11 goal run: {viewers} viewers, {rate} comments/s, {duration} s; {runs} runs, each hub run after the baseline.\n")
print("| run | target | delivered / expected | gaps | delivery p50 / p99 (ms) | post → ack p50 / p99 (ms) | RSS/viewer connect / end (KiB) | goals met |")
print("|---|---|---|---|---|---|---|---|")
all_ok = True
for i in range(1, runs + 1):
    b, h = load(i, "baseline"), load(i, "hub")
    for kind, d in (("baseline", b), ("hub", h)):
        row = [str(i), kind,
               f"{f(d.get('deliveries_received'))} / {f(d.get('deliveries_expected'))}",
               f(d.get("gaps")),
               f"{f(g(d,'latency_ms','p50'))} / {f(g(d,'latency_ms','p99'))}",
               f"{f(g(d,'ack_latency_ms','p50'))} / {f(g(d,'ack_latency_ms','p99'))}",
               f"{f(d.get('rss_per_viewer_kib'), 2)} / {f(d.get('rss_per_viewer_kib_end'), 2)}"]
        if kind == "hub":
            bp99, hp99 = g(b, "latency_ms", "p99"), g(h, "latency_ms", "p99")
            ack50, ack99 = g(h, "ack_latency_ms", "p50"), g(h, "ack_latency_ms", "p99")
            rc, re = h.get("rss_per_viewer_kib"), h.get("rss_per_viewer_kib_end")
            goals = {
                "all delivered": h.get("deliveries_expected", 0) > 0 and h.get("deliveries_received") == h.get("deliveries_expected"),
                "0 gaps": h.get("gaps") == 0,
                "ack p50 ≤ 50": ack50 is not None and ack50 <= 50,
                "ack p99 ≤ 200": ack99 is not None and ack99 <= 200,
                "p99 ≤ 1.1× baseline": None not in (bp99, hp99) and hp99 <= 1.1 * bp99,
                "RSS ≤ 4 KiB connect": rc is not None and rc <= 4,
                "RSS ≤ 8 KiB end": re is not None and re <= 8,
            }
            missed = [k for k, v in goals.items() if not v]
            all_ok &= not missed
            row.append("all" if not missed else "missed: " + ", ".join(missed))
        else:
            row.append("")
        print("| " + " | ".join(row) + " |")
print(f"\nEvery goal in every run: {ok(all_ok)}")
PY
