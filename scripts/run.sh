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

export DEVICEHUB__INFLUXDB__API="${DEVICEHUB__INFLUXDB__API:-v1}"
export DEVICEHUB__AUTH__JWT_SECRET="${DEVICEHUB__AUTH__JWT_SECRET:-dev-only-insecure-jwt-secret-change-me-0123456789}"
# The archive and the Parquet lake go to the local S3 server (bucket iot-data), as they would to
# MinIO in a real deployment.
export DEVICEHUB__ARCHIVE__BACKEND="${DEVICEHUB__ARCHIVE__BACKEND:-s3}"
export DEVICEHUB__S3__ENDPOINT="${DEVICEHUB__S3__ENDPOINT:-http://127.0.0.1:$S3_PORT}"
export DEVICEHUB__S3__ACCESS_KEY="${DEVICEHUB__S3__ACCESS_KEY:-$S3_DEV_ACCESS_KEY}"
export DEVICEHUB__S3__SECRET_KEY="${DEVICEHUB__S3__SECRET_KEY:-$S3_DEV_SECRET_KEY}"
ADMIN_PASSWORD="${DEVICEHUB_ADMIN_PASSWORD:-dev-only-admin-password}"
# Loopback only: devicehub refuses the development JWT secret on any other address.
export DEVICEHUB__HTTP__BIND="${DEVICEHUB__HTTP__BIND:-127.0.0.1:8080}"
HTTP="$DEVICEHUB__HTTP__BIND"
API="http://127.0.0.1:${HTTP##*:}"

log "building devicehub and devicehub-sim (release)"
cargo build --release --locked --workspace
BIN="$CARGO_TARGET_DIR/release/devicehub"
SIM="$CARGO_TARGET_DIR/release/devicehub-sim"
SCENARIO="${DEVICEHUB_SCENARIO:-config/simulator/home.toml}"

"$SIM" devices --scenario "$SCENARIO" |
  python3 -c 'import sys, json; [print(json.loads(l)["device_id"]) for l in sys.stdin]' |
  ensure_devicehub_broker "$BIN"
# Over TLS, as devices and devicehub talk in a deployment (the CA from `devicehub certs mqtt`).
MQTT_CA="$ROOT/data/mosquitto/certs/ca.crt"
BROKER="mqtts://127.0.0.1:$DEVICEHUB_BROKER_TLS_PORT"
# The pollers too: with the simulator, devicehub polls its Mikrotik emulator (HTTPS with the
# simulator's self-signed certificate as the trusted CA, the scenario's development password),
# the Shelly devices the router's leases name (on port 8081, the scenario's development device
# password) and its HikVision camera.
export DEVICEHUB__ROLES="${DEVICEHUB__ROLES:-api,collector,pollers,analytics}"
if [ "${DEVICEHUB_SIMULATOR:-1}" != 0 ]; then
  ROUTER_CERT="$("$SIM" tls-cert --scenario "$SCENARIO")"
  export DEVICEHUB__MIKROTIK__URL="${DEVICEHUB__MIKROTIK__URL:-https://127.0.1.1:8081/rest}"
  export DEVICEHUB__MIKROTIK__CA_FILE="${DEVICEHUB__MIKROTIK__CA_FILE:-$ROUTER_CERT}"
  export DEVICEHUB__MIKROTIK__PASSWORD="${DEVICEHUB__MIKROTIK__PASSWORD:-dev-only-router-password}"
  export DEVICEHUB__SHELLY__PORT="${DEVICEHUB__SHELLY__PORT:-8081}"
  export DEVICEHUB__SHELLY__PASSWORD="${DEVICEHUB__SHELLY__PASSWORD:-dev-only-shelly-password}"
  # The scenario's Gen1 Shelly 2.5: the one host the password may go to by basic auth.
  export DEVICEHUB__SHELLY__GEN1_HOSTS="${DEVICEHUB__SHELLY__GEN1_HOSTS:-127.0.1.13:8081}"
  export DEVICEHUB__HIKVISION__HOSTS="${DEVICEHUB__HIKVISION__HOSTS:-127.0.1.20:8081}"
  export DEVICEHUB__HIKVISION__PASSWORD="${DEVICEHUB__HIKVISION__PASSWORD:-dev-only-camera-password}"
  export DEVICEHUB__INVENTORY__METADATA_CSV="${DEVICEHUB__INVENTORY__METADATA_CSV:-config/simulator/device_metadata.csv}"
fi
export DEVICEHUB__MQTT__URL="${DEVICEHUB__MQTT__URL:-mqtts://devicehub:$BROKER_DEV_PASSWORD@127.0.0.1:$DEVICEHUB_BROKER_TLS_PORT}"
export DEVICEHUB__MQTT__CA_FILE="${DEVICEHUB__MQTT__CA_FILE:-$MQTT_CA}"

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
