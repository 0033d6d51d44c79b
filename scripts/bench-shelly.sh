#!/usr/bin/env bash
# The Shelly polling benchmark: SHELLYS (500) emulated Shelly Plus Plug S devices, each its own
# HTTP server on its own loopback address (devicehub-sim, HTTP only), polled by devicehub (release
# build, roles api + collector + pollers, the shipped defaults: 10 s interval, 3 s timeout)
# through the whole pipeline into InfluxDB 1.x, the archive and PostgreSQL. After every host has
# been identified, registered and polled once, it measures SECS (60) seconds of steady polling
# and prints: polls per interval against the number of hosts, failed polls, how many hosts have a
# reading in InfluxDB from the last interval, and devicehub's CPU and RSS.
#   SHELLYS=1000 SECS=120 scripts/bench-shelly.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SHELLYS="${SHELLYS:-500}"
SECS="${SECS:-60}"
INTERVAL=10
PORT=18081
HTTP_PORT=18090
DB=devicehub_bench_shelly
WORK="$(mktemp -d)"

require_cargo
ensure_postgres
ensure_mosquitto
ensure_influxdb
drop_test_influx_databases

release_binaries
trap 'kill ${SERVER:-} ${EMULATORS:-} 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

# The emulators: one HTTP server per Shelly, on 127.0.5.1, 127.0.5.2, ... port $PORT.
HOSTS=""
{
  printf 'seed = 1\n[mqtt]\nbrokers = ["mqtt://127.0.0.1:1883"]\niot_prefix = "bench/iot"\nqs_prefix = "bench/qs/v1"\n'
  for i in $(seq 0 $((SHELLYS - 1))); do
    address="127.0.$((5 + i / 250)).$((1 + i % 250))"
    printf '[[shelly]]\nid = "shellyplugs-bench-%04d"\nmodel = "plug"\nhttp = "%s:%s"\ninterval_s = %s\nmqtt = false\n' \
      "$i" "$address" "$PORT" "$INTERVAL"
    HOSTS="$HOSTS${HOSTS:+,}$address:$PORT"
  done
} > "$WORK/shellys.toml"
log "starting $SHELLYS Shelly emulators"
"$SIM" run --scenario "$WORK/shellys.toml" > "$WORK/sim.log" 2>&1 &
EMULATORS=$!
wait_for_port "127.0.$((5 + (SHELLYS - 1) / 250)).$((1 + (SHELLYS - 1) % 250))" "$PORT" "the last Shelly emulator"

curl -s -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=DROP DATABASE $DB" >/dev/null
psql -w -h "$PG_HOST" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
export DEVICEHUB__ROLES=api,collector,pollers
export DEVICEHUB__HTTP__BIND="127.0.0.1:$HTTP_PORT"
export DEVICEHUB__DATABASE__URL="postgres://postgres@$PG_HOST:$PG_PORT/$DB"
export DEVICEHUB__MQTT__URL="mqtt://127.0.0.1:$MQTT_PORT"
export DEVICEHUB__MQTT__CLIENT_ID="bench-shelly-$$"
export DEVICEHUB__MQTT__IOT_PREFIX="bench-shelly-$$/iot"
export DEVICEHUB__INFLUXDB__API=v1 DEVICEHUB__INFLUXDB__DATABASE=$DB
export DEVICEHUB__ARCHIVE__DIR="$WORK/archive" DEVICEHUB__COLLECTOR__JOURNAL_DIR="$WORK/journal"
export DEVICEHUB__AUTH__JWT_SECRET="bench-only-secret-not-for-production-0123456789"
export DEVICEHUB__SHELLY__HOSTS="$HOSTS"
export DEVICEHUB__LOG__LEVEL=warn
"$BIN" serve > "$WORK/devicehub.log" 2>&1 &
SERVER=$!
wait_for_port 127.0.0.1 "$HTTP_PORT" "devicehub"

# devicehub_polls_total{source="shelly",outcome=...}, summed over the outcomes given.
polls() {
  curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | python3 -c '
import re, sys
wanted = sys.argv[1].split(",")
total = 0
for line in sys.stdin:
    m = re.match(r"devicehub_polls_total\{source=\"shelly\",outcome=\"(\w+)\"\} (\S+)", line)
    if m and (m.group(1) in wanted or wanted == ["failed"] and m.group(1) != "ok"):
        total += float(m.group(2))
print(int(total))' "$1"
}
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

# A Shelly found for the first time is identified (one successful request, counted), watched for
# six intervals for MQTT status (the push alternative), then polled once per interval: wait for
# the identifications and a first poll of each.
log "waiting for every Shelly to be identified, registered and polled once (about 70 s)"
for _ in $(seq 1 300); do
  [ "$(polls ok)" -ge $((2 * SHELLYS)) ] && break
  kill -0 "$SERVER" || die "devicehub exited; see $WORK/devicehub.log"
  sleep 1
done
[ "$(polls ok)" -ge $((2 * SHELLYS)) ] || die "only $(polls ok) good requests in five minutes"
sleep "$INTERVAL"

log "measuring $SECS s of steady polling"
OK0=$(polls ok) FAILED0=$(polls failed) CPU0=$(cpu_secs "$SERVER") SIMCPU0=$(cpu_secs "$EMULATORS")
START=$(date +%s.%N)
sleep "$SECS"
OK1=$(polls ok) FAILED1=$(polls failed) CPU1=$(cpu_secs "$SERVER") SIMCPU1=$(cpu_secs "$EMULATORS")
END=$(date +%s.%N)
RSS=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
FRESH=$(curl -s "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "db=$DB" \
  --data-urlencode "q=SELECT count(\"value\") FROM iot_telemetry WHERE metric = 'switch0.power' AND time > now() - ${INTERVAL}s GROUP BY device_id" |
  python3 -c 'import sys, json; r = json.load(sys.stdin)["results"][0]; print(len(r.get("series", [])))')
python3 - "$SHELLYS" "$INTERVAL" "$START" "$END" "$OK0" "$OK1" "$FAILED0" "$FAILED1" "$CPU0" "$CPU1" \
  "$SIMCPU0" "$SIMCPU1" "$RSS" "$HWM" "$FRESH" <<'PY'
import sys
(n, interval, start, end, ok0, ok1, f0, f1, c0, c1, s0, s1, rss, hwm, fresh) = sys.argv[1:]
n, interval, secs = int(n), int(interval), float(end) - float(start)
per_interval = (int(ok1) - int(ok0)) * interval / secs
print()
print(f"hosts                            : {n}, polled every {interval} s")
print(f"polls per {interval} s interval          : {per_interval:.1f} ({per_interval / n:.3f} of the hosts)")
print(f"failed polls                     : {int(f1) - int(f0)} in {secs:.0f} s")
print(f"hosts with a reading in the last {interval} s (InfluxDB): {fresh} of {n}")
print(f"devicehub CPU                    : {100 * (float(c1) - float(c0)) / secs:.1f} % of one core")
print(f"devicehub RSS                    : {int(rss) // 1024} MB now, {int(hwm) // 1024} MB peak")
print(f"emulators' CPU (devicehub-sim)   : {100 * (float(s1) - float(s0)) / secs:.1f} % of one core")
PY
