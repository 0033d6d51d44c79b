#!/usr/bin/env bash
# Collector benchmark: 1,000 simulated devices publish v2 datagrams with 3 measurements each
# (QoS 1) to a Mosquitto of the benchmark's own; devicehub (collector role, release build)
# journals them and writes InfluxDB 1.x, the archive and PostgreSQL. Prints what the broker alone
# delivers to a discarding subscriber (the ceiling, measured before and after the collector run),
# the collector's end-to-end rate (first publish to the last point queryable in InfluxDB), our
# fraction of the ceiling, latency, peak RSS, and each process's CPU.
# Runs three times (RUNS=n to change) and ends with the medians: the machine's speed drifts
# between minutes, and a single run's fraction of the ceiling moves by several hundredths.
# Usage: scripts/bench-collector.sh [messages, default 300000]
#   RATE=20000 scripts/bench-collector.sh   offers a fixed rate instead of as fast as possible, to
#                                            see latency when the collector keeps up
#   DEVICEHUB_BIN=path scripts/bench-collector.sh   measures that build instead of building
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

MESSAGES="${1:-300000}"
RUNS="${RUNS:-3}"
if [ "$RUNS" -gt 1 ]; then
  SUMMARIES="$(mktemp)" RUN_OUT="$(mktemp)"
  for i in $(seq 1 "$RUNS"); do
    log "run $i of $RUNS"
    RUNS=1 bash "$0" "$@" | tee "$RUN_OUT"
    sed -n 's/^summary: //p' "$RUN_OUT" >> "$SUMMARIES"
  done
  python3 - "$SUMMARIES" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
med = lambda k: statistics.median(r[k] for r in runs)
print()
print(f"over {len(runs)} runs (median; worst in brackets):")
print(f"  collector rate      : {med('rate'):.0f} msg/s ({min(r['rate'] for r in runs):.0f})")
print(f"  fraction of ceiling : {med('fraction'):.2f} ({min(r['fraction'] for r in runs):.2f})")
print(f"  p99 latency         : {med('p99_ms'):.0f} ms ({max(r['p99_ms'] for r in runs):.0f})")
print(f"  peak RSS            : {med('rss_mb'):.0f} MB ({max(r['rss_mb'] for r in runs):.0f})")
print(f"  points missing      : {sum(r['missing'] for r in runs)}")
PY
  rm -f "$SUMMARIES" "$RUN_OUT"
  exit 0
fi
RATE="${RATE:-0}"
# Probes run for about as long as the load (at ~20,000 msg/s), at least 5 s.
PROBE_SECS=$(( MESSAGES / 20000 > 5 ? MESSAGES / 20000 : 5 ))
POINTS=$((MESSAGES * 3))
PORT=18830
WORK="$(mktemp -d)"
DB=devicehub_bench_collector

require_cargo
ensure_postgres
ensure_mosquitto
ensure_influxdb

# Test databases left by scripts/test.sh (dozens, after an interrupted run) keep influxd busy in
# the background, which this benchmark would count against the collector.
drop_test_influx_databases

release_binaries

# The shipped broker config (config/mosquitto/mosquitto.conf: its queue bounded by bytes, 1,000
# messages in flight per client, persistence), opened to anonymous clients without ACLs so that
# the load generator's thousand devices need no accounts; data and log in the work directory.
# The plain listener only: the collector's own cost is measured (TLS costs the broker and the
# collector alike, per connection; its handshake is not per message).
sed -e "s#^listener 1883\$#listener $PORT 127.0.0.1#" \
    -e "/^listener 8883/,/^require_certificate/d" \
    -e "s#^allow_anonymous false#allow_anonymous true#" \
    -e "/^password_file /d" -e "/^acl_file /d" \
    -e "s#^persistence_location .*#persistence_location $WORK/mosquitto-data/#" \
    -e "s#^log_dest stdout#log_dest stderr#" \
    "$ROOT/config/mosquitto/mosquitto.conf" > "$WORK/mosquitto.conf"
mkdir -p "$WORK/mosquitto-data" && chmod 755 "$WORK"
if [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1; then chown -R mosquitto: "$WORK/mosquitto-data"; fi
start_broker() {
  mosquitto -c "$WORK/mosquitto.conf" >> "$WORK/mosquitto.log" 2>&1 &
  BROKER=$!
  wait_for_port 127.0.0.1 "$PORT" "benchmark broker"
}
trap 'kill ${BROKER:-} ${SERVER:-} 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK" "${ARCHIVE:-}"; mkdir -p "$(dirname "$STAMP")"; touch "$STAMP"' EXIT
start_broker

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}
cpu_of() { local p; for p in $(pgrep -x "$1"); do cpu_secs "$p"; done | awk '{s += $1} END {print s + 0}'; }

