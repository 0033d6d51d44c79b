#!/usr/bin/env bash
# `devicehub doctor` with the environment scripts/run.sh runs devicehub with (scripts/run-env.sh):
# checks the stack scripts/run.sh started — PostgreSQL, the broker over TLS, InfluxDB, the S3
# server, the journal, and with the simulator its router, Shelly devices and camera — one line
# each; exit status 1 when anything failed. Arguments go to `devicehub doctor` (e.g. --json).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

BIN="$CARGO_TARGET_DIR/release/devicehub"
SIM="$CARGO_TARGET_DIR/release/devicehub-sim"
SCENARIO="${DEVICEHUB_SCENARIO:-config/simulator/home.toml}"
[ -x "$BIN" ] && [ -x "$SIM" ] || die "no release build in $CARGO_TARGET_DIR; run scripts/run.sh first"
source "$ROOT/scripts/run-env.sh"
exec "$BIN" doctor "$@"
