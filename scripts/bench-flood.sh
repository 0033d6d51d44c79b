#!/usr/bin/env bash
# The flood benchmark: tests/api/flood.rs against the release build. A devicehub process with
# the shipped broker config (opened to anonymous clients) gets IDS distinct device ids, one
# message each, as fast as 4 connections publish them; prints the time, the process's idle and
# peak RSS, the slowest API answer during the flood, and the ingest counters.
#   IDS=200000 scripts/bench-flood.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
require_cargo
ensure_services
cargo build --release --locked --bin devicehub
DEVICEHUB_BIN="$CARGO_TARGET_DIR/release/devicehub" DEVICEHUB_FLOOD_IDS="${IDS:-50000}" \
  cargo test --locked --test api -- flood:: --nocapture 2>&1 | grep -E '^flood of|test result'
