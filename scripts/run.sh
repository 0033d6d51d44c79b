#!/usr/bin/env bash
# Starts devicehub with everything it needs on this machine, and the simulator feeding it:
# installs and starts PostgreSQL, InfluxDB (Debian's 1.x, so the v1 API) and an S3 server
# (s3s-fs) when missing, builds the release binaries, starts Mosquitto with the shipped broker
# configuration (config/mosquitto/: TLS on 127.0.0.1:8884 with a CA of its own, plain on
# 127.0.0.1:1884; passwords and ACLs, each simulated device logging in as itself), runs devicehub (API on :8080 and the collector), creates a first admin,
# starts Prometheus (Debian's) on 127.0.0.1:9090 scraping it with the shipped alert rules
# (DEVICEHUB_PROMETHEUS=0: not), and runs `devicehub-sim run` with
# config/simulator/home.toml, which registers its devices and publishes as a home and a
# metering fleet. Ctrl-C stops both. Data goes to ./data.
#
#   DEVICEHUB_SIMULATOR=0 scripts/run.sh          devicehub alone
#   DEVICEHUB_SCENARIO=path/to.toml scripts/run.sh another scenario
#
# DEVELOPMENT DEFAULTS, never for a network you do not trust: unless set, the JWT signing secret,
# the admin password (DEVICEHUB_ADMIN_PASSWORD, default "dev-only-admin-password"), the S3
# keys and the broker passwords (scripts/lib.sh) are fixed, publicly known values.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

require_cargo
ensure_services
command -v curl >/dev/null || apt_install curl ca-certificates

ADMIN_PASSWORD="${DEVICEHUB_ADMIN_PASSWORD:-dev-only-admin-password}"

if [ ! -x "$CARGO_TARGET_DIR/release/devicehub" ]; then
  log "building devicehub and devicehub-sim (release): the first build on a fresh machine takes"
  log "30 to 60 minutes on two cores (DuckDB's C++ is most of it); cargo's progress follows"
else
  log "building devicehub and devicehub-sim (release) where the sources changed"
fi
cargo build --release --locked --workspace
BIN="$CARGO_TARGET_DIR/release/devicehub"
SIM="$CARGO_TARGET_DIR/release/devicehub-sim"
SCENARIO="${DEVICEHUB_SCENARIO:-config/simulator/home.toml}"

"$SIM" devices --scenario "$SCENARIO" |
  python3 -c 'import sys, json; [print(json.loads(l)["device_id"]) for l in sys.stdin]' |
  ensure_devicehub_broker "$BIN"
source "$ROOT/scripts/run-env.sh"
HTTP="$DEVICEHUB__HTTP__BIND"
API="http://127.0.0.1:${HTTP##*:}"

"$BIN" migrate
if printf '%s\n' "$ADMIN_PASSWORD" | "$BIN" user add --username admin --role admin >/dev/null 2>&1; then
  log "created user admin (password from DEVICEHUB_ADMIN_PASSWORD, default dev-only-admin-password)"
fi

"$BIN" serve &
SERVER=$!
SIMULATOR=""
PROMETHEUS=""
stop() {
  trap - INT TERM EXIT
  [ -n "$SIMULATOR" ] && kill "$SIMULATOR" 2>/dev/null
  [ -n "$PROMETHEUS" ] && kill "$PROMETHEUS" 2>/dev/null
  kill "$SERVER" 2>/dev/null
  wait 2>/dev/null
}
trap stop INT TERM EXIT

# Prometheus with the shipped configuration and alert rules, scraping this devicehub.
if [ "${DEVICEHUB_PROMETHEUS:-1}" != 0 ]; then
  command -v prometheus >/dev/null || apt_install prometheus
  mkdir -p data/prometheus
  sed -e "s#devicehub:8080#127.0.0.1:${HTTP##*:}#" -e "s#^  - alerts.yml#  - $ROOT/config/prometheus/alerts.yml#" \
    config/prometheus/prometheus.yml > data/prometheus/prometheus.yml
  if port_open 127.0.0.1 9090; then
    log "something already listens on 127.0.0.1:9090; not starting Prometheus"
  else
    prometheus --config.file=data/prometheus/prometheus.yml --storage.tsdb.path=data/prometheus/tsdb \
      --web.listen-address=127.0.0.1:9090 --log.level=warn 2>data/prometheus/prometheus.log &
    PROMETHEUS=$!
    log "Prometheus on http://127.0.0.1:9090 (alerts: /alerts; log in data/prometheus)"
  fi
fi

for _ in $(seq 1 120); do
  curl -fs "$API/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER" 2>/dev/null || die "devicehub exited; see its log above"
  sleep 0.5
done
log "devicehub is ready: the web console on $API/ and the API docs on $API/docs (log in as admin)"

if [ "${DEVICEHUB_SIMULATOR:-1}" != 0 ]; then
  log "starting the simulator: $SCENARIO"
  DEVICEHUB_SIM_PASSWORD="$ADMIN_PASSWORD" DEVICEHUB_SIM_DEVICE_PASSWORD="$DEVICE_DEV_PASSWORD" \
    DEVICEHUB_SIM_MQTT_CA_FILE="$MQTT_CA" \
    "$SIM" run --scenario "$SCENARIO" --broker "$BROKER" &
  SIMULATOR=$!
fi
wait "$SERVER"