# The broker alone: the load to a subscriber that discards it. Measured before and after the
# collector run (on a fresh broker, without the collector's session), and the mean used: the
# machine's speed drifts by up to a fifth between minutes.
ceiling() {
  log "broker ceiling ($1): $MESSAGES messages to a subscriber that discards them"
  local b0; b0=$(cpu_secs "$BROKER")
  "$SIM" drain --broker "mqtt://127.0.0.1:$PORT" --messages "$MESSAGES" --idle-secs 5 --json > "$WORK/drain-$1.json" 2>/dev/null &
  local drain=$!
  sleep 1
  "$SIM" load --broker "mqtt://127.0.0.1:$PORT" --devices 1000 --messages "$MESSAGES" --qos 1 --connections 4 --json 2>/dev/null > "$WORK/load-$1.json"
  wait $drain
  echo "$b0 $(cpu_secs "$BROKER")" > "$WORK/broker-cpu-$1"
}

# The local archive goes to tmpfs (/dev/shm) when it has room. On ext4, creating files within
# minutes of deleting tens of thousands (the previous run's archive) is slow: ext4 avoids reusing
# recently freed inodes, and the measured collector then needed up to twice the CPU, all of it in
# inode allocation, so figures depended on how long ago the last run was. Without room on
# tmpfs, runs wait until a minute has passed since the last one ended.
STAMP="$HOME/.cache/devicehub/bench-collector.last"
if [ "$(df --output=avail -k /dev/shm 2>/dev/null | tail -1)" -gt 4000000 ] 2>/dev/null; then
  ARCHIVE="$(mktemp -d /dev/shm/devicehub-bench-archive.XXXXXX)"
else
  ARCHIVE="$WORK/archive"
  if [ -f "$STAMP" ]; then
    AGO=$(( $(date +%s) - $(stat -c %Y "$STAMP") ))
    if [ "$AGO" -lt 60 ]; then
      log "waiting $((60 - AGO)) s for the file system to settle after the previous run"
      sleep $((60 - AGO))
    fi
  fi
fi
log "archive directory: $ARCHIVE"

ceiling before

curl -s -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=DROP DATABASE $DB" >/dev/null
psql -w -h "$PG_HOST" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
export DEVICEHUB__ROLES=collector
export DEVICEHUB__DATABASE__URL="postgres://postgres@$PG_HOST:$PG_PORT/$DB"
export DEVICEHUB__MQTT__URL="mqtt://127.0.0.1:$PORT"
export DEVICEHUB__MQTT__CLIENT_ID="bench-collector-$$"
export DEVICEHUB__INFLUXDB__API=v1 DEVICEHUB__INFLUXDB__DATABASE=$DB
export DEVICEHUB__ARCHIVE__DIR="$ARCHIVE" DEVICEHUB__COLLECTOR__JOURNAL_DIR="$WORK/journal"
export DEVICEHUB__AUTH__JWT_SECRET="bench-only-secret-not-for-production-0123456789"
export DEVICEHUB__LOG__LEVEL=warn
"$BIN" serve > "$WORK/devicehub.log" 2>&1 &
SERVER=$!
sleep 2
# BENCH_PERF=FILE records a CPU profile of devicehub during the run (perf from linux-perf).
if [ -n "${BENCH_PERF:-}" ]; then
  perf record -F 499 ${BENCH_PERF_CALLGRAPH:--g} -p "$SERVER" -o "$BENCH_PERF" > /dev/null 2>&1 &
  PERF=$!
fi

count_points() {
  curl -s "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "db=$DB" \
    --data-urlencode "q=SELECT count(\"value\") FROM iot_telemetry WHERE metric <> 'probe'" |
    python3 -c 'import sys,json; r=json.load(sys.stdin)["results"][0]; print(r["series"][0]["values"][0][1] if "series" in r else 0)'
}

log "collector: $MESSAGES messages ($POINTS points) from 1,000 devices, with latency probes"
# Probes: one extra datagram every 100 ms during the load, each timed from its publish to the
# first InfluxDB query that returns it (queried every 50 ms: each query costs InfluxDB ~1 ms of
# CPU, which the collector run pays for; latencies are over-stated by up to 50 ms).
"$SIM" probe --broker "mqtt://127.0.0.1:$PORT" --influx-url "http://127.0.0.1:$INFLUX_PORT" \
  --influx-db "$DB" --seconds "$PROBE_SECS" --poll-ms 50 --json > "$WORK/probe.json" 2>/dev/null &
PROBE=$!
CPU0="$(cpu_secs "$SERVER") $(cpu_of influxd) $(cpu_secs "$BROKER") $(cpu_of postgres)"
START=$(date +%s.%N)
"$SIM" load --broker "mqtt://127.0.0.1:$PORT" --devices 1000 --messages "$MESSAGES" --qos 1 --connections 4 --rate "$RATE" --json 2>/dev/null > "$WORK/load.json"
# The end: a marker published once the broker has acknowledged the whole load is queryable only
# after every message of the load (the collector journals in arrival order and writes InfluxDB
# in journal order). Polling a count instead would cost InfluxDB ~0.25 CPU-s per query at
# 900,000 points, which the collector would pay for. One count afterwards checks for loss.
"$SIM" probe --broker "mqtt://127.0.0.1:$PORT" --influx-url "http://127.0.0.1:$INFLUX_PORT" \
  --influx-db "$DB" --once --settle-secs 120 --json > "$WORK/marker.json" 2>/dev/null || true
END=$(date +%s.%N)
CPU1="$(cpu_secs "$SERVER") $(cpu_of influxd) $(cpu_secs "$BROKER") $(cpu_of postgres)"
if [ -n "${PERF:-}" ]; then kill -INT "$PERF"; wait "$PERF" || true; fi
N=$(count_points)
wait $PROBE
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
OBJECTS=$(find "$ARCHIVE" -type f | wc -l)
kill "$SERVER" "$BROKER"
wait "$SERVER" "$BROKER" 2>/dev/null || true
SERVER=
start_broker
ceiling after
python3 - "$START" "$END" "$MESSAGES" "$N" "$POINTS" "$RSS" "$WORK/load.json" "$WORK/probe.json" "$CPU0" "$CPU1" \
  "$OBJECTS" "$WORK" <<'PY'
import json, sys
(start, end, messages, got, points, rss, load, probe, cpu0, cpu1, objects, work) = sys.argv[1:]
runs = ["before", "after"]
rates = [json.load(open(f"{work}/drain-{r}.json"))["messages_per_second"] for r in runs]
ceiling = sum(rates) / len(rates)
seconds = float(end) - float(start)
rate = int(messages) / seconds
sent = json.load(open(load))
print()
print(f"published by the load generator : {sent['messages_sent']} messages at {sent['messages_per_second']:.0f} msg/s, {sent['publish_errors']} errors")
print(f"broker ceiling (discarding sub) : {ceiling:.0f} msg/s (mean of {rates[0]:.0f} before and {rates[1]:.0f} after)")
print(f"collector, publish to queryable : {int(messages)} messages in {seconds:.2f} s = {rate:.0f} msg/s, {rate*3:.0f} points/s")
probe = json.load(open(probe))
print(f"points in InfluxDB              : {got} of {points} ({'no loss' if int(got) == int(points) else 'INCOMPLETE'})")
print(f"publish to queryable latency    : p50 {probe['p50_ms']:.0f} ms, p99 {probe['p99_ms']:.0f} ms, max {probe['max_ms']:.0f} ms ({probe['seen']} of {probe['probes']} probes)")
print(f"fraction of the broker ceiling  : {rate/int(ceiling):.2f}")
print(f"collector peak RSS              : {int(rss)/1024:.0f} MB")
print(f"archive objects written         : {objects}")
used = [float(b) - float(a) for a, b in zip(cpu0.split(), cpu1.split())]
used.append(sent.get("cpu_seconds") or 0.0)
names = ["devicehub", "influxd", "mosquitto", "postgres", "load generator"]
print("CPU seconds, collector run      : " + ", ".join(f"{n} {u:.1f}" for n, u in zip(names, used))
      + f" (of {2 * seconds:.1f} on 2 cores)")
def ceiling_cpu(run):
    b0, b1 = open(f"{work}/broker-cpu-{run}").read().split()
    sent = json.load(open(f"{work}/load-{run}.json"))
    drained = json.load(open(f"{work}/drain-{run}.json"))
    return [float(b1) - float(b0), sent.get("cpu_seconds") or 0.0, drained.get("cpu_seconds") or 0.0]
ceiling_cpu = [sum(x) / len(runs) for x in zip(*map(ceiling_cpu, runs))]
print("CPU seconds, ceiling run (mean) : " + ", ".join(
    f"{n} {u:.1f}" for n, u in zip(["mosquitto", "load generator", "discarding subscriber"], ceiling_cpu)))
# What the other processes cost per message bounds our rate even if devicehub cost nothing.
others = sum(used[1:]) / int(messages)
print(f"per message (us CPU)            : devicehub {1e6 * used[0] / int(messages):.1f}, everything else {1e6 * others:.1f}")
print(f"rate bound if devicehub were free: {2 / others:.0f} msg/s = {2 / others / int(ceiling):.2f} of the ceiling")
print("summary: " + json.dumps({"rate": rate, "fraction": rate / ceiling, "p99_ms": probe["p99_ms"],
                              "rss_mb": int(rss) / 1024, "missing": int(points) - int(got)}))
PY
